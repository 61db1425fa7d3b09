/*
 * keys.h: what the gateway knows about tokens it did not issue: Auth's
 * public keys (JWKS) and the sessions Auth has revoked.
 *
 * Keys: one immutable, reference-counted mp_jwks_t swapped atomically (under
 * a mutex held for a pointer copy), so verification on every loop thread
 * reads a consistent set while a refresh replaces it. A refresh triggered by
 * an unknown `kid` is rate-limited, so a flood of forged kids cannot turn
 * into a flood of JWKS requests.
 *
 * Revocations: session ids with the time until which their access tokens
 * must be refused (when they would have expired anyway), in a hash set under
 * a read-write lock. Entries past their time are pruned on insert.
 *
 * Generations: a counter for the key set (it moves only when the keys
 * really change, not when the same set is fetched again) and one for the
 * revocations (it moves when one is added or extended). A loop thread that
 * keeps verified tokens (tokens.h) reads them with one atomic load per
 * request and re-checks what it kept only when one moved. Each counter
 * moves after its change is in place, so a reader that sees the new value
 * also sees the change.
 *
 * Thread-safe.
 */
#ifndef MP_GW_KEYS_H
#define MP_GW_KEYS_H

#include <stdbool.h>
#include <stdint.h>
#include "mp/jwt.h"

typedef struct gw_keys gw_keys_t;

/** Creates an empty store. Free with gw_keys_destroy(). */
gw_keys_t *gw_keys_create(void);
void gw_keys_destroy(gw_keys_t *k);

/** The current key set, retained (release with mp_jwks_release()), or NULL when none was fetched yet. */
mp_jwks_t *gw_keys_get(gw_keys_t *k);
/** Replaces the key set (takes the reference). */
void gw_keys_set(gw_keys_t *k, mp_jwks_t *keys);
/** Moves whenever the key set changes (a key added, removed or replaced); starts at 0 with no set. */
uint64_t gw_keys_generation(gw_keys_t *k);
/** True (and records the attempt) when a refresh may start now: at most one per `min_interval_ms`. */
bool gw_keys_may_refresh(gw_keys_t *k, int64_t now_ms, int64_t min_interval_ms);

/** Records that session `sid` is revoked until unix time `until_s`. */
void gw_keys_revoke(gw_keys_t *k, const char *sid, int64_t until_s);
/** True when `sid` is revoked at unix time `now_s`. */
bool gw_keys_revoked(gw_keys_t *k, const char *sid, int64_t now_s);
/** Moves whenever a revocation is added or extended (never when one is pruned: a pruned one revoked nothing). */
uint64_t gw_keys_revocation_generation(gw_keys_t *k);
/** Number of revocations held (for metrics). */
size_t gw_keys_revoked_count(gw_keys_t *k);

#endif
