/*
 * product.c: Order's client for Product's internal operations
 * (product.v1.lookup, .reserve, .release), written to their contract and no
 * further: unknown fields are ignored, missing or mistyped ones we need make
 * the reply MP_EBADREPLY (logged, 502 to the client), and Product's own
 * 5xx, "no responders" and timeouts are MP_EUNAVAIL / MP_ETIMEDOUT, which the
 * caller may retry.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/json.h"
#include "order_int.h"

/* Maps a reply's Status to ours; 200 is MP_OK, `conflict_ok` lets 409 through as MP_ECONFLICT. */
static mp_status_t reply_status(mp_msg_t *reply, const char *op, bool conflict_ok)
{
    int status = mp_msg_status(reply);
    if (status == 200)
        return MP_OK;
    if (status == 409 && conflict_ok)
        return MP_ECONFLICT;
    if (status == 504)
        return mp_err_set(MP_ETIMEDOUT, "product.v1.%s timed out", op);
    if (status >= 500)
        return mp_err_set(MP_EUNAVAIL, "product.v1.%s answered %d", op, status);
    return mp_err_set(MP_EBADREPLY, "product.v1.%s answered %d", op, status);
}

static json_t *reply_json(mp_msg_t *reply)
{
    json_t *v = NULL;
    if (mp_json_parse(&v, mp_msg_data(reply), mp_msg_len(reply)) != MP_OK)
        return NULL;
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static bool currency_ok(const char *c)
{
    return c && strlen(c) == 3 && isupper((unsigned char)c[0]) && isupper((unsigned char)c[1]) &&
           isupper((unsigned char)c[2]);
}

/* Copies what we need from one looked-up product into every line that asked for it. */
static mp_status_t take_product(order_line_t *lines, size_t n, json_t *p)
{
    const char *id = mp_json_str(p, "id"), *name = mp_json_str(p, "name"), *sku = mp_json_str(p, "sku");
    json_t *price = json_object_get(p, "price"), *amount = json_object_get(price, "amount");
    const char *currency = mp_json_str(price, "currency");
    if (id == NULL)
        return mp_err_set(MP_EBADREPLY, "product.v1.lookup: an item has no id");
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(lines[i].product_id, id) != 0)
            continue;
        if (name == NULL || !json_is_integer(amount) || json_integer_value(amount) < 0 ||
            json_integer_value(amount) > ORDER_MAX_UNIT_AMOUNT || !currency_ok(currency))
            return mp_err_set(MP_EBADREPLY, "product.v1.lookup: product %s has no usable name or price", id);
        lines[i].found = true;
        lines[i].name = name;
        lines[i].sku = sku ? sku : "";
        lines[i].unit_amount = json_integer_value(amount);
        snprintf(lines[i].currency, sizeof(lines[i].currency), "%s", currency);
    }
    return MP_OK;
}

mp_status_t order_product_lookup(json_t **out, mp_svc_req_t *req, order_line_t *lines, size_t n)
{
    mp_msg_t *reply = NULL;
    json_t *ids = json_array(), *in = json_pack("{s:o}", "ids", ids), *v = NULL;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_string(lines[i].product_id));
    mp_status_t st = mp_svc_call(&reply, req, "product.v1.lookup", in, order_state.cfg.product_timeout_ms);
    json_decref(in);
    if (st == MP_OK)
        st = reply_status(reply, "lookup", false);
    if (st == MP_OK && (v = reply_json(reply)) == NULL)
        st = mp_err_set(MP_EBADREPLY, "product.v1.lookup: the reply is not a JSON object");
    json_t *items = json_object_get(v, "items"), *p;
    size_t i;
    if (st == MP_OK && !json_is_array(items))
        st = mp_err_set(MP_EBADREPLY, "product.v1.lookup: the reply has no items list");
    json_array_foreach(items, i, p)
    {
        if (st == MP_OK)
            st = take_product(lines, n, p);
    }
    mp_msg_destroy(reply);
    if (st != MP_OK) {
        json_decref(v);
        return st;
    }
    *out = v;
    return MP_OK;
}

mp_status_t order_product_reserve(json_t **problem, mp_svc_req_t *req, const char *order_id, const order_line_t *lines,
                                  size_t n)
{
    mp_msg_t *reply = NULL;
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s, s:I}", "product_id", lines[i].product_id, "quantity",
                                               (json_int_t)lines[i].quantity));
    json_t *in = json_pack("{s:s, s:o}", "order_id", order_id, "items", items);
    mp_status_t st = mp_svc_call(&reply, req, "product.v1.reserve", in, order_state.cfg.product_timeout_ms);
    json_decref(in);
    if (st == MP_OK)
        st = reply_status(reply, "reserve", true);
    if (st == MP_ECONFLICT) {
        *problem = reply_json(reply);
        if (*problem == NULL) /* a 409 without a problem body still means "not enough stock" */
            *problem = json_object();
    } else if (st == MP_OK) {
        json_t *v = reply_json(reply);
        if (v == NULL || json_is_false(json_object_get(v, "reserved")))
            st = mp_err_set(MP_EBADREPLY, "product.v1.reserve answered 200 without reserving");
        json_decref(v);
    }
    mp_msg_destroy(reply);
    return st;
}

mp_status_t order_product_release(mp_bus_t *bus, const char *order_id, const char *request_id)
{
    mp_msg_t *reply = NULL;
    json_t *in = json_pack("{s:s}", "order_id", order_id);
    char *body = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    mp_bus_call_t call = {.subject = "product.v1.release",
                          .body = body,
                          .len = strlen(body),
                          .ctx = {.request_id = request_id},
                          .timeout_ms = order_state.cfg.product_timeout_ms};
    mp_status_t st = mp_bus_request(&reply, bus, &call);
    free(body);
    int status = st == MP_OK ? mp_msg_status(reply) : 0;
    /* a refusal will not change by retrying (a timeout or rate limit might) */
    if (status >= 400 && status < 500 && status != 408 && status != 429)
        st = mp_err_set(MP_EINVAL, "product.v1.release refused the call with %d", status);
    else if (st == MP_OK)
        st = reply_status(reply, "release", false);
    mp_msg_destroy(reply);
    return st;
}
