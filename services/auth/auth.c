/*
 * auth.c: the Auth service: settings, start-up (signing keys, the dummy
 * password hash), registration and the JWKS.
 *
 * Auth owns credentials, roles and sessions; the gateway verifies the
 * access tokens Auth signs with only the public keys from auth.v1.jwks.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/json.h"
#include "mp/reqctx.h"
#include "auth_int.h"
#include "signing.h"

auth_settings_t auth_cfg;

bool auth_email_normalize(char *out, size_t size, const char *in)
{
    while (*in && isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && isspace((unsigned char)in[n - 1]))
        n--;
    if (n < 3 || n > 254 || n >= size)
        return false;
    int ats = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '<' || c == '>' || c == ',' || c == ';')
            return false;
        ats += c == '@';
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    const char *at = strchr(out, '@');
    return ats == 1 && at != out && at[1] != '\0' && strchr(at, '.') != NULL && at[strlen(at) - 1] != '.';
}

void auth_password_rules(mp_input_t *in, const char *key, const char *password, const char *email)
{
    if (password == NULL)
        return;
    if (mp_utf8_len(password) < 10)
        mp_input_fail(in, key, "must be at least 10 characters long");
    else if (email && strcasecmp(password, email) == 0)
        mp_input_fail(in, key, "must not be the e-mail address");
    else if (strlen(password) > 1024)
        mp_input_fail(in, key, "must be at most 1024 bytes long");
}

mp_status_t auth_user_insert(mp_db_conn_t *db, char id[37], const char *email, const char *password,
                             const char *display_name, const char *roles)
{
    char *hash = NULL;
    mp_db_res_t *res = NULL;
    mp_status_t st = auth_password_hash(&hash, password, auth_cfg.scrypt);
    if (st != MP_OK)
        return st;
    st =
        mp_db_exec(&res, db,
                   "INSERT INTO auth.users (email, password_hash, display_name, roles) VALUES ($1, $2, $3, $4::text[]) "
                   "RETURNING id",
                   4, MP_DB_PARAMS(email, hash, display_name, roles));
    free(hash);
    if (st == MP_OK)
        snprintf(id, 37, "%s", mp_db_get(res, 0, 0));
    mp_db_res_free(res);
    return st;
}

mp_status_t auth_provision_profile(mp_bus_t *bus, const mp_bus_ctx_t *ctx, const char *id, const char *email,
                                   const char *display_name)
{
    json_t *in = json_pack("{s:s, s:s, s:s}", "user_id", id, "email", email, "display_name", display_name);
    char *body = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    mp_bus_call_t call = {.subject = "user.v1.provision",
                          .body = body,
                          .len = strlen(body),
                          .ctx = ctx ? *ctx : (mp_bus_ctx_t){0},
                          .timeout_ms = AUTH_PROVISION_TIMEOUT_MS};
    mp_msg_t *reply = NULL;
    mp_status_t st = mp_bus_request(&reply, bus, &call);
    free(body);
    if (st != MP_OK)
        return mp_err_set(MP_EUNAVAIL, "provisioning the profile of %s failed: %s", id, mp_err_get());
    int status = mp_msg_status(reply);
    mp_msg_destroy(reply);
    if (status != 200)
        return mp_err_set(MP_EUNAVAIL, "provisioning the profile of %s failed: user.v1.provision answered %d", id,
                          status);
    return MP_OK;
}

static mp_status_t auth_register(mp_svc_req_t *req)
{
    mp_input_t in;
    char email[256], id[37];
    mp_input_init(&in, req->input);
    const char *raw_email = mp_input_str(&in, "email", MP_IN_REQUIRED, 3, 254);
    const char *password = mp_input_str(&in, "password", MP_IN_REQUIRED, 1, 1024);
    const char *name = mp_input_str(&in, "display_name", MP_IN_REQUIRED, 1, 80);
    mp_input_only(&in, MP_INPUT_FIELDS("email", "password", "display_name"));
    if (raw_email && !auth_email_normalize(email, sizeof(email), raw_email)) {
        mp_input_fail(&in, "email", "is not a valid e-mail address");
        raw_email = NULL;
    }
    auth_password_rules(&in, "password", password, raw_email ? email : NULL);
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);

    /* the account and its profile appear together: the profile is provisioned while the account's insert is still
     * uncommitted, and a failed provisioning rolls the account back (503), so no account ever lacks a profile */
    mp_db_conn_t *db = NULL;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(req->svc), 2000);
    if (st != MP_OK)
        return st;
    if ((st = mp_db_begin(db)) == MP_OK)
        st = auth_user_insert(db, id, email, password, name, "{user}");
    if (st == MP_OK)
        st = auth_provision_profile(mp_svc_bus(req->svc), &req->ctx, id, email, name);
    if (st == MP_OK)
        st = mp_db_commit(db);
    mp_db_release(db); /* rolls back anything left open */
    if (st == MP_ECONFLICT)
        return mp_svc_reply_problem(req, 409, "an account with this e-mail address already exists", NULL);
    if (st != MP_OK)
        return st;
    mp_log_kv(MP_LOG_INFO, &req->log, "account registered", "user_id", id, NULL);
    return mp_svc_reply_json(req, 201, json_pack("{s:s, s:s}", "user_id", id, "email", email));
}

static mp_status_t auth_jwks(mp_svc_req_t *req)
{
    mp_svc_reply_header(req, "Cache-Control", "public, max-age=300");
    return mp_svc_reply_json(req, 200, auth_signing_jwks());
}

/* ---- the service ------------------------------------------------------------------ */

static void auth_configure(mp_svc_t *svc, mp_cfg_t *cfg)
{
    static const char *const algs[] = {"RS256", "ES256", NULL};
    auth_cfg.issuer = mp_cfg_str(cfg, "jwt.issuer", "moonport");
    auth_cfg.audience = mp_cfg_str(cfg, "jwt.audience", "moonport-api");
    auth_cfg.access_ttl_s = mp_cfg_duration_ms(cfg, "auth.access_ttl", 15 * 60000, 10000, 86400000) / 1000;
    auth_cfg.refresh_ttl_s =
        mp_cfg_duration_ms(cfg, "auth.refresh_ttl", 30LL * 86400000, 60000, 365LL * 86400000) / 1000;
    auth_cfg.keys_dir = mp_cfg_str(cfg, "auth.keys_dir", ".run/keys");
    auth_cfg.generate_key = mp_cfg_bool(cfg, "auth.generate_key", true);
    auth_cfg.key_alg = mp_cfg_enum(cfg, "auth.key_alg", "RS256", algs) == 0 ? MP_JWT_RS256 : MP_JWT_ES256;
    auth_cfg.scrypt.log_n = (int)mp_cfg_int(cfg, "auth.scrypt.log_n", AUTH_SCRYPT_OWASP.log_n, 10, 20);
    auth_cfg.scrypt.r = (int)mp_cfg_int(cfg, "auth.scrypt.r", AUTH_SCRYPT_OWASP.r, 1, 32);
    auth_cfg.scrypt.p = (int)mp_cfg_int(cfg, "auth.scrypt.p", AUTH_SCRYPT_OWASP.p, 1, 16);
    auth_cfg.lockout_max = (int)mp_cfg_int(cfg, "auth.lockout.max_failures", 5, 1, 1000);
    auth_cfg.lockout_window_s = mp_cfg_duration_ms(cfg, "auth.lockout.window", 15 * 60000, 1000, 86400000) / 1000;
}

static mp_status_t auth_init(mp_svc_t *svc)
{
    mp_status_t st = auth_signing_init(auth_cfg.keys_dir, auth_cfg.generate_key, (mp_jwt_alg_t)auth_cfg.key_alg);
    if (st != MP_OK)
        return st;
    /* a real hash of a random password: unknown e-mails cost one scrypt too */
    char pw[33];
    mp_rand_hex(pw, 16);
    return auth_password_hash(&auth_cfg.dummy_hash, pw, auth_cfg.scrypt);
}

static void auth_fini(mp_svc_t *svc)
{
    auth_signing_fini();
    free(auth_cfg.dummy_hash);
    auth_cfg.dummy_hash = NULL;
}

static void auth_reload(mp_svc_t *svc)
{
    if (auth_signing_reload(false) != MP_OK)
        mp_log_kv(MP_LOG_ERROR, NULL, "signing key reload failed; the loaded keys stay", "error", mp_err_get(), NULL);
}

static const mp_endpoint_t auth_endpoints[] = {
    {"register", auth_register},
    {"login", auth_login},
    {"refresh", auth_refresh},
    {"logout", auth_logout},
    {"jwks", auth_jwks},
    {"sessions", auth_sessions},
    {"session_revoke", auth_session_revoke},
    {"revocations", auth_revocations},
    {NULL},
};

static const mp_command_t auth_commands[] = {
    {"user create", "--email E [--role admin] [--name N]: create an account (password on stdin)", auth_cmd_user_create},
    {"auth rotate-key", "[--dir D]: add a new signing key; new tokens use it, old ones stay valid",
     auth_cmd_rotate_key},
    {NULL},
};

MP_SERVICE(auth, .endpoints = auth_endpoints, .needs = MP_NEEDS_DB, .configure = auth_configure, .init = auth_init,
           .fini = auth_fini, .reload = auth_reload, .commands = auth_commands);
