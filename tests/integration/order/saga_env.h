/*
 * saga_env.h: the world Order's integration tests run in: the order,
 * payment and notification roles started in this process (mp_serve_main on
 * a thread, as `moonport serve --roles order,payment,notification` would run
 * them) against the harness's real NATS JetStream and Postgres, the fake
 * Product (fake_product.h), and helpers to call operations as a user, read
 * the database and the delivered notification files.
 *
 * All of Order's integration cases share one process, and one executable,
 * because the roles' durable consumers and the fake Product's subscription
 * are shared by name: two such processes at once would take each other's
 * events and requests.
 */
#ifndef MP_TEST_SAGA_ENV_H
#define MP_TEST_SAGA_ENV_H

#include <stdbool.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/db.h"
#include "fake_product.h"

extern fake_product_t *env_product;
extern mp_db_t *env_db;
extern mp_bus_t *env_bus;

/* three products in the fake catalog: 12.50 EUR (stock 100), 3.99 EUR (stock 100), 5.00 USD (stock 100) */
extern const char *const env_p1, *const env_p2, *const env_usd;

int env_setup(void **state);
int env_teardown(void **state);

typedef struct env_reply {
    int status;
    json_t *body; /* the parsed body, or NULL */
    bool replayed;
    char location[128];
} env_reply_t;

/** Calls `subject` as `user` (NULL: anonymous) with `roles` and, when not NULL, an Idempotency-Key. `input` is
 *  stolen. Free the reply with env_reply_dispose(). Fails the test when the call gets no answer. */
env_reply_t env_call(const char *subject, const char *user, const char *roles, const char *idem_key, json_t *input);
void env_reply_dispose(env_reply_t *r);

/** Places an order of `q1` x env_p1 and `q2` x env_p2 (a 0 leaves the line out) paid with `token`. */
env_reply_t env_order(const char *user, const char *key, int q1, int q2, const char *token);

/** A fresh random UUID (a user id, an Idempotency-Key). */
void env_uuid(char out[37]);

/** The single number a query returns. */
long env_long(const char *sql, int n, const char *const *params);
/** The single text a query returns, copied into `out` ("" for NULL). */
void env_text(char *out, size_t size, const char *sql, int n, const char *const *params);

/** Polls order.v1.get until the order has `status`; true when it did within 20 s. */
bool env_wait_status(const char *user, const char *order_id, const char *status);
/** Polls until `cond` holds, for up to 20 s. */
#define ENV_WAIT(cond)                                                                                                 \
    do {                                                                                                               \
        for (int w_ = 0; w_ < 400 && !(cond); w_++)                                                                    \
            usleep(50 * 1000);                                                                                         \
    } while (0)

/** Delivered notification files for `user` with `template_name` (NULL: any); `*last` (if not NULL) gets the newest
 *  one's JSON (new reference) or NULL. */
int env_notes(const char *user, const char *template_name, json_t **last);

#endif
