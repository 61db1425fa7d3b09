/*
 * Integration tests for the transactional outbox against real Postgres and
 * NATS JetStream: nothing is published before commit or after rollback,
 * events go out in the order written with Nats-Msg-Id = event id, a row
 * published twice is stored once by JetStream, and two publishers on one
 * outbox (two replicas) never publish the same row side by side.
 *
 * Everything lives in schema t_<pid>_ob and on subjects events.t<pid>.*;
 * the NATS outage cases are black-box (tests/blackbox/test_orders_outage.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/bus.h"
#include "mp/db.h"
#include "mp/events.h"
#include "mp/input.h"
#include "mp/json.h"
#include "mp/outbox.h"
#include "integration/testenv.h"

static mp_bus_t *bus;
static mp_db_t *db;
static jsCtx *js;
static char schema[32], subj_prefix[32];
static char sql[512];

static const char *q(const char *fmt)
{
    assert_true(mp_events__sql(sql, sizeof(sql), fmt, schema));
    return sql;
}

static long scalar_long(const char *query)
{
    mp_db_res_t *r = NULL;
    assert_int_equal(mp_db_exec_once(&r, db, query, 0, NULL), MP_OK);
    long v = atol(mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    return v;
}

static void subject(char *out, size_t size, const char *leaf)
{
    snprintf(out, size, "%s.%s", subj_prefix, leaf);
}

static json_t *data(int n)
{
    return json_pack("{s:i, s:s}", "n", n, "note", "caf\xc3\xa9 \"quoted\"");
}

/* Adds `count` events numbered from `first` in one transaction and commits (or rolls back). */
static void add_events(const char *leaf, int first, int count, bool commit)
{
    char s[96];
    mp_db_conn_t *c = NULL;
    subject(s, sizeof(s), leaf);
    assert_int_equal(mp_db_acquire(&c, db, 2000), MP_OK);
    assert_int_equal(mp_db_begin(c), MP_OK);
    for (int i = first; i < first + count; i++) {
        json_t *d = data(i);
        assert_int_equal(mp_outbox_add(c, schema, s, "test.happened", d), MP_OK);
        json_decref(d);
    }
    if (commit)
        assert_int_equal(mp_db_commit(c), MP_OK);
    else
        mp_db_rollback(c);
    mp_db_release(c);
}

/* A core NATS subscription on one test subject: it sees every publish, duplicates included. */
static natsSubscription *watch(const char *leaf)
{
    char s[96];
    natsSubscription *sub = NULL;
    subject(s, sizeof(s), leaf);
    assert_int_equal(natsConnection_SubscribeSync(&sub, mp_bus_conn(bus), s), NATS_OK);
    natsConnection_Flush(mp_bus_conn(bus));
    return sub;
}

static natsMsg *next(natsSubscription *sub, int ms)
{
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, sub, ms);
    return s == NATS_OK ? m : NULL;
}

/* How many messages the EVENTS stream holds on one test subject (what consumers would get). */
static int stored(const char *leaf)
{
    char s[96];
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    jsSubOptions so;
    subject(s, sizeof(s), leaf);
    jsSubOptions_Init(&so);
    so.Stream = MP_EVENTS_STREAM;
    assert_int_equal(js_PullSubscribe(&sub, js, s, NULL, NULL, &so, &jerr), NATS_OK);
    int n = 0;
    for (;;) {
        natsMsgList list = {0};
        if (natsSubscription_Fetch(&list, sub, 100, 500, &jerr) != NATS_OK)
            break;
        n += list.Count;
        for (int i = 0; i < list.Count; i++)
            natsMsg_Ack(list.Msgs[i], NULL);
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
    natsSubscription_Destroy(sub);
    return n;
}

static mp_outbox_t *start(void)
{
    mp_outbox_t *ob = NULL;
    mp_outbox_opts_t o = {.bus = bus, .db = db, .schema = schema, .poll_ms = 100};
    assert_int_equal(mp_outbox_start(&ob, &o), MP_OK);
    return ob;
}

static int group_setup(void **state)
{
    snprintf(schema, sizeof(schema), "t_%d_ob", (int)getpid());
    snprintf(subj_prefix, sizeof(subj_prefix), "events.t%d", (int)getpid());
    mp_bus_opts_t bo = {.url = MP_TEST_NATS_URL(), .name = "test_outbox", .send_asap = true};
    assert_int_equal(mp_bus_connect(&bus, &bo), MP_OK);
    mp_db_opts_t dbo = {.dsn = MP_TEST_PG_DSN(), .app_name = "test_outbox", .pool_size = 6};
    assert_int_equal(mp_db_create(&db, &dbo), MP_OK);
    assert_int_equal(mp_events_js(&js, bus, 5000), MP_OK);
    assert_int_equal(mp_events_ensure_stream(js, 1), MP_OK);
    assert_int_equal(mp_events_ensure_stream(js, 1), MP_OK); /* idempotent */
    /* the table exactly as docs/events.md gives it */
    assert_int_equal(mp_db_exec_once(NULL, db, q("CREATE SCHEMA %S"), 0, NULL), MP_OK);
    assert_int_equal(mp_db_exec_once(NULL, db,
                                     q("CREATE TABLE %S.outbox (seq bigserial PRIMARY KEY, "
                                       "id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), subject text NOT NULL, "
                                       "type text NOT NULL, occurred_at timestamptz NOT NULL DEFAULT now(), "
                                       "data jsonb NOT NULL, published_at timestamptz)"),
                                     0, NULL),
                     MP_OK);
    return 0;
}

static int group_teardown(void **state)
{
    mp_db_exec_once(NULL, db, q("DROP SCHEMA %S CASCADE"), 0, NULL);
    jsCtx_Destroy(js);
    mp_db_destroy(db);
    mp_bus_destroy(bus);
    nats_CloseAndWait(2000);
    return 0;
}

static void test_outbox_publishes_only_after_commit(void **state)
{
    natsSubscription *sub = watch("commit");
    mp_outbox_t *ob = start();
    char s[96];
    subject(s, sizeof(s), "commit");

    mp_db_conn_t *c = NULL;
    assert_int_equal(mp_db_acquire(&c, db, 2000), MP_OK);
    assert_int_equal(mp_db_begin(c), MP_OK);
    json_t *d = data(7);
    assert_int_equal(mp_outbox_add(c, schema, s, "test.happened", d), MP_OK);
    json_decref(d);
    mp_outbox_kick(ob);
    /* the publisher polls every 100 ms: several rounds pass without seeing the uncommitted row */
    assert_null(next(sub, 600));
    assert_int_equal(mp_db_commit(c), MP_OK);
    mp_db_release(c);
    mp_outbox_kick(ob);

    natsMsg *m = next(sub, 5000);
    assert_non_null(m);
    json_t *body = NULL;
    mp_event_t ev;
    assert_int_equal(mp_event_parse(&ev, &body, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), MP_OK);
    assert_string_equal(ev.type, "test.happened");
    assert_true(mp_uuid_valid(ev.id));
    assert_int_equal(json_integer_value(json_object_get(ev.data, "n")), 7);
    assert_string_equal(mp_json_str(ev.data, "note"), "caf\xc3\xa9 \"quoted\"");
    assert_int_equal(strlen(ev.occurred_at), 20); /* 2026-11-23T21:07:08Z */
    assert_int_equal(ev.occurred_at[19], 'Z');
    const char *msg_id = NULL;
    assert_int_equal(natsMsgHeader_Get(m, "Nats-Msg-Id", &msg_id), NATS_OK);
    assert_string_equal(msg_id, ev.id);
    json_decref(body);
    natsMsg_Destroy(m);

    /* the row is marked, so it is never published again */
    assert_null(next(sub, 500));
    assert_int_equal(scalar_long(q("SELECT count(*) FROM %S.outbox WHERE published_at IS NULL")), 0);
    assert_true(mp_outbox_published(ob) >= 1);
    mp_outbox_stop(ob);
    natsSubscription_Destroy(sub);
}

static void test_outbox_rollback_never_publishes(void **state)
{
    natsSubscription *sub = watch("rollback");
    mp_outbox_t *ob = start();
    long before = scalar_long(q("SELECT count(*) FROM %S.outbox"));
    add_events("rollback", 1, 3, false);
    mp_outbox_kick(ob);
    assert_null(next(sub, 800));
    assert_int_equal(scalar_long(q("SELECT count(*) FROM %S.outbox")), before);
    mp_outbox_stop(ob);
    natsSubscription_Destroy(sub);
}

static void test_outbox_publishes_in_the_order_written(void **state)
{
    natsSubscription *sub = watch("order");
    for (int t = 0; t < 5; t++)
        add_events("order", t * 30, 30, true); /* 150 rows: more than one round of 100 */
    mp_outbox_t *ob = start();
    for (int i = 0; i < 150; i++) {
        natsMsg *m = next(sub, 5000);
        assert_non_null(m);
        json_t *body = NULL;
        mp_event_t ev;
        assert_int_equal(mp_event_parse(&ev, &body, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), MP_OK);
        assert_int_equal(json_integer_value(json_object_get(ev.data, "n")), i);
        json_decref(body);
        natsMsg_Destroy(m);
    }
    mp_outbox_stop(ob);
    natsSubscription_Destroy(sub);
}

static void test_outbox_republished_row_is_stored_once(void **state)
{
    natsSubscription *sub = watch("again");
    mp_outbox_t *ob = start();
    add_events("again", 1, 1, true);
    mp_outbox_kick(ob);
    natsMsg *m = next(sub, 5000);
    assert_non_null(m);
    natsMsg_Destroy(m);
    char s[96];
    subject(s, sizeof(s), "again");
    /* the publisher marks the row after JetStream's ack: wait for that */
    for (int i = 0; i < 100 && scalar_long(q("SELECT count(*) FROM %S.outbox WHERE published_at IS NULL")) > 0; i++)
        usleep(50 * 1000);
    /* as after a crash between JetStream's ack and our commit: the row is unpublished again */
    assert_int_equal(
        mp_db_exec_once(NULL, db, q("UPDATE %S.outbox SET published_at = NULL WHERE subject = $1"), 1, MP_DB_PARAMS(s)),
        MP_OK);
    mp_outbox_kick(ob);
    m = next(sub, 5000); /* it does go out again, with the same Nats-Msg-Id ... */
    assert_non_null(m);
    natsMsg_Destroy(m);
    mp_outbox_stop(ob);
    assert_int_equal(stored("again"), 1); /* ... and the stream keeps one copy */
    natsSubscription_Destroy(sub);
}

static void test_outbox_two_publishers_never_double_publish(void **state)
{
    natsSubscription *sub = watch("replicas");
    mp_outbox_t *a = start(), *b = start();
    for (int t = 0; t < 20; t++) {
        add_events("replicas", t * 10, 10, true);
        mp_outbox_kick(a);
        mp_outbox_kick(b);
    }
    int seen = 0;
    natsMsg *m;
    while (seen < 200 && (m = next(sub, 5000)) != NULL) {
        natsMsg_Destroy(m);
        seen++;
    }
    assert_int_equal(seen, 200);
    assert_null(next(sub, 700)); /* and nothing twice */
    mp_outbox_stop(a);
    mp_outbox_stop(b);
    assert_int_equal(scalar_long(q("SELECT count(*) FROM %S.outbox WHERE published_at IS NULL")), 0);
    natsSubscription_Destroy(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox_publishes_only_after_commit),
        cmocka_unit_test(test_outbox_rollback_never_publishes),
        cmocka_unit_test(test_outbox_publishes_in_the_order_written),
        cmocka_unit_test(test_outbox_republished_row_is_stored_once),
        cmocka_unit_test(test_outbox_two_publishers_never_double_publish),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
