/*
 * admin.c: health, readiness, metrics and extra pages on the admin port
 * (see mp/admin.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "mp/admin.h"
#include "mp/alloc.h"
#include "mp/bus.h"
#include "mp/http_resp.h"
#include "mp/metrics.h"
#include "mp/problem.h"

typedef struct check {
    char *name;
    mp_health_check_cb cb;
    void *arg;
    struct check *next;
} check_t;

typedef struct page {
    char *path;
    mp_admin_page_cb cb;
    void *arg;
    struct page *next;
} page_t;

static check_t *checks, *checks_tail;
static page_t *pages;
static pthread_mutex_t pages_mu = PTHREAD_MUTEX_INITIALIZER; /* roles add pages after the admin port is up */
static _Atomic int draining, started;
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static mp_buf_t ready_cache;
static int ready_cache_status;
static int64_t ready_cache_at;

void mp_health_register(const char *name, mp_health_check_cb cb, void *arg)
{
    check_t *c = mp_xcalloc(1, sizeof(*c));
    c->name = mp_xstrdup(name);
    c->cb = cb;
    c->arg = arg;
    if (checks_tail)
        checks_tail->next = c;
    else
        checks = c;
    checks_tail = c;
}

void mp_admin_page(const char *path, mp_admin_page_cb cb, void *arg)
{
    page_t *p = mp_xcalloc(1, sizeof(*p));
    p->path = mp_xstrdup(path);
    p->cb = cb;
    p->arg = arg;
    pthread_mutex_lock(&pages_mu);
    p->next = pages;
    pages = p;
    pthread_mutex_unlock(&pages_mu);
}

void mp_admin_set_started(void)
{
    atomic_store(&started, 1);
}

void mp_admin_set_draining(void)
{
    atomic_store(&draining, 1);
}

static int run_checks(mp_buf_t *out)
{
    int ok = !atomic_load(&draining) && atomic_load(&started);
    mp_buf_puts(out, "{\"checks\":{");
    for (check_t *c = checks; c; c = c->next) {
        mp_err_clear();
        mp_status_t st = c->cb(c->arg);
        mp_buf_printf(out, "%s\"", c == checks ? "" : ",");
        mp_buf_json_escape(out, c->name, strlen(c->name));
        if (st == MP_OK) {
            mp_buf_puts(out, "\":\"ok\"");
        } else {
            ok = 0;
            const char *why = *mp_err_get() ? mp_err_get() : mp_status_str(st);
            mp_buf_puts(out, "\":\"down: ");
            mp_buf_json_escape(out, why, strlen(why));
            mp_buf_puts(out, "\"");
        }
    }
    const char *status = atomic_load(&draining)   ? "draining"
                         : !atomic_load(&started) ? "starting"
                         : ok                     ? "ok"
                                                  : "unavailable";
    mp_buf_printf(out, "},\"status\":\"%s\"}", status);
    return ok ? 200 : 503;
}

int mp_admin_readiness(mp_buf_t *out)
{
    pthread_mutex_lock(&ready_mu);
    int64_t now = mp_now_ms();
    if (ready_cache_at == 0 || now - ready_cache_at >= 1000 || atomic_load(&draining) || !atomic_load(&started) ||
        ready_cache_status != 200) {
        mp_buf_reset(&ready_cache);
        ready_cache_status = run_checks(&ready_cache);
        ready_cache_at = now;
    }
    mp_buf_append(out, ready_cache.base, ready_cache.len);
    int status = ready_cache_status;
    pthread_mutex_unlock(&ready_mu);
    return status;
}

static int is_get(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    mp_http_track(req);
    if (!is_get(req))
        return -1;
    mp_http_send(req, 200, "application/json", H2O_STRLIT("{\"status\":\"ok\"}"), NULL);
    return 0;
}

static int on_readyz(h2o_handler_t *self, h2o_req_t *req)
{
    mp_http_track(req);
    if (!is_get(req))
        return -1;
    mp_buf_t b = MP_BUF_INIT;
    int status = mp_admin_readiness(&b);
    mp_http_send(req, status, "application/json", b.base, b.len, NULL);
    mp_buf_dispose(&b);
    return 0;
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    mp_http_track(req);
    if (!is_get(req))
        return -1;
    mp_buf_t b = MP_BUF_INIT;
    mp_metrics_render(&b);
    mp_http_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.base ? b.base : "", b.len, NULL);
    mp_buf_dispose(&b);
    return 0;
}

static int on_page(h2o_handler_t *self, h2o_req_t *req)
{
    page_t *p = NULL;
    mp_http_track(req);
    if (!is_get(req))
        return -1;
    pthread_mutex_lock(&pages_mu);
    for (p = pages; p; p = p->next)
        if (h2o_memis(req->path_normalized.base, req->path_normalized.len, p->path, strlen(p->path)))
            break;
    pthread_mutex_unlock(&pages_mu);
    if (p == NULL)
        return -1;
    mp_buf_t b = MP_BUF_INIT;
    const char *ct = "application/json";
    int status = p->cb(p->arg, &b, &ct);
    mp_http_send(req, status, ct, b.base ? b.base : "", b.len, NULL);
    mp_buf_dispose(&b);
    return 0;
}

static void configure(void *arg, h2o_globalconf_t *conf, h2o_hostconf_t *host)
{
    mp_http_register(host, "/healthz", 0, on_healthz);
    mp_http_register(host, "/readyz", 0, on_readyz);
    mp_http_register(host, "/metrics", 0, on_metrics);
    mp_http_register(host, "/", 0, on_page); /* pages registered by roles, looked up per request */
}

mp_status_t mp_admin_start(mp_http_server_t **out, const char *listen)
{
    mp_http_opts_t o = {.name = "admin", .listen = listen, .threads = 1, .max_body = 4096, .configure = configure};
    return mp_http_server_start(out, &o);
}
