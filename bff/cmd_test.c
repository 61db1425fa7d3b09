/*
 * cmd_test.c: `moonport bff test [scripts/lua/<client> ...]`: runs each
 * client's *_test.lua files offline. Routes run exactly as in production
 * (same sandbox, dispatch, coroutines, fallbacks), but their service calls
 * are answered by fixtures the test declares (t.reply / t.fail), in virtual
 * time: a fixture's delay_ms orders replies and turns into a timeout when it
 * exceeds the call's budget. A call without a fixture fails the case.
 *
 * Output: one line per case, then "bff test: N passed, M failed"; the exit
 * status is non-zero when anything failed or did not load.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/alloc.h"
#include "bff_int.h"

#define MAX_FIX 64
#define MAX_Q 256
#define MAX_LOG 64

typedef struct fixture {
    char subject[96];
    int kind; /* 0 reply, 1 timeout, 2 unavailable */
    int status;
    char *body;
    size_t len;
    int delay_ms;
    bool once, used;
} fixture_t;

typedef struct pending {
    bff_call_t *c;
    int64_t due;
    uint64_t seq;
    mp_status_t st;
    int status;
    char *body;
    size_t len;
} pending_t;

typedef struct logged {
    char subject[96];
    char *input;
    char hdr_idem[256];
} logged_t;

typedef struct runner {
    bff_vm_t *vm;
    char *scripts_dir;
    fixture_t fx[MAX_FIX];
    size_t nfx;
    pending_t q[MAX_Q];
    size_t nq;
    uint64_t seq;
    int in_flight, max_in_flight;
    logged_t log[MAX_LOG];
    size_t nlog;
    char missing[8][96];
    size_t nmissing;
    bool done;
    int status;
    mp_buf_t body;
    char ctype[64];
    int passed, failed;
} runner_t;

static runner_t run;

/* ---- the fixture transport -------------------------------------------------------- */

static fixture_t *find_fixture(const char *subject)
{
    for (size_t i = run.nfx; i-- > 0;)
        if (strcmp(run.fx[i].subject, subject) == 0 && !(run.fx[i].once && run.fx[i].used))
            return &run.fx[i];
    return NULL;
}

static void note_missing(const char *subject)
{
    for (size_t i = 0; i < run.nmissing; i++)
        if (strcmp(run.missing[i], subject) == 0)
            return;
    if (run.nmissing < 8)
        snprintf(run.missing[run.nmissing++], sizeof(run.missing[0]), "%s", subject);
}

static mp_status_t fx_start(void *self, bff_call_t *c, const mp_bus_call_t *call)
{
    if (run.nq == MAX_Q)
        return mp_err_set(MP_EUNAVAIL, "too many calls in one test request");
    if (run.nlog < MAX_LOG) {
        logged_t *l = &run.log[run.nlog++];
        snprintf(l->subject, sizeof(l->subject), "%s", call->subject);
        l->input = mp_xstrndup(call->body, call->len);
        l->hdr_idem[0] = '\0';
        for (size_t i = 0; i < call->nextra; i++)
            if (strcmp(call->extra[i].name, "idempotency-key") == 0)
                snprintf(l->hdr_idem, sizeof(l->hdr_idem), "%s", call->extra[i].value);
    }
    pending_t *p = &run.q[run.nq++];
    memset(p, 0, sizeof(*p));
    p->c = c;
    p->seq = run.seq++;
    fixture_t *f = find_fixture(call->subject);
    if (f == NULL) {
        note_missing(call->subject);
        p->st = MP_EUNAVAIL;
    } else {
        f->used = true;
        p->due = f->delay_ms;
        if (f->kind == 1 || f->delay_ms > call->timeout_ms) {
            p->st = MP_ETIMEDOUT;
            p->due = call->timeout_ms;
        } else if (f->kind == 2) {
            p->st = MP_EUNAVAIL;
        } else {
            p->st = MP_OK;
            p->status = f->status;
            p->body = mp_xstrndup(f->body, f->len);
            p->len = f->len;
        }
    }
    if (++run.in_flight > run.max_in_flight)
        run.max_in_flight = run.in_flight;
    return MP_OK;
}

static void fx_cancel(void *self, bff_call_t *c)
{
    for (size_t i = 0; i < run.nq; i++) {
        if (run.q[i].c == c) {
            free(run.q[i].body);
            run.q[i] = run.q[--run.nq];
            run.in_flight--;
            return;
        }
    }
}

/* Delivers the earliest pending reply (virtual time). False when none is left. */
static bool deliver_next(void)
{
    if (run.nq == 0)
        return false;
    size_t best = 0;
    for (size_t i = 1; i < run.nq; i++)
        if (run.q[i].due < run.q[best].due || (run.q[i].due == run.q[best].due && run.q[i].seq < run.q[best].seq))
            best = i;
    pending_t p = run.q[best];
    run.q[best] = run.q[--run.nq];
    run.in_flight--;
    bff_call_complete(p.c, p.st, p.status, p.body, p.len);
    return true;
}

/* ---- tcore: the C half of moonport.test ------------------------------------------------- */

static void on_done(bff_req_t *r, int status, const mp_buf_t *body, const char *ctype)
{
    run.done = true;
    run.status = status;
    mp_buf_reset(&run.body);
    if (body && body->len)
        mp_buf_append(&run.body, body->base, body->len);
    snprintf(run.ctype, sizeof(run.ctype), "%s", ctype ? ctype : "");
}

static void push_result(lua_State *L)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, run.status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, run.body.base ? run.body.base : "", run.body.len);
    lua_setfield(L, -2, "raw");
    lua_pushstring(L, run.ctype);
    lua_setfield(L, -2, "content_type");
    char err[100];
    if (run.body.len && strstr(run.ctype, "json") && bff_json_decode(L, run.body.base, run.body.len, err, sizeof(err)))
        lua_setfield(L, -2, "body");
}

static void problem_result(lua_State *L, int status, const char *detail)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_printf(&b, "{\"status\":%d,\"detail\":\"%s\"}", status, detail);
    on_done(NULL, status, &b, "application/problem+json");
    mp_buf_dispose(&b);
    push_result(L);
}

/* tcore.request(client, method, path, body, opts) -> response table */
static int t_request(lua_State *L)
{
    const char *client_name = luaL_checkstring(L, 1), *method = luaL_checkstring(L, 2);
    size_t plen;
    const char *path = luaL_checklstring(L, 3, &plen);
    luaL_checktype(L, 5, LUA_TTABLE);
    bff_client_t *client = bff_vm_client(run.vm, client_name, strlen(client_name));
    const char *q = memchr(path, '?', plen), *detail = NULL;
    size_t path_only = q ? (size_t)(q - path) : plen;
    char allow[64], sub[128] = "", roles[256] = "";
    bff_match_t m;
    mp_bff_caller_t caller = {NULL, NULL};

    lua_getfield(L, 5, "caller");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "sub");
        snprintf(sub, sizeof(sub), "%s", luaL_optstring(L, -1, ""));
        lua_getfield(L, -2, "roles");
        for (int i = 1; lua_istable(L, -1) && i <= (int)lua_objlen(L, -1); i++) {
            lua_rawgeti(L, -1, i);
            size_t n = strlen(roles);
            snprintf(roles + n, sizeof(roles) - n, "%s%s", n ? "," : "", luaL_optstring(L, -1, ""));
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
        caller = (mp_bff_caller_t){sub, roles};
    }
    lua_pop(L, 1);

    run.done = false;
    for (size_t i = 0; i < run.nlog; i++)
        free(run.log[i].input);
    run.nlog = 0;
    run.in_flight = run.max_in_flight = 0;
    int status = bff_dispatch(&m, client, method, strlen(method), path, path_only, allow, sizeof(allow), &detail);
    if (status == 0)
        status = bff_authorize(&m, client, caller.sub ? &caller : NULL, &detail);
    if (status != 0) {
        problem_result(L, status, detail);
        return 1;
    }
    mp_reqctx_t rc;
    mp_reqctx_init(&rc, "test-request", 12, NULL, 0);
    bff_req_t *r = bff_req_start(run.vm, client, &m, NULL, &rc, caller.sub ? &caller : NULL);
    r->on_done = on_done;
    lua_State *co = r->co; /* [fn, request table] */
    lua_pushstring(co, method);
    lua_setfield(co, -2, "method");
    lua_pushlstring(co, path, path_only);
    lua_setfield(co, -2, "path");
    if (q)
        bff_push_query_string(co, q + 1, plen - path_only - 1), lua_setfield(co, -2, "query");
    lua_getfield(L, 5, "headers");
    if (lua_istable(L, -1)) {
        lua_newtable(co);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
                char name[128];
                snprintf(name, sizeof(name), "%s", lua_tostring(L, -2));
                for (char *c = name; *c; c++)
                    *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
                lua_pushstring(co, name);
                lua_pushstring(co, lua_tostring(L, -1));
                lua_rawset(co, -3);
            }
            lua_pop(L, 1);
        }
        lua_setfield(co, -2, "headers");
    }
    lua_pop(L, 1);
    if (!lua_isnoneornil(L, 4)) { /* through JSON, as on the wire */
        mp_buf_t b = MP_BUF_INIT;
        char err[160];
        if (!bff_json_encode(L, 4, &b, err, sizeof(err)) || !bff_json_decode(co, b.base, b.len, err, sizeof(err))) {
            mp_buf_dispose(&b);
            return luaL_error(L, "the request body is not JSON: %s", err);
        }
        mp_buf_dispose(&b);
        lua_setfield(co, -2, "body");
    }
    bff_req_run(r);
    while (!run.done && deliver_next())
        ;
    if (!run.done)
        return luaL_error(L, "the request never finished");
    bff_req_free(r); /* offline requests have no h2o pool to free them */
    push_result(L);
    return 1;
}

/* tcore.fixture(subject, {kind=, body=, status=, delay_ms=, once=}) */
static int t_fixture(lua_State *L)
{
    const char *subject = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (run.nfx == MAX_FIX)
        return luaL_error(L, "too many fixtures in one case");
    fixture_t *f = &run.fx[run.nfx++];
    memset(f, 0, sizeof(*f));
    snprintf(f->subject, sizeof(f->subject), "%s", subject);
    lua_getfield(L, 2, "kind");
    const char *kind = luaL_optstring(L, -1, "reply");
    f->kind = strcmp(kind, "timeout") == 0 ? 1 : strcmp(kind, "unavailable") == 0 ? 2 : 0;
    lua_getfield(L, 2, "body");
    size_t n = 0;
    const char *body = lua_tolstring(L, -1, &n);
    f->body = mp_xstrndup(body ? body : "", n);
    f->len = n;
    lua_getfield(L, 2, "status");
    f->status = (int)luaL_optinteger(L, -1, 200);
    lua_getfield(L, 2, "delay_ms");
    f->delay_ms = (int)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 2, "once");
    f->once = lua_toboolean(L, -1);
    lua_pop(L, 5);
    return 0;
}

static void clear_case(void)
{
    for (size_t i = 0; i < run.nfx; i++)
        free(run.fx[i].body);
    run.nfx = 0;
    for (size_t i = 0; i < run.nlog; i++)
        free(run.log[i].input);
    run.nlog = 0;
    while (run.nq)
        free(run.q[--run.nq].body);
    run.nmissing = 0;
    run.in_flight = run.max_in_flight = 0;
}

static int t_reset(lua_State *L)
{
    clear_case();
    run.vm->load_budget = 50000000; /* a test case's own code runs on the load budget */
    return 0;
}

static int t_calls(lua_State *L)
{
    char err[100];
    lua_createtable(L, (int)run.nlog, 0);
    for (size_t i = 0; i < run.nlog; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, run.log[i].subject);
        lua_setfield(L, -2, "subject");
        if (bff_json_decode(L, run.log[i].input, strlen(run.log[i].input), err, sizeof(err)))
            lua_setfield(L, -2, "input");
        lua_newtable(L);
        if (run.log[i].hdr_idem[0]) {
            lua_pushstring(L, run.log[i].hdr_idem);
            lua_setfield(L, -2, "idempotency-key");
        }
        lua_setfield(L, -2, "headers");
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static int t_max_in_flight(lua_State *L)
{
    lua_pushinteger(L, run.max_in_flight);
    return 1;
}

static int t_missing(lua_State *L)
{
    lua_createtable(L, (int)run.nmissing, 0);
    for (size_t i = 0; i < run.nmissing; i++) {
        lua_pushstring(L, run.missing[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* tcore.read_file(client, relpath): a fixture file under scripts/lua/<client>/ */
static int t_read_file(lua_State *L)
{
    const char *client = luaL_checkstring(L, 1), *rel = luaL_checkstring(L, 2);
    if (strstr(rel, "..") || rel[0] == '/')
        return luaL_error(L, "fixture paths are relative to the client directory, without ..");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/%s", run.scripts_dir, client, rel);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return luaL_error(L, "cannot read fixture %s", path);
    mp_buf_t b = MP_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        mp_buf_append(&b, chunk, n);
    fclose(fp);
    lua_pushlstring(L, b.base ? b.base : "", b.len);
    mp_buf_dispose(&b);
    return 1;
}

static int t_report(lua_State *L)
{
    const char *file = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
    bool ok = lua_toboolean(L, 3);
    if (ok) {
        printf("ok    %s  %s\n", file, name);
    } else {
        const char *err = lua_isstring(L, 4) ? lua_tostring(L, 4) : "(an error that is not a string)";
        if (lua_istable(L, 4)) { /* a bff error raised by the route outside a request */
            lua_getfield(L, 4, "detail");
            err = lua_isstring(L, -1) ? lua_tostring(L, -1) : err;
        }
        printf("FAIL  %s  %s\n      %s\n", file, name, err);
    }
    fflush(stdout);
    return 0;
}

static void inject_tcore(lua_State *L)
{
    static const luaL_Reg fns[] = {{"request", t_request},
                                   {"fixture", t_fixture},
                                   {"reset", t_reset},
                                   {"calls", t_calls},
                                   {"max_in_flight", t_max_in_flight},
                                   {"missing", t_missing},
                                   {"read_file", t_read_file},
                                   {"report", t_report},
                                   {NULL, NULL}};
    lua_getfield(L, LUA_REGISTRYINDEX, "mp.core"); /* core */
    lua_pushvalue(L, -1);                          /* core core */
    lua_newtable(L);                               /* core core tcore */
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    if (bff_vm_run_prelude(L, "test.lua", 2, 1) != MP_OK) { /* core factory */
        fprintf(stderr, "moonport bff test: %s\n", mp_err_get());
        exit(2);
    }
    lua_setfield(L, -2, "test_module");
    lua_pop(L, 1);
}

/* ---- the command -------------------------------------------------------------------------- */

static bool selected(const char *client, int argc, char **argv)
{
    if (argc <= 1)
        return true;
    for (int i = 1; i < argc; i++) {
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s", argv[i]);
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/')
            tmp[--n] = '\0';
        if (strcmp(basename(tmp), client) == 0)
            return true;
    }
    return false;
}

static void run_file(lua_State *L, const bff_file_t *f, const char *client)
{
    char chunk[300];
    snprintf(chunk, sizeof(chunk), "@%s", f->path);
    bff_vm_push_env(L, client); /* a fresh require cache: each file gets its own `t` */
    int env = lua_gettop(L);
    run.vm->load_budget = 50000000;
    if (luaL_loadbuffer(L, f->text, f->len, chunk) != 0) {
        printf("FAIL  %s  (does not load)\n      %s\n", f->path, lua_tostring(L, -1));
        run.failed++;
        lua_settop(L, env - 1);
        return;
    }
    lua_pushvalue(L, env);
    lua_setfenv(L, -2);
    if (lua_pcall(L, 0, 0, 0) != 0) {
        printf("FAIL  %s  (does not run)\n      %s\n", f->path, lua_tostring(L, -1));
        run.failed++;
        lua_settop(L, env - 1);
        return;
    }
    lua_getfield(L, env, "require");
    lua_pushliteral(L, "moonport.test");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        lua_settop(L, env - 1);
        return;
    }
    lua_getfield(L, -1, "__run");
    lua_pushstring(L, f->path);
    if (lua_pcall(L, 1, 2, 0) != 0) {
        printf("FAIL  %s  %s\n", f->path, lua_tostring(L, -1));
        run.failed++;
    } else {
        run.passed += (int)lua_tointeger(L, -2);
        run.failed += (int)lua_tointeger(L, -1);
    }
    lua_settop(L, env - 1);
}

int mp_bff_cmd_test(int argc, char **argv)
{
    char dir[1024] = "scripts/lua";
    if (argc > 1) { /* scripts/lua/web -> scripts dir scripts/lua */
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s", argv[1]);
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/')
            tmp[--n] = '\0';
        snprintf(dir, sizeof(dir), "%s", dirname(tmp));
    }
    bff_snapshot_t *snap = NULL;
    bff_limits_t limits = {10000000, 256u << 20, 64u << 20};
    if (bff_snapshot_load(&snap, dir) != MP_OK || bff_vm_create(&run.vm, snap, &limits, false) != MP_OK) {
        fprintf(stderr, "moonport bff test: %s\n", mp_err_get());
        bff_snapshot_release(snap);
        return 1;
    }
    bff_snapshot_release(snap);
    run.scripts_dir = mp_xstrdup(dir);
    run.vm->transport = (bff_transport_t){fx_start, fx_cancel, &run};
    lua_State *L = run.vm->L;
    inject_tcore(L);
    size_t files = 0;
    for (size_t c = 0; c < run.vm->nclients; c++) {
        const char *client = run.vm->clients[c].cfg->name;
        if (!selected(client, argc, argv))
            continue;
        size_t plen = strlen(client);
        for (size_t i = 0; i < run.vm->snap->nfiles; i++) {
            const bff_file_t *f = &run.vm->snap->files[i];
            size_t n = strlen(f->path);
            if (strncmp(f->path, client, plen) == 0 && f->path[plen] == '/' && n > 9 &&
                strcmp(f->path + n - 9, "_test.lua") == 0) {
                run_file(L, f, client);
                files++;
            }
        }
    }
    clear_case();
    printf("bff test: %d passed, %d failed in %zu files\n", run.passed, run.failed, files);
    bff_vm_destroy(run.vm);
    mp_buf_dispose(&run.body);
    free(run.scripts_dir);
    return run.failed > 0 || files == 0 ? 1 : 0;
}
