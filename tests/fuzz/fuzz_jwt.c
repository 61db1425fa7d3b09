/*
 * fuzz_jwt.c: libFuzzer target for mp_jwt_verify() and the base64url codec.
 *
 * On the first call it generates one RS256 and one ES256 key (kids "rs" and
 * "es") and builds a key set from their public JWKs, as the gateway would.
 * Each input is then verified as a token; besides the sanitizers, it aborts
 * when verify returns anything but OK/EUNAUTH/ENOTFOUND, when the loggable
 * detail echoes the input, or when a base64url text that decodes does not
 * re-encode to itself (the decoder must accept one text per byte string).
 * Claims are only read after the signature checks out, so an input that is a
 * JSON object is also signed as a payload with the "es" key and verified,
 * which takes the fuzzer through the claim and time checks, and parsed as a
 * JWKS document (fetched over the network, so also untrusted).
 * Seeds: tests/fuzz/corpus/jwt/ (tokens for "rs"/"es" signed with other keys).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/b64url.h"
#include "mp/jwt.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_jwt: %s: %s\n", what, mp_err_get());
    abort();
}

static mp_jwt_signer_t *add_key(json_t *keys, mp_jwt_alg_t alg, const char *kid)
{
    char *pem = NULL;
    mp_jwt_signer_t *s = NULL;
    json_t *jwk = NULL;

    if (mp_jwt_keygen(&pem, alg) != MP_OK || mp_jwt_signer_create(&s, kid, pem, strlen(pem)) != MP_OK ||
        mp_jwt_signer_public_jwk(&jwk, s) != MP_OK)
        die("key setup");
    json_array_append_new(keys, jwk);
    free(pem);
    return s;
}

/* Built once and kept for the life of the process (reachable, so not a leak). */
static mp_jwt_signer_t *es_signer;

static const mp_jwks_t *fuzz_keys(void)
{
    static mp_jwks_t *keys;
    json_t *doc;
    char *text;

    if (keys != NULL)
        return keys;
    doc = json_pack("{s:[]}", "keys");
    mp_jwt_signer_destroy(add_key(json_object_get(doc, "keys"), MP_JWT_RS256, "rs"));
    es_signer = add_key(json_object_get(doc, "keys"), MP_JWT_ES256, "es");
    text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL || mp_jwks_parse(&keys, text, strlen(text)) != MP_OK || mp_jwks_count(keys) != 2)
        die("jwks");
    free(text);
    json_decref(doc);
    return keys;
}

static void check_verify(const uint8_t *data, size_t size)
{
    const mp_jwt_verify_opts_t opts = {.issuer = "iss", .audience = "aud", .now = 1700000000, .leeway_s = 60};
    mp_jwt_claims_t c;
    mp_status_t st = mp_jwt_verify(&c, fuzz_keys(), (const char *)data, size, &opts);
    const char *detail = mp_err_get();

    if (st != MP_OK && st != MP_EUNAUTH && st != MP_ENOTFOUND)
        die("unexpected status");
    if (st == MP_ENOTFOUND && memchr(c.kid, '\0', sizeof(c.kid)) == NULL)
        die("kid not terminated");
    if (size >= 16 && memmem(detail, strlen(detail), data, size) != NULL)
        die("detail echoes the token");
}

static void check_b64url(const uint8_t *data, size_t size)
{
    unsigned char *bin = malloc(3 * size / 4 + 3);
    long n = mp_b64url_decode(bin, (const char *)data, size);

    if (n >= 0) {
        char *text = malloc((size_t)n / 3 * 4 + 5);
        size_t len = mp_b64url_encode(text, bin, (size_t)n);
        if (len != size || memcmp(text, data, size) != 0)
            die("base64url is not canonical");
        free(text);
    }
    free(bin);
}

/* Signs a JSON object input as claims; a token we minted must verify or fail on its claims, never crash. */
static void check_claims(const uint8_t *data, size_t size)
{
    const mp_jwt_verify_opts_t opts = {.issuer = "iss", .audience = "aud", .now = 1700000000, .leeway_s = 60};
    json_t *claims = json_loadb((const char *)data, size, 0, NULL);
    char *token = NULL;
    mp_jwt_claims_t c;

    if (json_is_object(claims) && mp_jwt_sign(&token, es_signer, claims) == MP_OK) {
        mp_status_t st = mp_jwt_verify(&c, fuzz_keys(), token, strlen(token), &opts);
        if (st != MP_OK && st != MP_EUNAUTH)
            die("unexpected status for a signed token");
        if (st == MP_OK && strcmp(c.sub, json_string_value(json_object_get(claims, "sub"))) != 0)
            die("sub differs");
    }
    free(token);
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_verify(data, size);
    check_b64url(data, size);
    if (size > 0 && data[0] == '{') {
        mp_jwks_t *set = NULL;
        check_claims(data, size);
        if (mp_jwks_parse(&set, (const char *)data, size) == MP_OK && mp_jwks_has(set, ""))
            die("a key with an empty kid was accepted");
        mp_jwks_release(set);
    }
    return 0;
}
