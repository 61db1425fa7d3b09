/*
 * seed.c: `moonport seed [--products N] [--seed S]`: loads the generated demo
 * catalogue (seed_data.c) into Postgres, used by `make run`, the tests and
 * the benchmarks.
 *
 * Idempotent: products are upserted by SKU, in batches of 200 within one
 * transaction. A product whose catalogue fields already match is left
 * alone (no version bump); one that differs gets them back (and a new
 * version, and its cache entry invalidated). Stock is set only for new
 * products: re-seeding a running shop does not undo its orders.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/json.h"
#include "product_int.h"
#include "seed_data.h"

#define SEED_BATCH 200

static const char *arg_of(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static json_t *batch_json(uint64_t seed, unsigned from, unsigned to)
{
    json_t *rows = json_array();
    for (unsigned i = from; i < to; i++) {
        seed_product_t p;
        seed_product_make(&p, seed, i);
        json_t *tags = json_array();
        for (size_t t = 0; p.tags[t]; t++)
            json_array_append_new(tags, json_string(p.tags[t]));
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:o, s:s}", "sku", p.sku, "name", p.name,
                                              "description", p.description, "price", (json_int_t)p.price, "stock",
                                              (json_int_t)p.stock, "category", p.category, "tags", tags, "image_url",
                                              p.image_url));
    }
    return rows;
}

/* Upserts one batch; adds to the counts and invalidates the cache of products that changed. */
static mp_status_t upsert(mp_svc_t *svc, mp_db_conn_t *db, json_t *rows, long *added, long *changed)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_db_res_t *res = NULL;
    mp_json_dump(&b, rows);
    mp_status_t st = mp_db_exec(
        &res, db,
        "INSERT INTO product.products AS p (sku, name, description, price_amount, stock, category, tags, image_url) "
        "SELECT x.sku, x.name, x.description, x.price, x.stock, x.category, "
        "ARRAY(SELECT jsonb_array_elements_text(x.tags)), x.image_url FROM jsonb_to_recordset($1::jsonb) AS "
        "x(sku text, name text, description text, price bigint, stock int, category text, tags jsonb, image_url text) "
        "ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, "
        "price_amount = EXCLUDED.price_amount, category = EXCLUDED.category, tags = EXCLUDED.tags, "
        "image_url = EXCLUDED.image_url, version = p.version + 1, updated_at = now() "
        "WHERE (p.name, p.description, p.price_amount, p.category, p.tags, p.image_url) IS DISTINCT FROM "
        "(EXCLUDED.name, EXCLUDED.description, EXCLUDED.price_amount, EXCLUDED.category, EXCLUDED.tags, "
        "EXCLUDED.image_url) RETURNING p.id, p.version, p.version = 1",
        1, MP_DB_PARAMS(b.base));
    mp_buf_dispose(&b);
    for (int i = 0; st == MP_OK && i < mp_db_rows(res); i++) {
        if (strcmp(mp_db_get(res, i, 2), "t") == 0) {
            (*added)++;
        } else {
            (*changed)++;
            product_cache_invalidate(svc, mp_db_get(res, i, 0), mp_db_get(res, i, 1));
        }
    }
    mp_db_res_free(res);
    return st;
}

int product_cmd_seed(mp_svc_t *svc, int argc, char **argv)
{
    /* --products is the name the docs use; --count, its first name, stays for scripts that have it */
    const char *count_arg = arg_of(argc, argv, "--products"), *seed_arg = arg_of(argc, argv, "--seed");
    if (count_arg == NULL)
        count_arg = arg_of(argc, argv, "--count");
    char *end = NULL;
    long count = count_arg ? strtol(count_arg, &end, 10) : SEED_DEFAULT_COUNT;
    if (end && *end != '\0')
        count = 0; /* "10k" is refused, not read as 10 */
    uint64_t seed = seed_arg ? strtoull(seed_arg, NULL, 10) : SEED_DEFAULT_SEED;
    if (count < 1 || count > 1000000) {
        fprintf(stderr, "moonport seed: --products must be from 1 to 1000000\n");
        return 2;
    }
    long added = 0, changed = 0;
    mp_db_conn_t *db = NULL;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(svc), 5000);
    if (st == MP_OK)
        st = mp_db_begin(db);
    for (long from = 0; st == MP_OK && from < count; from += SEED_BATCH) {
        long to = from + SEED_BATCH < count ? from + SEED_BATCH : count;
        json_t *rows = batch_json(seed, (unsigned)from, (unsigned)to);
        st = upsert(svc, db, rows, &added, &changed);
        json_decref(rows);
    }
    if (st == MP_OK)
        st = mp_db_commit(db);
    mp_db_release(db);
    if (st != MP_OK) {
        fprintf(stderr, "moonport seed: %s\n", mp_err_get());
        return 1;
    }
    printf("seeded %ld products in %zu categories: %ld new, %ld updated, %ld unchanged\n", count,
           count < (long)seed_category_count() ? (size_t)count : seed_category_count(), added, changed,
           count - added - changed);
    return 0;
}
