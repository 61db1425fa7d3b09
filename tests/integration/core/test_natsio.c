/*
 * Integration tests for the loop-native NATS client's server list
 * (core/natsio.c) against the real nats-server and a fake one in this
 * process: a dead entry in the list is passed over; a lost connection
 * fails over to the next server at once, and what was published during the
 * failover reaches the server and is answered; a failover that finds no
 * server fails what it held.
 *
 * The fake server accepts one connection, greets it (INFO, then PONG to the
 * client's PING, so the client counts as connected) and closes it when told.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/bus.h"
#include "mp/natsio.h"
#include "integration/testenv.h"

static mp_bus_t *bus; /* the responder's connection (nats.c) */

/* ---- a fake server --------------------------------------------------------------------- */

typedef struct fake {
    int lfd, port;
    pthread_t thread;
    _Atomic int greeted, close_now, done;
} fake_t;

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    int c = accept(f->lfd, NULL, NULL);
    if (c >= 0) {
        static const char info[] = "INFO {\"server_id\":\"fake\",\"max_payload\":1048576}\r\n";
        char buf[4096];
        size_t have = 0;
        (void)!write(c, info, sizeof(info) - 1);
        while (have < sizeof(buf) - 1 && memmem(buf, have, "PING\r\n", 6) == NULL) {
            ssize_t n = read(c, buf + have, sizeof(buf) - 1 - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        (void)!write(c, "PONG\r\n", 6);
        atomic_store(&f->greeted, 1);
        while (!atomic_load(&f->close_now))
            usleep(1000);
        close(c);
    }
    atomic_store(&f->done, 1);
    return NULL;
}

static void fake_start(fake_t *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(f, 0, sizeof(*f));
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Ends the fake: closes its listener (nothing can connect there any more) and its connection, if any. */
static void fake_stop(fake_t *f)
{
    shutdown(f->lfd, SHUT_RDWR); /* wakes a blocked accept */
    close(f->lfd);
    atomic_store(&f->close_now, 1);
    pthread_join(f->thread, NULL);
}

/* A port nothing listens on. */
static int dead_port(void)
{
    fake_t f;
    fake_start(&f);
    int port = f.port;
    fake_stop(&f);
    return port;
}

/* ---- the client under test ---------------------------------------------------------------- */

typedef struct client {
    uv_loop_t loop;
    mp_natsio_t *io;
    int ups, downs, replies;
    bool publish_on_down; /* publish a request from the first on_state(false), as a retrying caller would */
    mp_status_t published;
} client_t;

static void on_msg(void *arg, const char *subject, size_t subject_len, const char *hdrs, size_t hdrs_len,
                   const char *data, size_t len)
{
    client_t *c = arg;
    if (len == 4 && memcmp(data, "pong", 4) == 0)
        c->replies++;
}

static void on_state(void *arg, bool up)
{
    client_t *c = arg;
    if (up) {
        c->ups++;
        return;
    }
    if (c->downs++ == 0 && c->publish_on_down)
        c->published = mp_natsio_publish(c->io, "natsio.test.ping", "_INBOX.test.natsio.1", NULL, 0, "ping", 4);
}

static void client_start(client_t *c, const char *url)
{
    memset(c, 0, sizeof(*c));
    c->published = MP_EINTERNAL;
    uv_loop_init(&c->loop);
    mp_natsio_opts_t o = {.url = url,
                          .name = "test_natsio",
                          .subscribe = "_INBOX.test.natsio.*",
                          .on_msg = on_msg,
                          .on_state = on_state,
                          .arg = c};
    assert_int_equal(mp_natsio_create(&c->io, &c->loop, &o), MP_OK);
}

/* Runs the loop until *counter reaches `n` or `ms` pass; true if it did. */
static bool run_until(client_t *c, int *counter, int n, int ms)
{
    int64_t until = mp_now_ms() + ms;
    while (*counter < n && mp_now_ms() < until)
        uv_run(&c->loop, UV_RUN_NOWAIT), usleep(200);
    return *counter >= n;
}

static void client_stop(client_t *c)
{
    mp_natsio_destroy(c->io);
    for (int i = 0; i < 10 && uv_loop_alive(&c->loop); i++)
        uv_run(&c->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&c->loop), 0); /* every handle closed */
}

/* nats.c thread: answers every request with "pong". */
static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    natsConnection_Publish(nc, natsMsg_GetReply(m), "pong", 4);
    natsMsg_Destroy(m);
}

static int setup(void **state)
{
    mp_bus_opts_t o = {.url = MP_TEST_NATS_URL(), .name = "test_natsio", .send_asap = true};
    natsSubscription *sub = NULL;
    assert_int_equal(mp_bus_connect(&bus, &o), MP_OK);
    assert_int_equal(natsConnection_Subscribe(&sub, mp_bus_conn(bus), "natsio.test.ping", on_request, NULL), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(mp_bus_conn(bus), 2000), NATS_OK);
    *state = sub;
    return 0;
}

static int teardown(void **state)
{
    natsSubscription_Destroy(*state);
    mp_bus_destroy(bus);
    nats_CloseAndWait(2000);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_natsio_passes_over_a_dead_server(void **state)
{
    char url[1024];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d,%s", dead_port(), MP_TEST_NATS_URL());
    for (int round = 0; round < 4; round++) { /* the start is random: dead first or real first, both must work */
        client_t c;
        client_start(&c, url);
        assert_true(run_until(&c, &c.ups, 1, 3000));
        assert_int_equal(mp_natsio_publish(c.io, "natsio.test.ping", "_INBOX.test.natsio.1", NULL, 0, "ping", 4),
                         MP_OK);
        assert_true(run_until(&c, &c.replies, 1, 3000));
        client_stop(&c);
    }
}

static void test_natsio_fails_over_at_once_and_sends_what_it_held(void **state)
{
    char url[1024];
    for (int tries = 0; tries < 40; tries++) { /* until the random start is the fake (1 in 2 each time) */
        fake_t f;
        client_t c;
        fake_start(&f);
        snprintf(url, sizeof(url), "nats://127.0.0.1:%d,%s", f.port, MP_TEST_NATS_URL());
        client_start(&c, url);
        assert_true(run_until(&c, &c.ups, 1, 3000));
        if (!atomic_load(&f.greeted)) { /* connected to the real server first */
            client_stop(&c);
            fake_stop(&f);
            continue;
        }
        c.publish_on_down = true;
        int64_t lost = mp_now_ms();
        fake_stop(&f); /* the node dies */
        assert_true(run_until(&c, &c.ups, 2, 3000));
        int64_t took = mp_now_ms() - lost;
        assert_int_equal(c.downs, 1);
        assert_int_equal(c.published, MP_OK); /* held, not refused */
        assert_true(run_until(&c, &c.replies, 1, 3000));
        /* no back-off before the first other server (the first back-off is 100 ms) */
        assert_true(took < 90);
        client_stop(&c);
        return;
    }
    fail_msg("the client never started at the fake server");
}

static void test_natsio_failover_without_a_server_fails_what_it_held(void **state)
{
    char url[256];
    fake_t f;
    client_t c;
    fake_start(&f);
    /* both entries end up dead: the fake (stopped below) and a port nothing listens on */
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d,nats://127.0.0.1:%d", f.port, dead_port());
    client_start(&c, url);
    assert_true(run_until(&c, &c.ups, 1, 3000)); /* the only server that answers is the fake */
    c.publish_on_down = true;
    fake_stop(&f);
    assert_true(run_until(&c, &c.downs, 2, 3000)); /* the loss, then the end of a failover that found nobody */
    assert_int_equal(c.published, MP_OK);
    assert_int_equal(c.ups, 1);
    assert_int_equal(mp_natsio_publish(c.io, "natsio.test.ping", NULL, NULL, 0, "x", 1), MP_EUNAVAIL);
    client_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_natsio_passes_over_a_dead_server),
        cmocka_unit_test(test_natsio_fails_over_at_once_and_sends_what_it_held),
        cmocka_unit_test(test_natsio_failover_without_a_server_fails_what_it_held),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
