/*
 * notification.c: the Notification service: settings, the adapter it
 * delivers through, its lifecycle (the `notification` durable consumer and
 * the delivery thread), and the caller's notifications: list, read, count.
 *
 * Notifications belong to one user; anyone else gets 404 for them. Lists
 * are keyset-paginated on (created_at, id), newest first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/b64url.h"
#include "mp/buf.h"
#include "mp/input.h"
#include "notification_int.h"

notif_state_t notif_state;

static const notif_adapter_t *const adapters[] = {&notif_adapter_log, &notif_adapter_file, &notif_adapter_webhook,
                                                  NULL};

/* ---- list ------------------------------------------------------------------------------------ */

/* A cursor is base64url("<created_at in unix microseconds>,<id>") of the page's last notification. */
static bool cursor_decode(const char *cursor, char us[24], char id[37])
{
    unsigned char raw[80];
    size_t len = strlen(cursor);
    long n = len <= 100 ? mp_b64url_decode(raw, cursor, len) : -1;
    if (n < 38 || n > 60)
        return false;
    raw[n] = '\0';
    const char *s = (const char *)raw, *comma = strchr(s, ',');
    if (comma == NULL || comma == s || comma - s > 20 || strspn(s, "0123456789") != (size_t)(comma - s) ||
        !mp_uuid_valid(comma + 1))
        return false;
    snprintf(us, 24, "%.*s", (int)(comma - s), s);
    snprintf(id, 37, "%s", comma + 1);
    return true;
}

static mp_status_t notif_list(mp_svc_req_t *req)
{
    mp_input_t in;
    int64_t limit;
    const char *cursor;
    bool unread = false;
    char us[24] = "", after[37] = "", lim[24];
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to see your notifications");
    mp_input_init(&in, req->input);
    mp_input_page(&in, &limit, &cursor);
    mp_input_bool(&in, "unread", MP_IN_PARAM, &unread);
    mp_input_only(&in, MP_INPUT_FIELDS("unread", "limit", "cursor"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (cursor && !cursor_decode(cursor, us, after))
        return mp_svc_reply_problem(req, 400, "cursor is malformed; use next_cursor from the previous page", NULL);
    snprintf(lim, sizeof(lim), "%lld", (long long)limit + 1);

    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(
        &res, mp_svc_db(req->svc),
        "SELECT notification.notification_json(n)::text, (extract(epoch FROM n.created_at) * 1000000)::bigint, n.id "
        "FROM notification.notifications n WHERE n.user_id = $1 AND (NOT $2::bool OR n.read_at IS NULL) AND "
        "($3::bigint IS NULL OR (n.created_at, n.id) < ('epoch'::timestamptz + $3::bigint * interval '1 microsecond', "
        "$4::uuid)) ORDER BY n.created_at DESC, n.id DESC LIMIT $5::int",
        5, MP_DB_PARAMS(req->auth_sub, unread ? "true" : "false", cursor ? us : NULL, cursor ? after : NULL, lim));
    if (st != MP_OK)
        return st;
    int rows = mp_db_rows(res), shown = rows > limit ? (int)limit : rows;
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_puts(&b, "{\"items\":[");
    for (int i = 0; i < shown; i++)
        mp_buf_printf(&b, "%s%s", i ? "," : "", mp_db_get(res, i, 0));
    mp_buf_puts(&b, "],\"next_cursor\":");
    if (rows > limit) {
        char raw[64], enc[96];
        int n = snprintf(raw, sizeof(raw), "%s,%s", mp_db_get(res, shown - 1, 1), mp_db_get(res, shown - 1, 2));
        mp_b64url_encode(enc, (const unsigned char *)raw, (size_t)n);
        mp_buf_printf(&b, "\"%s\"}", enc);
    } else {
        mp_buf_puts(&b, "null}");
    }
    mp_db_res_free(res);
    st = mp_svc_reply_raw(req, 200, "application/json", b.base, b.len);
    mp_buf_dispose(&b);
    return st;
}

/* ---- read, count -------------------------------------------------------------------------------- */

static mp_status_t notif_read(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37];
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to read your notifications");
    mp_input_init(&in, req->input);
    mp_input_uuid(&in, "id", MP_IN_REQUIRED | MP_IN_PARAM, id);
    mp_input_only(&in, MP_INPUT_FIELDS("id"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    mp_db_res_t *res = NULL;
    /* reading twice keeps the first read time */
    mp_status_t st =
        mp_db_exec_once(&res, mp_svc_db(req->svc),
                        "UPDATE notification.notifications n SET read_at = coalesce(n.read_at, now()) "
                        "WHERE n.id = $1 AND n.user_id = $2 RETURNING notification.notification_json(n)::text",
                        2, MP_DB_PARAMS(id, req->auth_sub));
    if (st == MP_OK && mp_db_rows(res) == 0)
        st = mp_svc_reply_problem(req, 404, "no such notification", NULL);
    else if (st == MP_OK)
        st = mp_svc_reply_raw(req, 200, "application/json", mp_db_get(res, 0, 0), strlen(mp_db_get(res, 0, 0)));
    mp_db_res_free(res);
    return st;
}

static mp_status_t notif_count(mp_svc_req_t *req)
{
    mp_input_t in;
    bool unread = false;
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to count your notifications");
    mp_input_init(&in, req->input);
    mp_input_bool(&in, "unread", MP_IN_PARAM, &unread);
    mp_input_only(&in, MP_INPUT_FIELDS("unread"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc),
                                     "SELECT count(*) FROM notification.notifications "
                                     "WHERE user_id = $1 AND (NOT $2::bool OR read_at IS NULL)",
                                     2, MP_DB_PARAMS(req->auth_sub, unread ? "true" : "false"));
    if (st == MP_OK)
        st = mp_svc_reply_json(req, 200,
                               json_pack("{s:I}", "count", (json_int_t)strtoll(mp_db_get(res, 0, 0), NULL, 10)));
    mp_db_res_free(res);
    return st;
}

/* ---- the service ---------------------------------------------------------------------------------- */

static void notif_configure(mp_svc_t *svc, mp_cfg_t *cfg)
{
    const char *names[8] = {0};
    size_t n = 0;
    for (; adapters[n] && n < 7; n++)
        names[n] = adapters[n]->name;
    notif_state.adapter = adapters[mp_cfg_enum(cfg, "notification.adapter", "log", names)];
    for (size_t i = 0; i < n; i++)
        if (adapters[i]->configure)
            adapters[i]->configure(cfg, adapters[i] == notif_state.adapter);
    notif_settings_t *c = &notif_state.cfg;
    c->max_attempts = (int)mp_cfg_int(cfg, "notification.max_attempts", 5, 1, 50);
    c->retry_base_ms = (int)mp_cfg_duration_ms(cfg, "notification.retry_base", 500, 1, 3600000);
    c->retry_max_ms = (int)mp_cfg_duration_ms(cfg, "notification.retry_max", 300000, 1, 86400000);
    c->consumer_workers = (int)mp_cfg_int(cfg, "notification.consumer_workers", 2, 1, 32);
}

static mp_status_t notif_init(mp_svc_t *svc)
{
    notif_state.svc = svc;
    return notif_state.adapter->init ? notif_state.adapter->init(mp_svc_cfg(svc)) : MP_OK;
}

static mp_status_t notif_start(mp_svc_t *svc)
{
    mp_status_t st = notif_deliver_start(&notif_state);
    if (st != MP_OK)
        return st;
    mp_consumer_opts_t o = {.bus = mp_svc_bus(svc),
                            .db = mp_svc_db(svc),
                            .schema = NOTIFICATION_SCHEMA,
                            .durable = "notification",
                            .filter = "events.notification.requested",
                            .handler = notif_on_request,
                            .arg = &notif_state,
                            .after_commit = notif_deliver_kick,
                            .log_service = "notification",
                            .workers = notif_state.cfg.consumer_workers};
    mp_log_kv(MP_LOG_INFO, NULL, "delivering notifications", "adapter", notif_state.adapter->name, NULL);
    return mp_consumer_start(&notif_state.requests, &o);
}

static void notif_stop(mp_svc_t *svc)
{
    mp_consumer_stop(notif_state.requests);
    notif_state.requests = NULL;
    notif_deliver_stop(&notif_state);
}

static void notif_fini(mp_svc_t *svc)
{
    if (notif_state.adapter->fini)
        notif_state.adapter->fini();
}

static const mp_endpoint_t notif_endpoints[] = {
    {"list", notif_list},
    {"read", notif_read},
    {"count", notif_count},
    {NULL},
};

MP_SERVICE(notification, .endpoints = notif_endpoints, .needs = MP_NEEDS_DB, .configure = notif_configure,
           .init = notif_init, .start = notif_start, .stop = notif_stop, .fini = notif_fini);
