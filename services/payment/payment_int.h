/*
 * payment_int.h: what the payment role's files share.
 *
 * Files: payment.c (the role: settings, adapter choice, lifecycle),
 * charge.c (the saga step: order events in, payment events out),
 * adapter.h and adapter_<name>.c (providers).
 */
#ifndef MP_PAYMENT_INT_H
#define MP_PAYMENT_INT_H

#include "mp/consumer.h"
#include "mp/outbox.h"
#include "mp/service.h"
#include "adapter.h"

#define PAYMENT_SCHEMA "payment"

typedef struct payment_settings {
    int max_attempts;     /* provider calls per delivery of an event before it is put back for later */
    int retry_base_ms;    /* first wait between those calls; doubles, with jitter */
    int retry_max_ms;     /* cap on one wait */
    int consumer_workers; /* events handled at once (a slow provider call holds one) */
    int ack_wait_ms;      /* redelivery after a crash mid-charge (the durable's AckWait) */
} payment_settings_t;

typedef struct payment_state {
    payment_settings_t cfg;
    const pay_adapter_t *adapter;
    mp_svc_t *svc;
    mp_outbox_t *outbox;
    mp_consumer_t *orders; /* events.order.* */
} payment_state_t;

extern payment_state_t payment_state;

/** Handles events.order.created (charge) and events.order.cancelled (void or refund); ignores other order events.
 *  A consumer handler (mp/consumer.h). */
mp_status_t payment_on_order_event(void *arg, mp_consumer_msg_t *m, const mp_event_t *ev);

#endif
