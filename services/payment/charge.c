/*
 * charge.c: the payment step of the order saga (docs/payments.md).
 *
 * events.order.created: claim the order's payment row (unique order id), so
 * concurrent or repeated deliveries agree on one payment; charge through the
 * adapter, retrying transient errors with exponential backoff and jitter up
 * to payment.max_attempts calls; then, in one transaction, record the answer
 * (compare-and-set on `pending`), write events.payment.succeeded or .failed
 * to the outbox and mark the event handled. When the provider stays
 * unavailable the event is put back (nak with backoff) and the same charge is
 * tried again later under the same idempotency key.
 *
 * events.order.cancelled: no charge yet -> the row is written `voided`, so
 * none will be made; a charge in flight -> put back until it has an answer;
 * charged -> refunded, and events.payment.refunded written.
 *
 * The provider call never runs inside a database transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mp/fiber.h"
#include "mp/input.h"
#include "mp/json.h"
#include "mp/metrics.h"
#include "mp/reqctx.h"
#include "payment_int.h"

typedef struct order_ref {
    const char *order_id, *user_id, *currency;
    int64_t amount;
    char amount_s[24];
} order_ref_t;

/* The order fields both events carry; false when the event breaks its contract. */
static bool read_order(order_ref_t *o, const mp_event_t *ev)
{
    json_t *total = json_object_get(ev->data, "total"), *amount = json_object_get(total, "amount");
    o->order_id = mp_json_str(ev->data, "order_id");
    o->user_id = mp_json_str(ev->data, "user_id");
    o->currency = mp_json_str(total, "currency");
    if (!mp_uuid_valid(o->order_id) || o->user_id == NULL || o->currency == NULL || !json_is_integer(amount))
        return false;
    o->amount = json_integer_value(amount);
    snprintf(o->amount_s, sizeof(o->amount_s), "%lld", (long long)o->amount);
    return true;
}

static void count_outcome(const char *outcome)
{
    /* a cold path: the registry lookup (thread-safe) each time keeps this free of shared state */
    mp_metric_add(mp_metrics_counter("moonport_payments_total", "Payment outcomes by kind", "outcome"),
                  MP_LABELS(outcome), 1);
}

/* Calls the provider until it answers or the attempts run out; returns the calls made. */
static int call_provider(pay_result_t *r, mp_consumer_msg_t *m, const pay_charge_t *c, const char *refund_of)
{
    const payment_settings_t *cfg = &payment_state.cfg;
    int64_t wait = cfg->retry_base_ms;
    for (int attempt = 1;; attempt++) {
        if (refund_of)
            payment_state.adapter->refund(r, c, refund_of);
        else
            payment_state.adapter->charge(r, c);
        if (r->outcome != PAY_RETRY || attempt >= cfg->max_attempts)
            return attempt;
        mp_consumer_progress(m); /* still working on it: no redelivery meanwhile */
        /* full jitter on the upper half, so retries of many orders spread out */
        mp_fiber_sleep((int)(wait / 2 + (int64_t)(mp_rand64() % (uint64_t)(wait / 2 + 1))));
        wait = wait * 2 > cfg->retry_max_ms ? cfg->retry_max_ms : wait * 2;
    }
}

static mp_status_t record_attempts(const char *order_id, int calls, const char *reason)
{
    char n[12];
    snprintf(n, sizeof(n), "%d", calls);
    return mp_db_exec_once(NULL, mp_svc_db(payment_state.svc),
                           "UPDATE payment.payments SET attempts = attempts + $2::int, failure_reason = $3, "
                           "updated_at = now() WHERE order_id = $1 AND status = 'pending'",
                           3, MP_DB_PARAMS(order_id, n, reason));
}

/* Writes a payment event for the row `payment_id`. */
static mp_status_t payment_event(mp_db_conn_t *tx, const char *type, const char *payment_id, const order_ref_t *o,
                                 const char *reason)
{
    char subject[64];
    snprintf(subject, sizeof(subject), "events.%s", type);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:{s:I, s:s}, s:s?}", "payment_id", payment_id, "order_id", o->order_id, "user_id",
                  o->user_id, "amount", "amount", (json_int_t)o->amount, "currency", o->currency, "reason", reason);
    mp_status_t st = mp_outbox_add(tx, PAYMENT_SCHEMA, subject, type, data);
    json_decref(data);
    return st;
}

/* The payment's status now, or "" when the order has none. */
static mp_status_t current(char status[16], char ref[64], const char *order_id)
{
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(payment_state.svc),
                                     "SELECT status, coalesce(provider_ref, '') FROM payment.payments "
                                     "WHERE order_id = $1",
                                     1, MP_DB_PARAMS(order_id));
    if (st == MP_OK) {
        snprintf(status, 16, "%s", mp_db_rows(res) ? mp_db_get(res, 0, 0) : "");
        snprintf(ref, 64, "%s", mp_db_rows(res) ? mp_db_get(res, 0, 1) : "");
    }
    mp_db_res_free(res);
    return st;
}

/* Marks the event handled with nothing else to do. */
static mp_status_t nothing_to_do(mp_consumer_msg_t *m)
{
    mp_db_conn_t *tx = NULL;
    mp_status_t st = mp_consumer_begin(&tx, m);
    return st == MP_ECONFLICT ? MP_OK : st;
}

static mp_status_t on_created(mp_consumer_msg_t *m, const mp_event_t *ev)
{
    order_ref_t o;
    pay_result_t r;
    char status[16], ref[64];
    const char *token = mp_json_str(ev->data, "payment_token");
    if (!read_order(&o, ev) || token == NULL)
        return mp_err_set(MP_EINVAL, "order.created without order_id, user_id, total or payment_token");
    mp_status_t st =
        mp_db_exec_once(NULL, mp_svc_db(payment_state.svc),
                        "INSERT INTO payment.payments (order_id, user_id, amount, currency, provider, "
                        "status) VALUES ($1, $2, $3::bigint, $4, $5, 'pending') ON CONFLICT DO NOTHING",
                        5, MP_DB_PARAMS(o.order_id, o.user_id, o.amount_s, o.currency, payment_state.adapter->name));
    if (st == MP_OK)
        st = current(status, ref, o.order_id);
    if (st != MP_OK)
        return st;
    if (strcmp(status, "pending") != 0) /* answered before (its event went out with it), or voided */
        return nothing_to_do(m);

    pay_charge_t c = {
        .order_id = o.order_id, .user_id = o.user_id, .amount = o.amount, .currency = o.currency, .token = token};
    int calls = call_provider(&r, m, &c, NULL);
    if (r.outcome == PAY_RETRY) {
        record_attempts(o.order_id, calls, r.reason);
        count_outcome("retry_later");
        return mp_err_set(MP_EUNAVAIL, "the payment provider is unavailable (%s) after %d calls", r.reason, calls);
    }
    mp_db_conn_t *tx = NULL;
    mp_db_res_t *res = NULL;
    char n[12];
    bool ok = r.outcome == PAY_SUCCEEDED;
    snprintf(n, sizeof(n), "%d", calls);
    st = mp_consumer_begin(&tx, m);
    if (st == MP_ECONFLICT)
        return MP_OK;
    if (st == MP_OK)
        st = mp_db_exec(&res, tx,
                        "UPDATE payment.payments SET status = $2, provider_ref = nullif($3, ''), failure_reason = "
                        "nullif($4, ''), attempts = attempts + $5::int, updated_at = now() "
                        "WHERE order_id = $1 AND status = 'pending' RETURNING id",
                        5, MP_DB_PARAMS(o.order_id, ok ? "succeeded" : "failed", r.provider_ref, r.reason, n));
    if (st == MP_OK && mp_db_rows(res) == 1)
        st = payment_event(tx, ok ? "payment.succeeded" : "payment.failed", mp_db_get(res, 0, 0), &o,
                           ok ? NULL : r.reason);
    if (st == MP_OK && mp_db_rows(res) == 1) {
        count_outcome(ok ? "succeeded" : "failed");
        mp_log_kv(MP_LOG_INFO, &(mp_log_ctx_t){.request_id = ev->id}, ok ? "payment succeeded" : "payment declined",
                  "order_id", o.order_id, "reason", ok ? NULL : r.reason, NULL);
    }
    mp_db_res_free(res);
    return st;
}

static mp_status_t on_cancelled(mp_consumer_msg_t *m, const mp_event_t *ev)
{
    order_ref_t o;
    pay_result_t r;
    char status[16], ref[64];
    mp_db_conn_t *tx = NULL;
    mp_db_res_t *res = NULL;
    if (!read_order(&o, ev))
        return mp_err_set(MP_EINVAL, "order.cancelled without order_id, user_id or total");
    mp_status_t st = current(status, ref, o.order_id);
    if (st != MP_OK)
        return st;
    if (strcmp(status, "pending") == 0)
        return mp_err_set(MP_EUNAVAIL, "a charge for this order is in flight; deciding after it");
    if (*status == '\0') {
        /* not charged yet, and now never will be: order.created finds the row voided */
        if ((st = mp_consumer_begin(&tx, m)) == MP_OK)
            st =
                mp_db_exec(&res, tx,
                           "INSERT INTO payment.payments (order_id, user_id, amount, currency, provider, status) "
                           "VALUES ($1, $2, $3::bigint, $4, $5, 'voided') ON CONFLICT DO NOTHING",
                           5, MP_DB_PARAMS(o.order_id, o.user_id, o.amount_s, o.currency, payment_state.adapter->name));
        if (st == MP_OK && mp_db_affected(res) == 0) /* a charge was claimed meanwhile: look again later */
            st = mp_err_set(MP_EUNAVAIL, "a charge for this order started meanwhile");
        mp_db_res_free(res);
        return st == MP_ECONFLICT ? MP_OK : st;
    }
    if (strcmp(status, "succeeded") != 0) /* failed, voided or refunded already */
        return nothing_to_do(m);

    pay_charge_t c = {.order_id = o.order_id, .user_id = o.user_id, .amount = o.amount, .currency = o.currency};
    call_provider(&r, m, &c, ref);
    if (r.outcome != PAY_SUCCEEDED)
        return mp_err_set(MP_EUNAVAIL, "the refund did not go through (%s); trying again later", r.reason);
    st = mp_consumer_begin(&tx, m);
    if (st == MP_ECONFLICT)
        return MP_OK;
    if (st == MP_OK)
        st = mp_db_exec(&res, tx,
                        "UPDATE payment.payments SET status = 'refunded', updated_at = now() "
                        "WHERE order_id = $1 AND status = 'succeeded' RETURNING id",
                        1, MP_DB_PARAMS(o.order_id));
    if (st == MP_OK && mp_db_rows(res) == 1) {
        st = payment_event(tx, "payment.refunded", mp_db_get(res, 0, 0), &o, NULL);
        count_outcome("refunded");
        mp_log_kv(MP_LOG_INFO, &(mp_log_ctx_t){.request_id = ev->id}, "payment refunded", "order_id", o.order_id, NULL);
    }
    mp_db_res_free(res);
    return st;
}

mp_status_t payment_on_order_event(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev)
{
    if (strcmp(ev->type, "order.created") == 0)
        return on_created(m, ev);
    if (strcmp(ev->type, "order.cancelled") == 0)
        return on_cancelled(m, ev);
    return MP_OK; /* order.confirmed and others: nothing for payments to do */
}
