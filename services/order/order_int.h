/*
 * order_int.h: what the Order service's files share.
 *
 * Files: order.c (the service, get, list, cancel), create.c (placing an
 * order), idempotency.c (Idempotency-Key claims and replays), product.c (the
 * Product client: lookup, reserve, release), saga.c (the order side of the
 * payment saga: payment events in, status changes and notifications out),
 * locale.c (the language of notifications).
 *
 * Handlers run on the service's worker threads, the saga's handlers on its
 * consumer threads; `order_state` is written at start-up only.
 */
#ifndef MP_ORDER_INT_H
#define MP_ORDER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "mp/consumer.h"
#include "mp/outbox.h"
#include "mp/poller.h"
#include "mp/service.h"

#define ORDER_SCHEMA "order"
#define ORDER_MAX_QUANTITY 1000
#define ORDER_MAX_UNIT_AMOUNT 1000000000000LL /* 10^12 minor units: totals cannot overflow int64 */

typedef struct order_settings {
    int max_items;              /* lines per order */
    int product_timeout_ms;     /* each call to Product */
    int64_t idempotency_ttl_ms; /* how long a key is remembered (at least 24 h) */
    int consumer_workers;       /* threads per durable consumer */
    int64_t abandoned_claim_ms; /* an unanswered claim this old lost its request: release its stock */
} order_settings_t;

typedef struct order_state {
    order_settings_t cfg;
    mp_svc_t *svc;
    mp_outbox_t *outbox;
    mp_consumer_t *payments; /* events.payment.* -> status changes */
    mp_consumer_t *releases; /* events.order.cancelled -> product.v1.release */
    mp_poller_t *janitor;    /* abandoned claims and expired keys (idempotency.c) */
} order_state_t;

extern order_state_t order_state;

/* ---- one line of an order, from the request and Product ------------------------------------ */

typedef struct order_line {
    char product_id[37];
    int64_t quantity;
    /* from product.v1.lookup; borrowed from the lookup reply */
    bool found;
    const char *sku, *name;
    int64_t unit_amount;
    char currency[4];
} order_line_t;

/** Fills lines[i].found/sku/name/unit_amount/currency from product.v1.lookup. `*reply` keeps the strings alive
 *  (new reference; json_decref() it after use). Errors: MP_EUNAVAIL / MP_ETIMEDOUT (Product down or slow),
 *  MP_EBADREPLY (an answer that breaks the contract). */
mp_status_t order_product_lookup(json_t **reply, mp_svc_req_t *req, order_line_t *lines, size_t n);

/** Reserves the lines' stock for `order_id` (all or nothing, idempotent per order id). MP_ECONFLICT: not enough
 *  stock, and `*problem` (new reference) is Product's problem object, whose pointers index `lines`. Other errors
 *  as for lookup. */
mp_status_t order_product_reserve(json_t **problem, mp_svc_req_t *req, const char *order_id, const order_line_t *lines,
                                  size_t n);

/** Releases `order_id`'s reservation (idempotent). Blocking; any thread. `request_id` tags the call (may be NULL). */
mp_status_t order_product_release(mp_bus_t *bus, const char *order_id, const char *request_id);

/* ---- Idempotency-Key ------------------------------------------------------------------------ */

typedef struct order_idem {
    const char *user_id; /* borrowed */
    char key_hash[65], request_hash[65];
    char order_id[37]; /* the order this key creates */
} order_idem_t;

/** Checks the request's Idempotency-Key header; answers 400 and returns false when it is missing or malformed. */
bool order_idem_header_ok(mp_svc_req_t *req);
/**
 * Claims the request's Idempotency-Key for this call, or answers the call from an earlier one. On MP_OK `*mine` says
 * which: true, the caller creates order `k->order_id` and stores its response with order_idem_store() (or drops the
 * claim with order_idem_abandon()); false, the request was answered (the stored response replayed, 422 for another
 * body, 409 while the first is still running past this request's deadline). The header must have
 * passed order_idem_header_ok().
 */
mp_status_t order_idem_claim(bool *mine, order_idem_t *k, mp_svc_req_t *req);
/** Records the response in the order's transaction, so the order exists exactly when its response does. */
mp_status_t order_idem_store(mp_db_conn_t *tx, const order_idem_t *k, int status, const char *body);
/** Drops a claim whose request failed, so that a retry with the same key runs again. */
void order_idem_abandon(mp_svc_t *svc, const order_idem_t *k);
/** Keeps the claim of a request that failed with its order id's stock maybe still reserved (the release failed):
 *  marks it release_pending, so the janitor releases it soon and the key's next retry releases it first. */
void order_idem_hold_for_release(mp_svc_t *svc, const order_idem_t *k);
/** Deletes keys older than the TTL, at most once every 10 minutes per process (the janitor calls it). */
void order_idem_sweep(mp_svc_t *svc);
/** Starts / stops the thread that releases the stock of claims whose request died (a crash between the
 *  reservation and the order's transaction) and sweeps expired keys without waiting for traffic. */
mp_status_t order_idem_janitor_start(order_state_t *os);
void order_idem_janitor_stop(order_state_t *os);

/* ---- status changes (saga.c) ---------------------------------------------------------------- */

/**
 * Moves a pending order to `status` ("confirmed" or "cancelled", with `reason` for a cancel) in `tx`, and writes the
 * matching events.order.<status> and events.notification.requested (template `template`) to the outbox in the same
 * transaction. `owner` (NULL: anyone) restricts it to that user's order. Sets *changed when the order was pending;
 * nothing is written otherwise.
 */
mp_status_t order_transition(bool *changed, mp_db_conn_t *tx, const char *order_id, const char *owner,
                             const char *status, const char *reason, const char *template_name);

/** Starts / stops the saga's consumers. */
mp_status_t order_saga_start(order_state_t *st);
void order_saga_stop(order_state_t *st);

/* ---- handlers ------------------------------------------------------------------------------ */

mp_status_t order_create(mp_svc_req_t *req);

/** The primary language of an Accept-Language header or a BCP 47 tag ("de-DE,de;q=0.9" -> "de") into `out`; false
 *  when there is none. */
bool order_locale(char out[8], const char *accept_language);

#endif
