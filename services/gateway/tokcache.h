/*
 * tokcache.h: verified bearer tokens kept by one loop thread, so a client
 * that sends the same token again is not made to pay for a signature check
 * each time (an RS256/ES256 verification costs tens of microseconds; a hit
 * costs a hash and a compare of the token's bytes).
 *
 * Keyed by the exact token bytes: a lookup hashes the token's last 64
 * bytes (its signature, different for every token Auth signs) with a seed
 * picked at creation, and compares every byte of a candidate, never the
 * hash alone; only verified tokens are inserted, so nobody can choose
 * tokens that crowd one chain. An entry holds the claims
 * the verification returned and the revocation generation (keys.h) at which
 * its session was last found not revoked. The cache itself trusts nothing
 * over time: its owner (auth.c) re-checks the time window on every hit, the
 * revocations whenever their generation moved, and drops the entries of
 * keys that left or changed when the key set changes (gw_tokcache_retain()).
 *
 * Bounded: at most `max_entries`; inserting into a full cache evicts the
 * least recently used entry. Only verified tokens are inserted, so the
 * bound, not the traffic, decides the memory (at most about 1 KiB of claims
 * plus the token per entry).
 *
 * Thread affinity: one cache per loop thread, no locks; not thread-safe.
 */
#ifndef MP_GW_TOKCACHE_H
#define MP_GW_TOKCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mp/jwt.h"

typedef struct gw_tokcache gw_tokcache_t;

/** One kept token. `claims` and `revoked_gen` belong to the owner to read and update; the rest is the cache's. */
typedef struct gw_tokcache_entry {
    mp_jwt_claims_t claims;
    uint64_t revoked_gen; /* the revocation generation at which the owner last found the session not revoked */
    /* private */
    struct gw_tokcache_entry *chain, *newer, *older;
    uint64_t hash;
    size_t len;
    char token[]; /* len bytes */
} gw_tokcache_entry_t;

/** Creates a cache of at most `max_entries` tokens (at least 1). Free with gw_tokcache_destroy(). */
gw_tokcache_t *gw_tokcache_create(size_t max_entries);
/** Frees the cache and every entry. Accepts NULL. */
void gw_tokcache_destroy(gw_tokcache_t *c);

/** The entry for exactly these `len` bytes (marked most recently used), or NULL. */
gw_tokcache_entry_t *gw_tokcache_find(gw_tokcache_t *c, const char *token, size_t len);

/** Keeps `token` with its verified `claims` and `revoked_gen`, evicting the least recently used entry when full.
 *  A token already kept is replaced. Returns the new entry. */
gw_tokcache_entry_t *gw_tokcache_put(gw_tokcache_t *c, const char *token, size_t len, const mp_jwt_claims_t *claims,
                                     uint64_t revoked_gen);

/** Forgets one entry (from gw_tokcache_find() or gw_tokcache_put()). */
void gw_tokcache_drop(gw_tokcache_t *c, gw_tokcache_entry_t *e);

/** Keeps only the entries for which `keep(arg, claims)` is true (used when the key set changes). Returns how many it
 *  dropped. */
size_t gw_tokcache_retain(gw_tokcache_t *c, bool (*keep)(void *arg, const mp_jwt_claims_t *claims), void *arg);

/** Number of entries held. */
size_t gw_tokcache_size(const gw_tokcache_t *c);

#endif
