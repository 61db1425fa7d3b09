/*
 * Integration tests for Order, the payment saga and Notification: the three
 * roles run in this process (saga_env.c) against the harness's real NATS
 * JetStream and Postgres, with a fake Product (fake_product.c) until the
 * real one is merged; the cases are in cases_orders.c and cases_saga.c.
 * Black-box tests of the same flow through the gateway, against the real
 * Product, are tests/blackbox/test_orders*.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "saga_env.h"

void test_order_twenty_identical_requests_make_one_order(void **state);
void test_order_key_rules(void **state);
void test_order_input_is_checked(void **state);
void test_order_out_of_stock_keeps_nothing_and_frees_the_key(void **state);
void test_order_product_down_is_503_and_the_key_can_be_retried(void **state);
void test_order_lost_reserve_reply_gives_the_stock_back(void **state);
void test_order_lost_reserve_and_failed_release_keep_the_key_until_released(void **state);
void test_order_visibility_and_cancel_rules(void **state);
void test_order_list_is_newest_first_and_paginated(void **state);
void test_order_abandoned_claim_gives_its_stock_back(void **state);
void test_saga_paid_order_is_confirmed_and_notified(void **state);
void test_saga_declined_payment_cancels_and_releases_stock(void **state);
void test_saga_transient_provider_errors_are_retried(void **state);
void test_saga_cancel_during_a_slow_charge_never_keeps_the_money(void **state);
void test_saga_payment_event_delivered_twice_changes_nothing_twice(void **state);

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_twenty_identical_requests_make_one_order),
        cmocka_unit_test(test_order_key_rules),
        cmocka_unit_test(test_order_input_is_checked),
        cmocka_unit_test(test_order_out_of_stock_keeps_nothing_and_frees_the_key),
        cmocka_unit_test(test_order_product_down_is_503_and_the_key_can_be_retried),
        cmocka_unit_test(test_order_lost_reserve_reply_gives_the_stock_back),
        cmocka_unit_test(test_order_lost_reserve_and_failed_release_keep_the_key_until_released),
        cmocka_unit_test(test_order_visibility_and_cancel_rules),
        cmocka_unit_test(test_order_list_is_newest_first_and_paginated),
        cmocka_unit_test(test_order_abandoned_claim_gives_its_stock_back),
        cmocka_unit_test(test_saga_paid_order_is_confirmed_and_notified),
        cmocka_unit_test(test_saga_declined_payment_cancels_and_releases_stock),
        cmocka_unit_test(test_saga_transient_provider_errors_are_retried),
        cmocka_unit_test(test_saga_cancel_during_a_slow_charge_never_keeps_the_money),
        cmocka_unit_test(test_saga_payment_event_delivered_twice_changes_nothing_twice),
    };
    return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
