/*
 * Unit tests for services/notification/templates.c: texts per template and
 * locale, the English fallback, placeholders, and money written the way
 * each language writes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>
#include "services/notification/templates.c"

static void render(const char *name, const char *locale, const char *data, const char *want_locale,
                   const char *want_title, const char *want_body)
{
    char *title = NULL, *body = NULL, used[8];
    json_t *d = data ? json_loads(data, 0, NULL) : NULL;
    assert_int_equal(notif_render(&title, &body, used, name, locale, d), MP_OK);
    assert_string_equal(used, want_locale);
    assert_string_equal(title, want_title);
    assert_string_equal(body, want_body);
    free(title);
    free(body);
    json_decref(d);
}

static void test_templates_fill_placeholders_in_english_and_german(void **state)
{
    const char *data = "{\"order_id\":\"o-1\",\"total\":{\"amount\":2899,\"currency\":\"EUR\"}}";
    render("order_confirmed", "en", data, "en", "Order confirmed",
           "Your order o-1 for 28.99 EUR is confirmed and paid. Thank you!");
    render("order_confirmed", "de", data, "de", "Bestellung best\xc3\xa4tigt",
           "Ihre Bestellung o-1 \xc3\xbc"
           "ber 28,99 EUR ist best\xc3\xa4tigt und bezahlt. Vielen Dank!");
}

static void test_templates_fall_back_to_english(void **state)
{
    const char *data = "{\"order_id\":\"o-2\",\"total\":{\"amount\":500,\"currency\":\"EUR\"}}";
    render("payment_refunded", "fr", data, "en", "Payment refunded",
           "The payment of 5.00 EUR for your cancelled order o-2 has been refunded.");
    render("payment_refunded", NULL, data, "en", "Payment refunded",
           "The payment of 5.00 EUR for your cancelled order o-2 has been refunded.");
}

static void test_templates_write_money_by_currency_and_leave_missing_values_empty(void **state)
{
    render("order_payment_failed", "en", "{\"order_id\":\"o-3\",\"total\":{\"amount\":1500,\"currency\":\"JPY\"}}",
           "en", "Payment failed",
           "We could not take the payment of 1500 JPY for your order o-3, so the order was cancelled.");
    render("order_payment_failed", "en", "{\"order_id\":7,\"total\":{\"amount\":5,\"currency\":\"USD\"}}", "en",
           "Payment failed", "We could not take the payment of 0.05 USD for your order 7, so the order was cancelled.");
    render("order_payment_failed", "en", "{}", "en", "Payment failed",
           "We could not take the payment of  for your order , so the order was cancelled.");
    render("order_payment_failed", "en", NULL, "en", "Payment failed",
           "We could not take the payment of  for your order , so the order was cancelled.");
}

static void test_templates_unknown_name_is_not_found(void **state)
{
    char *title = NULL, *body = NULL, used[8];
    assert_int_equal(notif_render(&title, &body, used, "no_such_template", "en", NULL), MP_ENOTFOUND);
    assert_null(title);
    assert_null(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates_fill_placeholders_in_english_and_german),
        cmocka_unit_test(test_templates_fall_back_to_english),
        cmocka_unit_test(test_templates_write_money_by_currency_and_leave_missing_values_empty),
        cmocka_unit_test(test_templates_unknown_name_is_not_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
