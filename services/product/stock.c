/*
 * stock.c: what the Order service asks of the catalogue over NATS (never
 * routed publicly): product.v1.lookup (many products at once),
 * product.v1.reserve and product.v1.release.
 *
 * Reserve is all or nothing. Each item is one conditional decrement,
 * UPDATE ... SET stock = stock - q WHERE id = $1 AND stock >= q, so stock
 * cannot go below zero however many orders race: Postgres re-checks the
 * condition on the row it waited for. Items are taken in product-id order,
 * so two orders locking the same products cannot deadlock.
 *
 * Both operations are idempotent per order id: the order's outcome
 * (reserved, rejected, released) is stored in the same transaction as the
 * stock change, and calls for one order are serialised with an advisory
 * lock, so a retried or redelivered message answers what the first one did
 * and never moves stock twice. A release that comes first leaves a
 * 'released' mark, and the late reserve is refused (409).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/buf.h"
#include "mp/json.h"
#include "product_int.h"

#define LOOKUP_MAX 100
#define ITEMS_MAX 100

/* ---- lookup ---------------------------------------------------------------------------- */

mp_status_t product_lookup(mp_svc_req_t *req)
{
    mp_input_t in;
    mp_input_init(&in, req->input);
    json_t *ids = mp_input_json(&in, "ids", MP_IN_REQUIRED, JSON_ARRAY);
    mp_input_only(&in, MP_INPUT_FIELDS("ids"));
    if (ids && (json_array_size(ids) < 1 || json_array_size(ids) > LOOKUP_MAX))
        mp_input_fail(&in, "ids", "must list 1 to %d product ids", LOOKUP_MAX);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!mp_uuid_valid(json_string_value(v))) {
            char ptr[32];
            snprintf(ptr, sizeof(ptr), "/ids/%zu", i);
            mp_problem_add(&in.errs, ptr, "must be a product id (a UUID)");
        }
    }
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);

    mp_buf_t list = MP_BUF_INIT;
    mp_json_dump(&list, ids);
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(
        &res, mp_svc_db(req->svc),
        "SELECT json_build_object('id', p.id, 'sku', p.sku, 'name', p.name, 'price', json_build_object('amount', "
        "p.price_amount, 'currency', p.currency), 'stock', p.stock, 'category', p.category, 'version', "
        "p.version)::text "
        "FROM product.products p WHERE p.id IN (SELECT x::uuid FROM jsonb_array_elements_text($1::jsonb) x) "
        "ORDER BY p.id",
        1, MP_DB_PARAMS(list.base));
    mp_buf_dispose(&list);
    if (st != MP_OK)
        return st;
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_puts(&b, "{\"items\":[");
    for (int r = 0; r < mp_db_rows(res); r++) {
        if (r)
            mp_buf_puts(&b, ",");
        mp_buf_puts(&b, mp_db_get(res, r, 0));
    }
    mp_buf_puts(&b, "]}");
    mp_db_res_free(res);
    st = mp_svc_reply_raw(req, 200, "application/json", b.base, b.len);
    mp_buf_dispose(&b);
    return st;
}

/* ---- the order's outcome ------------------------------------------------------------------ */

/* Serialises every call for one order id until the transaction ends. */
static mp_status_t lock_order(mp_db_conn_t *db, const char *order_id)
{
    return mp_db_exec(NULL, db, "SELECT pg_advisory_xact_lock(hashtext('product.stock.' || $1))", 1,
                      MP_DB_PARAMS(order_id));
}

typedef struct outcome {
    char state[16]; /* "" (none yet), "reserved", "rejected", "released" */
    bool same_items;
    char *items;  /* jsonb text, owned */
    char *errors; /* jsonb text, owned */
} outcome_t;

static void outcome_dispose(outcome_t *o)
{
    free(o->items);
    free(o->errors);
}

static mp_status_t read_outcome(outcome_t *o, mp_db_conn_t *db, const char *order_id, const char *items)
{
    mp_db_res_t *res = NULL;
    memset(o, 0, sizeof(*o));
    mp_status_t st = mp_db_exec(&res, db,
                                "SELECT state, items IS NOT DISTINCT FROM $2::jsonb, items::text, errors::text "
                                "FROM product.stock_orders WHERE order_id = $1",
                                2, MP_DB_PARAMS(order_id, items));
    if (st == MP_OK && mp_db_rows(res) == 1) {
        snprintf(o->state, sizeof(o->state), "%s", mp_db_get(res, 0, 0));
        o->same_items = strcmp(mp_db_get(res, 0, 1) ? mp_db_get(res, 0, 1) : "f", "t") == 0;
        o->items = mp_db_get(res, 0, 2) ? strdup(mp_db_get(res, 0, 2)) : NULL;
        o->errors = mp_db_get(res, 0, 3) ? strdup(mp_db_get(res, 0, 3)) : NULL;
    }
    mp_db_res_free(res);
    return st;
}

/* Checks a connection out, begins, takes the order's lock and reads its outcome (`items`: the request's, or NULL).
 * On error `*db` may be set: release it. `o` is always initialised. */
static mp_status_t open_order(mp_db_conn_t **db, outcome_t *o, mp_svc_req_t *req, const char *order_id,
                              const char *items)
{
    memset(o, 0, sizeof(*o));
    mp_status_t st = mp_db_acquire(db, mp_svc_db(req->svc), 2000);
    if (st == MP_OK)
        st = mp_db_begin(*db);
    if (st == MP_OK)
        st = lock_order(*db, order_id);
    if (st == MP_OK)
        st = read_outcome(o, *db, order_id, items);
    return st;
}

/* Answers what an order's stored outcome says. */
static mp_status_t reply_outcome(mp_svc_req_t *req, const char *order_id, const outcome_t *o)
{
    if (strcmp(o->state, "released") == 0)
        return mp_svc_reply_problem(req, 409, "this order's stock was already released", NULL);
    if (!o->same_items) {
        mp_problem_errors_t errs = {0};
        mp_problem_add(&errs, "/items", "differ from the first reservation of this order_id");
        return mp_svc_reply_problem(req, 422, "order_id was already used with other items", &errs);
    }
    if (strcmp(o->state, "rejected") == 0) {
        mp_problem_errors_t errs = {.list = o->errors ? json_loads(o->errors, 0, NULL) : NULL};
        return mp_svc_reply_problem(req, 409, "insufficient stock", &errs);
    }
    json_t *items = o->items ? json_loads(o->items, 0, NULL) : json_array();
    return mp_svc_reply_json(req, 200,
                             json_pack("{s:s, s:b, s:o}", "order_id", order_id, "reserved", 1, "items", items));
}

/* ---- reserve --------------------------------------------------------------------------------- */

typedef struct item {
    char product_id[37];
    int64_t quantity;
    size_t index; /* position in the request, for pointers */
} item_t;

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const item_t *)a)->product_id, ((const item_t *)b)->product_id);
}

/* Checks the items; fills `items` (sorted by product id) and returns their count, or 0 with errors recorded. */
static size_t check_items(item_t *items, mp_input_t *in)
{
    json_t *list = mp_input_json(in, "items", MP_IN_REQUIRED, JSON_ARRAY);
    size_t n = 0, i;
    json_t *it;
    if (list == NULL)
        return 0;
    if (json_array_size(list) < 1 || json_array_size(list) > ITEMS_MAX) {
        mp_input_fail(in, "items", "must hold 1 to %d items", ITEMS_MAX);
        return 0;
    }
    json_array_foreach(list, i, it)
    {
        char base[32];
        snprintf(base, sizeof(base), "/items/%zu", i);
        if (!json_is_object(it)) {
            mp_problem_add(&in->errs, base, "must be an object with product_id and quantity");
            continue;
        }
        mp_input_t sub;
        mp_input_init(&sub, it);
        item_t *x = &items[n];
        bool ok = mp_input_uuid(&sub, "product_id", MP_IN_REQUIRED, x->product_id);
        ok &= mp_input_int(&sub, "quantity", MP_IN_REQUIRED, 1, 1000, &x->quantity);
        mp_input_only(&sub, MP_INPUT_FIELDS("product_id", "quantity"));
        size_t k;
        json_t *e;
        json_array_foreach(sub.errs.list, k, e) /* re-root the item's pointers under /items/<i> */
        {
            char ptr[300];
            snprintf(ptr, sizeof(ptr), "%s%s", base, json_string_value(json_object_get(e, "pointer")));
            mp_problem_add(&in->errs, ptr, "%s", json_string_value(json_object_get(e, "detail")));
        }
        mp_input_dispose(&sub);
        if (ok) {
            x->index = i;
            n++;
        }
    }
    qsort(items, n, sizeof(*items), cmp_item);
    for (i = 1; i < n; i++) {
        if (strcmp(items[i].product_id, items[i - 1].product_id) == 0) {
            char ptr[48];
            snprintf(ptr, sizeof(ptr), "/items/%zu/product_id", items[i].index);
            mp_problem_add(&in->errs, ptr, "repeats an earlier item; give each product once");
        }
    }
    return mp_input_ok(in) ? n : 0;
}

/* The items as stored and answered: [{"product_id", "quantity"}] in product-id order. Caller frees. */
static char *items_json(const item_t *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:I}", "product_id", items[i].product_id, "quantity", (json_int_t)items[i].quantity));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

/* Takes each item's stock; records why an item cannot be had in `errs`. Fills `versions` (for the cache). */
static mp_status_t take_stock(mp_db_conn_t *db, const item_t *items, size_t n, mp_problem_errors_t *errs,
                              char (*versions)[24])
{
    for (size_t i = 0; i < n; i++) {
        char q[24], ptr[48];
        mp_db_res_t *res = NULL;
        snprintf(q, sizeof(q), "%lld", (long long)items[i].quantity);
        mp_status_t st = mp_db_exec(&res, db,
                                    "UPDATE product.products SET stock = stock - $2::int, version = version + 1, "
                                    "updated_at = now() WHERE id = $1 AND stock >= $2::int RETURNING version",
                                    2, MP_DB_PARAMS(items[i].product_id, q));
        if (st == MP_OK && mp_db_rows(res) == 1) {
            snprintf(versions[i], 24, "%s", mp_db_get(res, 0, 0));
            mp_db_res_free(res);
            continue;
        }
        mp_db_res_free(res);
        res = NULL;
        if (st == MP_OK)
            st = mp_db_exec(&res, db, "SELECT stock FROM product.products WHERE id = $1", 1,
                            MP_DB_PARAMS(items[i].product_id));
        if (st != MP_OK) {
            mp_db_res_free(res);
            return st;
        }
        if (mp_db_rows(res) == 1) {
            snprintf(ptr, sizeof(ptr), "/items/%zu/quantity", items[i].index);
            mp_problem_add(errs, ptr, "only %s in stock", mp_db_get(res, 0, 0));
        } else {
            snprintf(ptr, sizeof(ptr), "/items/%zu/product_id", items[i].index);
            mp_problem_add(errs, ptr, "no such product");
        }
        mp_db_res_free(res);
    }
    return MP_OK;
}

mp_status_t product_reserve(mp_svc_req_t *req)
{
    mp_input_t in;
    char order_id[37];
    item_t items[ITEMS_MAX];
    mp_input_init(&in, req->input);
    mp_input_uuid(&in, "order_id", MP_IN_REQUIRED, order_id);
    size_t n = check_items(items, &in);
    mp_input_only(&in, MP_INPUT_FIELDS("order_id", "items"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);

    char *wanted = items_json(items, n), (*versions)[24] = calloc(n, 24);
    mp_problem_errors_t errs = {0};
    outcome_t o;
    bool fresh = false;
    mp_db_conn_t *db = NULL;
    mp_status_t st = open_order(&db, &o, req, order_id, wanted);
    if (st == MP_OK && o.state[0] == '\0') {
        fresh = true;
        if ((st = mp_db_exec(NULL, db, "SAVEPOINT take", 0, NULL)) == MP_OK)
            st = take_stock(db, items, n, &errs, versions);
        if (st == MP_OK && mp_problem_count(&errs) > 0) {
            char *e = json_dumps(errs.list, JSON_COMPACT);
            if ((st = mp_db_exec(NULL, db, "ROLLBACK TO SAVEPOINT take", 0, NULL)) == MP_OK)
                st = mp_db_exec(NULL, db,
                                "INSERT INTO product.stock_orders (order_id, state, items, errors) "
                                "VALUES ($1, 'rejected', $2::jsonb, $3::jsonb)",
                                3, MP_DB_PARAMS(order_id, wanted, e));
            free(e);
        } else if (st == MP_OK) {
            st = mp_db_exec(NULL, db,
                            "INSERT INTO product.stock_orders (order_id, state, items) "
                            "VALUES ($1, 'reserved', $2::jsonb)",
                            2, MP_DB_PARAMS(order_id, wanted));
            if (st == MP_OK)
                st = mp_db_exec(NULL, db,
                                "INSERT INTO product.reservations (order_id, product_id, quantity) "
                                "SELECT $1, x.product_id, x.quantity "
                                "FROM jsonb_to_recordset($2::jsonb) AS x(product_id uuid, quantity int)",
                                2, MP_DB_PARAMS(order_id, wanted));
        }
        if (st == MP_OK)
            st = mp_db_commit(db);
        if (st == MP_OK) {
            outcome_dispose(&o);
            st = read_outcome(&o, db, order_id, wanted);
        }
    }
    mp_db_release(db);
    if (st == MP_OK && fresh && mp_problem_count(&errs) == 0) {
        for (size_t i = 0; i < n; i++) /* before the reply: the new stock must be what readers see */
            product_cache_invalidate(req->svc, items[i].product_id, versions[i]);
        mp_log_kv(MP_LOG_INFO, &req->log, "stock reserved", "order_id", order_id, NULL);
    }
    if (st == MP_OK)
        st = reply_outcome(req, order_id, &o);
    mp_problem_errors_dispose(&errs);
    outcome_dispose(&o);
    free(wanted);
    free(versions);
    return st;
}

/* ---- release ------------------------------------------------------------------------------------ */

mp_status_t product_release(mp_svc_req_t *req)
{
    mp_input_t in;
    char order_id[37];
    mp_input_init(&in, req->input);
    mp_input_uuid(&in, "order_id", MP_IN_REQUIRED, order_id);
    mp_input_only(&in, MP_INPUT_FIELDS("order_id"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);

    mp_db_conn_t *db = NULL;
    mp_db_res_t *res = NULL, *back = NULL;
    outcome_t o;
    bool released = false;
    mp_status_t st = open_order(&db, &o, req, order_id, NULL);
    if (st == MP_OK && o.state[0] == '\0') {
        /* released before it was reserved: mark it, so the late reserve is refused */
        st = mp_db_exec(
            NULL, db, "INSERT INTO product.stock_orders (order_id, state, released_at) VALUES ($1, 'released', now())",
            1, MP_DB_PARAMS(order_id));
    } else if (st == MP_OK && strcmp(o.state, "reserved") == 0) {
        /* lock the rows in product-id order, as reserve does, so the two cannot deadlock */
        st = mp_db_exec(&res, db,
                        "SELECT p.id FROM product.products p JOIN product.reservations r ON r.product_id = p.id "
                        "WHERE r.order_id = $1 ORDER BY p.id FOR UPDATE OF p",
                        1, MP_DB_PARAMS(order_id));
        if (st == MP_OK)
            st = mp_db_exec(&back, db,
                            "UPDATE product.products p SET stock = p.stock + r.quantity, version = p.version + 1, "
                            "updated_at = now() FROM product.reservations r "
                            "WHERE r.order_id = $1 AND p.id = r.product_id RETURNING p.id, p.version",
                            1, MP_DB_PARAMS(order_id));
        if (st == MP_OK)
            st = mp_db_exec(NULL, db,
                            "UPDATE product.stock_orders SET state = 'released', released_at = now() "
                            "WHERE order_id = $1",
                            1, MP_DB_PARAMS(order_id));
        released = st == MP_OK;
    }
    if (st == MP_OK)
        st = mp_db_commit(db);
    mp_db_release(db);
    if (st == MP_OK && released) {
        for (int i = 0; i < mp_db_rows(back); i++)
            product_cache_invalidate(req->svc, mp_db_get(back, i, 0), mp_db_get(back, i, 1));
        mp_log_kv(MP_LOG_INFO, &req->log, "stock released", "order_id", order_id, NULL);
    }
    mp_db_res_free(res);
    mp_db_res_free(back);
    outcome_dispose(&o);
    if (st != MP_OK)
        return st;
    return mp_svc_reply_json(req, 200, json_pack("{s:s, s:b}", "order_id", order_id, "released", released));
}
