/*
 * bus_serve.c: NATS responders backed by a worker pool (see
 * mp/bus_serve.h).
 *
 * The queue is a singly linked FIFO under one mutex. nats.c's delivery
 * thread pushes, workers pop; the condition variable wakes one worker per
 * push. Draining flips `draining` so workers exit once the queue is empty,
 * after the subscriptions are gone so nothing new arrives.
 *
 * With `nats_loop` and fibers the server is bus_serve_loop.c's instead:
 * this file then only gathers the routes and hands them over at
 * mp_bus_server_start().
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/bus_serve.h"
#include "mp/log.h"
#include "bus_serve_int.h"

typedef struct route {
    mp_bus_server_t *srv;
    mp_bus_handler_cb handler;
    void *arg;
    natsSubscription *sub;
    struct route *next;
} route_t;

typedef struct job {
    natsMsg *msg;
    route_t *route;
    int worker;
    struct job *next;
} job_t;

typedef struct worker {
    mp_bus_server_t *srv;
    int index;
} worker_t;

struct mp_bus_server {
    mp_bus_t *bus;
    mp_bus_server_opts_t opts;
    char *name;
    pthread_t *threads;
    worker_t *workers;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t idle_cv;
    job_t *head, *tail;
    size_t queued, running;
    int draining, joined;
    route_t *routes;
    _Atomic uint64_t expired, shed;
    /* serving on loop connections (bus_serve_loop.c): routes gathered until mp_bus_server_start() */
    bool loop_mode;
    mp_bus_lroute_t *lroutes;
    size_t nlroutes;
    mp_bus_lsrv_t *lsrv;
};

bool mp_bus_expired(mp_msg_t *req, int64_t now_ms)
{
    const char *d = mp_msg_header(req, MP_HDR_DEADLINE);
    if (d == NULL)
        return false;
    char *end;
    long long at = strtoll(d, &end, 10);
    if (end == d || *end != '\0')
        return false;
    return at <= (now_ms ? now_ms : mp_now_ms());
}

mp_status_t mp_bus_reply(mp_bus_t *bus, mp_msg_t *req, int status, const void *body, size_t len,
                         const mp_bus_hdr_t *extra, size_t nextra)
{
    const char *reply_to = natsMsg_GetReply(req);
    char code[8];
    natsMsg *m = NULL;

    if (reply_to == NULL || *reply_to == '\0')
        return MP_OK;
    snprintf(code, sizeof(code), "%d", status);
    /* on a serving loop's thread the reply must leave on the connection the request came by (allow_responses) */
    mp_bus_hdr_t h[16];
    size_t nh = 0;
    const char *rid = mp_msg_header(req, MP_HDR_REQUEST_ID);
    h[nh++] = (mp_bus_hdr_t){MP_HDR_STATUS, code};
    if (rid)
        h[nh++] = (mp_bus_hdr_t){MP_HDR_REQUEST_ID, rid};
    for (size_t i = 0; i < nextra && nh < 16; i++) /* callers pass at most 8 (mp_svc_req_t.hdrs) */
        if (extra[i].value)
            h[nh++] = extra[i];
    mp_status_t st;
    if (mp_bus__lsrv_reply(&st, reply_to, h, nh, body, len))
        return st;
    natsStatus s = natsMsg_Create(&m, reply_to, NULL, body, (int)len);
    for (size_t i = 0; s == NATS_OK && i < nh; i++)
        s = natsMsgHeader_Set(m, h[i].name, h[i].value);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(mp_bus_conn(bus), m);
    natsMsg_Destroy(m);
    return mp_bus__from_nats(s);
}

mp_status_t mp_bus_reply_plain(mp_bus_t *bus, mp_msg_t *req, const void *body, size_t len)
{
    const char *reply_to = natsMsg_GetReply(req);
    mp_status_t st;
    if (reply_to == NULL || *reply_to == '\0')
        return MP_OK;
    /* a user may answer only on the connection a request came by (allow_responses): a loop's, or nats.c's */
    if (mp_bus__lsrv_reply(&st, reply_to, NULL, 0, body, len))
        return st;
    return mp_bus__from_nats(natsConnection_Publish(mp_bus_conn(bus), reply_to, body, (int)len));
}

static void reply_overloaded(mp_bus_t *bus, natsMsg *msg, const char *why)
{
    char body[256];
    int n =
        snprintf(body, sizeof(body),
                 "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"%s\"}", why);
    mp_bus_reply(bus, msg, 503, body, (size_t)n, NULL, 0);
}

/* nats.c delivery thread: queue the request, or shed it when the queue is full */
static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    route_t *r = closure;
    mp_bus_server_t *srv = r->srv;

    pthread_mutex_lock(&srv->mu);
    if (srv->draining || srv->queued >= srv->opts.max_queue) {
        int draining = srv->draining;
        pthread_mutex_unlock(&srv->mu);
        atomic_fetch_add(&srv->shed, 1);
        reply_overloaded(srv->bus, msg, draining ? "the service is shutting down" : "the service is overloaded");
        natsMsg_Destroy(msg);
        return;
    }
    job_t *j = mp_xmalloc(sizeof(*j));
    j->msg = msg;
    j->route = r;
    j->next = NULL;
    if (srv->tail)
        srv->tail->next = j;
    else
        srv->head = j;
    srv->tail = j;
    srv->queued++;
    pthread_cond_signal(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

/* Pops the next job, or NULL. Under srv->mu. */
static job_t *pop_job(mp_bus_server_t *srv)
{
    job_t *j = srv->head;
    if (j) {
        srv->head = j->next;
        if (srv->head == NULL)
            srv->tail = NULL;
        srv->queued--;
        srv->running++;
    }
    return j;
}

static job_t *next_job(mp_bus_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    while (srv->head == NULL && !srv->draining)
        pthread_cond_wait(&srv->cv, &srv->mu);
    job_t *j = pop_job(srv);
    pthread_mutex_unlock(&srv->mu);
    return j;
}

static void job_done(mp_bus_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->running--;
    if (srv->queued == 0 && srv->running == 0)
        pthread_cond_broadcast(&srv->idle_cv);
    pthread_mutex_unlock(&srv->mu);
}

static void run_job(job_t *j)
{
    mp_bus_server_t *srv = j->route->srv;
    if (mp_bus_expired(j->msg, 0)) {
        /* the caller has given up; doing the work now only adds load */
        atomic_fetch_add(&srv->expired, 1);
    } else {
        j->route->handler(j->route->arg, j->msg, j->worker);
    }
    natsMsg_Destroy(j->msg);
    free(j);
    job_done(srv);
}

static void thread_loop(worker_t *w)
{
    job_t *j;
    while ((j = next_job(w->srv)) != NULL) {
        j->worker = w->index;
        run_job(j);
    }
}

static void *worker_main(void *p)
{
    worker_t *w = p;
    mp_bus_server_t *srv = w->srv;
    if (srv->opts.on_worker_start)
        srv->opts.on_worker_start(srv->opts.on_worker_start_arg, w->index);
    thread_loop(w);
    return NULL;
}

mp_status_t mp_bus_server_create(mp_bus_server_t **out, mp_bus_t *bus, const mp_bus_server_opts_t *opts)
{
    mp_bus_server_t *srv = mp_xcalloc(1, sizeof(*srv));
    srv->bus = bus;
    srv->opts = *opts;
    if (srv->opts.workers <= 0)
        srv->opts.workers = 4;
    if (srv->opts.max_queue == 0)
        srv->opts.max_queue = 4096;
    srv->name = mp_xstrdup(opts->name ? opts->name : "bus");
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    pthread_cond_init(&srv->idle_cv, NULL);
    srv->threads = mp_xcalloc((size_t)srv->opts.workers, sizeof(*srv->threads));
    srv->workers = mp_xcalloc((size_t)srv->opts.workers, sizeof(*srv->workers));
    if (opts->nats_loop && opts->fibers > 0) {
        srv->loop_mode = true; /* the loop workers start in mp_bus_server_start(), with every route known */
        *out = srv;
        return MP_OK;
    }
    pthread_mutex_lock(&srv->mu); /* nthreads grows while workers already look at it */
    for (int i = 0; i < srv->opts.workers; i++) {
        srv->workers[i] = (worker_t){.srv = srv, .index = i};
        if (pthread_create(&srv->threads[i], NULL, worker_main, &srv->workers[i]) != 0)
            break;
        srv->nthreads++;
    }
    pthread_mutex_unlock(&srv->mu);
    if (srv->nthreads == 0) {
        mp_bus_server_destroy(srv);
        return mp_err_set(MP_ENOMEM, "cannot start worker threads");
    }
    *out = srv;
    return MP_OK;
}

mp_status_t mp_bus_server_add(mp_bus_server_t *srv, const char *subject, const char *queue_group,
                              mp_bus_handler_cb handler, void *arg)
{
    if (srv->loop_mode) {
        if (srv->lsrv)
            return mp_err_set(MP_EINVAL, "bus server: routes are added before mp_bus_server_start()");
        srv->lroutes = mp_xrealloc(srv->lroutes, (srv->nlroutes + 1) * sizeof(*srv->lroutes));
        srv->lroutes[srv->nlroutes++] =
            (mp_bus_lroute_t){mp_xstrdup(subject), queue_group ? mp_xstrdup(queue_group) : NULL, handler, arg};
        return MP_OK;
    }
    route_t *r = mp_xcalloc(1, sizeof(*r));
    r->srv = srv;
    r->handler = handler;
    r->arg = arg;
    natsStatus s =
        queue_group ? natsConnection_QueueSubscribe(&r->sub, mp_bus_conn(srv->bus), subject, queue_group, on_request, r)
                    : natsConnection_Subscribe(&r->sub, mp_bus_conn(srv->bus), subject, on_request, r);
    /* our own bounded queue does the limiting; nats.c must not drop first */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(r->sub, -1, -1);
    if (s != NATS_OK) {
        natsSubscription_Destroy(r->sub);
        free(r);
        return mp_bus__from_nats(s);
    }
    pthread_mutex_lock(&srv->mu);
    r->next = srv->routes;
    srv->routes = r;
    pthread_mutex_unlock(&srv->mu);
    return MP_OK;
}

void mp_bus_server_drain(mp_bus_server_t *srv, int timeout_ms)
{
    if (srv->joined)
        return;
    if (srv->loop_mode) {
        mp_bus__lsrv_stop(srv->lsrv, timeout_ms);
        srv->lsrv = NULL;
        srv->joined = 1;
        return;
    }
    for (route_t *r = srv->routes; r; r = r->next)
        natsSubscription_Unsubscribe(r->sub);
    /* flush so the server stops routing to us before we stop serving */
    natsConnection_FlushTimeout(mp_bus_conn(srv->bus), 1000);

    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&srv->mu);
    while ((srv->queued > 0 || srv->running > 0) && pthread_cond_timedwait(&srv->idle_cv, &srv->mu, &until) == 0)
        ;
    job_t *left = srv->head;
    srv->head = srv->tail = NULL;
    srv->queued = 0;
    srv->draining = 1;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    while (left) {
        job_t *next = left->next;
        reply_overloaded(srv->bus, left->msg, "the service is shutting down");
        natsMsg_Destroy(left->msg);
        free(left);
        left = next;
    }
    for (int i = 0; i < srv->nthreads; i++)
        pthread_join(srv->threads[i], NULL);
    srv->joined = 1;
}

void mp_bus_server_destroy(mp_bus_server_t *srv)
{
    if (srv == NULL)
        return;
    mp_bus_server_drain(srv, 5000);
    while (srv->routes) {
        route_t *r = srv->routes;
        srv->routes = r->next;
        natsSubscription_Destroy(r->sub);
        free(r);
    }
    for (size_t i = 0; i < srv->nlroutes; i++) {
        free((char *)srv->lroutes[i].subject);
        free((char *)srv->lroutes[i].queue);
    }
    free(srv->lroutes);
    free(srv->threads);
    free(srv->workers);
    free(srv->name);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    pthread_cond_destroy(&srv->idle_cv);
    free(srv);
}

mp_status_t mp_bus_server_start(mp_bus_server_t *srv)
{
    if (!srv->loop_mode || srv->lsrv)
        return MP_OK;
    mp_bus_lsrv_opts_t o = {.bus = srv->bus,
                            .name = srv->name,
                            .workers = srv->opts.workers,
                            .fibers = srv->opts.fibers,
                            .max_queue = srv->opts.max_queue,
                            .routes = srv->lroutes,
                            .nroutes = srv->nlroutes,
                            .on_worker_start = srv->opts.on_worker_start,
                            .on_worker_start_arg = srv->opts.on_worker_start_arg,
                            .expired = &srv->expired,
                            .shed = &srv->shed};
    return mp_bus__lsrv_start(&srv->lsrv, &o);
}

size_t mp_bus_server_inflight(mp_bus_server_t *srv)
{
    if (srv->loop_mode)
        return srv->lsrv ? mp_bus__lsrv_inflight(srv->lsrv) : 0;
    pthread_mutex_lock(&srv->mu);
    size_t n = srv->queued + srv->running;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

uint64_t mp_bus_server_expired(mp_bus_server_t *srv)
{
    return atomic_load(&srv->expired);
}

uint64_t mp_bus_server_shed(mp_bus_server_t *srv)
{
    return atomic_load(&srv->shed);
}
