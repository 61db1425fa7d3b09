/*
 * test_log.c: unit tests for core/log.c's limiter of repeated lines (mp_log_now_and_then).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>
#include "mp/log.h"

static void test_first_call_passes_then_the_rest_are_counted_until_the_interval(void **state)
{
    (void)state;
    mp_log_limiter_t l = {0};
    uint64_t left_out = 99;
    assert_true(mp_log_now_and_then(&l, 10000, &left_out));
    assert_int_equal(left_out, 0);
    for (int i = 0; i < 50; i++)
        assert_false(mp_log_now_and_then(&l, 10000, &left_out));
    assert_int_equal(atomic_load(&l.suppressed), 50);
}

static void test_after_the_interval_one_passes_with_the_count_left_out(void **state)
{
    (void)state;
    mp_log_limiter_t l = {0};
    uint64_t left_out = 0;
    assert_true(mp_log_now_and_then(&l, 20, NULL));
    assert_false(mp_log_now_and_then(&l, 20, NULL));
    assert_false(mp_log_now_and_then(&l, 20, NULL));
    nanosleep(&(struct timespec){.tv_nsec = 30 * 1000000}, NULL);
    assert_true(mp_log_now_and_then(&l, 20, &left_out));
    assert_int_equal(left_out, 2);
    assert_false(mp_log_now_and_then(&l, 20, &left_out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_call_passes_then_the_rest_are_counted_until_the_interval),
        cmocka_unit_test(test_after_the_interval_one_passes_with_the_count_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
