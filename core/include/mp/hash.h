/*
 * mp/hash.h: FNV-1a, the one non-cryptographic string hash moonport uses
 * for table keys and names derived from text. Never for secrets or for
 * anything an attacker can aim collisions at to hurt more than a slower
 * lookup.
 *
 * Leaf module: no dependencies.
 */
#ifndef MP_HASH_H
#define MP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define MP_FNV1A_SEED 1469598103934665603ULL

/** Continues an FNV-1a 64-bit hash `h` (start with MP_FNV1A_SEED) over `len` bytes. */
static inline uint64_t mp_fnv1a_more(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/** FNV-1a 64-bit of a NUL-terminated string. */
static inline uint64_t mp_fnv1a_str(const char *s)
{
    uint64_t h = MP_FNV1A_SEED;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

#endif
