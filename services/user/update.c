/*
 * update.c: PATCH of a profile (user.v1.update) by its owner or an admin.
 *
 * Fields: display_name (1-80 characters, not blank), avatar_url (https, or
 * null to clear), preferences (a JSON object of at most 16 KiB and 4 levels;
 * it replaces the stored one; null resets it to {}), locale (BCP 47, or
 * null), timezone (IANA, or null). Any other field is a 422 at its pointer.
 * An If-Match header is optional; when sent it must match the profile's
 * ETag (412 otherwise), so two editors cannot overwrite each other blindly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/buf.h"
#include "mp/etag.h"
#include "mp/json.h"
#include "rules.h"
#include "user_int.h"

#define PREFERENCES_MAX_BYTES (16 * 1024)
#define PREFERENCES_MAX_DEPTH 4

/* A field that may be set, cleared with null, or left alone. */
typedef struct change {
    bool given;
    const char *value; /* NULL: clear */
} change_t;

static change_t nullable_str(mp_input_t *in, const char *key, size_t max)
{
    change_t c = {.given = json_object_get(in->obj, key) != NULL};
    c.value = mp_input_str(in, key, MP_IN_NULLABLE, 1, max);
    return c;
}

static bool blank(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

/* Checks the body; fills the changes. Returns the preferences text to store (caller frees) or NULL. */
static char *check_fields(mp_input_t *in, const char **name, change_t *avatar, change_t *locale, change_t *tz,
                          bool *prefs_given)
{
    *name = mp_input_str(in, "display_name", 0, 1, 80);
    if (*name && blank(*name))
        mp_input_fail(in, "display_name", "must not be blank");
    *avatar = nullable_str(in, "avatar_url", 2048);
    if (avatar->value && !mp_https_url_valid(avatar->value))
        mp_input_fail(in, "avatar_url", "must be an https URL with a host");
    *locale = nullable_str(in, "locale", 35);
    if (locale->value && !user_locale_valid(locale->value))
        mp_input_fail(in, "locale", "must be a BCP 47 language tag such as en-GB");
    *tz = nullable_str(in, "timezone", 64);
    if (tz->value && !user_timezone_valid(USER_ZONEINFO_DIR, tz->value))
        mp_input_fail(in, "timezone", "must be an IANA time zone name such as Europe/Berlin");

    json_t *prefs = json_object_get(in->obj, "preferences");
    *prefs_given = prefs != NULL;
    if (prefs == NULL || json_is_null(prefs))
        return prefs ? strdup("{}") : NULL;
    if (!json_is_object(prefs)) {
        mp_input_fail(in, "preferences", "must be an object");
        return NULL;
    }
    if (user_json_depth(prefs) > PREFERENCES_MAX_DEPTH) {
        mp_input_fail(in, "preferences", "must nest at most %d levels", PREFERENCES_MAX_DEPTH);
        return NULL;
    }
    mp_buf_t b = MP_BUF_INIT;
    mp_json_dump(&b, prefs);
    if (b.len > PREFERENCES_MAX_BYTES) {
        mp_input_fail(in, "preferences", "must be at most %d bytes of JSON", PREFERENCES_MAX_BYTES);
        mp_buf_dispose(&b);
        return NULL;
    }
    return mp_buf_steal(&b);
}

mp_status_t user_update(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37], etag[32];
    const char *name;
    change_t avatar, locale, tz;
    bool prefs_given;
    mp_input_init(&in, req->input);
    char *prefs = check_fields(&in, &name, &avatar, &locale, &tz, &prefs_given);
    if (!user_admit(id, req, &in,
                    MP_INPUT_FIELDS("userId", "display_name", "avatar_url", "preferences", "locale", "timezone"))) {
        free(prefs);
        return MP_OK;
    }

    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL;
    const char *if_match = mp_svc_header(req, "If-Match");
    int outcome = 200;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(req->svc), 2000);
    if (st != MP_OK)
        goto done;
    if ((st = mp_db_begin(db)) != MP_OK)
        goto done;
    st = mp_db_exec(&res, db, "SELECT version FROM \"user\".profiles WHERE user_id = $1 FOR UPDATE", 1,
                    MP_DB_PARAMS(id));
    if (st != MP_OK)
        goto done;
    if (mp_db_rows(res) != 1) {
        outcome = 404;
        goto done;
    }
    mp_etag_version(etag, sizeof(etag), strtoll(mp_db_get(res, 0, 0), NULL, 10));
    if (if_match && !mp_etag_match(if_match, etag, false)) {
        outcome = 412;
        goto done;
    }
    mp_db_res_free(res);
    res = NULL;
    st = mp_db_exec(&res, db,
                    "UPDATE \"user\".profiles p SET display_name = COALESCE($2, display_name), "
                    "avatar_url = CASE WHEN $3::boolean THEN $4 ELSE avatar_url END, "
                    "preferences = COALESCE($5::jsonb, preferences), "
                    "locale = CASE WHEN $6::boolean THEN $7 ELSE locale END, "
                    "timezone = CASE WHEN $8::boolean THEN $9 ELSE timezone END, "
                    "version = version + 1, updated_at = now() WHERE p.user_id = $1 RETURNING " USER_PROFILE_COLUMNS,
                    9,
                    MP_DB_PARAMS(id, name, avatar.given ? "true" : "false", avatar.value, prefs,
                                 locale.given ? "true" : "false", locale.value, tz.given ? "true" : "false", tz.value));
    if (st == MP_OK)
        st = mp_db_commit(db);
done:
    free(prefs);
    mp_db_release(db);
    if (st == MP_OK && outcome == 404)
        st = user_not_found(req);
    else if (st == MP_OK && outcome == 412)
        st = mp_svc_reply_problem(req, 412, "the profile changed since you read it (If-Match is stale)", NULL);
    else if (st == MP_OK) {
        mp_log_kv(MP_LOG_INFO, &req->log, "profile updated", "user_id", id, NULL);
        st = user_reply_profile(req, 200, mp_db_get(res, 0, 0), mp_db_get(res, 0, 1));
    }
    mp_db_res_free(res);
    return st;
}
