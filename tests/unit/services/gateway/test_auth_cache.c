/*
 * test_auth_cache.c: unit tests for the token check of
 * services/gateway/auth.c with its per-thread cache of verified tokens
 * (tokcache.c) over the key store (keys.c): a token verified once is served
 * from the cache, and the cache never answers differently from a fresh
 * verification: a revocation that arrives after the token was kept refuses
 * it at once, a token past its exp is refused, a key that leaves the set or
 * is replaced under its kid takes its tokens with it, a key added or the
 * same set fetched again keeps them.
 *
 * The request is a bare h2o_req_t with an Authorization header; what the
 * check answers is caught by a stand-in gw_proxy_fail().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "services/gateway/auth.c"
#include "services/gateway/keys.c"
#include "services/gateway/tokcache.c"

#define ISS "moonport"
#define AUD "moonport-api"

/* ---- stand-ins for the rest of the gateway ---------------------------------------------------------- */

static struct {
    int status;
    char detail[200];
} answered;

void gw_proxy_fail(gw_req_t *gr, int status, const char *detail)
{
    answered.status = status;
    snprintf(answered.detail, sizeof(answered.detail), "%s", detail);
}

void gw_proxy_continue(gw_req_t *gr)
{
}

mp_status_t gw_keys_install(gw_t *gw, const char *json, size_t len)
{
    return MP_OK;
}

/* ---- fixture ------------------------------------------------------------------------------------------ */

static struct {
    mp_jwt_signer_t *a, *a2, *b; /* a and a2 share the kid "k1" with different keys; b is "k2" */
    gw_t gw;
    gw_thread_t th;
    gw_route_t route;
} fx;

static mp_jwt_signer_t *signer(const char *kid)
{
    char *pem = NULL;
    mp_jwt_signer_t *s = NULL;
    assert_int_equal(mp_jwt_keygen(&pem, MP_JWT_ES256), MP_OK);
    assert_int_equal(mp_jwt_signer_create(&s, kid, pem, strlen(pem)), MP_OK);
    free(pem);
    return s;
}

/* The key set {"keys": [...]} of the given signers (NULL-terminated). */
static mp_jwks_t *set_of(mp_jwt_signer_t *first, va_list ap)
{
    json_t *doc = json_pack("{s:[]}", "keys"), *jwk;
    for (mp_jwt_signer_t *s = first; s; s = va_arg(ap, mp_jwt_signer_t *)) {
        assert_int_equal(mp_jwt_signer_public_jwk(&jwk, s), MP_OK);
        json_array_append_new(json_object_get(doc, "keys"), jwk);
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    mp_jwks_t *set = NULL;
    assert_int_equal(mp_jwks_parse(&set, text, strlen(text)), MP_OK);
    free(text);
    json_decref(doc);
    return set;
}

/* Installs the key set of the given signers (NULL-terminated) in the key store. */
static void install(mp_jwt_signer_t *first, ...)
{
    va_list ap;
    va_start(ap, first);
    gw_keys_set(fx.gw.keys, set_of(first, ap));
    va_end(ap);
}

/* Makes the thread verify with the key set of the given signers, behind the key store's back. */
static void swap_thread_keys(mp_jwt_signer_t *first, ...)
{
    va_list ap;
    va_start(ap, first);
    mp_jwks_release(fx.th.jwks);
    fx.th.jwks = set_of(first, ap);
    va_end(ap);
}

static char *token_for(mp_jwt_signer_t *s, const char *sid, int64_t exp)
{
    int64_t now = (int64_t)time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:[s]}", "sub", "alice", "sid", sid, "iss", ISS, "aud",
                               AUD, "exp", (json_int_t)exp, "iat", (json_int_t)now - 5, "roles", "user");
    char *token = NULL;
    assert_int_equal(mp_jwt_sign(&token, s, claims), MP_OK);
    json_decref(claims);
    return token;
}

static char *token_of(mp_jwt_signer_t *s, const char *sid)
{
    return token_for(s, sid, (int64_t)time(NULL) + 900);
}

/* Runs the token check for one request carrying `token`: 0 when it passed, else the status it answered. */
static int check(const char *token)
{
    h2o_req_t req;
    gw_req_t gr;
    memset(&req, 0, sizeof(req));
    memset(&gr, 0, sizeof(gr));
    h2o_mem_init_pool(&req.pool);
    char *value = mp_xasprintf("Bearer %s", token);
    h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_AUTHORIZATION, NULL, value, strlen(value));
    gr.req = &req;
    gr.th = &fx.th;
    gr.match.route = &fx.route;
    answered.status = 0;
    answered.detail[0] = '\0';
    int ok = gw_auth_check(&gr);
    if (ok) {
        assert_int_equal(answered.status, 0);
        assert_string_equal(gr.claims.sub, "alice");
        assert_string_equal(gr.roles, "user");
    }
    h2o_mem_clear_pool(&req.pool);
    free(value);
    return ok ? 0 : answered.status;
}

static size_t kept(void)
{
    return gw_tokcache_size(fx.th.tokens);
}

static int setup(void **state)
{
    memset(&fx.gw, 0, sizeof(fx.gw));
    memset(&fx.th, 0, sizeof(fx.th));
    fx.gw.issuer = ISS;
    fx.gw.audience = AUD;
    fx.gw.leeway_s = 0;
    fx.gw.keys = gw_keys_create();
    /* no JWKS refresh from here: the store says one just happened, so an unknown kid is a plain 401 */
    assert_true(gw_keys_may_refresh(fx.gw.keys, mp_now_ms(), 1000));
    fx.th.gw = &fx.gw;
    fx.th.tokens = gw_tokcache_create(64);
    h2o_linklist_init_anchor(&fx.th.key_waiters);
    fx.route = (gw_route_t){.method = "GET", .path = "/t", .subject = "t.v1.t", .auth = GW_AUTH_REQUIRED};
    return 0;
}

static int teardown(void **state)
{
    gw_tokcache_destroy(fx.th.tokens);
    mp_jwks_release(fx.th.jwks);
    gw_keys_destroy(fx.gw.keys);
    return 0;
}

static int group_setup(void **state)
{
    fx.a = signer("k1");
    fx.a2 = signer("k1");
    fx.b = signer("k2");
    return 0;
}

static int group_teardown(void **state)
{
    mp_jwt_signer_destroy(fx.a);
    mp_jwt_signer_destroy(fx.a2);
    mp_jwt_signer_destroy(fx.b);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------------------- */

static void test_auth_cache_serves_a_token_seen_before(void **state)
{
    install(fx.a, NULL);
    char *t = token_of(fx.a, "s1");
    assert_int_equal(check(t), 0);
    assert_int_equal(kept(), 1);
    /* served from the cache: the thread now verifies with a set that lacks k1, yet the kept token passes */
    swap_thread_keys(fx.b, NULL);
    assert_int_equal(check(t), 0);
    /* a token that differs in its last byte is not the kept one: it is verified, and fails */
    swap_thread_keys(fx.a, NULL);
    t[strlen(t) - 1] = t[strlen(t) - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(check(t), 401);
    assert_int_equal(kept(), 1);
    free(t);
}

static void test_auth_cache_refuses_a_kept_token_once_its_session_is_revoked(void **state)
{
    install(fx.a, NULL);
    char *t = token_of(fx.a, "s-revoked"), *other = token_of(fx.a, "s-other");
    assert_int_equal(check(t), 0);
    assert_int_equal(check(other), 0);
    gw_keys_revoke(fx.gw.keys, "s-revoked", (int64_t)time(NULL) + 900);
    assert_int_equal(check(t), 401);
    assert_string_equal(answered.detail, "the session of this token was revoked");
    assert_int_equal(check(t), 401); /* and again, now verified afresh */
    /* another session's token is re-checked against the revocations and stays good */
    assert_int_equal(check(other), 0);
    assert_int_equal(kept(), 1);
    free(t);
    free(other);
}

static void test_auth_cache_refuses_a_kept_token_past_its_exp(void **state)
{
    install(fx.a, NULL);
    int64_t exp = (int64_t)time(NULL) + 1;
    char *t = token_for(fx.a, "s1", exp);
    assert_int_equal(check(t), 0);
    assert_int_equal(kept(), 1);
    while ((int64_t)time(NULL) <= exp) /* leeway 0: refused from exp + 1 on */
        usleep(50000);
    assert_int_equal(check(t), 401);
    assert_string_equal(answered.detail, "token expired");
    assert_int_equal(kept(), 0);
    free(t);
}

static void test_auth_cache_drops_tokens_of_a_removed_key(void **state)
{
    install(fx.a, fx.b, NULL);
    char *ta = token_of(fx.a, "s1"), *tb = token_of(fx.b, "s2");
    assert_int_equal(check(ta), 0);
    assert_int_equal(check(tb), 0);
    assert_int_equal(kept(), 2);
    install(fx.b, NULL); /* k1 is gone */
    assert_int_equal(check(ta), 401);
    assert_string_equal(answered.detail, "the token is signed with an unknown key");
    assert_int_equal(check(tb), 0);
    assert_int_equal(kept(), 1);
    free(ta);
    free(tb);
}

static void test_auth_cache_drops_tokens_of_a_key_replaced_under_its_kid(void **state)
{
    install(fx.a, NULL);
    char *t = token_of(fx.a, "s1");
    assert_int_equal(check(t), 0);
    install(fx.a2, NULL); /* "k1" now names another key: the old signature no longer verifies */
    assert_int_equal(check(t), 401);
    assert_string_equal(answered.detail, "bad signature");
    assert_int_equal(kept(), 0);
    free(t);
}

static void test_auth_cache_keeps_tokens_when_a_key_is_added_or_the_set_refetched(void **state)
{
    install(fx.a, NULL);
    char *t = token_of(fx.a, "s1");
    assert_int_equal(check(t), 0);
    uint64_t gen = gw_keys_generation(fx.gw.keys);
    install(fx.a, NULL); /* the periodic sync fetches the same set: nothing moves */
    assert_int_equal(gw_keys_generation(fx.gw.keys), gen);
    install(fx.a, fx.b, NULL); /* rotation adds k2 */
    assert_true(gw_keys_generation(fx.gw.keys) != gen);
    assert_int_equal(check(t), 0);
    assert_int_equal(kept(), 1);
    char *tb = token_of(fx.b, "s2");
    assert_int_equal(check(tb), 0);
    assert_int_equal(kept(), 2);
    free(t);
    free(tb);
}

static void test_auth_cache_off_verifies_every_time(void **state)
{
    gw_tokcache_destroy(fx.th.tokens);
    fx.th.tokens = NULL; /* gateway.token_cache: 0 */
    install(fx.a, NULL);
    char *t = token_of(fx.a, "s1");
    assert_int_equal(check(t), 0);
    assert_int_equal(check(t), 0);
    gw_keys_revoke(fx.gw.keys, "s1", (int64_t)time(NULL) + 900);
    assert_int_equal(check(t), 401);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_cache_serves_a_token_seen_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_refuses_a_kept_token_once_its_session_is_revoked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_refuses_a_kept_token_past_its_exp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_drops_tokens_of_a_removed_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_drops_tokens_of_a_key_replaced_under_its_kid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_keeps_tokens_when_a_key_is_added_or_the_set_refetched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_off_verifies_every_time, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
