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
#include "mp/cursor.h"
#include "mp/input.h"
#include "mp/page.h"
#include "notification_int.h"

notif_state_t notif_state;

static const notif_adapter_t *const adapters[] = {&notif_adapter_log, &notif_adapter_file, &notif_adapter_webhook,
                                                  NULL};

/* ---- list ------------------------------------------------------------------------------------ */

/* a cursor belongs to one listing: all notifications, or unread ones only */
#define LIST_KIND_ALL "notification.list.v1"
#define LIST_KIND_UNREAD "notification.list.v1.unread"

static mp_status_t notif_list(mp_svc_req_t *req)
{
    mp_input_t in;
    int64_t limit;
    const char *cursor, *after[2] = {NULL, NULL};
    bool unread = false;
    char cbuf[600], lim[24];
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to see your notifications");
    mp_input_init(&in, req->input);
    mp_input_page(&in, &limit, &cursor);
    mp_input_bool(&in, "unread", MP_IN_PARAM, &unread);
    mp_input_only(&in, MP_INPUT_FIELDS("unread", "limit", "cursor"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    const char *kind = unread ? LIST_KIND_UNREAD : LIST_KIND_ALL;
    if (cursor && (mp_cursor_decode(after, 2, cbuf, sizeof(cbuf), kind, cursor) != MP_OK || !mp_uuid_valid(after[1])))
        return mp_svc_reply_problem(req, 400, "parameter cursor: not a cursor of this listing", NULL);
    snprintf(lim, sizeof(lim), "%lld", (long long)limit + 1);

    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(
        &res, mp_svc_db(req->svc),
        "SELECT notification.notification_json(n)::text, to_char(n.created_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), n.id FROM notification.notifications n WHERE n.user_id = $1 AND "
        "(NOT $2::bool OR n.read_at IS NULL) AND ($3::timestamptz IS NULL OR (n.created_at, n.id) < "
        "($3::timestamptz, $4::uuid)) ORDER BY n.created_at DESC, n.id DESC LIMIT $5::int",
        5, MP_DB_PARAMS(req->auth_sub, unread ? "true" : "false", after[0], after[1], lim));
    if (st == MP_EINVAL)
        return mp_svc_reply_problem(req, 400, "parameter cursor: not a cursor of this listing", NULL);
    if (st != MP_OK)
        return st;
    mp_svc_reply_header(req, "Cache-Control", "private, no-store");
    st = mp_svc_reply_page(req, res, limit, kind, (mp_page_cols_t){.json = 0, .key = 1, .id = 2});
    mp_db_res_free(res);
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
    /* one statement per question, each with the plan that fits it (no "NOT $2 OR ..." catch-all) */
    mp_status_t st = mp_db_exec_once(
        &res, mp_svc_db(req->svc),
        unread ? "SELECT count(*) FROM notification.notifications WHERE user_id = $1 AND read_at IS NULL"
               : "SELECT count(*) FROM notification.notifications WHERE user_id = $1",
        1, MP_DB_PARAMS(req->auth_sub));
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
