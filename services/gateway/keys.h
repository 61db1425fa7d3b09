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
/** True (and records the attempt) when a refresh may start now: at most one per `min_interval_ms`. */
bool gw_keys_may_refresh(gw_keys_t *k, int64_t now_ms, int64_t min_interval_ms);

/** Records that session `sid` is revoked until unix time `until_s`. */
void gw_keys_revoke(gw_keys_t *k, const char *sid, int64_t until_s);
/** True when `sid` is revoked at unix time `now_s`. */
bool gw_keys_revoked(gw_keys_t *k, const char *sid, int64_t now_s);
/** Number of revocations held (for metrics). */
size_t gw_keys_revoked_count(gw_keys_t *k);

#endif
