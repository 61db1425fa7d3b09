/*
 * notification_int.h: what the Notification service's files share.
 *
 * Files: notification.c (the service: settings, lifecycle, list, read,
 * count), receive.c (events.notification.requested -> a stored notification
 * and a pending delivery), templates.c (the texts, per template and
 * locale), deliver.c (the delivery thread: retries, backoff, dead letters),
 * adapter.h and adapter_<name>.c, http_post.c (the webhook's HTTP client).
 */
#ifndef MP_NOTIFICATION_INT_H
#define MP_NOTIFICATION_INT_H

#include <jansson.h>
#include "mp/consumer.h"
#include "mp/service.h"
#include "adapter.h"

#define NOTIFICATION_SCHEMA "notification"

typedef struct notif_settings {
    int max_attempts;     /* delivery attempts before a dead letter */
    int retry_base_ms;    /* wait before the second attempt; doubles, with jitter */
    int retry_max_ms;     /* cap on one wait */
    int consumer_workers; /* threads taking events.notification.requested */
} notif_settings_t;

typedef struct notif_state {
    notif_settings_t cfg;
    const notif_adapter_t *adapter;
    mp_svc_t *svc;
    mp_consumer_t *requests;
    struct notif_deliverer *deliverer;
} notif_state_t;

extern notif_state_t notif_state;

/** Renders template `name` in `locale` (falling back to "en") with `data` into new strings `*title` and `*body`
 *  (caller frees), and writes the locale used into `used`. Errors: MP_ENOTFOUND (no such template). */
mp_status_t notif_render(char **title, char **body, char used[8], const char *name, const char *locale,
                         const json_t *data);

/** The consumer handler for events.notification.requested (mp/consumer.h). */
mp_status_t notif_on_request(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev);

/** Starts / wakes / stops the delivery thread. */
mp_status_t notif_deliver_start(notif_state_t *st);
void notif_deliver_kick(void *state);
void notif_deliver_stop(notif_state_t *st);

#endif
