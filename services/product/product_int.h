/*
 * product_int.h: what the Product service's files share.
 *
 * Files: product.c (the service; get, create, update, delete), fields.c
 * (checking product fields), cache.c (Redis read-through with version
 * fences), list.c (filtered, sorted, searched listings), stock.c (lookup,
 * reserve, release for the Order service), seed.c and seed_data.c
 * (`moonport seed`).
 *
 * Every change to a product bumps its version (its ETag), stock changes by
 * reservations included, and invalidates its cache entry before the reply
 * goes out.
 */
#ifndef MP_PRODUCT_INT_H
#define MP_PRODUCT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "mp/input.h"
#include "mp/service.h"

/* SQL fragment: a timestamptz column as RFC 3339 UTC text */
#define PRODUCT_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* SQL: the public representation of product `p` as JSON text */
#define PRODUCT_JSON                                                                                                   \
    "json_build_object('id', p.id, 'sku', p.sku, 'name', p.name, 'description', p.description, 'price', "              \
    "json_build_object('amount', p.price_amount, 'currency', p.currency), 'stock', p.stock, 'category', p.category, "  \
    "'tags', p.tags, 'image_url', p.image_url, 'created_at', " PRODUCT_TS(                                             \
        "p.created_at") ", 'updated_at', " PRODUCT_TS("p.updated_at") ", 'version', p.version)::text"

/* Session settings of every Product connection, set once when it connects (not in a transaction per call).
 * pg_trgm.word_similarity_threshold is what the <% operator of search compares with: a swap of two letters, the
 * worst single typo, keeps 4 of the 9 trigrams of an 8-letter word ("keybaord": 0.44), so 0.4 lets one typo
 * through, and the looser matches it admits rank below every full-text match. enable_seqscan=off: the planner
 * prices the trigram filter like a cheap comparison and would scan every row running word_similarity (7.4 ms on
 * 2,400 products against 1.6 ms for the OR of the two GIN indexes, a gap that grows with the catalogue); every
 * Product statement has an index to use. */
#define PRODUCT_DB_SETTINGS "-c pg_trgm.word_similarity_threshold=0.4 -c enable_seqscan=off"

/* SQL: the representation and the version */
#define PRODUCT_COLUMNS PRODUCT_JSON ", p.version"

/* ---- fields.c ------------------------------------------------------------------ */

/** A product's fields as a request gives them; NULL / false for absent. Strings are borrowed from the request. */
typedef struct product_fields {
    const char *sku, *name, *description, *category;
    bool has_price, has_stock, image_url_given;
    int64_t price, stock;
    const char *image_url; /* NULL with image_url_given: clear it */
    char *tags_json;       /* the tags as a JSON array, de-duplicated and sorted; owned, NULL when absent */
} product_fields_t;

/** Checks the product fields of `in` (required ones when `create`), recording every problem at its pointer.
 *  Free with product_fields_dispose(). */
void product_fields_check(product_fields_t *f, mp_input_t *in, bool create);
void product_fields_dispose(product_fields_t *f);
/** True for a category or tag: 1-`max` of [a-z0-9-], starting with a letter or digit. */
bool product_slug_valid(const char *s, size_t max);
/** True for a SKU: 1-64 of [A-Za-z0-9._-], starting with a letter or digit. */
bool product_sku_valid(const char *s);

/* ---- cache.c ------------------------------------------------------------------- */

/** Reads the settings (product.cache_ttl). */
void product_cache_configure(mp_cfg_t *cfg);
/** Registers the cache metrics; before the first cache call (the role's or a command's init). */
void product_cache_init(void);
/** The cached JSON of product `id`. Caller owns `*json` (free()). Errors: MP_ENOTFOUND (a miss, or Redis is
 *  down: then a warning is logged now and then and moonport_product_cache_total{result="unavailable"} counts). */
mp_status_t product_cache_get(char **json, mp_svc_t *svc, const char *id);
/** Stores the JSON of product `id` at `version` read from Postgres, unless a write has fenced that version off. */
void product_cache_fill(mp_svc_t *svc, const char *id, const char *json, const char *version);
/** After a write committed product `id` at `version` (for a delete: its last version + 1): fences older versions
 *  out and deletes the entry. Call before replying. Failures are counted (result="invalidate_failed"), logged now
 *  and then (an outage fails every write), never returned. */
void product_cache_invalidate(mp_svc_t *svc, const char *id, const char *version);

/* ---- handlers ------------------------------------------------------------------- */

mp_status_t product_list(mp_svc_req_t *req);
mp_status_t product_lookup(mp_svc_req_t *req);
mp_status_t product_reserve(mp_svc_req_t *req);
mp_status_t product_release(mp_svc_req_t *req);

int product_cmd_seed(mp_svc_t *svc, int argc, char **argv);

#endif
