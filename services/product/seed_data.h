/*
 * seed_data.h: the demo catalogue, generated: product number i of seed s is
 * always the same product (a fixed PRNG, no clock, no randomness from the
 * system), so `moonport seed` loads the same data on every machine and the
 * tests and benchmarks can count on it.
 *
 * Pure functions: no I/O, no allocation, any thread.
 */
#ifndef MP_PRODUCT_SEED_DATA_H
#define MP_PRODUCT_SEED_DATA_H

#include <stddef.h>
#include <stdint.h>

#define SEED_DEFAULT_COUNT 2400
#define SEED_DEFAULT_SEED 20261123ULL

typedef struct seed_product {
    char sku[32];
    char name[128];
    char description[512];
    char category[32];
    const char *tags[4]; /* NULL-terminated; static strings */
    char image_url[128];
    int64_t price; /* cents */
    int64_t stock;
} seed_product_t;

/** The number of categories the generator spreads products over. */
size_t seed_category_count(void);

/** Fills `out` with product number `index` of the catalogue made from `seed`. */
void seed_product_make(seed_product_t *out, uint64_t seed, unsigned index);

#endif
