/*
 * login.c: login, refresh-token rotation with reuse detection, logout.
 *
 * A session is a chain of single-use refresh tokens. Presenting a spent
 * token again means it was stolen or replayed: the whole session is revoked
 * (so the thief's newer token dies too) and every gateway is told, so the
 * session's access tokens stop working within a second as well.
 *
 * Login attempts for one account are serialised with a transaction-level
 * advisory lock, so the failure count cannot be raced past the lockout
 * limit by parallel guesses. Unknown e-mails run the same scrypt against a
 * dummy hash, so timing does not reveal which accounts exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "mp/b64url.h"
#include "mp/bus.h"
#include "mp/json.h"
#include "mp/reqctx.h"
#include "auth_int.h"
#include "signing.h"

/* ---- helpers -------------------------------------------------------------------- */

static void sha256_hex(char out[65], const char *s)
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static mp_status_t new_refresh_token(char out[44], char hash[65])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return mp_err_set(MP_EINTERNAL, "no randomness for a token");
    mp_b64url_encode(out, raw, sizeof(raw));
    sha256_hex(hash, out);
    return MP_OK;
}

/* "{user,admin}" -> JSON array */
static json_t *roles_json(const char *pg_array)
{
    json_t *a = json_array();
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", pg_array ? pg_array : "{}");
    char *save = NULL;
    for (char *r = strtok_r(buf + 1, ",}", &save); r; r = strtok_r(NULL, ",}", &save))
        json_array_append_new(a, json_string(r));
    return a;
}

static mp_status_t sign_access(char **token, const char *user_id, const char *session_id, const char *roles)
{
    char jti[33];
    time_t now = time(NULL);
    mp_rand_hex(jti, 16);
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:o}", "iss", auth_cfg.issuer, "sub", user_id, "aud",
                  auth_cfg.audience, "iat", (json_int_t)now, "exp", (json_int_t)(now + auth_cfg.access_ttl_s), "jti",
                  jti, "sid", session_id, "roles", roles_json(roles));
    mp_status_t st = auth_signing_sign(token, claims);
    json_decref(claims);
    return st;
}

static mp_status_t reply_tokens(mp_svc_req_t *req, const char *user_id, const char *session_id, const char *roles,
                                const char *refresh)
{
    char *access = NULL;
    mp_status_t st = sign_access(&access, user_id, session_id, roles);
    if (st != MP_OK)
        return st;
    json_t *body = json_pack("{s:s, s:s, s:I, s:s}", "access_token", access, "token_type", "Bearer", "expires_in",
                             (json_int_t)auth_cfg.access_ttl_s, "refresh_token", refresh);
    free(access);
    mp_svc_reply_header(req, "Cache-Control", "no-store");
    return mp_svc_reply_json(req, 200, body);
}

void auth_broadcast_revoked(mp_bus_t *bus, const char *session_id, const char *user_id)
{
    char id[33], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    mp_rand_hex(id, 16);
    /* tokens issued before now expire at most one access lifetime from now */
    json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:I}}", "id", id, "type", "auth.session_revoked",
                           "occurred_at", ts, "data", "session_id", session_id, "user_id", user_id, "until",
                           (json_int_t)(now + auth_cfg.access_ttl_s + 60));
    char *body = json_dumps(ev, JSON_COMPACT);
    mp_bus_call_t call = {.subject = "events.auth.session_revoked", .body = body, .len = strlen(body)};
    if (mp_bus_publish(bus, &call) != MP_OK)
        mp_log_kv(MP_LOG_ERROR, NULL, "cannot broadcast a session revocation; gateways learn it at their next sync",
                  "session_id", session_id, "error", mp_err_get(), NULL);
    free(body);
    json_decref(ev);
}

/* ---- login -------------------------------------------------------------------------- */

/* Seconds until the lockout lifts, or 0 when the account may try. */
static mp_status_t lockout_remaining(mp_db_conn_t *db, const char *email_hash, long *retry_after)
{
    char window[24], max[12];
    mp_db_res_t *res = NULL;
    snprintf(window, sizeof(window), "%lld", (long long)auth_cfg.lockout_window_s);
    snprintf(max, sizeof(max), "%d", auth_cfg.lockout_max);
    mp_status_t st = mp_db_exec(&res, db,
                                "SELECT count(*) >= $3::int, "
                                "ceil(extract(epoch FROM min(failed_at) + $2::int * interval '1 second' - now())) "
                                "FROM auth.login_failures "
                                "WHERE email_hash = $1 AND failed_at > now() - $2::int * interval '1 second'",
                                3, MP_DB_PARAMS(email_hash, window, max));
    *retry_after = 0;
    if (st == MP_OK && strcmp(mp_db_get(res, 0, 0), "t") == 0) {
        const char *secs = mp_db_get(res, 0, 1);
        *retry_after = secs ? atol(secs) : 1;
        if (*retry_after < 1)
            *retry_after = 1;
    }
    mp_db_res_free(res);
    return st;
}

static mp_status_t start_session(mp_db_conn_t *db, char sid[37], const char *user_id, const char *refresh_hash)
{
    char ttl[24];
    mp_db_res_t *res = NULL;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)auth_cfg.refresh_ttl_s);
    mp_status_t st = mp_db_exec(&res, db,
                                "INSERT INTO auth.sessions (user_id, expires_at) "
                                "VALUES ($1, now() + $2::bigint * interval '1 second') RETURNING id",
                                2, MP_DB_PARAMS(user_id, ttl));
    if (st == MP_OK)
        snprintf(sid, 37, "%s", mp_db_get(res, 0, 0));
    mp_db_res_free(res);
    if (st == MP_OK)
        st = mp_db_exec(NULL, db, "INSERT INTO auth.refresh_tokens (token_hash, session_id) VALUES ($1, $2)", 2,
                        MP_DB_PARAMS(refresh_hash, sid));
    return st;
}

mp_status_t auth_login(mp_svc_req_t *req)
{
    mp_input_t in;
    char email[256], email_hash[65], refresh[44], refresh_hash[65], sid[37], user_id[37] = "", roles[256] = "";
    mp_input_init(&in, req->input);
    const char *raw_email = mp_input_str(&in, "email", MP_IN_REQUIRED, 1, 320);
    const char *password = mp_input_str(&in, "password", MP_IN_REQUIRED, 1, 1024);
    mp_input_only(&in, MP_INPUT_FIELDS("email", "password"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (!auth_email_normalize(email, sizeof(email), raw_email))
        snprintf(email, sizeof(email), "%s", "invalid"); /* same path, same cost: it simply never matches */
    sha256_hex(email_hash, email);

    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL;
    long retry_after = 0;
    bool ok = false;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(req->svc), 2000);
    if (st != MP_OK)
        return st;
    if ((st = mp_db_begin(db)) != MP_OK)
        goto done;
    st = mp_db_exec(NULL, db, "SELECT pg_advisory_xact_lock(hashtext('auth.login.' || $1))", 1,
                    MP_DB_PARAMS(email_hash));
    if (st == MP_OK)
        st = lockout_remaining(db, email_hash, &retry_after);
    if (st != MP_OK || retry_after > 0)
        goto done;
    st = mp_db_exec(&res, db, "SELECT id, password_hash, roles FROM auth.users WHERE email = $1", 1,
                    MP_DB_PARAMS(email));
    if (st != MP_OK)
        goto done;
    if (mp_db_rows(res) == 1) {
        ok = auth_password_verify(password, mp_db_get(res, 0, 1));
        snprintf(user_id, sizeof(user_id), "%s", mp_db_get(res, 0, 0));
        snprintf(roles, sizeof(roles), "%s", mp_db_get(res, 0, 2));
    } else {
        auth_password_verify(password, auth_cfg.dummy_hash);
    }
    if (!ok) {
        st = mp_db_exec(NULL, db, "INSERT INTO auth.login_failures (email_hash) VALUES ($1)", 1,
                        MP_DB_PARAMS(email_hash));
    } else {
        st = mp_db_exec(NULL, db, "DELETE FROM auth.login_failures WHERE email_hash = $1", 1, MP_DB_PARAMS(email_hash));
        if (st == MP_OK)
            st = new_refresh_token(refresh, refresh_hash);
        if (st == MP_OK)
            st = start_session(db, sid, user_id, refresh_hash);
    }
    if (st == MP_OK)
        st = mp_db_commit(db);
done:
    mp_db_res_free(res);
    mp_db_release(db); /* rolls back anything left open */
    if (st != MP_OK)
        return st;
    if (retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%ld", retry_after);
        mp_svc_reply_header(req, "Retry-After", ra);
        return mp_svc_reply_problem(req, 429, "too many failed logins for this account; try again later", NULL);
    }
    if (!ok)
        return mp_svc_reply_problem(req, 401, "wrong e-mail address or password", NULL);
    mp_log_kv(MP_LOG_INFO, &req->log, "login", "user_id", user_id, "session_id", sid, NULL);
    return reply_tokens(req, user_id, sid, roles, refresh);
}

/* ---- refresh and logout ---------------------------------------------------------------- */

static mp_status_t revoke_session(mp_db_conn_t *db, const char *sid, const char *reason)
{
    return mp_db_exec(NULL, db,
                      "UPDATE auth.sessions SET revoked_at = now(), revoke_reason = $2 "
                      "WHERE id = $1 AND revoked_at IS NULL",
                      2, MP_DB_PARAMS(sid, reason));
}

mp_status_t auth_refresh(mp_svc_req_t *req)
{
    mp_input_t in;
    char hash[65], next[44], next_hash[65], sid[37] = "", user_id[37] = "", roles[256] = "";
    mp_input_init(&in, req->input);
    const char *token = mp_input_str(&in, "refresh_token", MP_IN_REQUIRED, 1, 256);
    mp_input_only(&in, MP_INPUT_FIELDS("refresh_token"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    sha256_hex(hash, token);

    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL;
    const char *why = NULL;
    bool reuse = false;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(req->svc), 2000);
    if (st != MP_OK)
        return st;
    if ((st = mp_db_begin(db)) != MP_OK)
        goto done;
    st = mp_db_exec(&res, db,
                    "SELECT rt.session_id, rt.used_at IS NOT NULL, s.revoked_at IS NOT NULL OR s.expires_at < now(), "
                    "s.user_id, u.roles FROM auth.refresh_tokens rt "
                    "JOIN auth.sessions s ON s.id = rt.session_id JOIN auth.users u ON u.id = s.user_id "
                    "WHERE rt.token_hash = $1 FOR UPDATE OF rt, s",
                    1, MP_DB_PARAMS(hash));
    if (st != MP_OK)
        goto done;
    if (mp_db_rows(res) != 1) {
        why = "unknown refresh token";
        goto done;
    }
    snprintf(sid, sizeof(sid), "%s", mp_db_get(res, 0, 0));
    snprintf(user_id, sizeof(user_id), "%s", mp_db_get(res, 0, 3));
    snprintf(roles, sizeof(roles), "%s", mp_db_get(res, 0, 4));
    if (strcmp(mp_db_get(res, 0, 2), "t") == 0) {
        why = "the session has ended";
    } else if (strcmp(mp_db_get(res, 0, 1), "t") == 0) {
        why = "this refresh token was already used: the session is revoked";
        reuse = true;
        if ((st = revoke_session(db, sid, "refresh token reuse")) == MP_OK)
            st = mp_db_commit(db);
    } else {
        st = mp_db_exec(NULL, db, "UPDATE auth.refresh_tokens SET used_at = now() WHERE token_hash = $1", 1,
                        MP_DB_PARAMS(hash));
        if (st == MP_OK)
            st = new_refresh_token(next, next_hash);
        if (st == MP_OK)
            st = mp_db_exec(NULL, db, "INSERT INTO auth.refresh_tokens (token_hash, session_id) VALUES ($1, $2)", 2,
                            MP_DB_PARAMS(next_hash, sid));
        if (st == MP_OK)
            st = mp_db_exec(NULL, db, "UPDATE auth.sessions SET last_used_at = now() WHERE id = $1", 1,
                            MP_DB_PARAMS(sid));
        if (st == MP_OK)
            st = mp_db_commit(db);
    }
done:
    mp_db_res_free(res);
    mp_db_release(db);
    if (st != MP_OK)
        return st;
    if (reuse) {
        mp_log_kv(MP_LOG_WARN, &req->log, "refresh token reuse; session revoked", "session_id", sid, "user_id", user_id,
                  NULL);
        auth_broadcast_revoked(mp_svc_bus(req->svc), sid, user_id);
    }
    if (why)
        return mp_svc_reply_problem(req, 401, why, NULL);
    return reply_tokens(req, user_id, sid, roles, next);
}

mp_status_t auth_logout(mp_svc_req_t *req)
{
    mp_input_t in;
    char hash[65], sid[37] = "", user_id[37] = "";
    mp_input_init(&in, req->input);
    const char *token = mp_input_str(&in, "refresh_token", MP_IN_REQUIRED, 1, 256);
    mp_input_only(&in, MP_INPUT_FIELDS("refresh_token"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    sha256_hex(hash, token);

    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc),
                                     "UPDATE auth.sessions s SET revoked_at = now(), revoke_reason = 'logout' "
                                     "FROM auth.refresh_tokens rt WHERE rt.token_hash = $1 AND s.id = rt.session_id "
                                     "AND s.revoked_at IS NULL RETURNING s.id, s.user_id",
                                     1, MP_DB_PARAMS(hash));
    if (st == MP_OK && mp_db_rows(res) == 1) {
        snprintf(sid, sizeof(sid), "%s", mp_db_get(res, 0, 0));
        snprintf(user_id, sizeof(user_id), "%s", mp_db_get(res, 0, 1));
    }
    mp_db_res_free(res);
    if (st != MP_OK)
        return st;
    if (sid[0])
        auth_broadcast_revoked(mp_svc_bus(req->svc), sid, user_id);
    /* unknown or already-ended sessions also get 204: logout is idempotent and reveals nothing */
    return mp_svc_reply_json(req, 204, NULL);
}
