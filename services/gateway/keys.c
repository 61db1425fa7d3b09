/*
 * keys.c: the gateway's JWKS holder and revocation set (see keys.h).
 * The revocation set is a chained hash of session ids; expired entries are
 * dropped from a bucket whenever it is written, so it holds roughly the
 * sessions revoked within one access-token lifetime.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "keys.h"

#define NBUCKETS 1024

typedef struct revoked {
    char *sid;
    int64_t until;
    struct revoked *next;
} revoked_t;

struct gw_keys {
    pthread_mutex_t mu;
    mp_jwks_t *jwks;
    int64_t last_refresh;
    _Atomic uint64_t keys_gen; /* bumped (under mu, after the swap) when the set's keys change */
    pthread_rwlock_t rw;
    revoked_t *buckets[NBUCKETS];
    size_t nrevoked;
    _Atomic uint64_t revoked_gen; /* bumped (under rw, after the change) when a revocation is added or extended */
};

static size_t bucket_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h % NBUCKETS);
}

gw_keys_t *gw_keys_create(void)
{
    gw_keys_t *k = mp_xcalloc(1, sizeof(*k));
    pthread_mutex_init(&k->mu, NULL);
    pthread_rwlock_init(&k->rw, NULL);
    return k;
}

void gw_keys_destroy(gw_keys_t *k)
{
    if (k == NULL)
        return;
    mp_jwks_release(k->jwks);
    for (size_t i = 0; i < NBUCKETS; i++) {
        while (k->buckets[i]) {
            revoked_t *r = k->buckets[i];
            k->buckets[i] = r->next;
            free(r->sid);
            free(r);
        }
    }
    pthread_mutex_destroy(&k->mu);
    pthread_rwlock_destroy(&k->rw);
    free(k);
}

mp_jwks_t *gw_keys_get(gw_keys_t *k)
{
    pthread_mutex_lock(&k->mu);
    mp_jwks_t *j = k->jwks ? mp_jwks_retain(k->jwks) : NULL;
    pthread_mutex_unlock(&k->mu);
    return j;
}

void gw_keys_set(gw_keys_t *k, mp_jwks_t *keys)
{
    pthread_mutex_lock(&k->mu);
    mp_jwks_t *old = k->jwks;
    k->jwks = keys;
    if (!mp_jwks_equal(old, keys)) /* the periodic sync re-installs the same set: no change to announce */
        atomic_fetch_add_explicit(&k->keys_gen, 1, memory_order_release);
    pthread_mutex_unlock(&k->mu);
    mp_jwks_release(old);
}

uint64_t gw_keys_generation(gw_keys_t *k)
{
    return atomic_load_explicit(&k->keys_gen, memory_order_acquire);
}

bool gw_keys_may_refresh(gw_keys_t *k, int64_t now_ms, int64_t min_interval_ms)
{
    pthread_mutex_lock(&k->mu);
    bool ok = now_ms - k->last_refresh >= min_interval_ms;
    if (ok)
        k->last_refresh = now_ms;
    pthread_mutex_unlock(&k->mu);
    return ok;
}

void gw_keys_revoke(gw_keys_t *k, const char *sid, int64_t until_s)
{
    size_t b = bucket_of(sid);
    int64_t now = (int64_t)time(NULL);
    pthread_rwlock_wrlock(&k->rw);
    for (revoked_t **pp = &k->buckets[b]; *pp;) {
        revoked_t *r = *pp;
        if (r->until < now && strcmp(r->sid, sid) != 0) { /* expired: its tokens are dead anyway */
            *pp = r->next;
            free(r->sid);
            free(r);
            k->nrevoked--;
            continue;
        }
        if (strcmp(r->sid, sid) == 0) {
            if (until_s > r->until) {
                r->until = until_s;
                atomic_fetch_add_explicit(&k->revoked_gen, 1, memory_order_release);
            }
            pthread_rwlock_unlock(&k->rw);
            return;
        }
        pp = &r->next;
    }
    revoked_t *r = mp_xmalloc(sizeof(*r));
    r->sid = mp_xstrdup(sid);
    r->until = until_s;
    r->next = k->buckets[b];
    k->buckets[b] = r;
    k->nrevoked++;
    atomic_fetch_add_explicit(&k->revoked_gen, 1, memory_order_release);
    pthread_rwlock_unlock(&k->rw);
}

uint64_t gw_keys_revocation_generation(gw_keys_t *k)
{
    return atomic_load_explicit(&k->revoked_gen, memory_order_acquire);
}

bool gw_keys_revoked(gw_keys_t *k, const char *sid, int64_t now_s)
{
    if (sid == NULL || *sid == '\0')
        return false;
    bool hit = false;
    pthread_rwlock_rdlock(&k->rw);
    for (revoked_t *r = k->buckets[bucket_of(sid)]; r; r = r->next) {
        if (strcmp(r->sid, sid) == 0) {
            hit = now_s <= r->until;
            break;
        }
    }
    pthread_rwlock_unlock(&k->rw);
    return hit;
}

size_t gw_keys_revoked_count(gw_keys_t *k)
{
    pthread_rwlock_rdlock(&k->rw);
    size_t n = k->nrevoked;
    pthread_rwlock_unlock(&k->rw);
    return n;
}
