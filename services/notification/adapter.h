/*
 * adapter.h: how a notification leaves moonport. One file per adapter
 * (adapter_<name>.c); notification.c lists them and `notification.adapter`
 * picks one: log (the default, for `make run`), file (one JSON file per
 * message, for tests) or webhook (a signed HTTP POST).
 *
 * The delivery thread (deliver.c) calls send() for one message at a time and
 * owns retrying: send() makes one attempt and says whether it worked.
 */
#ifndef MP_NOTIFICATION_ADAPTER_H
#define MP_NOTIFICATION_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include "mp/cfg.h"
#include "mp/status.h"

typedef struct notif_message {
    const char *id;            /* the notification's id */
    const char *user_id;       /* its owner */
    const char *template_name; /* "order_confirmed" */
    const char *json;          /* the whole message as JSON (what file and webhook deliver), `len` bytes */
    size_t len;
} notif_message_t;

typedef struct notif_adapter {
    const char *name;
    /* reads the adapter's settings; `chosen` says whether it is the one configured, so required settings are only
     * required then (errors go to mp_cfg_error_at) */
    void (*configure)(mp_cfg_t *cfg, bool chosen);
    /* when the notification role starts; may be NULL */
    mp_status_t (*init)(mp_cfg_t *cfg);
    void (*fini)(void);
    /* one delivery attempt. MP_OK when delivered; otherwise a status with mp_err_set() detail for the log and the
     * dead letter (no secrets). Blocking; the delivery thread only. */
    mp_status_t (*send)(const notif_message_t *m);
} notif_adapter_t;

extern const notif_adapter_t notif_adapter_log, notif_adapter_file, notif_adapter_webhook;

#endif
