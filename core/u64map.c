/*
 * u64map.c: open-addressing uint64 -> pointer map (see mp/u64map.h).
 * Keys are mixed with a 64-bit finalizer so sequential ids (the bus's call
 * sequence numbers) spread over the table.
 */
#include <stdlib.h>
#include "mp/alloc.h"
#include "mp/u64map.h"

static size_t slot_of(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static void grow(mp_u64map_t *m)
{
    mp_u64map_t n = {NULL, NULL, m->cap ? m->cap * 2 : 64, 0};
    n.keys = mp_xcalloc(n.cap, sizeof(*n.keys));
    n.vals = mp_xcalloc(n.cap, sizeof(*n.vals));
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            mp_u64map_put(&n, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = n;
}

void mp_u64map_put(mp_u64map_t *m, uint64_t key, void *val)
{
    if ((m->len + 1) * 4 > m->cap * 3)
        grow(m);
    size_t i = slot_of(key, m->cap);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->len++;
    m->keys[i] = key;
    m->vals[i] = val;
}

void *mp_u64map_get(const mp_u64map_t *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key)
            return m->vals[i];
    return NULL;
}

void *mp_u64map_del(mp_u64map_t *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(key, m->cap);
    while (m->keys[i] != key) {
        if (!m->keys[i])
            return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->vals[i];
    /* backward shift: pull later entries of the cluster into the hole */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->len--;
    return val;
}

void mp_u64map_dispose(mp_u64map_t *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->len = 0;
}
