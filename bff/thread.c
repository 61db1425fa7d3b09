/*
 * thread.c: the BFF engine of one loop thread: its Lua states (the newest
 * generation serves new requests; older ones finish what they started),
 * its reply cache, the transport over the thread's bus loop, and dispatch
 * of /bff/<client>/... requests to routes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/alloc.h"
#include "mp/cors.h"
#include "mp/http_resp.h"
#include "mp/log.h"
#include "bff_int.h"

void bff_req_reject(bff_req_t *r, int status, const char *detail);

/* ---- transport over the bus loop ---------------------------------------------------- */

static void on_bus_reply(void *arg, mp_status_t st, const mp_reply_t *reply)
{
    bff_call_t *c = arg;
    if (st == MP_ECANCELED)
        return; /* cancelled by its request, which frees the call itself */
    int status = reply ? reply->status : 0;
    size_t len = reply ? reply->len : 0, n = 0;
    /* a keyed write answered as a replay (a retried checkout): the route's response will say so too */
    const char *replayed = c->keyed && reply ? mp_reply_header(reply, "Idempotent-Replayed", &n) : NULL;
    if (replayed && c->r && n == 4 && strncasecmp(replayed, "true", 4) == 0)
        c->r->replayed = true;
    char *body = reply ? mp_xstrndup(reply->data, len) : NULL;
    bff_call_complete(c, st, status, body, len);
}

static mp_status_t bus_start(void *self, bff_call_t *c, const mp_bus_call_t *call)
{
    mp_bff_thread_t *t = self;
    return mp_bus_call_async(&c->bus_id, t->bl, call, on_bus_reply, c);
}

static void bus_cancel(void *self, bff_call_t *c)
{
    mp_bff_thread_t *t = self;
    mp_bus_cancel(t->bl, c->bus_id);
}

/* ---- generations --------------------------------------------------------------------------- */

static mp_status_t build_vm(mp_bff_thread_t *t, bff_vm_t **out)
{
    bff_snapshot_t *snap = bff_engine_snapshot();
    if (snap == NULL)
        return mp_err_set(MP_EINTERNAL, "no BFF scripts loaded");
    bff_vm_t *vm = NULL;
    mp_status_t st = bff_vm_create(&vm, snap, &bff_engine.limits, bff_engine.opts.server_timing);
    if (st == MP_OK) {
        vm->thread = t;
        vm->transport = (bff_transport_t){bus_start, bus_cancel, t};
        t->generation = snap->generation;
        *out = vm;
    }
    bff_snapshot_release(snap);
    return st;
}

/* Switches to a newer script generation between requests; the old state retires when idle. */
static void maybe_switch(mp_bff_thread_t *t)
{
    if (atomic_load(&bff_engine.generation) == t->generation)
        return;
    bff_vm_t *vm = NULL;
    if (build_vm(t, &vm) != MP_OK) {
        mp_log_kv(MP_LOG_ERROR, NULL, "cannot build the new BFF generation; keeping the old", "error", mp_err_get(),
                  NULL);
        t->generation = atomic_load(&bff_engine.generation); /* do not retry on every request */
        return;
    }
    bff_vm_t *old = t->vm;
    t->vm = vm;
    if (old->inflight == 0) {
        bff_vm_destroy(old);
    } else {
        old->next_old = t->old;
        t->old = old;
    }
}

void bff_thread_request_done(bff_vm_t *vm)
{
    vm->inflight--;
    mp_bff_thread_t *t = vm->thread;
    if (t == NULL || vm == t->vm || vm->inflight > 0)
        return;
    for (bff_vm_t **pp = &t->old; *pp; pp = &(*pp)->next_old) {
        if (*pp == vm) {
            *pp = vm->next_old;
            bff_vm_destroy(vm);
            return;
        }
    }
}

mp_status_t mp_bff_thread_start(mp_bff_thread_t **out, mp_bus_loop_t *bl, uv_loop_t *loop)
{
    mp_bff_thread_t *t = mp_xcalloc(1, sizeof(*t));
    t->bl = bl;
    t->loop = loop;
    bff_cache_init(&t->cache, 10000);
    mp_status_t st = build_vm(t, &t->vm);
    if (st != MP_OK) {
        bff_cache_dispose(&t->cache);
        free(t);
        return st;
    }
    *out = t;
    return MP_OK;
}

void mp_bff_thread_stop(mp_bff_thread_t *t)
{
    if (t == NULL)
        return;
    /* requests still in flight are cancelled by their pools' disposal; states go with the thread */
    while (t->old) {
        bff_vm_t *vm = t->old;
        t->old = vm->next_old;
        vm->thread = NULL;
        bff_vm_destroy(vm);
    }
    t->vm->thread = NULL;
    bff_vm_destroy(t->vm);
    bff_cache_dispose(&t->cache);
    free(t);
}

/* ---- dispatch --------------------------------------------------------------------------------- */

static bool origin_allowed(const bff_client_cfg_t *cfg, const char *origin, size_t len)
{
    for (size_t i = 0; i < cfg->ncors; i++)
        if (strlen(cfg->cors_origins[i]) == len && memcmp(cfg->cors_origins[i], origin, len) == 0)
            return true;
    return false;
}

static void add(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                          h2o_strdup(&req->pool, value, len).base, len);
}

/* CORS: echo an allowed origin (never *); answer preflights. Returns true when it answered. */
static bool cors(h2o_req_t *req, const bff_client_cfg_t *cfg, const mp_reqctx_t *rc)
{
    size_t olen = 0;
    const char *origin = mp_http_header(req, "origin", &olen);
    if (origin == NULL)
        return false;
    bool ok = origin_allowed(cfg, origin, olen);
    bool preflight = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"));
    if (ok) {
        add(req, "access-control-allow-origin", origin, olen);
        add(req, "vary", "Origin", 6);
        add(req, "access-control-expose-headers", H2O_STRLIT(MP_CORS_EXPOSE_HEADERS ", Server-Timing"));
    }
    if (!preflight)
        return false;
    if (!ok) {
        mp_http_problem(req, 403, rc->request_id, "this origin may not call this BFF", NULL);
        return true;
    }
    add(req, "access-control-allow-methods", H2O_STRLIT("GET, POST, PUT, PATCH, DELETE"));
    add(req, "access-control-allow-headers", H2O_STRLIT(MP_CORS_ALLOW_HEADERS));
    add(req, "access-control-max-age", H2O_STRLIT("600"));
    mp_http_send(req, 204, NULL, "", 0, rc->request_id);
    return true;
}

static bool is_json(h2o_req_t *req)
{
    size_t n = 0;
    const char *ct = mp_http_header(req, "content-type", &n);
    return ct && n >= 16 && strncasecmp(ct, "application/json", 16) == 0 && (n == 16 || ct[16] == ';');
}

/* Decodes the JSON body into the request table; answers 400/415 itself when it cannot. */
static bool attach_body(bff_req_t *r)
{
    h2o_req_t *req = r->req;
    if (req->entity.base == NULL || req->entity.len == 0)
        return true;
    if (!is_json(req)) {
        bff_req_reject(r, 415, "the request body must be JSON (Content-Type: application/json)");
        return false;
    }
    char err[160];
    lua_State *co = r->co;
    bff_req_t *outer = r->vm->current;
    r->vm->current = r;
    bool ok = bff_json_decode(co, req->entity.base, req->entity.len, err, sizeof(err));
    r->vm->current = outer;
    if (!ok) {
        char detail[200];
        snprintf(detail, sizeof(detail), "malformed JSON: %s", err);
        bff_req_reject(r, 400, detail);
        return false;
    }
    lua_setfield(co, -2, "body");
    return true;
}

static bool has_role(const char *roles, const char *role)
{
    size_t n = strlen(role);
    for (const char *p = roles; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, role, n) == 0)
            return true;
        p = comma ? comma + 1 : p + len;
    }
    return false;
}

int bff_authorize(bff_match_t *m, bff_client_t *client, const mp_bff_caller_t *caller, const char **detail)
{
    bool auth = m->route->auth >= 0 ? m->route->auth : client->cfg->auth_required;
    bool signed_in = caller && caller->sub;
    if ((auth || m->route->role) && !signed_in) {
        *detail = "this route needs a bearer token";
        return 401;
    }
    if (m->route->role && !has_role(caller->roles, m->route->role)) {
        *detail = "this route needs a role the caller does not have";
        return 403;
    }
    return 0;
}

int bff_dispatch(bff_match_t *m, bff_client_t *client, const char *method, size_t mlen, const char *path, size_t plen,
                 char *allow, size_t allow_size, const char **detail)
{
    switch (bff_route_match(m, client, method, mlen, path, plen, allow, allow_size)) {
    case BFF_MATCH_OK:
        return 0;
    case BFF_MATCH_METHOD:
        *detail = "this method is not allowed on this path";
        return 405;
    case BFF_MATCH_BAD_PARAM:
        *detail = "a path parameter is malformed";
        return 400;
    default:
        *detail = "no route matches this path";
        return 404;
    }
}

void mp_bff_handle(mp_bff_thread_t *t, h2o_req_t *req, const mp_reqctx_t *rc, const mp_bff_caller_t *caller)
{
    char allow[64];
    const char *detail = NULL;
    bff_match_t m;
    maybe_switch(t);
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *p = req->path.base + 5, *end = req->path.base + plen;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    bff_client_t *client = bff_vm_client(t->vm, p, (size_t)((slash ? slash : end) - p));
    if (client == NULL) {
        mp_http_problem(req, 404, rc->request_id, "no such BFF client", NULL);
        return;
    }
    if (cors(req, client->cfg, rc))
        return;
    int status = bff_dispatch(&m, client, req->method.base, req->method.len, slash ? slash : "/",
                              slash ? (size_t)(end - slash) : 1, allow, sizeof(allow), &detail);
    if (status == 0)
        status = bff_authorize(&m, client, caller, &detail);
    if (status != 0) {
        if (status == 405)
            add(req, "allow", allow, strlen(allow));
        if (status == 401)
            add(req, "www-authenticate", H2O_STRLIT("Bearer realm=\"moonport\""));
        mp_http_problem(req, status, rc->request_id, detail, NULL);
        return;
    }
    bff_req_t *r = bff_req_start(t->vm, client, &m, req, rc, caller);
    if (!attach_body(r)) {
        r->done = true; /* answered already: the pool disposer only frees it */
        luaL_unref(t->vm->L, LUA_REGISTRYINDEX, r->co_ref);
        r->co_ref = LUA_NOREF;
        bff_thread_request_done(t->vm);
        return;
    }
    bff_req_run(r);
}
