/*
 * saga.c: the order side of the payment saga (docs/payments.md).
 *
 *   events.payment.succeeded -> pending order confirmed     + events.order.confirmed
 *   events.payment.failed    -> pending order cancelled     + events.order.cancelled
 *   events.payment.refunded  -> (a cancelled order's charge was returned)
 *   each of these            -> events.notification.requested for the owner
 *   events.order.cancelled   -> product.v1.release (stock back), retried until Product answers
 *
 * Every status change is a compare-and-set on `pending` in the same
 * transaction as its events and the consumer's handled-mark, so a
 * redelivered or late event changes nothing twice: a payment that succeeds
 * after its order was cancelled leaves the order cancelled, and the payment
 * role refunds it when it sees events.order.cancelled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/input.h"
#include "mp/json.h"
#include "order_int.h"

static json_t *money(const char *amount, const char *currency)
{
    return json_pack("{s:I, s:s}", "amount", (json_int_t)strtoll(amount, NULL, 10), "currency", currency);
}

/* events.notification.requested for the order's owner. */
static mp_status_t request_notification(mp_db_conn_t *tx, const char *user_id, const char *locale,
                                        const char *template_name, json_t *data)
{
    json_t *ev = json_pack("{s:s, s:s, s:s?, s:O}", "user_id", user_id, "template", template_name, "locale", locale,
                           "data", data);
    mp_status_t st = mp_outbox_add(tx, ORDER_SCHEMA, "events.notification.requested", "notification.requested", ev);
    json_decref(ev);
    return st;
}

mp_status_t order_transition(bool *changed, mp_db_conn_t *tx, const char *order_id, const char *owner,
                             const char *status, const char *reason, const char *template_name)
{
    mp_db_res_t *res = NULL;
    char subject[64], type[64];
    *changed = false;
    mp_status_t st = mp_db_exec(&res, tx,
                                "UPDATE \"order\".orders SET status = $2, cancel_reason = $3, updated_at = now() "
                                "WHERE id = $1 AND status = 'pending' AND ($4::text IS NULL OR user_id = $4) "
                                "RETURNING user_id, locale, total_amount, currency",
                                4, MP_DB_PARAMS(order_id, status, reason, owner));
    if (st != MP_OK || mp_db_rows(res) == 0) {
        mp_db_res_free(res);
        return st;
    }
    const char *user_id = mp_db_get(res, 0, 0), *locale = mp_db_get(res, 0, 1);
    json_t *total = money(mp_db_get(res, 0, 2), mp_db_get(res, 0, 3));
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s?, s:O}", "order_id", order_id, "user_id", user_id, "status", status,
                           "reason", reason, "total", total);
    json_t *note = json_pack("{s:s, s:s?, s:O}", "order_id", order_id, "reason", reason, "total", total);
    snprintf(subject, sizeof(subject), "events.order.%s", status);
    snprintf(type, sizeof(type), "order.%s", status);
    st = mp_outbox_add(tx, ORDER_SCHEMA, subject, type, ev);
    if (st == MP_OK)
        st = request_notification(tx, user_id, locale, template_name, note);
    *changed = st == MP_OK;
    json_decref(ev);
    json_decref(note);
    json_decref(total);
    mp_db_res_free(res);
    return st;
}

/* events.payment.refunded: tell the owner their money is on its way back. */
static mp_status_t notify_refund(mp_db_conn_t *tx, const char *order_id)
{
    mp_db_res_t *res = NULL;
    mp_status_t st =
        mp_db_exec(&res, tx, "SELECT user_id, locale, total_amount, currency FROM \"order\".orders WHERE id = $1", 1,
                   MP_DB_PARAMS(order_id));
    if (st == MP_OK && mp_db_rows(res) == 1) {
        json_t *data =
            json_pack("{s:s, s:o}", "order_id", order_id, "total", money(mp_db_get(res, 0, 2), mp_db_get(res, 0, 3)));
        st = request_notification(tx, mp_db_get(res, 0, 0), mp_db_get(res, 0, 1), "payment_refunded", data);
        json_decref(data);
    }
    mp_db_res_free(res);
    return st;
}

static mp_status_t on_payment_event(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev)
{
    const char *order_id = mp_json_str(ev->data, "order_id");
    mp_db_conn_t *tx = NULL;
    bool changed = false;
    int kind = strcmp(ev->type, "payment.succeeded") == 0  ? 1
               : strcmp(ev->type, "payment.failed") == 0   ? 2
               : strcmp(ev->type, "payment.refunded") == 0 ? 3
                                                           : 0;
    if (kind == 0)
        return MP_OK; /* not ours to act on */
    if (!mp_uuid_valid(order_id))
        return mp_err_set(MP_EINVAL, "%s without an order_id", ev->type);
    mp_status_t st = mp_consumer_begin(&tx, m);
    if (st == MP_ECONFLICT)
        return MP_OK;
    if (st != MP_OK)
        return st;
    if (kind == 1)
        st = order_transition(&changed, tx, order_id, NULL, "confirmed", NULL, "order_confirmed");
    else if (kind == 2)
        st = order_transition(&changed, tx, order_id, NULL, "cancelled", "payment_failed", "order_payment_failed");
    else
        st = notify_refund(tx, order_id);
    if (st == MP_OK && kind != 3)
        mp_log_kv(MP_LOG_INFO, &(mp_log_ctx_t){.request_id = ev->id},
                  changed ? "order status changed by payment" : "payment outcome for an order no longer pending",
                  "order_id", order_id, "event", ev->type, NULL);
    return st;
}

static mp_status_t on_order_cancelled(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev)
{
    const char *order_id = mp_json_str(ev->data, "order_id");
    if (!mp_uuid_valid(order_id))
        return mp_err_set(MP_EINVAL, "order.cancelled without an order_id");
    /* release is idempotent per order id, so a redelivery may call it again: no handled-mark needed */
    mp_status_t st = order_product_release(mp_svc_bus(order_state.svc), order_id, ev->id);
    if (st == MP_OK)
        mp_log_kv(MP_LOG_INFO, &(mp_log_ctx_t){.request_id = ev->id}, "stock released", "order_id", order_id, NULL);
    return st;
}

static void kick_outbox(void *arg)
{
    mp_outbox_kick(((order_state_t *)arg)->outbox);
}

static mp_status_t start_one(mp_consumer_t **out, order_state_t *s, const char *durable, const char *filter,
                             mp_consumer_fn fn)
{
    mp_consumer_opts_t o = {.bus = mp_svc_bus(s->svc),
                            .db = mp_svc_db(s->svc),
                            .schema = ORDER_SCHEMA,
                            .durable = durable,
                            .filter = filter,
                            .handler = fn,
                            .arg = s,
                            .after_commit = kick_outbox,
                            .log_service = "order",
                            .workers = s->cfg.consumer_workers};
    return mp_consumer_start(out, &o);
}

mp_status_t order_saga_start(order_state_t *s)
{
    mp_status_t st = start_one(&s->payments, s, "order", "events.payment.*", on_payment_event);
    if (st == MP_OK)
        st = start_one(&s->releases, s, "order_release", "events.order.cancelled", on_order_cancelled);
    return st;
}

void order_saga_stop(order_state_t *s)
{
    mp_consumer_stop(s->payments);
    mp_consumer_stop(s->releases);
    s->payments = s->releases = NULL;
}
