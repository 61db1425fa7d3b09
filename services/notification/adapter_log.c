/*
 * adapter_log.c: delivers a notification by writing a log line (the default
 * for `make run`: you see what would have been sent). The line names the
 * notification, its owner, template and title; not the body (CONVENTIONS.md:
 * no full bodies in logs).
 */
#include "mp/json.h"
#include "mp/log.h"
#include "adapter.h"

static mp_status_t log_send(const notif_message_t *m)
{
    json_t *v = NULL;
    const char *title = NULL;
    if (mp_json_parse(&v, m->json, m->len) == MP_OK)
        title = mp_json_str(v, "title");
    mp_log_kv(MP_LOG_INFO, NULL, "notification delivered", "adapter", "log", "notification_id", m->id, "user_id",
              m->user_id, "template", m->template_name, "title", title, NULL);
    json_decref(v);
    return MP_OK;
}

const notif_adapter_t notif_adapter_log = {.name = "log", .send = log_send};
