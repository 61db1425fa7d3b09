/*
 * consumer.c: durable JetStream pull consumers with de-duplication by event
 * id (see mp/consumer.h).
 *
 * Each worker thread owns a pull subscription bound to the durable, which
 * this file creates (or updates to the current definition) itself rather
 * than letting nats.c do it, so a changed ack wait or filter takes effect at
 * the next start. Fetches wait at most a second, so stop is prompt and a
 * NATS outage shows up as timeouts; three fetch errors in a row, or a closed
 * subscription, make the worker subscribe again, re-creating the stream and
 * the durable if the server lost them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mp/alloc.h"
#include "mp/consumer.h"
#include "mp/log.h"
#include "mp/metrics.h"
#include "mp/reqctx.h"

#define FETCH_WAIT_MS 1000
#define KEEP_HANDLED "8 days" /* longer than the stream keeps events (7 days) */

typedef struct worker {
    struct mp_consumer *c;
    int index;
    pthread_t thread;
    mp_events__streak_t streak;
} worker_t;

struct mp_consumer {
    mp_consumer_opts_t o;
    char schema[64], durable[64], filter[128];
    char sql_seen[160], sql_record[200], sql_purge[200];
    worker_t *workers;
    int started;
    _Atomic int stopping;
    _Atomic uint64_t handled, duplicates, retried, failed;
    mp_series_t *m_handled, *m_duplicates, *m_retried, *m_failed;
};

struct mp_consumer_msg {
    mp_consumer_t *c;
    natsMsg *msg;
    const mp_event_t *ev;
    mp_db_conn_t *tx;
    int began;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to `ms`, waking early when the consumer stops. */
static void pause_ms(mp_consumer_t *c, int ms)
{
    for (int slept = 0; slept < ms && !atomic_load(&c->stopping); slept += 50)
        usleep(50 * 1000);
}

static void complain(worker_t *w, const char *what, const char *error)
{
    mp_events__failed(&w->streak, what, "consumer", w->c->durable, error);
}

/* ---- the handler's side ---------------------------------------------------------------- */

mp_status_t mp_consumer_begin(mp_db_conn_t **tx, mp_consumer_msg_t *m)
{
    mp_db_res_t *res = NULL;
    if (m->began)
        return mp_err_set(MP_EINVAL, "mp_consumer_begin called twice for one event");
    m->began = 1;
    mp_status_t st = mp_db_acquire(&m->tx, m->c->o.db, 5000);
    if (st != MP_OK)
        return st;
    st = mp_db_begin(m->tx);
    if (st == MP_OK)
        st = mp_db_exec(&res, m->tx, m->c->sql_record, 2, MP_DB_PARAMS(m->c->durable, m->ev->id));
    if (st == MP_OK && mp_db_affected(res) == 0)
        st = MP_ECONFLICT; /* a concurrent delivery of the same event committed first */
    mp_db_res_free(res);
    if (st != MP_OK) {
        mp_db_release(m->tx);
        m->tx = NULL;
        return st;
    }
    *tx = m->tx;
    return MP_OK;
}

void mp_consumer_progress(mp_consumer_msg_t *m)
{
    natsMsg_InProgress(m->msg, NULL);
}

/* ---- handling one delivery ------------------------------------------------------------------ */

static bool permanent(mp_status_t st)
{
    switch (st) {
    case MP_EINVAL:
    case MP_EVALIDATION:
    case MP_ENOTFOUND:
    case MP_ECONFLICT:
    case MP_EFORBIDDEN:
    case MP_EUNAUTH:
    case MP_EPRECOND:
    case MP_ETOOBIG:
    case MP_EMEDIA:
        return true;
    default:
        return false;
    }
}

static int64_t backoff_ms(const mp_consumer_t *c, uint64_t delivery)
{
    int64_t d = c->o.backoff_base_ms;
    for (uint64_t i = 1; i < delivery && d < c->o.backoff_max_ms; i++)
        d *= 2;
    if (d > c->o.backoff_max_ms)
        d = c->o.backoff_max_ms;
    /* +-25% so that events failing together do not come back together */
    return d * 3 / 4 + (int64_t)(mp_rand64() % (uint64_t)(d / 2 + 1));
}

static void count(mp_consumer_t *c, _Atomic uint64_t *n, mp_series_t *s)
{
    atomic_fetch_add(n, 1);
    mp_series_add(s, 1);
}

/* Looks the event up in the table of handled ones, so redeliveries skip the handler entirely. */
static mp_status_t seen_before(mp_consumer_t *c, const char *id, bool *seen)
{
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, c->o.db, c->sql_seen, 2, MP_DB_PARAMS(c->durable, id));
    if (st == MP_OK)
        *seen = mp_db_rows(res) > 0;
    mp_db_res_free(res);
    return st;
}

static void handle(mp_consumer_t *c, natsMsg *msg)
{
    jsMsgMetaData *meta = NULL;
    json_t *body = NULL;
    mp_event_t ev;
    bool seen = false;
    uint64_t delivery = 1;

    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        delivery = meta->NumDelivered;
        jsMsgMetaData_Destroy(meta);
    }
    if (mp_event_parse(&ev, &body, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg)) != MP_OK) {
        mp_log_kv(MP_LOG_ERROR, NULL, "malformed event dropped", "consumer", c->durable, "subject",
                  natsMsg_GetSubject(msg), "error", mp_err_get(), NULL);
        natsMsg_Term(msg, NULL);
        count(c, &c->failed, c->m_failed);
        return;
    }
    ev.subject = natsMsg_GetSubject(msg);
    ev.delivery = delivery;
    mp_log_ctx_t lc = {.request_id = ev.id};

    mp_consumer_msg_t m = {.c = c, .msg = msg, .ev = &ev};
    mp_err_clear();
    mp_status_t st = seen_before(c, ev.id, &seen);
    if (st == MP_OK && seen) {
        natsMsg_Ack(msg, NULL);
        count(c, &c->duplicates, c->m_duplicates);
        goto done;
    }
    if (st == MP_OK)
        st = c->o.handler(c->o.arg, &m, &ev);
    if (st == MP_OK && m.tx)
        st = mp_db_commit(m.tx);
    mp_db_release(m.tx); /* rolls back what a failed handler left open */
    if (st == MP_OK) {
        natsMsg_Ack(msg, NULL);
        if (m.began && m.tx == NULL)
            count(c, &c->duplicates, c->m_duplicates); /* begin found it handled */
        else
            count(c, &c->handled, c->m_handled);
        if (m.tx && c->o.after_commit)
            c->o.after_commit(c->o.arg);
    } else if (permanent(st)) {
        mp_log_kv(MP_LOG_ERROR, &lc, "event cannot be handled; dropped", "consumer", c->durable, "type", ev.type,
                  "status", mp_status_name(st), "error", mp_err_get(), NULL);
        natsMsg_Term(msg, NULL);
        count(c, &c->failed, c->m_failed);
    } else {
        int64_t delay = backoff_ms(c, delivery);
        char d[24], n[24];
        snprintf(d, sizeof(d), "%lld", (long long)delay);
        snprintf(n, sizeof(n), "%llu", (unsigned long long)delivery);
        /* an outage makes every event fail: say so at the first tries, then only now and then */
        mp_log_kv(delivery <= 3 || delivery % 20 == 0 ? MP_LOG_WARN : MP_LOG_DEBUG, &lc, "event will be retried",
                  "consumer", c->durable, "type", ev.type, "delivery", n, "retry_in_ms", d, "status",
                  mp_status_name(st), "error", mp_err_get(), NULL);
        natsMsg_NakWithDelay(msg, delay, NULL);
        count(c, &c->retried, c->m_retried);
    }
done:
    json_decref(body);
}

/* ---- the subscription --------------------------------------------------------------------- */

static natsStatus ensure_durable(mp_consumer_t *c, jsCtx *js, jsErrCode *jerr)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsConsumerConfig_Init(&cc);
    cc.Durable = c->durable;
    cc.FilterSubject = c->filter;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)c->o.ack_wait_ms * 1000000;
    cc.MaxDeliver = -1; /* never give up on a transient failure: the handler decides what is permanent */
    cc.MaxAckPending = 1000;
    natsStatus s = js_AddConsumer(&ci, js, MP_EVENTS_STREAM, &cc, NULL, jerr);
    if (s != NATS_OK && (*jerr == JSConsumerNameExistErr || *jerr == JSConsumerExistingActiveErr)) {
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        s = js_UpdateConsumer(&ci, js, MP_EVENTS_STREAM, &cc, NULL, jerr);
    }
    jsConsumerInfo_Destroy(ci);
    return s;
}

static mp_status_t subscribe(worker_t *w, jsCtx *js, natsSubscription **sub)
{
    mp_consumer_t *c = w->c;
    jsErrCode jerr = 0;
    natsStatus s = ensure_durable(c, js, &jerr);
    if (s != NATS_OK && jerr == JSStreamNotFoundErr) {
        if (mp_events_ensure_stream(js, mp_bus__opts(c->o.bus)->stream_replicas) != MP_OK)
            return MP_EUNAVAIL;
        s = ensure_durable(c, js, &jerr);
    }
    if (s == NATS_OK) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = MP_EVENTS_STREAM;
        so.Consumer = c->durable;
        s = js_PullSubscribe(sub, js, c->filter, c->durable, NULL, &so, &jerr);
    }
    if (s == NATS_OK)
        return MP_OK;
    return mp_err_set(MP_EUNAVAIL, "%s (JetStream error %d)", nats_GetLastError(NULL), (int)jerr);
}

static void purge_handled(mp_consumer_t *c, int64_t *last)
{
    if (mono_ms() - *last < 600000)
        return;
    *last = mono_ms();
    if (mp_db_exec_once(NULL, c->o.db, c->sql_purge, 1, MP_DB_PARAMS(c->durable)) != MP_OK)
        mp_log_kv(MP_LOG_WARN, NULL, "cannot delete old handled-event ids", "consumer", c->durable, "error",
                  mp_err_get(), NULL);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    mp_consumer_t *c = w->c;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    int errors = 0;
    int64_t last_purge = mono_ms() - 540000; /* first purge a minute after start */

    mp_log_set_thread_service(c->o.log_service ? c->o.log_service : c->schema);
    while (!atomic_load(&c->stopping)) {
        if (js == NULL && mp_events_js(&js, c->o.bus, 5000) != MP_OK) {
            complain(w, "cannot use JetStream", mp_err_get());
            pause_ms(c, 1000);
            continue;
        }
        if (sub == NULL && subscribe(w, js, &sub) != MP_OK) {
            complain(w, "cannot subscribe to the durable consumer", mp_err_get());
            pause_ms(c, 1000);
            continue;
        }
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, sub, c->o.batch, FETCH_WAIT_MS, &jerr);
        if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
            natsMsgList_Destroy(&list);
            errors = 0;
            if (w->index == 0)
                purge_handled(c, &last_purge);
            continue;
        }
        if (s != NATS_OK) {
            const char *why = nats_GetLastError(NULL);
            complain(w, "cannot fetch events", why && *why ? why : natsStatus_GetText(s));
            if (++errors >= 3 || s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) {
                natsSubscription_Destroy(sub); /* never deletes the durable: only an explicit unsubscribe would */
                sub = NULL;
                errors = 0;
            }
            pause_ms(c, 500);
            continue;
        }
        errors = 0;
        mp_events__ok(&w->streak, "consumer fetching again", "consumer", c->durable);
        for (int i = 0; i < list.Count; i++) {
            if (atomic_load(&c->stopping))
                natsMsg_Nak(list.Msgs[i], NULL); /* give the rest back at once to another instance */
            else
                handle(c, list.Msgs[i]);
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    mp_log_set_thread_service(NULL);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

mp_status_t mp_consumer_start(mp_consumer_t **out, const mp_consumer_opts_t *o)
{
    mp_consumer_t *c = mp_xcalloc(1, sizeof(*c));
    c->o = *o;
    snprintf(c->schema, sizeof(c->schema), "%s", o->schema ? o->schema : "");
    snprintf(c->durable, sizeof(c->durable), "%s", o->durable ? o->durable : "");
    snprintf(c->filter, sizeof(c->filter), "%s", o->filter ? o->filter : "");
    c->o.schema = c->schema;
    c->o.durable = c->durable;
    c->o.filter = c->filter;
    if (c->o.workers <= 0)
        c->o.workers = 1;
    if (c->o.batch <= 0)
        c->o.batch = 10;
    if (c->o.ack_wait_ms <= 0)
        c->o.ack_wait_ms = 30000;
    if (c->o.backoff_base_ms <= 0)
        c->o.backoff_base_ms = 250;
    if (c->o.backoff_max_ms <= 0)
        c->o.backoff_max_ms = 30000;
    bool ok = o->bus && o->db && o->handler && *c->durable && strpbrk(c->durable, ".*> ") == NULL && *c->filter &&
              mp_events__sql(c->sql_seen, sizeof(c->sql_seen),
                             "SELECT 1 FROM %S.processed_events WHERE consumer = $1 AND event_id = $2", c->schema) &&
              mp_events__sql(c->sql_record, sizeof(c->sql_record),
                             "INSERT INTO %S.processed_events (consumer, event_id) VALUES ($1, $2) "
                             "ON CONFLICT DO NOTHING",
                             c->schema) &&
              mp_events__sql(c->sql_purge, sizeof(c->sql_purge),
                             "DELETE FROM %S.processed_events WHERE consumer = $1 AND processed_at < now() - "
                             "interval '" KEEP_HANDLED "'",
                             c->schema);
    if (!ok) {
        free(c);
        return mp_err_set(MP_EINVAL, "consumer: needs a bus, a database, a schema, a durable name, a filter and a "
                                     "handler");
    }
    static const char *const outcomes[] = {"handled", "duplicate", "retried", "failed"};
    mp_metric_t *m = mp_metrics_counter("moonport_events_consumed_total",
                                        "Events delivered to a durable consumer, by outcome", "consumer,outcome");
    mp_series_t **series[] = {&c->m_handled, &c->m_duplicates, &c->m_retried, &c->m_failed};
    for (int i = 0; i < 4; i++)
        *series[i] = mp_metric_series(m, MP_LABELS(c->durable, outcomes[i]));

    c->workers = mp_xcalloc((size_t)c->o.workers, sizeof(*c->workers));
    for (int i = 0; i < c->o.workers; i++) {
        c->workers[i] = (worker_t){.c = c, .index = i};
        if (pthread_create(&c->workers[i].thread, NULL, worker_main, &c->workers[i]) != 0) {
            mp_consumer_stop(c);
            return mp_err_set(MP_EINTERNAL, "consumer %s: cannot start its threads", o->durable);
        }
        c->started++;
    }
    *out = c;
    return MP_OK;
}

void mp_consumer_stop(mp_consumer_t *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stopping, 1);
    for (int i = 0; i < c->started; i++)
        pthread_join(c->workers[i].thread, NULL);
    free(c->workers);
    free(c);
}

void mp_consumer_stats(const mp_consumer_t *c, mp_consumer_stats_t *out)
{
    mp_consumer_t *m = (mp_consumer_t *)c;
    out->handled = atomic_load(&m->handled);
    out->duplicates = atomic_load(&m->duplicates);
    out->retried = atomic_load(&m->retried);
    out->failed = atomic_load(&m->failed);
}
