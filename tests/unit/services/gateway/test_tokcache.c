/*
 * test_tokcache.c: unit tests for services/gateway/tokcache.c, a loop
 * thread's verified tokens: hits need every byte of the token, the least
 * recently used entry goes when the cache is full, a token put again
 * replaces its entry, and retain/drop forget exactly what they are told.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "services/gateway/tokcache.c"

static mp_jwt_claims_t claims_of(const char *sub, const char *kid)
{
    mp_jwt_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    snprintf(c.kid, sizeof(c.kid), "%s", kid);
    c.exp = 2000000000;
    return c;
}

static gw_tokcache_entry_t *find(gw_tokcache_t *c, const char *token)
{
    return gw_tokcache_find(c, token, strlen(token));
}

static void put(gw_tokcache_t *c, const char *token, const char *sub)
{
    mp_jwt_claims_t cl = claims_of(sub, "k1");
    gw_tokcache_put(c, token, strlen(token), &cl, 7);
}

static void test_tokcache_hits_only_the_exact_bytes(void **state)
{
    gw_tokcache_t *c = gw_tokcache_create(16);
    char token[600];
    memset(token, 'a', sizeof(token) - 1);
    token[sizeof(token) - 1] = '\0';
    put(c, token, "u1");
    gw_tokcache_entry_t *e = find(c, token);
    assert_non_null(e);
    assert_string_equal(e->claims.sub, "u1");
    assert_int_equal(e->revoked_gen, 7);
    /* one byte different anywhere, a prefix, or one byte more: a miss */
    for (size_t at = 0; at < sizeof(token) - 1; at += 97) {
        token[at] = 'b';
        assert_null(find(c, token));
        token[at] = 'a';
    }
    assert_null(gw_tokcache_find(c, token, strlen(token) - 1));
    char longer[sizeof(token) + 1];
    snprintf(longer, sizeof(longer), "%sa", token);
    assert_null(find(c, longer));
    /* short tokens and the empty tail of the hash work as well */
    put(c, "abc", "u2");
    assert_string_equal(find(c, "abc")->claims.sub, "u2");
    assert_null(find(c, "abd"));
    assert_int_equal(gw_tokcache_size(c), 2);
    gw_tokcache_destroy(c);
}

static void test_tokcache_evicts_the_least_recently_used(void **state)
{
    gw_tokcache_t *c = gw_tokcache_create(3);
    put(c, "t1", "u1");
    put(c, "t2", "u2");
    put(c, "t3", "u3");
    assert_non_null(find(c, "t1")); /* t1 used: t2 is now the oldest */
    put(c, "t4", "u4");
    assert_int_equal(gw_tokcache_size(c), 3);
    assert_null(find(c, "t2"));
    assert_non_null(find(c, "t1"));
    assert_non_null(find(c, "t3"));
    assert_non_null(find(c, "t4"));
    /* t1 was looked up before t3 and t4: it goes next */
    put(c, "t5", "u5");
    assert_null(find(c, "t1"));
    assert_int_equal(gw_tokcache_size(c), 3);
    gw_tokcache_destroy(c);
}

static void test_tokcache_stays_bounded_under_many_tokens(void **state)
{
    gw_tokcache_t *c = gw_tokcache_create(100);
    char token[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(token, sizeof(token), "header.payload-%d.signature", i);
        put(c, token, "u");
        assert_true(gw_tokcache_size(c) <= 100);
    }
    assert_int_equal(gw_tokcache_size(c), 100);
    for (int i = 0; i < 10000; i++) {
        snprintf(token, sizeof(token), "header.payload-%d.signature", i);
        if (i < 9900)
            assert_null(find(c, token));
        else
            assert_non_null(find(c, token));
    }
    gw_tokcache_destroy(c);
}

static void test_tokcache_put_again_replaces(void **state)
{
    gw_tokcache_t *c = gw_tokcache_create(4);
    put(c, "t1", "old");
    put(c, "t1", "new");
    assert_int_equal(gw_tokcache_size(c), 1);
    assert_string_equal(find(c, "t1")->claims.sub, "new");
    gw_tokcache_destroy(c);
}

static void test_tokcache_drop_forgets_one(void **state)
{
    gw_tokcache_t *c = gw_tokcache_create(4);
    put(c, "t1", "u1");
    put(c, "t2", "u2");
    put(c, "t3", "u3");
    gw_tokcache_drop(c, find(c, "t2"));
    assert_null(find(c, "t2"));
    assert_non_null(find(c, "t1"));
    assert_non_null(find(c, "t3"));
    /* the LRU list survives drops at either end and in the middle */
    gw_tokcache_drop(c, find(c, "t3")); /* the newest */
    gw_tokcache_drop(c, c->oldest);
    assert_int_equal(gw_tokcache_size(c), 0);
    put(c, "t4", "u4");
    assert_non_null(find(c, "t4"));
    gw_tokcache_destroy(c);
}

static bool keep_kid(void *arg, const mp_jwt_claims_t *claims)
{
    return strcmp(claims->kid, arg) == 0;
}

static void test_tokcache_retain_drops_what_it_is_told(void **state)
{
    gw_tokcache_t *c = gw_tokcache_create(8);
    mp_jwt_claims_t a = claims_of("u1", "k-old"), b = claims_of("u2", "k-new");
    gw_tokcache_put(c, "ta", 2, &a, 0);
    gw_tokcache_put(c, "tb", 2, &b, 0);
    gw_tokcache_put(c, "tc", 2, &a, 0);
    assert_int_equal(gw_tokcache_retain(c, keep_kid, "k-new"), 2);
    assert_int_equal(gw_tokcache_size(c), 1);
    assert_null(find(c, "ta"));
    assert_null(find(c, "tc"));
    assert_string_equal(find(c, "tb")->claims.sub, "u2");
    assert_int_equal(gw_tokcache_retain(c, keep_kid, "k-none"), 1);
    assert_int_equal(gw_tokcache_size(c), 0);
    gw_tokcache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokcache_hits_only_the_exact_bytes),
        cmocka_unit_test(test_tokcache_evicts_the_least_recently_used),
        cmocka_unit_test(test_tokcache_stays_bounded_under_many_tokens),
        cmocka_unit_test(test_tokcache_put_again_replaces),
        cmocka_unit_test(test_tokcache_drop_forgets_one),
        cmocka_unit_test(test_tokcache_retain_drops_what_it_is_told),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
