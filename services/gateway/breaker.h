/*
 * breaker.h: one circuit breaker per service (the subject's first token:
 * "auth" for auth.v1.login), shared by every loop thread.
 *
 * Closed: calls go through; outcomes are counted in a rolling window of
 * one-second buckets. When, within the window, at least `min_requests`
 * calls finished and the share of failures (timeouts, no responder, 5xx)
 * reaches `failure_ratio`, the circuit opens. Open: calls are refused at
 * once (503 with Retry-After = the rest of the cool-down). After
 * `cooldown_ms` the circuit is half-open: up to `probes` calls go through
 * as probes; when that many have succeeded it closes, and the first probe
 * that fails opens it again for another cool-down. Calls beyond the probes
 * are refused as if open.
 *
 * The common case takes no lock: while the circuit is closed, admitting a
 * call is one atomic load, and recording a success one compare-and-swap on
 * the current bucket's count (its epoch and calls share one 64-bit word, so
 * a count can never land in a bucket that moved on to a new second). A
 * small mutex guards everything else: failures, a bucket moving to a new
 * second, probes and state changes. Transitions are reported to the caller
 * (which logs and exports them), not done silently. Thread-safe; times are
 * monotonic milliseconds passed in, so tests can drive the clock.
 */
#ifndef MP_GW_BREAKER_H
#define MP_GW_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define GW_BREAKER_MAX_BUCKETS 120

typedef enum { GW_CIRCUIT_CLOSED = 0, GW_CIRCUIT_OPEN = 1, GW_CIRCUIT_HALF_OPEN = 2 } gw_circuit_t;

typedef struct gw_breaker_opts {
    int64_t window_ms;    /* rolling window; default 10000 */
    int64_t bucket_ms;    /* bucket width; default 1000 */
    double failure_ratio; /* open at this share of failures; default 0.5 */
    int min_requests;     /* ... among at least this many calls in the window; default 20 */
    int64_t cooldown_ms;  /* open this long before probing; default 5000 */
    int probes;           /* successful probes that close it; default 3 */
} gw_breaker_opts_t;

typedef struct gw_bucket_count {
    _Atomic uint64_t epoch_calls; /* which bucket_ms slot of time this counts (high 32 bits) and its calls (low 32) */
    uint32_t failures;            /* under the mutex */
} gw_bucket_count_t;

typedef struct gw_breaker {
    pthread_mutex_t mu;
    gw_breaker_opts_t o;
    gw_circuit_t state;
    atomic_bool closed; /* state == GW_CIRCUIT_CLOSED, for the lock-free path */
    int64_t opened_at;
    int probes_out, probes_ok;
    size_t nbuckets;
    gw_bucket_count_t buckets[GW_BREAKER_MAX_BUCKETS];
} gw_breaker_t;

/** A state change to report (`changed` false when none). */
typedef struct gw_breaker_event {
    bool changed;
    gw_circuit_t from, to;
    double ratio; /* failure share that opened it */
    uint32_t calls;
} gw_breaker_event_t;

/** Initialises `b` with `o` (zero fields take the defaults). Storage is the caller's; dispose with
 *  gw_breaker_dispose(). */
void gw_breaker_init(gw_breaker_t *b, const gw_breaker_opts_t *o);
void gw_breaker_dispose(gw_breaker_t *b);

/** Asks to make a call at `now_ms`. True: go ahead (`*probe` says whether it is a half-open probe, to be passed to
 *  gw_breaker_record()). False: refused; `*retry_after_s` is when to try again. */
bool gw_breaker_admit(gw_breaker_t *b, int64_t now_ms, bool *probe, int *retry_after_s, gw_breaker_event_t *ev);

/** Records how an admitted call ended. `failed`: timeout, no responder or a 5xx. */
void gw_breaker_record(gw_breaker_t *b, int64_t now_ms, bool probe, bool failed, gw_breaker_event_t *ev);

/** Returns an admitted probe that never ran to an end (the client went away), so another may probe. */
void gw_breaker_release(gw_breaker_t *b, bool probe);

/** The current state (for metrics and tests). */
gw_circuit_t gw_breaker_state(gw_breaker_t *b);

#endif
