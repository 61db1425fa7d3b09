/*
 * cases_saga.c: the payment saga end to end inside one process: confirmed
 * with a notification, declined and cancelled with the stock back, transient
 * provider errors retried, a cancel racing a slow charge (voided or
 * refunded, never kept), and a payment event delivered twice changing
 * nothing twice. Registered in test_saga.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/events.h"
#include "mp/json.h"
#include "saga_env.h"

static void id_of(char out[37], const env_reply_t *r)
{
    assert_non_null(mp_json_str(r->body, "id"));
    snprintf(out, 37, "%s", mp_json_str(r->body, "id"));
}

void test_saga_paid_order_is_confirmed_and_notified(void **state)
{
    char user[37], key[37], id[37];
    env_uuid(user);
    env_uuid(key);
    int64_t before1 = fake_product_available(env_product, env_p1),
            before2 = fake_product_available(env_product, env_p2);
    env_reply_t r = env_order(user, key, 2, 3, "tok_ok");
    assert_int_equal(r.status, 201);
    id_of(id, &r);
    assert_string_equal(mp_json_str(r.body, "status"), "pending");
    /* the prices are Product's: 2 x 12.50 + 3 x 3.99 = 36.97 EUR */
    json_t *total = json_object_get(r.body, "total"), *items = json_object_get(r.body, "items");
    assert_int_equal(json_integer_value(json_object_get(total, "amount")), 2 * 1250 + 3 * 399);
    assert_string_equal(mp_json_str(total, "currency"), "EUR");
    assert_int_equal(json_array_size(items), 2);
    json_t *line = json_array_get(items, 0);
    assert_string_equal(mp_json_str(line, "name"), "Moon mug");
    assert_string_equal(mp_json_str(line, "sku"), "MUG-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(line, "unit_price"), "amount")), 1250);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(line, "line_total"), "amount")), 2500);
    assert_non_null(mp_json_str(r.body, "created_at"));
    char location[80];
    snprintf(location, sizeof(location), "/v1/orders/%s", id);
    assert_string_equal(r.location, location);
    env_reply_dispose(&r);
    /* reserved at once */
    assert_int_equal(fake_product_available(env_product, env_p1), before1 - 2);
    assert_int_equal(fake_product_available(env_product, env_p2), before2 - 3);

    assert_true(env_wait_status(user, id, "confirmed"));
    char status[32];
    env_text(status, sizeof(status), "SELECT status FROM payment.payments WHERE order_id = $1", 1, MP_DB_PARAMS(id));
    assert_string_equal(status, "succeeded");
    json_t *note = NULL;
    ENV_WAIT(env_notes(user, "order_confirmed", NULL) == 1);
    assert_int_equal(env_notes(user, "order_confirmed", &note), 1);
    assert_string_equal(mp_json_str(note, "title"), "Order confirmed");
    assert_non_null(strstr(mp_json_str(note, "body"), "36.97 EUR"));
    assert_non_null(strstr(mp_json_str(note, "body"), id));
    json_decref(note);
    /* still reserved: a confirmed order keeps its stock */
    assert_int_equal(fake_product_available(env_product, env_p1), before1 - 2);

    /* the caller sees it in their list, unread; reading it makes the count drop */
    r = env_call("notification.v1.count", user, "user", NULL, json_pack("{s:b}", "unread", 1));
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.body, "count")), 1);
    env_reply_dispose(&r);
    r = env_call("notification.v1.list", user, "user", NULL, json_pack("{s:s}", "unread", "true"));
    assert_int_equal(r.status, 200);
    json_t *first = json_array_get(json_object_get(r.body, "items"), 0);
    assert_non_null(first);
    assert_string_equal(mp_json_str(first, "template"), "order_confirmed");
    assert_false(json_is_true(json_object_get(first, "read")));
    char nid[37];
    snprintf(nid, sizeof(nid), "%s", mp_json_str(first, "id"));
    env_reply_dispose(&r);
    char other[37];
    env_uuid(other);
    r = env_call("notification.v1.read", other, "user", NULL, json_pack("{s:s}", "id", nid));
    assert_int_equal(r.status, 404); /* someone else's notification does not exist for them */
    env_reply_dispose(&r);
    r = env_call("notification.v1.read", user, "user", NULL, json_pack("{s:s}", "id", nid));
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.body, "read")));
    env_reply_dispose(&r);
    r = env_call("notification.v1.count", user, "user", NULL, json_pack("{s:b}", "unread", 1));
    assert_int_equal(json_integer_value(json_object_get(r.body, "count")), 0);
    env_reply_dispose(&r);
}

void test_saga_declined_payment_cancels_and_releases_stock(void **state)
{
    char user[37], key[37], id[37], text[64];
    env_uuid(user);
    env_uuid(key);
    int64_t before = fake_product_available(env_product, env_p1);
    env_reply_t r = env_call("order.v1.create", user, "user", key,
                             json_pack("{s:[{s:s, s:i}], s:s}", "items", "product_id", env_p1, "quantity", 4,
                                       "payment_token", "tok_declined"));
    assert_int_equal(r.status, 201);
    id_of(id, &r);
    env_reply_dispose(&r);
    assert_true(env_wait_status(user, id, "cancelled"));
    r = env_call("order.v1.get", user, "user", NULL, json_pack("{s:s}", "id", id));
    assert_string_equal(mp_json_str(r.body, "cancel_reason"), "payment_failed");
    env_reply_dispose(&r);
    env_text(text, sizeof(text), "SELECT status || ' ' || failure_reason FROM payment.payments WHERE order_id = $1", 1,
             MP_DB_PARAMS(id));
    assert_string_equal(text, "failed card_declined");
    ENV_WAIT(fake_product_available(env_product, env_p1) == before);
    assert_int_equal(fake_product_available(env_product, env_p1), before);
    ENV_WAIT(env_notes(user, "order_payment_failed", NULL) == 1);
    assert_int_equal(env_notes(user, NULL, NULL), 1);
}

void test_saga_transient_provider_errors_are_retried(void **state)
{
    char user[37], key[37], id[37];
    env_uuid(user);
    env_uuid(key);
    env_reply_t r = env_order(user, key, 1, 0, "tok_error");
    assert_int_equal(r.status, 201);
    id_of(id, &r);
    env_reply_dispose(&r);
    assert_true(env_wait_status(user, id, "confirmed"));
    /* two transient errors, then the success: three calls to the provider, one payment */
    assert_int_equal(env_long("SELECT attempts FROM payment.payments WHERE order_id = $1", 1, MP_DB_PARAMS(id)), 3);
    assert_int_equal(env_long("SELECT count(*) FROM payment.outbox WHERE data->>'order_id' = $1", 1, MP_DB_PARAMS(id)),
                     1);
}

void test_saga_cancel_during_a_slow_charge_never_keeps_the_money(void **state)
{
    char user[37], key[37], id[37], status[32];
    env_uuid(user);
    env_uuid(key);
    int64_t before = fake_product_available(env_product, env_p2);
    env_reply_t r = env_order(user, key, 0, 2, "tok_slow"); /* the sandbox answers after 2 s */
    assert_int_equal(r.status, 201);
    id_of(id, &r);
    env_reply_dispose(&r);
    r = env_call("order.v1.cancel", user, "user", NULL, json_pack("{s:s}", "id", id));
    assert_int_equal(r.status, 200);
    assert_string_equal(mp_json_str(r.body, "status"), "cancelled");
    assert_string_equal(mp_json_str(r.body, "cancel_reason"), "user");
    env_reply_dispose(&r);
    ENV_WAIT(fake_product_available(env_product, env_p2) == before);
    assert_int_equal(fake_product_available(env_product, env_p2), before);
    /* the charge either never started (voided) or is given back (refunded) */
    ENV_WAIT((env_text(status, sizeof(status), "SELECT status FROM payment.payments WHERE order_id = $1", 1,
                       MP_DB_PARAMS(id)),
              strcmp(status, "voided") == 0 || strcmp(status, "refunded") == 0));
    assert_true(strcmp(status, "voided") == 0 || strcmp(status, "refunded") == 0);
    if (strcmp(status, "refunded") == 0)
        ENV_WAIT(env_notes(user, "payment_refunded", NULL) == 1);
    assert_int_equal(env_notes(user, "payment_refunded", NULL), strcmp(status, "refunded") == 0);
    assert_int_equal(env_notes(user, "order_cancelled", NULL), 1);
    assert_true(env_wait_status(user, id, "cancelled")); /* a late success does not confirm it */
    r = env_call("order.v1.cancel", user, "user", NULL, json_pack("{s:s}", "id", id));
    assert_int_equal(r.status, 409); /* only a pending order can be cancelled */
    env_reply_dispose(&r);
}

void test_saga_payment_event_delivered_twice_changes_nothing_twice(void **state)
{
    char user[37], key[37], id[37], body[2048];
    env_uuid(user);
    env_uuid(key);
    env_reply_t r = env_order(user, key, 1, 1, "tok_ok");
    assert_int_equal(r.status, 201);
    id_of(id, &r);
    env_reply_dispose(&r);
    assert_true(env_wait_status(user, id, "confirmed"));
    ENV_WAIT(env_notes(user, "order_confirmed", NULL) == 1);
    /* the very event payment published, published again past JetStream's de-duplication (a new Nats-Msg-Id) */
    env_text(body, sizeof(body),
             "SELECT json_build_object('id', id, 'type', type, 'occurred_at', '2026-11-23T21:07:08Z', "
             "'data', data)::text FROM payment.outbox WHERE type = 'payment.succeeded' AND data->>'order_id' = $1",
             1, MP_DB_PARAMS(id));
    assert_true(strlen(body) > 10);
    jsCtx *js = NULL;
    assert_int_equal(mp_events_js(&js, env_bus, 5000), MP_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(js_Publish(NULL, js, "events.payment.succeeded", body, (int)strlen(body), NULL, NULL),
                         NATS_OK);
    jsCtx_Destroy(js);
    /* give the consumer time to see both copies; then one confirmation and one notification, still */
    ENV_WAIT(
        env_long("SELECT count(*) FROM \"order\".processed_events WHERE consumer = 'order' AND event_id = "
                 "(SELECT id::text FROM payment.outbox WHERE type = 'payment.succeeded' AND data->>'order_id' = $1)",
                 1, MP_DB_PARAMS(id)) == 1);
    sleep(2);
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".outbox WHERE type = 'order.confirmed' AND "
                              "data->>'order_id' = $1",
                              1, MP_DB_PARAMS(id)),
                     1);
    assert_int_equal(env_notes(user, NULL, NULL), 1);
    assert_int_equal(
        env_long("SELECT count(*) FROM notification.notifications WHERE user_id = $1", 1, MP_DB_PARAMS(user)), 1);
}
