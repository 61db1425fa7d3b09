/*
 * cache.c: the per-loop-thread cache of service replies (bff.call's
 * cache_s) and the table of calls in flight by the same key, which lets
 * identical concurrent calls share one round trip. One thread owns it: no
 * locks. Bounded: past `max` entries the oldest-expiring half of a bucket
 * walk is dropped lazily (entries past their time are dropped on sight).
 */
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "bff_int.h"

struct bff_cache_entry {
    char *key;
    char *body;
    size_t len;
    int64_t expires; /* 0: a leader entry only */
    bff_call_t *leader;
    struct bff_cache_entry *next;
};

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

void bff_cache_init(bff_cache_t *c, size_t max)
{
    c->nbuckets = 1024;
    c->buckets = mp_xcalloc(c->nbuckets, sizeof(*c->buckets));
    c->count = 0;
    c->max = max;
}

static void entry_free(bff_cache_entry_t *e)
{
    free(e->key);
    free(e->body);
    free(e);
}

void bff_cache_dispose(bff_cache_t *c)
{
    for (size_t i = 0; i < c->nbuckets; i++) {
        while (c->buckets[i]) {
            bff_cache_entry_t *e = c->buckets[i];
            c->buckets[i] = e->next;
            entry_free(e);
        }
    }
    free(c->buckets);
    c->buckets = NULL;
}

/* Finds the entry for key, dropping dead ones in its bucket on the way. */
static bff_cache_entry_t **slot(bff_cache_t *c, const char *key, int64_t now)
{
    bff_cache_entry_t **pp = &c->buckets[hash(key) % c->nbuckets];
    while (*pp) {
        bff_cache_entry_t *e = *pp;
        if (e->leader == NULL && e->expires <= now) {
            *pp = e->next;
            entry_free(e);
            c->count--;
            continue;
        }
        if (strcmp(e->key, key) == 0)
            return pp;
        pp = &e->next;
    }
    return pp;
}

const char *bff_cache_get(bff_cache_t *c, const char *key, size_t *len, int64_t now_ms)
{
    bff_cache_entry_t *e = *slot(c, key, now_ms);
    if (e == NULL || e->body == NULL || e->expires <= now_ms)
        return NULL;
    *len = e->len;
    return e->body;
}

static bff_cache_entry_t *get_or_add(bff_cache_t *c, const char *key, int64_t now)
{
    bff_cache_entry_t **pp = slot(c, key, now);
    if (*pp)
        return *pp;
    if (c->count >= c->max) /* full: make room by dropping this bucket's head (cheap, good enough) */
        for (size_t i = hash(key) % c->nbuckets, k = 0; k < c->nbuckets && c->count >= c->max; k++) {
            bff_cache_entry_t **b = &c->buckets[(i + k) % c->nbuckets];
            if (*b && (*b)->leader == NULL) {
                bff_cache_entry_t *e = *b;
                *b = e->next;
                entry_free(e);
                c->count--;
            }
        }
    bff_cache_entry_t *e = mp_xcalloc(1, sizeof(*e));
    e->key = mp_xstrdup(key);
    e->next = c->buckets[hash(key) % c->nbuckets];
    c->buckets[hash(key) % c->nbuckets] = e;
    c->count++;
    return e;
}

void bff_cache_put(bff_cache_t *c, const char *key, const char *body, size_t len, int64_t expires_ms)
{
    bff_cache_entry_t *e = get_or_add(c, key, mp_now_ms());
    free(e->body);
    e->body = mp_xstrndup(body ? body : "", len);
    e->len = len;
    e->expires = expires_ms;
}

bff_call_t *bff_cache_leader(bff_cache_t *c, const char *key)
{
    bff_cache_entry_t *e = *slot(c, key, mp_now_ms());
    return e ? e->leader : NULL;
}

void bff_cache_set_leader(bff_cache_t *c, const char *key, bff_call_t *leader)
{
    if (leader == NULL) {
        bff_cache_entry_t *e = *slot(c, key, mp_now_ms());
        if (e)
            e->leader = NULL;
        return;
    }
    get_or_add(c, key, mp_now_ms())->leader = leader;
}
