/*
 * calls.c: service calls from scripts: bff.call starts a NATS request at
 * once (like fetch) and returns a handle; core.wait_all yields the
 * request's coroutine until the awaited calls are done (or a required one
 * failed); core.result turns a finished call into a Lua value, a fallback
 * (optional calls, recorded in `degraded`), or an error with the right
 * 502/503/504 (the service's own 4xx, 503 and 504 stand; its other 5xx are
 * 502).
 *
 * Caching (cache_s = N) keeps successful replies per loop thread; identical
 * calls already in flight ride on the first one instead of going out again.
 * The cache key includes the caller unless cache_shared = true, so one
 * user's data never answers another's call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/log.h"
#include "bff_int.h"

static char call_mt_key, call_methods_key, err_mt_key, resp_mt_key;

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

/* ---- handles ------------------------------------------------------------------------ */

typedef struct handle {
    bff_req_t *r;
    uint32_t idx;
} handle_t;

static bff_call_t *check_call(lua_State *L, int idx)
{
    handle_t *h = lua_touserdata(L, idx);
    bff_vm_t *vm = vm_of(L);
    if (h == NULL || !lua_getmetatable(L, idx))
        luaL_error(L, "expected a call made with bff.call");
    lua_pushlightuserdata(L, &call_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bool ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!ok)
        luaL_error(L, "expected a call made with bff.call");
    if (h->r != vm->current || h->idx >= h->r->ncalls)
        luaL_error(L, "this call belongs to another request");
    return h->r->calls[h->idx];
}

static bool failed(const bff_call_t *c)
{
    return c->st != MP_OK || c->status < 200 || c->status > 299;
}

void bff_call_free(bff_call_t *c)
{
    if (c == NULL)
        return;
    free(c->body);
    free(c->cache_key);
    free(c);
}

/* ---- completion ---------------------------------------------------------------------- */

static void finish_one(bff_call_t *c, mp_status_t st, int status, char *body, size_t len)
{
    c->state = BFF_CALL_DONE;
    c->st = st;
    c->status = status;
    c->body = body;
    c->len = len;
    c->t1_ns = mono_ns();
    bff_req_t *r = c->r;
    if (r == NULL) { /* its request is gone */
        bff_call_free(c);
        return;
    }
    if (!c->awaited)
        return;
    c->awaited = false;
    if (r->waiting > 0)
        r->waiting--;
    bool required_failed = !c->optional && failed(c);
    if (!r->running && !r->done && (r->waiting == 0 || (r->wait_all && required_failed))) {
        r->waiting = 0;
        bff_req_run(r);
    }
}

void bff_call_complete(bff_call_t *c, mp_status_t st, int status, char *body, size_t len)
{
    bff_vm_t *vm = c->r ? c->r->vm : NULL;
    bff_call_t *waiters = c->next_waiter;
    c->next_waiter = NULL;
    if (c->cache_key && vm && vm->thread) {
        bff_cache_set_leader(&vm->thread->cache, c->cache_key, NULL);
        if (st == MP_OK && status >= 200 && status <= 299)
            bff_cache_put(&vm->thread->cache, c->cache_key, body, len, mp_now_ms() + (int64_t)c->cache_s * 1000);
    }
    /* coalesced calls get their own copy of the same outcome */
    while (waiters) {
        bff_call_t *w = waiters;
        waiters = w->next_waiter;
        w->next_waiter = NULL;
        char *copy = body ? mp_xstrndup(body, len) : NULL;
        finish_one(w, st, status, copy, len);
    }
    finish_one(c, st, status, body, len);
}

/* ---- bff.call ----------------------------------------------------------------------------- */

static bool valid_subject(const char *s)
{
    /* <service>.v<N>.<operation> */
    const char *p = s;
    if (!(*p >= 'a' && *p <= 'z'))
        return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
        p++;
    if (*p++ != '.' || *p++ != 'v' || !(*p >= '0' && *p <= '9'))
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p++ != '.' || !(*p >= 'a' && *p <= 'z'))
        return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
        p++;
    return *p == '\0' && strlen(s) < 96;
}

static const char *const pass_headers[] = {"idempotency-key", "if-match", "if-none-match", "accept-language", NULL};

/* Collects opts.headers (only the headers a service may receive) into extra[]. */
static size_t call_headers(lua_State *L, int opts, mp_bus_hdr_t *extra, size_t max)
{
    size_t n = 0;
    lua_getfield(L, opts, "headers");
    if (lua_istable(L, -1)) {
        for (size_t i = 0; pass_headers[i] && n < max; i++) {
            lua_getfield(L, -1, pass_headers[i]);
            if (lua_isstring(L, -1))
                extra[n++] = (mp_bus_hdr_t){pass_headers[i], lua_tostring(L, -1)}; /* anchored in opts */
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            bool known = false;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
            for (size_t i = 0; pass_headers[i]; i++)
                known |= strcmp(pass_headers[i], k) == 0;
            lua_pop(L, 1);
            if (!known) {
                lua_pop(L, 2);
                luaL_error(L,
                           "bff.call: header '%s' cannot be sent to a service (allowed: idempotency-key, "
                           "if-match, if-none-match, accept-language; lower case)",
                           k);
            }
        }
    }
    lua_pop(L, 1);
    return n;
}

static void push_handle(lua_State *L, bff_req_t *r, bff_call_t *c)
{
    handle_t *h = lua_newuserdata(L, sizeof(*h));
    h->r = r;
    h->idx = (uint32_t)c->idx;
    lua_pushlightuserdata(L, &call_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
}

static bff_call_t *new_call(bff_req_t *r, const char *subject)
{
    bff_call_t *c = mp_xcalloc(1, sizeof(*c));
    c->r = r;
    memcpy(c->subject, subject, strlen(subject) + 1); /* valid_subject() holds it under 96 bytes */
    c->fallback_ref = LUA_NOREF;
    c->value_ref = LUA_NOREF;
    c->t0_ns = mono_ns();
    if (r->ncalls == r->capcalls) {
        r->capcalls = r->capcalls ? r->capcalls * 2 : 8;
        r->calls = mp_xrealloc(r->calls, r->capcalls * sizeof(*r->calls));
    }
    c->idx = (int)r->ncalls;
    r->calls[r->ncalls++] = c;
    return c;
}

/* Outcomes known at once (cache hit, deadline gone, transport refused) complete without a round trip. */
static void complete_now(bff_call_t *c, mp_status_t st, int status, char *body, size_t len)
{
    c->state = BFF_CALL_DONE;
    c->st = st;
    c->status = status;
    c->body = body;
    c->len = len;
    c->t1_ns = mono_ns();
}

static int l_call(lua_State *L)
{
    bff_vm_t *vm = vm_of(L);
    bff_req_t *r = vm->current;
    const char *subject = luaL_checkstring(L, 1);
    if (r == NULL)
        return luaL_error(L, "bff.call works only while serving a request");
    if (!valid_subject(subject))
        return luaL_error(L, "bff.call: \"%s\" is not a subject like \"product.v1.get\"", subject);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    luaL_checktype(L, 3, LUA_TTABLE);

    mp_buf_t *in = &vm->scratch; /* the input's JSON: one buffer per state, reused call after call */
    mp_buf_reset(in);
    char err[200];
    if (lua_isnoneornil(L, 2))
        mp_buf_puts(in, "{}");
    else if (!bff_json_encode(L, 2, in, err, sizeof(err)))
        return luaL_error(L, "bff.call(\"%s\"): the input %s", subject, err);
    if (in->len == 2 && memcmp(in->base, "[]", 2) == 0) { /* an operation's input is an object, even an empty one */
        mp_buf_reset(in);
        mp_buf_puts(in, "{}");
    } else if (in->base[0] != '{') {
        return luaL_error(L, "bff.call(\"%s\"): the input must be a table of named fields", subject);
    }
    bff_call_t *c = new_call(r, subject);
    lua_getfield(L, 3, "optional");
    c->optional = !lua_isnil(L, -1);
    if (c->optional) {
        lua_pushvalue(L, -1);
        c->fallback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_getfield(L, 3, "timeout_ms");
    int64_t timeout = (int64_t)lua_tonumber(L, -1);
    lua_getfield(L, 3, "cache_s");
    c->cache_s = (int)lua_tonumber(L, -1);
    lua_getfield(L, 3, "cache_shared");
    c->cache_shared = lua_toboolean(L, -1);
    lua_pop(L, 4);
    if (c->cache_s < 0 || c->cache_s > 86400) {
        return luaL_error(L, "bff.call(\"%s\"): cache_s must be 1-86400 seconds", subject);
    }
    mp_bus_hdr_t extra[4];
    size_t nextra = call_headers(L, 3, extra, 4);
    for (size_t i = 0; i < nextra; i++)
        c->keyed |= strcmp(extra[i].name, "idempotency-key") == 0;

    int64_t now = mp_now_ms(), left = r->deadline_ms - now;
    if (timeout <= 0 || timeout > left)
        timeout = left;
    push_handle(L, r, c);
    if (timeout <= 0) {
        complete_now(c, MP_ETIMEDOUT, 0, NULL, 0);
        return 1;
    }
    if (c->cache_s > 0 && vm->thread) {
        c->cache_key = mp_xasprintf("%s\n%s\n%s", subject, c->cache_shared ? "" : r->sub, in->base);
        size_t blen;
        const char *hit = bff_cache_get(&vm->thread->cache, c->cache_key, &blen, now);
        if (hit) {
            c->cache_hit = true;
            complete_now(c, MP_OK, 200, mp_xstrndup(hit, blen), blen);
            return 1;
        }
        bff_call_t *leader = bff_cache_leader(&vm->thread->cache, c->cache_key);
        if (leader) {
            c->coalesced = true;
            c->next_waiter = leader->next_waiter;
            leader->next_waiter = c;
            return 1;
        }
    }
    mp_bus_call_t call = {
        .subject = subject,
        .body = in->base,
        .len = in->len,
        .timeout_ms = (int)timeout,
        .extra = extra,
        .nextra = nextra,
        .ctx = {.request_id = r->rc.request_id,
                .traceparent = r->rc.traceparent,
                .auth_sub = r->has_caller ? r->sub : NULL,
                .auth_roles = r->has_caller ? r->roles : NULL,
                .deadline_ms = now + timeout},
    };
    mp_status_t st = vm->transport.start(vm->transport.self, c, &call); /* copies the input */
    if (in->cap > 64 * 1024)
        mp_buf_dispose(in); /* keep no huge buffer around */
    if (st != MP_OK)
        complete_now(c, st, 0, NULL, 0);
    else if (c->cache_key)
        bff_cache_set_leader(&vm->thread->cache, c->cache_key, c);
    return 1;
}

/* ---- waiting ----------------------------------------------------------------------------- */

/* core.wait_all(calls): yields until every call is done, or returns a failed required call at once. */
static int l_wait_all(lua_State *L)
{
    bff_vm_t *vm = vm_of(L);
    bff_req_t *r = vm->current;
    luaL_checktype(L, 1, LUA_TTABLE);
    if (r == NULL)
        return luaL_error(L, "waiting for calls works only while serving a request");
    size_t n = lua_objlen(L, 1), pending = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i);
        bff_call_t *c = check_call(L, -1);
        if (c->state == BFF_CALL_DONE && !c->optional && failed(c))
            return 1; /* the failed call itself */
        lua_pop(L, 1);
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i);
        bff_call_t *c = check_call(L, -1);
        lua_pop(L, 1);
        if (c->state == BFF_CALL_PENDING && !c->awaited) {
            c->awaited = true;
            pending++;
        }
    }
    if (pending == 0)
        return 0;
    r->waiting = pending;
    r->wait_all = true;
    return lua_yield(L, 0);
}

/* ---- results ------------------------------------------------------------------------------ */

static void push_error(lua_State *L, int status, const char *detail, const char *dependency)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, detail);
    lua_setfield(L, -2, "detail");
    if (dependency) {
        lua_pushstring(L, dependency);
        lua_setfield(L, -2, "dependency");
    }
    lua_pushlightuserdata(L, &err_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
}

/* Why a call failed, in a few words (for `degraded` and logs). */
static void failure_reason(const bff_call_t *c, char *out, size_t size)
{
    if (c->st == MP_ETIMEDOUT)
        snprintf(out, size, "timeout");
    else if (c->st == MP_EUNAVAIL)
        snprintf(out, size, "unavailable");
    else if (c->st != MP_OK)
        snprintf(out, size, "%s", mp_status_str(c->st));
    else
        snprintf(out, size, "status %d", c->status);
}

/* The detail of a service's problem reply, if it sent one; pushes its `errors` list (or nil). */
static void service_detail(lua_State *L, const bff_call_t *c, char *out, size_t size)
{
    char err[64];
    snprintf(out, size, "%s answered %d", c->subject, c->status);
    if (c->body == NULL || !bff_json_decode(L, c->body, c->len, err, sizeof(err))) {
        lua_pushnil(L);
        return;
    }
    if (!lua_istable(L, -1)) { /* valid JSON, but not a problem object */
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_getfield(L, -1, "detail");
    if (lua_isstring(L, -1))
        snprintf(out, size, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "errors");
    lua_remove(L, -2);
}

static int raise_failure(lua_State *L, bff_call_t *c)
{
    char detail[300];
    int status;
    if (c->st == MP_ETIMEDOUT) {
        status = 504;
        snprintf(detail, sizeof(detail), "%s did not answer before the deadline", c->subject);
    } else if (c->st != MP_OK) {
        status = 503;
        snprintf(detail, sizeof(detail), "%s is unavailable", c->subject);
    } else if (c->status >= 400 && c->status < 500) {
        /* the service's verdict on the input stands (404, 409, 422 ...), with its field errors */
        service_detail(L, c, detail, sizeof(detail));
        push_error(L, c->status, detail, c->subject);
        if (lua_istable(L, -2)) {
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, "errors");
        }
        return lua_error(L);
    } else if (c->status == 503 || c->status == 504) {
        /* the service says it (or what it needs, e.g. Postgres) is down, or it ran out of time: the app is told the
         * same as the REST route would tell it, so it retries a 503 later rather than give up on a "bad" answer */
        status = c->status;
        snprintf(detail, sizeof(detail),
                 c->status == 503 ? "%s is unavailable" : "%s did not answer before the deadline", c->subject);
    } else {
        status = 502;
        snprintf(detail, sizeof(detail), "%s answered badly (%d)", c->subject, c->status);
    }
    push_error(L, status, detail, c->subject);
    return lua_error(L);
}

static int use_fallback(lua_State *L, bff_call_t *c)
{
    bff_req_t *r = c->r;
    if (r->ndegraded < BFF_MAX_DEGRADED) {
        if (r->degraded == NULL)
            r->degraded = mp_xcalloc(BFF_MAX_DEGRADED, sizeof(*r->degraded));
        bff_degraded_t *d = &r->degraded[r->ndegraded++];
        snprintf(d->subject, sizeof(d->subject), "%s", c->subject);
        failure_reason(c, d->reason, sizeof(d->reason));
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->fallback_ref);
    if (lua_touserdata(L, -1) != NULL && lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
        lua_pop(L, 1);
        lua_pushnil(L); /* optional = bff.json.null: fall back to nil */
    }
    return 1;
}

/* core.result(call): the value of a finished call (see the file comment). */
static int l_result(lua_State *L)
{
    bff_call_t *c = check_call(L, 1);
    if (c->state != BFF_CALL_DONE)
        return luaL_error(L, "%s has not answered yet: use :wait() or bff.all", c->subject);
    if (c->value_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->value_ref);
        return 1;
    }
    if (failed(c))
        return c->optional ? use_fallback(L, c) : raise_failure(L, c);
    if (c->len == 0) {
        lua_pushnil(L);
    } else if (!bff_view_push_reply(L, c->body, c->len)) { /* decoded field by field, as the script reads it */
        mp_log_kv(MP_LOG_WARN, &(mp_log_ctx_t){c->r->rc.request_id, c->r->rc.trace_id}, "service reply is not JSON",
                  "subject", c->subject, NULL);
        c->status = 502;
        return c->optional ? use_fallback(L, c) : raise_failure(L, c);
    }
    lua_pushvalue(L, -1);
    c->value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static int l_status(lua_State *L)
{
    bff_call_t *c = check_call(L, 1);
    lua_pushinteger(L, c->state == BFF_CALL_DONE && c->st == MP_OK ? c->status : 0);
    return 1;
}

static int l_done(lua_State *L)
{
    lua_pushboolean(L, check_call(L, 1)->state == BFF_CALL_DONE);
    return 1;
}

static int l_call_tostring(lua_State *L)
{
    handle_t *h = lua_touserdata(L, 1);
    lua_pushfstring(L, "call(%s)", h && h->r && h->idx < h->r->ncalls ? h->r->calls[h->idx]->subject : "?");
    return 1;
}

/* ---- errors and responses ------------------------------------------------------------------- */

/* bff.fail(status, detail [, errors]): answers the request with a problem */
static int l_fail(lua_State *L)
{
    int status = (int)luaL_checkinteger(L, 1);
    const char *detail = luaL_optstring(L, 2, NULL);
    if (status < 400 || status > 599)
        return luaL_error(L, "bff.fail: status must be 400-599");
    push_error(L, status, detail ? detail : "", NULL);
    if (lua_istable(L, 3)) {
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "errors");
    }
    return lua_error(L);
}

/* bff.response{status=, headers=, body=} marks a full response */
static int l_response(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushlightuserdata(L, &resp_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_now_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)mp_now_ms());
    return 1;
}

bool bff_is_error(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return false;
    lua_pushlightuserdata(L, &err_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bool yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

bool bff_is_response(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return false;
    lua_pushlightuserdata(L, &resp_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bool yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

static void new_marker(lua_State *L, void *key, const char *name)
{
    lua_pushlightuserdata(L, key);
    lua_newtable(L);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_rawset(L, LUA_REGISTRYINDEX);
}

void bff_calls_inject(lua_State *L)
{
    new_marker(L, &err_mt_key, "bff error");
    new_marker(L, &resp_mt_key, "bff response");
    /* call handles: methods in a table the prelude extends with :wait() */
    lua_pushlightuserdata(L, &call_methods_key);
    lua_newtable(L);
    lua_pushcfunction(L, l_status);
    lua_setfield(L, -2, "status");
    lua_pushcfunction(L, l_done);
    lua_setfield(L, -2, "done");
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &call_mt_key);
    lua_newtable(L);
    lua_pushlightuserdata(L, &call_methods_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_call_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "bff call");
    lua_setfield(L, -2, "__metatable");
    lua_rawset(L, LUA_REGISTRYINDEX);

    lua_pushlightuserdata(L, &call_methods_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setfield(L, -2, "call_methods");
    lua_pushcfunction(L, l_call);
    lua_setfield(L, -2, "call");
    lua_pushcfunction(L, l_wait_all);
    lua_setfield(L, -2, "wait_all");
    lua_pushcfunction(L, l_result);
    lua_setfield(L, -2, "result");
    lua_pushcfunction(L, l_fail);
    lua_setfield(L, -2, "fail");
    lua_pushcfunction(L, l_response);
    lua_setfield(L, -2, "response");
    lua_pushcfunction(L, l_now_ms);
    lua_setfield(L, -2, "now_ms");
}
