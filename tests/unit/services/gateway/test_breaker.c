/*
 * test_breaker.c: unit tests for services/gateway/breaker.c: the circuit
 * state machine driven by a test clock: when it opens (share of failures,
 * minimum calls, rolling window), what an open circuit answers, and how
 * half-open probes close or reopen it; and that successes counted from
 * many threads at once (without the lock) are all counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>
#include "services/gateway/breaker.c"

static const gw_breaker_opts_t opts = {
    .window_ms = 10000, .bucket_ms = 1000, .failure_ratio = 0.5, .min_requests = 10, .cooldown_ms = 5000, .probes = 2};

/* One admitted call ending as `failed`; returns the event of recording it. */
static gw_breaker_event_t call(gw_breaker_t *b, int64_t now, bool failed)
{
    bool probe;
    int ra;
    gw_breaker_event_t ev;
    assert_true(gw_breaker_admit(b, now, &probe, &ra, &ev));
    gw_breaker_record(b, now, probe, failed, &ev);
    return ev;
}

static void test_breaker_opens_at_the_failure_share_with_enough_calls(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    int64_t t = 100000;
    /* nine failures alone are below min_requests: it stays closed */
    for (int i = 0; i < 9; i++)
        assert_false(call(&b, t, true).changed);
    gw_breaker_event_t ev = call(&b, t, true);
    assert_true(ev.changed);
    assert_int_equal(ev.from, GW_CIRCUIT_CLOSED);
    assert_int_equal(ev.to, GW_CIRCUIT_OPEN);
    assert_int_equal(ev.calls, 10);
    assert_int_equal(gw_breaker_state(&b), GW_CIRCUIT_OPEN);
    gw_breaker_dispose(&b);
}

static void test_breaker_stays_closed_below_the_share(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    for (int i = 0; i < 100; i++)
        call(&b, 100000 + i * 10, i % 3 == 0); /* a third fail */
    assert_int_equal(gw_breaker_state(&b), GW_CIRCUIT_CLOSED);
    gw_breaker_dispose(&b);
}

static void test_breaker_forgets_failures_outside_the_window(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    for (int i = 0; i < 9; i++)
        call(&b, 100000, true);
    /* eleven seconds later the old failures have left the window: one more is not enough */
    assert_false(call(&b, 111000, true).changed);
    assert_int_equal(gw_breaker_state(&b), GW_CIRCUIT_CLOSED);
    gw_breaker_dispose(&b);
}

static void open_it(gw_breaker_t *b, int64_t t)
{
    for (int i = 0; i < 10; i++)
        call(b, t, true);
    assert_int_equal(gw_breaker_state(b), GW_CIRCUIT_OPEN);
}

static void test_breaker_open_refuses_with_the_rest_of_the_cooldown(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    open_it(&b, 100000);
    bool probe;
    int ra = 0;
    gw_breaker_event_t ev;
    assert_false(gw_breaker_admit(&b, 100000, &probe, &ra, &ev));
    assert_int_equal(ra, 5);
    assert_false(gw_breaker_admit(&b, 103500, &probe, &ra, &ev));
    assert_int_equal(ra, 2);
    assert_false(ev.changed);
    gw_breaker_dispose(&b);
}

static void test_breaker_probes_close_it(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    open_it(&b, 100000);
    bool p1, p2, p3;
    int ra;
    gw_breaker_event_t ev;
    assert_true(gw_breaker_admit(&b, 105000, &p1, &ra, &ev));
    assert_true(ev.changed);
    assert_int_equal(ev.to, GW_CIRCUIT_HALF_OPEN);
    assert_true(p1);
    assert_true(gw_breaker_admit(&b, 105001, &p2, &ra, &ev));
    assert_true(p2);
    /* two probes out: a third caller is refused at once */
    assert_false(gw_breaker_admit(&b, 105002, &p3, &ra, &ev));
    assert_int_equal(ra, 1);
    gw_breaker_record(&b, 105010, true, false, &ev);
    assert_false(ev.changed);
    gw_breaker_record(&b, 105020, true, false, &ev);
    assert_true(ev.changed);
    assert_int_equal(ev.to, GW_CIRCUIT_CLOSED);
    /* closed with a clean window: it takes a full share of failures again to open */
    for (int i = 0; i < 9; i++)
        assert_false(call(&b, 105100, true).changed);
    gw_breaker_dispose(&b);
}

static void test_breaker_failed_probe_reopens(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    open_it(&b, 100000);
    bool probe;
    int ra;
    gw_breaker_event_t ev;
    assert_true(gw_breaker_admit(&b, 106000, &probe, &ra, &ev));
    gw_breaker_record(&b, 106100, probe, true, &ev);
    assert_true(ev.changed);
    assert_int_equal(ev.from, GW_CIRCUIT_HALF_OPEN);
    assert_int_equal(ev.to, GW_CIRCUIT_OPEN);
    /* a fresh cool-down from the failed probe */
    assert_false(gw_breaker_admit(&b, 110000, &probe, &ra, &ev));
    assert_int_equal(ra, 2);
    gw_breaker_dispose(&b);
}

static void test_breaker_abandoned_probe_frees_its_slot(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    open_it(&b, 100000);
    bool p1, p2, p3;
    int ra;
    gw_breaker_event_t ev;
    assert_true(gw_breaker_admit(&b, 105000, &p1, &ra, &ev));
    assert_true(gw_breaker_admit(&b, 105000, &p2, &ra, &ev));
    assert_false(gw_breaker_admit(&b, 105000, &p3, &ra, &ev));
    gw_breaker_release(&b, p1); /* the client went away */
    assert_true(gw_breaker_admit(&b, 105000, &p3, &ra, &ev));
    assert_true(p3);
    gw_breaker_dispose(&b);
}

static void test_breaker_late_outcomes_do_not_count_while_open(void **state)
{
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    open_it(&b, 100000);
    gw_breaker_event_t ev;
    gw_breaker_record(&b, 100500, false, false, &ev); /* a call admitted before it opened */
    assert_false(ev.changed);
    assert_int_equal(gw_breaker_state(&b), GW_CIRCUIT_OPEN);
    gw_breaker_dispose(&b);
}

typedef struct hammer {
    gw_breaker_t *b;
    int64_t t;
} hammer_t;

static void *succeed_many(void *arg)
{
    hammer_t *h = arg;
    for (int i = 0; i < 20000; i++) /* spread over three seconds: buckets move on while others count */
        call(h->b, h->t + i % 3000, false);
    return NULL;
}

static void test_breaker_counts_every_success_from_many_threads(void **state)
{
    /* successes while closed are counted without the lock: none may be lost, or the share of failures is wrong */
    gw_breaker_t b;
    gw_breaker_init(&b, &opts);
    hammer_t h = {&b, 200000};
    pthread_t tid[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&tid[i], NULL, succeed_many, &h);
    for (int i = 0; i < 4; i++)
        pthread_join(tid[i], NULL);
    /* 80000 successes in the window: it opens at exactly as many failures, not one before */
    for (int i = 0; i < 79999; i++)
        assert_false(call(&b, 202999, true).changed);
    gw_breaker_event_t ev = call(&b, 202999, true);
    assert_true(ev.changed);
    assert_int_equal(ev.calls, 160000);
    gw_breaker_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_opens_at_the_failure_share_with_enough_calls),
        cmocka_unit_test(test_breaker_stays_closed_below_the_share),
        cmocka_unit_test(test_breaker_forgets_failures_outside_the_window),
        cmocka_unit_test(test_breaker_open_refuses_with_the_rest_of_the_cooldown),
        cmocka_unit_test(test_breaker_probes_close_it),
        cmocka_unit_test(test_breaker_failed_probe_reopens),
        cmocka_unit_test(test_breaker_abandoned_probe_frees_its_slot),
        cmocka_unit_test(test_breaker_late_outcomes_do_not_count_while_open),
        cmocka_unit_test(test_breaker_counts_every_success_from_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
