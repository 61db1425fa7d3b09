/*
 * test_pattern.c: unit tests for services/gateway/pattern.c: ECMA-262
 * patterns from API specs translated to POSIX EREs that match the same
 * strings, and refusals for what POSIX cannot express; and the direct
 * matcher, checked against regexec() of the same pattern on every string
 * up to four bytes over an alphabet of the bytes that matter.
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

/* Patterns the direct matcher takes: the shapes of api-specs/ and then some. */
static const char *const seq_patterns[] = {
    "^[a-z0-9-]{1,64}$",
    "^[a-z0-9][a-z0-9-]*$",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "^[!-~]+$",
    "^https://",
    "^[A-Z]{2}-\\d{3,6}$",
    "^\\d+$",
    "^\\w*$",
    "^\\S+$",
    "^\\s?a$",
    "^a.b$",
    "^.*$",
    "^[^a-c]+$",
    "^[\\d.]+$",
    "^a{2,}$",
    "^a{0,2}b$",
    "^a+?b$",
    "^$",
    "^",
    "^a\\.b",
    "^\\.$",
    "^[a\\-z]$",
    "^[a-]$",
    "^[\\^a]$",
    "^\\tb$",
    "^[\\s\\w]{2}$",
    "^\\D\\W$",
    "^[^\\s@]+@$",
    "^a{3}$",
    "^-?\\d{1,3}$",
    "^[a-c]{1,2}/?$",
};

/* Patterns it leaves to regexec(): groups, alternation, no leading ^, and greedy passes that could be wrong. */
static const char *const regexec_patterns[] = {
    "^(ab)+$",         "^a|b$",  "a+$",     "^a*a$", "^[a-z]+[a-z0-9]*$",
    "^a?a$",           "^a\\bb", "^a*b?a$", "(?:a)", "^[A-Za-z]{2,3}(-[A-Za-z]{4})?$",
    "^[/a-c]{1,2}/?$",
};

static void test_pattern_seq_takes_simple_anchored_patterns_only(void **state)
{
    for (size_t i = 0; i < sizeof(seq_patterns) / sizeof(seq_patterns[0]); i++) {
        gw_pattern_seq_t *q = gw_pattern_seq_compile(seq_patterns[i]);
        if (q == NULL)
            fail_msg("%s: not taken", seq_patterns[i]);
        free(q);
    }
    for (size_t i = 0; i < sizeof(regexec_patterns) / sizeof(regexec_patterns[0]); i++) {
        gw_pattern_seq_t *q = gw_pattern_seq_compile(regexec_patterns[i]);
        if (q != NULL)
            fail_msg("%s: taken", regexec_patterns[i]);
    }
}

/* The direct matcher and regexec() agree on every string of up to 4 bytes over `alphabet`, and on `extra`. */
static void assert_same_as_regexec(const char *ecma)
{
    static const char alphabet[] = "aAbZ09-_. \n/:h\xc3";
    static const char *const extra[] = {"https://x", "item-42", "AB-1234", "AB-1234567", "aaaaaaaaaaaaaaaaaaaaaaaaa",
                                        "x@",        "a.b",     "\t\tb",   "http://"};
    const size_t k = sizeof(alphabet) - 1;
    regex_t re;
    char why[200], s[8];
    if (!gw_pattern_compile(&re, ecma, why, sizeof(why)))
        fail_msg("%s refused: %s", ecma, why);
    gw_pattern_seq_t *q = gw_pattern_seq_compile(ecma);
    assert_non_null(q);
    for (size_t len = 0; len <= 4; len++) {
        size_t total = 1;
        for (size_t d = 0; d < len; d++)
            total *= k;
        for (size_t n = 0; n < total; n++) {
            size_t v = n;
            for (size_t d = 0; d < len; d++, v /= k)
                s[d] = alphabet[v % k];
            s[len] = '\0';
            bool want = regexec(&re, s, 0, NULL, 0) == 0;
            if (gw_pattern_seq_match(q, s) != want)
                fail_msg("%s on \"%s\": direct %d, regexec %d", ecma, s, !want, want);
        }
    }
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        if (gw_pattern_seq_match(q, extra[i]) != (regexec(&re, extra[i], 0, NULL, 0) == 0))
            fail_msg("%s on \"%s\": direct and regexec differ", ecma, extra[i]);
    free(q);
    regfree(&re);
}

static void test_pattern_seq_matches_exactly_as_regexec(void **state)
{
    for (size_t i = 0; i < sizeof(seq_patterns) / sizeof(seq_patterns[0]); i++)
        assert_same_as_regexec(seq_patterns[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_class_escapes_become_brackets),
        cmocka_unit_test(test_pattern_brackets_reorder_specials),
        cmocka_unit_test(test_pattern_matches_like_ecma),
        cmocka_unit_test(test_pattern_refuses_what_posix_cannot_say),
        cmocka_unit_test(test_pattern_seq_takes_simple_anchored_patterns_only),
        cmocka_unit_test(test_pattern_seq_matches_exactly_as_regexec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
