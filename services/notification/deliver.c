/*
 * deliver.c: the delivery thread. It takes the oldest pending delivery that
 * is due (FOR UPDATE SKIP LOCKED, so replicas never send one message side by
 * side), makes one attempt through the adapter and records the outcome in
 * the same transaction: delivered; or due again after a backoff that doubles
 * from notification.retry_base with jitter; or, after
 * notification.max_attempts, dead, with a dead_letters row keeping the
 * message and the last error.
 *
 * Delivery is at least once: a crash after the adapter succeeded and before
 * the commit sends the message again (webhook receivers de-duplicate by the
 * message id, which never changes). Woken after every stored notification,
 * it also looks every 500 ms for deliveries whose backoff ran out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/events.h"
#include "mp/log.h"
#include "mp/poller.h"
#include "mp/reqctx.h"
#include "notification_int.h"

#define POLL_MS 500

typedef struct notif_deliverer {
    notif_state_t *s;
    mp_poller_t *poller;
    mp_events__streak_t streak;
} deliverer_t;

static int64_t backoff_ms(const notif_settings_t *cfg, int attempts)
{
    int64_t d = cfg->retry_base_ms;
    for (int i = 1; i < attempts && d < cfg->retry_max_ms; i++)
        d *= 2;
    if (d > cfg->retry_max_ms)
        d = cfg->retry_max_ms;
    return d * 3 / 4 + (int64_t)(mp_rand64() % (uint64_t)(d / 2 + 1));
}

/* Records a failed attempt: due again later, or dead with a dead letter after the last one. */
static mp_status_t record_failure(mp_db_conn_t *c, const notif_state_t *s, const char *id, int attempts,
                                  const char *error, const char *payload)
{
    char n[12], wait[24];
    snprintf(n, sizeof(n), "%d", attempts);
    if (attempts < s->cfg.max_attempts) {
        snprintf(wait, sizeof(wait), "%lld", (long long)backoff_ms(&s->cfg, attempts));
        return mp_db_exec(NULL, c,
                          "UPDATE notification.deliveries SET attempts = $2::int, last_error = $3, next_attempt_at = "
                          "now() + $4::bigint * interval '1 millisecond' WHERE notification_id = $1",
                          4, MP_DB_PARAMS(id, n, error, wait));
    }
    mp_log_kv(MP_LOG_ERROR, NULL, "notification not delivered; dead letter written", "notification_id", id, "adapter",
              s->adapter->name, "attempts", n, "error", error, NULL);
    mp_status_t st = mp_db_exec(NULL, c,
                                "UPDATE notification.deliveries SET status = 'dead', attempts = $2::int, last_error = "
                                "$3 WHERE notification_id = $1",
                                3, MP_DB_PARAMS(id, n, error));
    if (st == MP_OK)
        st = mp_db_exec(NULL, c,
                        "INSERT INTO notification.dead_letters (notification_id, adapter, attempts, last_error, "
                        "payload) VALUES ($1, $2, $3::int, $4, $5::jsonb)",
                        5, MP_DB_PARAMS(id, s->adapter->name, n, error, payload));
    return st;
}

/* Makes one due delivery. Returns 1 when there was one, 0 when none is due, -1 on a database error. */
static int deliver_one(deliverer_t *d)
{
    notif_state_t *s = d->s;
    mp_db_conn_t *c = NULL;
    mp_db_res_t *res = NULL;
    int done = 0;
    mp_status_t st = mp_db_acquire(&c, mp_svc_db(s->svc), 1000);
    if (st == MP_OK)
        st = mp_db_begin(c);
    if (st == MP_OK)
        st = mp_db_exec(&res, c,
                        "SELECT d.notification_id, d.attempts, n.user_id, n.template, "
                        "notification.message_json(n)::text FROM notification.deliveries d "
                        "JOIN notification.notifications n ON n.id = d.notification_id "
                        "WHERE d.status = 'pending' AND d.next_attempt_at <= now() "
                        "ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED",
                        0, NULL);
    if (st == MP_OK && mp_db_rows(res) == 1) {
        const char *id = mp_db_get(res, 0, 0), *payload = mp_db_get(res, 0, 4);
        int attempts = atoi(mp_db_get(res, 0, 1)) + 1;
        notif_message_t m = {.id = id,
                             .user_id = mp_db_get(res, 0, 2),
                             .template_name = mp_db_get(res, 0, 3),
                             .json = payload,
                             .len = strlen(payload)};
        mp_err_clear();
        if (s->adapter->send(&m) == MP_OK) {
            char n[12];
            snprintf(n, sizeof(n), "%d", attempts);
            st = mp_db_exec(NULL, c,
                            "UPDATE notification.deliveries SET status = 'delivered', attempts = $2::int, "
                            "delivered_at = now(), last_error = NULL WHERE notification_id = $1",
                            2, MP_DB_PARAMS(id, n));
        } else {
            char error[256];
            snprintf(error, sizeof(error), "%s", *mp_err_get() ? mp_err_get() : "delivery failed");
            st = record_failure(c, s, id, attempts, error, payload);
        }
        done = 1;
    }
    if (st == MP_OK)
        st = mp_db_commit(c);
    mp_db_res_free(res);
    mp_db_release(c);
    if (st != MP_OK) {
        mp_events__failed(&d->streak, "cannot record notification deliveries", "adapter", s->adapter->name,
                          mp_err_get());
        return -1;
    }
    mp_events__ok(&d->streak, "recording notification deliveries again", "adapter", s->adapter->name);
    return done;
}

/* A poller round: the next delivery at once after one was made. */
static int deliver_round(void *arg)
{
    return deliver_one(arg);
}

mp_status_t notif_deliver_start(notif_state_t *s)
{
    deliverer_t *d = mp_xcalloc(1, sizeof(*d));
    d->s = s;
    if (mp_poller_start(&d->poller, "notification", POLL_MS, deliver_round, d) != MP_OK) {
        free(d);
        return mp_err_set(MP_EINTERNAL, "notification: cannot start the delivery thread");
    }
    s->deliverer = d;
    return MP_OK;
}

void notif_deliver_kick(void *state)
{
    deliverer_t *d = ((notif_state_t *)state)->deliverer;
    if (d)
        mp_poller_kick(d->poller);
}

void notif_deliver_stop(notif_state_t *s)
{
    if (s->deliverer == NULL)
        return;
    mp_poller_stop(s->deliverer->poller);
    free(s->deliverer);
    s->deliverer = NULL;
}
