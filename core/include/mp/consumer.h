/*
 * mp/consumer.h: a durable JetStream pull consumer on the EVENTS stream
 * that hands each event to a handler exactly once in effect.
 *
 * JetStream delivers at least once: after a crash, a NATS restart, an ack
 * lost on the way or an ack wait that ran out, the same event comes again.
 * The consumer makes that harmless with a table of handled event ids written
 * in the same transaction as the handler's own changes:
 *
 *     static mp_status_t on_event(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev)
 *     {
 *         mp_db_conn_t *tx;
 *         mp_status_t st = mp_consumer_begin(&tx, m);   // records ev->id as handled, in tx
 *         if (st == MP_ECONFLICT)
 *             return MP_OK;                            // handled before: nothing to do
 *         if (st != MP_OK)
 *             return st;
 *         ... UPDATE ... with tx; mp_outbox_add(tx, ...) ...
 *         return MP_OK;                                // the consumer commits, then acks
 *     }
 *
 * Work that must not sit inside a transaction (a call to a payment
 * provider) goes before mp_consumer_begin(). A handler that returns MP_OK
 * without beginning acks the event without recording it (events it ignores).
 *
 * Outcomes: MP_OK commits and acks. A transient status (MP_EUNAVAIL,
 * MP_ETIMEDOUT, MP_EINTERNAL, ...) rolls back and naks with a delay growing
 * with the delivery count (exponential with jitter, capped), so the event
 * comes back later: nothing is given up while a dependency is down. A
 * permanent status (MP_EINVAL, MP_EVALIDATION, MP_ENOTFOUND, a malformed
 * event) rolls back, logs the event id and terminates it (no redelivery).
 *
 * The table (each consuming service's migration creates it; docs/events.md):
 *
 *     CREATE TABLE <schema>.processed_events (
 *         consumer     text NOT NULL,
 *         event_id     text NOT NULL,
 *         processed_at timestamptz NOT NULL DEFAULT now(),
 *         PRIMARY KEY (consumer, event_id));
 *
 * `consumer` (the durable name) is part of the key so that two consumers of
 * one service may both see the same event. Rows older than the stream's
 * max age (7 days) can never match a delivery again and are deleted.
 *
 * Threads: each worker thread fetches batches with its own pull subscription
 * on the shared durable and runs the handler on that thread; handlers may
 * block. The consumer survives NATS restarts: fetches time out while the
 * server is away, and a subscription that keeps failing is made again (the
 * durable and the stream are re-created when missing).
 */
#ifndef MP_CONSUMER_H
#define MP_CONSUMER_H

#include "mp/bus.h"
#include "mp/db.h"
#include "mp/events.h"
#include "mp/status.h"

typedef struct mp_consumer mp_consumer_t;
typedef struct mp_consumer_msg mp_consumer_msg_t; /* one delivery being handled */

/** Handles one event. `ev` and `m` are valid for the call only. Runs on a consumer worker thread. */
typedef mp_status_t (*mp_consumer_fn)(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev);

typedef struct mp_consumer_opts {
    mp_bus_t *bus;       /* borrowed; outlives the consumer */
    mp_db_t *db;         /* borrowed; holds <schema>.processed_events */
    const char *schema;  /* copied */
    const char *durable; /* the durable consumer's name ("payment"); copied */
    const char *filter;  /* the subject it takes ("events.order.*"); wildcards allowed; copied */
    mp_consumer_fn handler;
    void *arg;
    /* optional: runs on the worker thread after each commit, with `arg` (wake an outbox publisher so the events
     * the handler wrote go out at once, or a delivery thread) */
    void (*after_commit)(void *arg);
    const char *log_service; /* the `service` field of the consumer's log lines (a static string); NULL: schema */
    int workers;             /* fetching threads; default 1 */
    int batch;               /* events per fetch; default 10 */
    int ack_wait_ms;         /* redelivery when a handler neither acks nor naks in time; default 30000 */
    int backoff_base_ms;     /* first nak delay; default 250 */
    int backoff_max_ms;      /* nak delay cap; default 30000 */
} mp_consumer_opts_t;

/** Starts the worker threads. They create the stream and the durable when they can, and keep retrying while NATS is
 *  away, so this does not need NATS to be up. Caller owns `*out`; free with mp_consumer_stop(). Errors: MP_EINVAL
 *  (bad options). */
mp_status_t mp_consumer_start(mp_consumer_t **out, const mp_consumer_opts_t *opts);

/** Stops fetching, lets the handlers running finish, joins the threads and frees. Unacked events are redelivered
 *  to the next consumer with this durable name. Accepts NULL. */
void mp_consumer_stop(mp_consumer_t *c);

/**
 * Opens the transaction in which the handler records the event's effects, and records the event as handled in it.
 * `*tx` stays owned by the consumer: it commits when the handler returns MP_OK and rolls back otherwise; the handler
 * must not commit, roll back or release it. Errors: MP_ECONFLICT (this consumer handled the event already: return
 * MP_OK), MP_EUNAVAIL / MP_ETIMEDOUT (no database connection), MP_EINVAL (called twice).
 */
mp_status_t mp_consumer_begin(mp_db_conn_t **tx, mp_consumer_msg_t *m);

/** Tells JetStream the handler is still working on the event, so its ack wait starts again (long provider calls). */
void mp_consumer_progress(mp_consumer_msg_t *m);

/** Events handled (committed and acked), skipped as duplicates, retried and given up, so far; for tests. */
typedef struct mp_consumer_stats {
    uint64_t handled, duplicates, retried, failed;
} mp_consumer_stats_t;
void mp_consumer_stats(const mp_consumer_t *c, mp_consumer_stats_t *out);

#endif
