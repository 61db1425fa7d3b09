/*
 * hash.h: the seeded 64-bit hash of the gateway's per-thread tables (kept
 * tokens, rate-limit leases). Seeded per table with a random value, so
 * nobody can choose keys (tokens, client addresses) that land in one chain.
 * Not cryptographic: tables still compare the full key. Eight bytes a step.
 */
#ifndef MP_GW_HASH_H
#define MP_GW_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t gw_hash64(uint64_t seed, const void *data, size_t len)
{
    const char *p = data;
    uint64_t h = seed ^ (len * 0x9E3779B97F4A7C15ULL);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    memcpy(&tail, p + i, len - i);
    h = (h ^ tail) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 32);
}

#endif
