/*
 * lease.c: a loop thread's rate-limit leases (see lease.h): a chained hash
 * table of leases keyed by policy and client key, and the arithmetic of
 * spending, sizing and granting them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/reqctx.h"
#include "hash.h"
#include "lease.h"

struct gw_lease_table {
    gw_lease_t **buckets;
    size_t mask;
    size_t n, max;
    int64_t ttl_ms;
    int64_t no_sweep_until; /* a sweep freed nothing: do not sweep again before this */
    uint64_t seed;
};

long gw_lease_max(const gw_rl_policy_t *p, int64_t ttl_ms)
{
    double by_rate = floor(p->rate * (double)ttl_ms / 1000.0), by_burst = floor(p->burst / 10.0);
    double m = by_rate < by_burst ? by_rate : by_burst;
    return m < 1 ? 1 : m > 1e9 ? 1000000000L : (long)m;
}

gw_lease_table_t *gw_lease_table_create(size_t max_keys, int64_t ttl_ms)
{
    gw_lease_table_t *t = mp_xcalloc(1, sizeof(*t));
    t->max = max_keys ? max_keys : 1;
    t->ttl_ms = ttl_ms;
    size_t nb = 16;
    while (nb < t->max)
        nb <<= 1;
    t->buckets = mp_xcalloc(nb, sizeof(*t->buckets));
    t->mask = nb - 1;
    t->seed = mp_rand64();
    return t;
}

void gw_lease_table_destroy(gw_lease_table_t *t, void (*drop)(gw_lease_waiter_t *w))
{
    if (t == NULL)
        return;
    for (size_t b = 0; b <= t->mask; b++) {
        for (gw_lease_t *l = t->buckets[b], *next; l; l = next) {
            next = l->chain;
            for (gw_lease_waiter_t *w; (w = gw_lease_pop(l)) != NULL;)
                if (drop)
                    drop(w);
            free(l);
        }
    }
    free(t->buckets);
    free(t);
}

static uint64_t hash_of(const gw_lease_table_t *t, const gw_rl_policy_t *p, const char *key)
{
    return gw_hash64(t->seed ^ (uint64_t)(uintptr_t)p, key, strlen(key));
}

static bool idle(const gw_lease_t *l, int64_t now_ms)
{
    return !l->fetching && !l->serving && l->waiters.next == &l->waiters && now_ms >= l->expires_ms &&
           now_ms >= l->refused_until;
}

/* Forgets every lease nobody uses (expired, not fetching, nobody waiting). */
static void sweep(gw_lease_table_t *t, int64_t now_ms)
{
    size_t before = t->n;
    for (size_t b = 0; b <= t->mask; b++) {
        for (gw_lease_t **pp = &t->buckets[b]; *pp;) {
            gw_lease_t *l = *pp;
            if (idle(l, now_ms)) {
                *pp = l->chain;
                free(l);
                t->n--;
            } else {
                pp = &l->chain;
            }
        }
    }
    if (t->n == before) /* every lease is in use: sweeping again at once would find the same */
        t->no_sweep_until = now_ms + (t->ttl_ms > 0 ? t->ttl_ms : 1);
}

gw_lease_t *gw_lease_get(gw_lease_table_t *t, const gw_rl_policy_t *p, const char *key, int64_t now_ms)
{
    uint64_t h = hash_of(t, p, key);
    for (gw_lease_t *l = t->buckets[h & t->mask]; l; l = l->chain)
        if (l->hash == h && l->p == p && strcmp(l->key, key) == 0)
            return l;
    if (t->n >= t->max && now_ms >= t->no_sweep_until)
        sweep(t, now_ms);
    if (t->n >= t->max)
        return NULL;
    size_t len = strlen(key);
    gw_lease_t *l = mp_xcalloc(1, sizeof(*l) + len + 1);
    l->p = p;
    l->ttl_ms = t->ttl_ms;
    l->want = 1;
    l->waiters.next = l->waiters.prev = &l->waiters;
    l->hash = h;
    memcpy(l->key, key, len + 1);
    l->chain = t->buckets[h & t->mask];
    t->buckets[h & t->mask] = l;
    t->n++;
    return l;
}

bool gw_lease_take(gw_lease_t *l, int64_t now_ms, gw_rl_result_t *res)
{
    const gw_rl_policy_t *p = l->p;
    if (l->tokens > 0 && now_ms < l->expires_ms) {
        l->tokens--;
        /* the mirror holds at least the leased tokens, so it allows too; the lease decides regardless */
        gw_bucket_take(res, &l->mirror, p->rate, p->burst, now_ms);
        res->allowed = true;
        res->retry_after_s = 0;
        return true;
    }
    if (now_ms < l->refused_until) {
        /* Redis had no whole token and said when the next one comes: nothing can change that but time */
        double tokens = l->mirror.tokens;
        if (now_ms > l->mirror.ts_ms)
            tokens = fmin(p->burst, tokens + (double)(now_ms - l->mirror.ts_ms) * p->rate / 1000.0);
        gw_rl_result_set(res, false, p->burst, 0, l->refused_until - now_ms,
                         (int64_t)ceil((p->burst - tokens) * 1000.0 / p->rate));
        return true;
    }
    return false;
}

long gw_lease_next(gw_lease_t *l, int64_t now_ms)
{
    long max = l->p->lease_max > 1 ? l->p->lease_max : 1;
    if (l->size > 0) {
        if (l->tokens <= 0 && now_ms < l->expires_ms) /* used up before it expired: demand outgrew it */
            l->want *= 2;
        else if (now_ms >= l->expires_ms) /* expired: the next one as large as what was used */
            l->want = l->size - (l->tokens > 0 ? l->tokens : 0);
    }
    if (l->want > max)
        l->want = max;
    if (l->want < 1)
        l->want = 1;
    l->tokens = 0;
    l->size = 0;
    return l->want;
}

void gw_lease_grant(gw_lease_t *l, long granted, double remaining, int64_t retry_ms, int64_t at_ms)
{
    const gw_rl_policy_t *p = l->p;
    double mirror;
    l->tokens = granted > 0 ? granted : 0;
    l->size = l->tokens;
    l->expires_ms = at_ms + l->ttl_ms;
    if (granted > 0) {
        mirror = (remaining > 0 ? remaining : 0) + (double)l->tokens;
        l->refused_until = 0;
    } else {
        l->want = 1; /* at the limit: ask for one at a time, leaving what refills to every taker alike */
        l->refused_until = at_ms + retry_ms;
        mirror = 1.0 - (double)retry_ms * p->rate / 1000.0; /* the fraction of a token Redis holds */
    }
    l->mirror.tokens = mirror < 0 ? 0 : mirror < p->burst ? mirror : p->burst;
    l->mirror.ts_ms = at_ms > 0 ? at_ms : 1;
}

void gw_lease_wait(gw_lease_t *l, gw_lease_waiter_t *w)
{
    w->next = &l->waiters;
    w->prev = l->waiters.prev;
    l->waiters.prev->next = w;
    l->waiters.prev = w;
}

void gw_lease_unwait(gw_lease_waiter_t *w)
{
    if (w->next == NULL)
        return;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

gw_lease_waiter_t *gw_lease_pop(gw_lease_t *l)
{
    gw_lease_waiter_t *w = l->waiters.next;
    if (w == &l->waiters)
        return NULL;
    gw_lease_unwait(w);
    return w;
}

size_t gw_lease_count(const gw_lease_table_t *t)
{
    return t->n;
}
