/*
 * test_pattern.c: unit tests for services/gateway/pattern.c: ECMA-262
 * patterns from API specs translated to POSIX EREs that match the same
 * strings, and refusals for what POSIX cannot express.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "services/gateway/pattern.c"

static void assert_translates(const char *ecma, const char *want)
{
    char out[256], why[200];
    if (!gw_pattern_translate(out, sizeof(out), ecma, why, sizeof(why)))
        fail_msg("%s refused: %s", ecma, why);
    if (strcmp(out, want) != 0)
        fail_msg("%s -> %s, want %s", ecma, out, want);
}

static bool matches(const char *ecma, const char *s)
{
    regex_t re;
    char why[200];
    if (!gw_pattern_compile(&re, ecma, why, sizeof(why)))
        fail_msg("%s refused: %s", ecma, why);
    bool m = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

static void test_pattern_class_escapes_become_brackets(void **state)
{
    assert_translates("^\\d{3}-\\d+$", "^[0-9]{3}-[0-9]+$");
    assert_translates("\\w\\W\\s\\S\\D", "[A-Za-z0-9_][^A-Za-z0-9_][[:space:]][^[:space:]][^0-9]");
    assert_translates("[\\w.-]+", "[A-Za-z0-9_.-]+");
    assert_translates("[^\\s@]+@[^\\s@]+", "[^[:space:]@]+@[^[:space:]@]+");
    assert_translates("a\\.b\\/c\\-", "a\\.b/c-");
    assert_translates("(?:ab)+?x*?", "(ab)+x*");
}

static void test_pattern_brackets_reorder_specials(void **state)
{
    assert_translates("[\\]a]", "[]a]");
    assert_translates("[a\\-z]", "[az-]");
    assert_translates("[\\^a]", "[a^]");
}

static void test_pattern_matches_like_ecma(void **state)
{
    assert_true(matches("^\\d{4}-\\d{2}$", "2026-11"));
    assert_false(matches("^\\d{4}-\\d{2}$", "2026-1x"));
    assert_true(matches("^[A-Z]{3}$", "EUR"));
    assert_false(matches("^[A-Z]{3}$", "EURO"));
    assert_true(matches("b", "abc")); /* unanchored, like ECMA's test() */
    assert_true(matches("^[\\w.+-]+@[\\w-]+\\.[\\w.]+$", "ada.l+x@example.co.uk"));
    assert_false(matches("^\\S+$", "has space"));
}

static void assert_refused(const char *ecma, const char *why_part)
{
    char out[256], why[200];
    assert_false(gw_pattern_translate(out, sizeof(out), ecma, why, sizeof(why)));
    if (strstr(why, why_part) == NULL)
        fail_msg("%s: %s lacks %s", ecma, why, why_part);
}

static void test_pattern_refuses_what_posix_cannot_say(void **state)
{
    assert_refused("(?=a)b", "lookahead");
    assert_refused("(?<name>a)", "lookahead");
    assert_refused("(a)\\1", "backreferences");
    assert_refused("\\u00e9", "unsupported escape");
    assert_refused("[]", "empty character classes");
    assert_refused("[a", "unterminated");
    assert_refused("[\\D]", "negated class escapes");
    char why[200];
    regex_t re;
    assert_false(gw_pattern_compile(&re, "a{2", why, sizeof(why)));
    assert_non_null(strstr(why, "not a valid regular expression"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_class_escapes_become_brackets),
        cmocka_unit_test(test_pattern_brackets_reorder_specials),
        cmocka_unit_test(test_pattern_matches_like_ecma),
        cmocka_unit_test(test_pattern_refuses_what_posix_cannot_say),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
