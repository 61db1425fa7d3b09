/*
 * adapter.h: the interface between the payment role and a payment provider.
 * One file per adapter (adapter_<name>.c); payment.c lists them and picks
 * one by `payment.adapter`. docs/payments.md shows how to add a real one.
 *
 * The role calls an adapter from its consumer threads, possibly several at
 * once, so adapters are thread-safe. Calls block (an HTTPS call to the
 * provider); the role retries PAY_RETRY with backoff and calls again with
 * the same order id, which adapters pass to the provider as its idempotency
 * key: a charge repeated after a timeout or a crash is never taken twice.
 *
 * The payment token is an opaque token the provider issued to the client
 * (never card data). Adapters pass it to the provider and nowhere else: not
 * to logs, not to errors, not to storage.
 */
#ifndef MP_PAYMENT_ADAPTER_H
#define MP_PAYMENT_ADAPTER_H

#include <stdint.h>
#include "mp/cfg.h"
#include "mp/status.h"

typedef enum {
    PAY_SUCCEEDED, /* money taken (or returned, for a refund) */
    PAY_DECLINED,  /* a final no: the order is cancelled */
    PAY_RETRY,     /* the provider could not answer now: try again later with the same order id */
} pay_outcome_t;

typedef struct pay_charge {
    const char *order_id; /* the idempotency key at the provider */
    const char *user_id;
    int64_t amount; /* minor units */
    const char *currency;
    const char *token; /* secret-ish: never log it */
} pay_charge_t;

typedef struct pay_result {
    pay_outcome_t outcome;
    char provider_ref[64]; /* the provider's id for the charge or refund */
    char reason[64];       /* why not: a short code ("card_declined", "provider_unavailable") */
} pay_result_t;

typedef struct pay_adapter {
    const char *name; /* the value of `payment.adapter` */
    /* reads `payment.<name>.*` settings; runs at start-up for every adapter, so a typo in any section stops it */
    void (*configure)(mp_cfg_t *cfg);
    /* opens what the adapter needs (a client, keys via mp_cfg_secret) when the payment role starts; may be NULL */
    mp_status_t (*init)(mp_cfg_t *cfg);
    void (*fini)(void);
    /* charges; fills *out. Blocking; any thread. */
    void (*charge)(pay_result_t *out, const pay_charge_t *c);
    /* returns a successful charge in full; fills *out. Blocking; any thread. */
    void (*refund)(pay_result_t *out, const pay_charge_t *c, const char *provider_ref);
} pay_adapter_t;

extern const pay_adapter_t pay_adapter_sandbox;

#endif
