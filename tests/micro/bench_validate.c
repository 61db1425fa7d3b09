/*
 * bench_validate.c: what request validation costs per request, measured
 * apart from the network: checking the shipped auth.v1.register body and a
 * nested order body (10 lines, $ref, uuid, pattern) against their schemas,
 * and checking and coercing four query parameters. Also, for scale, what
 * parsing the JSON body costs, which the gateway pays with or without
 * validation. Prints nanoseconds per operation; asserts nothing (timings on
 * a shared machine are not test material).
 *
 *   cmake --build build --target mp_core
 *   cc -O2 -Icore/include -I. tests/micro/bench_validate.c \
 *     services/gateway/{routes,openapi,params,schema,pattern}.c build/core/libmp_core.a \
 *     $(pkg-config --libs libh2o jansson yaml-0.1 libcrypto libuv libnats libpq hiredis) -lpthread -lm \
 *     -o build/bench_validate && build/bench_validate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mp/json.h"
#include "services/gateway/openapi.h"

static const char order_spec[] =
    "openapi: 3.0.3\ninfo: {title: b, version: '1'}\npaths:\n"
    "  /v1/orders:\n    post:\n      operationId: order.v1.create\n      requestBody:\n        content:\n"
    "          application/json:\n            schema:\n              type: object\n"
    "              additionalProperties: false\n              required: [items]\n              properties:\n"
    "                items: {type: array, maxItems: 50, items: {$ref: '#/components/schemas/Line'}}\n"
    "                note: {type: string, maxLength: 500}\n"
    "  /v1/orders/{orderId}:\n    get:\n      operationId: order.v1.get\n      parameters:\n"
    "        - {name: orderId, in: path, required: true, schema: {type: string, format: uuid}}\n"
    "        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}\n"
    "        - {name: fresh, in: query, schema: {type: boolean}}\n"
    "        - {name: expand, in: query, schema: {type: array, items: {type: string, enum: [items, payments]}}}\n"
    "components:\n  schemas:\n    Line:\n      type: object\n      additionalProperties: false\n"
    "      required: [product_id, quantity]\n      properties:\n"
    "        product_id: {type: string, format: uuid}\n        quantity: {type: integer, minimum: 1, maximum: 99}\n"
    "        sku: {type: string, pattern: '^[A-Z]{2}-\\d{3,6}$'}\n";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const gw_op_t *op_of(const gw_openapi_t *api, const char *id)
{
    for (size_t i = 0; i < api->nops; i++)
        if (strcmp(api->ops[i].id, id) == 0)
            return &api->ops[i];
    fprintf(stderr, "no operation %s\n", id);
    exit(1);
}

static void bench_body(const char *name, const gw_op_t *op, const char *body, int n)
{
    json_t *v = NULL;
    if (mp_json_parse(&v, body, strlen(body)) != MP_OK)
        exit(1);
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        mp_problem_errors_t e = {0};
        if (!gw_openapi_check_body(op, v, &e)) {
            fprintf(stderr, "%s: unexpected errors\n", name);
            exit(1);
        }
    }
    double t1 = now_ns();
    for (int i = 0; i < n; i++) {
        json_t *w = NULL;
        mp_json_parse(&w, body, strlen(body));
        json_decref(w);
    }
    double t2 = now_ns();
    printf("%-28s validate %7.0f ns   (parse the same body: %7.0f ns, %zu bytes)\n", name, (t1 - t0) / n, (t2 - t1) / n,
           strlen(body));
    json_decref(v);
}

int main(void)
{
    const int n = 200000;
    gw_openapi_t auth, orders;
    char dir[] = "/tmp/bench-validate-XXXXXX", path[80];
    if (gw_openapi_load(&auth, "api-specs") != MP_OK || mkdtemp(dir) == NULL) {
        fprintf(stderr, "run from the repository root: %s\n", mp_err_get());
        return 1;
    }
    snprintf(path, sizeof(path), "%s/orders.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(order_spec, f);
    fclose(f);
    if (gw_openapi_load(&orders, dir) != MP_OK) {
        fprintf(stderr, "%s\n", mp_err_get());
        return 1;
    }
    unlink(path);
    rmdir(dir);

    bench_body("auth.v1.register", op_of(&auth, "auth.v1.register"),
               "{\"email\":\"ada@example.com\",\"password\":\"correct horse battery staple\",\"display_name\":\"Ada\"}",
               n);
    char body[2048] = "{\"note\":\"leave at the door\",\"items\":[";
    for (int i = 0; i < 10; i++)
        snprintf(body + strlen(body), sizeof(body) - strlen(body),
                 "%s{\"product_id\":\"3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5%d\",\"quantity\":%d,\"sku\":\"AB-12%d4\"}",
                 i ? "," : "", i, i + 1, i);
    strcat(body, "]}");
    bench_body("order.v1.create (10 lines)", op_of(&orders, "order.v1.create"), body, n);

    const gw_op_t *get = op_of(&orders, "order.v1.get");
    gw_match_t m = {.nparams = 1};
    m.names[0] = "orderId";
    snprintf(m.values[0], sizeof(m.values[0]), "3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5e");
    const char *qs = "limit=20&fresh=true&expand=items&expand=payments";
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        json_t *q = json_object(), *in = json_object();
        char why[100];
        mp_problem_errors_t e = {0};
        if (!gw_query_parse(q, qs, strlen(qs), why, sizeof(why)) ||
            !gw_openapi_check_params(get, in, &m, q, NULL, NULL, &e))
            return 1;
        json_decref(q);
        json_decref(in);
    }
    printf("%-28s parse + check %7.0f ns   (path uuid + 4 query parameters)\n", "order.v1.get params",
           (now_ns() - t0) / n);
    gw_openapi_dispose(&auth);
    gw_openapi_dispose(&orders);
    return 0;
}
