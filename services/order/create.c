/*
 * create.c: POST /v1/orders (order.v1.create).
 *
 * The request names products and quantities only; prices come from
 * product.v1.lookup. The sequence, after the Idempotency-Key is claimed:
 * price the lines, reserve the stock (Product, all or nothing, idempotent per
 * order id), then one transaction writes the order, its items, the
 * events.order.created event (which starts the payment saga) and the stored
 * response for the key. Once the reserve has been sent, any failure (its
 * reply lost, the transaction failing) releases the order id's stock; only
 * then is the claim dropped. When the release fails too, the claim is kept,
 * marked release_pending, and the janitor or the key's retry releases it
 * first (idempotency.c): no reservation outlives its order.
 *
 * The payment token travels in the event to the payment role and is not
 * stored anywhere else in Order; it is never logged. The order remembers
 * its owner's language (profile locale, else Accept-Language) for the
 * notifications it will cause.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/input.h"
#include "mp/json.h"
#include "order_int.h"

/* The language notifications about this order are written in: the caller's profile locale (User) when they set one,
 * else their request's Accept-Language. Best effort: the order never waits long or fails for it. */
static bool caller_locale(char out[8], mp_svc_req_t *req)
{
    mp_msg_t *reply = NULL;
    json_t *in = json_object(), *profile = NULL;
    bool found = false;
    if (mp_svc_call(&reply, req, "user.v1.get", in, 500) == MP_OK && mp_msg_status(reply) == 200 &&
        mp_json_parse(&profile, mp_msg_data(reply), mp_msg_len(reply)) == MP_OK)
        found = order_locale(out, mp_json_str(profile, "locale"));
    json_decref(profile);
    json_decref(in);
    mp_msg_destroy(reply);
    return found || order_locale(out, mp_svc_header(req, "Accept-Language"));
}

/* Reads the `items` list into lines; every problem is recorded with its JSON pointer. */
static order_line_t *read_lines(mp_input_t *in, json_t *items, size_t *n)
{
    size_t count = items ? json_array_size(items) : 0, i;
    json_t *it;
    *n = 0;
    if (items == NULL)
        return NULL;
    if (count == 0 || count > (size_t)order_state.cfg.max_items) {
        mp_input_fail(in, "items", "must list 1 to %d products", order_state.cfg.max_items);
        return NULL;
    }
    order_line_t *lines = mp_xcalloc(count, sizeof(*lines));
    json_array_foreach(items, i, it)
    {
        char ptr[48];
        mp_input_t line;
        mp_input_init(&line, json_is_object(it) ? it : NULL);
        if (!json_is_object(it)) {
            snprintf(ptr, sizeof(ptr), "/items/%zu", i);
            mp_problem_add(&in->errs, ptr, "must be an object {product_id, quantity}");
            continue;
        }
        mp_input_uuid(&line, "product_id", MP_IN_REQUIRED, lines[i].product_id);
        mp_input_int(&line, "quantity", MP_IN_REQUIRED, 1, ORDER_MAX_QUANTITY, &lines[i].quantity);
        mp_input_only(&line, MP_INPUT_FIELDS("product_id", "quantity"));
        for (size_t j = 0; j < i && lines[i].product_id[0]; j++)
            if (strcmp(lines[j].product_id, lines[i].product_id) == 0)
                mp_input_fail(&line, "product_id", "is listed twice; put the whole quantity on one line");
        /* the line's own pointers ("/quantity") become "/items/<i>/quantity" */
        json_t *e;
        size_t k;
        json_array_foreach(line.errs.list, k, e)
        {
            snprintf(ptr, sizeof(ptr), "/items/%zu%s", i, mp_json_str(e, "pointer"));
            mp_problem_add(&in->errs, ptr, "%s", mp_json_str(e, "detail"));
        }
        mp_input_dispose(&line);
    }
    *n = count;
    return lines;
}

/* Checks what Product said against the request: every product exists, one currency. Replies 422 when not. */
static bool priced(mp_svc_req_t *req, const order_line_t *lines, size_t n)
{
    mp_problem_errors_t errs = {0};
    for (size_t i = 0; i < n; i++) {
        char ptr[48];
        snprintf(ptr, sizeof(ptr), "/items/%zu/product_id", i);
        if (!lines[i].found)
            mp_problem_add(&errs, ptr, "no such product");
        else if (lines[0].found && strcmp(lines[i].currency, lines[0].currency) != 0)
            mp_problem_add(&errs, ptr, "is priced in %s, the order in %s: one order, one currency", lines[i].currency,
                           lines[0].currency);
    }
    if (mp_problem_count(&errs) == 0)
        return true;
    mp_svc_reply_problem(req, 422, "the order cannot be priced", &errs);
    return false;
}

/* Answers Product's 409 with its detail and its pointers, which index the same `items`. */
static mp_status_t reply_out_of_stock(mp_svc_req_t *req, json_t *problem)
{
    mp_problem_errors_t errs = {0};
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(problem, "errors"), i, e)
    {
        const char *ptr = mp_json_str(e, "pointer"), *detail = mp_json_str(e, "detail");
        if (ptr && detail && strncmp(ptr, "/items/", 7) == 0)
            mp_problem_add(&errs, ptr, "%s", detail);
    }
    const char *detail = mp_json_str(problem, "detail");
    return mp_svc_reply_problem(req, 409, detail ? detail : "not enough stock for this order", &errs);
}

static json_t *money(int64_t amount, const char *currency)
{
    return json_pack("{s:I, s:s}", "amount", (json_int_t)amount, "currency", currency);
}

/* Writes the order, its items, its event and the key's response in one transaction. `*body` gets the response. */
static mp_status_t save(char **body, mp_svc_req_t *req, const order_idem_t *k, const order_line_t *lines, size_t n,
                        const char *token)
{
    char locale[8], total_s[24];
    bool has_locale = caller_locale(locale, req);
    int64_t total = 0;
    json_t *rows = json_array(), *ev_items = json_array();
    for (size_t i = 0; i < n; i++) {
        total += lines[i].unit_amount * lines[i].quantity;
        json_array_append_new(rows,
                              json_pack("{s:I, s:s, s:s, s:s, s:I, s:I}", "position", (json_int_t)i, "product_id",
                                        lines[i].product_id, "sku", lines[i].sku, "name", lines[i].name, "unit_amount",
                                        (json_int_t)lines[i].unit_amount, "quantity", (json_int_t)lines[i].quantity));
        json_array_append_new(ev_items, json_pack("{s:s, s:I, s:o}", "product_id", lines[i].product_id, "quantity",
                                                  (json_int_t)lines[i].quantity, "unit_price",
                                                  money(lines[i].unit_amount, lines[i].currency)));
    }
    snprintf(total_s, sizeof(total_s), "%lld", (long long)total);
    json_t *event = json_pack("{s:s, s:s, s:o, s:o, s:s, s:s?}", "order_id", k->order_id, "user_id", k->user_id,
                              "items", ev_items, "total", money(total, lines[0].currency), "payment_token", token,
                              "locale", has_locale ? locale : NULL);
    char *rows_text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);

    mp_db_conn_t *tx = NULL;
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_acquire(&tx, mp_svc_db(req->svc), 3000);
    if (st == MP_OK)
        st = mp_db_begin(tx);
    if (st == MP_OK)
        st = mp_db_exec(NULL, tx,
                        "INSERT INTO \"order\".orders (id, user_id, status, currency, total_amount, locale) "
                        "VALUES ($1, $2, 'pending', $3, $4::bigint, $5)",
                        5,
                        MP_DB_PARAMS(k->order_id, k->user_id, lines[0].currency, total_s, has_locale ? locale : NULL));
    if (st == MP_OK)
        st = mp_db_exec(NULL, tx,
                        "INSERT INTO \"order\".order_items (order_id, position, product_id, sku, name, unit_amount, "
                        "quantity, line_amount) SELECT $1, x.position, x.product_id, x.sku, x.name, x.unit_amount, "
                        "x.quantity, x.unit_amount * x.quantity FROM jsonb_to_recordset($2::jsonb) AS x(position int, "
                        "product_id uuid, sku text, name text, unit_amount bigint, quantity int)",
                        2, MP_DB_PARAMS(k->order_id, rows_text));
    if (st == MP_OK)
        st = mp_outbox_add(tx, ORDER_SCHEMA, "events.order.created", "order.created", event);
    if (st == MP_OK)
        st = mp_db_exec(&res, tx, "SELECT \"order\".order_json(o)::text FROM \"order\".orders o WHERE o.id = $1", 1,
                        MP_DB_PARAMS(k->order_id));
    if (st == MP_OK)
        st = order_idem_store(tx, k, 201, mp_db_get(res, 0, 0));
    if (st == MP_OK)
        st = mp_db_commit(tx);
    if (st == MP_OK)
        *body = mp_xstrdup(mp_db_get(res, 0, 0));
    mp_db_res_free(res);
    mp_db_release(tx);
    free(rows_text);
    json_decref(event);
    return st;
}

/* Everything after the key is ours. Returns MP_OK having replied, or an error with nothing left behind. */
static mp_status_t place(bool *created, bool *in_doubt, mp_svc_req_t *req, const order_idem_t *k, order_line_t *lines,
                         size_t n, const char *token)
{
    json_t *catalog = NULL, *problem = NULL;
    char *body = NULL;
    mp_status_t st = order_product_lookup(&catalog, req, lines, n);
    if (st != MP_OK)
        return st;
    if (!priced(req, lines, n)) {
        json_decref(catalog);
        return MP_OK;
    }
    st = order_product_reserve(&problem, req, k->order_id, lines, n);
    if (st == MP_ECONFLICT) {
        st = reply_out_of_stock(req, problem);
        json_decref(problem);
        json_decref(catalog);
        return st;
    }
    /* from here on Product may hold stock for this order id even when the reserve failed (its reply can be lost
     * after it reserved): every failure gives the stock back, or says it could not */
    if (st != MP_OK || (st = save(&body, req, k, lines, n, token)) != MP_OK) {
        char why[256];
        snprintf(why, sizeof(why), "%s", mp_err_get());
        if (order_product_release(mp_svc_bus(req->svc), k->order_id, req->log.request_id) != MP_OK) {
            *in_doubt = true;
            mp_log_kv(MP_LOG_WARN, &req->log,
                      "order not placed and its reservation not released yet; kept for "
                      "the janitor",
                      "order_id", k->order_id, "error", mp_err_get(), NULL);
        }
        mp_err_set(st == MP_EBADREPLY ? MP_EUNAVAIL : st, "%s", why);
    }
    json_decref(catalog);
    if (st != MP_OK)
        return st;
    *created = true;
    mp_outbox_kick(order_state.outbox);
    char location[64];
    snprintf(location, sizeof(location), "/v1/orders/%s", k->order_id);
    mp_svc_reply_header(req, "Location", location);
    mp_log_kv(MP_LOG_INFO, &req->log, "order placed", "order_id", k->order_id, "user_id", k->user_id, NULL);
    st = mp_svc_reply_raw(req, 201, "application/json", body, strlen(body));
    free(body);
    return st;
}

mp_status_t order_create(mp_svc_req_t *req)
{
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to place an order");
    if (!order_idem_header_ok(req))
        return MP_OK;
    mp_input_t in;
    size_t n = 0;
    mp_input_init(&in, req->input);
    json_t *items = mp_input_json(&in, "items", MP_IN_REQUIRED, JSON_ARRAY);
    const char *token = mp_input_str(&in, "payment_token", MP_IN_REQUIRED, 1, 255);
    mp_input_only(&in, MP_INPUT_FIELDS("items", "payment_token"));
    order_line_t *lines = read_lines(&in, items, &n);
    if (!mp_input_ok(&in)) {
        free(lines);
        return mp_input_reply(req, &in);
    }
    mp_input_dispose(&in);

    order_idem_t k;
    bool mine = false, created = false, in_doubt = false;
    mp_status_t st = order_idem_claim(&mine, &k, req);
    if (st == MP_OK && mine) {
        st = place(&created, &in_doubt, req, &k, lines, n, token);
        if (in_doubt) /* the key is kept until that stock is given back (janitor, or the key's next retry) */
            order_idem_hold_for_release(req->svc, &k);
        else if (!created) /* a refusal or a failure with nothing held: the key may be used again */
            order_idem_abandon(req->svc, &k);
    }
    free(lines);
    return st;
}
