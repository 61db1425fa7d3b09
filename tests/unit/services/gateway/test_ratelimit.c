/*
 * test_ratelimit.c: unit tests for services/gateway/ratelimit.c: the token
 * bucket arithmetic (the same the Redis script does), rate parsing, the
 * RateLimit-* numbers, and the local fallback table (separate keys and
 * groups, bounded size, exact under concurrent use).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "services/gateway/ratelimit.c"

static void test_ratelimit_parses_rates(void **state)
{
    double r;
    assert_true(gw_rl_parse_rate(&r, "10/s"));
    assert_true(r == 10.0);
    assert_true(gw_rl_parse_rate(&r, "120/m"));
    assert_true(r == 2.0);
    assert_true(gw_rl_parse_rate(&r, "36/hour"));
    assert_true(r == 0.01);
    assert_true(gw_rl_parse_rate(&r, "0.5/sec"));
    assert_true(r == 0.5);
    assert_false(gw_rl_parse_rate(&r, "10"));
    assert_false(gw_rl_parse_rate(&r, "0/s"));
    assert_false(gw_rl_parse_rate(&r, "-1/s"));
    assert_false(gw_rl_parse_rate(&r, "10/fortnight"));
    assert_false(gw_rl_parse_rate(&r, "/s"));
}

static void test_ratelimit_bucket_allows_burst_then_refuses(void **state)
{
    gw_bucket_t b = {0};
    gw_rl_result_t r;
    int64_t t = 1000000;
    for (int i = 0; i < 5; i++) {
        gw_bucket_take(&r, &b, 1.0, 5, t);
        assert_true(r.allowed);
        assert_int_equal(r.limit, 5);
        assert_int_equal(r.remaining, 4 - i);
    }
    gw_bucket_take(&r, &b, 1.0, 5, t);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 1);
    assert_int_equal(r.reset_s, 5); /* five tokens at one a second */
    /* 999 ms later: still no whole token */
    gw_bucket_take(&r, &b, 1.0, 5, t + 999);
    assert_false(r.allowed);
    gw_bucket_take(&r, &b, 1.0, 5, t + 1000);
    assert_true(r.allowed);
    /* a long pause refills to the burst, never beyond */
    gw_bucket_take(&r, &b, 1.0, 5, t + 3600 * 1000);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 4);
}

static void test_ratelimit_slow_rates_give_long_retry_after(void **state)
{
    gw_bucket_t b = {0};
    gw_rl_result_t r;
    double rate;
    assert_true(gw_rl_parse_rate(&rate, "10/m"));
    gw_bucket_take(&r, &b, rate, 1, 5000);
    assert_true(r.allowed);
    gw_bucket_take(&r, &b, rate, 1, 5000);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 6);
    gw_bucket_take(&r, &b, rate, 1, 5000 + 3000); /* half way */
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 3);
}

static void test_ratelimit_clock_going_back_grants_nothing(void **state)
{
    gw_bucket_t b = {0};
    gw_rl_result_t r;
    gw_bucket_take(&r, &b, 1.0, 1, 10000);
    assert_true(r.allowed);
    gw_bucket_take(&r, &b, 1.0, 1, 5000);
    assert_false(r.allowed);
}

static gw_rl_policy_t policy(const char *group, double rate, double burst)
{
    return (gw_rl_policy_t){.group = group, .rate = rate, .burst = burst, .enabled = true};
}

static void test_ratelimit_local_keys_and_groups_are_separate(void **state)
{
    gw_rl_local_t *t = gw_rl_local_create(1000);
    gw_rl_policy_t login = policy("login", 1, 2), reads = policy("reads", 1, 2);
    gw_rl_result_t r;
    for (int i = 0; i < 2; i++) {
        gw_rl_local_take(&r, t, &login, "i:10.0.0.1", 1000);
        assert_true(r.allowed);
    }
    gw_rl_local_take(&r, t, &login, "i:10.0.0.1", 1000);
    assert_false(r.allowed);
    gw_rl_local_take(&r, t, &login, "i:10.0.0.2", 1000);
    assert_true(r.allowed);
    gw_rl_local_take(&r, t, &reads, "i:10.0.0.1", 1000);
    assert_true(r.allowed);
    assert_int_equal(gw_rl_local_size(t), 3);
    gw_rl_local_destroy(t);
}

static void test_ratelimit_local_table_stays_bounded(void **state)
{
    gw_rl_local_t *t = gw_rl_local_create(1000);
    gw_rl_policy_t p = policy("default", 100, 10);
    gw_rl_result_t r;
    char key[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(key, sizeof(key), "i:%d", i);
        gw_rl_local_take(&r, t, &p, key, 1000 + i / 100);
        assert_true(r.allowed);
    }
    assert_true(gw_rl_local_size(t) <= 1000 + 16);
    gw_rl_local_destroy(t);
}

typedef struct hammer {
    gw_rl_local_t *t;
    gw_rl_policy_t *p;
    int allowed;
} hammer_t;

static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    gw_rl_result_t r;
    for (int i = 0; i < 10000; i++) {
        gw_rl_local_take(&r, h->t, h->p, "u:same", 42000); /* frozen clock: no refill */
        h->allowed += r.allowed;
    }
    return NULL;
}

static void test_ratelimit_local_is_exact_across_threads(void **state)
{
    gw_rl_local_t *t = gw_rl_local_create(1000);
    gw_rl_policy_t p = policy("default", 1, 777);
    hammer_t h[4];
    pthread_t tid[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){t, &p, 0};
        pthread_create(&tid[i], NULL, hammer_main, &h[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        total += h[i].allowed;
    }
    assert_int_equal(total, 777);
    gw_rl_local_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_parses_rates),
        cmocka_unit_test(test_ratelimit_bucket_allows_burst_then_refuses),
        cmocka_unit_test(test_ratelimit_slow_rates_give_long_retry_after),
        cmocka_unit_test(test_ratelimit_clock_going_back_grants_nothing),
        cmocka_unit_test(test_ratelimit_local_keys_and_groups_are_separate),
        cmocka_unit_test(test_ratelimit_local_table_stays_bounded),
        cmocka_unit_test(test_ratelimit_local_is_exact_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
