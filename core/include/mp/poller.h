/*
 * mp/poller.h: a background thread that does rounds of work: at once when
 * woken (mp_poller_kick, e.g. right after a commit that made work), and at
 * least every `poll_ms` otherwise (work a wake-up missed, retries that came
 * due). The outbox publisher and the notification delivery thread are
 * pollers.
 *
 * A round returns how much it did; a positive number runs the next round at
 * once (there may be more), zero or less waits for a kick or the poll
 * interval. Stopping waits for the round in progress. Thread-safe; the
 * round runs on the poller's thread only.
 */
#ifndef MP_POLLER_H
#define MP_POLLER_H

#include "mp/status.h"

typedef struct mp_poller mp_poller_t;

/** One round of work on the poller's thread. */
typedef int (*mp_poller_round_fn)(void *arg);

/** Starts the thread. `service` names it in log lines (a static string, or NULL). Caller owns `*out`; free with
 *  mp_poller_stop(). Errors: MP_EINTERNAL (no thread). */
mp_status_t mp_poller_start(mp_poller_t **out, const char *service, int poll_ms, mp_poller_round_fn round, void *arg);
/** Runs a round now (or right after the current one). Any thread; accepts NULL. */
void mp_poller_kick(mp_poller_t *p);
/** Stops after the round in progress, joins and frees. Accepts NULL. */
void mp_poller_stop(mp_poller_t *p);

#endif
