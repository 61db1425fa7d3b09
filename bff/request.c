/*
 * request.c: one HTTP request through a BFF route: its coroutine, the
 * request table the handler receives, and the response built from what the
 * handler returns (a table -> 200 JSON; `body, status`; bff.response{...};
 * nil -> 204) or raises (bff.fail / a failed required call -> its problem;
 * anything else -> 500 with the Lua traceback in the log only).
 *
 * The coroutine runs with vm->current set, which is how the CPU hook and the
 * allocator know whose budget they are charging.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/http_resp.h"
#include "mp/log.h"
#include "mp/problem.h"
#include "mp/url.h"
#include "bff_int.h"

bool bff_is_error(lua_State *L, int idx);
bool bff_is_response(lua_State *L, int idx);
void bff_thread_request_done(bff_vm_t *vm);

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bff_vm_t *vm_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static mp_log_ctx_t log_ctx(bff_req_t *r)
{
    return (mp_log_ctx_t){r->rc.request_id, r->rc.trace_id};
}

/* ---- sending -------------------------------------------------------------------------- */

static void add_header(bff_req_t *r, const char *name, const char *value)
{
    h2o_req_t *req = r->req;
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                          h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
}

/* Server-Timing: each downstream call's time and cache status, so a slow screen shows its slow service */
static void server_timing(bff_req_t *r)
{
    mp_buf_t b = MP_BUF_INIT;
    for (size_t i = 0; i < r->ncalls && i < 32; i++) {
        bff_call_t *c = r->calls[i];
        const char *dot = strchr(c->subject, '.');
        int64_t end = c->state == BFF_CALL_DONE ? c->t1_ns : mono_ns();
        mp_buf_printf(&b, "%s%.*s;dur=%.1f", b.len ? ", " : "", (int)(dot ? dot - c->subject : 0), c->subject,
                      (double)(end - c->t0_ns) / 1e6);
        const char *desc = c->cache_hit ? "cache hit" : c->coalesced ? "coalesced" : NULL;
        if (c->state == BFF_CALL_DONE && c->st == MP_ETIMEDOUT)
            desc = "timeout";
        if (desc)
            mp_buf_printf(&b, ";desc=\"%s\"", desc);
    }
    if (b.len)
        add_header(r, "server-timing", b.base);
    mp_buf_dispose(&b);
}

static void deliver(bff_req_t *r, int status, const char *ctype, const mp_buf_t *body)
{
    if (r->on_done) {
        r->on_done(r, status, body, ctype);
        return;
    }
    if (r->req == NULL)
        return;
    bool timing = r->client->cfg->server_timing >= 0 ? r->client->cfg->server_timing : r->vm->server_timing;
    if (timing)
        server_timing(r);
    if (r->replayed && status < 300)
        add_header(r, "idempotent-replayed", "true");
    mp_http_send(r->req, status, ctype, body->base ? body->base : "", body->len, r->rc.request_id);
}

static void send_problem(bff_req_t *r, int status, const char *detail, json_t *errors)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_problem_render(&b, status, detail, r->rc.request_id, errors);
    deliver(r, status, "application/problem+json", &b);
    mp_buf_dispose(&b);
}

/* ---- finishing ------------------------------------------------------------------------ */

static void release_calls(bff_req_t *r)
{
    lua_State *L = r->vm->L;
    for (size_t i = 0; i < r->ncalls; i++) {
        bff_call_t *c = r->calls[i];
        luaL_unref(L, LUA_REGISTRYINDEX, c->fallback_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, c->value_ref);
        c->fallback_ref = c->value_ref = LUA_NOREF;
        if (c->state == BFF_CALL_DONE) {
            bff_call_free(c);
        } else if (c->next_waiter != NULL) {
            c->r = NULL; /* other requests ride on it: let it land, then it frees itself */
        } else {
            if (c->cache_key && r->vm->thread)
                bff_cache_set_leader(&r->vm->thread->cache, c->cache_key, NULL);
            c->r = NULL;
            r->vm->transport.cancel(r->vm->transport.self, c);
            bff_call_free(c);
        }
    }
    free(r->calls);
    r->calls = NULL;
    r->ncalls = 0;
}

/* ---- metrics: series looked up once per route and per (client, subject), not per request ------------------ */

static const char *const call_results[] = {"abandoned", "cache_hit", "timeout", "unavailable",
                                           "error",     "rejected",  "ok"};
#define NRESULTS (sizeof(call_results) / sizeof(call_results[0]))

typedef struct bff_call_series {
    const bff_client_cfg_t *client;
    uint64_t hash;
    char subject[96];
    mp_series_t *duration;
    mp_series_t *calls[NRESULTS]; /* by result, each looked up when first needed */
} bff_call_series_t;

static uint64_t call_series_hash(const bff_client_cfg_t *client, const char *subject)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)client;
    for (const char *p = subject; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* The cached series of `subject` called by `client` in this state's table (created when first seen). */
static bff_call_series_t *call_series(bff_vm_t *vm, const bff_client_cfg_t *client, const char *subject)
{
    uint64_t h = call_series_hash(client, subject);
    if (vm->capcall_series > 0) {
        for (size_t i = h & (vm->capcall_series - 1);; i = (i + 1) & (vm->capcall_series - 1)) {
            bff_call_series_t *e = vm->call_series[i];
            if (e == NULL)
                break;
            if (e->hash == h && e->client == client && strcmp(e->subject, subject) == 0)
                return e;
        }
    }
    if (2 * (vm->ncall_series + 1) > vm->capcall_series) { /* at most half full */
        size_t cap = vm->capcall_series ? vm->capcall_series * 2 : 16;
        bff_call_series_t **t = mp_xcalloc(cap, sizeof(*t));
        for (size_t i = 0; i < vm->capcall_series; i++) {
            bff_call_series_t *e = vm->call_series[i];
            if (e == NULL)
                continue;
            size_t j = e->hash & (cap - 1);
            while (t[j])
                j = (j + 1) & (cap - 1);
            t[j] = e;
        }
        free(vm->call_series);
        vm->call_series = t;
        vm->capcall_series = cap;
    }
    bff_call_series_t *e = mp_xcalloc(1, sizeof(*e));
    e->client = client;
    e->hash = h;
    snprintf(e->subject, sizeof(e->subject), "%s", subject);
    e->duration = mp_metric_series(bff_engine.m_call_duration, MP_LABELS(subject));
    size_t j = h & (vm->capcall_series - 1);
    while (vm->call_series[j])
        j = (j + 1) & (vm->capcall_series - 1);
    vm->call_series[j] = e;
    vm->ncall_series++;
    return e;
}

void bff_call_series_dispose(bff_vm_t *vm)
{
    for (size_t i = 0; i < vm->capcall_series; i++)
        free(vm->call_series[i]);
    free(vm->call_series);
    vm->call_series = NULL;
    vm->ncall_series = vm->capcall_series = 0;
}

static void record(bff_req_t *r, int status)
{
    char code[12];
    const char *route = r->route ? r->route->path : "(none)";
    mp_u64_dec(code, (uint64_t)status);
    if (bff_engine.m_requests) {
        const char *client = r->client->cfg->name;
        double secs = (double)(mono_ns() - r->t0_ns) / 1e9;
        bff_route_t *rt = r->route;
        if (rt == NULL) {
            mp_metric_add(bff_engine.m_requests, MP_LABELS(client, route, code), 1);
            mp_metric_observe(bff_engine.m_duration, MP_LABELS(client, route), secs);
        } else {
            if (rt->m_requests == NULL || rt->m_requests_status != status) {
                rt->m_requests = mp_metric_series(bff_engine.m_requests, MP_LABELS(client, route, code));
                rt->m_requests_status = status;
            }
            if (rt->m_duration == NULL)
                rt->m_duration = mp_metric_series(bff_engine.m_duration, MP_LABELS(client, route));
            mp_series_add(rt->m_requests, 1);
            mp_series_observe(rt->m_duration, secs);
        }
        for (size_t i = 0; i < r->ncalls; i++) {
            bff_call_t *c = r->calls[i];
            size_t result = c->state != BFF_CALL_DONE ? 0
                            : c->cache_hit            ? 1
                            : c->st == MP_ETIMEDOUT   ? 2
                            : c->st != MP_OK          ? 3
                            : c->status >= 500        ? 4
                            : c->status >= 400        ? 5
                                                      : 6;
            bff_call_series_t *cs = call_series(r->vm, r->client->cfg, c->subject);
            if (cs->calls[result] == NULL)
                cs->calls[result] =
                    mp_metric_series(bff_engine.m_calls, MP_LABELS(client, c->subject, call_results[result]));
            mp_series_add(cs->calls[result], 1);
            if (c->state == BFF_CALL_DONE && !c->cache_hit)
                mp_series_observe(cs->duration, (double)(c->t1_ns - c->t0_ns) / 1e9);
        }
    }
    if (mp_log_enabled(MP_LOG_INFO) && r->req) {
        char ms[32];
        mp_log_ctx_t lc = log_ctx(r);
        snprintf(ms, sizeof(ms), "%.3f", (double)(mono_ns() - r->t0_ns) / 1e6);
        mp_log_kv(MP_LOG_INFO, &lc, "bff request", "client", r->client->cfg->name, "route", route, "status", code,
                  "duration_ms", ms, NULL);
    }
}

static void finish(bff_req_t *r, int status)
{
    bff_vm_t *vm = r->vm;
    r->done = true;
    record(r, status);
    release_calls(r);
    /* a coroutine whose handler returned is as good as new: the next request reuses it (one that raised or is
     * still suspended cannot run again) */
    if (r->co && lua_status(r->co) == 0 && !r->running && vm->nidle_cos < BFF_IDLE_COROUTINES) {
        lua_settop(r->co, 0);
        vm->idle_cos[vm->nidle_cos++] = r->co_ref;
    } else {
        luaL_unref(vm->L, LUA_REGISTRYINDEX, r->co_ref);
    }
    r->co_ref = LUA_NOREF;
    r->co = NULL;
    if (r->killed == 2)
        lua_gc(vm->L, LUA_GCCOLLECT, 0); /* give the memory a bomb took back before the next request */
    bff_vm_tune_gc(vm);
    bff_thread_request_done(vm);
}

/* The handler returned: values at the top of the coroutine's stack. */
static int respond(bff_req_t *r, int nret)
{
    lua_State *co = r->co;
    int base = lua_gettop(co) - nret + 1, status = 200;
    char err[200];
    mp_buf_t b = MP_BUF_INIT;
    const char *ctype = "application/json";

    if (nret >= 1 && bff_is_response(co, base)) {
        lua_getfield(co, base, "status");
        status = lua_isnumber(co, -1) ? (int)lua_tointeger(co, -1) : 200;
        lua_getfield(co, base, "headers");
        if (lua_istable(co, -1) && r->req) {
            lua_pushnil(co);
            while (lua_next(co, -2)) {
                if (lua_type(co, -2) == LUA_TSTRING && lua_isstring(co, -1))
                    add_header(r, lua_tostring(co, -2), lua_tostring(co, -1));
                lua_pop(co, 1);
            }
        }
        lua_pop(co, 2);
        lua_getfield(co, base, "body");
        lua_replace(co, base);
    } else if (nret >= 2 && lua_isnumber(co, base + 1)) {
        status = (int)lua_tointeger(co, base + 1);
    }
    if (status < 200 || status > 599) {
        mp_log_kv(MP_LOG_ERROR, &(mp_log_ctx_t){r->rc.request_id, r->rc.trace_id}, "a BFF route returned a bad status",
                  "route", r->route->where, NULL);
        send_problem(r, 500, "the BFF route failed", NULL);
        return 500;
    }
    if (nret == 0 || lua_isnil(co, base)) {
        if (status == 200)
            status = 204;
        deliver(r, status, NULL, &b);
        return status;
    }
    if (lua_type(co, base) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(co, base, &n);
        mp_buf_append(&b, s, n);
        ctype = "text/plain; charset=utf-8";
    } else {
        /* optional calls that fell back are named in `degraded`, the same way on every screen */
        if (r->ndegraded > 0 && lua_istable(co, base)) {
            lua_createtable(co, (int)r->ndegraded, 0);
            for (size_t i = 0; i < r->ndegraded; i++) {
                lua_createtable(co, 0, 2);
                lua_pushstring(co, r->degraded[i].subject);
                lua_setfield(co, -2, "dependency");
                lua_pushstring(co, r->degraded[i].reason);
                lua_setfield(co, -2, "reason");
                lua_rawseti(co, -2, (int)i + 1);
            }
            lua_setfield(co, base, "degraded");
        }
        mp_buf_reserve(&b, 4096); /* one allocation for a typical screen, not a doubling series */
        if (!bff_json_encode(co, base, &b, err, sizeof(err))) {
            mp_log_kv(MP_LOG_ERROR, &(mp_log_ctx_t){r->rc.request_id, r->rc.trace_id},
                      "a BFF route returned a value that is not JSON", "route", r->route->where, "error", err, NULL);
            mp_buf_dispose(&b);
            send_problem(r, 500, "the BFF route failed", NULL);
            return 500;
        }
    }
    deliver(r, status, ctype, &b);
    mp_buf_dispose(&b);
    return status;
}

/* The handler raised: a bff error (bff.fail, a failed required call) or a bug. */
static int fail(bff_req_t *r)
{
    lua_State *co = r->co;
    if (bff_is_error(co, -1)) {
        lua_getfield(co, -1, "status");
        int status = (int)lua_tointeger(co, -1);
        lua_getfield(co, -2, "detail");
        const char *detail = lua_tostring(co, -1);
        json_t *errors = NULL;
        lua_getfield(co, -3, "errors");
        if (lua_istable(co, -1)) {
            mp_buf_t eb = MP_BUF_INIT;
            char err[100];
            if (bff_json_encode(co, lua_gettop(co), &eb, err, sizeof(err)))
                errors = json_loadb(eb.base, eb.len, 0, NULL);
            mp_buf_dispose(&eb);
        }
        send_problem(r, status, detail, json_is_array(errors) ? errors : NULL);
        json_decref(errors);
        return status;
    }
    /* a bug or a kill: the client gets a plain 500 with the request id; the log gets the traceback */
    const char *msg = lua_isstring(co, -1) ? lua_tostring(co, -1) : "(an error that is not a string)";
    lua_State *L = r->vm->L;
    luaL_traceback(L, co, msg, 0);
    mp_log_ctx_t lc = log_ctx(r);
    mp_log_kv(MP_LOG_ERROR, &lc,
              r->killed == 1   ? "BFF route killed: CPU budget exhausted"
              : r->killed == 2 ? "BFF route killed: memory limit reached"
                               : "BFF route failed",
              "route", r->route->where, "traceback", lua_tostring(L, -1), NULL);
    lua_pop(L, 1);
    send_problem(r, 500,
                 r->killed == 1   ? "the BFF route used too much CPU time"
                 : r->killed == 2 ? "the BFF route used too much memory"
                                  : "the BFF route failed",
                 NULL);
    return 500;
}

void bff_req_run(bff_req_t *r)
{
    bff_vm_t *vm = r->vm;
    int nargs = 0;
    if (r->co_ref == LUA_NOREF || r->done)
        return;
    if (lua_status(r->co) == 0 && lua_gettop(r->co) > 0)
        nargs = lua_gettop(r->co) - 1; /* first run: function + request table */
    r->wait_all = false;
    r->running = true;
    bff_req_t *outer = vm->current;
    vm->current = r;
    int st = lua_resume(r->co, nargs);
    vm->current = outer;
    r->running = false;
    if (st == LUA_YIELD) {
        if (r->waiting > 0 && !r->gone)
            return; /* parked until its calls answer */
        lua_pushliteral(r->co, "a BFF route yielded without waiting for a call");
        st = LUA_ERRRUN;
    }
    int status = st == 0 ? respond(r, lua_gettop(r->co)) : fail(r);
    finish(r, status);
}

/* ---- the request table ---------------------------------------------------------------- */

void bff_push_query_string(lua_State *L, const char *q, size_t len)
{
    const char *p = q, *end = q + len;
    char *k = mp_xmalloc(len + 1), *v = mp_xmalloc(len + 1);
    lua_newtable(L);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        size_t klen = (size_t)((eq ? eq : stop) - p), vlen = eq ? (size_t)(stop - eq - 1) : 0;
        long kl = mp_url_decode(k, p, klen, true), vl = mp_url_decode(v, eq ? eq + 1 : "", vlen, true);
        if (klen > 0 && kl > 0 && vl >= 0) {
            lua_getfield(L, -1, k);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)vl);
                lua_setfield(L, -2, k);
            } else if (lua_istable(L, -1)) { /* a repeated key is a list */
                lua_pushlstring(L, v, (size_t)vl);
                lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
                lua_pop(L, 1);
            } else {
                lua_createtable(L, 2, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
                lua_pushlstring(L, v, (size_t)vl);
                lua_rawseti(L, -2, 2);
                lua_setfield(L, -2, k);
            }
        }
        p = stop + 1;
    }
    free(k);
    free(v);
}

static void push_query(lua_State *L, h2o_req_t *req)
{
    if (req == NULL || req->query_at == SIZE_MAX) {
        lua_newtable(L);
        return;
    }
    bff_push_query_string(L, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

static void push_headers(lua_State *L, h2o_req_t *req)
{
    lua_newtable(L);
    for (size_t i = 0; req && i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        /* credentials stay with the host: scripts never see or forward them */
        if (h2o_memis(h->name->base, h->name->len, H2O_STRLIT("authorization")) ||
            h2o_memis(h->name->base, h->name->len, H2O_STRLIT("cookie")))
            continue;
        lua_pushlstring(L, h->name->base, h->name->len);
        lua_pushlstring(L, h->value.base, h->value.len);
        lua_rawset(L, -3);
    }
}

static void push_caller(lua_State *L, bff_req_t *r)
{
    if (!r->has_caller) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 2);
    lua_pushstring(L, r->sub);
    lua_setfield(L, -2, "sub");
    lua_newtable(L);
    char roles[256];
    snprintf(roles, sizeof(roles), "%s", r->roles);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(roles, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        lua_pushstring(L, t);
        lua_rawseti(L, -2, ++n);
    }
    lua_setfield(L, -2, "roles");
}

void bff_req_push_table(lua_State *L, bff_req_t *r, bff_match_t *m)
{
    lua_createtable(L, 0, 9);
    if (r->req) {
        lua_pushlstring(L, r->req->method.base, r->req->method.len);
        lua_setfield(L, -2, "method");
        lua_pushlstring(L, r->req->path.base, r->req->query_at != SIZE_MAX ? r->req->query_at : r->req->path.len);
        lua_setfield(L, -2, "path");
    }
    lua_newtable(L);
    for (size_t i = 0; m && i < m->nparams; i++) {
        if (m->types[i] == BFF_P_INT)
            lua_pushnumber(L, (lua_Number)atoll(m->values[i]));
        else
            lua_pushstring(L, m->values[i]);
        lua_setfield(L, -2, m->names[i]);
    }
    lua_setfield(L, -2, "params");
    push_query(L, r->req);
    lua_setfield(L, -2, "query");
    push_headers(L, r->req);
    lua_setfield(L, -2, "headers");
    push_caller(L, r);
    lua_setfield(L, -2, "caller");
    lua_pushstring(L, r->rc.request_id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, r->client->cfg->name);
    lua_setfield(L, -2, "client");
}

/* ---- start ---------------------------------------------------------------------------------- */

static void on_req_dispose(void *p)
{
    bff_req_t *r = *(bff_req_t **)p;
    if (r == NULL)
        return;
    r->gone = true;
    r->req = NULL;
    if (!r->done && !r->running)
        finish(r, 499); /* the client went away: stop its calls, free its coroutine */
    bff_req_free(r);
}

void bff_req_free(bff_req_t *r)
{
    free(r->degraded);
    free(r);
}

bff_req_t *bff_req_start(bff_vm_t *vm, bff_client_t *client, bff_match_t *m, h2o_req_t *req, const mp_reqctx_t *rc,
                         const mp_bff_caller_t *caller)
{
    bff_req_t *r = mp_xcalloc(1, sizeof(*r));
    r->vm = vm;
    r->req = req;
    r->rc = *rc;
    r->client = client;
    r->route = m->route;
    r->t0_ns = mono_ns();
    r->co_ref = LUA_NOREF;
    int64_t deadline = m->route->deadline_ms ? m->route->deadline_ms : client->cfg->deadline_ms;
    r->deadline_ms = mp_now_ms() + deadline;
    if (caller && caller->sub) {
        r->has_caller = true;
        snprintf(r->sub, sizeof(r->sub), "%s", caller->sub);
        snprintf(r->roles, sizeof(r->roles), "%s", caller->roles ? caller->roles : "");
    }
    if (req) {
        bff_req_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_dispose);
        *slot = r;
    }
    vm->inflight++;
    lua_State *L = vm->L;
    if (vm->nidle_cos > 0) {
        r->co_ref = vm->idle_cos[--vm->nidle_cos];
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->co_ref);
        r->co = lua_tothread(L, -1);
        lua_pop(L, 1);
    } else {
        r->co = lua_newthread(L);
        r->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(r->co, LUA_REGISTRYINDEX, m->route->fn_ref);
    /* build the request table as part of the request, so its allocations count against it */
    bff_req_t *outer = vm->current;
    vm->current = r;
    bff_req_push_table(r->co, r, m);
    vm->current = outer;
    return r;
}

/* Answers before any script runs (no route, bad input); the request never had a coroutine. */
void bff_req_reject(bff_req_t *r, int status, const char *detail)
{
    send_problem(r, status, detail, NULL);
}

/* ---- bff.log -------------------------------------------------------------------------------- */

/* bff.log.<level>(msg [, fields]): a log line carrying the request id and the script's file:line */
static int l_log_at(lua_State *L)
{
    mp_log_level_t lvl = (mp_log_level_t)lua_tointeger(L, lua_upvalueindex(1));
    const char *msg = luaL_checkstring(L, 1);
    bff_vm_t *vm = vm_of(L);
    bff_req_t *r = vm->current;
    mp_log_ctx_t lc = r ? log_ctx(r) : (mp_log_ctx_t){0};
    if (!mp_log_enabled(lvl))
        return 0;
    const char *kv[12] = {0};
    int n = 0;
    if (lua_istable(L, 2)) {
        lua_settop(L, 2);
        lua_pushnil(L);
        while (n < 12 && lua_next(L, 2)) {
            /* stringify into stack slots that outlive the loop: key copy and value text stay on the stack */
            if (lua_type(L, -2) == LUA_TSTRING) {
                lua_pushvalue(L, -2); /* key value keycopy */
                lua_pushstring(L, lua_isstring(L, -2) ? lua_tostring(L, -2) : luaL_typename(L, -2));
                lua_insert(L, 3); /* text ... key value keycopy */
                lua_insert(L, 3); /* keycopy text ... key value */
                kv[n++] = lua_tostring(L, 3);
                kv[n++] = lua_tostring(L, 4);
            }
            lua_pop(L, 1);
        }
    }
    lua_Debug ar;
    char where[200] = "";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        snprintf(where, sizeof(where), "%s:%d", ar.short_src, ar.currentline);
    mp_log_kv(lvl, &lc, msg, "script", where, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6], kv[7], kv[8], kv[9],
              kv[10], kv[11], NULL);
    return 0;
}

void bff_request_inject(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    lua_createtable(L, 0, 4);
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, i); /* MP_LOG_DEBUG .. MP_LOG_ERROR */
        lua_pushcclosure(L, l_log_at, 1);
        lua_setfield(L, -2, levels[i]);
    }
    lua_setfield(L, -2, "log");
}
