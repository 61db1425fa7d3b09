/*
 * Integration tests for the bus against a real nats-server: blocking
 * requests, the worker-pool responder, and async requests from a uv loop
 * thread (the gateway's and BFF's path), including overlap, timeouts,
 * no-responders, cancellation and deadline propagation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/bus.h"
#include "mp/bus_loop.h"
#include "mp/bus_serve.h"
#include "integration/testenv.h"

static mp_bus_t *bus;

static void echo_handler(void *arg, mp_msg_t *req, int worker)
{
    const char *sleep_ms = mp_msg_header(req, "Sleep-Ms");
    if (sleep_ms)
        usleep((useconds_t)atoi(sleep_ms) * 1000);
    mp_bus_hdr_t h[] = {{"Echo-Sub", mp_msg_header(req, MP_HDR_AUTH_SUB)},
                        {"Echo-Deadline", mp_msg_header(req, MP_HDR_DEADLINE)}};
    mp_bus_reply(bus, req, 201, mp_msg_data(req), mp_msg_len(req), h, 2);
}

static int setup(void **state)
{
    mp_bus_opts_t o = {.url = MP_TEST_NATS_URL(), .name = "test_bus", .send_asap = true};
    assert_int_equal(mp_bus_connect(&bus, &o), MP_OK);
    return 0;
}

static int teardown(void **state)
{
    mp_bus_destroy(bus);
    nats_CloseAndWait(2000); /* nats.c's own threads, so the leak checker sees a clean exit */
    return 0;
}

static void test_bus_request_reaches_responder_with_headers(void **state)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = 2, .name = "echo"};
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.echo", "test", echo_handler, NULL), MP_OK);
    natsConnection_Flush(mp_bus_conn(bus));

    mp_msg_t *reply = NULL;
    mp_bus_call_t call = {.subject = "test.v1.echo",
                          .body = "{\"a\":1}",
                          .len = 7,
                          .timeout_ms = 2000,
                          .ctx = {.request_id = "rid-1", .auth_sub = "user-42"}};
    assert_int_equal(mp_bus_request(&reply, bus, &call), MP_OK);
    assert_int_equal(mp_msg_status(reply), 201);
    assert_int_equal(mp_msg_len(reply), 7);
    assert_memory_equal(mp_msg_data(reply), "{\"a\":1}", 7);
    assert_string_equal(mp_msg_header(reply, "Echo-Sub"), "user-42");
    assert_string_equal(mp_msg_header(reply, MP_HDR_REQUEST_ID), "rid-1");
    /* a request always carries a deadline derived from its timeout */
    assert_non_null(mp_msg_header(reply, "Echo-Deadline"));
    mp_msg_destroy(reply);
    mp_bus_server_destroy(srv);
}

static void test_bus_request_no_responders_is_unavailable(void **state)
{
    mp_msg_t *reply = NULL;
    mp_bus_call_t call = {.subject = "nobody.v1.here", .body = "{}", .len = 2, .timeout_ms = 2000};
    int64_t t0 = mp_now_ms();
    assert_int_equal(mp_bus_request(&reply, bus, &call), MP_EUNAVAIL);
    /* the server says so at once; we must not sit out the timeout */
    assert_true(mp_now_ms() - t0 < 1000);
}

static void test_bus_server_drops_expired_requests(void **state)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = 1, .name = "slow"};
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.slow", "test", echo_handler, NULL), MP_OK);
    natsConnection_Flush(mp_bus_conn(bus));

    /* the first call occupies the only worker for 300 ms; the second one's deadline passes while it waits */
    mp_bus_hdr_t slow[] = {{"Sleep-Ms", "300"}};
    mp_bus_call_t c1 = {
        .subject = "test.v1.slow", .body = "1", .len = 1, .timeout_ms = 100, .extra = slow, .nextra = 1};
    mp_bus_call_t c2 = {.subject = "test.v1.slow", .body = "2", .len = 1, .timeout_ms = 100};
    assert_int_equal(mp_bus_publish(bus, &c1), MP_OK);
    mp_msg_t *reply = NULL;
    assert_int_equal(mp_bus_request(&reply, bus, &c2), MP_ETIMEDOUT);
    usleep(400 * 1000);
    assert_int_equal(mp_bus_server_expired(srv), 1);
    mp_bus_server_destroy(srv);
}

/* ---- async from a loop thread ------------------------------------------ */

typedef struct loop_fixture {
    uv_loop_t loop;
    mp_bus_loop_t *bl;
    int done;
    mp_status_t st[8];
    int status[8];
    int64_t at[8];
} loop_fixture_t;

static void on_reply(void *arg, mp_status_t st, const mp_reply_t *reply)
{
    loop_fixture_t **slot = arg;
    loop_fixture_t *f = slot[0];
    int i = (int)(intptr_t)slot[1];
    f->st[i] = st;
    f->status[i] = reply ? reply->status : 0;
    f->at[i] = mp_now_ms();
    f->done++;
}

static void loop_init(loop_fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    assert_int_equal(mp_bus_loop_create(&f->bl, bus, &f->loop), MP_OK);
    int64_t until = mp_now_ms() + 5000;
    while (!mp_bus_loop_ready(f->bl) && mp_now_ms() < until) /* the loop's connection comes up asynchronously */
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(mp_bus_loop_ready(f->bl));
}

static void loop_run_until(loop_fixture_t *f, int n)
{
    int64_t until = mp_now_ms() + 5000;
    while (f->done < n && mp_now_ms() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void loop_dispose(loop_fixture_t *f)
{
    mp_bus_loop_destroy(f->bl);
    for (int i = 0; i < 10 && uv_loop_alive(&f->loop); i++) /* handles and the socket close on later turns */
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed */
}

static void test_bus_async_parallel_calls_overlap(void **state)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = 4, .name = "par"};
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.par", "test", echo_handler, NULL), MP_OK);
    natsConnection_Flush(mp_bus_conn(bus));

    loop_fixture_t f;
    void *slots[4][2];
    loop_init(&f);
    mp_bus_hdr_t slow[] = {{"Sleep-Ms", "100"}};
    int64_t t0 = mp_now_ms();
    for (int i = 0; i < 4; i++) {
        slots[i][0] = &f;
        slots[i][1] = (void *)(intptr_t)i;
        mp_bus_call_t c = {
            .subject = "test.v1.par", .body = "x", .len = 1, .timeout_ms = 2000, .extra = slow, .nextra = 1};
        assert_int_equal(mp_bus_call_async(NULL, f.bl, &c, on_reply, slots[i]), MP_OK);
    }
    assert_int_equal(mp_bus_loop_pending(f.bl), 4);
    loop_run_until(&f, 4);
    assert_int_equal(f.done, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f.st[i], MP_OK);
        assert_int_equal(f.status[i], 201);
    }
    /* four 100 ms calls in parallel: about 100 ms, far from 400 */
    int64_t took = mp_now_ms() - t0;
    assert_true(took >= 100);
    assert_true(took < 300);
    loop_dispose(&f);
    mp_bus_server_destroy(srv);
}

static void test_bus_async_timeout_no_responder_and_cancel(void **state)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = 2, .name = "to"};
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.to", "test", echo_handler, NULL), MP_OK);
    natsConnection_Flush(mp_bus_conn(bus));

    loop_fixture_t f;
    void *slots[3][2];
    loop_init(&f);
    for (int i = 0; i < 3; i++) {
        slots[i][0] = &f;
        slots[i][1] = (void *)(intptr_t)i;
    }
    mp_bus_hdr_t slow[] = {{"Sleep-Ms", "500"}};
    mp_bus_call_t late = {.subject = "test.v1.to", .body = "x", .len = 1, .timeout_ms = 50, .extra = slow, .nextra = 1};
    mp_bus_call_t none = {.subject = "nobody.v1.here", .body = "x", .len = 1, .timeout_ms = 2000};
    mp_bus_call_t cancel = {
        .subject = "test.v1.to", .body = "x", .len = 1, .timeout_ms = 2000, .extra = slow, .nextra = 1};
    uint64_t cancel_id = 0;
    int64_t t0 = mp_now_ms();
    assert_int_equal(mp_bus_call_async(NULL, f.bl, &late, on_reply, slots[0]), MP_OK);
    assert_int_equal(mp_bus_call_async(NULL, f.bl, &none, on_reply, slots[1]), MP_OK);
    assert_int_equal(mp_bus_call_async(&cancel_id, f.bl, &cancel, on_reply, slots[2]), MP_OK);
    mp_bus_cancel(f.bl, cancel_id);
    assert_int_equal(f.done, 1);
    assert_int_equal(f.st[2], MP_ECANCELED);
    mp_bus_cancel(f.bl, cancel_id); /* a second cancel is a no-op */
    loop_run_until(&f, 3);
    assert_int_equal(f.st[0], MP_ETIMEDOUT);
    assert_true(f.at[0] - t0 >= 45 && f.at[0] - t0 < 400);
    assert_int_equal(f.st[1], MP_EUNAVAIL);
    assert_true(f.at[1] - t0 < 400);
    /* a deadline already gone refuses the call and never runs the callback */
    mp_bus_call_t past = {
        .subject = "test.v1.to", .body = "x", .len = 1, .timeout_ms = 100, .ctx = {.deadline_ms = mp_now_ms() - 1}};
    assert_int_equal(mp_bus_call_async(NULL, f.bl, &past, on_reply, slots[0]), MP_ETIMEDOUT);
    /* late replies to the timed-out and cancelled calls arrive and are dropped quietly */
    usleep(600 * 1000);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.done, 3);
    loop_dispose(&f);
    mp_bus_server_destroy(srv);
}

static void test_bus_async_destroy_cancels_pending(void **state)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = 1, .name = "d"};
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.d", "test", echo_handler, NULL), MP_OK);
    natsConnection_Flush(mp_bus_conn(bus));
    loop_fixture_t f;
    void *slot[2] = {&f, (void *)(intptr_t)0};
    loop_init(&f);
    mp_bus_hdr_t slow[] = {{"Sleep-Ms", "200"}};
    mp_bus_call_t c = {.subject = "test.v1.d", .body = "x", .len = 1, .timeout_ms = 2000, .extra = slow, .nextra = 1};
    assert_int_equal(mp_bus_call_async(NULL, f.bl, &c, on_reply, slot), MP_OK);
    loop_dispose(&f);
    assert_int_equal(f.done, 1);
    assert_int_equal(f.st[0], MP_ECANCELED);
    mp_bus_server_destroy(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_request_reaches_responder_with_headers),
        cmocka_unit_test(test_bus_request_no_responders_is_unavailable),
        cmocka_unit_test(test_bus_server_drops_expired_requests),
        cmocka_unit_test(test_bus_async_parallel_calls_overlap),
        cmocka_unit_test(test_bus_async_timeout_no_responder_and_cancel),
        cmocka_unit_test(test_bus_async_destroy_cancels_pending),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
