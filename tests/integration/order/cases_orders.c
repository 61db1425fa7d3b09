/*
 * cases_orders.c: placing and reading orders against the fake Product:
 * Idempotency-Key under concurrency, another body, a missing key; out of
 * stock, unknown products and mixed currencies; Product down; who may see
 * and cancel an order; newest-first pagination. Registered in test_saga.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/json.h"
#include "saga_env.h"

#define RACERS 20

typedef struct racer {
    pthread_t thread;
    const char *user, *key;
    pthread_barrier_t *start;
    env_reply_t reply;
    char *body;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->start);
    r->reply = env_order(r->user, r->key, 1, 2, "tok_ok");
    r->body = r->reply.body ? json_dumps(r->reply.body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    return NULL;
}

void test_order_twenty_identical_requests_make_one_order(void **state)
{
    char user[37], key[37];
    env_uuid(user);
    env_uuid(key);
    racer_t racers[RACERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (racer_t){.user = user, .key = key, .start = &start};
        assert_int_equal(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
    }
    int replayed = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(racers[i].thread, NULL);
        assert_int_equal(racers[i].reply.status, 201);
        assert_non_null(racers[i].body);
        assert_string_equal(racers[i].body, racers[0].body); /* the same answer, byte for byte */
        assert_string_equal(racers[i].reply.location, racers[0].reply.location);
        replayed += racers[i].reply.replayed;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(replayed, RACERS - 1);
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".orders WHERE user_id = $1", 1, MP_DB_PARAMS(user)), 1);
    const char *id = mp_json_str(racers[0].reply.body, "id");
    assert_int_equal(fake_product_reserves_of(env_product, id), 1);
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".outbox WHERE type = 'order.created' AND "
                              "data->>'order_id' = $1",
                              1, MP_DB_PARAMS(id)),
                     1);
    /* the key is stored hashed, never as sent */
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2", 2,
                              MP_DB_PARAMS(user, key)),
                     0);
    for (int i = 0; i < RACERS; i++) {
        env_reply_dispose(&racers[i].reply);
        free(racers[i].body);
    }
}

void test_order_key_rules(void **state)
{
    char user[37], other[37], key[37];
    env_uuid(user);
    env_uuid(other);
    env_uuid(key);
    env_reply_t r = env_order(user, NULL, 1, 0, "tok_ok");
    assert_int_equal(r.status, 400);
    assert_string_equal(mp_json_str(r.body, "detail"), "Idempotency-Key header is required");
    env_reply_dispose(&r);
    r = env_order(user, "has space", 1, 0, "tok_ok");
    assert_int_equal(r.status, 400);
    env_reply_dispose(&r);

    r = env_order(user, key, 1, 0, "tok_ok");
    assert_int_equal(r.status, 201);
    assert_false(r.replayed);
    env_reply_dispose(&r);
    r = env_order(user, key, 2, 0, "tok_ok"); /* same key, another body */
    assert_int_equal(r.status, 422);
    env_reply_dispose(&r);
    r = env_order(user, key, 1, 0, "tok_ok"); /* the first answer still stands */
    assert_int_equal(r.status, 201);
    assert_true(r.replayed);
    env_reply_dispose(&r);
    r = env_order(other, key, 1, 0, "tok_ok"); /* keys are per user */
    assert_int_equal(r.status, 201);
    assert_false(r.replayed);
    env_reply_dispose(&r);
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".orders WHERE user_id = $1", 1, MP_DB_PARAMS(user)), 1);
}

void test_order_input_is_checked(void **state)
{
    char user[37], key[37];
    env_uuid(user);
    env_uuid(key);
    env_reply_t r = env_call("order.v1.create", user, "user", key,
                             json_pack("{s:[{s:s, s:i, s:i}, {s:s, s:i}], s:s, s:i}", "items", "product_id", env_p1,
                                       "quantity", 0, "price", 1, "product_id", "not-a-uuid", "quantity", 1,
                                       "payment_token", "tok_ok", "total", 5));
    assert_int_equal(r.status, 422);
    char *text = json_dumps(r.body, JSON_COMPACT);
    /* every problem, each at its pointer; a client can never set a price */
    assert_non_null(strstr(text, "\"/items/0/quantity\""));
    assert_non_null(strstr(text, "\"/items/0/price\""));
    assert_non_null(strstr(text, "\"/items/1/product_id\""));
    assert_non_null(strstr(text, "\"/total\""));
    free(text);
    env_reply_dispose(&r);
    r = env_call("order.v1.create", user, "user", key,
                 json_pack("{s:[{s:s, s:i}, {s:s, s:i}], s:s}", "items", "product_id", env_p1, "quantity", 1,
                           "product_id", env_p1, "quantity", 2, "payment_token", "tok_ok"));
    assert_int_equal(r.status, 422); /* one line per product */
    env_reply_dispose(&r);
    r = env_call("order.v1.create", user, "user", key, json_pack("{s:[], s:s}", "items", "payment_token", "tok_ok"));
    assert_int_equal(r.status, 422);
    env_reply_dispose(&r);
    r = env_call("order.v1.create", NULL, NULL, key, json_pack("{s:[], s:s}", "items", "payment_token", "tok_ok"));
    assert_int_equal(r.status, 401);
    env_reply_dispose(&r);
}

void test_order_out_of_stock_keeps_nothing_and_frees_the_key(void **state)
{
    char user[37], key[37], unknown[37];
    env_uuid(user);
    env_uuid(key);
    env_uuid(unknown);
    int64_t have = fake_product_available(env_product, env_p2);
    env_reply_t r = env_order(user, key, 1, (int)have + 1, "tok_ok");
    assert_int_equal(r.status, 409);
    json_t *err = json_array_get(json_object_get(r.body, "errors"), 0);
    assert_string_equal(mp_json_str(err, "pointer"), "/items/1/quantity"); /* Product's pointer, into our items */
    env_reply_dispose(&r);
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".orders WHERE user_id = $1", 1, MP_DB_PARAMS(user)), 0);
    assert_int_equal(fake_product_available(env_product, env_p2), have);
    /* the refusal was not stored: the same key works once there is stock */
    fake_product_set_stock(env_product, env_p2, have + 10);
    r = env_order(user, key, 1, (int)have + 1, "tok_ok");
    assert_int_equal(r.status, 201);
    assert_false(r.replayed);
    env_reply_dispose(&r);

    r = env_call(
        "order.v1.create", user, "user", key,
        json_pack("{s:[{s:s, s:i}], s:s}", "items", "product_id", unknown, "quantity", 1, "payment_token", "tok_ok"));
    assert_int_equal(r.status, 422); /* the key is taken by another body now */
    env_reply_dispose(&r);
    env_uuid(key);
    r = env_call(
        "order.v1.create", user, "user", key,
        json_pack("{s:[{s:s, s:i}], s:s}", "items", "product_id", unknown, "quantity", 1, "payment_token", "tok_ok"));
    assert_int_equal(r.status, 422);
    assert_string_equal(mp_json_str(json_array_get(json_object_get(r.body, "errors"), 0), "pointer"),
                        "/items/0/product_id");
    env_reply_dispose(&r);
    env_uuid(key);
    r = env_call("order.v1.create", user, "user", key,
                 json_pack("{s:[{s:s, s:i}, {s:s, s:i}], s:s}", "items", "product_id", env_p1, "quantity", 1,
                           "product_id", env_usd, "quantity", 1, "payment_token", "tok_ok"));
    assert_int_equal(r.status, 422); /* one order, one currency */
    env_reply_dispose(&r);
}

void test_order_product_down_is_503_and_the_key_can_be_retried(void **state)
{
    char user[37], key[37];
    env_uuid(user);
    env_uuid(key);
    fake_product_set_down(env_product, "lookup", true);
    env_reply_t r = env_order(user, key, 1, 0, "tok_ok");
    fake_product_set_down(env_product, "lookup", false);
    assert_int_equal(r.status, 503);
    env_reply_dispose(&r);
    fake_product_set_down(env_product, "reserve", true);
    r = env_order(user, key, 1, 0, "tok_ok");
    fake_product_set_down(env_product, "reserve", false);
    assert_int_equal(r.status, 503);
    env_reply_dispose(&r);
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".orders WHERE user_id = $1", 1, MP_DB_PARAMS(user)), 0);
    r = env_order(user, key, 1, 0, "tok_ok");
    assert_int_equal(r.status, 201);
    env_reply_dispose(&r);
}

/* How many orders `user` has. */
static long orders_of(const char *user)
{
    return env_long("SELECT count(*) FROM \"order\".orders WHERE user_id = $1", 1, MP_DB_PARAMS(user));
}

void test_order_lost_reserve_reply_gives_the_stock_back(void **state)
{
    /* Product reserves and its reply is lost (issue 11: nats-server killed mid-stream): the order times out, and
     * the stock it may hold must come back before the key is let go */
    char user[37], key[37];
    env_uuid(user);
    env_uuid(key);
    int64_t before = fake_product_available(env_product, env_p1);
    fake_product_mute_reserve(env_product, true);
    env_reply_t r = env_order(user, key, 1, 0, "tok_ok");
    fake_product_mute_reserve(env_product, false);
    assert_true(r.status == 503 || r.status == 504);
    env_reply_dispose(&r);
    assert_int_equal(fake_product_available(env_product, env_p1), before); /* released, not lost */
    assert_int_equal(orders_of(user), 0);

    /* the retry makes exactly one order, under a fresh order id, holding exactly its own stock */
    r = env_order(user, key, 1, 0, "tok_ok");
    assert_int_equal(r.status, 201);
    env_reply_dispose(&r);
    assert_int_equal(orders_of(user), 1);
    assert_int_equal(fake_product_available(env_product, env_p1), before - 1);
}

void test_order_lost_reserve_and_failed_release_keep_the_key_until_released(void **state)
{
    /* the release fails too (NATS still down): the claim is kept, marked, and the key's retry releases the old
     * order id first and then orders under a new one */
    char user[37], key[37];
    env_uuid(user);
    env_uuid(key);
    int64_t before = fake_product_available(env_product, env_p1);
    fake_product_mute_reserve(env_product, true);
    fake_product_set_down(env_product, "release", true);
    env_reply_t r = env_order(user, key, 1, 0, "tok_ok");
    fake_product_mute_reserve(env_product, false);
    assert_true(r.status == 503 || r.status == 504);
    env_reply_dispose(&r);
    assert_int_equal(fake_product_available(env_product, env_p1), before - 1); /* held, not yet given back */
    assert_int_equal(env_long("SELECT count(*) FROM \"order\".idempotency_keys k WHERE k.user_id = $1 AND "
                              "k.release_pending",
                              1, MP_DB_PARAMS(user)),
                     1);
    /* while the release keeps failing, the retry says so and changes nothing */
    r = env_order(user, key, 1, 0, "tok_ok");
    assert_int_equal(r.status, 503);
    env_reply_dispose(&r);
    assert_int_equal(orders_of(user), 0);

    fake_product_set_down(env_product, "release", false);
    r = env_order(user, key, 1, 0, "tok_ok");
    assert_int_equal(r.status, 201);
    env_reply_dispose(&r);
    assert_int_equal(orders_of(user), 1);
    assert_int_equal(fake_product_available(env_product, env_p1), before - 1); /* the old hold gone, the new kept */
}

void test_order_visibility_and_cancel_rules(void **state)
{
    char user[37], other[37], key[37], id[37], missing[37];
    env_uuid(user);
    env_uuid(other);
    env_uuid(key);
    env_uuid(missing);
    env_reply_t r = env_order(user, key, 1, 0, "tok_ok");
    snprintf(id, sizeof(id), "%s", mp_json_str(r.body, "id"));
    env_reply_dispose(&r);
    r = env_call("order.v1.get", other, "user", NULL, json_pack("{s:s}", "id", id));
    assert_int_equal(r.status, 404); /* someone else's order does not exist for them */
    env_reply_dispose(&r);
    r = env_call("order.v1.get", other, "user,admin", NULL, json_pack("{s:s}", "id", id));
    assert_int_equal(r.status, 200);
    env_reply_dispose(&r);
    r = env_call("order.v1.get", user, "user", NULL, json_pack("{s:s}", "id", "nope"));
    assert_int_equal(r.status, 400);
    env_reply_dispose(&r);
    r = env_call("order.v1.cancel", other, "user", NULL, json_pack("{s:s}", "id", id));
    assert_int_equal(r.status, 404);
    env_reply_dispose(&r);
    r = env_call("order.v1.cancel", user, "user", NULL, json_pack("{s:s}", "id", missing));
    assert_int_equal(r.status, 404);
    env_reply_dispose(&r);
    assert_true(env_wait_status(user, id, "confirmed"));
    r = env_call("order.v1.cancel", user, "user", NULL, json_pack("{s:s}", "id", id));
    assert_int_equal(r.status, 409); /* paid and confirmed */
    env_reply_dispose(&r);
}

void test_order_list_is_newest_first_and_paginated(void **state)
{
    char user[37], ids[3][37];
    env_uuid(user);
    for (int i = 0; i < 3; i++) {
        char key[37];
        env_uuid(key);
        env_reply_t r = env_order(user, key, i + 1, 0, "tok_ok");
        assert_int_equal(r.status, 201);
        snprintf(ids[i], 37, "%s", mp_json_str(r.body, "id"));
        env_reply_dispose(&r);
    }
    env_reply_t r = env_call("order.v1.list", user, "user", NULL, json_pack("{s:s}", "limit", "2"));
    assert_int_equal(r.status, 200);
    json_t *items = json_object_get(r.body, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(mp_json_str(json_array_get(items, 0), "id"), ids[2]);
    assert_string_equal(mp_json_str(json_array_get(items, 1), "id"), ids[1]);
    char cursor[200];
    assert_non_null(mp_json_str(r.body, "next_cursor"));
    snprintf(cursor, sizeof(cursor), "%s", mp_json_str(r.body, "next_cursor"));
    env_reply_dispose(&r);
    r = env_call("order.v1.list", user, "user", NULL, json_pack("{s:s, s:s}", "limit", "2", "cursor", cursor));
    items = json_object_get(r.body, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(mp_json_str(json_array_get(items, 0), "id"), ids[0]);
    assert_true(json_is_null(json_object_get(r.body, "next_cursor")));
    env_reply_dispose(&r);
    r = env_call("order.v1.list", user, "user", NULL, json_pack("{s:s}", "cursor", "garbage!"));
    assert_int_equal(r.status, 400);
    env_reply_dispose(&r);
    r = env_call("order.v1.list", user, "user", NULL, json_pack("{s:s}", "limit", "0"));
    assert_int_equal(r.status, 400);
    env_reply_dispose(&r);
}

/* A crash between reserving the stock and saving the order leaves an unanswered claim and a reservation for an order
 * that does not exist; nobody retries the key. The janitor (abandoned_claim_after: 2s here) gives the stock back and
 * frees the key, and leaves answered claims alone. */
static int reserve_status(const char *body)
{
    mp_msg_t *reply = NULL;
    mp_bus_call_t call = {.subject = "product.v1.reserve", .body = body, .len = strlen(body), .timeout_ms = 5000};
    assert_int_equal(mp_bus_request(&reply, env_bus, &call), MP_OK);
    int status = mp_msg_status(reply);
    mp_msg_destroy(reply);
    return status;
}

void test_order_abandoned_claim_gives_its_stock_back(void **state)
{
    char user[37], order_id[37], done_order[37], body[256];
    env_uuid(user);
    env_uuid(order_id);
    env_uuid(done_order);
    int64_t have = fake_product_available(env_product, env_p1);
    snprintf(body, sizeof(body), "{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"quantity\":3}]}", order_id,
             env_p1);
    assert_int_equal(reserve_status(body), 200);
    assert_int_equal(fake_product_available(env_product, env_p1), have - 3);
    assert_int_equal(
        mp_db_exec_once(NULL, env_db,
                        "INSERT INTO \"order\".idempotency_keys (user_id, key_hash, request_hash, order_id, "
                        "claimed_at) VALUES ($1, 'died', 'r', $2, now() - interval '1 hour'), "
                        "($1, 'answered', 'r', $3, now() - interval '1 hour')",
                        3, MP_DB_PARAMS(user, order_id, done_order)),
        MP_OK);
    assert_int_equal(
        mp_db_exec_once(NULL, env_db,
                        "UPDATE \"order\".idempotency_keys SET response_status = 201, response_body = '{}' "
                        "WHERE user_id = $1 AND key_hash = 'answered'",
                        1, MP_DB_PARAMS(user)),
        MP_OK);

    ENV_WAIT(fake_product_available(env_product, env_p1) == have);
    assert_int_equal(fake_product_available(env_product, env_p1), have);
    const char *count = "SELECT count(*) FROM \"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2";
    ENV_WAIT(env_long(count, 2, MP_DB_PARAMS(user, "died")) == 0);
    assert_int_equal(env_long(count, 2, MP_DB_PARAMS(user, "died")), 0);
    assert_int_equal(env_long(count, 2, MP_DB_PARAMS(user, "answered")), 1); /* a finished order's key stays */
    /* a late reserve for the released order (a zombie request) is refused and does not take the stock again */
    assert_int_equal(reserve_status(body), 409);
    assert_int_equal(fake_product_available(env_product, env_p1), have);
}
