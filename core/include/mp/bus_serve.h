/*
 * mp/bus_serve.h: answering NATS requests with a pool of worker threads.
 *
 * A server owns N worker threads and one bounded queue. Each subject added
 * is subscribed (normally in the service's queue group, so replicas share
 * the load); nats.c's delivery thread only enqueues, and a worker runs the
 * handler, so a slow database call never stalls delivery. When the queue is
 * full the request is refused at once with 503 (load shedding). A request
 * whose Deadline has passed is dropped before its handler runs: its caller
 * has already given up.
 *
 * Thread-safe. Handlers run on worker threads and may block (libpq,
 * hiredis, mp_bus_request()). With `nats_loop` and `fibers` set, each
 * worker owns a NATS connection and runs up to `fibers` handlers at once on
 * fibers: one waiting on Postgres (mp_db_*, which yields) lets the next run,
 * so a handful of threads keep many queries in flight without a thread
 * hand-over per query.
 */
#ifndef MP_BUS_SERVE_H
#define MP_BUS_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include "mp/bus.h"

typedef struct mp_bus_server mp_bus_server_t;

/** Handles one request on worker thread `worker` (0..n-1). The message is borrowed: the server frees it after the
 *  handler returns. The handler answers with mp_bus_reply() (or not at all for fire-and-forget subjects). */
typedef void (*mp_bus_handler_cb)(void *arg, mp_msg_t *req, int worker);

typedef struct mp_bus_server_opts {
    int workers;                                    /* threads; default 4 */
    int fibers;                                     /* with nats_loop: requests one worker serves at once on fibers
                                                       (mp/fiber.h); 0, or without nats_loop: one at a time, the
                                                       handler blocking its thread */
    size_t max_queue;                               /* queued requests before shedding with 503; default 4096 */
    bool nats_loop;                                 /* with fibers: each worker owns a NATS connection and serves
                                                       on its loop (no thread hand-over); see bus_serve_loop.c */
    const char *name;                               /* for logs and thread names */
    void (*on_worker_start)(void *arg, int worker); /* optional: runs on each worker thread before it serves */
    void *on_worker_start_arg;
} mp_bus_server_opts_t;

/** Creates a server and starts its workers. Caller owns `*out`; free with mp_bus_server_destroy(). */
mp_status_t mp_bus_server_create(mp_bus_server_t **out, mp_bus_t *bus, const mp_bus_server_opts_t *opts);

/** Subscribes `subject` (in `queue_group`, or alone when NULL) and routes its requests to `handler`. Any thread,
 *  before or while serving. Errors from nats.c are mapped (MP_EINVAL for a bad subject). */
mp_status_t mp_bus_server_add(mp_bus_server_t *srv, const char *subject, const char *queue_group,
                              mp_bus_handler_cb handler, void *arg);

/** Starts serving the routes added so far: needed with `nats_loop`, whose workers subscribe every route on their own
 *  connections when they start (and routes cannot be added after); a no-op otherwise. Waits until subscribed. */
mp_status_t mp_bus_server_start(mp_bus_server_t *srv);

/** Stops taking new requests (unsubscribes), lets the workers finish everything queued, and joins them. Idempotent.
 *  Waits at most `timeout_ms` for the queue; what is left after that is answered 503. */
void mp_bus_server_drain(mp_bus_server_t *srv, int timeout_ms);

/** Drains (with a 5 s limit) and frees. Accepts NULL. */
void mp_bus_server_destroy(mp_bus_server_t *srv);

/** Requests waiting plus running. Any thread. */
size_t mp_bus_server_inflight(mp_bus_server_t *srv);
/** Requests dropped because their deadline had passed, and refused because the queue was full. */
uint64_t mp_bus_server_expired(mp_bus_server_t *srv);
uint64_t mp_bus_server_shed(mp_bus_server_t *srv);

/** Answers `req` with `status` (sent as the Status header), `body` and extra headers. The request's Request-Id is
 *  echoed. No-op when the request has no reply subject. Any thread. */
mp_status_t mp_bus_reply(mp_bus_t *bus, mp_msg_t *req, int status, const void *body, size_t len,
                         const mp_bus_hdr_t *extra, size_t nextra);

/** Answers `req` with `body` and no headers at all (for tooling that knows no Status header: $SRV discovery), on
 *  the connection it came by. No-op without a reply subject. Any thread. */
mp_status_t mp_bus_reply_plain(mp_bus_t *bus, mp_msg_t *req, const void *body, size_t len);

/** True when `req` carries a Deadline that has already passed (with `now_ms`, 0 for now). */
bool mp_bus_expired(mp_msg_t *req, int64_t now_ms);

#endif
