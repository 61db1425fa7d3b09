/*
 * Integration tests for durable consumers against real JetStream and
 * Postgres: the same event id delivered twice is handled once; a transient
 * failure rolls back the handler's changes and the handled-mark together and
 * the event comes back; a permanent failure or a malformed event is not
 * redelivered; ignored events are acked; a consumer stopped mid-stream and
 * started again, and two instances sharing a durable, handle every event
 * exactly once.
 *
 * Each test has its own durable (t<pid>_<name>) and subject
 * (events.t<pid>c.<name>); tables live in schema t_<pid>_co.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/bus.h"
#include "mp/consumer.h"
#include "mp/db.h"
#include "mp/events.h"
#include "integration/testenv.h"

typedef enum { RECORD, FLAKY, POISON, IGNORE } mode_t_;

typedef struct probe {
    mode_t_ mode;
    int sleep_ms;
    pthread_mutex_t mu;
    int calls;
    uint64_t deliveries[16];
    int64_t at_ms[16];
} probe_t;

static mp_bus_t *bus;
static mp_db_t *db;
static jsCtx *js;
static char schema[32];
static char sql[512];

static const char *q(const char *fmt)
{
    assert_true(mp_events__sql(sql, sizeof(sql), fmt, schema));
    return sql;
}

static long scalar_long(const char *query, int n, const char *const *params)
{
    mp_db_res_t *r = NULL;
    assert_int_equal(mp_db_exec_once(&r, db, query, n, params), MP_OK);
    long v = atol(mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    return v;
}

static mp_status_t on_event(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->mu);
    if (p->calls < 16) {
        p->deliveries[p->calls] = ev->delivery;
        p->at_ms[p->calls] = mp_now_ms();
    }
    p->calls++;
    pthread_mutex_unlock(&p->mu);
    if (p->mode == POISON)
        return mp_err_set(MP_EINVAL, "this event can never be handled");
    if (p->mode == IGNORE)
        return MP_OK;
    mp_db_conn_t *tx = NULL;
    mp_status_t st = mp_consumer_begin(&tx, m);
    if (st == MP_ECONFLICT)
        return MP_OK;
    if (st != MP_OK)
        return st;
    char sqlbuf[160];
    assert_true(mp_events__sql(sqlbuf, sizeof(sqlbuf), "INSERT INTO %S.effects (event_id) VALUES ($1)", schema));
    st = mp_db_exec(NULL, tx, sqlbuf, 1, MP_DB_PARAMS(ev->id));
    if (p->sleep_ms)
        usleep((useconds_t)p->sleep_ms * 1000);
    /* the effect and the handled-mark were written: failing now must undo both */
    if (st == MP_OK && p->mode == FLAKY && ev->delivery < 3)
        return mp_err_set(MP_EUNAVAIL, "the dependency is down (delivery %llu)", (unsigned long long)ev->delivery);
    return st;
}

static void publish(const char *leaf, const char *event_id, const char *msg_id)
{
    char subj[96], body[256];
    snprintf(subj, sizeof(subj), "events.t%dc.%s", (int)getpid(), leaf);
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"type\":\"test.%s\",\"occurred_at\":\"2026-11-23T21:07:08Z\",\"data\":{\"x\":1}}",
             event_id, leaf);
    char mid[80];
    jsPubOptions po;
    jsPubOptions_Init(&po);
    if (msg_id) { /* unique per run: JetStream remembers ids for its 2-minute duplicate window */
        snprintf(mid, sizeof(mid), "%d-%s", (int)getpid(), msg_id);
        po.MsgId = mid;
    }
    assert_int_equal(js_Publish(NULL, js, subj, body, (int)strlen(body), &po, NULL), NATS_OK);
}

static void publish_raw(const char *leaf, const char *body)
{
    char subj[96];
    snprintf(subj, sizeof(subj), "events.t%dc.%s", (int)getpid(), leaf);
    assert_int_equal(js_Publish(NULL, js, subj, body, (int)strlen(body), NULL, NULL), NATS_OK);
}

static mp_consumer_t *start(const char *leaf, probe_t *p, int workers)
{
    char durable[64], filter[96];
    snprintf(durable, sizeof(durable), "t%d_%s", (int)getpid(), leaf);
    snprintf(filter, sizeof(filter), "events.t%dc.%s", (int)getpid(), leaf);
    mp_consumer_opts_t o = {.bus = bus,
                            .db = db,
                            .schema = schema,
                            .durable = durable,
                            .filter = filter,
                            .handler = on_event,
                            .arg = p,
                            .workers = workers,
                            .ack_wait_ms = 2000,
                            .backoff_base_ms = 100,
                            .backoff_max_ms = 1000};
    mp_consumer_t *c = NULL;
    assert_int_equal(mp_consumer_start(&c, &o), MP_OK);
    return c;
}

static void delete_durable(const char *leaf)
{
    char durable[64];
    snprintf(durable, sizeof(durable), "t%d_%s", (int)getpid(), leaf);
    js_DeleteConsumer(js, MP_EVENTS_STREAM, durable, NULL, NULL);
}

static int calls(probe_t *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->calls;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Waits until `cond` holds, up to 15 s (a loaded machine is slow, never wrong). */
#define WAIT_FOR(cond)                                                                                                 \
    do {                                                                                                               \
        for (int w_ = 0; w_ < 300 && !(cond); w_++)                                                                    \
            usleep(50 * 1000);                                                                                         \
    } while (0)

static long effects(const char *event_id)
{
    return scalar_long(q("SELECT count(*) FROM %S.effects WHERE event_id = $1"), 1, MP_DB_PARAMS(event_id));
}

static int group_setup(void **state)
{
    snprintf(schema, sizeof(schema), "t_%d_co", (int)getpid());
    mp_bus_opts_t bo = {.url = MP_TEST_NATS_URL(), .name = "test_consumer", .send_asap = true};
    assert_int_equal(mp_bus_connect(&bus, &bo), MP_OK);
    mp_db_opts_t dbo = {.dsn = MP_TEST_PG_DSN(), .app_name = "test_consumer", .pool_size = 8};
    assert_int_equal(mp_db_create(&db, &dbo), MP_OK);
    assert_int_equal(mp_events_js(&js, bus, 5000), MP_OK);
    assert_int_equal(mp_events_ensure_stream(js, 1), MP_OK);
    assert_int_equal(mp_db_exec_once(NULL, db, q("CREATE SCHEMA %S"), 0, NULL), MP_OK);
    /* the table exactly as docs/events.md gives it, and a table of side effects */
    assert_int_equal(mp_db_exec_once(NULL, db,
                                     q("CREATE TABLE %S.processed_events (consumer text NOT NULL, event_id text NOT "
                                       "NULL, processed_at timestamptz NOT NULL DEFAULT now(), "
                                       "PRIMARY KEY (consumer, event_id))"),
                                     0, NULL),
                     MP_OK);
    assert_int_equal(
        mp_db_exec_once(NULL, db, q("CREATE TABLE %S.effects (n bigserial, event_id text NOT NULL)"), 0, NULL), MP_OK);
    return 0;
}

static int group_teardown(void **state)
{
    static const char *const leaves[] = {"dedup", "flaky", "poison", "ignore", "restart", "shared"};
    for (size_t i = 0; i < sizeof(leaves) / sizeof(*leaves); i++)
        delete_durable(leaves[i]);
    mp_db_exec_once(NULL, db, q("DROP SCHEMA %S CASCADE"), 0, NULL);
    jsCtx_Destroy(js);
    mp_db_destroy(db);
    mp_bus_destroy(bus);
    nats_CloseAndWait(2000);
    return 0;
}

static void test_consumer_same_event_id_twice_is_handled_once(void **state)
{
    probe_t p = {.mode = RECORD, .mu = PTHREAD_MUTEX_INITIALIZER};
    /* distinct Nats-Msg-Ids get past JetStream's own de-duplication, as a re-publish after its window would */
    publish("dedup", "11111111-1111-4111-8111-111111111111", "m1");
    publish("dedup", "11111111-1111-4111-8111-111111111111", "m2");
    publish("dedup", "22222222-2222-4222-8222-222222222222", "m3");
    mp_consumer_t *c = start("dedup", &p, 1);
    mp_consumer_stats_t s = {0};
    WAIT_FOR((mp_consumer_stats(c, &s), s.handled + s.duplicates == 3));
    mp_consumer_stop(c);
    assert_int_equal(s.handled, 2);
    assert_int_equal(s.duplicates, 1);
    assert_int_equal(effects("11111111-1111-4111-8111-111111111111"), 1);
    assert_int_equal(effects("22222222-2222-4222-8222-222222222222"), 1);
    assert_int_equal(calls(&p), 2); /* the duplicate never reached the handler */
}

static void test_consumer_transient_failure_rolls_back_and_retries(void **state)
{
    probe_t p = {.mode = FLAKY, .mu = PTHREAD_MUTEX_INITIALIZER};
    publish("flaky", "33333333-3333-4333-8333-333333333333", NULL);
    mp_consumer_t *c = start("flaky", &p, 1);
    mp_consumer_stats_t s = {0};
    WAIT_FOR((mp_consumer_stats(c, &s), s.handled == 1));
    mp_consumer_stop(c);
    assert_int_equal(s.retried, 2);
    assert_int_equal(calls(&p), 3);
    assert_int_equal(p.deliveries[0], 1);
    assert_int_equal(p.deliveries[1], 2);
    assert_int_equal(p.deliveries[2], 3);
    /* the naks asked for a delay (100 ms, then 200 ms, each -25% at worst) */
    assert_true(p.at_ms[1] - p.at_ms[0] >= 75);
    assert_true(p.at_ms[2] - p.at_ms[1] >= 150);
    /* the two failed attempts left nothing behind, or the third would have been skipped as handled */
    assert_int_equal(effects("33333333-3333-4333-8333-333333333333"), 1);
}

static void test_consumer_permanent_failure_and_malformed_events_are_dropped(void **state)
{
    probe_t p = {.mode = POISON, .mu = PTHREAD_MUTEX_INITIALIZER};
    publish("poison", "44444444-4444-4444-8444-444444444444", NULL);
    publish_raw("poison", "this is not JSON");
    publish_raw("poison", "{\"id\":\"x\",\"type\":\"t\"}"); /* no data */
    mp_consumer_t *c = start("poison", &p, 1);
    mp_consumer_stats_t s = {0};
    WAIT_FOR((mp_consumer_stats(c, &s), s.failed == 3));
    sleep(3); /* longer than the ack wait (2 s): a message still owed would come back */
    mp_consumer_stats(c, &s);
    mp_consumer_stop(c);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.retried, 0);
    assert_int_equal(calls(&p), 1);
}

static void test_consumer_ignored_events_are_acked(void **state)
{
    probe_t p = {.mode = IGNORE, .mu = PTHREAD_MUTEX_INITIALIZER};
    publish("ignore", "55555555-5555-4555-8555-555555555555", NULL);
    mp_consumer_t *c = start("ignore", &p, 1);
    WAIT_FOR(calls(&p) == 1);
    sleep(3); /* past the ack wait */
    mp_consumer_stop(c);
    assert_int_equal(calls(&p), 1);
    assert_int_equal(scalar_long(q("SELECT count(*) FROM %S.processed_events WHERE event_id = $1"), 1,
                                 MP_DB_PARAMS("55555555-5555-4555-8555-555555555555")),
                     0);
}

static void publish_many(const char *leaf, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char id[40];
        snprintf(id, sizeof(id), "%s-%04d", prefix, i);
        publish(leaf, id, id);
    }
}

static void test_consumer_restarted_mid_stream_handles_each_event_once(void **state)
{
    probe_t p = {.mode = RECORD, .sleep_ms = 5, .mu = PTHREAD_MUTEX_INITIALIZER};
    publish_many("restart", "r", 200);
    mp_consumer_t *c = start("restart", &p, 2);
    WAIT_FOR(calls(&p) >= 40);
    mp_consumer_stop(c); /* mid-stream: handlers finish, the rest of the batch goes back */
    long after_stop = scalar_long(q("SELECT count(*) FROM %S.effects WHERE event_id LIKE 'r-%'"), 0, NULL);
    assert_true(after_stop > 0 && after_stop < 200);
    c = start("restart", &p, 2);
    WAIT_FOR(scalar_long(q("SELECT count(DISTINCT event_id) FROM %S.effects WHERE event_id LIKE 'r-%'"), 0, NULL) ==
             200);
    sleep(1);
    mp_consumer_stop(c);
    assert_int_equal(scalar_long(q("SELECT count(*) FROM %S.effects WHERE event_id LIKE 'r-%'"), 0, NULL), 200);
    assert_int_equal(
        scalar_long(q("SELECT count(DISTINCT event_id) FROM %S.effects WHERE event_id LIKE 'r-%'"), 0, NULL), 200);
}

static void test_consumer_two_instances_share_a_durable(void **state)
{
    probe_t p = {.mode = RECORD, .sleep_ms = 2, .mu = PTHREAD_MUTEX_INITIALIZER};
    mp_consumer_t *a = start("shared", &p, 1), *b = start("shared", &p, 1);
    publish_many("shared", "s", 100);
    WAIT_FOR(scalar_long(q("SELECT count(DISTINCT event_id) FROM %S.effects WHERE event_id LIKE 's-%'"), 0, NULL) ==
             100);
    sleep(1);
    mp_consumer_stats_t sa, sb;
    mp_consumer_stats(a, &sa);
    mp_consumer_stats(b, &sb);
    mp_consumer_stop(a);
    mp_consumer_stop(b);
    assert_int_equal(sa.handled + sb.handled, 100);
    assert_int_equal(scalar_long(q("SELECT count(*) FROM %S.effects WHERE event_id LIKE 's-%'"), 0, NULL), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consumer_same_event_id_twice_is_handled_once),
        cmocka_unit_test(test_consumer_transient_failure_rolls_back_and_retries),
        cmocka_unit_test(test_consumer_permanent_failure_and_malformed_events_are_dropped),
        cmocka_unit_test(test_consumer_ignored_events_are_acked),
        cmocka_unit_test(test_consumer_restarted_mid_stream_handles_each_event_once),
        cmocka_unit_test(test_consumer_two_instances_share_a_durable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
