/*
 * password.c: scrypt password hashes (see password.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "mp/alloc.h"
#include "mp/b64url.h"
#include "password.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define MAX_MEM (256ULL * 1024 * 1024)

static bool derive(unsigned char *out, const char *password, const unsigned char *salt, size_t salt_len,
                   auth_scrypt_t p)
{
    return EVP_PBE_scrypt(password, strlen(password), salt, salt_len, 1ULL << p.log_n, (uint64_t)p.r, (uint64_t)p.p,
                          MAX_MEM, out, HASH_LEN) == 1;
}

mp_status_t auth_password_hash(char **out, const char *password, auth_scrypt_t params)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    char salt64[32], hash64[48];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return mp_err_set(MP_EINTERNAL, "no randomness for a salt");
    if (!derive(hash, password, salt, sizeof(salt), params))
        return mp_err_set(MP_EINTERNAL, "scrypt failed");
    mp_b64url_encode(salt64, salt, sizeof(salt));
    mp_b64url_encode(hash64, hash, sizeof(hash));
    *out = mp_xasprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", params.log_n, params.r, params.p, salt64, hash64);
    OPENSSL_cleanse(hash, sizeof(hash));
    return MP_OK;
}

bool auth_password_verify(const char *password, const char *stored)
{
    auth_scrypt_t p;
    char salt64[64], hash64[64];
    unsigned char salt[64], want[64], got[HASH_LEN];
    int n = 0;
    if (stored == NULL ||
        sscanf(stored, "$scrypt$ln=%d,r=%d,p=%d$%63[^$]$%63s%n", &p.log_n, &p.r, &p.p, salt64, hash64, &n) != 5 ||
        stored[n] != '\0')
        return false;
    /* refuse parameters that would let a tampered row burn CPU or memory */
    if (p.log_n < 10 || p.log_n > 20 || p.r < 1 || p.r > 32 || p.p < 1 || p.p > 16)
        return false;
    long salt_len = mp_b64url_decode(salt, salt64, strlen(salt64));
    long want_len = mp_b64url_decode(want, hash64, strlen(hash64));
    if (salt_len < 8 || want_len != HASH_LEN || !derive(got, password, salt, (size_t)salt_len, p))
        return false;
    bool ok = CRYPTO_memcmp(got, want, HASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}
