/*
 * password.h: password hashing for Auth with OpenSSL's scrypt, stored in a
 * PHC-style string that carries its own parameters:
 *     $scrypt$ln=14,r=8,p=5$<salt, base64url>$<hash, base64url>
 * so the cost can be raised later without invalidating stored hashes.
 * The default is one of OWASP's scrypt settings (N=2^14, r=8, p=5, 16 MiB).
 * Any thread (each call allocates its own scrypt memory).
 */
#ifndef MP_AUTH_PASSWORD_H
#define MP_AUTH_PASSWORD_H

#include <stdbool.h>
#include "mp/status.h"

typedef struct auth_scrypt {
    int log_n; /* N = 2^log_n */
    int r, p;
} auth_scrypt_t;

#define AUTH_SCRYPT_OWASP ((auth_scrypt_t){14, 8, 5})

/** Hashes `password` with a fresh 16-byte salt. Caller owns `*out`; free with free(). */
mp_status_t auth_password_hash(char **out, const char *password, auth_scrypt_t params);

/** True when `password` matches `stored`. Compares in constant time; a malformed or absurd-cost `stored` is false. */
bool auth_password_verify(const char *password, const char *stored);

#endif
