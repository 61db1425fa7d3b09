/*
 * test_status.c: unit tests for core/status.c, the per-thread error detail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "mp/status.h"

static void test_set_returns_the_status_and_keeps_the_detail(void **state)
{
    (void)state;
    assert_int_equal(mp_err_set(MP_EINVAL, "field %s is %d", "x", 7), MP_EINVAL);
    assert_string_equal(mp_err_get(), "field x is 7");
}

/* Wrapping the previous detail must not read the buffer while writing it: "a: b", not "a: a: ". */
static void test_wrapping_the_previous_detail(void **state)
{
    (void)state;
    mp_err_set(MP_EUNAVAIL, "no reply");
    mp_err_set(MP_EUNAVAIL, "calling user.v1.provision failed: %s", mp_err_get());
    assert_string_equal(mp_err_get(), "calling user.v1.provision failed: no reply");
    mp_err_set(MP_EUNAVAIL, "%s; %s", mp_err_get(), mp_err_get());
    assert_string_equal(mp_err_get(), "calling user.v1.provision failed: no reply; "
                                      "calling user.v1.provision failed: no reply");
}

static void test_long_details_are_cut_not_overrun(void **state)
{
    (void)state;
    char big[10000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mp_err_set(MP_EINVAL, "%s", big);
    size_t n = strlen(mp_err_get());
    assert_true(n > 1000 && n < sizeof(big) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_returns_the_status_and_keeps_the_detail),
        cmocka_unit_test(test_wrapping_the_previous_detail),
        cmocka_unit_test(test_long_details_are_cut_not_overrun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
