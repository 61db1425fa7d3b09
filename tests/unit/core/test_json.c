/*
 * test_json.c: unit tests for core/json.c.
 *
 * The depth pre-check runs on raw bytes before jansson sees them, so its
 * tests aim at what a byte scanner gets wrong: brackets inside strings,
 * escaped quotes and backslashes, and the exact boundary (64 levels pass,
 * 65 do not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mp/json.h"

/* `depth` nested arrays around `inner`: [[[inner]]]. Caller frees. */
static char *nest(int depth, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc((size_t)depth * 2 + n + 1);
    memset(s, '[', (size_t)depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, ']', (size_t)depth);
    s[2 * depth + n] = '\0';
    return s;
}

static mp_status_t parse_str(json_t **out, const char *text)
{
    return mp_json_parse(out, text, strlen(text));
}

static void test_json_depth_64_ok_65_refused(void **state)
{
    char *ok = nest(64, "1"), *deep = nest(65, "1");
    json_t *v = NULL;
    mp_status_t st_ok = parse_str(&v, ok);
    json_decref(v);
    v = NULL;
    mp_status_t st_deep = parse_str(&v, deep);
    bool raw_ok = mp_json_depth_ok(ok, strlen(ok), 64), raw_deep = mp_json_depth_ok(deep, strlen(deep), 64);
    free(ok);
    free(deep);
    assert_int_equal(st_ok, MP_OK);
    assert_true(raw_ok);
    assert_int_equal(st_deep, MP_EINVAL);
    assert_null(v);
    assert_false(raw_deep);
    assert_string_equal(mp_err_get(), "JSON nested deeper than 64 levels");
}

static void test_json_depth_counts_objects_too(void **state)
{
    /* 32 arrays each holding an object: 64 levels; one more object inside: 65 */
    char text[1024];
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "[{\"k\":");
    n += (size_t)snprintf(text + n, sizeof(text) - n, "1");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "}]");
    assert_true(mp_json_depth_ok(text, n, 64));
    assert_false(mp_json_depth_ok(text, n, 63));
    json_t *v = NULL;
    assert_int_equal(mp_json_parse(&v, text, n), MP_OK);
    json_decref(v);
}

static void test_json_brackets_in_strings_do_not_count(void **state)
{
    /* 64 real levels around a string full of brackets */
    char inner[300];
    strcpy(inner, "\"");
    for (int i = 0; i < 100; i++)
        strcat(inner, "[{");
    strcat(inner, "\"");
    char *text = nest(64, inner);
    bool ok = mp_json_depth_ok(text, strlen(text), 64);
    json_t *v = NULL;
    mp_status_t st = parse_str(&v, text);
    json_decref(v);
    free(text);
    assert_true(ok);
    assert_int_equal(st, MP_OK);
    /* closing brackets in strings do not undo real depth either */
    const char *sneaky = "[\"]]]]\",[[\"x\"]]]";
    assert_true(mp_json_depth_ok(sneaky, strlen(sneaky), 3));
    assert_false(mp_json_depth_ok(sneaky, strlen(sneaky), 2));
}

static void test_json_escaped_quotes_handled(void **state)
{
    /* an escaped quote does not end the string, so the brackets after it are still inside */
    const char *a = "[\"a\\\"[[[[\"]";
    assert_true(mp_json_depth_ok(a, strlen(a), 1));
    /* an escaped backslash before the quote does end it, so the brackets after it count */
    const char *b = "[\"a\\\\\",[[]]]";
    assert_true(mp_json_depth_ok(b, strlen(b), 3));
    assert_false(mp_json_depth_ok(b, strlen(b), 2));
    json_t *v = NULL;
    assert_int_equal(parse_str(&v, a), MP_OK);
    assert_string_equal(json_string_value(json_array_get(v, 0)), "a\"[[[[");
    json_decref(v);
    assert_int_equal(parse_str(&v, b), MP_OK);
    assert_string_equal(json_string_value(json_array_get(v, 0)), "a\\");
    json_decref(v);
    /* a trailing backslash at the very end of the input is not read past */
    assert_true(mp_json_depth_ok("\"\\", 2, 0));
}

static void test_json_duplicate_keys_refused(void **state)
{
    json_t *v = NULL;
    assert_int_equal(parse_str(&v, "{\"a\":1,\"a\":2}"), MP_EINVAL);
    assert_null(v);
    assert_non_null(strstr(mp_err_get(), "duplicate"));
    assert_int_equal(parse_str(&v, "{\"a\":{\"b\":1},\"c\":{\"b\":2}}"), MP_OK); /* same key, other objects */
    json_decref(v);
}

static void test_json_nul_in_string_refused(void **state)
{
    json_t *v = NULL;
    assert_int_equal(parse_str(&v, "{\"a\":\"x\\u0000y\"}"), MP_EINVAL);
    assert_null(v);
    const char raw[] = "{\"a\":\"x\0y\"}";
    assert_int_equal(mp_json_parse(&v, raw, sizeof(raw) - 1), MP_EINVAL);
    assert_null(v);
    const char after[] = "{\"a\":1}\0";
    assert_int_equal(mp_json_parse(&v, after, sizeof(after) - 1), MP_EINVAL);
    assert_null(v);
}

static void test_json_error_has_line_and_column(void **state)
{
    json_t *v = NULL;
    assert_int_equal(parse_str(&v, "{\n  \"a\": 1,\n  \"b\" 2\n}"), MP_EINVAL);
    assert_true(strncmp(mp_err_get(), "line 3 column ", 14) == 0);
    int line = 0, col = 0;
    assert_int_equal(sscanf(mp_err_get(), "line %d column %d:", &line, &col), 2);
    assert_int_equal(line, 3);
    assert_true(col >= 5 && col <= 7);
    assert_int_equal(parse_str(&v, ""), MP_EINVAL);
    assert_true(strncmp(mp_err_get(), "line ", 5) == 0);
}

static void test_json_any_value_and_trailing_garbage(void **state)
{
    json_t *v = NULL;
    assert_int_equal(parse_str(&v, " 42 "), MP_OK);
    assert_int_equal(json_integer_value(v), 42);
    json_decref(v);
    assert_int_equal(parse_str(&v, "\"s\""), MP_OK);
    json_decref(v);
    assert_int_equal(parse_str(&v, "null"), MP_OK);
    assert_true(json_is_null(v));
    assert_int_equal(parse_str(&v, "{} {}"), MP_EINVAL);
    assert_int_equal(parse_str(&v, "[1,]"), MP_EINVAL);
    assert_int_equal(parse_str(&v, "\"\xff\""), MP_EINVAL); /* invalid UTF-8 */
}

static void test_json_dump_compact_in_order(void **state)
{
    json_t *v = NULL;
    assert_int_equal(parse_str(&v, "{ \"z\" : [1, 2.5, \"\\u00e9\\n\"], \"a\" : {\"t\": true, \"n\": null} }"), MP_OK);
    mp_buf_t b = MP_BUF_INIT;
    mp_json_dump(&b, v);
    mp_json_dump(&b, json_object_get(v, "a")); /* appends */
    json_t *scalar = json_integer(-3);
    mp_json_dump(&b, scalar); /* scalars too */
    json_decref(scalar);
    int same =
        strcmp(b.base, "{\"z\":[1,2.5,\"\xc3\xa9\\n\"],\"a\":{\"t\":true,\"n\":null}}{\"t\":true,\"n\":null}-3") == 0;
    if (!same)
        fprintf(stderr, "got %s\n", b.base);
    mp_buf_dispose(&b);
    assert_true(same);
    assert_string_equal(mp_json_str(v, "z") ? "string" : "none", "none");
    assert_null(mp_json_str(v, "missing"));
    json_decref(v);
    json_t *o = json_pack("{s:s}", "k", "v");
    assert_string_equal(mp_json_str(o, "k"), "v");
    json_decref(o);
    assert_null(mp_json_str(NULL, "k"));
}

static void compact_is(const char *in, const char *want)
{
    char out[256];
    size_t n = mp_json_compact(out, in, strlen(in));
    out[n] = '\0';
    assert_string_equal(out, want);
}

static void test_json_compact_drops_only_the_space_between_tokens(void **state)
{
    /* as Postgres's json_build_object renders */
    compact_is(
        "{\"id\" : \"p1\", \"price\" : {\"amount\" : 1250, \"currency\" : \"EUR\"}, \"tags\" : [\"a b\", \"c\"]}",
        "{\"id\":\"p1\",\"price\":{\"amount\":1250,\"currency\":\"EUR\"},\"tags\":[\"a b\",\"c\"]}");
    compact_is(" [ 1 ,\t2 ,\r\n 3 ] ", "[1,2,3]");
    /* strings keep every byte, escaped quotes and backslashes included */
    compact_is("{\"s\" : \"  spaced \\\" out \\\\\" }", "{\"s\":\"  spaced \\\" out \\\\\"}");
    compact_is("\"a : b\"", "\"a : b\"");
    compact_is("", "");
    /* text that is not JSON (an unterminated string) never reads or writes past its length */
    compact_is("{\"open : ", "{\"open : ");
    compact_is("\"\\", "\"\\");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_depth_64_ok_65_refused),
        cmocka_unit_test(test_json_depth_counts_objects_too),
        cmocka_unit_test(test_json_brackets_in_strings_do_not_count),
        cmocka_unit_test(test_json_escaped_quotes_handled),
        cmocka_unit_test(test_json_duplicate_keys_refused),
        cmocka_unit_test(test_json_nul_in_string_refused),
        cmocka_unit_test(test_json_error_has_line_and_column),
        cmocka_unit_test(test_json_any_value_and_trailing_garbage),
        cmocka_unit_test(test_json_dump_compact_in_order),
        cmocka_unit_test(test_json_compact_drops_only_the_space_between_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
