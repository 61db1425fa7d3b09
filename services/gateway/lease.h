/*
 * lease.h: rate-limit tokens a loop thread takes from the shared Redis
 * bucket in batches (leases), so that a busy client costs one Redis round
 * trip per batch instead of one per request (limiter.h does the Redis side).
 *
 * A lease is a number of tokens already taken out of the shared bucket, so
 * leasing never lets more requests through than the bucket gives out; what
 * changes is *when* a token is spent: up to the lease's lifetime (`ttl_ms`,
 * 100 ms by default) after Redis handed it out. Tokens still unspent when a
 * lease expires are dropped (never spent late). That bounds the difference
 * from one exact shared bucket:
 *
 *  - too many: over any stretch of time, at most the tokens held in leases
 *    when it starts, i.e. at most one lease per loop thread and replica of
 *    size at most gw_lease_max() (<= rate x ttl and <= burst / 10);
 *  - too few: a client whose requests go to several threads or replicas may
 *    meet a 429 on one while another still holds leased tokens for it, for
 *    at most the rest of that lease's lifetime.
 *
 * Sizes adapt to the demand each thread sees for each key: the first lease
 * is one token (the exact behaviour), a lease used up before it expired
 * doubles the next, and one that expired with tokens left sizes the next to
 * what was used. A policy whose gw_lease_max() is 1 (tight limits: 2/s with
 * a burst of 6, 10/m) never leases: every decision is one exact Redis call.
 *
 * The RateLimit-* headers of a decision made from a lease come from a
 * mirror of the shared bucket as Redis last reported it (its tokens plus
 * this lease's, refilled at the rate since): what the client would see with
 * one exact bucket, minus whatever other threads and replicas took since.
 *
 * A refusal is kept too, exactly: when Redis had no whole token it says
 * how long until the next one, and until then (counted from when it was
 * asked) every request of that key is refused without asking again, as
 * Redis would refuse it. A client hammering a limit it has reached costs
 * no Redis calls.
 *
 * A lease also queues the requests waiting for its next batch, so that one
 * Redis call at a time serves every request of a key on a thread.
 *
 * Thread affinity: a table belongs to one loop thread; no locks.
 */
#ifndef MP_GW_LEASE_H
#define MP_GW_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ratelimit.h"

typedef struct gw_lease_table gw_lease_table_t;

/** A request waiting for a lease's next batch (embedded in the caller's own record). */
typedef struct gw_lease_waiter {
    struct gw_lease_waiter *next, *prev;
} gw_lease_waiter_t;

/** The tokens one thread holds for one key of one policy. The fields are the table's; read them with the functions
 *  below. `fetching` and `serving` are the caller's: true while it waits for Redis to answer a gw_lease_next()
 *  request, and while it hands out decisions from the lease (callbacks may run then); the table never forgets a
 *  lease with either set, or with waiters. */
typedef struct gw_lease {
    const gw_rl_policy_t *p;
    long tokens;           /* leased, unspent */
    long size;             /* tokens granted by the last lease */
    long want;             /* what the next lease asks for */
    int64_t expires_ms;    /* the lease's tokens may be spent until then (monotonic ms) */
    int64_t refused_until; /* Redis had no token and none comes before this: refuse until then */
    int64_t ttl_ms;        /* the table's lease lifetime */
    gw_bucket_t mirror;    /* the shared bucket as last reported, for the headers */
    bool fetching, serving;
    gw_lease_waiter_t waiters; /* anchor of a ring; empty when next == &waiters */
    /* the table's */
    struct gw_lease *chain;
    uint64_t hash;
    char key[]; /* the client key ("u:<id>", "i:<address>") */
} gw_lease_t;

/** The largest lease for policy `p` with leases living `ttl_ms`: min(rate x ttl, burst / 10), rounded down, at least
 *  1. 1 means the policy never leases. */
long gw_lease_max(const gw_rl_policy_t *p, int64_t ttl_ms);

/** Creates a table for at most `max_keys` keys, whose leases live `ttl_ms`. Free with gw_lease_table_destroy(). */
gw_lease_table_t *gw_lease_table_create(size_t max_keys, int64_t ttl_ms);
/** Frees the table; `drop` (may be NULL) is given every waiter still queued, for its owner to free. Accepts NULL. */
void gw_lease_table_destroy(gw_lease_table_t *t, void (*drop)(gw_lease_waiter_t *w));

/** The lease of `key` under `p`, made (empty) when there is none. NULL when the table is full of leases in use (the
 *  caller then decides without one). `now_ms`: monotonic. */
gw_lease_t *gw_lease_get(gw_lease_table_t *t, const gw_rl_policy_t *p, const char *key, int64_t now_ms);

/** Decides at `now_ms` from the lease: true with the decision in `*res` when it holds a live token (spent: allowed) or
 *  a refusal still in force (refused, Retry-After until the next token); headers from the mirror. False when Redis
 *  must be asked. */
bool gw_lease_take(gw_lease_t *l, int64_t now_ms, gw_rl_result_t *res);

/** How many tokens to ask Redis for now (the lease is empty or expired): adapts `want` from how the last lease went,
 *  at most the policy's lease_max, and drops what is left of the last one. */
long gw_lease_next(gw_lease_t *l, int64_t now_ms);

/** Records Redis's answer to the call sent at `at_ms`: `granted` tokens (0: refused), the whole tokens left in the
 *  shared bucket and, for a refusal, the ms until the next token. Tokens are leased until at_ms + ttl; a refusal
 *  holds until at_ms + retry_ms. */
void gw_lease_grant(gw_lease_t *l, long granted, double remaining, int64_t retry_ms, int64_t at_ms);

/** Queues / unqueues a waiter; the first one queued is the first served. */
void gw_lease_wait(gw_lease_t *l, gw_lease_waiter_t *w);
void gw_lease_unwait(gw_lease_waiter_t *w);
/** The first waiter, unqueued, or NULL. */
gw_lease_waiter_t *gw_lease_pop(gw_lease_t *l);

/** Number of leases held (for tests). */
size_t gw_lease_count(const gw_lease_table_t *t);

#endif
