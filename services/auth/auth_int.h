/*
 * auth_int.h: what the Auth service's files share: its settings and the
 * pieces of token handling used by both the NATS handlers and the CLI.
 *
 * Files: auth.c (the service, register, jwks), login.c (login, refresh,
 * logout, token issue), sessions.c (listing and revoking sessions, the
 * revocation feed), cli.c (`moonport user create`, `moonport auth
 * rotate-key`), password.c, signing.c.
 */
#ifndef MP_AUTH_INT_H
#define MP_AUTH_INT_H

#include <stdbool.h>
#include "mp/input.h"
#include "mp/service.h"
#include "password.h"

typedef struct auth_settings {
    const char *issuer, *audience;
    int64_t access_ttl_s, refresh_ttl_s;
    const char *keys_dir;
    bool generate_key;
    int key_alg; /* mp_jwt_alg_t */
    auth_scrypt_t scrypt;
    int lockout_max;
    int64_t lockout_window_s;
    char *dummy_hash; /* verified against for unknown e-mails, so both paths cost the same */
} auth_settings_t;

extern auth_settings_t auth_cfg;

/* SQL fragment: a timestamptz column as RFC 3339 UTC text */
#define AUTH_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/** Trims and lower-cases an e-mail address into `out`; false when it is not a plausible address. */
bool auth_email_normalize(char *out, size_t size, const char *in);
/** Checks the password rules (at least 10 characters, not the e-mail); records errors on `in` under `key`. */
void auth_password_rules(mp_input_t *in, const char *key, const char *password, const char *email);
/** Inserts a user. Errors: MP_ECONFLICT (e-mail taken). `id` receives the new id (37 bytes). */
mp_status_t auth_user_insert(mp_db_conn_t *db, char id[37], const char *email, const char *password,
                             const char *display_name, const char *roles_pg_array);
#define AUTH_PROVISION_TIMEOUT_MS 2000

/** Asks the User service to create the profile of account `id` (user.v1.provision, idempotent), waiting up to
 *  AUTH_PROVISION_TIMEOUT_MS. `ctx` (may be NULL) is the caller's context to pass on. Blocking: worker threads and
 *  the CLI only. Errors: MP_EUNAVAIL (no answer, or an answer other than 200), with the detail in mp_err_get(). */
mp_status_t auth_provision_profile(mp_bus_t *bus, const mp_bus_ctx_t *ctx, const char *id, const char *email,
                                   const char *display_name);
/** Publishes that a session was revoked, so every gateway refuses its access tokens. */
void auth_broadcast_revoked(mp_bus_t *bus, const char *session_id, const char *user_id);

mp_status_t auth_login(mp_svc_req_t *req);
mp_status_t auth_refresh(mp_svc_req_t *req);
mp_status_t auth_logout(mp_svc_req_t *req);
mp_status_t auth_sessions(mp_svc_req_t *req);
mp_status_t auth_session_revoke(mp_svc_req_t *req);
mp_status_t auth_revocations(mp_svc_req_t *req);

int auth_cmd_user_create(mp_svc_t *svc, int argc, char **argv);
int auth_cmd_rotate_key(mp_svc_t *svc, int argc, char **argv);

#endif
