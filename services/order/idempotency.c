/*
 * idempotency.c: Idempotency-Key for POST /v1/orders (CONVENTIONS.md).
 *
 * A key is claimed by inserting (user, sha256(key)) with ON CONFLICT DO
 * NOTHING: of any number of concurrent requests exactly one inserts and
 * creates the order; its response is stored in the order's own transaction.
 * The others wait, polling the row, and replay that response when it
 * appears, so 20 identical requests at once make one order and get one
 * answer. A different body under the same key is 422. A request that fails
 * drops its claim so the key can be retried; a claim left behind by a crash
 * is taken over after 30 s. Keys are kept at least 24 hours.
 *
 * A crash between reserving the stock and the order's transaction leaves an
 * unanswered claim and a reservation for an order that does not exist. If
 * nobody retries the key, the janitor (order.abandoned_claim_after, 10 min)
 * releases that reservation and deletes the claim, holding the claim's row
 * lock across both: a request still saving that order then finds its claim
 * gone, its transaction fails (order_idem_store needs the row) and rolls
 * back, so an order never exists without its stock.
 *
 * A request that failed after sending its reserve releases that stock
 * before dropping its claim. When the release fails too (NATS down), the
 * claim is kept and marked release_pending: the janitor releases and
 * deletes it at its next round (seconds), and a retry of the key that finds
 * it releases the old order id itself and continues under a new one, since
 * Product never reserves an id it has released. So every reservation ends
 * used by its order or released, whichever side failed.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "mp/fiber.h"
#include "mp/json.h"
#include "order_int.h"

#define POLL_MS 50
#define STALE_CLAIM "30 seconds"

static void sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_Digest(data, len, d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static bool key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

/* Replays a stored response, marked as such. */
static mp_status_t replay(mp_svc_req_t *req, const order_idem_t *k, int status, const char *body)
{
    char location[64];
    snprintf(location, sizeof(location), "/v1/orders/%s", k->order_id);
    if (status == 201)
        mp_svc_reply_header(req, "Location", location);
    mp_svc_reply_header(req, "Idempotent-Replayed", "true");
    return mp_svc_reply_raw(req, status, "application/json", body, strlen(body));
}

/* Takes over a claim left release_pending: releases its order id's stock first, then gives the claim a fresh order
 * id, since Product refuses to reserve an id it has released. Holding the row lock (FOR UPDATE) keeps the janitor,
 * which skips locked rows, away meanwhile. MP_EUNAVAIL (and the mark kept) when the release fails again. */
static mp_status_t take_pending(bool *won, mp_db_t *db, mp_bus_t *bus, order_idem_t *k)
{
    mp_db_conn_t *tx = NULL;
    mp_db_res_t *r = NULL;
    mp_status_t st = mp_db_acquire(&tx, db, 3000);
    if (st == MP_OK)
        st = mp_db_begin(tx);
    if (st == MP_OK)
        st = mp_db_exec(&r, tx,
                        "SELECT order_id FROM \"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2 AND "
                        "request_hash = $3 AND response_status IS NULL AND release_pending FOR UPDATE",
                        3, MP_DB_PARAMS(k->user_id, k->key_hash, k->request_hash));
    if (st == MP_OK && mp_db_rows(r) == 1) {
        st = order_product_release(bus, mp_db_get(r, 0, 0), NULL);
        if (st != MP_OK)
            st = mp_err_set(MP_EUNAVAIL, "an earlier try of this order is still being undone; retry shortly");
        mp_db_res_free(r);
        r = NULL;
        if (st == MP_OK)
            st = mp_db_exec(&r, tx,
                            "UPDATE \"order\".idempotency_keys SET order_id = gen_random_uuid(), release_pending = "
                            "false, claimed_at = now() WHERE user_id = $1 AND key_hash = $2 RETURNING order_id",
                            2, MP_DB_PARAMS(k->user_id, k->key_hash));
        if (st == MP_OK && (st = mp_db_commit(tx)) == MP_OK && mp_db_rows(r) == 1) {
            *won = true;
            snprintf(k->order_id, sizeof(k->order_id), "%s", mp_db_get(r, 0, 0));
        }
    }
    mp_db_res_free(r);
    mp_db_release(tx);
    return st;
}

/* Tries to become the key's owner: a fresh claim, a takeover of one abandoned by a crash, or of one whose stock an
 * earlier try could not give back (released first). */
static mp_status_t try_claim(bool *won, mp_svc_t *svc, order_idem_t *k)
{
    mp_db_t *db = mp_svc_db(svc);
    mp_db_res_t *r = NULL;
    *won = false;
    mp_status_t st = mp_db_exec_once(&r, db,
                                     "INSERT INTO \"order\".idempotency_keys (user_id, key_hash, request_hash) "
                                     "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING order_id",
                                     3, MP_DB_PARAMS(k->user_id, k->key_hash, k->request_hash));
    if (st == MP_OK && mp_db_rows(r) == 0) {
        mp_db_res_free(r);
        r = NULL;
        if ((st = take_pending(won, db, mp_svc_bus(svc), k)) != MP_OK || *won)
            return st;
        st = mp_db_exec_once(&r, db,
                             "UPDATE \"order\".idempotency_keys SET claimed_at = now() WHERE user_id = $1 AND "
                             "key_hash = $2 AND request_hash = $3 AND response_status IS NULL AND NOT release_pending "
                             "AND claimed_at < now() - interval '" STALE_CLAIM "' RETURNING order_id",
                             3, MP_DB_PARAMS(k->user_id, k->key_hash, k->request_hash));
    }
    *won = st == MP_OK && mp_db_rows(r) == 1;
    if (*won)
        snprintf(k->order_id, sizeof(k->order_id), "%s", mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    return st;
}

typedef enum { SEEN_NONE, SEEN_OTHER_BODY, SEEN_DONE, SEEN_RUNNING } seen_t;

/* Reads the key's row as another request left it; on SEEN_DONE `*status`/`*body` (caller frees) hold the reply. */
static mp_status_t look(seen_t *seen, int *status, char **body, mp_db_t *db, order_idem_t *k)
{
    char ttl[24];
    mp_db_res_t *r = NULL;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)order_state.cfg.idempotency_ttl_ms);
    /* an expired key is forgotten on the way: its owner may reuse it for a new order */
    mp_status_t st = mp_db_exec_once(NULL, db,
                                     "DELETE FROM \"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2 AND "
                                     "created_at < now() - $3::bigint * interval '1 millisecond'",
                                     3, MP_DB_PARAMS(k->user_id, k->key_hash, ttl));
    if (st == MP_OK)
        st = mp_db_exec_once(&r, db,
                             "SELECT request_hash, response_status, response_body, order_id FROM "
                             "\"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2",
                             2, MP_DB_PARAMS(k->user_id, k->key_hash));
    if (st != MP_OK)
        return st;
    if (mp_db_rows(r) == 0)
        *seen = SEEN_NONE; /* its owner failed and dropped it: claim it again */
    else if (strcmp(mp_db_get(r, 0, 0), k->request_hash) != 0)
        *seen = SEEN_OTHER_BODY;
    else if (mp_db_get(r, 0, 1) != NULL) {
        *seen = SEEN_DONE;
        *status = atoi(mp_db_get(r, 0, 1));
        *body = strdup(mp_db_get(r, 0, 2) ? mp_db_get(r, 0, 2) : "");
        snprintf(k->order_id, sizeof(k->order_id), "%s", mp_db_get(r, 0, 3));
    } else
        *seen = SEEN_RUNNING;
    mp_db_res_free(r);
    return MP_OK;
}

bool order_idem_header_ok(mp_svc_req_t *req)
{
    const char *key = mp_svc_header(req, "Idempotency-Key");
    if (key == NULL)
        mp_svc_reply_problem(req, 400, "Idempotency-Key header is required", NULL);
    else if (!key_valid(key))
        mp_svc_reply_problem(req, 400, "Idempotency-Key must be 1-255 visible ASCII characters", NULL);
    return key && key_valid(key);
}

mp_status_t order_idem_claim(bool *mine, order_idem_t *k, mp_svc_req_t *req)
{
    const char *key = mp_svc_header(req, "Idempotency-Key");
    *mine = false;
    memset(k, 0, sizeof(*k));
    k->user_id = req->auth_sub;
    sha256_hex(k->key_hash, key, strlen(key));
    char *canon = json_dumps(req->input, JSON_COMPACT | JSON_SORT_KEYS);
    sha256_hex(k->request_hash, canon, strlen(canon));
    free(canon);

    mp_db_t *db = mp_svc_db(req->svc);
    int64_t give_up = req->ctx.deadline_ms ? req->ctx.deadline_ms - 250 : mp_now_ms() + 10000;
    for (;;) {
        bool won = false;
        seen_t seen = SEEN_NONE;
        int status = 0;
        char *body = NULL;
        mp_status_t st = try_claim(&won, req->svc, k);
        if (st != MP_OK)
            return st;
        if (won) {
            *mine = true;
            return MP_OK;
        }
        if ((st = look(&seen, &status, &body, db, k)) != MP_OK)
            return st;
        if (seen == SEEN_DONE) {
            st = replay(req, k, status, body);
            free(body);
            return st;
        }
        if (seen == SEEN_OTHER_BODY) {
            mp_svc_reply_problem(req, 422, "this Idempotency-Key was already used with a different request", NULL);
            return MP_OK;
        }
        if (seen == SEEN_RUNNING && mp_now_ms() >= give_up) {
            mp_svc_reply_header(req, "Retry-After", "1");
            mp_svc_reply_problem(req, 409, "a request with this Idempotency-Key is still being processed", NULL);
            return MP_OK;
        }
        if (seen == SEEN_RUNNING) /* the claimer may be a fiber of this very thread: let it (and the rest) run */
            mp_fiber_sleep(POLL_MS);
    }
}

mp_status_t order_idem_store(mp_db_conn_t *tx, const order_idem_t *k, int status, const char *body)
{
    char code[12];
    mp_db_res_t *r = NULL;
    snprintf(code, sizeof(code), "%d", status);
    mp_status_t st = mp_db_exec(&r, tx,
                                "UPDATE \"order\".idempotency_keys SET response_status = $3::int, response_body = $4 "
                                "WHERE user_id = $1 AND key_hash = $2 AND order_id = $5::uuid AND "
                                "response_status IS NULL",
                                5, MP_DB_PARAMS(k->user_id, k->key_hash, code, body, k->order_id));
    if (st == MP_OK && mp_db_affected(r) != 1) /* the janitor took the claim (and the stock) away */
        st = mp_err_set(MP_EUNAVAIL, "the order took too long and its claim was released; retry");
    mp_db_res_free(r);
    return st;
}

void order_idem_abandon(mp_svc_t *svc, const order_idem_t *k)
{
    if (mp_db_exec_once(NULL, mp_svc_db(svc),
                        "DELETE FROM \"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2 AND "
                        "response_status IS NULL",
                        2, MP_DB_PARAMS(k->user_id, k->key_hash)) != MP_OK)
        mp_log_kv(MP_LOG_WARN, NULL, "cannot drop an idempotency claim; it is taken over after " STALE_CLAIM, "error",
                  mp_err_get(), NULL);
}

void order_idem_hold_for_release(mp_svc_t *svc, const order_idem_t *k)
{
    if (mp_db_exec_once(NULL, mp_svc_db(svc),
                        "UPDATE \"order\".idempotency_keys SET release_pending = true WHERE user_id = $1 AND "
                        "key_hash = $2 AND order_id = $3::uuid AND response_status IS NULL",
                        3, MP_DB_PARAMS(k->user_id, k->key_hash, k->order_id)) != MP_OK)
        /* the unanswered claim stays as it is: the janitor frees it after order.abandoned_claim_after */
        mp_log_kv(MP_LOG_WARN, NULL, "cannot mark an order claim for release; the janitor takes it later", "order_id",
                  k->order_id, "error", mp_err_get(), NULL);
}

void order_idem_sweep(mp_svc_t *svc)
{
    static _Atomic int64_t last;
    int64_t now = mp_now_ms(), prev = atomic_load(&last);
    if (now - prev < 600000 || !atomic_compare_exchange_strong(&last, &prev, now))
        return;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)order_state.cfg.idempotency_ttl_ms);
    if (mp_db_exec_once(NULL, mp_svc_db(svc),
                        "DELETE FROM \"order\".idempotency_keys WHERE created_at < now() - $1::bigint * "
                        "interval '1 millisecond'",
                        1, MP_DB_PARAMS(ttl)) != MP_OK)
        mp_log_kv(MP_LOG_WARN, NULL, "cannot delete expired idempotency keys", "error", mp_err_get(), NULL);
}

/* ---- the janitor ------------------------------------------------------------------------------ */

/* One abandoned claim, oldest first: releases its stock and deletes it in one transaction holding the row. Returns
 * 1 when it freed one, 0 when there is none, -1 on an error (logged; retried next round). */
static int free_one_abandoned(order_state_t *os)
{
    char age[24];
    mp_db_conn_t *tx = NULL;
    mp_db_res_t *r = NULL;
    int done = -1;
    snprintf(age, sizeof(age), "%lld", (long long)os->cfg.abandoned_claim_ms);
    mp_status_t st = mp_db_acquire(&tx, mp_svc_db(os->svc), 3000);
    if (st == MP_OK)
        st = mp_db_begin(tx);
    if (st == MP_OK)
        st = mp_db_exec(&r, tx,
                        "SELECT user_id, key_hash, order_id FROM \"order\".idempotency_keys WHERE response_status IS "
                        "NULL AND (release_pending OR claimed_at < now() - $1::bigint * interval '1 millisecond') "
                        "ORDER BY claimed_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                        1, MP_DB_PARAMS(age));
    if (st == MP_OK && mp_db_rows(r) == 0)
        done = 0;
    else if (st == MP_OK && (st = order_product_release(mp_svc_bus(os->svc), mp_db_get(r, 0, 2), NULL)) == MP_OK &&
             (st = mp_db_exec(NULL, tx, "DELETE FROM \"order\".idempotency_keys WHERE user_id = $1 AND key_hash = $2",
                              2, MP_DB_PARAMS(mp_db_get(r, 0, 0), mp_db_get(r, 0, 1)))) == MP_OK &&
             (st = mp_db_commit(tx)) == MP_OK) {
        mp_log_kv(MP_LOG_WARN, NULL, "released the stock of an order whose request died before saving it", "order_id",
                  mp_db_get(r, 0, 2), NULL);
        done = 1;
    }
    if (done < 0)
        mp_log_kv(MP_LOG_WARN, NULL, "cannot free an abandoned order claim; retrying later", "error", mp_err_get(),
                  NULL);
    mp_db_res_free(r);
    mp_db_release(tx); /* rolls back what was not committed */
    return done;
}

static int janitor_round(void *arg)
{
    order_state_t *os = arg;
    order_idem_sweep(os->svc);
    int freed = 0;
    for (int i = 0; i < 20; i++) { /* a bounded round; a positive return runs the next one at once */
        int one = free_one_abandoned(os);
        if (one <= 0)
            return freed;
        freed++;
    }
    return freed;
}

mp_status_t order_idem_janitor_start(order_state_t *os)
{
    /* look often enough that a claim is freed within about 1.25x its age limit, and a release_pending one within
     * seconds (a round is one indexed query), but not more than once a second */
    int64_t every = os->cfg.abandoned_claim_ms / 4;
    every = every < 1000 ? 1000 : every > 5000 ? 5000 : every;
    return mp_poller_start(&os->janitor, "order", (int)every, janitor_round, os);
}

void order_idem_janitor_stop(order_state_t *os)
{
    mp_poller_stop(os->janitor);
    os->janitor = NULL;
}
