/*
 * test_input.c: unit tests for core/input.c.
 *
 * Each test builds the request body with json_pack, runs the checks a
 * handler would, and asserts on the collected errors by JSON pointer and
 * detail, and on whether the reply would be 400 (a malformed parameter) or
 * 422 (invalid body fields). mp_input_reply() itself needs a NATS message to
 * answer, so these tests stop at the state it reads (bad_param,
 * param_detail, errs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "mp/input.h"

/* The detail recorded for `pointer`, or NULL. Borrowed from `in`. */
static const char *error_at(const mp_input_t *in, const char *pointer)
{
    size_t i;
    json_t *item;
    if (in->errs.list == NULL)
        return NULL;
    json_array_foreach(in->errs.list, i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "pointer")), pointer) == 0)
            return json_string_value(json_object_get(item, "detail"));
    }
    return NULL;
}

static void test_input_required_and_missing(void **state)
{
    json_t *body = json_pack("{s:s}", "name", "ann");
    mp_input_t in;
    mp_input_init(&in, body);
    assert_string_equal(mp_input_str(&in, "name", MP_IN_REQUIRED, 1, 10), "ann");
    assert_true(mp_input_ok(&in));
    assert_null(mp_input_str(&in, "nick", 0, 1, 10)); /* optional and absent: fine */
    assert_true(mp_input_ok(&in));
    assert_null(mp_input_str(&in, "email", MP_IN_REQUIRED, 3, 254));
    assert_false(mp_input_ok(&in));
    assert_string_equal(error_at(&in, "/email"), "is required");
    assert_false(in.bad_param); /* a body field: 422 */
    mp_input_dispose(&in);
    json_decref(body);

    /* NULL is treated as {} */
    mp_input_init(&in, NULL);
    int64_t n;
    assert_false(mp_input_int(&in, "n", MP_IN_REQUIRED, 0, 9, &n));
    mp_input_only(&in, MP_INPUT_FIELDS("n"));
    assert_int_equal(mp_problem_count(&in.errs), 1);
    mp_input_dispose(&in);
}

static void test_input_nullable(void **state)
{
    json_t *body = json_pack("{s:n, s:n}", "a", "b");
    mp_input_t in;
    mp_input_init(&in, body);
    assert_null(mp_input_str(&in, "a", MP_IN_NULLABLE | MP_IN_REQUIRED, 0, 10)); /* present as null: absent */
    assert_true(mp_input_ok(&in));
    assert_null(mp_input_str(&in, "b", 0, 0, 10)); /* null where not allowed: wrong type */
    assert_string_equal(error_at(&in, "/b"), "must be a string");
    mp_input_dispose(&in);
    json_decref(body);
}

static void test_input_wrong_types(void **state)
{
    json_t *body = json_pack("{s:i, s:s, s:i, s:s, s:[], s:{}, s:f}", "s", 5, "i", "7", "b", 1, "o", "x", "arr", "obj",
                             "real", 1.5);
    mp_input_t in;
    int64_t n;
    bool b;
    mp_input_init(&in, body);
    assert_null(mp_input_str(&in, "s", 0, 0, 10));
    assert_false(mp_input_int(&in, "i", 0, 0, 10, &n)); /* a string is not an integer in a body */
    assert_false(mp_input_int(&in, "real", 0, 0, 10, &n));
    assert_false(mp_input_bool(&in, "b", 0, &b));
    assert_null(mp_input_json(&in, "o", 0, JSON_OBJECT));
    assert_null(mp_input_json(&in, "arr", 0, JSON_OBJECT));
    assert_ptr_equal(mp_input_json(&in, "obj", 0, JSON_OBJECT), json_object_get(body, "obj"));
    assert_string_equal(error_at(&in, "/s"), "must be a string");
    assert_string_equal(error_at(&in, "/i"), "must be an integer");
    assert_string_equal(error_at(&in, "/real"), "must be an integer");
    assert_string_equal(error_at(&in, "/b"), "must be true or false");
    assert_string_equal(error_at(&in, "/o"), "must be an object");
    assert_string_equal(error_at(&in, "/arr"), "must be an object");
    assert_int_equal(mp_problem_count(&in.errs), 6);
    assert_false(in.bad_param);
    mp_input_dispose(&in);
    json_decref(body);
}

static void test_input_string_length_in_code_points(void **state)
{
    /* "é" is 2 bytes, "🌙" is 4: lengths count characters, not bytes */
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "two", "\xc3\xa9\xc3\xa9", "moons",
                             "\xf0\x9f\x8c\x99\xf0\x9f\x8c\x99", "long", "abcdef", "exact", "abc");
    mp_input_t in;
    mp_input_init(&in, body);
    assert_non_null(mp_input_str(&in, "two", 0, 2, 2));
    assert_non_null(mp_input_str(&in, "moons", 0, 1, 2));
    assert_true(mp_input_ok(&in));
    assert_null(mp_input_str(&in, "long", 0, 1, 5));
    assert_string_equal(error_at(&in, "/long"), "must be 1 to 5 characters long");
    assert_null(mp_input_str(&in, "exact", 0, 4, 4));
    assert_string_equal(error_at(&in, "/exact"), "must be 4 characters long");
    mp_input_dispose(&in);
    json_decref(body);
    assert_int_equal(mp_utf8_len(""), 0);
    assert_int_equal(mp_utf8_len("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8c\x99"), 4);
}

static void test_input_int_ranges(void **state)
{
    json_t *body = json_pack("{s:i, s:i, s:I}", "lo", 0, "hi", 101, "ok", (json_int_t)INT64_MAX);
    mp_input_t in;
    int64_t n = -1;
    mp_input_init(&in, body);
    assert_true(mp_input_int(&in, "ok", 0, 0, INT64_MAX, &n));
    assert_true(n == INT64_MAX);
    n = -1;
    assert_false(mp_input_int(&in, "lo", 0, 1, 100, &n));
    assert_int_equal(n, -1); /* not written on failure */
    assert_false(mp_input_int(&in, "hi", 0, 1, 100, &n));
    assert_string_equal(error_at(&in, "/lo"), "must be from 1 to 100");
    assert_string_equal(error_at(&in, "/hi"), "must be from 1 to 100");
    mp_input_dispose(&in);
    json_decref(body);
}

/* Reads "v" as a parameter integer in [-1000, 1000]; returns whether it was accepted. */
static bool param_int(const char *text, int64_t *out)
{
    json_t *q = json_pack("{s:s}", "v", text);
    mp_input_t in;
    mp_input_init(&in, q);
    bool ok = mp_input_int(&in, "v", MP_IN_PARAM, -1000, 1000, out);
    bool clean = mp_input_ok(&in);
    int bad = in.bad_param;
    mp_input_dispose(&in);
    json_decref(q);
    assert_true(ok == clean);
    assert_true(ok == !bad);
    return ok;
}

static void test_input_param_integers_from_text(void **state)
{
    int64_t n = 0;
    assert_true(param_int("42", &n));
    assert_int_equal(n, 42);
    assert_true(param_int("0", &n));
    assert_int_equal(n, 0);
    assert_true(param_int("-7", &n));
    assert_int_equal(n, -7);
    static const char *refused[] = {"007", "+5",  "",     "1x",  "x",   "1.0", "99999999999999999999", " 5", "5 ",
                                    "-",   "-05", "0x10", "1e3", "\t5", NULL};
    for (size_t i = 0; refused[i]; i++) {
        if (param_int(refused[i], &n))
            fprintf(stderr, "accepted \"%s\"\n", refused[i]);
        assert_false(param_int(refused[i], &n));
    }
    assert_false(param_int("1001", &n)); /* in range only */

    /* a body field never takes numbers as text */
    json_t *body = json_pack("{s:s}", "v", "5");
    mp_input_t in;
    mp_input_init(&in, body);
    assert_false(mp_input_int(&in, "v", 0, 0, 10, &n));
    assert_false(in.bad_param);
    mp_input_dispose(&in);
    json_decref(body);
}

static void test_input_param_bool(void **state)
{
    json_t *q = json_pack("{s:s, s:s, s:s, s:b}", "a", "true", "b", "false", "c", "yes", "d", 1);
    mp_input_t in;
    bool v = false;
    mp_input_init(&in, q);
    assert_true(mp_input_bool(&in, "a", MP_IN_PARAM, &v));
    assert_true(v);
    assert_true(mp_input_bool(&in, "b", MP_IN_PARAM, &v));
    assert_false(v);
    assert_true(mp_input_bool(&in, "d", MP_IN_PARAM, &v));
    assert_true(v);
    assert_true(mp_input_ok(&in));
    assert_false(mp_input_bool(&in, "c", MP_IN_PARAM, &v));
    assert_true(in.bad_param);
    assert_string_equal(in.param_detail, "parameter c: must be true or false");
    mp_input_dispose(&in);
    json_decref(q);
}

static void test_input_only_lists_every_unknown_field(void **state)
{
    json_t *body = json_pack("{s:s, s:s, s:i, s:s}", "email", "a@b.c", "pasword", "x", "admin", 1, "a/b~c", "y");
    mp_input_t in;
    mp_input_init(&in, body);
    mp_input_str(&in, "email", MP_IN_REQUIRED, 3, 254);
    mp_input_only(&in, MP_INPUT_FIELDS("email", "password"));
    assert_false(mp_input_ok(&in));
    assert_int_equal(mp_problem_count(&in.errs), 3);
    assert_string_equal(error_at(&in, "/pasword"), "is not a known field");
    assert_string_equal(error_at(&in, "/admin"), "is not a known field");
    assert_string_equal(error_at(&in, "/a~1b~0c"), "is not a known field"); /* RFC 6901 escaping */
    assert_null(error_at(&in, "/email"));
    mp_input_dispose(&in);
    json_decref(body);
}

static void test_input_only_catches_long_multibyte_field_names(void **state)
{
    /* a field name longer than the pointer buffer, cut in the middle of a character, is still an error */
    char name[600];
    name[0] = 'x';
    for (size_t i = 1; i + 2 < sizeof(name); i += 2)
        memcpy(name + i, "\xc3\xa9", 2);
    name[sizeof(name) - 1] = '\0';
    json_t *body = json_object();
    json_object_set_new(body, name, json_true());
    mp_input_t in;
    mp_input_init(&in, body);
    mp_input_only(&in, MP_INPUT_FIELDS("email"));
    size_t count = mp_problem_count(&in.errs);
    bool ok = mp_input_ok(&in);
    mp_input_dispose(&in);
    json_decref(body);
    assert_int_equal(count, 1);
    assert_false(ok);
}

static void test_input_bad_param_is_400_with_first_detail(void **state)
{
    json_t *q = json_pack("{s:s, s:s}", "limit", "abc", "id", "nope");
    mp_input_t in;
    int64_t limit;
    char id[37];
    mp_input_init(&in, q);
    mp_input_fail(&in, "name", "is taken"); /* a body error alone would be 422 */
    assert_false(in.bad_param);
    mp_input_int(&in, "limit", MP_IN_PARAM, 1, 100, &limit);
    mp_input_uuid(&in, "id", MP_IN_PARAM, id);
    assert_true(in.bad_param);
    assert_string_equal(in.param_detail, "parameter limit: must be an integer"); /* the first one */
    assert_int_equal(mp_problem_count(&in.errs), 3);                             /* all listed */
    assert_string_equal(error_at(&in, "/id"), "must be an id (a UUID)");
    mp_input_dispose(&in);
    json_decref(q);

    /* a required parameter that is missing is 400 as well */
    mp_input_init(&in, NULL);
    mp_input_str(&in, "q", MP_IN_PARAM | MP_IN_REQUIRED, 1, 10);
    assert_true(in.bad_param);
    assert_string_equal(in.param_detail, "parameter q: is required");
    mp_input_dispose(&in);
}

/* Runs mp_input_page on `q` (a borrowed object or NULL); returns whether nothing failed. */
static bool page(json_t *q, int64_t *limit, const char **cursor)
{
    mp_input_t in;
    mp_input_init(&in, q);
    mp_input_page(&in, limit, cursor);
    bool ok = mp_input_ok(&in);
    mp_input_dispose(&in);
    return ok;
}

static void test_input_page_defaults_and_limits(void **state)
{
    int64_t limit;
    const char *cursor = "junk";
    assert_true(page(NULL, &limit, &cursor));
    assert_int_equal(limit, 20);
    assert_null(cursor);

    json_t *q = json_pack("{s:s, s:s}", "limit", "100", "cursor", "abc");
    assert_true(page(q, &limit, &cursor));
    assert_int_equal(limit, 100);
    assert_string_equal(cursor, "abc");
    json_decref(q);

    static const char *bad_limits[] = {"0", "101", "abc", "-1", "", NULL};
    for (size_t i = 0; bad_limits[i]; i++) {
        q = json_pack("{s:s}", "limit", bad_limits[i]);
        assert_false(page(q, &limit, &cursor));
        assert_int_equal(limit, 20); /* the default stays */
        json_decref(q);
    }
    q = json_pack("{s:s}", "cursor", "");
    assert_false(page(q, &limit, &cursor)); /* an empty cursor is malformed */
    json_decref(q);
}

static void test_input_uuid(void **state)
{
    assert_true(mp_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    assert_true(mp_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    assert_false(mp_uuid_valid("123e4567e89b12d3a456426614174000"));
    assert_false(mp_uuid_valid("123e4567-e89b-12d3-a456-42661417400"));
    assert_false(mp_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
    assert_false(mp_uuid_valid("123e4567-e89b-12d3-a456_426614174000"));
    assert_false(mp_uuid_valid("g23e4567-e89b-12d3-a456-426614174000"));
    assert_false(mp_uuid_valid("{23e4567-e89b-12d3-a456-42661417400}"));
    assert_false(mp_uuid_valid(""));
    assert_false(mp_uuid_valid(NULL));

    json_t *body = json_pack("{s:s, s:i, s:s}", "id", "123E4567-E89B-12D3-A456-426614174000", "num", 5, "bad", "x");
    mp_input_t in;
    char out[37];
    mp_input_init(&in, body);
    assert_true(mp_input_uuid(&in, "id", MP_IN_REQUIRED, out));
    assert_string_equal(out, "123e4567-e89b-12d3-a456-426614174000"); /* lower-cased */
    assert_false(mp_input_uuid(&in, "num", 0, out));
    assert_false(mp_input_uuid(&in, "bad", 0, out));
    assert_false(mp_input_uuid(&in, "absent", 0, out));
    assert_string_equal(error_at(&in, "/num"), "must be an id (a UUID)");
    assert_int_equal(mp_problem_count(&in.errs), 2);
    assert_false(in.bad_param);
    mp_input_dispose(&in);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_required_and_missing),
        cmocka_unit_test(test_input_nullable),
        cmocka_unit_test(test_input_wrong_types),
        cmocka_unit_test(test_input_string_length_in_code_points),
        cmocka_unit_test(test_input_int_ranges),
        cmocka_unit_test(test_input_param_integers_from_text),
        cmocka_unit_test(test_input_param_bool),
        cmocka_unit_test(test_input_only_lists_every_unknown_field),
        cmocka_unit_test(test_input_only_catches_long_multibyte_field_names),
        cmocka_unit_test(test_input_bad_param_is_400_with_first_detail),
        cmocka_unit_test(test_input_page_defaults_and_limits),
        cmocka_unit_test(test_input_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
