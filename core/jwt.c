/*
 * jwt.c: compact JWS tokens (RS256, ES256), JSON Web Key Sets and signers on
 * OpenSSL 3 EVP, with JSON through jansson (see mp/jwt.h).
 *
 * mp_jwt_verify() treats the token as hostile: it is bounded to 8 KiB, every
 * segment is decoded strictly, the header's `alg` must name the algorithm of
 * the key found by `kid` before any signature is checked, and the claims are
 * copied into a local struct that reaches the caller only on success.
 *
 * Invariants: a key set is immutable once mp_jwks_parse() returns, so the only
 * shared mutable word is its atomic reference count; signers never change
 * after creation. No static mutable state, so every function is thread-safe.
 * OpenSSL errors are cleared on every failure so they never leak into the
 * next caller's error queue on this thread.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include "mp/alloc.h"
#include "mp/b64url.h"
#include "mp/jwt.h"

#define JWT_MAX_TOKEN 8192    /* longer tokens are refused unread (and never minted) */
#define JWT_MAX_LEEWAY 60     /* more clock skew than this hides real expiry */
#define JWT_KID_MAX 128       /* sizeof(mp_jwt_claims_t.kid) */
#define JWT_RSA_MIN_BITS 2048 /* below this RSA is breakable */
#define JWT_RSA_MAX_BITS 8192 /* above this one verify costs enough to be a DoS lever */
#define JWT_EC_COORD 32       /* P-256 coordinate and scalar size */

/* One verification (or signing) key. A signer is the same thing holding a private key. */
typedef struct jwt_key {
    char kid[JWT_KID_MAX];
    mp_jwt_alg_t alg;
    EVP_PKEY *pkey;
} jwt_key_t;

struct mp_jwks {
    atomic_int refs;
    size_t n;
    jwt_key_t keys[];
};

struct mp_jwt_signer {
    jwt_key_t key;
};

typedef struct jwt_parts {
    const char *seg[3]; /* header, payload, signature (base64url) */
    size_t len[3];
} jwt_parts_t;

static const char *alg_name(mp_jwt_alg_t alg)
{
    return alg == MP_JWT_ES256 ? "ES256" : "RS256";
}

/* ---- key sets ---------------------------------------------------------- */

static const jwt_key_t *find_key(const mp_jwks_t *keys, const char *kid)
{
    for (size_t i = 0; i < keys->n; i++)
        if (strcmp(keys->keys[i].kid, kid) == 0)
            return &keys->keys[i];
    return NULL;
}

static void jwks_free(mp_jwks_t *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->n; i++)
        EVP_PKEY_free(keys->keys[i].pkey);
    free(keys);
}

/* Decodes the base64url member `name` into a new buffer of at most `max` bytes. */
static mp_status_t b64_member(unsigned char **out, size_t *outlen, const json_t *jwk, const char *name, size_t max,
                              size_t idx)
{
    const json_t *v = json_object_get(jwk, name);
    size_t len = json_string_length(v);
    unsigned char *buf;
    long n;

    /* Bound the text before allocating so a huge member cannot make us allocate for it. */
    if (!json_is_string(v) || len == 0 || len > (max * 4 + 2) / 3)
        return mp_err_set(MP_EINVAL, "key %zu: missing or oversized %s", idx, name);
    buf = mp_xmalloc(3 * len / 4 + 3);
    if ((n = mp_b64url_decode(buf, json_string_value(v), len)) < 0) {
        free(buf);
        return mp_err_set(MP_EINVAL, "key %zu: %s is not base64url", idx, name);
    }
    *out = buf;
    *outlen = (size_t)n;
    return MP_OK;
}

static mp_status_t pkey_from_params(EVP_PKEY **out, const char *type, OSSL_PARAM_BLD *bld, size_t idx)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL), *check = NULL;
    EVP_PKEY *pkey = NULL;
    mp_status_t st = MP_OK;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        st = mp_err_set(MP_EINVAL, "key %zu: not a valid %s public key", idx, type);
        goto cleanup;
    }
    /* An EC point off the curve (or at infinity) would leak through invalid-curve tricks; RSA is checked by
     * the caller, as OpenSSL's RSA check runs a primality test too slow for a JWKS refresh. */
    if (strcmp(type, "EC") == 0 &&
        ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_public_check(check) != 1)) {
        st = mp_err_set(MP_EINVAL, "key %zu: EC point is not on P-256", idx);
        goto cleanup;
    }
    *out = pkey;
    pkey = NULL;
cleanup:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return st;
}

static mp_status_t rsa_from_jwk(EVP_PKEY **out, const json_t *jwk, size_t idx)
{
    unsigned char *nbin = NULL, *ebin = NULL;
    size_t nlen, elen;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    mp_status_t st;

    /* One spare byte for the leading zero some encoders keep from ASN.1. */
    if ((st = b64_member(&nbin, &nlen, jwk, "n", JWT_RSA_MAX_BITS / 8 + 1, idx)) != MP_OK ||
        (st = b64_member(&ebin, &elen, jwk, "e", 4, idx)) != MP_OK)
        goto cleanup;
    n = BN_bin2bn(nbin, (int)nlen, NULL);
    e = BN_bin2bn(ebin, (int)elen, NULL);
    if (n == NULL || e == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL) {
        st = mp_err_set(MP_EINTERNAL, "key %zu: out of memory", idx);
        goto cleanup;
    }
    if (BN_num_bits(n) < JWT_RSA_MIN_BITS || BN_num_bits(n) > JWT_RSA_MAX_BITS || !BN_is_odd(n)) {
        st = mp_err_set(MP_EINVAL, "key %zu: RSA modulus must be an odd %d to %d bits", idx, JWT_RSA_MIN_BITS,
                        JWT_RSA_MAX_BITS);
        goto cleanup;
    }
    if (!BN_is_odd(e) || BN_is_one(e)) {
        st = mp_err_set(MP_EINVAL, "key %zu: bad RSA exponent", idx);
        goto cleanup;
    }
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
        st = mp_err_set(MP_EINTERNAL, "key %zu: out of memory", idx);
        goto cleanup;
    }
    st = pkey_from_params(out, "RSA", bld, idx);
cleanup:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nbin);
    free(ebin);
    return st;
}

static mp_status_t ec_from_jwk(EVP_PKEY **out, const json_t *jwk, size_t idx)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char *x = NULL, *y = NULL, point[1 + 2 * JWT_EC_COORD];
    size_t xlen, ylen;
    OSSL_PARAM_BLD *bld = NULL;
    mp_status_t st;

    if (crv == NULL || strcmp(crv, "P-256") != 0) {
        st = mp_err_set(MP_EINVAL, "key %zu: EC key is not on P-256", idx);
        goto cleanup;
    }
    if ((st = b64_member(&x, &xlen, jwk, "x", JWT_EC_COORD, idx)) != MP_OK ||
        (st = b64_member(&y, &ylen, jwk, "y", JWT_EC_COORD, idx)) != MP_OK)
        goto cleanup;
    if (xlen != JWT_EC_COORD || ylen != JWT_EC_COORD) {
        st = mp_err_set(MP_EINVAL, "key %zu: EC coordinates must be %d bytes", idx, JWT_EC_COORD);
        goto cleanup;
    }
    /* SEC1 uncompressed point: 0x04 || x || y. */
    point[0] = 0x04;
    memcpy(point + 1, x, JWT_EC_COORD);
    memcpy(point + 1 + JWT_EC_COORD, y, JWT_EC_COORD);
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point))) {
        st = mp_err_set(MP_EINTERNAL, "key %zu: out of memory", idx);
        goto cleanup;
    }
    st = pkey_from_params(out, "EC", bld, idx);
cleanup:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return st;
}

/* Fills `k` from one JWK; leaves k->pkey NULL for keys that are not ours to use (other kty, `use` other than sig). */
static mp_status_t parse_jwk(jwt_key_t *k, const json_t *jwk, size_t idx)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg"), *kid;
    mp_jwt_alg_t want;
    mp_status_t st;

    if (!json_is_object(jwk) || kty == NULL)
        return mp_err_set(MP_EINVAL, "key %zu: not an object with a kty", idx);
    if (strcmp(kty, "RSA") == 0)
        want = MP_JWT_RS256;
    else if (strcmp(kty, "EC") == 0)
        want = MP_JWT_ES256;
    else
        return MP_OK; /* oct, OKP, ...: the set may serve other consumers */
    if (use != NULL && !json_is_string(use))
        return mp_err_set(MP_EINVAL, "key %zu: use is not a string", idx);
    if (use != NULL && strcmp(json_string_value(use), "sig") != 0)
        return MP_OK; /* an encryption key must never verify a signature */
    if (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), alg_name(want)) != 0))
        return mp_err_set(MP_EINVAL, "key %zu: alg does not match kty %s", idx, kty);
    kid = json_object_get(jwk, "kid");
    if (!json_is_string(kid) || json_string_length(kid) == 0 || json_string_length(kid) >= JWT_KID_MAX)
        return mp_err_set(MP_EINVAL, "key %zu: missing or oversized kid", idx);
    if ((st = want == MP_JWT_RS256 ? rsa_from_jwk(&k->pkey, jwk, idx) : ec_from_jwk(&k->pkey, jwk, idx)) != MP_OK)
        return st;
    memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
    k->alg = want;
    return MP_OK;
}

mp_status_t mp_jwks_parse(mp_jwks_t **out, const char *json, size_t len)
{
    json_error_t err;
    json_t *doc = NULL, *arr, *jwk;
    mp_jwks_t *set = NULL;
    size_t i;
    mp_status_t st = MP_OK;

    if (json == NULL || (doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err)) == NULL) {
        st = mp_err_set(MP_EINVAL, "JWKS is not JSON");
        goto cleanup;
    }
    arr = json_object_get(doc, "keys");
    if (!json_is_array(arr)) {
        st = mp_err_set(MP_EINVAL, "JWKS has no keys array");
        goto cleanup;
    }
    set = mp_xcalloc(1, sizeof(*set) + json_array_size(arr) * sizeof(set->keys[0]));
    atomic_init(&set->refs, 1);
    json_array_foreach(arr, i, jwk)
    {
        jwt_key_t *k = &set->keys[set->n];
        if ((st = parse_jwk(k, jwk, i)) != MP_OK)
            goto cleanup;
        if (k->pkey == NULL)
            continue;
        /* find_key() only sees the keys before this one, so a match is a duplicate. */
        if (find_key(set, k->kid) != NULL) {
            EVP_PKEY_free(k->pkey);
            st = mp_err_set(MP_EINVAL, "key %zu: duplicate kid", i);
            goto cleanup;
        }
        set->n++;
    }
    *out = set;
    set = NULL;
cleanup:
    jwks_free(set);
    json_decref(doc);
    if (st != MP_OK)
        ERR_clear_error();
    return st;
}

mp_jwks_t *mp_jwks_retain(mp_jwks_t *keys)
{
    atomic_fetch_add_explicit(&keys->refs, 1, memory_order_relaxed);
    return keys;
}

void mp_jwks_release(mp_jwks_t *keys)
{
    /* acq_rel: the last releaser must see every other thread's reads finished before it frees. */
    if (keys != NULL && atomic_fetch_sub_explicit(&keys->refs, 1, memory_order_acq_rel) == 1)
        jwks_free(keys);
}

bool mp_jwks_has(const mp_jwks_t *keys, const char *kid)
{
    return keys != NULL && kid != NULL && find_key(keys, kid) != NULL;
}

size_t mp_jwks_count(const mp_jwks_t *keys)
{
    return keys != NULL ? keys->n : 0;
}

bool mp_jwks_same_key(const mp_jwks_t *a, const mp_jwks_t *b, const char *kid)
{
    if (a == NULL || b == NULL || kid == NULL)
        return false;
    const jwt_key_t *ka = find_key(a, kid), *kb = find_key(b, kid);
    if (ka == NULL || kb == NULL)
        return false;
    return ka == kb || (ka->alg == kb->alg && EVP_PKEY_eq(ka->pkey, kb->pkey) == 1);
}

bool mp_jwks_equal(const mp_jwks_t *a, const mp_jwks_t *b)
{
    if (a == b)
        return true;
    if (a == NULL || b == NULL || a->n != b->n)
        return false;
    /* kids are unique within a set, so every kid of `a` found with the same key in `b` means the same set */
    for (size_t i = 0; i < a->n; i++)
        if (!mp_jwks_same_key(a, b, a->keys[i].kid))
            return false;
    return true;
}

/* ---- verification ------------------------------------------------------ */

/* Splits at exactly two dots; the header and payload must not be empty (the signature may, to fail later). */
static bool split_token(jwt_parts_t *p, const char *token, size_t len)
{
    size_t dots[2], ndots = 0;

    for (size_t i = 0; i < len; i++) {
        if (token[i] != '.')
            continue;
        if (ndots == 2)
            return false;
        dots[ndots++] = i;
    }
    if (ndots != 2)
        return false;
    p->seg[0] = token;
    p->len[0] = dots[0];
    p->seg[1] = token + dots[0] + 1;
    p->len[1] = dots[1] - dots[0] - 1;
    p->seg[2] = token + dots[1] + 1;
    p->len[2] = len - dots[1] - 1;
    return p->len[0] > 0 && p->len[1] > 0;
}

static mp_status_t load_segment(json_t **out, const char *seg, size_t len, const char *what)
{
    unsigned char *buf = mp_xmalloc(3 * len / 4 + 3);
    json_error_t err;
    json_t *obj = NULL;
    long n = mp_b64url_decode(buf, seg, len);
    mp_status_t st = MP_OK;

    /* Duplicate members are refused: two readers could otherwise disagree on which `alg` or `sub` counts.
     * Loaded before the test because json_is_object() is a macro that evaluates its argument twice. */
    if (n >= 0)
        obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(obj)) {
        st = mp_err_set(MP_EUNAUTH, "%s is not a base64url JSON object", what);
        goto cleanup;
    }
    *out = obj;
    obj = NULL;
cleanup:
    json_decref(obj);
    free(buf);
    return st;
}

static bool copy_string(char *dst, size_t cap, const json_t *v)
{
    /* jansson refuses \u0000 unless asked, so the length is also the C string length. */
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return false;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return true;
}

/* Reads `alg` and `kid`; refuses algorithms we never accept so they cannot trigger a JWKS refresh either. */
static mp_status_t read_header(mp_jwt_alg_t *alg, char *kid, const json_t *hdr)
{
    const char *name = json_string_value(json_object_get(hdr, "alg"));

    if (name == NULL)
        return mp_err_set(MP_EUNAUTH, "missing alg");
    if (strcmp(name, "RS256") == 0)
        *alg = MP_JWT_RS256;
    else if (strcmp(name, "ES256") == 0)
        *alg = MP_JWT_ES256;
    else
        return mp_err_set(MP_EUNAUTH, "unsupported alg");
    if (!copy_string(kid, JWT_KID_MAX, json_object_get(hdr, "kid")))
        return mp_err_set(MP_EUNAUTH, "missing or bad kid");
    /* RFC 7515 4.1.11: an extension we do not understand marked critical must fail; we understand none. */
    if (json_object_get(hdr, "crit") != NULL)
        return mp_err_set(MP_EUNAUTH, "unsupported crit header");
    return MP_OK;
}

/* JWS ES256 carries R || S (32 bytes each); OpenSSL wants an ASN.1 ECDSA-Sig-Value. */
static int es256_raw_to_der(unsigned char **der, const unsigned char *raw)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, JWT_EC_COORD, NULL), *s = BN_bin2bn(raw + JWT_EC_COORD, JWT_EC_COORD, NULL);
    int len = -1;

    if (sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig now */
        len = i2d_ECDSA_SIG(sig, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return len;
}

static mp_status_t verify_signature(const jwt_key_t *k, const char *input, size_t inlen, const char *sig64,
                                    size_t siglen64)
{
    unsigned char *sig = mp_xmalloc(3 * siglen64 / 4 + 3), *der = NULL;
    const unsigned char *check = sig;
    long n = mp_b64url_decode(sig, sig64, siglen64);
    int derlen;
    EVP_MD_CTX *md = NULL;
    mp_status_t st = MP_EUNAUTH;

    if (n < 0)
        goto cleanup;
    if (k->alg == MP_JWT_ES256) {
        /* Exactly 64 bytes: a DER or truncated signature is a different, malleable encoding. */
        if (n != 2 * JWT_EC_COORD || (derlen = es256_raw_to_der(&der, sig)) <= 0)
            goto cleanup;
        check = der;
        n = derlen;
    } else if (n != EVP_PKEY_get_size(k->pkey)) {
        goto cleanup;
    }
    if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, k->pkey, NULL) != 1)
        goto cleanup;
    if (EVP_DigestVerify(md, check, (size_t)n, (const unsigned char *)input, inlen) == 1)
        st = MP_OK;
cleanup:
    if (st != MP_OK)
        mp_err_set(st, "bad signature");
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    free(sig);
    return st;
}

static mp_status_t read_time(int64_t *out, const json_t *payload, const char *name, bool required)
{
    const json_t *v = json_object_get(payload, name);

    if (v == NULL && !required)
        return MP_OK;
    if (!json_is_integer(v))
        return mp_err_set(MP_EUNAUTH, "missing or non-integer %s claim", name);
    *out = json_integer_value(v);
    return MP_OK;
}

static mp_status_t read_roles(mp_jwt_claims_t *c, const json_t *roles)
{
    const json_t *v;
    size_t i;

    if (roles == NULL)
        return MP_OK;
    if (!json_is_array(roles) || json_array_size(roles) > MP_JWT_MAX_ROLES)
        return mp_err_set(MP_EUNAUTH, "roles is not an array of at most %d strings", MP_JWT_MAX_ROLES);
    json_array_foreach(roles, i, v)
    {
        if (!copy_string(c->roles[i], sizeof(c->roles[i]), v))
            return mp_err_set(MP_EUNAUTH, "role %zu is not a string shorter than %zu", i, sizeof(c->roles[i]));
    }
    c->nroles = json_array_size(roles);
    return MP_OK;
}

static mp_status_t read_claims(mp_jwt_claims_t *c, const json_t *p)
{
    const json_t *sid = json_object_get(p, "sid"), *jti = json_object_get(p, "jti");
    mp_status_t st;

    if (!copy_string(c->sub, sizeof(c->sub), json_object_get(p, "sub")))
        return mp_err_set(MP_EUNAUTH, "missing or bad sub claim");
    if (sid != NULL && !copy_string(c->sid, sizeof(c->sid), sid))
        return mp_err_set(MP_EUNAUTH, "bad sid claim");
    if (jti != NULL && !copy_string(c->jti, sizeof(c->jti), jti))
        return mp_err_set(MP_EUNAUTH, "bad jti claim");
    if ((st = read_time(&c->exp, p, "exp", true)) != MP_OK || (st = read_time(&c->iat, p, "iat", true)) != MP_OK ||
        (st = read_time(&c->nbf, p, "nbf", false)) != MP_OK)
        return st;
    return read_roles(c, json_object_get(p, "roles"));
}

mp_status_t mp_jwt_check_times(const mp_jwt_claims_t *c, const mp_jwt_verify_opts_t *opts)
{
    static const mp_jwt_verify_opts_t no_opts = {0};
    if (opts == NULL)
        opts = &no_opts;
    int64_t now = opts->now != 0 ? opts->now : (int64_t)time(NULL);
    int64_t leeway = opts->leeway_s < 0 ? 0 : opts->leeway_s > JWT_MAX_LEEWAY ? JWT_MAX_LEEWAY : opts->leeway_s;

    /* Written as now -/+ leeway, never exp + leeway: claims are attacker-chosen and could overflow. */
    if (now < 0 || now > INT64_MAX - JWT_MAX_LEEWAY)
        return mp_err_set(MP_EUNAUTH, "clock out of range");
    if (c->exp < now - leeway)
        return mp_err_set(MP_EUNAUTH, "token expired");
    if (c->nbf > now + leeway)
        return mp_err_set(MP_EUNAUTH, "token not yet valid");
    if (c->iat > now + leeway)
        return mp_err_set(MP_EUNAUTH, "token issued in the future");
    return MP_OK;
}

static bool has_audience(const json_t *aud, const char *want)
{
    const json_t *v;
    size_t i;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static mp_status_t check_iss_aud(const json_t *p, const mp_jwt_verify_opts_t *opts)
{
    const char *iss = json_string_value(json_object_get(p, "iss"));

    if (opts->issuer != NULL && (iss == NULL || strcmp(iss, opts->issuer) != 0))
        return mp_err_set(MP_EUNAUTH, "wrong issuer");
    if (opts->audience != NULL && !has_audience(json_object_get(p, "aud"), opts->audience))
        return mp_err_set(MP_EUNAUTH, "wrong audience");
    return MP_OK;
}

mp_status_t mp_jwt_verify(mp_jwt_claims_t *out, const mp_jwks_t *keys, const char *token, size_t len,
                          const mp_jwt_verify_opts_t *opts)
{
    static const mp_jwt_verify_opts_t no_opts = {0};
    json_t *hdr = NULL, *payload = NULL;
    const jwt_key_t *key;
    mp_jwt_alg_t alg = 0;
    jwt_parts_t parts;
    mp_jwt_claims_t c;
    mp_status_t st;

    assert(out != NULL && keys != NULL);
    memset(&c, 0, sizeof(c));
    if (opts == NULL)
        opts = &no_opts;
    if (token == NULL || len == 0 || len > JWT_MAX_TOKEN || !split_token(&parts, token, len)) {
        st = mp_err_set(MP_EUNAUTH, "malformed token");
        goto cleanup;
    }
    if ((st = load_segment(&hdr, parts.seg[0], parts.len[0], "header")) != MP_OK ||
        (st = read_header(&alg, c.kid, hdr)) != MP_OK ||
        (st = load_segment(&payload, parts.seg[1], parts.len[1], "payload")) != MP_OK)
        goto cleanup;
    if ((key = find_key(keys, c.kid)) == NULL) {
        /* The kid is attacker-chosen: hand it back in out->kid, never in the loggable detail. */
        memcpy(out->kid, c.kid, sizeof(out->kid));
        st = mp_err_set(MP_ENOTFOUND, "unknown kid");
        goto cleanup;
    }
    /* The key decides the algorithm; checked before the signature so `none`/HS256 never reach a verifier. */
    if (alg != key->alg) {
        st = mp_err_set(MP_EUNAUTH, "alg mismatch");
        goto cleanup;
    }
    if ((st = verify_signature(key, token, parts.len[0] + 1 + parts.len[1], parts.seg[2], parts.len[2])) != MP_OK ||
        (st = read_claims(&c, payload)) != MP_OK || (st = mp_jwt_check_times(&c, opts)) != MP_OK ||
        (st = check_iss_aud(payload, opts)) != MP_OK)
        goto cleanup;
    *out = c;
cleanup:
    json_decref(hdr);
    json_decref(payload);
    if (st != MP_OK)
        ERR_clear_error();
    return st;
}

/* ---- signing ----------------------------------------------------------- */

static mp_jwt_alg_t alg_of_pkey(const EVP_PKEY *pkey)
{
    char group[64];

    if (EVP_PKEY_is_a(pkey, "RSA"))
        return EVP_PKEY_get_bits(pkey) >= JWT_RSA_MIN_BITS ? MP_JWT_RS256 : 0;
    if (EVP_PKEY_is_a(pkey, "EC") && EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) == 1 &&
        strcmp(group, SN_X9_62_prime256v1) == 0)
        return MP_JWT_ES256;
    return 0;
}

/* Never prompt on a terminal for an encrypted key: a server has nobody to type the passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static bool kid_is_printable(const char *kid)
{
    size_t len = strlen(kid);

    if (len == 0 || len >= JWT_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (kid[i] < 0x21 || kid[i] > 0x7e)
            return false;
    return true;
}

mp_status_t mp_jwt_signer_create(mp_jwt_signer_t **out, const char *kid, const char *pem, size_t pem_len)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    mp_jwt_signer_t *s;
    mp_jwt_alg_t alg;
    mp_status_t st = MP_OK;

    if (kid == NULL || !kid_is_printable(kid)) {
        st = mp_err_set(MP_EINVAL, "kid must be 1 to %d printable ASCII characters", JWT_KID_MAX - 1);
        goto cleanup;
    }
    if (pem == NULL || pem_len > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)pem_len)) == NULL ||
        (pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
        st = mp_err_set(MP_EINVAL, "not an unencrypted PEM private key");
        goto cleanup;
    }
    if ((alg = alg_of_pkey(pkey)) == 0) {
        st = mp_err_set(MP_EINVAL, "key must be RSA of at least %d bits or EC P-256", JWT_RSA_MIN_BITS);
        goto cleanup;
    }
    s = mp_xcalloc(1, sizeof(*s));
    memcpy(s->key.kid, kid, strlen(kid) + 1);
    s->key.alg = alg;
    s->key.pkey = pkey;
    pkey = NULL;
    *out = s;
cleanup:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    if (st != MP_OK)
        ERR_clear_error();
    return st;
}

void mp_jwt_signer_destroy(mp_jwt_signer_t *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key.pkey);
    free(s);
}

const char *mp_jwt_signer_kid(const mp_jwt_signer_t *s)
{
    return s->key.kid;
}

mp_jwt_alg_t mp_jwt_signer_alg(const mp_jwt_signer_t *s)
{
    return s->key.alg;
}

/* Length of the unpadded base64url text for `n` bytes. */
static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

static size_t sig_len(const jwt_key_t *k)
{
    return k->alg == MP_JWT_ES256 ? 2 * JWT_EC_COORD : (size_t)EVP_PKEY_get_size(k->pkey);
}

/* Signs `in` into `out` (sig_len(k) bytes), converting ECDSA's DER to JWS R || S. */
static bool sign_input(unsigned char *out, const jwt_key_t *k, const char *in, size_t inlen)
{
    size_t derlen = (size_t)EVP_PKEY_get_size(k->pkey);
    unsigned char *der = mp_xmalloc(derlen);
    const unsigned char *p = der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG *sig = NULL;
    bool ok = false;

    if (md == NULL || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, k->pkey, NULL) != 1 ||
        EVP_DigestSign(md, der, &derlen, (const unsigned char *)in, inlen) != 1)
        goto cleanup;
    if (k->alg == MP_JWT_RS256) {
        if ((ok = derlen == sig_len(k)))
            memcpy(out, der, derlen);
    } else if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) != NULL) {
        ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, JWT_EC_COORD) == JWT_EC_COORD &&
             BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + JWT_EC_COORD, JWT_EC_COORD) == JWT_EC_COORD;
    }
cleanup:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    free(der);
    return ok;
}

mp_status_t mp_jwt_sign(char **token, const mp_jwt_signer_t *s, json_t *claims)
{
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", alg_name(s->key.alg), "typ", "JWT", "kid", s->key.kid);
    char *hjson = NULL, *pjson = json_is_object(claims) ? json_dumps(claims, JSON_COMPACT) : NULL, *buf = NULL, *p;
    unsigned char *sig = mp_xmalloc(sig_len(&s->key));
    size_t hlen, plen, total;
    mp_status_t st = MP_OK;

    if (hdr == NULL || (hjson = json_dumps(hdr, JSON_COMPACT)) == NULL || pjson == NULL) {
        st = mp_err_set(MP_EINVAL, "claims are not a JSON object");
        goto cleanup;
    }
    hlen = strlen(hjson);
    plen = strlen(pjson);
    /* Never mint what mp_jwt_verify() would refuse unread. */
    if (hlen > JWT_MAX_TOKEN || plen > JWT_MAX_TOKEN ||
        (total = b64url_len(hlen) + 1 + b64url_len(plen) + 1 + b64url_len(sig_len(&s->key))) > JWT_MAX_TOKEN) {
        st = mp_err_set(MP_EINVAL, "token would exceed %d bytes", JWT_MAX_TOKEN);
        goto cleanup;
    }
    p = buf = mp_xmalloc(total + 1);
    p += mp_b64url_encode(p, (const unsigned char *)hjson, hlen);
    *p++ = '.';
    p += mp_b64url_encode(p, (const unsigned char *)pjson, plen);
    if (!sign_input(sig, &s->key, buf, (size_t)(p - buf))) {
        st = mp_err_set(MP_EINTERNAL, "signing failed");
        goto cleanup;
    }
    *p++ = '.';
    mp_b64url_encode(p, sig, sig_len(&s->key));
    *token = buf;
    buf = NULL;
cleanup:
    if (st != MP_OK)
        ERR_clear_error();
    free(buf);
    free(sig);
    free(hjson);
    free(pjson);
    json_decref(hdr);
    return st;
}

/* Sets `name` to the big-endian bytes of `bn` (left-padded to `pad` when nonzero) as base64url. */
static void set_b64_bn(json_t *obj, const char *name, const BIGNUM *bn, int pad)
{
    int n = pad ? pad : BN_num_bytes(bn);
    unsigned char *bin = mp_xmalloc((size_t)n);
    char *txt = mp_xmalloc(b64url_len((size_t)n) + 1);

    BN_bn2binpad(bn, bin, n);
    json_object_set_new(obj, name, json_stringn(txt, mp_b64url_encode(txt, bin, (size_t)n)));
    free(txt);
    free(bin);
}

mp_status_t mp_jwt_signer_public_jwk(json_t **jwk, const mp_jwt_signer_t *s)
{
    const jwt_key_t *k = &s->key;
    bool rsa = k->alg == MP_JWT_RS256;
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s}", "kty", rsa ? "RSA" : "EC", "kid", k->kid, "alg", alg_name(k->alg),
                            "use", "sig");
    BIGNUM *a = NULL, *b = NULL;
    mp_status_t st = MP_OK;

    if (obj == NULL || !EVP_PKEY_get_bn_param(k->pkey, rsa ? OSSL_PKEY_PARAM_RSA_N : OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
        !EVP_PKEY_get_bn_param(k->pkey, rsa ? OSSL_PKEY_PARAM_RSA_E : OSSL_PKEY_PARAM_EC_PUB_Y, &b)) {
        st = mp_err_set(MP_EINTERNAL, "cannot export the public key");
        goto cleanup;
    }
    if (!rsa)
        json_object_set_new(obj, "crv", json_string("P-256"));
    /* RFC 7518: n and e are minimal big-endian; EC coordinates are always the full 32 bytes. */
    set_b64_bn(obj, rsa ? "n" : "x", a, rsa ? 0 : JWT_EC_COORD);
    set_b64_bn(obj, rsa ? "e" : "y", b, rsa ? 0 : JWT_EC_COORD);
    *jwk = obj;
    obj = NULL;
cleanup:
    if (st != MP_OK)
        ERR_clear_error();
    BN_free(a);
    BN_free(b);
    json_decref(obj);
    return st;
}

mp_status_t mp_jwt_keygen(char **pem, mp_jwt_alg_t alg)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *data = NULL;
    long n = 0;
    mp_status_t st = MP_OK;

    if (alg != MP_JWT_RS256 && alg != MP_JWT_ES256) {
        st = mp_err_set(MP_EINVAL, "unknown alg %d", (int)alg);
        goto cleanup;
    }
    pkey = alg == MP_JWT_RS256 ? EVP_RSA_gen(JWT_RSA_MIN_BITS) : EVP_EC_gen("P-256");
    if (pkey == NULL || (bio = BIO_new(BIO_s_mem())) == NULL ||
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(bio, &data)) <= 0) {
        st = mp_err_set(MP_EINTERNAL, "key generation failed");
        goto cleanup;
    }
    *pem = mp_xstrndup(data, (size_t)n);
cleanup:
    if (st != MP_OK)
        ERR_clear_error();
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return st;
}
