/*
 * test_etag.c: unit tests for core/etag.c: the If-Match (strong) and
 * If-None-Match (weak) comparisons, lists, "*", and garbled headers, which
 * must match nothing (If-Match then fails closed with 412).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "mp/etag.h"

static void test_etag_version_is_quoted(void **state)
{
    char e[24];
    mp_etag_version(e, sizeof(e), 7);
    assert_string_equal(e, "\"7\"");
}

static void test_etag_strong_and_weak_comparison(void **state)
{
    assert_true(mp_etag_match("\"7\"", "\"7\"", false));
    assert_false(mp_etag_match("\"6\"", "\"7\"", false));
    assert_false(mp_etag_match("W/\"7\"", "\"7\"", false)); /* If-Match never accepts a weak tag */
    assert_true(mp_etag_match("W/\"7\"", "\"7\"", true));   /* If-None-Match compares weakly */
    assert_false(mp_etag_match("\"70\"", "\"7\"", true));
}

static void test_etag_lists_and_star(void **state)
{
    assert_true(mp_etag_match("\"5\", \"6\",\"7\"", "\"7\"", false));
    assert_false(mp_etag_match("\"5\", \"6\"", "\"7\"", false));
    assert_true(mp_etag_match("*", "\"7\"", false));
    assert_true(mp_etag_match("  * ", "\"7\"", true));
}

static void test_etag_garbage_matches_nothing(void **state)
{
    static const char *const bad[] = {"7", "\"7", "\"7\" \"7\"", "\"7\",", "W/7", "\"7\"x", "", "*, \"7\"", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(mp_etag_match(bad[i], "\"7\"", true));
    assert_false(mp_etag_match(NULL, "\"7\"", true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag_version_is_quoted),
        cmocka_unit_test(test_etag_strong_and_weak_comparison),
        cmocka_unit_test(test_etag_lists_and_star),
        cmocka_unit_test(test_etag_garbage_matches_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
