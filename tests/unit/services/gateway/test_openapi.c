/*
 * test_openapi.c: unit tests for services/gateway/openapi.c and params.c:
 * loading api-specs/, binding operations to routes one to one (with
 * file:line messages for every drift), and checking parameters: text
 * coerced to the schema's type, unknown query parameters refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "services/gateway/openapi.c"
#include "services/gateway/params.c"
#include "services/gateway/pattern.c"
#include "services/gateway/routes.c"
#include "services/gateway/schema.c"

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_dir(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/mp-openapi-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int remove_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *items_spec =
    "openapi: 3.0.3\n"
    "info: {title: t, version: '1'}\n"
    "paths:\n"
    "  /v1/items:\n"
    "    get:\n"
    "      operationId: item.v1.list\n"
    "      parameters:\n"
    "        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}\n"
    "        - {name: draft, in: query, schema: {type: boolean}}\n"
    "        - {name: tag, in: query, schema: {type: array, items: {type: string}}}\n"
    "        - {name: ids, in: query, explode: false, schema: {type: array, items: {type: "
    "integer}}}\n"
    "        - {name: X-Region, in: header, required: true, schema: {type: string, enum: "
    "[eu, us]}}\n"
    "  /v1/items/{itemId}:\n"
    "    parameters:\n"
    "      - {name: itemId, in: path, required: true, schema: {type: string, format: uuid}}\n"
    "    delete:\n"
    "      operationId: item.v1.delete\n"
    "    patch:\n"
    "      operationId: item.v1.update\n"
    "      requestBody:\n"
    "        content:\n"
    "          application/json:\n"
    "            schema: {type: object, additionalProperties: false, properties: {name: "
    "{type: string}}}\n";

static const char *items_routes = "routes:\n"
                                  "  - {method: GET, path: /v1/items, subject: item.v1.list}\n"
                                  "  - {method: DELETE, path: \"/v1/items/{itemId}\", subject: item.v1.delete}\n"
                                  "  - {method: PATCH, path: \"/v1/items/{itemId}\", subject: item.v1.update}\n";

static mp_status_t load_and_bind(gw_openapi_t *api, gw_routes_t *routes, const char *routes_text)
{
    mp_yaml_doc_t *doc = NULL;
    assert_int_equal(mp_yaml_parse(&doc, "routes.yaml", routes_text, strlen(routes_text)), MP_OK);
    assert_int_equal(gw_routes_load(routes, doc), MP_OK);
    mp_yaml_destroy(doc);
    mp_status_t st = gw_openapi_load(api, dir);
    return st != MP_OK ? st : gw_openapi_bind(api, routes, "routes.yaml");
}

static void test_openapi_binds_every_route_to_its_operation(void **state)
{
    gw_openapi_t api;
    gw_routes_t routes;
    write_file("items.yaml", items_spec);
    assert_int_equal(load_and_bind(&api, &routes, items_routes), MP_OK);
    assert_int_equal(api.nops, 3);
    for (size_t i = 0; i < routes.n; i++) {
        assert_non_null(routes.items[i].op);
        assert_string_equal(routes.items[i].op->id, routes.items[i].subject);
    }
    /* path-item parameters are inherited by both operations */
    assert_int_equal(routes.items[1].op->nparams, 1);
    assert_int_equal(routes.items[2].op->nparams, 1);
    gw_openapi_dispose(&api);
    gw_routes_dispose(&routes);
}

static void assert_drift(const char *spec, const char *routes_text, const char *const *messages)
{
    gw_openapi_t api;
    gw_routes_t routes;
    write_file("items.yaml", spec);
    assert_int_equal(load_and_bind(&api, &routes, routes_text), MP_EINVAL);
    for (const char *const *m = messages; *m; m++)
        if (strstr(mp_err_get(), *m) == NULL)
            fail_msg("want \"%s\" in:\n%s", *m, mp_err_get());
    gw_openapi_dispose(&api);
    gw_routes_dispose(&routes);
}

static void test_openapi_route_and_spec_drift_names_file_and_line(void **state)
{
    char spec_path[128];
    snprintf(spec_path, sizeof(spec_path), "%s/items.yaml", dir);
    char op_line[200];
    snprintf(op_line, sizeof(op_line), "%s:19: operation item.v1.update (PATCH /v1/items/{itemId}) has no route",
             spec_path);
    /* a route without an operation, an operation without a route, a subject that is not the operationId */
    const char *routes_text = "routes:\n"
                              "  - {method: GET, path: /v1/items, subject: item.v1.list}\n"
                              "  - {method: DELETE, path: \"/v1/items/{itemId}\", subject: item.v1.remove}\n"
                              "  - {method: POST, path: /v1/items, subject: item.v1.create}\n";
    const char *want[] = {"routes.yaml:4: route POST /v1/items (item.v1.create) has no operation",
                          "routes.yaml:3: route DELETE /v1/items/{itemId} calls item.v1.remove but its operation",
                          "is for item.v1.delete", op_line, NULL};
    assert_drift(items_spec, routes_text, want);
}

static void test_openapi_refuses_bad_documents(void **state)
{
    const char *v31[] = {"items.yaml:1: not an OpenAPI 3.0 document", NULL};
    assert_drift("openapi: 3.1.0\npaths: {}\n", items_routes, v31);
    const char *undeclared[] = {"path parameter id is not declared", NULL};
    assert_drift("openapi: 3.0.3\npaths:\n  /v1/x/{id}:\n    get: {operationId: x.v1.get}\n",
                 "routes:\n  - {method: GET, path: \"/v1/x/{id}\", subject: x.v1.get}\n", undeclared);
    const char *dup[] = {"operationId x.v1.get is also used at", NULL};
    assert_drift("openapi: 3.0.3\npaths:\n  /a:\n    get: {operationId: x.v1.get}\n  /b:\n    get: {operationId: "
                 "x.v1.get}\n",
                 "routes:\n  - {method: GET, path: /a, subject: x.v1.get}\n", dup);
    const char *oneof[] = {"oneOf is not supported", NULL};
    assert_drift("openapi: 3.0.3\npaths:\n  /a:\n    post:\n      operationId: x.v1.make\n      requestBody:\n"
                 "        content:\n          application/json:\n            schema: {oneOf: [{type: object}]}\n",
                 "routes:\n  - {method: POST, path: /a, subject: x.v1.make}\n", oneof);
}

static const char *headers(void *arg, const char *name, size_t *len)
{
    const char *v = arg;
    if (v == NULL || strcmp(name, "X-Region") != 0)
        return NULL;
    *len = strlen(v);
    return v;
}

/* Checks the query `q` (JSON text) against the list operation; returns the input or the errors as text. */
static char *check_list(gw_openapi_t *api, const char *q, const char *region)
{
    json_t *query = json_loads(q, 0, NULL), *in = json_object();
    gw_match_t m = {0};
    mp_problem_errors_t errs = {0};
    bool ok = gw_openapi_check_params(&api->ops[0], in, &m, query, headers, (void *)region, &errs);
    char *out = json_dumps(ok ? in : errs.list, JSON_COMPACT | JSON_SORT_KEYS);
    assert_int_equal(ok, mp_problem_count(&errs) == 0);
    mp_problem_errors_dispose(&errs);
    json_decref(query);
    json_decref(in);
    return out;
}

#define assert_check(api, q, region, want)                                                                             \
    do {                                                                                                               \
        char *got_ = check_list(api, q, region);                                                                       \
        if (strcmp(got_, want) != 0)                                                                                   \
            fail_msg("%s\n  got  %s\n  want %s", q, got_, want);                                                       \
        free(got_);                                                                                                    \
    } while (0)

static void test_openapi_query_parameters_are_coerced_and_checked(void **state)
{
    gw_openapi_t api;
    gw_routes_t routes;
    write_file("items.yaml", items_spec);
    assert_int_equal(load_and_bind(&api, &routes, items_routes), MP_OK);
    assert_check(&api, "{\"limit\":\"20\",\"draft\":\"true\",\"tag\":[\"a\",\"b\"],\"ids\":\"1,2\"}", "eu",
                 "{\"draft\":true,\"ids\":[1,2],\"limit\":20,\"tag\":[\"a\",\"b\"]}");
    assert_check(&api, "{\"tag\":\"solo\"}", "us", "{\"tag\":[\"solo\"]}");
    assert_check(&api, "{\"limit\":\"0\"}", "eu", "[{\"detail\":\"must be at least 1\",\"pointer\":\"/limit\"}]");
    assert_check(&api, "{\"limit\":\"abc\"}", "eu", "[{\"detail\":\"must be an integer\",\"pointer\":\"/limit\"}]");
    assert_check(&api, "{\"limit\":\" 5\"}", "eu", "[{\"detail\":\"must be an integer\",\"pointer\":\"/limit\"}]");
    assert_check(&api, "{\"limit\":[\"1\",\"2\"]}", "eu",
                 "[{\"detail\":\"may be given only once\",\"pointer\":\"/limit\"}]");
    assert_check(&api, "{\"draft\":\"yes\"}", "eu", "[{\"detail\":\"must be true or false\",\"pointer\":\"/draft\"}]");
    assert_check(&api, "{\"sort\":\"name\"}", "eu",
                 "[{\"detail\":\"is not a known query parameter\",\"pointer\":\"/sort\"}]");
    assert_check(&api, "{}", NULL, "[{\"detail\":\"is a required header\",\"pointer\":\"/X-Region\"}]");
    assert_check(&api, "{}", "mars",
                 "[{\"detail\":\"must be one of \\\"eu\\\", \\\"us\\\"\",\"pointer\":\"/X-Region\"}]");
    gw_openapi_dispose(&api);
    gw_routes_dispose(&routes);
}

static void test_openapi_path_parameters_and_bodies(void **state)
{
    gw_openapi_t api;
    gw_routes_t routes;
    write_file("items.yaml", items_spec);
    assert_int_equal(load_and_bind(&api, &routes, items_routes), MP_OK);
    const gw_op_t *del = routes.items[1].op, *patch = routes.items[2].op;
    gw_match_t m = {.nparams = 1};
    m.names[0] = "itemId";
    snprintf(m.values[0], sizeof(m.values[0]), "not-a-uuid");
    json_t *in = json_object();
    mp_problem_errors_t errs = {0};
    assert_false(gw_openapi_check_params(del, in, &m, NULL, NULL, NULL, &errs));
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs.list, 0), "pointer")), "/itemId");
    mp_problem_errors_dispose(&errs);
    snprintf(m.values[0], sizeof(m.values[0]), "3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5e");
    assert_true(gw_openapi_check_params(del, in, &m, NULL, NULL, NULL, &errs));
    assert_string_equal(json_string_value(json_object_get(in, "itemId")), "3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5e");
    /* an operation without a request body takes no fields; one with a body checks them */
    json_t *body = json_pack("{s:i}", "x", 1);
    assert_false(gw_openapi_check_body(del, body, &errs));
    assert_false(gw_openapi_check_body(patch, body, &errs));
    assert_int_equal(mp_problem_count(&errs), 2);
    assert_true(gw_openapi_accepts(patch, "application/json; charset=utf-8", 31));
    assert_false(gw_openapi_accepts(patch, "text/plain", 10));
    mp_problem_errors_dispose(&errs);
    json_decref(body);
    json_decref(in);
    gw_openapi_dispose(&api);
    gw_routes_dispose(&routes);
}

static void test_openapi_loads_the_repository_specs(void **state)
{
    /* api-specs/ and config/routes.yaml as shipped must bind (the unit tests run from the repository root) */
    gw_openapi_t api;
    gw_routes_t routes;
    mp_yaml_doc_t *doc = NULL;
    assert_int_equal(mp_yaml_load_file(&doc, "config/routes.yaml"), MP_OK);
    assert_int_equal(gw_routes_load(&routes, doc), MP_OK);
    mp_yaml_destroy(doc);
    mp_status_t st = gw_openapi_load(&api, "api-specs");
    if (st == MP_OK)
        st = gw_openapi_bind(&api, &routes, "config/routes.yaml");
    if (st != MP_OK)
        fail_msg("%s", mp_err_get());
    gw_openapi_dispose(&api);
    gw_routes_dispose(&routes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_openapi_binds_every_route_to_its_operation, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_openapi_route_and_spec_drift_names_file_and_line, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_openapi_refuses_bad_documents, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_openapi_query_parameters_are_coerced_and_checked, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_openapi_path_parameters_and_bodies, make_dir, remove_dir),
        cmocka_unit_test(test_openapi_loads_the_repository_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
