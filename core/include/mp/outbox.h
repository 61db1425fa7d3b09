/*
 * mp/outbox.h: the transactional outbox: a service's events are rows in its
 * own `<schema>.outbox` table, written in the same transaction as the change
 * they describe, and published to JetStream after the commit by one
 * publisher thread per service.
 *
 *     mp_db_begin(tx);
 *     ... UPDATE "order".orders ...
 *     mp_outbox_add(tx, "order", "events.order.confirmed", "order.confirmed", data);
 *     mp_db_commit(tx);
 *     mp_outbox_kick(ob);              // publish now instead of at the next poll
 *
 * Invariants: an event exists if and only if its transaction committed; a
 * committed event is published at least once, whatever happens to NATS (the
 * row stays unpublished until JetStream acknowledged it); it is published
 * with Nats-Msg-Id = its id, so a re-publish after a crash within the
 * stream's 2-minute duplicate window is dropped by JetStream, and consumers
 * de-duplicate by id beyond it (mp/consumer.h). Rows are published in the
 * order they were written (`seq`), one publisher per schema at a time across
 * replicas (an advisory lock). Published rows are deleted after `retain_ms`.
 *
 * The table (each service's migration creates it; docs/events.md):
 *
 *     CREATE TABLE <schema>.outbox (
 *         seq          bigserial PRIMARY KEY,
 *         id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
 *         subject      text NOT NULL,
 *         type         text NOT NULL,
 *         occurred_at  timestamptz NOT NULL DEFAULT now(),
 *         data         jsonb NOT NULL,
 *         published_at timestamptz);
 *     CREATE INDEX outbox_unpublished ON <schema>.outbox (seq) WHERE published_at IS NULL;
 *
 * Thread-safe. mp_outbox_add() blocks on the caller's connection.
 */
#ifndef MP_OUTBOX_H
#define MP_OUTBOX_H

#include <stdint.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/db.h"
#include "mp/status.h"

typedef struct mp_outbox mp_outbox_t;

/**
 * Adds an event to `<schema>.outbox` inside the caller's open transaction `tx`. `subject` is where it is published
 * ("events.order.created"), `type` its type ("order.created"), `data` its data (a JSON object; borrowed reference).
 * The id and occurred_at are given by the database. Errors: those of mp_db_exec(); MP_EINVAL for a bad schema name.
 */
mp_status_t mp_outbox_add(mp_db_conn_t *tx, const char *schema, const char *subject, const char *type,
                          const json_t *data);

typedef struct mp_outbox_opts {
    mp_bus_t *bus;       /* borrowed; outlives the publisher */
    mp_db_t *db;         /* borrowed; outlives the publisher */
    const char *schema;  /* whose outbox; copied */
    int poll_ms;         /* look for rows at least this often; default 500 */
    int batch;           /* rows per round; default 100 */
    int publish_wait_ms; /* how long one publish waits for JetStream's ack; default 2000 */
    int64_t retain_ms;   /* published rows are deleted after this; default 24 h */
} mp_outbox_opts_t;

/** Starts the publisher thread. It creates the EVENTS stream when it can, and keeps retrying while NATS or
 *  Postgres is away. Caller owns `*out`; stop and free with mp_outbox_stop(). Errors: MP_EINVAL (bad options). */
mp_status_t mp_outbox_start(mp_outbox_t **out, const mp_outbox_opts_t *opts);

/** Wakes the publisher now (call right after a commit that added events). Any thread; accepts NULL. */
void mp_outbox_kick(mp_outbox_t *ob);

/** Stops the publisher after its current round, joins it and frees it. Unpublished rows stay for the next start.
 *  Accepts NULL. */
void mp_outbox_stop(mp_outbox_t *ob);

/**
 * Marks the rows of `<schema>.outbox` published at or after `since` (a timestamp text, the database's clock) as
 * unpublished, so the next publisher sends them again: a restored stream lacks what was published after its
 * snapshot (mp/backup.h); consumers drop what they had already handled by its id. `published_at` is the database's
 * time after JetStream's ack, so every row acknowledged after `since` is marked. A schema without an outbox table
 * marks nothing. `*rows` gets how many were marked. Errors: those of mp_db_exec(); MP_EINVAL for a bad schema name.
 */
mp_status_t mp_outbox_republish(long *rows, mp_db_t *db, const char *schema, const char *since);

/** Rows published by this publisher so far; for tests and metrics. */
uint64_t mp_outbox_published(const mp_outbox_t *ob);

#endif
