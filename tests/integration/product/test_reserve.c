/*
 * Integration tests for the Product service's stock operations against the
 * real NATS, Postgres and Redis the harness starts: the product role runs
 * in this process (mp_serve_main on a thread, --roles product), and the
 * tests call product.v1.* over the bus as the Order service will.
 *
 * The headline: 50 concurrent reservations of the last 10 items leave
 * exactly 0 in stock with exactly 10 successes. Then idempotence of reserve
 * and release per order id, release-before-reserve, all-or-nothing across
 * items, validation pointers, and lookup.
 *
 * The role runs in-process with integration/inproc.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/reqctx.h"
#include "integration/inproc.h"

#define RACERS 50
#define LAST_ITEMS 10

static mp_bus_t *bus;

/* ---- helpers ------------------------------------------------------------------------ */

static void new_uuid(char out[37])
{
    char hex[33];
    mp_rand_hex(hex, 16);
    snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 13, hex + 17, hex + 20);
}

/* Calls product.v1.<op> with `body` as an admin caller; returns the status and sets *out to the parsed reply. */
static int call(json_t **out, const char *op, const char *body)
{
    char subject[64];
    snprintf(subject, sizeof(subject), "product.v1.%s", op);
    mp_bus_ctx_t ctx = {
        .request_id = "test-reserve", .auth_sub = "00000000-0000-4000-8000-000000000001", .auth_roles = "user,admin"};
    return mp_test_request(out, bus, subject, body, ctx);
}

static int callf(json_t **out, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int callf(json_t **out, const char *op, const char *fmt, ...)
{
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    return call(out, op, body);
}

/* Creates a product with `stock`; its id goes to `id`. */
static void create_product(char id[37], int stock)
{
    char sku[40], hex[9];
    json_t *r = NULL;
    mp_rand_hex(hex, 4);
    snprintf(sku, sizeof(sku), "TEST-RES-%d-%s", (int)getpid(), hex);
    int status =
        callf(&r, "create",
              "{\"sku\":\"%s\",\"name\":\"Reservation test %s\",\"price\":{\"amount\":999,\"currency\":\"EUR\"},"
              "\"stock\":%d,\"category\":\"tests\"}",
              sku, hex, stock);
    assert_int_equal(status, 201);
    snprintf(id, 37, "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
}

static json_int_t stock_of(const char *id)
{
    json_t *r = NULL;
    assert_int_equal(callf(&r, "lookup", "{\"ids\":[\"%s\"]}", id), 200);
    json_t *items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 1);
    json_int_t stock = json_integer_value(json_object_get(json_array_get(items, 0), "stock"));
    json_decref(r);
    return stock;
}

static int reserve(json_t **out, const char *order, const char *product, int quantity)
{
    return callf(out, "reserve", "{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"quantity\":%d}]}", order,
                 product, quantity);
}

static const char *first_pointer(json_t *problem)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(problem, "errors"), 0), "pointer"));
}

/* ---- the role in this process ----------------------------------------------------------- */

static int setup(void **state)
{
    assert_int_equal(mp_serve_test_start("product", NULL), 0);
    mp_bus_opts_t o = {.url = MP_TEST_NATS_URL(), .name = "test_reserve", .send_asap = true};
    assert_int_equal(mp_bus_connect(&bus, &o), MP_OK);
    /* ready when the role answers (migrations may take a while on a fresh database) */
    for (int i = 0; i < 600; i++) {
        if (call(NULL, "lookup", "{\"ids\":[\"00000000-0000-4000-8000-000000000000\"]}") == 200)
            return 0;
        usleep(100 * 1000);
    }
    fail_msg("the product role did not answer within 60 s");
    return -1;
}

static int teardown(void **state)
{
    mp_bus_destroy(bus);
    assert_int_equal(mp_serve_test_stop(), 0);
    nats_CloseAndWait(2000);
    return 0;
}

/* ---- 50 racers, 10 items ------------------------------------------------------------------ */

typedef struct racer {
    const char *product;
    char order[37];
    int status;
    pthread_barrier_t *start;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->start);
    r->status = reserve(NULL, r->order, r->product, 1);
    return NULL;
}

static void test_reserve_fifty_racers_take_exactly_the_last_ten(void **state)
{
    char product[37];
    racer_t racers[RACERS];
    pthread_t threads[RACERS];
    pthread_barrier_t start;
    create_product(product, LAST_ITEMS);
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (racer_t){.product = product, .start = &start};
        new_uuid(racers[i].order);
        assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    int ok = 0, refused = 0, other = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        if (racers[i].status == 200)
            ok++;
        else if (racers[i].status == 409)
            refused++;
        else
            other++;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(other, 0);
    assert_int_equal(ok, LAST_ITEMS);
    assert_int_equal(refused, RACERS - LAST_ITEMS);
    assert_int_equal(stock_of(product), 0);

    /* a winner asking again gets the same answer and takes nothing more; so does a loser */
    for (int i = 0; i < RACERS; i++) {
        json_t *r = NULL;
        int status = reserve(&r, racers[i].order, product, 1);
        assert_int_equal(status, racers[i].status);
        if (status == 200)
            assert_true(json_is_true(json_object_get(r, "reserved")));
        else
            assert_string_equal(first_pointer(r), "/items/0/quantity");
        json_decref(r);
    }
    assert_int_equal(stock_of(product), 0);
}

/* ---- idempotence of reserve and release ------------------------------------------------------ */

static void test_reserve_and_release_are_idempotent_per_order(void **state)
{
    char product[37], order[37];
    json_t *r = NULL;
    create_product(product, 5);
    new_uuid(order);
    assert_int_equal(reserve(&r, order, product, 3), 200);
    assert_string_equal(json_string_value(json_object_get(r, "order_id")), order);
    json_t *items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "quantity")), 3);
    json_decref(r);
    assert_int_equal(reserve(NULL, order, product, 3), 200);
    assert_int_equal(stock_of(product), 2);

    /* the same order id with other items is a client bug, not a new reservation */
    assert_int_equal(reserve(&r, order, product, 1), 422);
    assert_string_equal(first_pointer(r), "/items");
    json_decref(r);

    assert_int_equal(callf(&r, "release", "{\"order_id\":\"%s\"}", order), 200);
    assert_true(json_is_true(json_object_get(r, "released")));
    json_decref(r);
    assert_int_equal(stock_of(product), 5);
    assert_int_equal(callf(&r, "release", "{\"order_id\":\"%s\"}", order), 200);
    assert_true(json_is_false(json_object_get(r, "released")));
    json_decref(r);
    assert_int_equal(stock_of(product), 5);

    /* a reserve redelivered after the release must not take the stock again */
    assert_int_equal(reserve(NULL, order, product, 3), 409);
    assert_int_equal(stock_of(product), 5);
}

static void test_release_before_reserve_blocks_the_late_reserve(void **state)
{
    char product[37], order[37];
    json_t *r = NULL;
    create_product(product, 4);
    new_uuid(order);
    assert_int_equal(callf(&r, "release", "{\"order_id\":\"%s\"}", order), 200);
    assert_true(json_is_false(json_object_get(r, "released")));
    json_decref(r);
    assert_int_equal(reserve(NULL, order, product, 1), 409);
    assert_int_equal(stock_of(product), 4);
}

/* ---- all or nothing, validation, lookup ---------------------------------------------------------- */

static void test_reserve_is_all_or_nothing_across_items(void **state)
{
    char a[37], b[37], order[37];
    json_t *r = NULL;
    create_product(a, 5);
    create_product(b, 1);
    new_uuid(order);
    int status = callf(&r, "reserve",
                       "{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"quantity\":2},"
                       "{\"product_id\":\"%s\",\"quantity\":2}]}",
                       order, a, b);
    assert_int_equal(status, 409);
    assert_int_equal(json_array_size(json_object_get(r, "errors")), 1);
    assert_string_equal(first_pointer(r), "/items/1/quantity");
    json_decref(r);
    assert_int_equal(stock_of(a), 5);
    assert_int_equal(stock_of(b), 1);
}

static void test_reserve_rejects_bad_items_with_pointers(void **state)
{
    char product[37], order[37], unknown[37];
    json_t *r = NULL;
    create_product(product, 3);
    new_uuid(order);
    new_uuid(unknown);
    assert_int_equal(reserve(&r, order, product, 0), 422);
    assert_string_equal(first_pointer(r), "/items/0/quantity");
    json_decref(r);
    assert_int_equal(callf(&r, "reserve",
                           "{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"quantity\":1,\"price\":1}]}",
                           order, product),
                     422);
    assert_string_equal(first_pointer(r), "/items/0/price");
    json_decref(r);
    assert_int_equal(callf(&r, "reserve",
                           "{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"quantity\":1},"
                           "{\"product_id\":\"%s\",\"quantity\":1}]}",
                           order, product, product),
                     422);
    assert_string_equal(first_pointer(r), "/items/1/product_id");
    json_decref(r);
    /* an unknown product is refused like missing stock, at its own pointer */
    assert_int_equal(reserve(&r, order, unknown, 1), 409);
    assert_string_equal(first_pointer(r), "/items/0/product_id");
    json_decref(r);
    assert_int_equal(stock_of(product), 3);
}

static void test_lookup_returns_known_products_and_checks_ids(void **state)
{
    char a[37], unknown[37];
    json_t *r = NULL;
    create_product(a, 7);
    new_uuid(unknown);
    assert_int_equal(callf(&r, "lookup", "{\"ids\":[\"%s\",\"%s\"]}", a, unknown), 200);
    json_t *items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *p = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(p, "id")), a);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "price"), "amount")), 999);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "price"), "currency")), "EUR");
    assert_int_equal(json_integer_value(json_object_get(p, "stock")), 7);
    assert_true(json_is_integer(json_object_get(p, "version")));
    json_decref(r);
    assert_int_equal(callf(&r, "lookup", "{\"ids\":[\"%s\",\"nope\"]}", a), 422);
    assert_string_equal(first_pointer(r), "/ids/1");
    json_decref(r);
    assert_int_equal(call(&r, "lookup", "{\"ids\":[]}"), 422);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_fifty_racers_take_exactly_the_last_ten),
        cmocka_unit_test(test_reserve_and_release_are_idempotent_per_order),
        cmocka_unit_test(test_release_before_reserve_blocks_the_late_reserve),
        cmocka_unit_test(test_reserve_is_all_or_nothing_across_items),
        cmocka_unit_test(test_reserve_rejects_bad_items_with_pointers),
        cmocka_unit_test(test_lookup_returns_known_products_and_checks_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
