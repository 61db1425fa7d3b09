/*
 * mp/u64map.h: an open-addressing hash map from non-zero uint64 keys to
 * pointers (linear probing, backward-shift deletion, so no tombstones).
 * Leaf module: libc only. Not thread-safe; one owner thread.
 */
#ifndef MP_U64MAP_H
#define MP_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_u64map {
    uint64_t *keys; /* 0 marks an empty slot */
    void **vals;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} mp_u64map_t;

#define MP_U64MAP_INIT                                                                                                 \
    {                                                                                                                  \
        NULL, NULL, 0, 0                                                                                               \
    }

/** Inserts or replaces. `key` must not be 0. */
void mp_u64map_put(mp_u64map_t *m, uint64_t key, void *val);
/** Returns the value or NULL. */
void *mp_u64map_get(const mp_u64map_t *m, uint64_t key);
/** Removes and returns the value, or NULL when absent. */
void *mp_u64map_del(mp_u64map_t *m, uint64_t key);
/** Frees the table (not the values). */
void mp_u64map_dispose(mp_u64map_t *m);

#endif
