/*
 * mp/events.h: moonport's domain events on JetStream (CONVENTIONS.md): the
 * stream EVENTS on subjects `events.>`, and the body every event has,
 * {"id", "type", "occurred_at", "data"}.
 *
 * Producers never publish events directly: they write them to their outbox
 * (mp/outbox.h) in the transaction that makes the change. Consumers read
 * them with mp/consumer.h. This header holds what both sides share: the
 * stream's definition (created or updated idempotently by whichever side
 * starts first) and the parsed form of an event.
 *
 * Any thread; the calls that talk to NATS block (worker threads only).
 */
#ifndef MP_EVENTS_H
#define MP_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <nats/nats.h>
#include "mp/bus.h"
#include "mp/status.h"

#define MP_EVENTS_STREAM "EVENTS"
#define MP_EVENTS_SUBJECTS "events.>"

/** One event as a consumer sees it. Every pointer is borrowed from the message being handled. */
typedef struct mp_event {
    const char *id;          /* unique; the de-duplication key */
    const char *type;        /* "order.created" */
    const char *subject;     /* "events.order.created" */
    const char *occurred_at; /* RFC 3339 */
    json_t *data;            /* the event's data (an object) */
    uint64_t delivery;       /* 1 on the first delivery, 2 on the first redelivery ... */
} mp_event_t;

/** A JetStream context on the bus's connection with a `wait_ms` API timeout. Caller owns `*out`; free with
 *  jsCtx_Destroy(). Errors: those of nats.c, mapped. */
mp_status_t mp_events_js(jsCtx **out, mp_bus_t *bus, int wait_ms);

/** Creates the EVENTS stream (file storage, limits retention, max age 7 days, duplicate window 2 minutes, `replicas`
 *  copies: 3 on a 3-node cluster, so losing a node loses no event; 0 or 1 on a single server), or updates it to that
 *  definition when it exists with another. Idempotent; safe from several processes at once. Errors: MP_EUNAVAIL (NATS
 *  or JetStream unreachable), MP_EINTERNAL (the server refused the definition, e.g. more replicas than nodes). */
mp_status_t mp_events_ensure_stream(jsCtx *js, int replicas);

/** Parses an event body into `ev` (fields borrowed from `*body`, a new reference the caller releases with
 *  json_decref()). Errors: MP_EINVAL when it is not JSON or lacks a string id/type or an object data. */
mp_status_t mp_event_parse(mp_event_t *ev, json_t **body, const char *text, size_t len);

/**
 * Writes `fmt` with every "%S" replaced by the quoted schema ("order" -> "\"order\"") into `out`. Schema names are
 * code, never input, but "order" is a reserved word, so every outbox and consumer statement quotes it. Returns false
 * (and writes nothing useful) when the schema is not [a-z_][a-z0-9_]* or `out` is too small. Exported for
 * outbox.c and consumer.c.
 */
bool mp_events__sql(char *out, size_t size, const char *fmt, const char *schema);

/** A run of failures of one background loop (a publisher, a consumer worker), logged at its start, every 30 s while
 *  it lasts, and when it ends, so an outage is visible without flooding the log. Zero-initialise; one thread. */
typedef struct mp_events__streak {
    int64_t since_ms, last_log_ms;
} mp_events__streak_t;
/** Records a failure: `what` happened to the loop named by `key`=`value`; `error` is the detail. */
void mp_events__failed(mp_events__streak_t *s, const char *what, const char *key, const char *value, const char *error);
/** Records a success: logs `what` with how long the failures lasted when there were any. */
void mp_events__ok(mp_events__streak_t *s, const char *what, const char *key, const char *value);

#endif
