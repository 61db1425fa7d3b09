/*
 * signing.h: Auth's signing keys, kept as PEM files `<kid>.pem` in one
 * directory (a mounted Secret in Kubernetes, .run/keys locally). The newest
 * kid (kids are UTC timestamps, so the name orders them) signs new tokens;
 * every key in the directory is published in the JWKS, so tokens signed
 * with a previous key stay valid until they expire.
 *
 * `moonport auth rotate-key` writes a new file; running Auth instances notice
 * within two seconds (they re-scan the directory when its mtime changes) or at
 * once on SIGHUP.
 *
 * Thread-safe: the key set is swapped under a mutex; signers are reference
 * held by the set until the next swap completes.
 */
#ifndef MP_AUTH_SIGNING_H
#define MP_AUTH_SIGNING_H

#include <jansson.h>
#include "mp/jwt.h"
#include "mp/status.h"

/** Loads the directory (creating a first key when it is empty and `generate` is true). Errors: MP_EIO, MP_EINVAL
 *  (a file that is not a usable key, named with file name). */
mp_status_t auth_signing_init(const char *dir, bool generate, mp_jwt_alg_t alg);
/** Frees the keys. */
void auth_signing_fini(void);
/** Re-scans the directory now (SIGHUP), or when `if_changed` only when its mtime moved and 2 s passed. */
mp_status_t auth_signing_reload(bool if_changed);
/** Signs `claims` (borrowed) with the newest key. Caller owns `*token`. */
mp_status_t auth_signing_sign(char **token, json_t *claims);
/** The JWKS document {"keys": [...]} for every key. New reference. */
json_t *auth_signing_jwks(void);
/** Writes a new key file to `dir` and returns its kid (caller frees). */
mp_status_t auth_signing_rotate(char **kid, const char *dir, mp_jwt_alg_t alg);

#endif
