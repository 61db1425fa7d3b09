/*
 * mp/bus_loop.h: NATS request-reply for an h2o loop thread, without ever
 * blocking it.
 *
 * Each loop thread owns one mp_bus_loop_t: a private reply inbox
 * (`_INBOX.<nuid>.*`) with one subscription, a table of calls in flight and
 * one libuv timer for their deadlines. A request is a plain publish with a
 * reply subject `<inbox>.<seq>`. nats.c delivers replies on its own thread;
 * that thread only hands the message to this loop with
 * h2o_multithread_send_message(). The loop thread then finds the call by
 * its sequence number and runs its callback. So the call table, the
 * callbacks and everything they touch (h2o_req_t, lua_State) stay on the
 * loop thread, lock-free.
 *
 * Callback contract (libuv's): if mp_bus_call_async() returns anything but
 * MP_OK the callback never runs; otherwise it runs exactly once, on the loop
 * thread, with MP_OK and the reply, MP_ETIMEDOUT, MP_EUNAVAIL (no responder)
 * or MP_ECANCELED (mp_bus_cancel() or destroy). It never runs from inside
 * mp_bus_call_async() itself.
 */
#ifndef MP_BUS_LOOP_H
#define MP_BUS_LOOP_H

#include <stdint.h>
#include <uv.h>
#include <h2o.h>
#include "mp/bus.h"

typedef struct mp_bus_loop mp_bus_loop_t;

/** Receives a reply. On MP_OK the callback owns `reply` (free with mp_msg_destroy()); otherwise `reply` is NULL. */
typedef void (*mp_bus_reply_cb)(void *arg, mp_status_t st, mp_msg_t *reply);

/** Creates the loop's inbox and subscription. Call on the loop thread. `queue` is the loop's h2o multithread queue
 *  (h2o_context_t.queue). Caller owns `*out`; destroy with mp_bus_loop_destroy() on the same thread. */
mp_status_t mp_bus_loop_create(mp_bus_loop_t **out, mp_bus_t *bus, uv_loop_t *loop, h2o_multithread_queue_t *queue);

/** Unsubscribes, cancels every call in flight (their callbacks run with MP_ECANCELED) and frees. Loop thread. */
void mp_bus_loop_destroy(mp_bus_loop_t *bl);

/** Sends `call` and arranges for `cb(arg, ...)` to run once with the outcome. `*id` (may be NULL) receives a handle
 *  for mp_bus_cancel(). Errors (callback will not run): MP_ETIMEDOUT (deadline already passed), MP_EUNAVAIL
 *  (publish failed), MP_EINVAL. Loop thread. */
mp_status_t mp_bus_call_async(uint64_t *id, mp_bus_loop_t *bl, const mp_bus_call_t *call, mp_bus_reply_cb cb,
                              void *arg);

/** Cancels a call in flight: its callback runs now with MP_ECANCELED. Unknown or finished ids are ignored. Loop
 *  thread. */
void mp_bus_cancel(mp_bus_loop_t *bl, uint64_t id);

/** Number of calls in flight. Loop thread. */
size_t mp_bus_loop_pending(const mp_bus_loop_t *bl);

#endif
