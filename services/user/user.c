/*
 * user.c: the User service: profiles created at registration
 * (user.v1.provision, called by Auth inside its transaction), read by their
 * owner or an admin (user.v1.get), and listed for admins (user.v1.list).
 * Changing a profile is in update.c, avatars in avatar.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/cursor.h"
#include "mp/etag.h"
#include "mp/page.h"
#include "user_int.h"

/* Reads which profile a request is about into `id`; false when there is none (malformed: recorded on `in`). */
static bool user_target(char id[37], mp_svc_req_t *req, mp_input_t *in)
{
    const char *key = json_object_get(in->obj, "userId") ? "userId" : "id";
    const char *v = mp_input_str(in, key, MP_IN_PARAM, 1, 64);
    if (v == NULL && json_object_get(in->obj, key) != NULL)
        return false; /* wrong type: recorded */
    if (v == NULL || strcmp(v, "me") == 0) {
        if (req->auth_sub == NULL || !mp_uuid_valid(req->auth_sub))
            return false;
        snprintf(id, 37, "%s", req->auth_sub);
        for (char *p = id; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        return true;
    }
    return mp_input_uuid(in, key, MP_IN_PARAM, id);
}

bool user_admit(char id[37], mp_svc_req_t *req, mp_input_t *in, const char *const *allowed)
{
    bool have = user_target(id, req, in);
    mp_input_only(in, allowed);
    if (!mp_input_ok(in)) {
        mp_input_reply(req, in);
        return false;
    }
    mp_input_dispose(in);
    if (req->auth_sub == NULL) {
        mp_svc_reply_problem(req, 401, "authentication required", NULL);
        return false;
    }
    if (!have || !user_may_access(req, id)) {
        user_not_found(req);
        return false;
    }
    return true;
}

bool user_may_access(const mp_svc_req_t *req, const char *id)
{
    if (req->auth_sub == NULL)
        return false;
    return strcasecmp(req->auth_sub, id) == 0 || mp_svc_has_role(req, "admin");
}

mp_status_t user_not_found(mp_svc_req_t *req)
{
    return mp_svc_reply_problem(req, 404, "no such user", NULL);
}

mp_status_t user_reply_profile(mp_svc_req_t *req, int status, const char *json, const char *version)
{
    char etag[32];
    mp_etag_version(etag, sizeof(etag), strtoll(version, NULL, 10));
    mp_svc_reply_header(req, "ETag", etag);
    mp_svc_reply_header(req, "Cache-Control", "private, no-cache");
    if (status == 200 && mp_etag_match(mp_svc_header(req, "If-None-Match"), etag, true))
        return mp_svc_reply_json(req, 304, NULL);
    return mp_svc_reply_raw(req, status, "application/json", json, strlen(json));
}

/* ---- provision (internal) ---------------------------------------------------------- */

static mp_status_t user_provision(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37];
    mp_input_init(&in, req->input);
    mp_input_uuid(&in, "user_id", MP_IN_REQUIRED, id);
    const char *email = mp_input_str(&in, "email", MP_IN_REQUIRED, 3, 254);
    const char *name = mp_input_str(&in, "display_name", MP_IN_REQUIRED, 1, 80);
    mp_input_only(&in, MP_INPUT_FIELDS("user_id", "email", "display_name"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);

    /* a retry (Auth's reply lost, a replayed registration) finds the profile there and changes nothing */
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc),
                                     "INSERT INTO \"user\".profiles (user_id, email, display_name) VALUES ($1, $2, $3) "
                                     "ON CONFLICT (user_id) DO NOTHING",
                                     3, MP_DB_PARAMS(id, email, name));
    bool created = st == MP_OK && mp_db_affected(res) == 1;
    mp_db_res_free(res);
    if (st != MP_OK)
        return st;
    return mp_svc_reply_json(req, 200, json_pack("{s:s, s:b}", "user_id", id, "created", created));
}

/* ---- get ------------------------------------------------------------------------------ */

static mp_status_t user_get(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37];
    mp_input_init(&in, req->input);
    if (!user_admit(id, req, &in, MP_INPUT_FIELDS("userId", "id")))
        return MP_OK;

    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc),
                                     "SELECT " USER_PROFILE_COLUMNS " FROM \"user\".profiles p WHERE p.user_id = $1", 1,
                                     MP_DB_PARAMS(id));
    if (st == MP_OK && mp_db_rows(res) == 1)
        st = user_reply_profile(req, 200, mp_db_get(res, 0, 0), mp_db_get(res, 0, 1));
    else if (st == MP_OK)
        st = user_not_found(req);
    mp_db_res_free(res);
    return st;
}

/* ---- list (admin) --------------------------------------------------------------------- */

#define USER_LIST_KIND "user.list.v1"

static mp_status_t user_list(mp_svc_req_t *req)
{
    mp_input_t in;
    int64_t limit;
    const char *cursor, *after[2] = {NULL, NULL};
    char cbuf[600], lim[24];
    if (!mp_svc_has_role(req, "admin"))
        return mp_svc_reply_problem(req, 403, "listing users needs the admin role", NULL);
    mp_input_init(&in, req->input);
    mp_input_page(&in, &limit, &cursor);
    mp_input_only(&in, MP_INPUT_FIELDS("limit", "cursor"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (cursor &&
        (mp_cursor_decode(after, 2, cbuf, sizeof(cbuf), USER_LIST_KIND, cursor) != MP_OK || !mp_uuid_valid(after[1])))
        return mp_svc_reply_problem(req, 400, "parameter cursor: not a cursor of this listing", NULL);

    snprintf(lim, sizeof(lim), "%lld", (long long)limit + 1);
    mp_db_res_t *res = NULL;
    mp_status_t st =
        mp_db_exec_once(&res, mp_svc_db(req->svc),
                        "SELECT " USER_PROFILE_COLUMNS ", to_char(p.created_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), p.user_id FROM \"user\".profiles p "
                        "WHERE $1::timestamptz IS NULL OR (p.created_at, p.user_id) > ($1::timestamptz, $2::uuid) "
                        "ORDER BY p.created_at, p.user_id LIMIT $3::int",
                        3, MP_DB_PARAMS(after[0], after[1], lim));
    if (st == MP_EINVAL) /* a forged cursor whose time does not parse; the SQL error stays in the log */
        return mp_svc_reply_problem(req, 400, "parameter cursor: not a cursor of this listing", NULL);
    if (st != MP_OK)
        return st;
    mp_svc_reply_header(req, "Cache-Control", "private, no-store");
    st = mp_svc_reply_page(req, res, limit, USER_LIST_KIND, (mp_page_cols_t){.json = 0, .key = 2, .id = 3});
    mp_db_res_free(res);
    return st;
}

/* ---- the service -------------------------------------------------------------------------- */

static const mp_endpoint_t user_endpoints[] = {
    {"provision", user_provision},
    {"get", user_get},
    {"list", user_list},
    {"update", user_update},
    {"avatar_put", user_avatar_put, MP_EP_RAW},
    {"avatar_get", user_avatar_get},
    {NULL},
};

MP_SERVICE(user, .endpoints = user_endpoints, .needs = MP_NEEDS_DB);
