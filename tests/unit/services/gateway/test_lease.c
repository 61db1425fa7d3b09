/*
 * test_lease.c: unit tests for services/gateway/lease.c, the batches of
 * rate-limit tokens a loop thread takes from Redis, on a test clock: how
 * large a lease may be, how its size follows demand, that its tokens die
 * with it, what headers a decision from a lease carries, the queue of
 * requests waiting for the next batch, and the table's bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "services/gateway/lease.c"
#include "services/gateway/ratelimit.c"

#define TTL 100

static gw_rl_policy_t policy(double rate, double burst)
{
    gw_rl_policy_t p = {.group = "g", .rate = rate, .burst = burst, .enabled = true};
    p.lease_max = gw_lease_max(&p, TTL);
    return p;
}

static void test_lease_max_follows_rate_and_burst(void **state)
{
    gw_rl_policy_t tight = {.rate = 2, .burst = 6}, login = {.rate = 10.0 / 60, .burst = 5},
                   dflt = {.rate = 50, .burst = 100}, big_burst = {.rate = 50, .burst = 100000},
                   bench = {.rate = 1000000, .burst = 1000000};
    assert_int_equal(gw_lease_max(&tight, TTL), 1); /* never leases: exact, one call per decision */
    assert_int_equal(gw_lease_max(&login, TTL), 1);
    assert_int_equal(gw_lease_max(&dflt, TTL), 5);        /* rate x 100 ms */
    assert_int_equal(gw_lease_max(&big_burst, TTL), 5);   /* rate x ttl, however large the burst */
    assert_int_equal(gw_lease_max(&bench, TTL), 100000);  /* a tenth of the burst, or rate x ttl */
    assert_int_equal(gw_lease_max(&bench, 1000), 100000); /* a tenth of the burst caps a long ttl */
    assert_int_equal(gw_lease_max(&dflt, 0), 1);
}

static void test_lease_starts_with_one_token_and_spends_only_what_was_granted(void **state)
{
    gw_rl_policy_t p = policy(50, 100);
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *l = gw_lease_get(t, &p, "u:1", 1000);
    gw_rl_result_t r = {0};
    assert_false(gw_lease_take(l, 1000, &r)); /* empty */
    assert_int_equal(gw_lease_next(l, 1000), 1);
    gw_lease_grant(l, 1, 99, 0, 1000);
    assert_true(gw_lease_take(l, 1000, &r));
    assert_true(r.allowed);
    assert_false(gw_lease_take(l, 1000, &r));
    gw_lease_table_destroy(t, NULL);
}

static void test_lease_grows_with_demand_up_to_its_max(void **state)
{
    gw_rl_policy_t p = policy(50, 100); /* max 5 */
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *l = gw_lease_get(t, &p, "u:1", 1000);
    gw_rl_result_t r = {0};
    long want = gw_lease_next(l, 1000), now = 1000;
    long sizes[6];
    for (int i = 0; i < 6; i++) { /* every lease used up at once: the next is twice as large, up to 5 */
        gw_lease_grant(l, want, 90, 0, now);
        for (long k = 0; k < want; k++)
            assert_true(gw_lease_take(l, now, &r));
        assert_false(gw_lease_take(l, now, &r));
        now += 1;
        sizes[i] = want = gw_lease_next(l, now);
    }
    assert_int_equal(sizes[0], 2);
    assert_int_equal(sizes[1], 4);
    assert_int_equal(sizes[2], 5);
    assert_int_equal(sizes[5], 5);
    gw_lease_table_destroy(t, NULL);
}

static void test_lease_shrinks_to_what_was_used_and_unspent_tokens_die(void **state)
{
    gw_rl_policy_t p = policy(1000, 10000); /* max 100 */
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *l = gw_lease_get(t, &p, "u:1", 1000);
    gw_rl_result_t r = {0};
    l->want = 64;
    assert_int_equal(gw_lease_next(l, 1000), 64);
    gw_lease_grant(l, 64, 5000, 0, 1000);
    for (int k = 0; k < 10; k++)
        assert_true(gw_lease_take(l, 1000 + k, &r));
    /* the lease lives 100 ms: its 54 tokens left cannot be spent at 1100 or later */
    assert_true(gw_lease_take(l, 1099, &r));
    assert_false(gw_lease_take(l, 1100, &r));
    assert_int_equal(gw_lease_next(l, 1100), 11); /* the next one as large as what was used */
    assert_int_equal(l->tokens, 0);
    gw_lease_grant(l, 11, 5000, 0, 1100);
    assert_int_equal(gw_lease_next(l, 5000), 1); /* nothing used: one token */
    gw_lease_table_destroy(t, NULL);
}

static void test_lease_refusal_holds_until_the_next_token_then_asks_for_one(void **state)
{
    gw_rl_policy_t p = policy(50, 100);
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *l = gw_lease_get(t, &p, "u:1", 1000);
    gw_rl_result_t r = {0};
    l->want = 5;
    gw_lease_next(l, 1000);
    gw_lease_grant(l, 0, 0, 15, 1000); /* Redis had no whole token, and has the next in 15 ms */
    /* refused without asking Redis until then, with the time left as Retry-After */
    assert_true(gw_lease_take(l, 1000, &r));
    assert_false(r.allowed);
    assert_int_equal(r.limit, 100);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 1);
    assert_int_equal(r.reset_s, 2);
    assert_true(gw_lease_take(l, 1014, &r));
    assert_false(r.allowed);
    assert_false(gw_lease_take(l, 1015, &r)); /* a token may be there now: ask */
    assert_int_equal(gw_lease_next(l, 1015), 1);
    gw_lease_grant(l, 3, 0, 0, 1015); /* asked for more than Redis had: what it had */
    for (int k = 0; k < 3; k++)
        assert_true(gw_lease_take(l, 1015, &r) && r.allowed);
    assert_false(gw_lease_take(l, 1015, &r));
    gw_lease_table_destroy(t, NULL);
}

static void test_lease_headers_mirror_the_shared_bucket(void **state)
{
    gw_rl_policy_t p = policy(50, 100);
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *l = gw_lease_get(t, &p, "u:1", 1000);
    gw_rl_result_t r = {0};
    l->want = 5;
    gw_lease_next(l, 1000);
    gw_lease_grant(l, 5, 40, 0, 1000); /* 40 left in Redis after these 5: 45 from this thread's view */
    assert_true(gw_lease_take(l, 1000, &r));
    assert_int_equal(r.limit, 100);
    assert_int_equal(r.remaining, 44);
    assert_int_equal(r.reset_s, 2); /* 56 tokens at 50/s: 1.12 s, rounded up */
    assert_int_equal(r.retry_after_s, 0);
    assert_true(gw_lease_take(l, 1020, &r)); /* 20 ms at 50/s refilled one token */
    assert_int_equal(r.remaining, 44);
    gw_lease_table_destroy(t, NULL);
}

static void test_lease_waiters_are_served_in_order(void **state)
{
    gw_rl_policy_t p = policy(50, 100);
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *l = gw_lease_get(t, &p, "u:1", 1000);
    gw_lease_waiter_t w[4];
    assert_null(gw_lease_pop(l));
    for (int i = 0; i < 4; i++)
        gw_lease_wait(l, &w[i]);
    gw_lease_unwait(&w[1]);
    gw_lease_unwait(&w[1]); /* twice is harmless */
    assert_ptr_equal(gw_lease_pop(l), &w[0]);
    assert_ptr_equal(gw_lease_pop(l), &w[2]);
    assert_ptr_equal(gw_lease_pop(l), &w[3]);
    assert_null(gw_lease_pop(l));
    gw_lease_table_destroy(t, NULL);
}

static void test_lease_table_keys_by_policy_and_key(void **state)
{
    gw_rl_policy_t p = policy(50, 100), q = policy(50, 100);
    gw_lease_table_t *t = gw_lease_table_create(16, TTL);
    gw_lease_t *a = gw_lease_get(t, &p, "u:1", 1000);
    assert_ptr_equal(gw_lease_get(t, &p, "u:1", 1000), a);
    assert_ptr_not_equal(gw_lease_get(t, &p, "u:2", 1000), a);
    assert_ptr_not_equal(gw_lease_get(t, &q, "u:1", 1000), a);
    assert_int_equal(gw_lease_count(t), 3);
    gw_lease_table_destroy(t, NULL);
}

static int dropped;

static void drop(gw_lease_waiter_t *w)
{
    dropped++;
}

static void test_lease_table_stays_bounded_and_keeps_leases_in_use(void **state)
{
    gw_rl_policy_t p = policy(50, 100);
    gw_lease_table_t *t = gw_lease_table_create(4, TTL);
    gw_lease_waiter_t w;
    char key[16];
    gw_lease_t *busy[4];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "u:%d", i);
        busy[i] = gw_lease_get(t, &p, key, 1000);
        gw_lease_grant(busy[i], 1, 50, 0, 1000); /* live until 1100 */
    }
    busy[0]->fetching = true;
    gw_lease_wait(busy[1], &w);
    busy[2]->serving = true;
    /* full, every lease live: no room */
    assert_null(gw_lease_get(t, &p, "u:new", 1050));
    /* at 1100 the idle one has expired: swept to make room (not before the sweep pause ends) */
    assert_null(gw_lease_get(t, &p, "u:new", 1100));
    assert_non_null(gw_lease_get(t, &p, "u:new", 1150));
    assert_int_equal(gw_lease_count(t), 4);
    /* the fetching one, the one with a waiter and the one being served survived */
    assert_ptr_equal(gw_lease_get(t, &p, "u:0", 1150), busy[0]);
    assert_ptr_equal(gw_lease_get(t, &p, "u:1", 1150), busy[1]);
    assert_ptr_equal(gw_lease_get(t, &p, "u:2", 1150), busy[2]);
    assert_int_equal(gw_lease_count(t), 4);
    dropped = 0;
    gw_lease_table_destroy(t, drop);
    assert_int_equal(dropped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_max_follows_rate_and_burst),
        cmocka_unit_test(test_lease_starts_with_one_token_and_spends_only_what_was_granted),
        cmocka_unit_test(test_lease_grows_with_demand_up_to_its_max),
        cmocka_unit_test(test_lease_shrinks_to_what_was_used_and_unspent_tokens_die),
        cmocka_unit_test(test_lease_refusal_holds_until_the_next_token_then_asks_for_one),
        cmocka_unit_test(test_lease_headers_mirror_the_shared_bucket),
        cmocka_unit_test(test_lease_waiters_are_served_in_order),
        cmocka_unit_test(test_lease_table_keys_by_policy_and_key),
        cmocka_unit_test(test_lease_table_stays_bounded_and_keeps_leases_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
