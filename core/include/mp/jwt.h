/*
 * mp/jwt.h: JSON Web Tokens signed with asymmetric keys (RS256, ES256), and
 * JSON Web Key Sets, on OpenSSL.
 *
 * Verification pins the algorithm to the key: the key found by the token's
 * `kid` has exactly one algorithm, and a token whose header names another
 * (`none`, HS256, an RS/ES mix-up) is refused before any signature check.
 * Keys are parsed once, when the set is built, never per token.
 *
 * A key set is immutable and reference counted, so the gateway can swap a
 * fresh JWKS in while other threads still verify with the old one.
 * Thread-safe: signers and key sets may be shared by all threads.
 */
#ifndef MP_JWT_H
#define MP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "mp/b64url.h" /* mp_b64url_encode/decode, used for JWS segments */
#include "mp/status.h"

typedef enum { MP_JWT_RS256 = 1, MP_JWT_ES256 = 2 } mp_jwt_alg_t;

typedef struct mp_jwks mp_jwks_t;             /* a set of public keys by kid */
typedef struct mp_jwt_signer mp_jwt_signer_t; /* one private key with its kid */

#define MP_JWT_MAX_ROLES 8

/** The verified claims the gateway uses. Strings are NUL-terminated copies; over-long claims fail verification. */
typedef struct mp_jwt_claims {
    char sub[128];
    char sid[128];
    char jti[128];
    char kid[128];
    char roles[MP_JWT_MAX_ROLES][32];
    size_t nroles;
    int64_t exp, iat, nbf; /* unix seconds; nbf 0 when absent */
} mp_jwt_claims_t;

typedef struct mp_jwt_verify_opts {
    const char *issuer;   /* required `iss` value; NULL skips the check */
    const char *audience; /* required `aud` value (string, or one of an array); NULL skips the check */
    int64_t now;          /* unix seconds; 0 means time(NULL) */
    int leeway_s;         /* allowed clock skew for exp/nbf/iat, at most 60 */
} mp_jwt_verify_opts_t;

/**
 * Verifies a compact JWS `token` (`len` bytes, not necessarily NUL-terminated) against `keys` and fills `*out`.
 * Requires a header with `alg` equal to the key's algorithm and a `kid` present in `keys`; claims `sub`, `exp` and
 * `iat`, and `roles` as an array of strings when present. Checks `exp`/`nbf`/`iat` with the leeway, then `iss`, `aud`.
 * Errors: MP_ENOTFOUND when the token is well-formed but its `kid` is not in `keys` (the caller may refresh the set
 * and retry; `out->kid` is filled); MP_EUNAUTH for anything else (detail in mp_err_get(), safe to log, never the
 * token). `*out` is written only on MP_OK (and its kid on MP_ENOTFOUND). Any thread.
 */
mp_status_t mp_jwt_verify(mp_jwt_claims_t *out, const mp_jwks_t *keys, const char *token, size_t len,
                          const mp_jwt_verify_opts_t *opts);

/**
 * Parses a JWKS document ({"keys": [...]}) holding RSA (`kty` RSA, `n`, `e`) and EC P-256 (`kty` EC, `crv` P-256,
 * `x`, `y`) keys with a `kid` each and an optional `alg` (must match the key type when present). Keys of other types
 * are skipped; a malformed key is an error (MP_EINVAL). Caller owns `*out`; release with mp_jwks_release().
 */
mp_status_t mp_jwks_parse(mp_jwks_t **out, const char *json, size_t len);
/** Adds a reference and returns `keys`. Any thread. */
mp_jwks_t *mp_jwks_retain(mp_jwks_t *keys);
/** Drops a reference; frees on the last. Accepts NULL. Any thread. */
void mp_jwks_release(mp_jwks_t *keys);
/** True when the set holds a key with this kid. */
bool mp_jwks_has(const mp_jwks_t *keys, const char *kid);
/** Number of keys in the set. */
size_t mp_jwks_count(const mp_jwks_t *keys);
/** True when both sets hold a key named `kid` with the same algorithm and public key (a token that one set verifies
 *  under that kid, the other verifies too). False when either is NULL or lacks the kid. */
bool mp_jwks_same_key(const mp_jwks_t *a, const mp_jwks_t *b, const char *kid);
/** True when both sets hold the same keys under the same kids (or are both NULL). */
bool mp_jwks_equal(const mp_jwks_t *a, const mp_jwks_t *b);

/**
 * The time checks of mp_jwt_verify() alone, on claims it returned: `exp` not passed and `nbf`/`iat` not in the future,
 * each with the leeway, at `opts->now` (0: time(NULL)). For callers that keep verified claims and must refuse them
 * exactly when a fresh verification would. Errors: MP_EUNAUTH with the same detail as mp_jwt_verify(). Any thread.
 */
mp_status_t mp_jwt_check_times(const mp_jwt_claims_t *c, const mp_jwt_verify_opts_t *opts);

/**
 * Loads a private key (PEM, PKCS#8 or traditional; RSA of at least 2048 bits gives RS256, EC P-256 gives ES256)
 * as a signer named `kid`. Caller owns `*out`; free with mp_jwt_signer_destroy(). Errors: MP_EINVAL.
 */
mp_status_t mp_jwt_signer_create(mp_jwt_signer_t **out, const char *kid, const char *pem, size_t pem_len);
/** Frees a signer. Accepts NULL. */
void mp_jwt_signer_destroy(mp_jwt_signer_t *s);
/** The signer's kid. Borrowed; valid until the signer is destroyed. */
const char *mp_jwt_signer_kid(const mp_jwt_signer_t *s);
/** The signer's algorithm. */
mp_jwt_alg_t mp_jwt_signer_alg(const mp_jwt_signer_t *s);

/**
 * Signs `claims` (a JSON object; borrowed reference) with header {"alg", "typ": "JWT", "kid"} and returns the compact
 * token. Caller owns `*token`; free with free(). Any thread.
 */
mp_status_t mp_jwt_sign(char **token, const mp_jwt_signer_t *s, json_t *claims);

/** Returns the signer's public key as a JWK object (kty, kid, alg, use "sig", and n/e or crv/x/y). New reference. */
mp_status_t mp_jwt_signer_public_jwk(json_t **jwk, const mp_jwt_signer_t *s);

/** Generates a new private key for `alg` (RSA 2048 for RS256, P-256 for ES256) as PKCS#8 PEM. Caller owns `*pem`;
 *  free with free(). */
mp_status_t mp_jwt_keygen(char **pem, mp_jwt_alg_t alg);

#endif
