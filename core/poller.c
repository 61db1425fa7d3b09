/*
 * poller.c: a thread doing rounds of work when woken or every poll interval
 * (see mp/poller.h). A kick that arrives during a round is remembered, so
 * work made while a round runs is never left for the next interval.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/log.h"
#include "mp/poller.h"

struct mp_poller {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicked, stopping;
    int poll_ms;
    const char *service;
    mp_poller_round_fn round;
    void *arg;
};

static bool stopping(mp_poller_t *p)
{
    pthread_mutex_lock(&p->mu);
    int s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

static void wait_for_work(mp_poller_t *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += p->poll_ms / 1000;
    ts.tv_nsec += (long)(p->poll_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->kicked && !p->stopping)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) != 0)
            break;
    p->kicked = 0;
    pthread_mutex_unlock(&p->mu);
}

static void *poller_main(void *arg)
{
    mp_poller_t *p = arg;
    mp_log_set_thread_service(p->service);
    while (!stopping(p))
        if (p->round(p->arg) <= 0)
            wait_for_work(p);
    mp_log_set_thread_service(NULL);
    return NULL;
}

mp_status_t mp_poller_start(mp_poller_t **out, const char *service, int poll_ms, mp_poller_round_fn round, void *arg)
{
    mp_poller_t *p = mp_xcalloc(1, sizeof(*p));
    p->poll_ms = poll_ms > 0 ? poll_ms : 500;
    p->service = service;
    p->round = round;
    p->arg = arg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->thread, NULL, poller_main, p) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return mp_err_set(MP_EINTERNAL, "cannot start a thread");
    }
    *out = p;
    return MP_OK;
}

void mp_poller_kick(mp_poller_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->kicked = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void mp_poller_stop(mp_poller_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
