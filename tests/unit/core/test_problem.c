/*
 * test_problem.c: unit tests for core/problem.c.
 *
 * A problem body is parsed back with jansson rather than compared as text:
 * what a client sees is the JSON value, and a body that does not parse is
 * the worst failure of all. Details carry client-supplied text (field names,
 * values), so escaping and invalid UTF-8 get their own cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mp/problem.h"

/* Renders and parses the problem; asserts the body is one JSON object. New reference. */
static json_t *render(int status, const char *detail, const char *request_id, json_t *errors)
{
    mp_buf_t b = MP_BUF_INIT;
    json_error_t err;
    mp_problem_render(&b, status, detail, request_id, errors);
    json_t *v = json_loadb(b.base, b.len, JSON_REJECT_DUPLICATES, &err);
    if (v == NULL)
        fprintf(stderr, "body does not parse (%s): %s\n", err.text, b.base);
    mp_buf_dispose(&b);
    assert_true(json_is_object(v));
    return v;
}

static void test_problem_render_has_standard_fields(void **state)
{
    json_t *p = render(404, "no such user", "req-1", NULL);
    assert_string_equal(json_string_value(json_object_get(p, "type")), "about:blank");
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Not Found");
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(p, "detail")), "no such user");
    assert_string_equal(json_string_value(json_object_get(p, "request_id")), "req-1");
    assert_null(json_object_get(p, "errors"));
    assert_int_equal(json_object_size(p), 5);
    json_decref(p);
}

static void test_problem_render_defaults(void **state)
{
    /* no detail: the reason phrase; no request id: the field is left out */
    json_t *p = render(503, NULL, NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Service Unavailable");
    assert_string_equal(json_string_value(json_object_get(p, "detail")), "Service Unavailable");
    assert_null(json_object_get(p, "request_id"));
    json_decref(p);
    p = render(418, "", NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Unknown");
    assert_string_equal(json_string_value(json_object_get(p, "detail")), "Unknown");
    json_decref(p);
}

static void test_problem_render_includes_errors(void **state)
{
    mp_problem_errors_t e = {0};
    assert_int_equal(mp_problem_count(&e), 0);
    mp_problem_add(&e, "/email", "is required");
    mp_problem_add(&e, "/items/0/quantity", "must be from %d to %d", 1, 99);
    assert_int_equal(mp_problem_count(&e), 2);
    json_t *p = render(422, "the request has invalid fields", "r", e.list);
    mp_problem_errors_dispose(&e);
    assert_null(e.list);
    assert_int_equal(mp_problem_count(&e), 0);
    json_t *errors = json_object_get(p, "errors");
    assert_int_equal(json_array_size(errors), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "pointer")), "/email");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "detail")), "is required");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1), "pointer")), "/items/0/quantity");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1), "detail")),
                        "must be from 1 to 99");
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Unprocessable Content");
    json_decref(p);

    /* an empty list is left out */
    json_t *empty = json_array();
    p = render(400, "x", NULL, empty);
    assert_null(json_object_get(p, "errors"));
    json_decref(p);
    json_decref(empty);
    mp_problem_errors_dispose(&e); /* twice is fine */
}

static void test_problem_detail_escaping(void **state)
{
    const char *detail = "say \"hi\"\\ then\nnew line\ttab\x01 end";
    json_t *p = render(400, detail, "id\"x", NULL);
    assert_string_equal(json_string_value(json_object_get(p, "detail")), detail);
    assert_string_equal(json_string_value(json_object_get(p, "request_id")), "id\"x");
    json_decref(p);
}

static void test_problem_detail_invalid_utf8_replaced(void **state)
{
    json_t *p = render(400, "bad \xff byte, cut \xe2\x82", NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "detail")),
                        "bad \xef\xbf\xbd byte, cut \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(p);
    p = render(400, "caf\xc3\xa9 \xf0\x9f\x8c\x99", NULL, NULL); /* valid text kept */
    assert_string_equal(json_string_value(json_object_get(p, "detail")), "caf\xc3\xa9 \xf0\x9f\x8c\x99");
    json_decref(p);
}

static void test_problem_add_never_drops_an_error(void **state)
{
    /* a detail cut at the 512-byte limit in the middle of a character, and one carrying invalid bytes: each is
     * still counted (a dropped error would turn a 422 into a success) and renders as valid JSON */
    char long_detail[700];
    long_detail[0] = 'x';
    long_detail[1] = 'y'; /* so the 511th byte is the first half of an e-acute */
    for (size_t i = 2; i + 2 < sizeof(long_detail); i += 2)
        memcpy(long_detail + i, "\xc3\xa9", 2);
    long_detail[sizeof(long_detail) - 1] = '\0';
    mp_problem_errors_t e = {0};
    mp_problem_add(&e, "/name", "%s", long_detail);
    mp_problem_add(&e, "/v", "got \"%s\"", "\xff\xfe");
    mp_problem_add(&e, "/k\xc3", "is not a known field");
    size_t count = mp_problem_count(&e);
    json_t *p = count ? render(422, "invalid", NULL, e.list) : NULL;
    mp_problem_errors_dispose(&e);
    assert_int_equal(count, 3);
    json_t *errors = json_object_get(p, "errors");
    assert_int_equal(json_array_size(errors), 3);
    const char *d0 = json_string_value(json_object_get(json_array_get(errors, 0), "detail"));
    assert_true(strlen(d0) > 400 && strlen(d0) < 512);
    assert_memory_equal(d0, long_detail, 101); /* the start is kept as written */
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 2), "pointer")), "/k?");
    json_decref(p);
}

static void test_problem_http_reason(void **state)
{
    assert_string_equal(mp_http_reason(200), "OK");
    assert_string_equal(mp_http_reason(405), "Method Not Allowed");
    assert_string_equal(mp_http_reason(413), "Content Too Large");
    assert_string_equal(mp_http_reason(429), "Too Many Requests");
    assert_string_equal(mp_http_reason(504), "Gateway Timeout");
    assert_string_equal(mp_http_reason(299), "Unknown");
}

static void test_problem_json_pointer_join_escapes(void **state)
{
    char out[64];
    mp_json_pointer_join(out, sizeof(out), "", "email");
    assert_string_equal(out, "/email");
    mp_json_pointer_join(out, sizeof(out), "/items/0", "a/b~c");
    assert_string_equal(out, "/items/0/a~1b~0c");
    mp_json_pointer_join(out, sizeof(out), "", "~1");
    assert_string_equal(out, "/~01"); /* "~1" literal, not a slash */
    mp_json_pointer_join(out, sizeof(out), "/a", "");
    assert_string_equal(out, "/a/");
}

static void test_problem_json_pointer_join_truncates_safely(void **state)
{
    char out[8];
    mp_json_pointer_join(out, sizeof(out), "", "abcdefghij");
    assert_true(strlen(out) < sizeof(out));
    assert_memory_equal(out, "/abcd", 5);
    mp_json_pointer_join(out, sizeof(out), "/prefix-too-long", "k");
    assert_int_equal(strlen(out), sizeof(out) - 1);
    /* an escape is never cut in half */
    mp_json_pointer_join(out, sizeof(out), "", "ab/////");
    assert_int_not_equal(out[strlen(out) - 1], '~');
    /* nor is a multi-byte character */
    char big[16];
    mp_json_pointer_join(big, sizeof(big), "", "abcdefghijk\xc3\xa9\xc3\xa9");
    json_t *s = json_string(big);
    assert_non_null(s);
    json_decref(s);
    assert_memory_equal(big, "/abcdefghijk", 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_render_has_standard_fields),
        cmocka_unit_test(test_problem_render_defaults),
        cmocka_unit_test(test_problem_render_includes_errors),
        cmocka_unit_test(test_problem_detail_escaping),
        cmocka_unit_test(test_problem_detail_invalid_utf8_replaced),
        cmocka_unit_test(test_problem_add_never_drops_an_error),
        cmocka_unit_test(test_problem_http_reason),
        cmocka_unit_test(test_problem_json_pointer_join_escapes),
        cmocka_unit_test(test_problem_json_pointer_join_truncates_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
