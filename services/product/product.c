/*
 * product.c: the Product service: one product read through the Redis cache
 * (product.v1.get), and the admin writes: create, update (If-Match
 * required), delete. Listing and search are in list.c, stock operations for
 * orders in stock.c, the cache in cache.c.
 *
 * A product's ETag is its version in quotes. GET answers If-None-Match with
 * 304; PATCH without If-Match is 428 (an admin tool must say which version
 * it edits) and with a stale one 412, so concurrent edits never overwrite
 * each other unseen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/etag.h"
#include "mp/json.h"
#include "product_int.h"

#define PRODUCT_CACHE_CONTROL "no-cache"

static mp_status_t reply_product(mp_svc_req_t *req, int status, const char *json, int64_t version)
{
    char etag[32];
    mp_etag_version(etag, sizeof(etag), version);
    mp_svc_reply_header(req, "ETag", etag);
    mp_svc_reply_header(req, "Cache-Control", PRODUCT_CACHE_CONTROL);
    if (status == 200 && mp_etag_match(mp_svc_header(req, "If-None-Match"), etag, true))
        return mp_svc_reply_json(req, 304, NULL);
    return mp_svc_reply_raw(req, status, "application/json", json, strlen(json));
}

static mp_status_t not_found(mp_svc_req_t *req)
{
    return mp_svc_reply_problem(req, 404, "no such product", NULL);
}

/* Reads the product id parameter; false (with the error recorded) when missing or malformed. */
static bool id_param(char id[37], mp_input_t *in)
{
    return mp_input_uuid(in, "id", MP_IN_PARAM | MP_IN_REQUIRED, id);
}

static mp_status_t not_admin(mp_svc_req_t *req)
{
    return mp_svc_reply_problem(req, 403, "changing the catalogue needs the admin role", NULL);
}

/* The start of a handler whose only parameter is the product id: true with `id` set, or false once it has answered
 * (403 when `admin` is needed and missing, 400/422 for the input). */
static bool admit_id(char id[37], mp_svc_req_t *req, bool admin)
{
    mp_input_t in;
    if (admin && !mp_svc_has_role(req, "admin")) {
        not_admin(req);
        return false;
    }
    mp_input_init(&in, req->input);
    id_param(id, &in);
    mp_input_only(&in, MP_INPUT_FIELDS("id"));
    if (!mp_input_ok(&in)) {
        mp_input_reply(req, &in);
        return false;
    }
    mp_input_dispose(&in);
    return true;
}

/* ---- get ----------------------------------------------------------------------------- */

static mp_status_t product_get(mp_svc_req_t *req)
{
    char id[37];
    if (!admit_id(id, req, false))
        return MP_OK;
    char *cached = NULL;
    if (product_cache_get(&cached, req->svc, id) == MP_OK) {
        json_t *v = NULL;
        json_t *ver = mp_json_parse(&v, cached, strlen(cached)) == MP_OK ? json_object_get(v, "version") : NULL;
        int64_t version = json_is_integer(ver) ? json_integer_value(ver) : -1;
        json_decref(v);
        if (version > 0) {
            mp_status_t st = reply_product(req, 200, cached, version);
            free(cached);
            return st;
        }
        free(cached); /* an unreadable entry is a miss */
    }
    mp_db_res_t *res = NULL;
    mp_status_t st =
        mp_db_exec_once(&res, mp_svc_db(req->svc), "SELECT " PRODUCT_COLUMNS " FROM product.products p WHERE p.id = $1",
                        1, MP_DB_PARAMS(id));
    if (st == MP_OK && mp_db_rows(res) == 1) {
        product_cache_fill(req->svc, id, mp_db_get(res, 0, 0), mp_db_get(res, 0, 1));
        st = reply_product(req, 200, mp_db_get(res, 0, 0), strtoll(mp_db_get(res, 0, 1), NULL, 10));
    } else if (st == MP_OK) {
        st = not_found(req);
    }
    mp_db_res_free(res);
    return st;
}

/* ---- create ------------------------------------------------------------------------------ */

static mp_status_t product_create(mp_svc_req_t *req)
{
    mp_input_t in;
    product_fields_t f;
    if (!mp_svc_has_role(req, "admin"))
        return not_admin(req);
    mp_input_init(&in, req->input);
    product_fields_check(&f, &in, true);
    mp_input_only(&in,
                  MP_INPUT_FIELDS("sku", "name", "description", "price", "stock", "category", "tags", "image_url"));
    if (!mp_input_ok(&in)) {
        product_fields_dispose(&f);
        return mp_input_reply(req, &in);
    }
    mp_input_dispose(&in);

    char price[24], stock[24], location[64];
    snprintf(price, sizeof(price), "%lld", (long long)f.price);
    snprintf(stock, sizeof(stock), "%lld", (long long)f.stock);
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(
        &res, mp_svc_db(req->svc),
        "INSERT INTO product.products AS p (sku, name, description, price_amount, stock, category, tags, image_url) "
        "VALUES ($1, $2, COALESCE($3, ''), $4::bigint, $5::int, $6, "
        "ARRAY(SELECT jsonb_array_elements_text(COALESCE($7::jsonb, '[]'))), $8) RETURNING " PRODUCT_COLUMNS ", p.id",
        8, MP_DB_PARAMS(f.sku, f.name, f.description, price, stock, f.category, f.tags_json, f.image_url));
    product_fields_dispose(&f);
    if (st == MP_ECONFLICT) {
        mp_problem_errors_t errs = {0};
        mp_problem_add(&errs, "/sku", "is already used by another product");
        return mp_svc_reply_problem(req, 409, "a product with this SKU exists", &errs);
    }
    if (st != MP_OK)
        return st;
    snprintf(location, sizeof(location), "/v1/products/%s", mp_db_get(res, 0, 2));
    mp_svc_reply_header(req, "Location", location);
    mp_log_kv(MP_LOG_INFO, &req->log, "product created", "product_id", mp_db_get(res, 0, 2), NULL);
    st = reply_product(req, 201, mp_db_get(res, 0, 0), strtoll(mp_db_get(res, 0, 1), NULL, 10));
    mp_db_res_free(res);
    return st;
}

/* ---- update and delete --------------------------------------------------------------------- */

/* Checks a connection out into `*db` (release it), begins, locks product `id` and checks `if_match` against its
 * version: `*outcome` is 0 to go on, else the status to answer (404, 412). */
static mp_status_t begin_locked(int *outcome, mp_db_conn_t **db, mp_svc_t *svc, const char *id, const char *if_match)
{
    mp_db_res_t *res = NULL;
    *outcome = 0;
    mp_status_t st = mp_db_acquire(db, mp_svc_db(svc), 2000);
    if (st == MP_OK)
        st = mp_db_begin(*db);
    if (st == MP_OK)
        st =
            mp_db_exec(&res, *db, "SELECT version FROM product.products WHERE id = $1 FOR UPDATE", 1, MP_DB_PARAMS(id));
    if (st == MP_OK && mp_db_rows(res) != 1) {
        *outcome = 404;
    } else if (st == MP_OK && if_match) {
        char etag[32];
        mp_etag_version(etag, sizeof(etag), strtoll(mp_db_get(res, 0, 0), NULL, 10));
        if (!mp_etag_match(if_match, etag, false))
            *outcome = 412;
    }
    mp_db_res_free(res);
    return st;
}

static mp_status_t precondition_failed(mp_svc_req_t *req)
{
    return mp_svc_reply_problem(req, 412, "the product changed since you read it (If-Match is stale)", NULL);
}

static mp_status_t product_update(mp_svc_req_t *req)
{
    mp_input_t in;
    product_fields_t f;
    char id[37];
    if (!mp_svc_has_role(req, "admin"))
        return not_admin(req);
    mp_input_init(&in, req->input);
    id_param(id, &in);
    product_fields_check(&f, &in, false);
    mp_input_only(
        &in, MP_INPUT_FIELDS("id", "sku", "name", "description", "price", "stock", "category", "tags", "image_url"));
    if (!mp_input_ok(&in)) {
        product_fields_dispose(&f);
        return mp_input_reply(req, &in);
    }
    mp_input_dispose(&in);
    const char *if_match = mp_svc_header(req, "If-Match");
    if (if_match == NULL) {
        product_fields_dispose(&f);
        return mp_svc_reply_problem(req, 428, "send If-Match with the ETag of the product you are changing", NULL);
    }

    char price[24], stock[24];
    snprintf(price, sizeof(price), "%lld", (long long)f.price);
    snprintf(stock, sizeof(stock), "%lld", (long long)f.stock);
    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL;
    int outcome = 0;
    mp_status_t st = begin_locked(&outcome, &db, req->svc, id, if_match);
    if (st == MP_OK && outcome == 0)
        st = mp_db_exec(
            &res, db,
            "UPDATE product.products p SET sku = COALESCE($2, sku), name = COALESCE($3, name), "
            "description = COALESCE($4, description), price_amount = COALESCE($5::bigint, price_amount), "
            "stock = COALESCE($6::int, stock), category = COALESCE($7, category), "
            "tags = CASE WHEN $8::jsonb IS NULL THEN tags ELSE ARRAY(SELECT jsonb_array_elements_text($8::jsonb)) END, "
            "image_url = CASE WHEN $9::boolean THEN $10 ELSE image_url END, "
            "version = version + 1, updated_at = now() WHERE p.id = $1 RETURNING " PRODUCT_COLUMNS,
            10,
            MP_DB_PARAMS(id, f.sku, f.name, f.description, f.has_price ? price : NULL, f.has_stock ? stock : NULL,
                         f.category, f.tags_json, f.image_url_given ? "true" : "false", f.image_url));
    if (st == MP_OK && outcome == 0)
        st = mp_db_commit(db);
    mp_db_release(db);
    product_fields_dispose(&f);
    if (st == MP_OK && outcome == 0) /* before the reply: no one may read the old version after this answer */
        product_cache_invalidate(req->svc, id, mp_db_get(res, 0, 1));
    if (st == MP_ECONFLICT) {
        mp_problem_errors_t errs = {0};
        mp_problem_add(&errs, "/sku", "is already used by another product");
        st = mp_svc_reply_problem(req, 409, "a product with this SKU exists", &errs);
    } else if (st == MP_OK && outcome == 404) {
        st = not_found(req);
    } else if (st == MP_OK && outcome == 412) {
        st = precondition_failed(req);
    } else if (st == MP_OK) {
        mp_log_kv(MP_LOG_INFO, &req->log, "product updated", "product_id", id, "version", mp_db_get(res, 0, 1), NULL);
        st = reply_product(req, 200, mp_db_get(res, 0, 0), strtoll(mp_db_get(res, 0, 1), NULL, 10));
    }
    mp_db_res_free(res);
    return st;
}

static mp_status_t product_delete(mp_svc_req_t *req)
{
    char id[37], fence[24];
    if (!admit_id(id, req, true))
        return MP_OK;

    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL;
    int outcome = 0;
    mp_status_t st = begin_locked(&outcome, &db, req->svc, id, mp_svc_header(req, "If-Match"));
    if (st == MP_OK && outcome == 0)
        st = mp_db_exec(&res, db, "DELETE FROM product.products WHERE id = $1 RETURNING version + 1", 1,
                        MP_DB_PARAMS(id));
    if (st == MP_OK && outcome == 0)
        st = mp_db_commit(db);
    mp_db_release(db);
    if (st == MP_OK && outcome == 0) {
        /* fence every version it ever had, so a reader holding one cannot bring it back */
        snprintf(fence, sizeof(fence), "%s", mp_db_get(res, 0, 0));
        product_cache_invalidate(req->svc, id, fence);
    }
    mp_db_res_free(res);
    if (st != MP_OK)
        return st;
    if (outcome == 404)
        return not_found(req);
    if (outcome == 412)
        return precondition_failed(req);
    mp_log_kv(MP_LOG_INFO, &req->log, "product deleted", "product_id", id, NULL);
    return mp_svc_reply_json(req, 204, NULL);
}

/* ---- the service -------------------------------------------------------------------------- */

static void product_configure(mp_svc_t *svc, mp_cfg_t *cfg)
{
    product_cache_configure(cfg);
}

static mp_status_t product_init(mp_svc_t *svc)
{
    product_cache_init(); /* here, not in configure: processes without the product role show no cache metrics */
    return MP_OK;
}

static const mp_endpoint_t product_endpoints[] = {
    {"get", product_get},         {"list", product_list},       {"create", product_create},
    {"update", product_update},   {"delete", product_delete},   {"lookup", product_lookup},
    {"reserve", product_reserve}, {"release", product_release}, {NULL},
};

static const mp_command_t product_commands[] = {
    {"seed", "[--products N] [--seed S]: load the demo catalogue (deterministic; re-running updates it in place)",
     product_cmd_seed},
    {NULL},
};

MP_SERVICE(product, .endpoints = product_endpoints, .needs = MP_NEEDS_DB | MP_NEEDS_CACHE,
           .configure = product_configure, .init = product_init, .commands = product_commands,
           .db_settings = PRODUCT_DB_SETTINGS);
