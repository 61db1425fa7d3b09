/*
 * tokcache.c: a loop thread's verified tokens (see tokcache.h): a chained
 * hash table of entries that also sit on one LRU list, newest first.
 */
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/reqctx.h"
#include "hash.h"
#include "tokcache.h"

/* Bytes of the token's end that pick its chain: the signature, different for every token Auth signs. Lookups still
 * compare every byte, and only verified tokens are ever inserted, so nobody can lengthen a chain by choosing them. */
#define HASHED_TAIL 64

struct gw_tokcache {
    gw_tokcache_entry_t **buckets;
    size_t mask; /* buckets - 1, a power of two minus one */
    size_t n, max;
    gw_tokcache_entry_t *newest, *oldest;
    uint64_t seed;
};

gw_tokcache_t *gw_tokcache_create(size_t max_entries)
{
    gw_tokcache_t *c = mp_xcalloc(1, sizeof(*c));
    c->max = max_entries ? max_entries : 1;
    size_t nb = 16;
    while (nb < c->max) /* load factor at most 1 */
        nb <<= 1;
    c->buckets = mp_xcalloc(nb, sizeof(*c->buckets));
    c->mask = nb - 1;
    c->seed = mp_rand64();
    return c;
}

void gw_tokcache_destroy(gw_tokcache_t *c)
{
    if (c == NULL)
        return;
    for (gw_tokcache_entry_t *e = c->newest, *next; e; e = next) {
        next = e->older;
        free(e);
    }
    free(c->buckets);
    free(c);
}

static void lru_unlink(gw_tokcache_t *c, gw_tokcache_entry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(gw_tokcache_t *c, gw_tokcache_entry_t *e)
{
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (c->oldest == NULL)
        c->oldest = e;
}

static uint64_t hash_of(const gw_tokcache_t *c, const char *token, size_t len)
{
    size_t tail = len < HASHED_TAIL ? len : HASHED_TAIL;
    return gw_hash64(c->seed ^ len, token + len - tail, tail);
}

gw_tokcache_entry_t *gw_tokcache_find(gw_tokcache_t *c, const char *token, size_t len)
{
    uint64_t h = hash_of(c, token, len);
    for (gw_tokcache_entry_t *e = c->buckets[h & c->mask]; e; e = e->chain) {
        if (e->hash == h && e->len == len && memcmp(e->token, token, len) == 0) {
            if (c->newest != e) {
                lru_unlink(c, e);
                lru_push(c, e);
            }
            return e;
        }
    }
    return NULL;
}

void gw_tokcache_drop(gw_tokcache_t *c, gw_tokcache_entry_t *e)
{
    for (gw_tokcache_entry_t **pp = &c->buckets[e->hash & c->mask]; *pp; pp = &(*pp)->chain) {
        if (*pp == e) {
            *pp = e->chain;
            break;
        }
    }
    lru_unlink(c, e);
    c->n--;
    free(e);
}

gw_tokcache_entry_t *gw_tokcache_put(gw_tokcache_t *c, const char *token, size_t len, const mp_jwt_claims_t *claims,
                                     uint64_t revoked_gen)
{
    gw_tokcache_entry_t *old = gw_tokcache_find(c, token, len);
    if (old)
        gw_tokcache_drop(c, old);
    while (c->n >= c->max)
        gw_tokcache_drop(c, c->oldest);
    gw_tokcache_entry_t *e = mp_xmalloc(sizeof(*e) + len);
    e->claims = *claims;
    e->revoked_gen = revoked_gen;
    e->hash = hash_of(c, token, len);
    e->len = len;
    memcpy(e->token, token, len);
    gw_tokcache_entry_t **b = &c->buckets[e->hash & c->mask];
    e->chain = *b;
    *b = e;
    lru_push(c, e);
    c->n++;
    return e;
}

size_t gw_tokcache_retain(gw_tokcache_t *c, bool (*keep)(void *arg, const mp_jwt_claims_t *claims), void *arg)
{
    size_t dropped = 0;
    for (gw_tokcache_entry_t *e = c->newest, *next; e; e = next) {
        next = e->older;
        if (!keep(arg, &e->claims)) {
            gw_tokcache_drop(c, e);
            dropped++;
        }
    }
    return dropped;
}

size_t gw_tokcache_size(const gw_tokcache_t *c)
{
    return c->n;
}
