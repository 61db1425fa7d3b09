/*
 * Integration tests for serving on loop connections with fibers (core/bus_serve_loop.c, core/fiber.c) against a
 * real nats-server and Postgres: one worker thread keeps many statements in flight, a handler's call to another
 * service parks only its fiber, headers and bodies cross intact, and a drain finishes what had arrived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/bus.h"
#include "mp/bus_loop.h"
#include "mp/bus_serve.h"
#include "mp/db.h"
#include "integration/testenv.h"

#define N_CALLS 16

static mp_bus_t *bus;
static mp_db_t *db;

/* Sleeps in Postgres for the Sleep-Ms header's milliseconds, then echoes the body with a few headers. */
static void sleepy_handler(void *arg, mp_msg_t *req, int worker)
{
    (void)arg;
    (void)worker;
    const char *ms = mp_msg_header(req, "Sleep-Ms");
    int status = 201;
    if (ms) {
        mp_db_conn_t *c;
        char secs[32];
        snprintf(secs, sizeof(secs), "%.3f", atoi(ms) / 1000.0);
        if (mp_db_acquire(&c, db, 5000) != MP_OK) {
            status = 503;
        } else {
            if (mp_db_exec(NULL, c, "SELECT pg_sleep($1::float8)", 1, MP_DB_PARAMS(secs)) != MP_OK)
                status = 500;
            mp_db_release(c);
        }
    }
    mp_bus_hdr_t h[] = {{"Echo-Sub", mp_msg_header(req, MP_HDR_AUTH_SUB)}, {"Echo-X", mp_msg_header(req, "X-Thing")}};
    mp_bus_reply(bus, req, status, mp_msg_data(req), mp_msg_len(req), h, 2);
}

/* Calls test.v1.sleepy (on the same server, so the same single worker) and answers with what it answered. */
static void caller_handler(void *arg, mp_msg_t *req, int worker)
{
    (void)arg;
    (void)worker;
    mp_bus_hdr_t sleep[] = {{"Sleep-Ms", "200"}};
    mp_bus_call_t call = {
        .subject = "test.v1.sleepy", .body = "inner", .len = 5, .timeout_ms = 3000, .extra = sleep, .nextra = 1};
    mp_msg_t *reply = NULL;
    mp_status_t st = mp_bus_request(&reply, bus, &call);
    int status = st == MP_OK ? mp_msg_status(reply) : 599;
    size_t len = st == MP_OK ? mp_msg_len(reply) : 0;
    mp_bus_reply(bus, req, status, st == MP_OK ? mp_msg_data(reply) : "", len, NULL, 0);
    mp_msg_destroy(reply);
}

static mp_bus_server_t *start_server(int workers, int fibers)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = workers, .fibers = fibers, .nats_loop = true, .name = "loopsrv"};
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.sleepy", "test", sleepy_handler, NULL), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.caller", "test", caller_handler, NULL), MP_OK);
    assert_int_equal(mp_bus_server_start(srv), MP_OK);
    return srv;
}

static int setup(void **state)
{
    (void)state;
    mp_bus_opts_t o = {.url = MP_TEST_NATS_URL(), .name = "test_bus_serve_loop", .send_asap = true};
    assert_int_equal(mp_bus_connect(&bus, &o), MP_OK);
    mp_db_opts_t d = {.dsn = MP_TEST_PG_DSN(), .pool_size = N_CALLS, .app_name = "test_bus_serve_loop"};
    assert_int_equal(mp_db_create(&db, &d), MP_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mp_db_destroy(db);
    mp_bus_destroy(bus);
    nats_CloseAndWait(2000);
    return 0;
}

/* ---- a client on its own loop, N calls at once ---------------------------- */

typedef struct client {
    uv_loop_t loop;
    mp_bus_loop_t *bl;
    int done;
    mp_status_t st[N_CALLS];
    int status[N_CALLS];
    char body[N_CALLS][16];
    char echo_x[N_CALLS][32];
} client_t;

typedef struct slot {
    client_t *c;
    int i;
} slot_t;

static void on_reply(void *arg, mp_status_t st, const mp_reply_t *r)
{
    slot_t *s = arg;
    s->c->st[s->i] = st;
    if (r) {
        size_t n = 0;
        const char *x = mp_reply_header(r, "Echo-X", &n);
        s->c->status[s->i] = r->status;
        snprintf(s->c->body[s->i], sizeof(s->c->body[0]), "%.*s", (int)r->len, r->data);
        snprintf(s->c->echo_x[s->i], sizeof(s->c->echo_x[0]), "%.*s", (int)n, x ? x : "");
    }
    s->c->done++;
}

/* Sends `n` calls to `subject` at once and runs until all are answered; returns the milliseconds it took. */
static int64_t call_all(client_t *c, const char *subject, const char *sleep_ms, int n)
{
    slot_t slots[N_CALLS];
    char bodies[N_CALLS][16];
    memset(c, 0, sizeof(*c));
    uv_loop_init(&c->loop);
    assert_int_equal(mp_bus_loop_create(&c->bl, bus, &c->loop), MP_OK);
    int64_t until = mp_now_ms() + 5000;
    while (!mp_bus_loop_ready(c->bl) && mp_now_ms() < until)
        uv_run(&c->loop, UV_RUN_ONCE);
    int64_t t0 = mp_now_ms();
    for (int i = 0; i < n; i++) {
        mp_bus_hdr_t h[] = {{"Sleep-Ms", sleep_ms}, {"X-Thing", "value with spaces: and colons"}};
        snprintf(bodies[i], sizeof(bodies[i]), "call-%d", i);
        slots[i] = (slot_t){c, i};
        mp_bus_call_t call = {.subject = subject,
                              .body = bodies[i],
                              .len = strlen(bodies[i]),
                              .timeout_ms = 5000,
                              .ctx = {.auth_sub = "user-7"},
                              .extra = h,
                              .nextra = sleep_ms ? 2 : 0};
        if (!sleep_ms) {
            call.extra = h + 1;
            call.nextra = 1;
        }
        assert_int_equal(mp_bus_call_async(NULL, c->bl, &call, on_reply, &slots[i]), MP_OK);
    }
    until = mp_now_ms() + 10000;
    while (c->done < n && mp_now_ms() < until)
        uv_run(&c->loop, UV_RUN_ONCE);
    int64_t took = mp_now_ms() - t0;
    mp_bus_loop_destroy(c->bl);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    assert_int_equal(c->done, n);
    return took;
}

static void test_one_worker_keeps_many_statements_in_flight(void **state)
{
    (void)state;
    client_t c;
    mp_bus_server_t *srv = start_server(1, 64);
    /* 16 statements of 200 ms each, on one thread: one after another that is 3.2 s; on fibers, about 0.2 s */
    int64_t took = call_all(&c, "test.v1.sleepy", "200", N_CALLS);
    for (int i = 0; i < N_CALLS; i++) {
        char want[16];
        snprintf(want, sizeof(want), "call-%d", i);
        assert_int_equal(c.st[i], MP_OK);
        assert_int_equal(c.status[i], 201);
        assert_string_equal(c.body[i], want);
    }
    assert_true(took < 1600);
    mp_bus_server_destroy(srv);
}

static void test_headers_and_bodies_cross_the_loop_connection(void **state)
{
    (void)state;
    client_t c;
    mp_bus_server_t *srv = start_server(2, 8);
    call_all(&c, "test.v1.sleepy", NULL, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c.status[i], 201);
        assert_string_equal(c.echo_x[i], "value with spaces: and colons");
    }
    mp_bus_server_destroy(srv);
}

static void test_a_nested_call_parks_its_fiber_not_its_worker(void **state)
{
    (void)state;
    client_t c;
    mp_bus_server_t *srv = start_server(1, 64);
    /* each outer call waits on an inner one served by the same single worker: blocking, that would deadlock or
     * take 8 x 200 ms; parked, the inner calls run alongside */
    int64_t took = call_all(&c, "test.v1.caller", NULL, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(c.status[i], 201);
        assert_string_equal(c.body[i], "inner");
    }
    assert_true(took < 1200);
    mp_bus_server_destroy(srv);
}

typedef struct drain_arg {
    mp_bus_server_t *srv;
    size_t inflight_at_drain;
} drain_arg_t;

static void *drain_soon(void *p)
{
    drain_arg_t *d = p;
    int64_t until = mp_now_ms() + 5000;
    while (mp_bus_server_inflight(d->srv) < 6 && mp_now_ms() < until) /* until all six sleep in Postgres */
        usleep(2000);
    d->inflight_at_drain = mp_bus_server_inflight(d->srv);
    mp_bus_server_drain(d->srv, 3000);
    return NULL;
}

static void test_a_drain_finishes_what_arrived(void **state)
{
    (void)state;
    client_t c;
    mp_bus_server_t *srv = start_server(1, 64);
    drain_arg_t d = {srv, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drain_soon, &d), 0);
    call_all(&c, "test.v1.sleepy", "400", 6);
    pthread_join(t, NULL);
    assert_int_equal(d.inflight_at_drain, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(c.status[i], 201);
    /* drained: nobody serves the subject now */
    mp_msg_t *reply = NULL;
    mp_bus_call_t call = {.subject = "test.v1.sleepy", .body = "x", .len = 1, .timeout_ms = 1000};
    assert_int_equal(mp_bus_request(&reply, bus, &call), MP_EUNAVAIL);
    mp_bus_server_destroy(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_worker_keeps_many_statements_in_flight),
        cmocka_unit_test(test_headers_and_bodies_cross_the_loop_connection),
        cmocka_unit_test(test_a_nested_call_parks_its_fiber_not_its_worker),
        cmocka_unit_test(test_a_drain_finishes_what_arrived),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
