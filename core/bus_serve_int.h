/*
 * bus_serve_int.h: between bus_serve.c and bus_serve_loop.c, which serves a
 * server's routes on loop threads that own their NATS connections.
 */
#ifndef MP_BUS_SERVE_INT_H
#define MP_BUS_SERVE_INT_H

#include <stdatomic.h>
#include "mp/bus_serve.h"

typedef struct mp_bus_lsrv mp_bus_lsrv_t;

typedef struct mp_bus_lroute {
    const char *subject;
    const char *queue; /* NULL: subscribed on the first worker only, so it answers once per process */
    mp_bus_handler_cb handler;
    void *arg;
} mp_bus_lroute_t;

typedef struct mp_bus_lsrv_opts {
    mp_bus_t *bus;
    const char *name;
    int workers, fibers;
    size_t max_queue;
    const mp_bus_lroute_t *routes; /* copied */
    size_t nroutes;
    void (*on_worker_start)(void *arg, int worker);
    void *on_worker_start_arg;
    _Atomic uint64_t *expired, *shed; /* the server's counters */
} mp_bus_lsrv_opts_t;

/** Starts the workers and waits (up to 5 s) until each has subscribed on its connection. */
mp_status_t mp_bus__lsrv_start(mp_bus_lsrv_t **out, const mp_bus_lsrv_opts_t *o);
/** Unsubscribes, lets what arrived finish (up to `timeout_ms`, then queued requests get 503), joins, frees. */
void mp_bus__lsrv_stop(mp_bus_lsrv_t *ls, int timeout_ms);
/** Requests queued or running. */
size_t mp_bus__lsrv_inflight(mp_bus_lsrv_t *ls);

/** Publishes a reply on the calling thread's loop connection; false when the thread has none (use nats.c). */
bool mp_bus__lsrv_reply(mp_status_t *st, const char *reply_to, const mp_bus_hdr_t *hdrs, size_t nhdrs, const void *body,
                        size_t len);

/** Sends `call` from a serving fiber over its worker's loop connection and parks the fiber until the outcome; false
 *  when not on one (use nats.c). `*reply` as mp_bus_request() gives it. */
bool mp_bus__lsrv_request(mp_status_t *st, mp_msg_t **reply, const mp_bus_call_t *call);

#endif
