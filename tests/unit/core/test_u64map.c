/*
 * test_u64map.c: unit tests for core/u64map.c.
 *
 * The file includes u64map.c to reach slot_of(), so tests can build keys that
 * share a home slot (a cluster) and one that wraps around the end of the
 * table: the cases backward-shift deletion gets wrong first. A randomized
 * run compares 100k operations against a plain array indexed by key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include "../../../core/u64map.c"

/* A value that differs from every key's, so a swapped value is caught. */
#define VAL(k) ((void *)(uintptr_t)((k)*2 + 1))

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The first `n` keys >= 1 whose home slot in a table of `cap` is `slot`. */
static void keys_homed_at(uint64_t *out, size_t n, size_t slot, size_t cap)
{
    size_t found = 0;
    for (uint64_t k = 1; found < n; k++)
        if (slot_of(k, cap) == slot)
            out[found++] = k;
}

static void test_u64map_put_get_del(void **state)
{
    mp_u64map_t m = MP_U64MAP_INIT;
    assert_null(mp_u64map_get(&m, 1)); /* empty, no table yet */
    assert_null(mp_u64map_del(&m, 1));
    mp_u64map_put(&m, 1, VAL(1));
    mp_u64map_put(&m, 42, VAL(42));
    mp_u64map_put(&m, UINT64_MAX, VAL(7));
    assert_int_equal(m.len, 3);
    assert_ptr_equal(mp_u64map_get(&m, 1), VAL(1));
    assert_ptr_equal(mp_u64map_get(&m, 42), VAL(42));
    assert_ptr_equal(mp_u64map_get(&m, UINT64_MAX), VAL(7));
    assert_null(mp_u64map_get(&m, 2));
    assert_null(mp_u64map_get(&m, 0)); /* 0 marks an empty slot and is never found */
    mp_u64map_put(&m, 42, VAL(43));    /* replace: no new entry */
    assert_int_equal(m.len, 3);
    assert_ptr_equal(mp_u64map_get(&m, 42), VAL(43));
    assert_ptr_equal(mp_u64map_del(&m, 42), VAL(43));
    assert_null(mp_u64map_get(&m, 42));
    assert_null(mp_u64map_del(&m, 42));
    assert_int_equal(m.len, 2);
    mp_u64map_dispose(&m);
    assert_null(m.keys);
    assert_int_equal(m.cap, 0);
    assert_int_equal(m.len, 0);
    mp_u64map_dispose(&m); /* twice is fine */
}

static void test_u64map_grows_past_thousands_of_keys(void **state)
{
    mp_u64map_t m = MP_U64MAP_INIT;
    const uint64_t n = 50000;
    for (uint64_t k = 1; k <= n; k++)
        mp_u64map_put(&m, k, VAL(k));
    assert_int_equal(m.len, n);
    assert_true(m.len * 4 <= m.cap * 3); /* load factor stays at most 3/4 */
    assert_int_equal(m.cap & (m.cap - 1), 0);
    int missing = 0;
    for (uint64_t k = 1; k <= n; k++)
        missing += mp_u64map_get(&m, k) != VAL(k);
    assert_int_equal(missing, 0);
    assert_null(mp_u64map_get(&m, n + 1));
    mp_u64map_dispose(&m);
}

static void test_u64map_delete_keeps_cluster_findable(void **state)
{
    mp_u64map_t m = MP_U64MAP_INIT;
    mp_u64map_put(&m, 1, VAL(1)); /* allocate the first table (64 slots) */
    mp_u64map_del(&m, 1);
    assert_int_equal(m.cap, 64);
    uint64_t k[6];
    keys_homed_at(k, 6, 10, m.cap);
    for (int i = 0; i < 6; i++)
        mp_u64map_put(&m, k[i], VAL(k[i]));
    assert_int_equal(m.cap, 64);
    /* delete from the front, the middle and the end of the cluster */
    int order[] = {0, 3, 5};
    for (int d = 0; d < 3; d++) {
        assert_ptr_equal(mp_u64map_del(&m, k[order[d]]), VAL(k[order[d]]));
        for (int i = 0; i < 6; i++) {
            int gone = 0;
            for (int e = 0; e <= d; e++)
                gone |= i == order[e];
            if (gone)
                assert_null(mp_u64map_get(&m, k[i]));
            else
                assert_ptr_equal(mp_u64map_get(&m, k[i]), VAL(k[i]));
        }
    }
    /* no hole is left inside what remains: the cluster is contiguous from its home */
    assert_int_equal(m.len, 3);
    for (size_t s = 10; s < 13; s++)
        assert_true(m.keys[s] != 0);
    assert_int_equal(m.keys[13], 0);
    mp_u64map_dispose(&m);
}

static void test_u64map_delete_across_table_end(void **state)
{
    mp_u64map_t m = MP_U64MAP_INIT;
    mp_u64map_put(&m, 1, VAL(1));
    mp_u64map_del(&m, 1);
    uint64_t end[3], start[2];
    keys_homed_at(end, 3, 62, m.cap); /* 62, 63, then wraps to 0 */
    keys_homed_at(start, 2, 0, m.cap);
    for (int i = 0; i < 3; i++)
        mp_u64map_put(&m, end[i], VAL(end[i]));
    for (int i = 0; i < 2; i++)
        mp_u64map_put(&m, start[i], VAL(start[i])); /* pushed to slots 1 and 2 */
    assert_int_equal(m.keys[0], end[2]);
    /* removing a key at slot 62 must pull the wrapped one back, and then leave start[] homed correctly */
    assert_ptr_equal(mp_u64map_del(&m, end[0]), VAL(end[0]));
    for (int i = 1; i < 3; i++)
        assert_ptr_equal(mp_u64map_get(&m, end[i]), VAL(end[i]));
    for (int i = 0; i < 2; i++)
        assert_ptr_equal(mp_u64map_get(&m, start[i]), VAL(start[i]));
    assert_int_equal(m.keys[0], start[0]); /* start[0] moved home */
    assert_ptr_equal(mp_u64map_del(&m, end[2]), VAL(end[2]));
    for (int i = 0; i < 2; i++)
        assert_ptr_equal(mp_u64map_get(&m, start[i]), VAL(start[i]));
    assert_int_equal(m.len, 3);
    mp_u64map_dispose(&m);
}

static void test_u64map_delete_half_of_many(void **state)
{
    mp_u64map_t m = MP_U64MAP_INIT;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    enum { N = 20000 };
    uint64_t *keys = malloc(N * sizeof(*keys));
    for (size_t i = 0; i < N; i++) {
        keys[i] = xorshift(&seed) | 1;
        mp_u64map_put(&m, keys[i], VAL(keys[i]));
    }
    for (size_t i = 0; i < N; i += 2)
        mp_u64map_del(&m, keys[i]);
    int wrong = 0;
    for (size_t i = 0; i < N; i++)
        wrong += mp_u64map_get(&m, keys[i]) != (i % 2 ? VAL(keys[i]) : NULL);
    size_t len = m.len;
    free(keys);
    mp_u64map_dispose(&m);
    assert_int_equal(wrong, 0);
    assert_int_equal(len, N / 2);
}

static void test_u64map_random_ops_match_reference(void **state)
{
    /* keys from a small range so puts replace and deletes hit; values from a counter so every put is distinct */
    enum { KEYS = 3000, OPS = 100000 };
    void **ref = calloc(KEYS + 1, sizeof(*ref));
    mp_u64map_t m = MP_U64MAP_INIT;
    uint64_t seed = 12345, counter = 0;
    size_t live = 0, mismatches = 0;
    for (int op = 0; op < OPS; op++) {
        uint64_t r = xorshift(&seed);
        uint64_t k = r % KEYS + 1;
        switch ((r >> 32) % 3) {
        case 0: {
            void *v = (void *)(uintptr_t)(++counter * 8);
            live += ref[k] == NULL;
            ref[k] = v;
            mp_u64map_put(&m, k, v);
            break;
        }
        case 1:
            mismatches += mp_u64map_del(&m, k) != ref[k];
            live -= ref[k] != NULL;
            ref[k] = NULL;
            break;
        default:
            mismatches += mp_u64map_get(&m, k) != ref[k];
        }
        mismatches += m.len != live;
    }
    for (uint64_t k = 1; k <= KEYS; k++)
        mismatches += mp_u64map_get(&m, k) != ref[k];
    free(ref);
    mp_u64map_dispose(&m);
    assert_int_equal(mismatches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64map_put_get_del),
        cmocka_unit_test(test_u64map_grows_past_thousands_of_keys),
        cmocka_unit_test(test_u64map_delete_keeps_cluster_findable),
        cmocka_unit_test(test_u64map_delete_across_table_end),
        cmocka_unit_test(test_u64map_delete_half_of_many),
        cmocka_unit_test(test_u64map_random_ops_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
