/*
 * payment.c: the payment role: its settings, the adapter it charges
 * through, and its lifecycle (outbox publisher, the `payment` durable
 * consumer on events.order.*). The saga step itself is charge.c.
 */
#include <string.h>
#include "payment_int.h"

payment_state_t payment_state;

/* every adapter this binary has; `payment.adapter` picks one */
static const pay_adapter_t *const adapters[] = {&pay_adapter_sandbox, NULL};

static void payment_configure(mp_svc_t *svc, mp_cfg_t *cfg)
{
    const char *names[8] = {0};
    size_t n = 0;
    for (; adapters[n] && n < 7; n++)
        names[n] = adapters[n]->name;
    payment_state.adapter = adapters[mp_cfg_enum(cfg, "payment.adapter", "sandbox", names)];
    for (size_t i = 0; i < n; i++)
        if (adapters[i]->configure)
            adapters[i]->configure(cfg);
    payment_settings_t *c = &payment_state.cfg;
    c->max_attempts = (int)mp_cfg_int(cfg, "payment.max_attempts", 4, 1, 20);
    c->retry_base_ms = (int)mp_cfg_duration_ms(cfg, "payment.retry_base", 100, 1, 60000);
    c->retry_max_ms = (int)mp_cfg_duration_ms(cfg, "payment.retry_max", 2000, 1, 600000);
    c->consumer_workers = (int)mp_cfg_int(cfg, "payment.consumer_workers", 4, 1, 64);
    /* how long a charge may run before JetStream redelivers its event (to this or another instance); the handler
     * extends it while it retries, so it bounds one provider call, and how soon a crashed instance's work resumes */
    c->ack_wait_ms = (int)mp_cfg_duration_ms(cfg, "payment.ack_wait", 30000, 1000, 600000);
}

static mp_status_t payment_init(mp_svc_t *svc)
{
    mp_status_t st;
    payment_state.svc = svc;
    if (payment_state.adapter->init && (st = payment_state.adapter->init(mp_svc_cfg(svc))) != MP_OK)
        return st;
    mp_outbox_opts_t o = {.bus = mp_svc_bus(svc), .db = mp_svc_db(svc), .schema = PAYMENT_SCHEMA};
    return mp_outbox_start(&payment_state.outbox, &o);
}

static void kick_outbox(void *arg)
{
    mp_outbox_kick(((payment_state_t *)arg)->outbox);
}

static mp_status_t payment_start(mp_svc_t *svc)
{
    mp_consumer_opts_t o = {.bus = mp_svc_bus(svc),
                            .db = mp_svc_db(svc),
                            .schema = PAYMENT_SCHEMA,
                            .durable = "payment",
                            .filter = "events.order.*",
                            .handler = payment_on_order_event,
                            .arg = &payment_state,
                            .after_commit = kick_outbox,
                            .log_service = "payment",
                            .workers = payment_state.cfg.consumer_workers,
                            .ack_wait_ms = payment_state.cfg.ack_wait_ms};
    mp_log_kv(MP_LOG_INFO, NULL, "charging through a payment adapter", "adapter", payment_state.adapter->name, NULL);
    return mp_consumer_start(&payment_state.orders, &o);
}

static void payment_stop(mp_svc_t *svc)
{
    mp_consumer_stop(payment_state.orders);
    payment_state.orders = NULL;
}

static void payment_fini(mp_svc_t *svc)
{
    mp_outbox_stop(payment_state.outbox);
    payment_state.outbox = NULL;
    if (payment_state.adapter->fini)
        payment_state.adapter->fini();
}

MP_SERVICE(payment, .needs = MP_NEEDS_DB, .configure = payment_configure, .init = payment_init, .start = payment_start,
           .stop = payment_stop, .fini = payment_fini);
