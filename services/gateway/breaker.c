/*
 * breaker.c: the circuit breaker state machine (see breaker.h).
 */
#include <string.h>
#include "breaker.h"

void gw_breaker_init(gw_breaker_t *b, const gw_breaker_opts_t *o)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    b->o = *o;
    if (b->o.window_ms <= 0)
        b->o.window_ms = 10000;
    if (b->o.bucket_ms <= 0)
        b->o.bucket_ms = 1000;
    if (b->o.failure_ratio <= 0 || b->o.failure_ratio > 1)
        b->o.failure_ratio = 0.5;
    if (b->o.min_requests <= 0)
        b->o.min_requests = 20;
    if (b->o.cooldown_ms <= 0)
        b->o.cooldown_ms = 5000;
    if (b->o.probes <= 0)
        b->o.probes = 3;
    b->nbuckets = (size_t)((b->o.window_ms + b->o.bucket_ms - 1) / b->o.bucket_ms);
    if (b->nbuckets > GW_BREAKER_MAX_BUCKETS)
        b->nbuckets = GW_BREAKER_MAX_BUCKETS;
    if (b->nbuckets == 0)
        b->nbuckets = 1;
    b->state = GW_CIRCUIT_CLOSED;
    atomic_init(&b->closed, true);
    for (size_t i = 0; i < GW_BREAKER_MAX_BUCKETS; i++)
        atomic_init(&b->buckets[i].epoch_calls, 0);
}

void gw_breaker_dispose(gw_breaker_t *b)
{
    pthread_mutex_destroy(&b->mu);
}

static void change(gw_breaker_t *b, gw_circuit_t to, gw_breaker_event_t *ev)
{
    ev->changed = true;
    ev->from = b->state;
    ev->to = to;
    b->state = to;
    atomic_store(&b->closed, to == GW_CIRCUIT_CLOSED);
}

static void clear_window(gw_breaker_t *b)
{
    for (size_t i = 0; i < b->nbuckets; i++) {
        atomic_store(&b->buckets[i].epoch_calls, 0);
        b->buckets[i].failures = 0;
    }
}

static uint64_t epoch_word(int64_t epoch)
{
    return (uint64_t)(uint32_t)epoch << 32;
}

/* Counts a success in the current bucket without the lock; false when the bucket still counts an older second (the
 * caller then moves it on under the lock). */
static bool count_success(gw_breaker_t *b, int64_t epoch)
{
    gw_bucket_count_t *cur = &b->buckets[epoch % (int64_t)b->nbuckets];
    uint64_t v = atomic_load_explicit(&cur->epoch_calls, memory_order_relaxed);
    while ((v & ~(uint64_t)UINT32_MAX) == epoch_word(epoch) && (uint32_t)v != UINT32_MAX)
        if (atomic_compare_exchange_weak_explicit(&cur->epoch_calls, &v, v + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static void open_circuit(gw_breaker_t *b, int64_t now_ms, gw_breaker_event_t *ev)
{
    change(b, GW_CIRCUIT_OPEN, ev);
    b->opened_at = now_ms;
    b->probes_out = b->probes_ok = 0;
}

bool gw_breaker_admit(gw_breaker_t *b, int64_t now_ms, bool *probe, int *retry_after_s, gw_breaker_event_t *ev)
{
    bool ok = true;
    *probe = false;
    ev->changed = false;
    if (atomic_load_explicit(&b->closed, memory_order_relaxed))
        return true; /* closed: every call goes through, nothing to count yet */
    pthread_mutex_lock(&b->mu);
    if (b->state == GW_CIRCUIT_OPEN && now_ms - b->opened_at >= b->o.cooldown_ms)
        change(b, GW_CIRCUIT_HALF_OPEN, ev);
    if (b->state == GW_CIRCUIT_HALF_OPEN) {
        if (b->probes_out + b->probes_ok < b->o.probes) {
            b->probes_out++;
            *probe = true;
        } else {
            ok = false;
            *retry_after_s = 1; /* the probes decide within their own deadlines */
        }
    } else if (b->state == GW_CIRCUIT_OPEN) {
        int64_t left = b->o.cooldown_ms - (now_ms - b->opened_at);
        *retry_after_s = (int)((left + 999) / 1000);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
        ok = false;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void gw_breaker_record(gw_breaker_t *b, int64_t now_ms, bool probe, bool failed, gw_breaker_event_t *ev)
{
    ev->changed = false;
    /* a success while closed only counts: no decision can follow from it */
    if (!probe && !failed && atomic_load_explicit(&b->closed, memory_order_relaxed) &&
        count_success(b, now_ms / b->o.bucket_ms))
        return;
    pthread_mutex_lock(&b->mu);
    if (probe) {
        if (b->state == GW_CIRCUIT_HALF_OPEN) {
            b->probes_out--;
            if (failed) {
                open_circuit(b, now_ms, ev);
            } else if (++b->probes_ok >= b->o.probes) {
                change(b, GW_CIRCUIT_CLOSED, ev);
                clear_window(b);
            }
        }
    } else if (b->state == GW_CIRCUIT_CLOSED) {
        /* calls admitted before the circuit opened count only while it is closed */
        int64_t epoch = now_ms / b->o.bucket_ms;
        gw_bucket_count_t *cur = &b->buckets[epoch % (int64_t)b->nbuckets];
        /* move the bucket on to this second; successes counted without the lock meanwhile see the new word */
        if ((atomic_load(&cur->epoch_calls) & ~(uint64_t)UINT32_MAX) != epoch_word(epoch)) {
            atomic_store(&cur->epoch_calls, epoch_word(epoch));
            cur->failures = 0;
        }
        atomic_fetch_add(&cur->epoch_calls, 1);
        cur->failures += failed;
        if (failed) {
            uint32_t calls = 0, failures = 0;
            for (size_t i = 0; i < b->nbuckets; i++) {
                uint64_t v = atomic_load(&b->buckets[i].epoch_calls);
                if (epoch - (int64_t)(v >> 32) < (int64_t)b->nbuckets) {
                    calls += (uint32_t)v;
                    failures += b->buckets[i].failures;
                }
            }
            if (calls >= (uint32_t)b->o.min_requests && (double)failures >= b->o.failure_ratio * (double)calls) {
                open_circuit(b, now_ms, ev);
                ev->ratio = (double)failures / (double)calls;
                ev->calls = calls;
                clear_window(b);
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
}

void gw_breaker_release(gw_breaker_t *b, bool probe)
{
    if (!probe)
        return;
    pthread_mutex_lock(&b->mu);
    if (b->state == GW_CIRCUIT_HALF_OPEN && b->probes_out > 0)
        b->probes_out--;
    pthread_mutex_unlock(&b->mu);
}

gw_circuit_t gw_breaker_state(gw_breaker_t *b)
{
    pthread_mutex_lock(&b->mu);
    gw_circuit_t s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}
