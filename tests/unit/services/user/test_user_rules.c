/*
 * test_user_rules.c: unit tests for services/user/rules.c: BCP 47 locales,
 * IANA time zones (against the system's zoneinfo, and the fallback list
 * when there is none), and JSON depth for preferences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "services/user/rules.c"

static void test_user_locale_accepts_bcp47_tags(void **state)
{
    static const char *const good[] = {"en",  "en-GB",      "de-DE",    "zh-Hant-TW",     "sr-Latn", "es-419",
                                       "gsw", "de-CH-1901", "sl-rozaj", "ca-ES-valencia", NULL};
    for (size_t i = 0; good[i]; i++)
        assert_true(user_locale_valid(good[i]));
}

static void test_user_locale_refuses_other_shapes(void **state)
{
    static const char *const bad[] = {"",        "e",  "en_US",      "en-",   "-en",  "en--GB",       "english-GB",
                                      "en-GB-x", "12", "en-GB/../x", "en GB", "abcd", "en-Hant-Hant", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(user_locale_valid(bad[i]));
}

static void test_user_timezone_checks_the_zoneinfo_files(void **state)
{
    struct stat st;
    if (stat(USER_ZONEINFO_DIR "/Europe/Berlin", &st) != 0)
        skip(); /* no tzdata on this machine: the fallback test covers the logic */
    assert_true(user_timezone_valid(USER_ZONEINFO_DIR, "Europe/Berlin"));
    assert_true(user_timezone_valid(USER_ZONEINFO_DIR, "UTC"));
    assert_true(user_timezone_valid(USER_ZONEINFO_DIR, "America/Argentina/Buenos_Aires"));
    assert_false(user_timezone_valid(USER_ZONEINFO_DIR, "Europe/Atlantis"));
    assert_false(user_timezone_valid(USER_ZONEINFO_DIR, "Europe"));   /* a directory */
    assert_false(user_timezone_valid(USER_ZONEINFO_DIR, "zone.tab")); /* a file, but not a zone */
}

static void test_user_timezone_never_leaves_the_directory(void **state)
{
    static const char *const bad[] = {
        "../../../etc/passwd", "/etc/passwd", "Europe/../UTC", "./UTC", "Europe//Berlin", "Europe/Berlin/", "", "UTC\n",
        "Europe/Ber lin",      NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(user_timezone_valid(USER_ZONEINFO_DIR, bad[i]));
}

static void test_user_timezone_falls_back_to_a_list_without_zoneinfo(void **state)
{
    assert_true(user_timezone_valid("/nonexistent/zoneinfo", "Europe/Berlin"));
    assert_true(user_timezone_valid("/nonexistent/zoneinfo", "UTC"));
    assert_false(user_timezone_valid("/nonexistent/zoneinfo", "Europe/Atlantis"));
}

static void test_user_json_depth_counts_levels(void **state)
{
    json_t *v = json_loads("{\"a\":{\"b\":{\"c\":{\"d\":1}}}}", 0, NULL);
    assert_int_equal(user_json_depth(v), 4);
    json_decref(v);
    v = json_loads("{\"a\":[[[[1]]]]}", 0, NULL);
    assert_int_equal(user_json_depth(v), 5);
    json_decref(v);
    v = json_loads("{}", 0, NULL);
    assert_int_equal(user_json_depth(v), 1);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_locale_accepts_bcp47_tags),
        cmocka_unit_test(test_user_locale_refuses_other_shapes),
        cmocka_unit_test(test_user_timezone_checks_the_zoneinfo_files),
        cmocka_unit_test(test_user_timezone_never_leaves_the_directory),
        cmocka_unit_test(test_user_timezone_falls_back_to_a_list_without_zoneinfo),
        cmocka_unit_test(test_user_json_depth_counts_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
