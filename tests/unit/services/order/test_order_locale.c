/*
 * Unit tests for services/order/locale.c: the language notifications are
 * written in, from a profile's BCP 47 locale or an Accept-Language header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "services/order/locale.c"

static void expect(const char *in, const char *lang)
{
    char out[8] = "unset";
    bool ok = order_locale(out, in);
    if (lang == NULL) {
        assert_false(ok);
        assert_string_equal(out, "unset"); /* written only on success */
    } else {
        assert_true(ok);
        assert_string_equal(out, lang);
    }
}

static void test_order_locale_takes_the_primary_language(void **state)
{
    expect("de", "de");
    expect("de-AT", "de");
    expect("DE-at", "de");
    expect("en_GB", "en");
    expect("fr-CH, fr;q=0.9, en;q=0.8", "fr");
    expect("  pt-BR", "pt");
    expect("fil", "fil"); /* three letters are a language too */
    expect("es;q=0.5", "es");
}

static void test_order_locale_refuses_what_is_no_language(void **state)
{
    expect(NULL, NULL);
    expect("", NULL);
    expect("*", NULL);
    expect("e", NULL);
    expect("deutsch", NULL);
    expect("d3-AT", NULL);
    expect("-de", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_locale_takes_the_primary_language),
        cmocka_unit_test(test_order_locale_refuses_what_is_no_language),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
