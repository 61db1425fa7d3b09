/*
 * avatar.c: a profile's picture: PUT stores the raw bytes of a PNG, JPEG or
 * WebP (at most 512 KiB), GET serves them back with their type, an ETag
 * (SHA-256 of the bytes) and private caching.
 *
 * The upload is a `body: raw` route: the bytes arrive as the NATS body and
 * the path parameters as JSON in the Mp-Input header. The type is sniffed
 * from the bytes (sniff.c); the client's Content-Type is ignored, so a
 * script renamed to .png is a 415, never stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "mp/etag.h"
#include "mp/json.h"
#include "sniff.h"
#include "user_int.h"

#define AVATAR_CACHE_CONTROL "private, max-age=60"

static void hex_of(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Postgres's hex bytea output ("\x89504e47...") back to bytes in `out` (room for (len-2)/2); returns the count. */
static long unhex_bytea(unsigned char *out, const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[0] != '\\' || s[1] != 'x' || n % 2)
        return -1;
    for (size_t i = 2; i < n; i += 2) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[i + k];
            v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1000);
        }
        if (v < 0)
            return -1;
        out[(i - 2) / 2] = (unsigned char)v;
    }
    return (long)((n - 2) / 2);
}

/* The JSON parameters of a raw request (header Mp-Input); NULL and an answered 400 when they are not an object. */
static json_t *raw_input(mp_svc_req_t *req)
{
    const char *text = mp_svc_header(req, "Mp-Input");
    json_t *v = NULL;
    if (text == NULL)
        return json_object();
    if (mp_json_parse(&v, text, strlen(text)) != MP_OK || !json_is_object(v)) {
        json_decref(v);
        mp_svc_reply_problem(req, 400, "the request parameters (Mp-Input) are not a JSON object", NULL);
        return NULL;
    }
    return v;
}

mp_status_t user_avatar_put(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37], sha[65], etag[68];
    json_t *params = raw_input(req);
    if (params == NULL)
        return MP_OK;
    mp_input_init(&in, params);
    bool admitted = user_admit(id, req, &in, MP_INPUT_FIELDS("userId"));
    json_decref(params);
    if (!admitted)
        return MP_OK;

    size_t len;
    const unsigned char *body = (const unsigned char *)mp_svc_body(req, &len);
    if (len > USER_AVATAR_MAX)
        return mp_svc_reply_problem(req, 413, "an avatar is at most 512 KiB", NULL);
    const char *type = user_image_type(body, len);
    if (type == NULL)
        return mp_svc_reply_problem(req, 415, "an avatar must be a PNG, JPEG or WebP image", NULL);

    unsigned char digest[32];
    unsigned int dn = 0;
    EVP_Digest(body, len, digest, &dn, EVP_sha256(), NULL);
    hex_of(sha, digest, 32);
    snprintf(etag, sizeof(etag), "\"%s\"", sha);
    char *hex = malloc(2 * len + 1);
    if (hex == NULL)
        return mp_err_set(MP_ENOMEM, "avatar: out of memory");
    hex_of(hex, body, len);

    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL;
    bool found = false;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(req->svc), 2000);
    if (st == MP_OK)
        st = mp_db_begin(db);
    /* the profile shows the avatar, so its version moves too (its ETag must change) */
    if (st == MP_OK)
        st = mp_db_exec(&res, db,
                        "UPDATE \"user\".profiles SET version = version + 1, updated_at = now() WHERE user_id = $1", 1,
                        MP_DB_PARAMS(id));
    found = st == MP_OK && mp_db_affected(res) == 1;
    if (found)
        st = mp_db_exec(NULL, db,
                        "INSERT INTO \"user\".avatars (user_id, content_type, data, sha256) "
                        "VALUES ($1, $2, decode($3, 'hex'), $4) ON CONFLICT (user_id) DO UPDATE SET "
                        "content_type = EXCLUDED.content_type, data = EXCLUDED.data, sha256 = EXCLUDED.sha256, "
                        "updated_at = now()",
                        4, MP_DB_PARAMS(id, type, hex, sha));
    if (st == MP_OK && found)
        st = mp_db_commit(db);
    mp_db_res_free(res);
    mp_db_release(db);
    free(hex);
    if (st != MP_OK)
        return st;
    if (!found)
        return user_not_found(req);
    mp_log_kv(MP_LOG_INFO, &req->log, "avatar stored", "user_id", id, "content_type", type, NULL);
    mp_svc_reply_header(req, "ETag", etag);
    return mp_svc_reply_json(req, 200,
                             json_pack("{s:s, s:I, s:s}", "content_type", type, "size", (json_int_t)len, "etag", etag));
}

mp_status_t user_avatar_get(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37], etag[68];
    mp_input_init(&in, req->input);
    if (!user_admit(id, req, &in, MP_INPUT_FIELDS("userId")))
        return MP_OK;

    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc),
                                     "SELECT content_type, sha256, data FROM \"user\".avatars WHERE user_id = $1", 1,
                                     MP_DB_PARAMS(id));
    if (st != MP_OK)
        return st;
    if (mp_db_rows(res) != 1) {
        mp_db_res_free(res);
        return mp_svc_reply_problem(req, 404, "this user has no avatar", NULL);
    }
    snprintf(etag, sizeof(etag), "\"%s\"", mp_db_get(res, 0, 1));
    mp_svc_reply_header(req, "ETag", etag);
    mp_svc_reply_header(req, "Cache-Control", AVATAR_CACHE_CONTROL);
    if (mp_etag_match(mp_svc_header(req, "If-None-Match"), etag, true)) {
        mp_db_res_free(res);
        return mp_svc_reply_json(req, 304, NULL);
    }
    const char *data = mp_db_get(res, 0, 2);
    unsigned char *bytes = malloc(strlen(data) / 2 + 1);
    long n = bytes ? unhex_bytea(bytes, data) : -1;
    if (n <= 0)
        st = mp_err_set(MP_EINTERNAL, "avatar of %s: unexpected bytea text", id);
    else
        st = mp_svc_reply_raw(req, 200, mp_db_get(res, 0, 0), bytes, (size_t)n);
    free(bytes);
    mp_db_res_free(res);
    return st;
}
