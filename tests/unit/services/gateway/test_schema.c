/*
 * test_schema.c: unit tests for services/gateway/schema.c, the OpenAPI 3.0
 * schema subset the gateway validates request bodies with.
 *
 * Each case compiles a schema written as YAML (as in api-specs/) and checks
 * a JSON value against it; the assertions name the exact RFC 6901 pointers
 * and sentences a client gets, and the load-time refusals name file:line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "services/gateway/pattern.c"
#include "services/gateway/routes.c"
#include "services/gateway/schema.c"

typedef struct fixture {
    mp_yaml_doc_t *doc;
    gw_schema_ctx_t *ctx;
    const gw_schema_t *s;
    mp_buf_t errs;
} fixture_t;

/* Compiles `components` (YAML text with a components.schemas map) plus the schema at key `root`. */
static void compile_yaml(fixture_t *f, const char *yaml)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(mp_yaml_parse(&f->doc, "spec.yaml", yaml, strlen(yaml)), MP_OK);
    f->ctx = gw_schema_ctx_create(f->doc);
    f->s = gw_schema_compile(f->ctx, mp_yaml_get(f->doc->root, "root"), &f->errs);
}

static void release(fixture_t *f)
{
    gw_schema_ctx_destroy(f->ctx);
    mp_yaml_destroy(f->doc);
    mp_buf_dispose(&f->errs);
}

/* Validates JSON text; returns the errors as "pointer: detail\n" lines (caller frees). */
static char *check(const gw_schema_t *s, const char *json)
{
    json_error_t je;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
    assert_non_null(v);
    mp_problem_errors_t errs = {0};
    size_t n = gw_schema_validate(s, v, "", &errs);
    assert_int_equal(n, mp_problem_count(&errs));
    mp_buf_t out = MP_BUF_INIT;
    size_t i;
    json_t *e;
    json_array_foreach(errs.list, i, e)
        mp_buf_printf(&out, "%s: %s\n", json_string_value(json_object_get(e, "pointer")),
                      json_string_value(json_object_get(e, "detail")));
    mp_problem_errors_dispose(&errs);
    json_decref(v);
    return out.base ? mp_buf_steal(&out) : strdup("");
}

#define assert_errors(s, json, want)                                                                                   \
    do {                                                                                                               \
        char *got_ = check(s, json);                                                                                   \
        if (strcmp(got_, want) != 0)                                                                                   \
            fail_msg("validating %s\n--- want\n%s--- got\n%s", json, want, got_);                                      \
        free(got_);                                                                                                    \
    } while (0)

static const char *order_spec =
    "components:\n"
    "  schemas:\n"
    "    Line:\n"
    "      type: object\n"
    "      additionalProperties: false\n"
    "      required: [product_id, quantity]\n"
    "      properties:\n"
    "        product_id: {type: string, format: uuid}\n"
    "        quantity: {type: integer, minimum: 1, maximum: 99}\n"
    "root:\n"
    "  type: object\n"
    "  additionalProperties: false\n"
    "  required: [items]\n"
    "  properties:\n"
    "    items: {type: array, minItems: 1, maxItems: 3, items: {$ref: '#/components/schemas/Line'}}\n"
    "    note: {type: string, maxLength: 5, nullable: true}\n"
    "    currency: {type: string, enum: [EUR, USD]}\n"
    "    id: {type: string, readOnly: true}\n";

static void test_schema_valid_body_has_no_errors(void **state)
{
    fixture_t f;
    compile_yaml(&f, order_spec);
    assert_non_null(f.s);
    assert_errors(f.s,
                  "{\"items\":[{\"product_id\":\"3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5e\",\"quantity\":2}],"
                  "\"note\":null,\"currency\":\"EUR\"}",
                  "");
    release(&f);
}

static void test_schema_errors_name_the_exact_pointer(void **state)
{
    fixture_t f;
    compile_yaml(&f, order_spec);
    assert_errors(f.s,
                  "{\"items\":[{\"product_id\":\"3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5e\",\"quantity\":2},"
                  "{\"product_id\":\"nope\",\"quantity\":0,\"colour\":\"red\"}],\"currency\":\"GBP\",\"extra\":1}",
                  "/items/1/product_id: must be an id (a UUID)\n"
                  "/items/1/quantity: must be at least 1\n"
                  "/items/1/colour: is not a known field\n"
                  "/currency: must be one of \"EUR\", \"USD\"\n"
                  "/extra: is not a known field\n");
    assert_errors(f.s, "{}", "/items: is required\n");
    assert_errors(f.s, "{\"items\":[]}", "/items: must have at least 1 item\n");
    assert_errors(f.s, "{\"items\":[{}]}", "/items/0/product_id: is required\n/items/0/quantity: is required\n");
    assert_errors(f.s, "{\"items\":\"x\"}", "/items: must be an array\n");
    assert_errors(f.s, "[]", ": must be an object\n");
    release(&f);
}

static void test_schema_one_error_per_field(void **state)
{
    fixture_t f;
    compile_yaml(&f, "root: {type: string, minLength: 3, pattern: '^[a-z]+$'}\n");
    assert_errors(f.s, "\"A\"", ": must be at least 3 characters long\n"); /* not also the pattern */
    assert_errors(f.s, "\"ABCD\"", ": must match the pattern ^[a-z]+$\n");
    release(&f);
}

static void test_schema_lengths_count_code_points(void **state)
{
    fixture_t f;
    compile_yaml(&f, "root: {type: string, minLength: 2, maxLength: 3}\n");
    assert_errors(f.s, "\"h\\u00e9\\u00e9\"", ""); /* 3 code points, 5 bytes */
    assert_errors(f.s, "\"\\u00e9\\u00e9\\u00e9\\u00e9\"", ": must be 2 to 3 characters long\n");
    release(&f);
}

static void test_schema_read_only_and_nullable(void **state)
{
    fixture_t f;
    compile_yaml(&f, "root: {type: object, required: [id, name], properties: {id: {type: string, readOnly: true}, "
                     "name: {type: string}, nick: {type: string}}}\n");
    assert_errors(f.s, "{\"name\":\"a\"}", ""); /* readOnly is never required of a request */
    assert_errors(f.s, "{\"name\":\"a\",\"id\":\"x\"}", "/id: is read-only\n"); /* and may not be sent */
    assert_errors(f.s, "{\"name\":null}", "/name: must not be null\n");
    release(&f);
}

static void test_schema_numbers(void **state)
{
    fixture_t f;
    compile_yaml(&f,
                 "root: {type: object, properties: {p: {type: number, minimum: 0, exclusiveMinimum: true, maximum: 10, "
                 "multipleOf: 0.5}, i: {type: integer, format: int32}, n: {type: number}}}\n");
    assert_errors(f.s, "{\"p\":0}", "/p: must be greater than 0\n");
    assert_errors(f.s, "{\"p\":10.5}", "/p: must be at most 10\n");
    assert_errors(f.s, "{\"p\":0.7}", "/p: must be a multiple of 0.5\n");
    assert_errors(f.s, "{\"p\":2.5,\"n\":3}", "");                 /* an integer is a number */
    assert_errors(f.s, "{\"i\":1.5}", "/i: must be an integer\n"); /* a real is not an integer */
    assert_errors(f.s, "{\"i\":3000000000}", "/i: must fit in 32 bits\n");
    assert_errors(f.s, "{\"i\":\"3\"}", "/i: must be an integer\n"); /* no coercion in bodies */
    release(&f);
}

static void test_schema_formats(void **state)
{
    fixture_t f;
    compile_yaml(&f,
                 "root: {type: object, properties: {t: {type: string, format: date-time}, d: {type: string, format: "
                 "date}, e: {type: string, format: email}, x: {type: string, format: hostname}}}\n");
    assert_errors(f.s, "{\"t\":\"2026-11-23T21:07:08Z\",\"d\":\"2024-02-29\",\"e\":\"a@b.io\",\"x\":\"?\"}", "");
    assert_errors(f.s, "{\"t\":\"2026-11-23 21:07:08\"}",
                  "/t: must be an RFC 3339 timestamp like 2026-11-23T21:07:08Z\n");
    assert_errors(f.s, "{\"t\":\"2026-11-23T21:07:08.123+01:00\"}", "");
    assert_errors(f.s, "{\"d\":\"2023-02-29\"}", "/d: must be a date like 2026-11-23\n");
    assert_errors(f.s, "{\"e\":\"no at sign\"}", "/e: must be an e-mail address\n");
    release(&f);
}

static void test_schema_arrays_and_additional_schema(void **state)
{
    fixture_t f;
    compile_yaml(&f, "root: {type: object, additionalProperties: {type: integer}, properties: {tags: {type: array, "
                     "uniqueItems: true, maxItems: 2, items: {type: string}}}}\n");
    assert_errors(f.s, "{\"tags\":[\"a\",\"a\"]}", "/tags: must not contain the same item twice\n");
    assert_errors(f.s, "{\"tags\":[\"a\",\"b\",\"c\"]}", "/tags: must have at most 2 items\n");
    assert_errors(f.s, "{\"tags\":[1]}", "/tags/0: must be a string\n");
    assert_errors(f.s, "{\"count\":1,\"other\":\"x\"}", "/other: must be an integer\n");
    release(&f);
}

static void test_schema_pointer_escapes_slash_and_tilde(void **state)
{
    fixture_t f;
    compile_yaml(&f, "root: {type: object, additionalProperties: false}\n");
    assert_errors(f.s, "{\"a/b\":1,\"m~n\":2}", "/a~1b: is not a known field\n/m~0n: is not a known field\n");
    release(&f);
}

static void test_schema_error_count_is_capped(void **state)
{
    fixture_t f;
    compile_yaml(&f, "root: {type: array, items: {type: string}}\n");
    mp_buf_t many = MP_BUF_INIT;
    mp_buf_puts(&many, "[");
    for (int i = 0; i < 200; i++)
        mp_buf_printf(&many, "%s%d", i ? "," : "", i);
    mp_buf_puts(&many, "]");
    json_t *v = json_loads(many.base, 0, NULL);
    mp_problem_errors_t errs = {0};
    gw_schema_validate(f.s, v, "", &errs);
    assert_int_equal(mp_problem_count(&errs), GW_SCHEMA_MAX_ERRORS);
    mp_problem_errors_dispose(&errs);
    json_decref(v);
    mp_buf_dispose(&many);
    release(&f);
}

static void assert_refused(const char *yaml, const char *message)
{
    fixture_t f;
    compile_yaml(&f, yaml);
    assert_null(f.s);
    if (f.errs.base == NULL || strstr(f.errs.base, message) == NULL)
        fail_msg("want \"%s\" in \"%s\"", message, f.errs.base ? f.errs.base : "");
    release(&f);
}

static void test_schema_refuses_what_it_cannot_check(void **state)
{
    assert_refused("root:\n  oneOf: [{type: string}, {type: integer}]\n",
                   "spec.yaml:2: oneOf is not supported by the gateway's validator");
    assert_refused("root:\n  type: object\n  anyOf: [{required: [a]}]\n", "spec.yaml:3: anyOf is not supported");
    assert_refused("root: {type: string, minimumLength: 3}\n", "unknown schema keyword \"minimumLength\"");
    assert_refused("root: {type: [string, 'null']}\n", "type must be one of");
    assert_refused("root: {type: string, pattern: '(?=x)'}\n", "lookahead");
    assert_refused("root: {type: array}\n", "an array schema needs items");
    assert_refused("root: {$ref: '#/components/schemas/Nope'}\n", "no such schema");
    assert_refused("root: {$ref: 'other.yaml#/components/schemas/X'}\n", "in the same file");
}

static void test_schema_refuses_ref_cycles(void **state)
{
    assert_refused("components:\n  schemas:\n    Node:\n      type: object\n      properties:\n"
                   "        child: {$ref: '#/components/schemas/Node'}\n"
                   "root: {$ref: '#/components/schemas/Node'}\n",
                   "spec.yaml:6: $ref #/components/schemas/Node refers back to a schema that contains it (a cycle)");
}

static void test_schema_shared_ref_compiles_once(void **state)
{
    fixture_t f;
    compile_yaml(&f, "components:\n  schemas:\n    Id: {type: string, format: uuid}\n"
                     "root: {type: object, properties: {a: {$ref: '#/components/schemas/Id'}, b: {$ref: "
                     "'#/components/schemas/Id'}}}\n");
    assert_non_null(f.s);
    assert_ptr_equal(f.s->props[0], f.s->props[1]);
    assert_errors(f.s, "{\"a\":\"x\",\"b\":\"y\"}", "/a: must be an id (a UUID)\n/b: must be an id (a UUID)\n");
    release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_valid_body_has_no_errors),
        cmocka_unit_test(test_schema_errors_name_the_exact_pointer),
        cmocka_unit_test(test_schema_one_error_per_field),
        cmocka_unit_test(test_schema_lengths_count_code_points),
        cmocka_unit_test(test_schema_read_only_and_nullable),
        cmocka_unit_test(test_schema_numbers),
        cmocka_unit_test(test_schema_formats),
        cmocka_unit_test(test_schema_arrays_and_additional_schema),
        cmocka_unit_test(test_schema_pointer_escapes_slash_and_tilde),
        cmocka_unit_test(test_schema_error_count_is_capped),
        cmocka_unit_test(test_schema_refuses_what_it_cannot_check),
        cmocka_unit_test(test_schema_refuses_ref_cycles),
        cmocka_unit_test(test_schema_shared_ref_compiles_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
