/*
 * receive.c: events.notification.requested {user_id, template, locale?,
 * data} becomes a stored notification and a pending delivery, in one
 * transaction with the consumer's handled-mark; the delivery thread is woken
 * after the commit. A request naming an unknown template or lacking a user
 * can never succeed: it is logged and dropped (mp/consumer.h).
 */
#include <stdlib.h>
#include <string.h>
#include "mp/json.h"
#include "notification_int.h"

mp_status_t notif_on_request(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev)
{
    notif_state_t *s = arg;
    const char *user_id = mp_json_str(ev->data, "user_id"), *name = mp_json_str(ev->data, "template");
    const char *locale = mp_json_str(ev->data, "locale");
    json_t *data = json_object_get(ev->data, "data");
    char *title = NULL, *body = NULL, used[8];
    mp_db_conn_t *tx = NULL;
    mp_db_res_t *res = NULL;

    if (user_id == NULL || *user_id == '\0' || name == NULL || (data != NULL && !json_is_object(data)))
        return mp_err_set(MP_EINVAL, "notification.requested needs user_id, template and an object data");
    mp_status_t st = notif_render(&title, &body, used, name, locale, data);
    if (st != MP_OK)
        return st;
    char *data_text = data ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    st = mp_consumer_begin(&tx, m);
    if (st == MP_OK)
        st = mp_db_exec(&res, tx,
                        "INSERT INTO notification.notifications (event_id, user_id, template, locale, title, body, "
                        "data) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT (event_id) DO NOTHING "
                        "RETURNING id",
                        7, MP_DB_PARAMS(ev->id, user_id, name, used, title, body, data_text));
    if (st == MP_OK && mp_db_rows(res) == 1)
        st = mp_db_exec(NULL, tx, "INSERT INTO notification.deliveries (notification_id, adapter) VALUES ($1, $2)", 2,
                        MP_DB_PARAMS(mp_db_get(res, 0, 0), s->adapter->name));
    mp_db_res_free(res);
    free(data_text);
    free(title);
    free(body);
    return st == MP_ECONFLICT ? MP_OK : st;
}
