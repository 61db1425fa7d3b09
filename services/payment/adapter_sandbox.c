/*
 * adapter_sandbox.c: a payment provider's test mode, deterministic by token
 * as real providers' test modes are:
 *
 *   tok_ok        succeeds
 *   tok_declined  is declined (card_declined)
 *   tok_slow      succeeds after `payment.sandbox.slow` (default 2 s)
 *   tok_error     fails transiently twice for an order, then succeeds
 *   anything else is declined (invalid_token)
 *
 * Refunds always succeed. tok_error's count is kept per order id in memory,
 * as a provider would count attempts under one idempotency key; it resets
 * when the process restarts, which only means more successes sooner.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mp/fiber.h"
#include "adapter.h"

#define ERRORS_BEFORE_SUCCESS 2
#define TRACKED 1024

static int64_t slow_ms = 2000;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char order_id[37];
    int errors;
} tracked[TRACKED];
static unsigned next_slot;

static void sandbox_configure(mp_cfg_t *cfg)
{
    slow_ms = mp_cfg_duration_ms(cfg, "payment.sandbox.slow", 2000, 0, 60000);
}

/* How many transient errors this order has had so far; counts this call. */
static int count_error(const char *order_id)
{
    pthread_mutex_lock(&mu);
    int n = -1;
    for (unsigned i = 0; i < TRACKED && n < 0; i++)
        if (strcmp(tracked[i].order_id, order_id) == 0)
            n = tracked[i].errors++;
    if (n < 0) {
        unsigned i = next_slot++ % TRACKED;
        snprintf(tracked[i].order_id, sizeof(tracked[i].order_id), "%s", order_id);
        tracked[i].errors = 1;
        n = 0;
    }
    pthread_mutex_unlock(&mu);
    return n;
}

static void succeed(pay_result_t *out, const char *kind, const char *order_id)
{
    out->outcome = PAY_SUCCEEDED;
    snprintf(out->provider_ref, sizeof(out->provider_ref), "sbx_%s_%.8s", kind, order_id);
}

static void sandbox_charge(pay_result_t *out, const pay_charge_t *c)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(c->token, "tok_ok") == 0) {
        succeed(out, "ch", c->order_id);
    } else if (strcmp(c->token, "tok_slow") == 0) {
        mp_fiber_sleep(slow_ms);
        succeed(out, "ch", c->order_id);
    } else if (strcmp(c->token, "tok_error") == 0) {
        if (count_error(c->order_id) < ERRORS_BEFORE_SUCCESS) {
            out->outcome = PAY_RETRY;
            snprintf(out->reason, sizeof(out->reason), "provider_unavailable");
        } else {
            succeed(out, "ch", c->order_id);
        }
    } else {
        out->outcome = PAY_DECLINED;
        snprintf(out->reason, sizeof(out->reason), "%s",
                 strcmp(c->token, "tok_declined") == 0 ? "card_declined" : "invalid_token");
    }
}

static void sandbox_refund(pay_result_t *out, const pay_charge_t *c, const char *provider_ref)
{
    memset(out, 0, sizeof(*out));
    succeed(out, "re", c->order_id);
}

const pay_adapter_t pay_adapter_sandbox = {
    .name = "sandbox",
    .configure = sandbox_configure,
    .charge = sandbox_charge,
    .refund = sandbox_refund,
};
