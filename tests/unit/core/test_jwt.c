/*
 * test_jwt.c: unit tests for core/jwt.c and core/b64url.c.
 *
 * A group setup generates one RSA and one EC P-256 signer (key generation is
 * the slow part) and a key set built from their public JWKs, the way the
 * gateway would fetch it. Attack tokens are assembled by hand so each test
 * controls exactly which byte is wrong, and every refusal also checks the
 * detail text, so a token refused for the wrong reason fails the test.
 * When libjwt is present, tokens are exchanged with it in both directions.
 */
#define _GNU_SOURCE /* asprintf, strndup */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#ifdef MP_HAVE_LIBJWT
#include <jwt.h>
#endif
#include "mp/b64url.h"
#include "mp/jwt.h"

#define NOW 1700000000
#define ISS "https://auth.moonport.test"
#define AUD "gateway"

static struct {
    char *rsa_pem, *ec_pem;
    mp_jwt_signer_t *rsa, *ec; /* kids "rs-1" and "es-1" */
    mp_jwks_t *keys;           /* both public keys */
} fx;

static const mp_jwt_verify_opts_t opts = {.issuer = ISS, .audience = AUD, .now = NOW, .leeway_s = 60};

/* ---- helpers ------------------------------------------------------------ */

static char *b64(const void *data, size_t len)
{
    char *out = malloc(len / 3 * 4 + 5);
    mp_b64url_encode(out, data, len);
    return out;
}

/* Builds {"keys": [jwk of each signer]} and parses it. */
static mp_jwks_t *jwks_of(mp_jwt_signer_t *a, mp_jwt_signer_t *b)
{
    json_t *doc = json_pack("{s:[]}", "keys"), *jwk;
    mp_jwks_t *set = NULL;
    assert_int_equal(mp_jwt_signer_public_jwk(&jwk, a), MP_OK);
    json_array_append_new(json_object_get(doc, "keys"), jwk);
    if (b != NULL) {
        assert_int_equal(mp_jwt_signer_public_jwk(&jwk, b), MP_OK);
        json_array_append_new(json_object_get(doc, "keys"), jwk);
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(mp_jwks_parse(&set, text, strlen(text)), MP_OK);
    free(text);
    json_decref(doc);
    return set;
}

static json_t *claims_at(int64_t exp)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:[s,s]}", "sub", "alice", "sid", "sess-9", "jti", "j-1",
                     "iss", ISS, "aud", AUD, "exp", (json_int_t)exp, "iat", (json_int_t)NOW - 10, "roles", "admin",
                     "user");
}

/* Signs `claims` (stolen) with `s`. */
static char *sign(mp_jwt_signer_t *s, json_t *claims)
{
    char *token = NULL;
    assert_int_equal(mp_jwt_sign(&token, s, claims), MP_OK);
    json_decref(claims);
    return token;
}

/* Joins hand-made segments: header and payload JSON text, raw signature bytes. */
static char *assemble(const char *hdr, const char *payload, const void *sig, size_t siglen)
{
    char *h = b64(hdr, strlen(hdr)), *p = b64(payload, strlen(payload)), *s = b64(sig, siglen);
    size_t n = strlen(h) + strlen(p) + strlen(s) + 3;
    char *t = malloc(n);
    snprintf(t, n, "%s.%s.%s", h, p, s);
    free(h);
    free(p);
    free(s);
    return t;
}

static mp_status_t verify_with(const mp_jwks_t *keys, const char *token, size_t len, const mp_jwt_verify_opts_t *o,
                               mp_jwt_claims_t *c)
{
    memset(c, 0x5a, sizeof(*c));
    return mp_jwt_verify(c, keys, token, len, o);
}

/* Asserts a refusal with `detail` in the error text and *out untouched. */
static void expect_refused_len(const char *token, size_t len, const mp_jwt_verify_opts_t *o, const char *detail)
{
    mp_jwt_claims_t c, sentinel;
    memset(&sentinel, 0x5a, sizeof(sentinel));
    mp_err_clear();
    assert_int_equal(verify_with(fx.keys, token, len, o, &c), MP_EUNAUTH);
    assert_memory_equal(&c, &sentinel, sizeof(c));
    if (strstr(mp_err_get(), detail) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", mp_err_get(), detail);
}

static void expect_refused(const char *token, const mp_jwt_verify_opts_t *o, const char *detail)
{
    expect_refused_len(token, strlen(token), o, detail);
}

static void expect_ok(const char *token, const mp_jwt_verify_opts_t *o)
{
    mp_jwt_claims_t c;
    if (verify_with(fx.keys, token, strlen(token), o, &c) != MP_OK)
        fail_msg("refused: %s", mp_err_get());
    assert_string_equal(c.sub, "alice");
}

/* The public key PEM of a private PEM, the text an attacker fetches from a well-known URL. */
static char *public_pem(const char *private_pem)
{
    BIO *in = BIO_new_mem_buf(private_pem, -1), *out = BIO_new(BIO_s_mem());
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    char *data;
    assert_non_null(pkey);
    assert_int_equal(PEM_write_bio_PUBKEY(out, pkey), 1);
    long n = BIO_get_mem_data(out, &data);
    char *pem = strndup(data, (size_t)n);
    EVP_PKEY_free(pkey);
    BIO_free(in);
    BIO_free(out);
    return pem;
}

/* ---- fixture ------------------------------------------------------------ */

static int group_setup(void **state)
{
    assert_int_equal(mp_jwt_keygen(&fx.rsa_pem, MP_JWT_RS256), MP_OK);
    assert_int_equal(mp_jwt_keygen(&fx.ec_pem, MP_JWT_ES256), MP_OK);
    assert_int_equal(mp_jwt_signer_create(&fx.rsa, "rs-1", fx.rsa_pem, strlen(fx.rsa_pem)), MP_OK);
    assert_int_equal(mp_jwt_signer_create(&fx.ec, "es-1", fx.ec_pem, strlen(fx.ec_pem)), MP_OK);
    fx.keys = jwks_of(fx.rsa, fx.ec);
    return 0;
}

static int group_teardown(void **state)
{
    mp_jwks_release(fx.keys);
    mp_jwt_signer_destroy(fx.rsa);
    mp_jwt_signer_destroy(fx.ec);
    free(fx.rsa_pem);
    free(fx.ec_pem);
    return 0;
}

/* ---- round trips -------------------------------------------------------- */

static void round_trip(mp_jwt_signer_t *s, mp_jwt_alg_t alg)
{
    json_t *claims = claims_at(NOW + 300);
    json_object_set_new(claims, "nbf", json_integer(NOW - 5));
    char *token = sign(s, claims);
    mp_jwt_claims_t c;

    assert_int_equal(mp_jwt_signer_alg(s), alg);
    assert_true(strncmp(token, "eyJ", 3) == 0);
    assert_int_equal(verify_with(fx.keys, token, strlen(token), &opts, &c), MP_OK);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.sid, "sess-9");
    assert_string_equal(c.jti, "j-1");
    assert_string_equal(c.kid, mp_jwt_signer_kid(s));
    assert_int_equal(c.nroles, 2);
    assert_string_equal(c.roles[0], "admin");
    assert_string_equal(c.roles[1], "user");
    assert_int_equal(c.exp, NOW + 300);
    assert_int_equal(c.iat, NOW - 10);
    assert_int_equal(c.nbf, NOW - 5);
    free(token);
}

static void test_jwt_round_trip_rs256(void **state)
{
    round_trip(fx.rsa, MP_JWT_RS256);
}

static void test_jwt_round_trip_es256(void **state)
{
    char *token = sign(fx.ec, claims_at(NOW + 60)), sig[128];
    unsigned char raw[128];

    round_trip(fx.ec, MP_JWT_ES256);
    /* JWS ES256 signatures are raw R || S, not DER. */
    snprintf(sig, sizeof(sig), "%s", strrchr(token, '.') + 1);
    assert_int_equal(mp_b64url_decode(raw, sig, strlen(sig)), 64);
    free(token);
}

static void test_jwt_optional_claims_absent(void **state)
{
    char *token =
        sign(fx.rsa, json_pack("{s:s, s:I, s:I}", "sub", "bob", "exp", (json_int_t)NOW + 5, "iat", (json_int_t)NOW));
    mp_jwt_claims_t c;
    assert_int_equal(verify_with(fx.keys, token, strlen(token), NULL, &c), MP_EUNAUTH); /* real clock: expired */
    mp_jwt_verify_opts_t o = {.now = NOW};
    assert_int_equal(verify_with(fx.keys, token, strlen(token), &o, &c), MP_OK);
    assert_string_equal(c.sid, "");
    assert_string_equal(c.jti, "");
    assert_int_equal(c.nroles, 0);
    assert_int_equal(c.nbf, 0);
    free(token);
}

/* ---- tampering and algorithm confusion --------------------------------- */

static void test_jwt_tampered_payload(void **state)
{
    char *token = sign(fx.rsa, claims_at(NOW + 60));
    char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');

    /* A flipped character anywhere in the payload. */
    dot1[5] = dot1[5] == 'A' ? 'B' : 'A';
    expect_refused(token, &opts, "");
    /* A well-formed substitute payload under the original signature. */
    json_t *evil = claims_at(NOW + 60);
    json_object_set_new(evil, "sub", json_string("mallory"));
    char *ptext = json_dumps(evil, JSON_COMPACT), *p64 = b64(ptext, strlen(ptext));
    char *forged = malloc(strlen(token) + strlen(p64) + 1);
    sprintf(forged, "%.*s.%s%s", (int)(dot1 - token), token, p64, dot2);
    expect_refused(forged, &opts, "bad signature");
    free(forged);
    free(p64);
    free(ptext);
    json_decref(evil);
    free(token);
}

static void test_jwt_tampered_signature(void **state)
{
    mp_jwt_signer_t *signers[] = {fx.rsa, fx.ec};
    for (size_t i = 0; i < 2; i++) {
        char *token = sign(signers[i], claims_at(NOW + 60)), *sig = strrchr(token, '.') + 1;
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
        expect_refused(token, &opts, "bad signature");
        /* Truncated: an ES256 signature must be exactly 64 bytes, an RS256 one the modulus size. */
        sig[0] = '\0';
        expect_refused(token, &opts, "bad signature");
        free(token);
    }
    /* A valid R || S followed by one more byte: OpenSSL would ignore the excess, so we must refuse it. */
    char *token = sign(fx.ec, claims_at(NOW + 60)), *dot = strrchr(token, '.');
    unsigned char raw[80];
    long n = mp_b64url_decode(raw, dot + 1, strlen(dot + 1));
    assert_int_equal(n, 64);
    raw[n] = 0;
    char *longer = malloc(strlen(token) + 8);
    sprintf(longer, "%.*s.", (int)(dot - token), token);
    mp_b64url_encode(longer + strlen(longer), raw, (size_t)n + 1);
    expect_refused(longer, &opts, "bad signature");
    free(longer);
    free(token);
}

static void test_jwt_alg_none_refused(void **state)
{
    json_t *claims = claims_at(NOW + 60);
    char *payload = json_dumps(claims, JSON_COMPACT);
    char *token = assemble("{\"alg\":\"none\",\"kid\":\"rs-1\"}", payload, "", 0);
    expect_refused(token, &opts, "unsupported alg");
    free(token);
    token = assemble("{\"alg\":\"none\",\"kid\":\"rs-1\"}", payload, "x", 1);
    expect_refused(token, &opts, "unsupported alg");
    free(token);
    free(payload);
    json_decref(claims);
}

static void hs256_refused(const char *secret, const char *kid)
{
    json_t *claims = claims_at(NOW + 60);
    char *payload = json_dumps(claims, JSON_COMPACT), hdr[128];
    unsigned char mac[32];
    size_t maclen = 0;

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *unsigned_tok = assemble(hdr, payload, "", 0);
    unsigned_tok[strlen(unsigned_tok) - 1] = '\0'; /* drop the trailing dot: the signing input */
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret), (unsigned char *)unsigned_tok,
                              strlen(unsigned_tok), mac, sizeof(mac), &maclen));
    char *token = assemble(hdr, payload, mac, maclen);
    expect_refused(token, &opts, "unsupported alg");
    free(token);
    free(unsigned_tok);
    free(payload);
    json_decref(claims);
}

static void test_jwt_hs256_key_confusion_refused(void **state)
{
    char *pem = public_pem(fx.rsa_pem), *jwk_text;
    json_t *jwk;

    hs256_refused(pem, "rs-1");
    assert_int_equal(mp_jwt_signer_public_jwk(&jwk, fx.rsa), MP_OK);
    jwk_text = json_dumps(jwk, JSON_COMPACT);
    hs256_refused(jwk_text, "rs-1");
    free(jwk_text);
    json_decref(jwk);
    free(pem);
}

static void test_jwt_rs256_header_on_ec_key_refused(void **state)
{
    mp_jwt_signer_t *rsa_shared, *ec_shared;
    mp_jwks_t *ec_set, *rsa_set;
    mp_jwt_claims_t c;

    assert_int_equal(mp_jwt_signer_create(&rsa_shared, "shared", fx.rsa_pem, strlen(fx.rsa_pem)), MP_OK);
    assert_int_equal(mp_jwt_signer_create(&ec_shared, "shared", fx.ec_pem, strlen(fx.ec_pem)), MP_OK);
    ec_set = jwks_of(ec_shared, NULL);
    rsa_set = jwks_of(rsa_shared, NULL);
    char *rs_token = sign(rsa_shared, claims_at(NOW + 60)), *es_token = sign(ec_shared, claims_at(NOW + 60));

    assert_int_equal(verify_with(ec_set, rs_token, strlen(rs_token), &opts, &c), MP_EUNAUTH);
    assert_string_equal(mp_err_get(), "alg mismatch");
    assert_int_equal(verify_with(rsa_set, es_token, strlen(es_token), &opts, &c), MP_EUNAUTH);
    assert_string_equal(mp_err_get(), "alg mismatch");
    assert_int_equal(verify_with(rsa_set, rs_token, strlen(rs_token), &opts, &c), MP_OK); /* control */

    free(rs_token);
    free(es_token);
    mp_jwks_release(ec_set);
    mp_jwks_release(rsa_set);
    mp_jwt_signer_destroy(rsa_shared);
    mp_jwt_signer_destroy(ec_shared);
}

/* ---- time and claims ---------------------------------------------------- */

static void test_jwt_expired(void **state)
{
    char *late = sign(fx.ec, claims_at(NOW - 61)), *within = sign(fx.ec, claims_at(NOW - 30));
    mp_jwt_verify_opts_t greedy = opts;

    expect_refused(late, &opts, "token expired");
    expect_ok(within, &opts);
    /* Leeway is clamped to 60 s, so asking for more buys nothing. */
    greedy.leeway_s = 3600;
    expect_refused(late, &greedy, "token expired");
    greedy.leeway_s = -5; /* negative counts as none */
    expect_refused(within, &greedy, "token expired");
    free(late);
    free(within);
}

static void test_jwt_not_yet_valid(void **state)
{
    json_t *early = claims_at(NOW + 600), *soon = claims_at(NOW + 600), *future = claims_at(NOW + 600);
    json_object_set_new(early, "nbf", json_integer(NOW + 61));
    json_object_set_new(soon, "nbf", json_integer(NOW + 30));
    json_object_set_new(future, "iat", json_integer(NOW + 61));
    char *t1 = sign(fx.rsa, early), *t2 = sign(fx.rsa, soon), *t3 = sign(fx.rsa, future);

    expect_refused(t1, &opts, "not yet valid");
    expect_ok(t2, &opts);
    expect_refused(t3, &opts, "issued in the future");
    free(t1);
    free(t2);
    free(t3);
}

static void test_jwt_wrong_issuer_or_audience(void **state)
{
    json_t *iss = claims_at(NOW + 60), *aud = claims_at(NOW + 60), *none = claims_at(NOW + 60);
    json_object_set_new(iss, "iss", json_string("https://evil.test"));
    json_object_set_new(aud, "aud", json_string("billing"));
    json_object_del(none, "iss");
    json_object_del(none, "aud");
    char *t1 = sign(fx.rsa, iss), *t2 = sign(fx.rsa, aud), *t3 = sign(fx.rsa, none);
    mp_jwt_verify_opts_t lax = {.now = NOW};

    expect_refused(t1, &opts, "wrong issuer");
    expect_refused(t2, &opts, "wrong audience");
    expect_refused(t3, &opts, "wrong issuer");
    expect_ok(t3, &lax); /* NULL issuer/audience skip the checks */
    free(t1);
    free(t2);
    free(t3);
}

static void test_jwt_audience_array(void **state)
{
    json_t *with = claims_at(NOW + 60), *without = claims_at(NOW + 60);
    json_object_set_new(with, "aud", json_pack("[i, s, s]", 7, "billing", AUD));
    json_object_set_new(without, "aud", json_pack("[s, s]", "billing", "gateway-x"));
    char *t1 = sign(fx.ec, with), *t2 = sign(fx.ec, without);

    expect_ok(t1, &opts);
    expect_refused(t2, &opts, "wrong audience");
    free(t1);
    free(t2);
}

static void test_jwt_unknown_kid(void **state)
{
    mp_jwt_signer_t *rotated;
    mp_jwt_claims_t c, sentinel;
    size_t kid_at = offsetof(mp_jwt_claims_t, kid), kid_end = kid_at + sizeof(c.kid);

    assert_int_equal(mp_jwt_signer_create(&rotated, "rotated-7", fx.ec_pem, strlen(fx.ec_pem)), MP_OK);
    char *token = sign(rotated, claims_at(NOW + 60));
    memset(&sentinel, 0x5a, sizeof(sentinel));
    assert_int_equal(verify_with(fx.keys, token, strlen(token), &opts, &c), MP_ENOTFOUND);
    assert_string_equal(c.kid, "rotated-7");
    assert_false(mp_jwks_has(fx.keys, "rotated-7"));
    /* Only the kid is written. */
    assert_memory_equal(&c, &sentinel, kid_at);
    assert_memory_equal((char *)&c + kid_end, (char *)&sentinel + kid_end, sizeof(c) - kid_end);
    free(token);
    mp_jwt_signer_destroy(rotated);
}

/* Signs arbitrary payload text with the RSA key, so refusals come from claim checks, not the signature. */
static char *sign_text(const char *hdr, const char *payload)
{
    char *h = b64(hdr, strlen(hdr)), *p = b64(payload, strlen(payload)), sig[600];
    unsigned char raw[256];
    size_t rawlen = sizeof(raw);
    BIO *bio = BIO_new_mem_buf(fx.rsa_pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = strlen(h) + strlen(p) + 2 + sizeof(sig);
    char *token = malloc(n);

    snprintf(token, n, "%s.%s", h, p);
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, raw, &rawlen, (unsigned char *)token, strlen(token)), 1);
    mp_b64url_encode(sig, raw, rawlen);
    strcat(token, ".");
    strcat(token, sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    free(h);
    free(p);
    return token;
}

static void test_jwt_bad_claims_refused(void **state)
{
    static const char hdr[] = "{\"alg\":\"RS256\",\"kid\":\"rs-1\"}";
    static const struct {
        const char *payload, *detail;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"roles\":[\"admin\",7]}", "role 1"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"roles\":\"admin\"}", "roles"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"roles\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
         "\"8\",\"9\"]}",
         "roles"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"roles\":[\"0123456789012345678901234567890x\"]}",
         "role 0"},
        {"{\"exp\":1700000060,\"iat\":1700000000}", "sub"},
        {"{\"sub\":7,\"exp\":1700000060,\"iat\":1700000000}", "sub"},
        {"{\"sub\":\"a\",\"exp\":\"1700000060\",\"iat\":1700000000}", "exp"},
        {"{\"sub\":\"a\",\"exp\":1700000060.5,\"iat\":1700000000}", "exp"},
        {"{\"sub\":\"a\",\"exp\":1700000060}", "iat"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"nbf\":null}", "nbf"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"sid\":[]}", "sid"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iat\":1700000000,\"jti\":1}", "jti"},
        {"{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1700000060,\"iat\":1700000000}", "payload"},
        {"{\"sub\":\"a\",\"exp\":-9223372036854775808,\"iat\":1700000000}", "expired"},
        {"{\"sub\":\"a\",\"exp\":9223372036854775807,\"iat\":9223372036854775807}", "future"},
        {"[\"sub\",\"a\"]", "payload"},
    };
    mp_jwt_verify_opts_t lax = {.now = NOW, .leeway_s = 60};
    char sub[200];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *token = sign_text(hdr, cases[i].payload);
        expect_refused(token, &lax, cases[i].detail);
        free(token);
    }
    /* sub of 127 characters fits the 128-byte field; 128 does not. */
    memset(sub, 'x', sizeof(sub));
    for (int len = 127; len <= 128; len++) {
        char payload[300];
        snprintf(payload, sizeof(payload), "{\"sub\":\"%.*s\",\"exp\":1700000060,\"iat\":1700000000}", len, sub);
        char *token = sign_text(hdr, payload);
        mp_jwt_claims_t c;
        assert_int_equal(verify_with(fx.keys, token, strlen(token), &lax, &c), len == 127 ? MP_OK : MP_EUNAUTH);
        free(token);
    }
    /* A header we cannot honour: crit, duplicate alg, kid not a string. */
    char *t1 = sign_text("{\"alg\":\"RS256\",\"kid\":\"rs-1\",\"crit\":[\"exp\"]}", "{}");
    char *t2 = sign_text("{\"alg\":\"RS256\",\"alg\":\"RS256\",\"kid\":\"rs-1\"}", "{}");
    char *t3 = sign_text("{\"alg\":\"RS256\",\"kid\":1}", "{}");
    expect_refused(t1, &lax, "crit");
    expect_refused(t2, &lax, "header");
    expect_refused(t3, &lax, "kid");
    free(t1);
    free(t2);
    free(t3);
}

static void test_jwt_garbage_refused(void **state)
{
    static const char *const inputs[] = {
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b",
        "eyJ9.eyJ9.",
        "!!!.###.$$$",
        "eyJhbGciOiJSUzI1NiJ9.e30.e30.e30",
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifQ==.e30.AA",     /* padded header */
        "WzFd.e30.AA",                                         /* header [1] */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifQ.WzFd.AA",      /* payload [1] */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifQ.e30.",         /* empty signature */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifQ.e30.AA==",     /* padded signature */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifQ .e30.AA",      /* space */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifQ.e30+.AA",      /* standard base64 */
        "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVzLTEifQ.e30.AAAA",     /* ES256, 3-byte signature */
        "bnVsbA.e30.AA",                                       /* header null */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzLTEifX0.e30.AA",      /* header with trailing junk */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzXHUwMDAwMSJ9.e30.AA", /* kid with \u0000 */
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        expect_refused(inputs[i], &opts, "");
    expect_refused_len(NULL, 0, &opts, "malformed");
    /* Bytes after an embedded NUL still count: len is authoritative. */
    expect_refused_len("a.b.c\0.d", 8, &opts, "malformed");

    /* A real token padded past 8 KiB is refused before it is read. */
    json_t *big = claims_at(NOW + 60);
    char *filler = malloc(9000);
    memset(filler, 'x', 8999);
    filler[8999] = '\0';
    json_object_set_new(big, "pad", json_string(filler));
    char *token = NULL;
    assert_int_equal(mp_jwt_sign(&token, fx.rsa, big), MP_EINVAL); /* we never mint it either */
    assert_null(token);
    memset(filler, 'A', 8999);
    filler[10] = filler[20] = '.';
    expect_refused(filler, &opts, "malformed");
    free(filler);
    json_decref(big);
}

/* ---- base64url ---------------------------------------------------------- */

static void test_jwt_b64url_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char enc[32];
    unsigned char dec[32];

    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(mp_b64url_encode(enc, (const unsigned char *)plain[i], strlen(plain[i])), strlen(coded[i]));
        assert_string_equal(enc, coded[i]);
        memset(dec, 0xaa, sizeof(dec));
        assert_int_equal(mp_b64url_decode(dec, coded[i], strlen(coded[i])), (long)strlen(plain[i]));
        assert_memory_equal(dec, plain[i], strlen(plain[i]));
        assert_int_equal(dec[strlen(plain[i])], 0xaa); /* nothing written past the decoded length */
    }
    /* The URL-safe alphabet: 0xfb 0xff is "+/8=" in standard base64. */
    assert_int_equal(mp_b64url_encode(enc, (const unsigned char *)"\xfb\xff", 2), 3);
    assert_string_equal(enc, "-_8");
    assert_int_equal(mp_b64url_decode(dec, "-_8", 3), 2);
    assert_memory_equal(dec, "\xfb\xff", 2);
}

static void test_jwt_b64url_rejects(void **state)
{
    /* Padding, whitespace, standard-alphabet characters, 4n+1 lengths, non-zero trailing bits, high bytes. */
    static const char *const bad[] = {"Zg==", "Zm8=", "Zm9v=",     "Zm9v YmFy", "Zm+v",
                                      "Zm/v", "Z",    "Zm9vY",     "Zm9vA",     "A",
                                      "Zh",   "Zm-",  "Zm9v\nYmE", "\x80\x80",  "Zm9v\xff\xff"};
    unsigned char out[32];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (mp_b64url_decode(out, bad[i], strlen(bad[i])) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(mp_b64url_decode(out, "Zm8", 3), 2); /* control: canonical "fo" */
    assert_int_equal(mp_b64url_decode(out, "Zm8\0", 4), -1);
}

/* ---- key sets and signers ---------------------------------------------- */

static char *rsa_jwk_text(const char *extra, int bits)
{
    EVP_PKEY *pkey = EVP_RSA_gen((unsigned)bits);
    BIGNUM *n = NULL;
    unsigned char bin[512];
    char n64[700];
    assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n));
    mp_b64url_encode(n64, bin, (size_t)BN_bn2bin(n, bin));
    char *text = NULL;
    assert_true(asprintf(&text, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"%s}]}", n64, extra) > 0);
    BN_free(n);
    EVP_PKEY_free(pkey);
    return text;
}

static void expect_jwks_invalid(const char *text, const char *detail)
{
    mp_jwks_t *set = (mp_jwks_t *)0x1;
    assert_int_equal(mp_jwks_parse(&set, text, strlen(text)), MP_EINVAL);
    assert_ptr_equal(set, (mp_jwks_t *)0x1);
    if (strstr(mp_err_get(), detail) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\" for %.80s", mp_err_get(), detail, text);
}

static void test_jwks_parse_rejects_bad_keys(void **state)
{
    json_t *ec, *doc;
    char *t;

    /* An RSA key that claims ES256, an EC key that claims RS256. */
    expect_jwks_invalid(t = rsa_jwk_text(",\"kid\":\"a\",\"alg\":\"ES256\"", 2048), "alg");
    free(t);
    assert_int_equal(mp_jwt_signer_public_jwk(&ec, fx.ec), MP_OK);
    json_object_set_new(ec, "alg", json_string("RS256"));
    doc = json_pack("{s:[O]}", "keys", ec);
    expect_jwks_invalid(t = json_dumps(doc, JSON_COMPACT), "alg");
    free(t);
    json_decref(doc);
    /* Off-curve point, short coordinate, other curve. */
    json_object_set_new(ec, "alg", json_string("ES256"));
    json_object_set_new(ec, "y", json_string(json_string_value(json_object_get(ec, "x"))));
    doc = json_pack("{s:[O]}", "keys", ec);
    expect_jwks_invalid(t = json_dumps(doc, JSON_COMPACT), "not a valid EC");
    free(t);
    json_decref(doc);
    json_object_set_new(ec, "y", json_string("AAAA"));
    doc = json_pack("{s:[O]}", "keys", ec);
    expect_jwks_invalid(t = json_dumps(doc, JSON_COMPACT), "32 bytes");
    free(t);
    json_decref(doc);
    json_object_set_new(ec, "crv", json_string("P-384"));
    doc = json_pack("{s:[O]}", "keys", ec);
    expect_jwks_invalid(t = json_dumps(doc, JSON_COMPACT), "P-256");
    free(t);
    json_decref(doc);
    json_decref(ec);
    /* Short RSA modulus, missing kid. */
    expect_jwks_invalid(t = rsa_jwk_text(",\"kid\":\"small\"", 1024), "modulus");
    free(t);
    expect_jwks_invalid(t = rsa_jwk_text("", 2048), "kid");
    free(t);
    expect_jwks_invalid("[]", "keys");
    expect_jwks_invalid("{\"keys\":{}}", "keys");
    expect_jwks_invalid("{\"keys\":[", "JSON");
    expect_jwks_invalid("{\"keys\":[7]}", "kty");
    expect_jwks_invalid("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"AQAB==\",\"e\":\"AQAB\"}]}", "base64url");
}

static void test_jwks_parse_rejects_duplicate_kid(void **state)
{
    json_t *a, *b;
    mp_jwks_t *set = NULL;

    assert_int_equal(mp_jwt_signer_public_jwk(&a, fx.rsa), MP_OK);
    assert_int_equal(mp_jwt_signer_public_jwk(&b, fx.ec), MP_OK);
    json_object_set_new(b, "kid", json_string("rs-1"));
    json_t *doc = json_pack("{s:[o,o]}", "keys", a, b);
    char *t = json_dumps(doc, JSON_COMPACT);
    expect_jwks_invalid(t, "duplicate kid");
    json_object_set_new(b, "kid", json_string("es-2"));
    free(t);
    t = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(mp_jwks_parse(&set, t, strlen(t)), MP_OK); /* control */
    assert_int_equal(mp_jwks_count(set), 2);
    mp_jwks_release(set);
    free(t);
    json_decref(doc);
}

static void test_jwks_parse_skips_foreign_keys(void **state)
{
    json_t *rsa;
    mp_jwks_t *set = NULL;

    assert_int_equal(mp_jwt_signer_public_jwk(&rsa, fx.rsa), MP_OK);
    json_t *doc = json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, o, {s:s, s:s, s:s, s:s, s:s}]}", "keys", "kty",
                            "oct", "kid", "hmac", "k", "c2VjcmV0",                              /* symmetric */
                            "kty", "OKP", "kid", "ed", "crv", "Ed25519", "x", "AAAA",           /* unsupported */
                            rsa,                                                                /* ours */
                            "kty", "EC", "kid", "enc", "use", "enc", "crv", "P-256", "x", "A"); /* not for signatures */
    char *t = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(mp_jwks_parse(&set, t, strlen(t)), MP_OK);
    assert_int_equal(mp_jwks_count(set), 1);
    assert_true(mp_jwks_has(set, "rs-1"));
    assert_false(mp_jwks_has(set, "hmac"));
    assert_false(mp_jwks_has(set, "enc"));
    /* Retain/release balance: the set survives one release and ASan sees the last one free it. */
    assert_ptr_equal(mp_jwks_retain(set), set);
    mp_jwks_release(set);
    assert_int_equal(mp_jwks_count(set), 1);
    mp_jwks_release(set);
    mp_jwks_release(NULL);
    free(t);
    json_decref(doc);
}

static void test_jwt_signer_rejects_bad_keys(void **state)
{
    mp_jwt_signer_t *s = (mp_jwt_signer_t *)0x1;
    EVP_PKEY *small = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384");
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;

    assert_int_equal(mp_jwt_signer_create(&s, "k", "not a pem", 9), MP_EINVAL);
    assert_int_equal(mp_jwt_signer_create(&s, "", fx.rsa_pem, strlen(fx.rsa_pem)), MP_EINVAL);
    assert_int_equal(mp_jwt_signer_create(&s, "a b", fx.rsa_pem, strlen(fx.rsa_pem)), MP_EINVAL);
    assert_int_equal(mp_jwt_signer_create(&s, "k", fx.rsa_pem, 40), MP_EINVAL); /* truncated */
    EVP_PKEY *wrong[] = {small, p384};
    for (int i = 0; i < 2; i++) {
        BIO_reset(bio);
        assert_int_equal(PEM_write_bio_PrivateKey(bio, wrong[i], NULL, NULL, 0, NULL, NULL), 1);
        long n = BIO_get_mem_data(bio, &data);
        assert_int_equal(mp_jwt_signer_create(&s, "k", data, (size_t)n), MP_EINVAL);
        assert_non_null(strstr(mp_err_get(), "P-256"));
    }
    /* An encrypted key fails instead of prompting on a terminal. */
    BIO *enc = BIO_new(BIO_s_mem()), *plain = BIO_new_mem_buf(fx.rsa_pem, -1);
    EVP_PKEY *rsa = PEM_read_bio_PrivateKey(plain, NULL, NULL, NULL);
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(enc, rsa, EVP_aes_256_cbc(), "pw", 2, NULL, NULL), 1);
    long elen = BIO_get_mem_data(enc, &data);
    assert_non_null(strstr(data, "ENCRYPTED"));
    assert_int_equal(mp_jwt_signer_create(&s, "k", data, (size_t)elen), MP_EINVAL);
    BIO_free(enc);
    BIO_free(plain);
    EVP_PKEY_free(rsa);
    assert_ptr_equal(s, (mp_jwt_signer_t *)0x1);
    assert_int_equal(mp_jwt_keygen(&data, (mp_jwt_alg_t)9), MP_EINVAL);
    char *token = NULL;
    json_t *arr = json_array();
    assert_int_equal(mp_jwt_sign(&token, fx.rsa, arr), MP_EINVAL);
    assert_null(token);
    json_decref(arr);
    mp_jwt_signer_destroy(NULL);
    BIO_free(bio);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p384);
}

static void test_jwt_public_jwk_fields(void **state)
{
    json_t *rsa, *ec;
    unsigned char bin[512];
    const char *n;

    assert_int_equal(mp_jwt_signer_public_jwk(&rsa, fx.rsa), MP_OK);
    assert_string_equal(json_string_value(json_object_get(rsa, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(rsa, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(rsa, "use")), "sig");
    assert_string_equal(json_string_value(json_object_get(rsa, "kid")), "rs-1");
    assert_string_equal(json_string_value(json_object_get(rsa, "e")), "AQAB");
    n = json_string_value(json_object_get(rsa, "n"));
    assert_int_equal(mp_b64url_decode(bin, n, strlen(n)), 256);
    assert_int_not_equal(bin[0], 0); /* minimal: no leading zero */
    assert_int_equal(mp_jwt_signer_public_jwk(&ec, fx.ec), MP_OK);
    assert_string_equal(json_string_value(json_object_get(ec, "kty")), "EC");
    assert_string_equal(json_string_value(json_object_get(ec, "crv")), "P-256");
    assert_string_equal(json_string_value(json_object_get(ec, "alg")), "ES256");
    for (const char *c = "xy"; *c; c++) {
        const char *v = json_string_value(json_object_get(ec, (char[]){*c, 0}));
        assert_int_equal(mp_b64url_decode(bin, v, strlen(v)), 32);
    }
    json_decref(rsa);
    json_decref(ec);
}

/* Several threads verify with one set while the test drops its own reference mid-flight. */
static void *verify_loop(void *arg)
{
    mp_jwks_t *set = arg;
    mp_jwt_claims_t c;
    char *token = NULL;
    json_t *claims = claims_at(NOW + 60);
    long ok = 0;

    if (mp_jwt_sign(&token, fx.ec, claims) == MP_OK)
        for (int i = 0; i < 200; i++)
            ok += mp_jwt_verify(&c, set, token, strlen(token), &opts) == MP_OK;
    free(token);
    json_decref(claims);
    mp_jwks_release(set);
    return (void *)ok;
}

static void test_jwt_verify_concurrent_threads(void **state)
{
    mp_jwks_t *set = jwks_of(fx.rsa, fx.ec);
    pthread_t th[4];
    void *ok;

    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, mp_jwks_retain(set)), 0);
    mp_jwks_release(set);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], &ok), 0);
        assert_int_equal((long)ok, 200);
    }
}

/* ---- libjwt interop ----------------------------------------------------- */

#ifdef MP_HAVE_LIBJWT
static void test_jwt_libjwt_verifies_ours(void **state)
{
    mp_jwt_signer_t *signers[] = {fx.rsa, fx.ec};
    const char *pems[] = {fx.rsa_pem, fx.ec_pem};
    jwt_alg_t algs[] = {JWT_ALG_RS256, JWT_ALG_ES256};

    for (int i = 0; i < 2; i++) {
        char *token = sign(signers[i], claims_at(NOW + 60)), *pem = public_pem(pems[i]);
        jwt_t *jwt = NULL;
        assert_int_equal(jwt_decode(&jwt, token, (unsigned char *)pem, (int)strlen(pem)), 0);
        assert_int_equal(jwt_get_alg(jwt), algs[i]);
        assert_string_equal(jwt_get_grant(jwt, "sub"), "alice");
        assert_string_equal(jwt_get_header(jwt, "kid"), mp_jwt_signer_kid(signers[i]));
        jwt_free(jwt);
        /* Control: libjwt refuses the token once its payload changes. */
        char *dot = strchr(token, '.');
        dot[3] = dot[3] == 'A' ? 'B' : 'A';
        jwt = NULL;
        assert_int_not_equal(jwt_decode(&jwt, token, (unsigned char *)pem, (int)strlen(pem)), 0);
        jwt_free(jwt);
        free(token);
        free(pem);
    }
}

static void test_jwt_we_verify_libjwt(void **state)
{
    const char *pems[] = {fx.rsa_pem, fx.ec_pem}, *kids[] = {"rs-1", "es-1"};
    jwt_alg_t algs[] = {JWT_ALG_RS256, JWT_ALG_ES256};

    for (int i = 0; i < 2; i++) {
        jwt_t *jwt = NULL;
        mp_jwt_claims_t c;
        assert_int_equal(jwt_new(&jwt), 0);
        assert_int_equal(jwt_add_grant(jwt, "sub", "carol"), 0);
        assert_int_equal(jwt_add_grant(jwt, "iss", ISS), 0);
        assert_int_equal(jwt_add_grant(jwt, "aud", AUD), 0);
        assert_int_equal(jwt_add_grant_int(jwt, "exp", NOW + 60), 0);
        assert_int_equal(jwt_add_grant_int(jwt, "iat", NOW), 0);
        assert_int_equal(jwt_add_header(jwt, "kid", kids[i]), 0);
        assert_int_equal(jwt_set_alg(jwt, algs[i], (const unsigned char *)pems[i], (int)strlen(pems[i])), 0);
        char *token = jwt_encode_str(jwt);
        assert_non_null(token);
        if (verify_with(fx.keys, token, strlen(token), &opts, &c) != MP_OK)
            fail_msg("refused libjwt %s token: %s", kids[i], mp_err_get());
        assert_string_equal(c.sub, "carol");
        assert_string_equal(c.kid, kids[i]);
        assert_int_equal(c.exp, NOW + 60);
        free(token);
        jwt_free(jwt);
    }
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_round_trip_rs256),
        cmocka_unit_test(test_jwt_round_trip_es256),
        cmocka_unit_test(test_jwt_optional_claims_absent),
        cmocka_unit_test(test_jwt_tampered_payload),
        cmocka_unit_test(test_jwt_tampered_signature),
        cmocka_unit_test(test_jwt_alg_none_refused),
        cmocka_unit_test(test_jwt_hs256_key_confusion_refused),
        cmocka_unit_test(test_jwt_rs256_header_on_ec_key_refused),
        cmocka_unit_test(test_jwt_expired),
        cmocka_unit_test(test_jwt_not_yet_valid),
        cmocka_unit_test(test_jwt_wrong_issuer_or_audience),
        cmocka_unit_test(test_jwt_audience_array),
        cmocka_unit_test(test_jwt_unknown_kid),
        cmocka_unit_test(test_jwt_bad_claims_refused),
        cmocka_unit_test(test_jwt_garbage_refused),
        cmocka_unit_test(test_jwt_b64url_vectors),
        cmocka_unit_test(test_jwt_b64url_rejects),
        cmocka_unit_test(test_jwks_parse_rejects_bad_keys),
        cmocka_unit_test(test_jwks_parse_rejects_duplicate_kid),
        cmocka_unit_test(test_jwks_parse_skips_foreign_keys),
        cmocka_unit_test(test_jwt_signer_rejects_bad_keys),
        cmocka_unit_test(test_jwt_public_jwk_fields),
        cmocka_unit_test(test_jwt_verify_concurrent_threads),
#ifdef MP_HAVE_LIBJWT
        cmocka_unit_test(test_jwt_libjwt_verifies_ours),
        cmocka_unit_test(test_jwt_we_verify_libjwt),
#endif
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
