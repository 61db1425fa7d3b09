/*
 * limiter.h: rate-limit decisions shared by every gateway replica through
 * Redis, with the local table (ratelimit.h) as the fallback.
 *
 * Redis is asked with EVALSHA of a token-bucket script that reads the
 * bucket, refills it from Redis's own clock (so replicas' clocks do not
 * matter), takes tokens and writes it back atomically. The script is loaded
 * with SCRIPT LOAD on every connect; a NOSCRIPT answer (SCRIPT FLUSH, a
 * failover) is retried once with EVAL, which also caches it.
 *
 * For a policy whose limit is loose enough (gw_lease_max() > 1), a loop
 * thread takes its tokens for a client in batches (leases, lease.h): a
 * request spends one from the thread's lease, and only an empty or expired
 * lease costs a round trip, shared by every request of that client waiting
 * on the thread. Tight policies, and every policy when
 * gateway.rate_limit.lease is 0, take one token per request: one round
 * trip per decision.
 *
 * Each loop thread owns a gw_limiter_t with its own non-blocking Redis
 * connection (mp/redis_loop.h). When Redis is down, slow (no answer within
 * the timeout, 50 ms by default) or answers nonsense, the decision is made
 * locally at once and the request goes on; the gateway never stops serving
 * for Redis. Which backend decides is logged once per change and exported
 * as moonport_ratelimit_backend{backend="redis"|"local"}.
 *
 * Thread affinity: a gw_limiter_t and its callbacks belong to one loop
 * thread; the shared state is thread-safe.
 */
#ifndef MP_GW_LIMITER_H
#define MP_GW_LIMITER_H

#include <stdbool.h>
#include <uv.h>
#include "mp/status.h"
#include "ratelimit.h"

/** Process-wide settings and state, shared by every loop's limiter. */
typedef struct gw_limiter_shared {
    const char *redis_url;
    const char *redis_password; /* NULL: the URL's */
    const char *prefix;         /* Redis key prefix, "mp:rl:" */
    int timeout_ms;
    int nthreads;
    bool use_redis;        /* false: local buckets only */
    int64_t lease_ms;      /* lifetime of a batch of tokens taken from Redis (lease.h); 0: one call per decision */
    size_t local_max_keys; /* size of the local table (default 100000) */
    gw_rl_local_t *local;  /* made by gw_limiter_shared_init() */
} gw_limiter_shared_t;

typedef struct gw_limiter gw_limiter_t;
typedef struct gw_limit_wait gw_limit_wait_t;

/** Receives a decision made after a wait for Redis (or the local one that replaced it). Loop thread. */
typedef void (*gw_limit_cb)(void *arg, const gw_rl_result_t *res);

/** Registers the metrics and prepares the shared state (call once before the loops start). */
void gw_limiter_shared_init(gw_limiter_shared_t *sh);
/** Frees the shared state (after every loop's limiter is destroyed). */
void gw_limiter_shared_dispose(gw_limiter_shared_t *sh);

/** Creates a loop thread's limiter and starts its Redis connection. Loop thread. Errors: MP_EINVAL (bad Redis URL).
 *  Caller owns `*out`; destroy with gw_limiter_destroy() on the same thread. */
mp_status_t gw_limiter_create(gw_limiter_t **out, uv_loop_t *loop, gw_limiter_shared_t *sh);
/** Cancels waiting decisions (their callbacks do not run) and frees. Accepts NULL. */
void gw_limiter_destroy(gw_limiter_t *l);

/**
 * Decides one request of `key` ("u:<user id>" or "i:<address>") under `p`. Returns true when decided now (`*res`
 * filled; the callback will not run), false when waiting for Redis: then `cb(arg, res)` runs exactly once later
 * unless gw_limiter_cancel() is called with `*wait` first. Loop thread.
 */
bool gw_limiter_check(gw_rl_result_t *res, gw_limit_wait_t **wait, gw_limiter_t *l, const gw_rl_policy_t *p,
                      const char *key, gw_limit_cb cb, void *arg);

/** Gives up a waiting decision: its callback will not run. Loop thread. */
void gw_limiter_cancel(gw_limiter_t *l, gw_limit_wait_t *wait);

/** The Lua script (for tests). */
extern const char gw_limiter_script[];

#endif
