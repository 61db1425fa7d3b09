/*
 * outbox.c: writing events into a service's outbox table, and the thread
 * that publishes them to JetStream after commit (see mp/outbox.h).
 *
 * One round: take the schema's advisory lock (so replicas never publish
 * the same rows side by side), read the oldest unpublished rows, publish
 * them one by one, each waiting for JetStream's ack, stop at the first
 * failure, and mark what was acknowledged as published, all in one
 * transaction. A crash between the ack and the commit re-publishes those
 * rows next round with the same Nats-Msg-Id, which JetStream drops as
 * duplicates. The event body is built by Postgres from the row, so the bytes
 * published are exactly what was committed.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "mp/events.h"
#include "mp/json.h"
#include "mp/log.h"
#include "mp/metrics.h"
#include "mp/outbox.h"
#include "mp/poller.h"

struct mp_outbox {
    mp_outbox_opts_t o;
    char schema[64];
    char sql_select[512], sql_mark[160], sql_purge[160], lock_key[80];
    mp_poller_t *poller;
    jsCtx *js;
    int stream_ok;
    mp_events__streak_t streak;
    int64_t last_purge;
    _Atomic uint64_t published;
    mp_series_t *m_published, *m_errors;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mp_status_t mp_outbox_add(mp_db_conn_t *tx, const char *schema, const char *subject, const char *type,
                          const json_t *data)
{
    char sql[160];
    if (!mp_events__sql(sql, sizeof(sql), "INSERT INTO %S.outbox (subject, type, data) VALUES ($1, $2, $3::jsonb)",
                        schema))
        return mp_err_set(MP_EINVAL, "outbox: bad schema name");
    mp_buf_t b = MP_BUF_INIT;
    mp_json_dump(&b, data);
    mp_status_t st = mp_db_exec(NULL, tx, sql, 3, MP_DB_PARAMS(subject, type, b.base));
    mp_buf_dispose(&b);
    return st;
}

/* ---- the publisher --------------------------------------------------------------- */

static void complain(mp_outbox_t *ob, const char *what, const char *error)
{
    mp_series_add(ob->m_errors, 1);
    mp_events__failed(&ob->streak, what, "schema", ob->schema, error);
}

/* Publishes one row; false when JetStream did not acknowledge it. */
static bool publish_row(mp_outbox_t *ob, const char *id, const char *subject, const char *body)
{
    jsPubOptions po;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = ob->o.publish_wait_ms;
    natsStatus s = js_Publish(&ack, ob->js, subject, body, (int)strlen(body), &po, &jerr);
    jsPubAck_Destroy(ack);
    if (s == NATS_OK)
        return true;
    /* no responders: no stream captures the subject (deleted, or the server lost it); create it again */
    if (s == NATS_NO_RESPONDERS)
        ob->stream_ok = 0;
    char err[200];
    snprintf(err, sizeof(err), "%s (JetStream error %d)", natsStatus_GetText(s), (int)jerr);
    complain(ob, "cannot publish an event", err);
    return false;
}

static void purge_old(mp_outbox_t *ob, mp_db_conn_t *c)
{
    char keep[24];
    if (mono_ms() - ob->last_purge < 60000)
        return;
    ob->last_purge = mono_ms();
    snprintf(keep, sizeof(keep), "%lld", (long long)ob->o.retain_ms);
    if (mp_db_exec(NULL, c, ob->sql_purge, 1, MP_DB_PARAMS(keep)) != MP_OK)
        mp_log_kv(MP_LOG_WARN, NULL, "cannot delete old outbox rows", "schema", ob->schema, "error", mp_err_get(),
                  NULL);
}

/* One round. Returns the rows published, or -1 when something failed. */
static int publish_round(mp_outbox_t *ob)
{
    mp_db_conn_t *c = NULL;
    mp_db_res_t *rows = NULL, *lock = NULL;
    mp_buf_t done = MP_BUF_INIT;
    int published = 0, failed = 0;
    char batch[16];

    if (!ob->stream_ok) {
        if (mp_events_ensure_stream(ob->js, mp_bus__opts(ob->o.bus)->stream_replicas) != MP_OK) {
            complain(ob, "cannot create the events stream", mp_err_get());
            return -1;
        }
        ob->stream_ok = 1;
    }
    if (mp_db_acquire(&c, ob->o.db, 1000) != MP_OK) {
        complain(ob, "cannot read the outbox", mp_err_get());
        return -1;
    }
    snprintf(batch, sizeof(batch), "%d", ob->o.batch);
    mp_status_t st = mp_db_begin(c);
    if (st == MP_OK)
        st = mp_db_exec(&lock, c, "SELECT pg_try_advisory_xact_lock(hashtext($1))", 1, MP_DB_PARAMS(ob->lock_key));
    if (st == MP_OK && strcmp(mp_db_get(lock, 0, 0), "t") != 0)
        goto cleanup; /* another replica is publishing this outbox */
    if (st == MP_OK)
        st = mp_db_exec(&rows, c, ob->sql_select, 1, MP_DB_PARAMS(batch));
    for (int i = 0; st == MP_OK && i < mp_db_rows(rows) && !failed; i++) {
        if (!publish_row(ob, mp_db_get(rows, i, 1), mp_db_get(rows, i, 2), mp_db_get(rows, i, 3))) {
            failed = 1;
            break;
        }
        mp_buf_puts(&done, published++ ? "," : "{");
        mp_buf_puts(&done, mp_db_get(rows, i, 0));
    }
    if (st == MP_OK && published) {
        mp_buf_puts(&done, "}");
        st = mp_db_exec(NULL, c, ob->sql_mark, 1, MP_DB_PARAMS(done.base));
    }
    if (st == MP_OK && !failed)
        purge_old(ob, c);
    if (st == MP_OK)
        st = mp_db_commit(c);
    if (st != MP_OK) {
        /* what was published stays unpublished in the table and goes again with the same ids: no loss */
        complain(ob, "cannot read or mark the outbox", mp_err_get());
        failed = 1;
        published = 0;
    }
cleanup:
    mp_db_res_free(lock);
    mp_db_res_free(rows);
    mp_db_release(c); /* rolls back an open transaction */
    mp_buf_dispose(&done);
    if (published) {
        atomic_fetch_add(&ob->published, (uint64_t)published);
        mp_series_add(ob->m_published, published);
    }
    if (failed)
        return -1;
    mp_events__ok(&ob->streak, "outbox publishing again", "schema", ob->schema);
    return published;
}

/* A poller round: more rounds at once while full batches keep coming. */
static int publisher_round(void *arg)
{
    mp_outbox_t *ob = arg;
    return publish_round(ob) == ob->o.batch;
}

mp_status_t mp_outbox_start(mp_outbox_t **out, const mp_outbox_opts_t *opts)
{
    mp_outbox_t *ob = mp_xcalloc(1, sizeof(*ob));
    ob->o = *opts;
    if (ob->o.poll_ms <= 0)
        ob->o.poll_ms = 500;
    if (ob->o.batch <= 0)
        ob->o.batch = 100;
    if (ob->o.publish_wait_ms <= 0)
        ob->o.publish_wait_ms = 2000;
    if (ob->o.retain_ms <= 0)
        ob->o.retain_ms = 86400000;
    snprintf(ob->schema, sizeof(ob->schema), "%s", opts->schema ? opts->schema : "");
    ob->o.schema = ob->schema;
    snprintf(ob->lock_key, sizeof(ob->lock_key), "mp_outbox:%s", ob->schema);
    /* published_at is the time of the mark, after the ack, not the round's start (now()): a restore sends again the
     * rows marked after the moment its stream was taken, and must not miss one acknowledged after it */
    bool ok = opts->bus && opts->db &&
              mp_events__sql(ob->sql_select, sizeof(ob->sql_select),
                             "SELECT seq, id::text, subject, json_build_object('id', id, 'type', type, 'occurred_at', "
                             "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                             "'data', data)::text FROM %S.outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                             ob->schema) &&
              mp_events__sql(ob->sql_mark, sizeof(ob->sql_mark),
                             "UPDATE %S.outbox SET published_at = clock_timestamp() WHERE seq = ANY($1::bigint[])",
                             ob->schema) &&
              mp_events__sql(ob->sql_purge, sizeof(ob->sql_purge),
                             "DELETE FROM %S.outbox WHERE published_at < now() - $1::bigint * interval '1 millisecond'",
                             ob->schema);
    if (!ok) {
        free(ob);
        return mp_err_set(MP_EINVAL, "outbox: needs a bus, a database and a schema name");
    }
    mp_status_t st = mp_events_js(&ob->js, opts->bus, ob->o.publish_wait_ms);
    if (st != MP_OK) {
        free(ob);
        return st;
    }
    mp_metric_t *pub =
                    mp_metrics_counter("moonport_outbox_published_total", "Events published from an outbox", "schema"),
                *err =
                    mp_metrics_counter("moonport_outbox_errors_total",
                                       "Outbox rounds that failed (NATS or Postgres away); the events wait", "schema");
    ob->m_published = mp_metric_series(pub, MP_LABELS(ob->schema));
    ob->m_errors = mp_metric_series(err, MP_LABELS(ob->schema));
    /* the thread's log lines name the service whose outbox it is */
    if (mp_poller_start(&ob->poller, ob->o.schema, ob->o.poll_ms, publisher_round, ob) != MP_OK) {
        jsCtx_Destroy(ob->js);
        free(ob);
        return mp_err_set(MP_EINTERNAL, "outbox: cannot start its thread");
    }
    *out = ob;
    return MP_OK;
}

void mp_outbox_kick(mp_outbox_t *ob)
{
    if (ob)
        mp_poller_kick(ob->poller);
}

void mp_outbox_stop(mp_outbox_t *ob)
{
    if (ob == NULL)
        return;
    mp_poller_stop(ob->poller);
    jsCtx_Destroy(ob->js);
    free(ob);
}

mp_status_t mp_outbox_republish(long *rows, mp_db_t *db, const char *schema, const char *since)
{
    char table[80], sql[160];
    mp_db_res_t *res = NULL;
    if (!mp_events__sql(table, sizeof(table), "%S.outbox", schema) ||
        !mp_events__sql(sql, sizeof(sql), "UPDATE %S.outbox SET published_at = NULL WHERE published_at >= $1", schema))
        return mp_err_set(MP_EINVAL, "outbox: bad schema name");
    mp_status_t st = mp_db_exec_once(&res, db, "SELECT to_regclass($1) IS NOT NULL", 1, MP_DB_PARAMS(table));
    bool has_table = st == MP_OK && strcmp(mp_db_get(res, 0, 0), "t") == 0;
    mp_db_res_free(res);
    res = NULL;
    if (st == MP_OK && has_table)
        st = mp_db_exec_once(&res, db, sql, 1, MP_DB_PARAMS(since));
    if (st == MP_OK)
        *rows = has_table ? mp_db_affected(res) : 0;
    mp_db_res_free(res);
    return st;
}

uint64_t mp_outbox_published(const mp_outbox_t *ob)
{
    return atomic_load(&((mp_outbox_t *)ob)->published);
}
