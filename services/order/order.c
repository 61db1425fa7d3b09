/*
 * order.c: the Order service: settings, lifecycle (outbox and saga
 * consumers), and reading and cancelling orders. Placing one is create.c.
 *
 * An order is visible to its owner and to admins; to anyone else it does not
 * exist (404, never 403). Lists are keyset-paginated on (created_at, id),
 * newest first, with an opaque cursor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/cursor.h"
#include "mp/input.h"
#include "mp/page.h"
#include "order_int.h"

order_state_t order_state;

#define ORDER_JSON "SELECT \"order\".order_json(o)::text FROM \"order\".orders o "

static const char *admin_flag(mp_svc_req_t *req)
{
    return mp_svc_has_role(req, "admin") ? "true" : "false";
}

static mp_status_t reply_json_text(mp_svc_req_t *req, int status, const char *text)
{
    return mp_svc_reply_raw(req, status, "application/json", text, strlen(text));
}

/* Reads the one `id` path parameter; replies 400/422 and returns false when it is missing or malformed. */
static bool read_id(mp_svc_req_t *req, char id[37])
{
    mp_input_t in;
    mp_input_init(&in, req->input);
    mp_input_uuid(&in, "id", MP_IN_REQUIRED | MP_IN_PARAM, id);
    mp_input_only(&in, MP_INPUT_FIELDS("id"));
    if (!mp_input_ok(&in)) {
        mp_input_reply(req, &in);
        return false;
    }
    mp_input_dispose(&in);
    return true;
}

static mp_status_t order_get(mp_svc_req_t *req)
{
    char id[37];
    mp_db_res_t *res = NULL;
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to see your orders");
    if (!read_id(req, id))
        return MP_OK;
    mp_status_t st =
        mp_db_exec_once(&res, mp_svc_db(req->svc), ORDER_JSON "WHERE o.id = $1 AND (o.user_id = $2 OR $3::bool)", 3,
                        MP_DB_PARAMS(id, req->auth_sub, admin_flag(req)));
    if (st == MP_OK && mp_db_rows(res) == 0)
        st = mp_svc_reply_problem(req, 404, "no such order", NULL);
    else if (st == MP_OK) {
        mp_svc_reply_header(req, "Cache-Control", "private, no-store");
        st = reply_json_text(req, 200, mp_db_get(res, 0, 0));
    }
    mp_db_res_free(res);
    return st;
}

/* ---- list ------------------------------------------------------------------------------------ */

#define ORDER_LIST_KIND "order.list.v1"

#define ORDER_LIST_SELECT                                                                                              \
    "SELECT \"order\".order_json(o)::text, to_char(o.created_at AT TIME ZONE 'UTC', "                                  \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), o.id FROM \"order\".orders o "
#define ORDER_LIST_ORDER " ORDER BY o.created_at DESC, o.id DESC LIMIT "

static mp_status_t order_list(mp_svc_req_t *req)
{
    mp_input_t in;
    int64_t limit;
    const char *cursor, *after[2] = {NULL, NULL};
    char cbuf[600], lim[24];
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to see your orders");
    mp_input_init(&in, req->input);
    mp_input_page(&in, &limit, &cursor);
    mp_input_only(&in, MP_INPUT_FIELDS("limit", "cursor"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (cursor &&
        (mp_cursor_decode(after, 2, cbuf, sizeof(cbuf), ORDER_LIST_KIND, cursor) != MP_OK || !mp_uuid_valid(after[1])))
        return mp_svc_reply_problem(req, 400, "parameter cursor: not a cursor of this listing", NULL);
    snprintf(lim, sizeof(lim), "%lld", (long long)limit + 1); /* one more tells whether a next page exists */

    /* two statements, the first page and the pages after a cursor, so each keeps a plan that walks the index
     * (orders_by_user) from the right place; a "$2 IS NULL OR ..." catch-all gets one generic plan for both */
    mp_db_res_t *res = NULL;
    mp_status_t st = cursor
                         ? mp_db_exec_once(&res, mp_svc_db(req->svc),
                                           ORDER_LIST_SELECT "WHERE o.user_id = $1 AND (o.created_at, o.id) < "
                                                             "($2::timestamptz, $3::uuid)" ORDER_LIST_ORDER "$4::int",
                                           4, MP_DB_PARAMS(req->auth_sub, after[0], after[1], lim))
                         : mp_db_exec_once(&res, mp_svc_db(req->svc),
                                           ORDER_LIST_SELECT "WHERE o.user_id = $1" ORDER_LIST_ORDER "$2::int", 2,
                                           MP_DB_PARAMS(req->auth_sub, lim));
    if (st == MP_EINVAL) /* a forged cursor whose time does not parse */
        return mp_svc_reply_problem(req, 400, "parameter cursor: not a cursor of this listing", NULL);
    if (st != MP_OK)
        return st;
    mp_svc_reply_header(req, "Cache-Control", "private, no-store");
    st = mp_svc_reply_page(req, res, limit, ORDER_LIST_KIND, (mp_page_cols_t){.json = 0, .key = 1, .id = 2});
    mp_db_res_free(res);
    return st;
}

/* ---- cancel ---------------------------------------------------------------------------------- */

static mp_status_t order_cancel(mp_svc_req_t *req)
{
    char id[37];
    bool changed = false;
    mp_db_conn_t *tx = NULL;
    mp_db_res_t *res = NULL;
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to cancel an order");
    if (!read_id(req, id))
        return MP_OK;
    const char *owner = mp_svc_has_role(req, "admin") ? NULL : req->auth_sub;
    mp_status_t st = mp_db_acquire(&tx, mp_svc_db(req->svc), 3000);
    if (st == MP_OK)
        st = mp_db_begin(tx);
    /* the stock comes back through events.order.cancelled (saga.c), retried until Product answers */
    if (st == MP_OK)
        st = order_transition(&changed, tx, id, owner, "cancelled", "user", "order_cancelled");
    if (st == MP_OK)
        st = mp_db_exec(&res, tx, ORDER_JSON "WHERE o.id = $1 AND (o.user_id = $2 OR $3::bool)", 3,
                        MP_DB_PARAMS(id, req->auth_sub, admin_flag(req)));
    if (st == MP_OK && changed)
        st = mp_db_commit(tx);
    mp_db_release(tx);
    if (st == MP_OK && mp_db_rows(res) == 0)
        st = mp_svc_reply_problem(req, 404, "no such order", NULL);
    else if (st == MP_OK && !changed)
        st = mp_svc_reply_problem(req, 409, "only a pending order can be cancelled", NULL);
    else if (st == MP_OK) {
        mp_outbox_kick(order_state.outbox);
        mp_log_kv(MP_LOG_INFO, &req->log, "order cancelled", "order_id", id, "by", req->auth_sub, NULL);
        st = reply_json_text(req, 200, mp_db_get(res, 0, 0));
    }
    mp_db_res_free(res);
    return st;
}

/* ---- the service ---------------------------------------------------------------------------- */

static void order_configure(mp_svc_t *svc, mp_cfg_t *cfg)
{
    order_settings_t *c = &order_state.cfg;
    c->max_items = (int)mp_cfg_int(cfg, "order.max_items", 50, 1, 100);
    c->product_timeout_ms = (int)mp_cfg_duration_ms(cfg, "order.product_timeout", 2000, 100, 30000);
    c->idempotency_ttl_ms = mp_cfg_duration_ms(cfg, "order.idempotency_ttl", 86400000LL, 86400000LL, 30LL * 86400000);
    c->consumer_workers = (int)mp_cfg_int(cfg, "order.consumer_workers", 2, 1, 32);
    c->abandoned_claim_ms = mp_cfg_duration_ms(cfg, "order.abandoned_claim_after", 600000, 1000, 86400000LL);
}

static mp_status_t order_init(mp_svc_t *svc)
{
    order_state.svc = svc;
    mp_outbox_opts_t o = {.bus = mp_svc_bus(svc), .db = mp_svc_db(svc), .schema = ORDER_SCHEMA};
    return mp_outbox_start(&order_state.outbox, &o);
}

static mp_status_t order_start(mp_svc_t *svc)
{
    mp_status_t st = order_saga_start(&order_state);
    return st == MP_OK ? order_idem_janitor_start(&order_state) : st;
}

static void order_stop(mp_svc_t *svc)
{
    order_idem_janitor_stop(&order_state);
    order_saga_stop(&order_state);
}

/* after the workers drained: nothing kicks the outbox any more */
static void order_fini(mp_svc_t *svc)
{
    mp_outbox_stop(order_state.outbox);
    order_state.outbox = NULL;
}

static const mp_endpoint_t order_endpoints[] = {
    {"create", order_create}, {"get", order_get}, {"list", order_list}, {"cancel", order_cancel}, {NULL},
};

MP_SERVICE(order, .endpoints = order_endpoints, .needs = MP_NEEDS_DB, .configure = order_configure, .init = order_init,
           .start = order_start, .stop = order_stop, .fini = order_fini);
