/*
 * Integration tests for serving on loop connections with fibers (core/bus_serve_loop.c, core/fiber.c) against a
 * real nats-server and Postgres: one worker thread keeps many statements in flight, a handler's call to another
 * service parks only its fiber, headers and bodies cross intact, and a drain finishes what had arrived.
 *
 * Against a fake server in this process, which holds back its PONG to the PING after a drain's UNSUBs and sends
 * requests first, as a busy server (or a cluster's route) delivers what it routed before it saw the UNSUB: a
 * drain serves those like any request in flight, and waits for that PONG before it ends.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* ---- a fake server for the drain's last moments --------------------------------------------- */

#define FAKE_CONNS 8
#define LATE_REQUESTS 3

/* Speaks enough NATS for nats.c and the loop connections: INFO, PONG to every PING. On the connection that
 * subscribed test.v1.sleepy, the PING that follows its UNSUB is answered `delay_ms` later, and LATE_REQUESTS
 * requests for the unsubscribed sid go out before that PONG; what the connection publishes after its UNSUB (the
 * replies) is kept in `after`. */
typedef struct fake_nats {
    int lfd, port, delay_ms;
    pthread_t thread;
    _Atomic int stop;
    pthread_mutex_t mu;
    char after[16384];
    size_t after_len;
} fake_nats_t;

typedef struct fake_conn {
    int fd;
    char buf[65536];
    size_t len;
    long sid; /* of test.v1.sleepy, -1 before it is subscribed */
    bool unsubscribed, answered;
} fake_conn_t;

static void fake_write(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Handles the complete lines (and payloads) in c->buf. */
static void fake_serve(fake_nats_t *f, fake_conn_t *c)
{
    size_t off = 0;
    for (;;) {
        char *p = c->buf + off, *eol = memmem(p, c->len - off, "\r\n", 2);
        if (eol == NULL)
            break;
        size_t used = (size_t)(eol - p) + 2;
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(eol - p < 511 ? eol - p : 511), p);
        if (strncmp(line, "PUB ", 4) == 0 || strncmp(line, "HPUB ", 5) == 0) {
            size_t total = (size_t)atol(strrchr(line, ' ') + 1);
            if (c->len - off < used + total + 2)
                break; /* the payload is still on its way */
            used += total + 2;
            pthread_mutex_lock(&f->mu);
            if (c->unsubscribed && f->after_len + used < sizeof(f->after)) {
                memcpy(f->after + f->after_len, p, used);
                f->after_len += used;
            }
            pthread_mutex_unlock(&f->mu);
        } else if (strncmp(line, "SUB test.v1.sleepy ", 19) == 0) {
            c->sid = atol(strrchr(line, ' ') + 1);
        } else if (strncmp(line, "UNSUB ", 6) == 0 && atol(line + 6) == c->sid) {
            c->unsubscribed = true;
        } else if (strcmp(line, "PING") == 0) {
            if (c->unsubscribed && !c->answered) {
                c->answered = true;
                usleep((useconds_t)f->delay_ms * 1000);
                for (int i = 0; i < LATE_REQUESTS; i++) {
                    char msg[128];
                    int n =
                        snprintf(msg, sizeof(msg), "MSG test.v1.sleepy %ld _INBOX.late.%d 4\r\nlate\r\n", c->sid, i);
                    fake_write(c->fd, msg, (size_t)n);
                }
            }
            fake_write(c->fd, "PONG\r\n", 6);
        }
        off += used;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void *fake_main(void *arg)
{
    fake_nats_t *f = arg;
    fake_conn_t *conns = calloc(FAKE_CONNS, sizeof(*conns));
    int n = 0;
    char info[256];
    int ilen = snprintf(info, sizeof(info),
                        "INFO {\"server_id\":\"fake\",\"version\":\"2.10.0\",\"proto\":1,\"headers\":true,"
                        "\"max_payload\":1048576,\"host\":\"127.0.0.1\",\"port\":%d}\r\n",
                        f->port);
    while (!atomic_load(&f->stop)) {
        struct pollfd pf[FAKE_CONNS + 1] = {{.fd = f->lfd, .events = POLLIN}};
        for (int i = 0; i < n; i++)
            pf[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(pf, (nfds_t)n + 1, 20) <= 0)
            continue;
        if ((pf[0].revents & POLLIN) && n < FAKE_CONNS) {
            int fd = accept(f->lfd, NULL, NULL);
            if (fd >= 0) {
                conns[n] = (fake_conn_t){.fd = fd, .sid = -1};
                fake_write(fd, info, (size_t)ilen);
                n++;
            }
        }
        for (int i = 0; i < n; i++) {
            if (!(pf[i + 1].revents & (POLLIN | POLLHUP)) || conns[i].fd < 0)
                continue;
            ssize_t r = read(conns[i].fd, conns[i].buf + conns[i].len, sizeof(conns[i].buf) - conns[i].len);
            if (r <= 0) {
                close(conns[i].fd);
                conns[i].fd = -1;
                continue;
            }
            conns[i].len += (size_t)r;
            fake_serve(f, &conns[i]);
        }
    }
    for (int i = 0; i < n; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(conns);
    return NULL;
}

static void fake_start(fake_nats_t *f, int delay_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(f, 0, sizeof(*f));
    f->delay_ms = delay_ms;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_nats_t *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
}

/* How often `what` occurs in what the serving connection published after its UNSUBs. */
static int fake_count_after(fake_nats_t *f, const char *what)
{
    int n = 0;
    pthread_mutex_lock(&f->mu);
    for (const char *p = f->after, *end = f->after + f->after_len;
         (p = memmem(p, (size_t)(end - p), what, strlen(what))) != NULL; p++)
        n++;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Drains a one-worker server whose fake server delivers LATE_REQUESTS requests `delay_ms` after the UNSUBs, then
 * says it has stopped sending; returns how many were answered 201 (and checks that none was refused). */
static int late_requests_answered(int delay_ms)
{
    fake_nats_t f;
    mp_bus_t *fbus = NULL;
    mp_bus_server_t *srv;
    char url[64];
    fake_start(&f, delay_ms);
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", f.port);
    mp_bus_opts_t o = {.url = url, .name = "fake_drain", .send_asap = true};
    assert_int_equal(mp_bus_connect(&fbus, &o), MP_OK);
    mp_bus_server_opts_t so = {.workers = 1, .fibers = 8, .nats_loop = true, .name = "drainsrv"};
    assert_int_equal(mp_bus_server_create(&srv, fbus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "test.v1.sleepy", "test", sleepy_handler, NULL), MP_OK);
    assert_int_equal(mp_bus_server_start(srv), MP_OK);
    int64_t t0 = mp_now_ms();
    mp_bus_server_drain(srv, 3000);
    int64_t took = mp_now_ms() - t0;
    int64_t until = mp_now_ms() + 2000;
    while (fake_count_after(&f, "Status: 201") < LATE_REQUESTS && mp_now_ms() < until)
        usleep(5000);
    int answered = fake_count_after(&f, "Status: 201");
    assert_int_equal(fake_count_after(&f, "Status: 503"), 0);
    assert_true(took >= delay_ms); /* it waited for the server's word */
    mp_bus_server_destroy(srv);
    mp_bus_destroy(fbus);
    fake_stop(&f);
    return answered;
}

static void test_a_drain_serves_what_the_server_sent_before_it_saw_the_unsub(void **state)
{
    (void)state;
    assert_int_equal(late_requests_answered(20), LATE_REQUESTS);
}

static void test_a_drain_waits_for_the_server_to_confirm_the_unsub(void **state)
{
    (void)state;
    /* a busy server (or a cluster route) may take longer than any fixed wait to act on the UNSUB */
    assert_int_equal(late_requests_answered(400), LATE_REQUESTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_worker_keeps_many_statements_in_flight),
        cmocka_unit_test(test_headers_and_bodies_cross_the_loop_connection),
        cmocka_unit_test(test_a_nested_call_parks_its_fiber_not_its_worker),
        cmocka_unit_test(test_a_drain_finishes_what_arrived),
        cmocka_unit_test(test_a_drain_serves_what_the_server_sent_before_it_saw_the_unsub),
        cmocka_unit_test(test_a_drain_waits_for_the_server_to_confirm_the_unsub),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
