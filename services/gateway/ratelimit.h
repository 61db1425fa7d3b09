/*
 * ratelimit.h: token buckets for the gateway's rate limits: the bucket
 * arithmetic, the per-group policies, and the in-process table used when
 * Redis (limiter.h, the shared store) is unavailable.
 *
 * A bucket holds up to `burst` tokens and refills at `rate` tokens a
 * second; a request takes one token or is refused. The same arithmetic runs
 * in Redis as a Lua script (limiter.c), so both backends answer alike:
 * RateLimit-Limit is the burst, RateLimit-Remaining the whole tokens left,
 * RateLimit-Reset the seconds until the bucket is full again, Retry-After
 * (refusals) the seconds until one token is back.
 *
 * The local table is process-wide, split into stripes with one mutex each so
 * loop threads rarely meet; keys are 64-bit hashes of "group:key". A stripe
 * that outgrows its share of `max_keys` forgets its full buckets (a full
 * bucket is the same as none). Thread-safe.
 */
#ifndef MP_GW_RATELIMIT_H
#define MP_GW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mp/metrics.h"

typedef enum { GW_RL_KEY_USER, GW_RL_KEY_IP } gw_rl_key_t;

/** One route group's limit (gateway.rate_limits.<group>). */
typedef struct gw_rl_policy {
    const char *group; /* borrowed: the configuration's or the routes' text */
    double rate;       /* tokens per second */
    double burst;      /* bucket size */
    gw_rl_key_t key;
    bool enabled;
    long lease_max;                   /* largest batch a loop thread takes from Redis (lease.h); <= 1: none */
    char rate_arg[32], burst_arg[32]; /* as sent to the Redis script */
    mp_series_t *m_allowed, *m_limited;
} gw_rl_policy_t;

typedef struct gw_rl_result {
    bool allowed;
    long limit, remaining, reset_s, retry_after_s;
} gw_rl_result_t;

typedef struct gw_bucket {
    double tokens;
    int64_t ts_ms;
} gw_bucket_t;

/** Parses "10/s", "100/m", "1000/h" (also "/sec", "/min", "/hour") into tokens per second. */
bool gw_rl_parse_rate(double *per_s, const char *text);

/** Takes one token from `b` at `now_ms` (a zeroed bucket starts full) and describes the outcome in `out`. */
void gw_bucket_take(gw_rl_result_t *out, gw_bucket_t *b, double rate, double burst, int64_t now_ms);

/** Fills `out` from a decision in milliseconds (shared by the C and the Redis arithmetic). */
void gw_rl_result_set(gw_rl_result_t *out, bool allowed, double burst, double remaining, int64_t retry_ms,
                      int64_t reset_ms);

typedef struct gw_rl_local gw_rl_local_t;

/** Creates the local table for about `max_keys` clients. Free with gw_rl_local_destroy(). */
gw_rl_local_t *gw_rl_local_create(size_t max_keys);
/** Frees it. Accepts NULL. */
void gw_rl_local_destroy(gw_rl_local_t *t);
/** One decision for `key` under policy `p`, at monotonic time `now_ms`. Any thread. */
void gw_rl_local_take(gw_rl_result_t *out, gw_rl_local_t *t, const gw_rl_policy_t *p, const char *key, int64_t now_ms);
/** Number of buckets held (for tests and metrics). */
size_t gw_rl_local_size(gw_rl_local_t *t);

#endif
