/*
 * ratelimit.c: token bucket arithmetic and the local fallback table (see
 * ratelimit.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/alloc.h"
#include "mp/u64map.h"
#include "ratelimit.h"

#define STRIPES 16

bool gw_rl_parse_rate(double *per_s, const char *text)
{
    static const struct {
        const char *unit;
        double secs;
    } units[] = {{"s", 1},    {"sec", 1},     {"second", 1}, {"m", 60},
                 {"min", 60}, {"minute", 60}, {"h", 3600},   {"hour", 3600}};
    char *end;
    double n = strtod(text, &end);
    if (end == text || !isfinite(n) || n <= 0 || *end != '/')
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end + 1, units[i].unit) == 0) {
            *per_s = n / units[i].secs;
            return true;
        }
    }
    return false;
}

void gw_rl_result_set(gw_rl_result_t *out, bool allowed, double burst, double remaining, int64_t retry_ms,
                      int64_t reset_ms)
{
    out->allowed = allowed;
    out->limit = (long)burst;
    out->remaining = remaining < 0 ? 0 : (long)remaining;
    out->reset_s = (long)((reset_ms + 999) / 1000);
    out->retry_after_s = allowed ? 0 : (long)((retry_ms + 999) / 1000);
    if (!allowed && out->retry_after_s < 1)
        out->retry_after_s = 1;
}

void gw_bucket_take(gw_rl_result_t *out, gw_bucket_t *b, double rate, double burst, int64_t now_ms)
{
    /* keep in step with the Lua script in limiter.c */
    if (b->ts_ms == 0) {
        b->tokens = burst;
        b->ts_ms = now_ms;
    }
    if (now_ms > b->ts_ms) {
        b->tokens = fmin(burst, b->tokens + (double)(now_ms - b->ts_ms) * rate / 1000.0);
        b->ts_ms = now_ms;
    }
    bool allowed = b->tokens >= 1.0;
    if (allowed)
        b->tokens -= 1.0;
    int64_t retry = allowed ? 0 : (int64_t)ceil((1.0 - b->tokens) * 1000.0 / rate);
    gw_rl_result_set(out, allowed, burst, floor(b->tokens), retry, (int64_t)ceil((burst - b->tokens) * 1000.0 / rate));
}

/* ---- local table ------------------------------------------------------------------------------------ */

typedef struct stripe {
    pthread_mutex_t mu;
    mp_u64map_t buckets; /* hash -> gw_bucket_t* */
    char pad[64];        /* keep stripes on separate cache lines */
} stripe_t;

struct gw_rl_local {
    stripe_t stripes[STRIPES];
    size_t cap; /* per stripe */
};

gw_rl_local_t *gw_rl_local_create(size_t max_keys)
{
    gw_rl_local_t *t = mp_xcalloc(1, sizeof(*t));
    t->cap = max_keys / STRIPES > 16 ? max_keys / STRIPES : 16;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&t->stripes[i].mu, NULL);
    return t;
}

void gw_rl_local_destroy(gw_rl_local_t *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        mp_u64map_t *m = &t->stripes[i].buckets;
        for (size_t k = 0; k < m->cap; k++)
            if (m->keys[k])
                free(m->vals[k]);
        mp_u64map_dispose(m);
        pthread_mutex_destroy(&t->stripes[i].mu);
    }
    free(t);
}

static uint64_t hash_key(const char *group, const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = group; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ ':') * 1099511628211ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ? h : 1;
}

/* Forgets buckets that are full by now (indistinguishable from new ones); all of them if that is not enough. */
static void prune(stripe_t *s, size_t cap, const gw_rl_policy_t *p, int64_t now_ms)
{
    mp_u64map_t *m = &s->buckets;
    uint64_t *dead = mp_xmalloc(m->len * sizeof(*dead));
    size_t n = 0;
    /* the longest refill any policy needs is unknown here: use this policy's, which is the common case */
    int64_t full_after = (int64_t)ceil(p->burst * 1000.0 / p->rate);
    for (size_t k = 0; k < m->cap; k++) {
        gw_bucket_t *b = m->vals[k];
        if (m->keys[k] && now_ms - b->ts_ms >= full_after)
            dead[n++] = m->keys[k];
    }
    if (m->len - n > cap / 2) { /* still crowded: start over rather than grow without bound */
        n = 0;
        for (size_t k = 0; k < m->cap; k++)
            if (m->keys[k])
                dead[n++] = m->keys[k];
    }
    for (size_t i = 0; i < n; i++)
        free(mp_u64map_del(m, dead[i]));
    free(dead);
}

void gw_rl_local_take(gw_rl_result_t *out, gw_rl_local_t *t, const gw_rl_policy_t *p, const char *key, int64_t now_ms)
{
    uint64_t h = hash_key(p->group, key);
    stripe_t *s = &t->stripes[h % STRIPES];
    pthread_mutex_lock(&s->mu);
    gw_bucket_t *b = mp_u64map_get(&s->buckets, h);
    if (b == NULL) {
        if (s->buckets.len >= t->cap)
            prune(s, t->cap, p, now_ms);
        b = mp_xcalloc(1, sizeof(*b));
        mp_u64map_put(&s->buckets, h, b);
    }
    gw_bucket_take(out, b, p->rate, p->burst, now_ms);
    pthread_mutex_unlock(&s->mu);
}

size_t gw_rl_local_size(gw_rl_local_t *t)
{
    size_t n = 0;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&t->stripes[i].mu);
        n += t->stripes[i].buckets.len;
        pthread_mutex_unlock(&t->stripes[i].mu);
    }
    return n;
}
