/*
 * mp/bus_loop.h: NATS request-reply for an h2o loop thread, without ever
 * blocking it and without any thread hand-off.
 *
 * Each loop thread owns one mp_bus_loop_t: its own NATS connection spoken
 * on the loop itself (mp/natsio.h), a private reply inbox
 * (`_INBOX.<random>.*`), a table of calls in flight and one libuv timer
 * for their deadlines. A request is a publish with a reply subject
 * `<inbox>.<seq>`; replies are read and parsed on the loop and matched by
 * sequence number, so the call table, the callbacks and everything they
 * touch (h2o_req_t, lua_State) stay on the loop thread, lock-free.
 *
 * Callback contract (libuv's): if mp_bus_call_async() returns anything but
 * MP_OK the callback never runs; otherwise it runs exactly once, on the loop
 * thread, with MP_OK and the reply, MP_ETIMEDOUT, MP_EUNAVAIL (no responder,
 * or the connection dropped) or MP_ECANCELED (mp_bus_cancel() or destroy).
 * It never runs from inside mp_bus_call_async() itself.
 */
#ifndef MP_BUS_LOOP_H
#define MP_BUS_LOOP_H

#include <stdint.h>
#include <uv.h>
#include <h2o.h>
#include "mp/bus.h"

typedef struct mp_bus_loop mp_bus_loop_t;

/** Receives the outcome. On MP_OK `reply` is the reply, borrowed: valid during the callback only (copy what you
 *  keep); otherwise it is NULL. */
typedef void (*mp_bus_reply_cb)(void *arg, mp_status_t st, const mp_reply_t *reply);

/** Creates the loop's connection (with the bus's URL and credentials), inbox and timer, and starts connecting: calls
 *  made before the connection is up fail with MP_EUNAVAIL. Call on the loop thread. Caller owns `*out`; destroy with
 *  mp_bus_loop_destroy() on the same thread. */
mp_status_t mp_bus_loop_create(mp_bus_loop_t **out, mp_bus_t *bus, uv_loop_t *loop);

/** Cancels every call in flight (their callbacks run with MP_ECANCELED), closes the connection and frees once the
 *  loop has closed its handles (run the loop once more). Loop thread. */
void mp_bus_loop_destroy(mp_bus_loop_t *bl);

/** True while the loop's connection is up. */
bool mp_bus_loop_ready(const mp_bus_loop_t *bl);

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
