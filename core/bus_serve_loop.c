/*
 * bus_serve_loop.c: a service's requests served on loop threads that own
 * their NATS connections (see bus_serve_int.h, mp/bus_serve.h).
 *
 * Why: through nats.c a request crossed three threads before its handler
 * ran (reader, subscription delivery, our worker), each a wake-up and a
 * contended lock, and the profile of a one-row read was half context
 * switches. Here each worker is a libuv loop with its own connection
 * (core/natsio.c) subscribed to every route in the service's queue group,
 * so the server spreads requests over the workers of every replica. A
 * request is parsed out of the read buffer, becomes a natsMsg (what
 * handlers read), and runs on a fiber (core/fiber.c) of the same thread;
 * while it waits on Postgres the loop reads the next one. Its reply is
 * queued on the same connection and leaves in the loop iteration's single
 * write. No thread hand-over on the whole path.
 *
 * The fiber scheduler runs inside the loop: its epoll descriptor is polled
 * by libuv (uv_poll) and a uv timer is kept at its earliest deadline.
 * Requests beyond the fibers wait in a per-worker FIFO, bounded by the
 * server's queue (divided among the workers); past it they get 503.
 *
 * A handler's own calls to other services (mp_bus_request(), as Order
 * calls Product) go out on the worker's mp_bus_loop_t, a second loop
 * connection with a reply inbox: the fiber parks until its reply, and the
 * loop serves meanwhile. (nats.c's blocking request would stall every fiber
 * of the thread for the call's round trip.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "mp/alloc.h"
#include "mp/bus_loop.h"
#include "mp/fiber.h"
#include "mp/log.h"
#include "mp/natsio.h"
#include "bus_serve_int.h"

typedef struct ljob {
    natsMsg *msg;
    size_t route;
    struct ljob *next;
} ljob_t;

typedef struct lworker {
    mp_bus_lsrv_t *ls;
    int index;
    pthread_t thread;
    bool started;
    uv_loop_t loop;
    uv_poll_t sched_poll;
    uv_timer_t timer;
    uv_async_t stop_async;
    uv_timer_t boot; /* until both connections are up: then `ready` */
    bool serve_up;
    mp_sched_t *sched;
    mp_natsio_t *io;
    mp_bus_loop_t *calls; /* handlers' own requests */
    size_t *route_of;     /* subscription index -> route */
    ljob_t *head, *tail;
    size_t queued;
    bool draining;
    _Atomic bool async_ok;    /* stop_async exists: stop may signal it */
    _Atomic bool init_failed; /* the thread ended before it had a loop */
    int64_t drain_until;      /* mp_mono_ms(): queued requests still unanswered then get 503 */
    int64_t quiet_after;      /* if the server never confirms the UNSUB (frozen), the drain stops waiting then */
    _Atomic int ready;
    _Atomic size_t inflight;
} lworker_t;

struct mp_bus_lsrv {
    mp_bus_lsrv_opts_t o;
    mp_bus_lroute_t *routes;
    lworker_t *w;
    int nworkers;
    size_t max_queue; /* per worker */
    _Atomic int drain_ms;
};

static __thread lworker_t *tl_worker;

/* ---- requests in --------------------------------------------------------------------- */

/* Copies the header block ("NATS/1.0\r\nName: value\r\n...\r\n\r\n") onto `m`. Malformed lines are skipped: the
 * server only forwards what a client sent, and a handler reading a header it needs answers for its absence. */
static void copy_headers(natsMsg *m, const char *h, size_t hl)
{
    const char *end = h + hl, *at = memchr(h, '\n', hl); /* past the status line */
    char name[128], value[4096];
    mp_hdr_field_t f;
    at = at ? at + 1 : end;
    while (mp_hdr_next(&at, end, &f)) {
        if (f.name_len == 0 || f.name_len >= sizeof(name) || f.value_len >= sizeof(value))
            continue;
        memcpy(name, f.name, f.name_len);
        name[f.name_len] = '\0';
        memcpy(value, f.value, f.value_len);
        value[f.value_len] = '\0';
        natsMsgHeader_Add(m, name, value);
    }
}

static natsMsg *make_msg(const char *subj, size_t sl, const char *reply, size_t rl, const char *h, size_t hl,
                         const char *data, size_t len)
{
    char s[256], r[256];
    natsMsg *m = NULL;
    if (sl >= sizeof(s) || rl >= sizeof(r) || len > INT32_MAX)
        return NULL;
    memcpy(s, subj, sl);
    s[sl] = '\0';
    memcpy(r, reply, rl);
    r[rl] = '\0';
    if (natsMsg_Create(&m, s, rl ? r : NULL, data, (int)len) != NATS_OK)
        return NULL;
    if (hl > 0)
        copy_headers(m, h, hl);
    return m;
}

static void refuse(natsMsg *m, const char *why)
{
    char body[200];
    int n =
        snprintf(body, sizeof(body),
                 "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"%s\"}", why);
    mp_bus_reply(NULL, m, 503, body, (size_t)n, NULL, 0);
    natsMsg_Destroy(m);
}

static void run_job(void *arg)
{
    ljob_t *j = arg;
    lworker_t *w = tl_worker;
    const mp_bus_lroute_t *r = &w->ls->routes[j->route];
    if (mp_bus_expired(j->msg, 0))
        atomic_fetch_add(w->ls->o.expired, 1); /* its caller has given up */
    else
        r->handler(r->arg, j->msg, w->index);
    natsMsg_Destroy(j->msg);
    free(j);
    atomic_fetch_sub(&w->inflight, 1);
}

/* Starts queued jobs while fibers are free. */
static void pump(lworker_t *w)
{
    while (w->head && mp_sched_alive(w->sched) < w->ls->o.fibers) {
        ljob_t *j = w->head;
        w->head = j->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->queued--;
        mp_sched_spawn(w->sched, run_job, j);
    }
}

static void arm_timer(lworker_t *w);

static void on_request(void *arg, size_t route, const char *subj, size_t sl, const char *reply, size_t rl,
                       const char *h, size_t hl, const char *data, size_t len)
{
    lworker_t *w = arg;
    natsMsg *m = make_msg(subj, sl, reply, rl, h, hl, data, len);
    if (m == NULL)
        return; /* a subject or reply longer than any of ours: not a request we could answer */
    /* draining: the server sent this before it saw our UNSUB, so it is ours to serve like any request in flight
     * (a 503 here failed requests during every rolling restart); only past the drain time is it refused */
    if (w->draining && mp_mono_ms() >= w->drain_until) {
        refuse(m, "the service is shutting down");
        return;
    }
    if (w->queued >= w->ls->max_queue) {
        atomic_fetch_add(w->ls->o.shed, 1);
        refuse(m, "the service is overloaded");
        return;
    }
    ljob_t *j = mp_xmalloc(sizeof(*j));
    *j = (ljob_t){.msg = m, .route = w->route_of[route]};
    atomic_fetch_add(&w->inflight, 1);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    pump(w);
    arm_timer(w);
}

static void on_state(void *arg, bool up)
{
    lworker_t *w = arg;
    w->serve_up = up;
}

/* Ready when subscribed and, for handlers' own calls, the call connection is up too (mp_bus_server_start() waits
 * for this, so the first request finds both). Checked every few ms during start-up only. */
static void on_boot(uv_timer_t *t)
{
    lworker_t *w = t->data;
    if (w->serve_up && (w->calls == NULL || mp_bus_loop_ready(w->calls))) {
        atomic_store(&w->ready, 1);
        uv_timer_stop(t);
    }
}

/* ---- the loop ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void finish_if_drained(lworker_t *w)
{
    if (!w->draining)
        return;
    int64_t now = mp_mono_ms();
    if (now >= w->drain_until) { /* what could not start in time is answered now, not dropped */
        while (w->head) {
            ljob_t *j = w->head;
            w->head = j->next;
            refuse(j->msg, "the service is shutting down");
            free(j);
            atomic_fetch_sub(&w->inflight, 1);
        }
        w->tail = NULL;
        w->queued = 0;
    }
    /* done when nothing runs or waits, the server has stopped sending (it answered the PING after our UNSUBs, so
     * whatever it sent before has been read), and every reply has left */
    bool quiet = w->io == NULL || mp_natsio_unsubscribed(w->io) || now >= w->quiet_after;
    if (w->head == NULL && mp_sched_alive(w->sched) == 0 && quiet && (w->io == NULL || mp_natsio_unsent(w->io) == 0))
        uv_stop(&w->loop);
}

static void arm_timer(lworker_t *w)
{
    int t = mp_sched_timeout(w->sched);
    if (w->draining && (t < 0 || t > 20))
        t = 20; /* keep looking at the drain */
    if (t >= 0)
        uv_timer_start(&w->timer, on_timer, (uint64_t)t, 0);
    else
        uv_timer_stop(&w->timer);
}

static void step(lworker_t *w)
{
    mp_sched_run(w->sched, 0);
    pump(w);
    finish_if_drained(w);
    arm_timer(w);
}

static void on_timer(uv_timer_t *t)
{
    step(t->data);
}

static void on_sched(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    step(p->data);
}

static void on_stop(uv_async_t *a)
{
    lworker_t *w = a->data;
    if (w->draining)
        return;
    w->draining = true;
    int64_t now = mp_mono_ms();
    w->drain_until = now + atomic_load(&w->ls->drain_ms);
    w->quiet_after = now + 1000; /* a server that does not answer a PING within this will not send more either */
    if (w->io)
        mp_natsio_unsubscribe_requests(w->io);
    step(w);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static mp_status_t open_connection(lworker_t *w)
{
    const mp_bus_opts_t *bo = mp_bus__opts(w->ls->o.bus);
    mp_natsio_sub_t *subs = mp_xcalloc(w->ls->o.nroutes ? w->ls->o.nroutes : 1, sizeof(*subs));
    size_t n = 0;
    char name[160];
    w->route_of = mp_xcalloc(w->ls->o.nroutes ? w->ls->o.nroutes : 1, sizeof(*w->route_of));
    for (size_t i = 0; i < w->ls->o.nroutes; i++) {
        const mp_bus_lroute_t *r = &w->ls->routes[i];
        if (r->queue == NULL && w->index > 0)
            continue; /* outside the queue group ($SRV discovery): answered once per process, not per worker */
        w->route_of[n] = i;
        subs[n++] = (mp_natsio_sub_t){.subject = r->subject, .queue = r->queue};
    }
    snprintf(name, sizeof(name), "%s-serve-%d", bo->name ? bo->name : w->ls->o.name, w->index);
    mp_natsio_opts_t o = {.url = bo->url,
                          .user = bo->user,
                          .password = bo->password,
                          .name = name,
                          .tls = mp_bus__tls(w->ls->o.bus),
                          .subs = subs,
                          .nsubs = n,
                          .on_request = on_request,
                          .on_state = on_state,
                          .arg = w};
    mp_status_t st = mp_natsio_create(&w->io, &w->loop, &o);
    free(subs);
    if (st == MP_OK && mp_bus_loop_create(&w->calls, w->ls->o.bus, &w->loop) != MP_OK)
        w->calls = NULL; /* its calls go through nats.c, blocking: slower, not wrong */
    return st;
}

/* The loop and the scheduler are made on the worker's own thread: a scheduler belongs to the thread that makes it. */
static mp_status_t init_worker(lworker_t *w)
{
    if (uv_loop_init(&w->loop) != 0)
        return mp_err_set(MP_EINTERNAL, "cannot create a loop");
    mp_status_t st = mp_sched_create(&w->sched, w->ls->o.fibers, 0);
    if (st != MP_OK) {
        uv_loop_close(&w->loop);
        return st;
    }
    uv_poll_init(&w->loop, &w->sched_poll, mp_sched_fd(w->sched));
    w->sched_poll.data = w;
    uv_poll_start(&w->sched_poll, UV_READABLE, on_sched);
    uv_timer_init(&w->loop, &w->timer);
    w->timer.data = w;
    uv_async_init(&w->loop, &w->stop_async, on_stop);
    w->stop_async.data = w;
    uv_timer_init(&w->loop, &w->boot);
    w->boot.data = w;
    uv_timer_start(&w->boot, on_boot, 5, 5);
    w->async_ok = true;
    return MP_OK;
}

static void *worker_main(void *p)
{
    lworker_t *w = p;
    tl_worker = w;
    if (w->ls->o.on_worker_start)
        w->ls->o.on_worker_start(w->ls->o.on_worker_start_arg, w->index);
    if (init_worker(w) != MP_OK) {
        mp_log_kv(MP_LOG_ERROR, NULL, "cannot start a serving loop", "error", mp_err_get(), NULL);
        atomic_store(&w->ready, -1);
        atomic_store(&w->init_failed, true);
        tl_worker = NULL;
        return NULL;
    }
    if (open_connection(w) != MP_OK) {
        /* serves nothing, but runs until stopped so that the stop signal has a live handle to reach */
        mp_log_kv(MP_LOG_ERROR, NULL, "cannot serve on a loop connection", "error", mp_err_get(), NULL);
        atomic_store(&w->ready, -1);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->calls) {
        mp_bus_loop_destroy(w->calls);
        w->calls = NULL;
    }
    if (w->io) {
        mp_natsio_destroy(w->io);
        w->io = NULL;
    }
    uv_poll_stop(&w->sched_poll);
    uv_close((uv_handle_t *)&w->sched_poll, close_cb);
    uv_close((uv_handle_t *)&w->timer, close_cb);
    uv_close((uv_handle_t *)&w->stop_async, close_cb);
    uv_timer_stop(&w->boot);
    uv_close((uv_handle_t *)&w->boot, close_cb);
    uv_run(&w->loop, UV_RUN_DEFAULT); /* let the handles (and the connection's) close */
    uv_loop_close(&w->loop);
    mp_sched_destroy(w->sched);
    free(w->route_of);
    tl_worker = NULL;
    return NULL;
}

mp_status_t mp_bus__lsrv_start(mp_bus_lsrv_t **out, const mp_bus_lsrv_opts_t *o)
{
    mp_bus__set_request_hook(mp_bus__lsrv_request);
    mp_bus_lsrv_t *ls = mp_xcalloc(1, sizeof(*ls));
    ls->o = *o;
    ls->routes = mp_xcalloc(o->nroutes ? o->nroutes : 1, sizeof(*ls->routes));
    memcpy(ls->routes, o->routes, o->nroutes * sizeof(*ls->routes));
    ls->o.routes = NULL;
    ls->nworkers = o->workers > 0 ? o->workers : 1;
    ls->max_queue = (o->max_queue ? o->max_queue : 4096) / (size_t)ls->nworkers + 1;
    atomic_store(&ls->drain_ms, 5000);
    ls->w = mp_xcalloc((size_t)ls->nworkers, sizeof(*ls->w));
    for (int i = 0; i < ls->nworkers; i++) {
        lworker_t *w = &ls->w[i];
        w->ls = ls;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            mp_bus__lsrv_stop(ls, 0);
            return mp_err_set(MP_ENOMEM, "cannot start a worker thread");
        }
        w->started = true;
    }
    /* serve only once subscribed: a request sent right after start-up must find someone */
    int64_t until = mp_mono_ms() + 5000;
    for (int i = 0; i < ls->nworkers; i++)
        while (atomic_load(&ls->w[i].ready) == 0 && mp_mono_ms() < until)
            uv_sleep(5);
    *out = ls;
    return MP_OK;
}

void mp_bus__lsrv_stop(mp_bus_lsrv_t *ls, int timeout_ms)
{
    if (ls == NULL)
        return;
    atomic_store(&ls->drain_ms, timeout_ms);
    for (int i = 0; i < ls->nworkers; i++) {
        /* a worker still setting up is waited for: its stop signal must have somewhere to go */
        while (ls->w[i].started && !atomic_load(&ls->w[i].async_ok) && !atomic_load(&ls->w[i].init_failed))
            uv_sleep(1);
        if (ls->w[i].started && atomic_load(&ls->w[i].async_ok))
            uv_async_send(&ls->w[i].stop_async);
    }
    for (int i = 0; i < ls->nworkers; i++)
        if (ls->w[i].started)
            pthread_join(ls->w[i].thread, NULL);
    free(ls->w);
    free(ls->routes);
    free(ls);
}

size_t mp_bus__lsrv_inflight(mp_bus_lsrv_t *ls)
{
    size_t n = 0;
    for (int i = 0; i < ls->nworkers; i++)
        n += atomic_load(&ls->w[i].inflight);
    return n;
}

bool mp_bus__lsrv_reply(mp_status_t *st, const char *reply_to, const mp_bus_hdr_t *hdrs, size_t nhdrs, const void *body,
                        size_t len)
{
    if (tl_worker == NULL || tl_worker->io == NULL)
        return false;
    *st = mp_natsio_publish(tl_worker->io, reply_to, NULL, hdrs, nhdrs, body, len);
    return true;
}

/* A handler's call in flight: the parked fiber and, once answered, the outcome. */
typedef struct lcall {
    mp_fiber_t *f;
    lworker_t *w;
    bool done;
    mp_status_t st;
    natsMsg *reply;
} lcall_t;

static void on_call_reply(void *arg, mp_status_t st, const mp_reply_t *r)
{
    lcall_t *c = arg;
    c->st = st;
    if (st == MP_OK) {
        c->reply = make_msg("_MP.reply", 9, "", 0, r->hdrs ? r->hdrs : "", r->hdrs ? r->hdrs_len : 0, r->data, r->len);
        if (c->reply == NULL)
            c->st = mp_err_set(MP_EINTERNAL, "reply could not be kept");
    }
    c->done = true;
    mp_fiber_wake(c->f);
    arm_timer(c->w); /* a woken fiber runs at the loop's next step */
}

bool mp_bus__lsrv_request(mp_status_t *st, mp_msg_t **reply, const mp_bus_call_t *call)
{
    lworker_t *w = tl_worker;
    if (w == NULL || w->calls == NULL || mp_fiber_current() == NULL || !mp_bus_loop_ready(w->calls))
        return false; /* off a serving fiber, or its connection not up yet: nats.c's blocking request */
    lcall_t c = {.f = mp_fiber_current(), .w = w};
    mp_status_t s = mp_bus_call_async(NULL, w->calls, call, on_call_reply, &c);
    if (s != MP_OK) {
        *st = s;
        return true;
    }
    while (!c.done) /* the call's own deadline (bus_loop's timer) ends the wait */
        mp_fiber_park(0);
    *st = c.st;
    *reply = c.reply;
    return true;
}
