/*
 * fuzz_validate.c: libFuzzer target for the gateway's request path up to
 * the call: route matching with percent-decoding, query string parsing,
 * parameter coercion and checks, JSON parsing and body validation against a
 * fixed spec (services/gateway/{routes,openapi,params,schema,pattern}.c).
 *
 * On the first call it writes the spec below to a temporary directory and
 * loads and binds it exactly as the gateway does. Each input is
 * "<method>\n<path and query>\n<header value>\n<body>"; missing parts are
 * empty. Besides the sanitizers, it aborts when a validation is not
 * deterministic (two runs give different errors), when an error pointer is
 * not an RFC 6901 pointer into the body (every prefix but the last token
 * must resolve, since the last may name a missing required field), when
 * more errors come back than GW_SCHEMA_MAX_ERRORS, or when a request the
 * validator accepts would give the service input the schema rejects.
 * Seeds: tests/fuzz/corpus/validate/.
 *
 * Build and run (until tests/fuzz/run.sh builds every target):
 *   cmake -S . -B build && cmake --build build --target mp_core
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include -I. \
 *     tests/fuzz/fuzz_validate.c services/gateway/{routes,openapi,params,schema,pattern}.c \
 *     build/core/libmp_core.a $(pkg-config --libs libh2o jansson yaml-0.1 libcrypto libuv libnats libpq hiredis) \
 *     -lpthread -lm -o build/fuzz_validate
 *   build/fuzz_validate -max_total_time=60 tests/fuzz/corpus/validate
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mp/json.h"
#include "services/gateway/openapi.h"

static const char spec[] =
    "openapi: 3.0.3\n"
    "info: {title: fuzz, version: '1'}\n"
    "paths:\n"
    "  /v1/orders:\n"
    "    post:\n"
    "      operationId: order.v1.create\n"
    "      parameters:\n"
    "        - {name: Idempotency-Key, in: header, schema: {type: string, minLength: 1, maxLength: 255, pattern: "
    "'^[!-~]+$'}}\n"
    "      requestBody:\n"
    "        required: true\n"
    "        content:\n"
    "          application/json:\n"
    "            schema:\n"
    "              type: object\n"
    "              additionalProperties: false\n"
    "              required: [items, address]\n"
    "              properties:\n"
    "                items: {type: array, minItems: 1, maxItems: 50, uniqueItems: true, items: {$ref: "
    "'#/components/schemas/Line'}}\n"
    "                address: {$ref: '#/components/schemas/Address'}\n"
    "                note: {type: string, maxLength: 500, nullable: true}\n"
    "                when: {type: string, format: date-time}\n"
    "                tip: {type: number, minimum: 0, exclusiveMaximum: true, maximum: 1000, multipleOf: 0.01}\n"
    "                meta: {type: object, maxProperties: 5, additionalProperties: {type: string, maxLength: 20}}\n"
    "  /v1/orders/{orderId}:\n"
    "    get:\n"
    "      operationId: order.v1.get\n"
    "      parameters:\n"
    "        - {name: orderId, in: path, required: true, schema: {type: string, format: uuid}}\n"
    "        - {name: expand, in: query, schema: {type: array, items: {type: string, enum: [items, payments]}}}\n"
    "        - {name: ids, in: query, explode: false, schema: {type: array, items: {type: integer, format: int32}}}\n"
    "        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}\n"
    "        - {name: fresh, in: query, schema: {type: boolean}}\n"
    "        - {name: ratio, in: query, schema: {type: number, minimum: -1.5}}\n"
    "components:\n"
    "  schemas:\n"
    "    Line:\n"
    "      type: object\n"
    "      additionalProperties: false\n"
    "      required: [product_id, quantity]\n"
    "      properties:\n"
    "        product_id: {type: string, format: uuid}\n"
    "        quantity: {type: integer, minimum: 1, maximum: 99}\n"
    "        sku: {type: string, pattern: '^[A-Z]{2}-\\d{3,6}(?:-[a-z]+)?$'}\n"
    "    Address:\n"
    "      type: object\n"
    "      required: [country]\n"
    "      properties:\n"
    "        country: {type: string, enum: [DE, FR, NL]}\n"
    "        lines: {type: array, maxItems: 3, items: {type: string, minLength: 1, maxLength: 80}}\n"
    "        email: {type: string, format: email}\n"
    "        id: {type: string, readOnly: true}\n";

static const char routes_text[] = "routes:\n"
                                  "  - {method: POST, path: /v1/orders, subject: order.v1.create}\n"
                                  "  - {method: GET, path: \"/v1/orders/{orderId}\", subject: order.v1.get}\n";

static gw_openapi_t api;
static gw_routes_t routes;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_validate: %s: %s\n", what, mp_err_get());
    abort();
}

static void setup(void)
{
    char dir[] = "/tmp/fuzz-validate-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    snprintf(path, sizeof(path), "%s/orders.yaml", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(spec, f) < 0 || fclose(f) != 0)
        die("writing the spec");
    mp_yaml_doc_t *doc = NULL;
    if (mp_yaml_parse(&doc, "routes.yaml", routes_text, strlen(routes_text)) != MP_OK ||
        gw_routes_load(&routes, doc) != MP_OK || gw_openapi_load(&api, dir) != MP_OK ||
        gw_openapi_bind(&api, &routes, "routes.yaml") != MP_OK)
        die("loading the spec");
    mp_yaml_destroy(doc);
    unlink(path);
    rmdir(dir);
}

/* Resolves every token of `ptr` but the last in `v`; false when one does not resolve. */
static bool parent_resolves(const json_t *v, const char *ptr)
{
    if (ptr[0] == '\0')
        return true;
    if (ptr[0] != '/')
        return false;
    const char *last = strrchr(ptr, '/');
    for (const char *p = ptr; p < last;) {
        const char *next = strchr(p + 1, '/');
        char tok[1024];
        size_t n = 0;
        for (const char *c = p + 1; c < next && n + 1 < sizeof(tok); c++) {
            if (*c == '~') {
                c++;
                if (*c != '0' && *c != '1')
                    return false;
                tok[n++] = *c == '0' ? '~' : '/';
            } else {
                tok[n++] = *c;
            }
        }
        tok[n] = '\0';
        if (json_is_object(v))
            v = json_object_get(v, tok);
        else if (json_is_array(v))
            v = json_array_get(v, strtoul(tok, NULL, 10));
        else
            return false;
        if (v == NULL)
            return false;
        p = next;
    }
    return true;
}

static char *errors_text(const mp_problem_errors_t *e)
{
    return e->list ? json_dumps(e->list, JSON_COMPACT) : strdup("[]");
}

static const char *header_value;
static const char *fuzz_header(void *arg, const char *name, size_t *len)
{
    if (header_value == NULL || strcmp(name, "Idempotency-Key") != 0)
        return NULL;
    *len = strlen(header_value);
    return header_value;
}

/* Splits the input at newlines into up to 4 NUL-terminated parts. */
static void split(char *buf, char **parts)
{
    parts[0] = buf;
    for (int i = 1; i < 4; i++) {
        char *nl = parts[i - 1] ? strchr(parts[i - 1], '\n') : NULL;
        parts[i] = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    size_t body_len = 0;
    char *parts[4];
    split(buf, parts);
    const char *method = parts[0], *target = parts[1] ? parts[1] : "/", *body = parts[3] ? parts[3] : "";
    header_value = parts[2] && *parts[2] ? parts[2] : NULL;
    body_len = parts[3] ? size - (size_t)(parts[3] - buf) : 0;

    const char *q = strchr(target, '?');
    size_t path_len = q ? (size_t)(q - target) : strlen(target);
    gw_match_t m;
    char allow[64];
    if (gw_routes_match(&m, &routes, method, strlen(method), target, path_len, allow, sizeof(allow)) != GW_MATCH_OK)
        goto done;
    const gw_op_t *op = m.route->op;
    json_t *query = json_object(), *in = NULL;
    char why[200];
    if (q && !gw_query_parse(query, q + 1, strlen(q + 1), why, sizeof(why)))
        goto cleanup;
    if (mp_json_parse(&in, body, body_len) != MP_OK || !json_is_object(in)) {
        json_decref(in);
        in = json_object(); /* the gateway answers 400/422 itself; go on with the parameters */
    }
    mp_problem_errors_t e1 = {0}, e2 = {0};
    bool ok1 = gw_openapi_check_body(op, in, &e1), ok2 = gw_openapi_check_body(op, in, &e2);
    char *t1 = errors_text(&e1), *t2 = errors_text(&e2);
    if (ok1 != ok2 || strcmp(t1, t2) != 0)
        die("body validation is not deterministic");
    if (mp_problem_count(&e1) > GW_SCHEMA_MAX_ERRORS)
        die("more errors than the cap");
    size_t i;
    json_t *err;
    json_array_foreach(e1.list, i, err)
    {
        const char *ptr = json_string_value(json_object_get(err, "pointer"));
        if (ptr == NULL || !parent_resolves(in, ptr))
            die("an error pointer does not point into the body");
    }
    free(t1);
    free(t2);
    mp_problem_errors_dispose(&e1);
    mp_problem_errors_dispose(&e2);
    mp_problem_errors_t pe = {0};
    bool params_ok = gw_openapi_check_params(op, in, &m, query, fuzz_header, NULL, &pe);
    if (params_ok != (mp_problem_count(&pe) == 0))
        die("check_params disagrees with its error list");
    if (ok1 && params_ok && op->body) {
        /* what the service would receive: the body plus typed parameters; the body part must still pass */
        json_t *copy = json_deep_copy(in);
        for (size_t p = 0; p < op->nparams; p++)
            json_object_del(copy, op->params[p].name);
        mp_problem_errors_t again = {0};
        if (!gw_openapi_check_body(op, copy, &again))
            die("an accepted body fails once parameters are merged and removed");
        mp_problem_errors_dispose(&again);
        json_decref(copy);
    }
    mp_problem_errors_dispose(&pe);
cleanup:
    json_decref(in);
    json_decref(query);
done:
    free(buf);
    return 0;
}
