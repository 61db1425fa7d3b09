/*
 * user_int.h: what the User service's files share.
 *
 * Files: user.c (the service: provision, get, list), update.c (PATCH),
 * avatar.c (upload and download), rules.c (field checks), sniff.c (image
 * types from bytes).
 *
 * Who may see a profile: its owner and admins. Anyone else is told 404, the
 * same answer as for an id that does not exist, so the API never confirms
 * who has an account.
 */
#ifndef MP_USER_INT_H
#define MP_USER_INT_H

#include <stdbool.h>
#include "mp/input.h"
#include "mp/service.h"

#define USER_AVATAR_MAX (512 * 1024)

/* SQL fragment: a timestamptz column as RFC 3339 UTC text */
#define USER_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* SQL: the public representation of profile `p` as JSON text, then its version */
#define USER_PROFILE_COLUMNS                                                                                           \
    "json_build_object('id', p.user_id, 'email', p.email, 'display_name', p.display_name, 'avatar_url', "              \
    "p.avatar_url, 'avatar', (SELECT json_build_object('url', '/v1/users/' || a.user_id || '/avatar', "                \
    "'content_type', a.content_type, 'size', octet_length(a.data), 'etag', '\"' || a.sha256 || '\"', "                 \
    "'updated_at', " USER_TS(                                                                                          \
        "a.updated_at") ") FROM \"user\".avatars a WHERE a.user_id = p.user_id), "                                     \
                        "'preferences', p.preferences, 'locale', p.locale, 'timezone', p.timezone, "                   \
                        "'created_at', " USER_TS("p.created_at") ", 'updated_at', " USER_TS(                           \
                            "p.updated_at") ", 'version', p.version)::text, p.version"

/** The common start of a handler about one profile: reads the target id (the `userId` path parameter, or `id` from
 *  internal callers; absent or "me" means the caller), refuses parameters not in
 *  `allowed` (NULL-terminated), and checks that there is a caller and that it may touch the profile. Returns true
 *  with `id` set; false once it has answered (400 or 422 for the input, 401 without a caller, 404 for a profile the
 *  caller may not see). Disposes `in` either way. */
bool user_admit(char id[37], mp_svc_req_t *req, mp_input_t *in, const char *const *allowed);

/** True when the caller may see and change profile `id`: its owner, or an admin. */
bool user_may_access(const mp_svc_req_t *req, const char *id);

/** Replies the profile JSON text `json` with `status`, its ETag (from `version`) and no-cache headers. */
mp_status_t user_reply_profile(mp_svc_req_t *req, int status, const char *json, const char *version);

/** The common refusal: 404 for a profile the caller may not see or that does not exist. */
mp_status_t user_not_found(mp_svc_req_t *req);

mp_status_t user_update(mp_svc_req_t *req);
mp_status_t user_avatar_put(mp_svc_req_t *req);
mp_status_t user_avatar_get(mp_svc_req_t *req);

#endif
