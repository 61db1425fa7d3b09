/*
 * vm.c: one sandboxed LuaJIT state built from a script snapshot.
 *
 * Safety, in the order a hostile or buggy script would meet it:
 *   - Globals: each client gets its own environment with copies of the safe
 *     libraries (no io, os.execute, load*, dofile, debug, ffi, jit,
 *     coroutine, getfenv/setfenv, collectgarbage); reading or writing an
 *     undeclared global is an error, which also catches typos.
 *   - require: only moonport.* built-ins, the client's own modules and
 *     scripts/lua/lib, read from the snapshot (never from the disk).
 *   - CPU: the JIT is off so a count hook fires every 1,000 instructions
 *     everywhere; a request over its budget is killed, and pcall cannot
 *     swallow the kill (the sandbox's pcall rethrows it). The pattern
 *     functions, which run long in C, charge their steps too (pattern.c).
 *   - Memory: our allocator caps the whole state and what one request may
 *     allocate; the request gets "not enough memory" and a 500.
 * The string metatable is locked so clients cannot change each other's
 * string methods.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include <luajit.h>
#include "mp/alloc.h"
#include "mp/embed.h"
#include "mp/log.h"
#include "bff_int.h"

#define HOOK_STEP 1000
#define LOAD_BUDGET 50000000

extern const mp_embed_file_t mp_bff_prelude_files[];

static char vm_key; /* registry: light userdata of the vm */

static bff_vm_t *vm_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- allocator and hook ----------------------------------------------------------- */

/* Accounting around LuaJIT's own allocator (much faster than malloc for Lua's many small objects). */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    bff_vm_t *vm = ud;
    if (nsize == 0) {
        vm->base_alloc(vm->base_ud, ptr, osize, 0);
        vm->used -= osize;
        return NULL;
    }
    if (nsize > osize) {
        size_t grow = nsize - osize;
        bff_req_t *r = vm->current;
        if (r && r->killed == 2)
            return NULL; /* a CPU kill still needs a little memory to raise its error */
        if (vm->used + grow > vm->limits.memory_limit ||
            (r && (r->allocated += grow) > vm->limits.request_alloc_limit)) {
            if (r)
                r->killed = 2;
            return NULL;
        }
    }
    void *p = vm->base_alloc(vm->base_ud, ptr, osize, nsize);
    if (p == NULL)
        return NULL;
    vm->used = vm->used - osize + nsize;
    return p;
}

/* Counts `n` instructions against the running request (or the load), raising the kill when they are used up. */
static void charge(lua_State *L, bff_vm_t *vm, int64_t n)
{
    bff_req_t *r = vm->current;
    if (r != NULL) {
        r->instructions += n;
        if (r->killed || r->instructions > vm->limits.cpu_budget) {
            if (!r->killed)
                r->killed = 1;
            luaL_error(L, "the request used up its CPU budget (%d million instructions)",
                       (int)(vm->limits.cpu_budget / 1000000));
        }
    } else if ((vm->load_budget -= n) < 0) {
        luaL_error(L, "loading took more than %d million instructions (an endless loop at load time?)",
                   LOAD_BUDGET / 1000000);
    }
}

static void on_hook(lua_State *L, lua_Debug *ar)
{
    charge(L, vm_of(L), HOOK_STEP);
}

void bff_vm_charge(lua_State *L, int64_t n)
{
    lua_pushlightuserdata(L, &vm_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bff_vm_t *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (vm != NULL) /* a state of ours (a bare one, in unit tests, has no budget) */
        charge(L, vm, n);
}

/* ---- sandbox ------------------------------------------------------------------------ */

static int l_killed(lua_State *L)
{
    bff_vm_t *vm = vm_of(L);
    lua_pushboolean(L, vm->current && vm->current->killed);
    return 1;
}

static int l_undefined_global(lua_State *L)
{
    return luaL_error(L, "undefined global '%s'", luaL_optstring(L, 2, "?"));
}

static int l_assign_global(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s' (declare it local)", luaL_optstring(L, 2, "?"));
}

/* Copies the fields `names` of the global library `lib` into a new table at the top. */
static void copy_lib(lua_State *L, const char *lib, const char *const *names)
{
    lua_getglobal(L, lib);
    lua_newtable(L);
    for (size_t i = 0; names[i]; i++) {
        lua_getfield(L, -2, names[i]);
        lua_setfield(L, -2, names[i]);
    }
    lua_remove(L, -2);
}

static const char *const base_names[] = {"assert",   "error",        "ipairs",       "next",   "pairs",    "select",
                                         "tonumber", "tostring",     "type",         "unpack", "rawequal", "rawget",
                                         "rawset",   "setmetatable", "getmetatable", NULL};
static const char *const string_names[] = {"byte",  "char",  "find", "format",  "gmatch", "gsub",  "len",
                                           "lower", "match", "rep",  "reverse", "sub",    "upper", NULL};
static const char *const table_names[] = {"concat", "insert", "remove", "sort", "maxn", NULL};
static const char *const math_names[] = {"abs", "ceil", "cos", "exp", "floor",  "fmod", "huge", "log", "log10", "max",
                                         "min", "modf", "pi",  "pow", "random", "sin",  "sqrt", "tan", NULL};
static const char *const os_names[] = {"time", "clock", "date", NULL};

/* Pushes a new client environment: safe globals, `require` bound to `client`, locked against new globals. */
void bff_vm_push_env(lua_State *L, const char *client)
{
    lua_newtable(L);
    int env = lua_gettop(L);
    for (size_t i = 0; base_names[i]; i++) {
        lua_getglobal(L, base_names[i]);
        lua_setfield(L, env, base_names[i]);
    }
    copy_lib(L, "string", string_names);
    lua_setfield(L, env, "string");
    copy_lib(L, "table", table_names);
    lua_setfield(L, env, "table");
    copy_lib(L, "math", math_names);
    lua_setfield(L, env, "math");
    copy_lib(L, "os", os_names);
    lua_setfield(L, env, "os");
    /* pcall/xpcall that cannot swallow a kill, and require, come from the prelude's sandbox module */
    lua_getfield(L, LUA_REGISTRYINDEX, "mp.sandbox");
    lua_getfield(L, -1, "make_env");
    lua_pushvalue(L, env);
    lua_pushstring(L, client);
    lua_call(L, 2, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_newtable(L); /* the lock */
    lua_pushcfunction(L, l_undefined_global);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_assign_global);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, env);
}

/* ---- modules and loading -------------------------------------------------------------- */

/* "web.util" -> "web/util.lua" */
static void module_path(char *out, size_t size, const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 5 < size; p++)
        out[n++] = *p == '.' ? '/' : *p;
    snprintf(out + n, size - n, ".lua");
}

/* loader(name, client) -> chunk, or nil + message: reads scripts/lua/<path> from the snapshot */
static int l_load_module(lua_State *L)
{
    bff_vm_t *vm = vm_of(L);
    const char *name = luaL_checkstring(L, 1);
    char path[256], chunk[300];
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.'))
            return luaL_error(L, "module name '%s' may only hold letters, digits, _ and .", name);
    module_path(path, sizeof(path), name);
    const bff_file_t *f = bff_snapshot_file(vm->snap, path);
    if (f == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "module '%s' not found (looked for scripts/lua/%s)", name, path);
        return 2;
    }
    snprintf(chunk, sizeof(chunk), "@%s", f->path);
    if (luaL_loadbuffer(L, f->text, f->len, chunk) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static int l_setfenv(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_setfenv(L, 1);
    return 1;
}

/* Loads a prelude file (compiled into the binary) and runs it with `core` as its argument. */
mp_status_t bff_vm_run_prelude(lua_State *L, const char *name, int nargs, int nresults)
{
    for (const mp_embed_file_t *f = mp_bff_prelude_files; f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        char chunk[128];
        snprintf(chunk, sizeof(chunk), "@prelude/%s", name);
        if (luaL_loadbuffer(L, f->data, f->len, chunk) != 0) {
            mp_status_t st = mp_err_set(MP_EINTERNAL, "%s", lua_tostring(L, -1));
            lua_pop(L, 1 + nargs);
            return st;
        }
        lua_insert(L, -(nargs + 1));
        if (lua_pcall(L, nargs, nresults, 0) != 0) {
            mp_status_t st = mp_err_set(MP_EINTERNAL, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            return st;
        }
        return MP_OK;
    }
    lua_pop(L, nargs);
    return mp_err_set(MP_EINTERNAL, "prelude %s is missing from the binary", name);
}

/* Runs every route file of one client (its top-level .lua files except *_test.lua) in its environment. */
static mp_status_t load_client(bff_vm_t *vm, bff_client_t *c)
{
    lua_State *L = vm->L;
    size_t plen = strlen(c->cfg->name);
    bff_vm_push_env(L, c->cfg->name);
    int env = lua_gettop(L);
    lua_pushvalue(L, env);
    lua_setfield(L, LUA_REGISTRYINDEX, c->cfg->name); /* found again by require and the test runner */
    vm->loading_client = c->cfg->name;
    mp_status_t st = MP_OK;
    for (size_t i = 0; i < vm->snap->nfiles && st == MP_OK; i++) {
        const bff_file_t *f = &vm->snap->files[i];
        size_t n = strlen(f->path);
        if (strncmp(f->path, c->cfg->name, plen) != 0 || f->path[plen] != '/' || strchr(f->path + plen + 1, '/') ||
            (n > 9 && strcmp(f->path + n - 9, "_test.lua") == 0))
            continue;
        char chunk[300];
        snprintf(chunk, sizeof(chunk), "@%s", f->path);
        if (luaL_loadbuffer(L, f->text, f->len, chunk) != 0) {
            st = mp_err_set(MP_EINVAL, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            break;
        }
        lua_pushvalue(L, env);
        lua_setfenv(L, -2);
        vm->load_budget = LOAD_BUDGET;
        if (lua_pcall(L, 0, 0, 0) != 0) {
            st = mp_err_set(MP_EINVAL, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    vm->loading_client = NULL;
    lua_settop(L, env - 1);
    return st;
}

/* core.route(method, path, opts, fn): declares a route of the client being loaded */
static int l_route(lua_State *L)
{
    bff_vm_t *vm = vm_of(L);
    const char *method = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    if (vm->loading_client == NULL)
        return luaL_error(L, "routes are declared when a script loads, not while it serves");
    bff_client_t *c = bff_vm_client(vm, vm->loading_client, strlen(vm->loading_client));
    bff_route_t r = {0};
    snprintf(r.method, sizeof(r.method), "%s", method);
    const char *err = bff_route_parse(&r, path);
    if (err) {
        for (size_t i = 0; i < r.nsegs; i++)
            free(r.segs[i]);
        free(r.path);
        return luaL_error(L, "route %s %s: %s", method, path, err);
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        if (strcmp(c->routes[i].method, r.method) == 0 && strcmp(c->routes[i].path, r.path) == 0) {
            const char *where = c->routes[i].where;
            for (size_t s = 0; s < r.nsegs; s++)
                free(r.segs[s]);
            free(r.path);
            return luaL_error(L, "route %s %s is already declared at %s", method, path, where);
        }
    }
    lua_getfield(L, 3, "auth");
    const char *auth = lua_tostring(L, -1);
    r.auth = auth == NULL ? -1 : strcmp(auth, "required") == 0 ? 1 : strcmp(auth, "none") == 0 ? 0 : -2;
    lua_getfield(L, 3, "role");
    r.role = lua_isstring(L, -1) ? mp_xstrdup(lua_tostring(L, -1)) : NULL;
    lua_getfield(L, 3, "deadline_ms");
    r.deadline_ms = (int64_t)lua_tonumber(L, -1);
    lua_pop(L, 3);
    if (r.auth == -2 || r.deadline_ms < 0 || r.deadline_ms > 60000) {
        for (size_t s = 0; s < r.nsegs; s++)
            free(r.segs[s]);
        free(r.path);
        free(r.role);
        return luaL_error(L, "route %s %s: auth must be \"required\" or \"none\", deadline_ms 1-60000", method, path);
    }
    /* where the script declared it: the first frame outside the prelude (which may tail-call us) */
    lua_Debug ar;
    char where[300] = "?";
    for (int level = 1; level < 5 && lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && strncmp(ar.source, "@prelude/", 9) != 0) {
            snprintf(where, sizeof(where), "%s:%d", ar.short_src, ar.currentline);
            break;
        }
    }
    r.where = mp_xstrdup(where);
    lua_pushvalue(L, 4);
    r.fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    c->routes = mp_xrealloc(c->routes, (c->nroutes + 1) * sizeof(*c->routes));
    c->routes[c->nroutes++] = r;
    return 0;
}

static int l_client(lua_State *L)
{
    bff_vm_t *vm = vm_of(L);
    lua_pushstring(L, vm->loading_client ? vm->loading_client : "");
    return 1;
}

/* ---- building the state -------------------------------------------------------------- */

static mp_status_t setup(bff_vm_t *vm)
{
    lua_State *L = vm->L;
    luaL_openlibs(L);
    bff_pattern_install(L); /* string.find/match/gmatch/gsub that charge the CPU budget */
    /* the count hook never fires inside compiled traces: interpret everything */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_sethook(L, on_hook, LUA_MASKCOUNT, HOOK_STEP);

    /* lock the string metatable: it is shared by every client in this state */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_newtable(L); /* core: the C half of moonport.bff */
    lua_pushcfunction(L, l_route);
    lua_setfield(L, -2, "route");
    lua_pushcfunction(L, l_client);
    lua_setfield(L, -2, "client");
    lua_pushcfunction(L, l_killed);
    lua_setfield(L, -2, "killed");
    lua_pushcfunction(L, l_load_module);
    lua_setfield(L, -2, "load_module");
    lua_pushcfunction(L, l_setfenv);
    lua_setfield(L, -2, "setfenv");
    bff_json_inject(L);
    bff_view_inject(L);
    bff_calls_inject(L);
    bff_request_inject(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "mp.core");
    /* the prelude builds moonport.bff and the sandbox helpers from core */
    mp_status_t st = bff_vm_run_prelude(L, "sandbox.lua", 1, 1);
    if (st != MP_OK)
        return st;
    lua_setfield(L, LUA_REGISTRYINDEX, "mp.sandbox");
    return MP_OK;
}

mp_status_t bff_vm_create(bff_vm_t **out, bff_snapshot_t *snap, const bff_limits_t *limits, bool server_timing)
{
    bff_vm_t *vm = mp_xcalloc(1, sizeof(*vm));
    vm->limits = *limits;
    vm->server_timing = server_timing;
    vm->snap = bff_snapshot_retain(snap);
    vm->load_budget = LOAD_BUDGET;
    vm->L = luaL_newstate();
    if (vm->L != NULL) {
        vm->base_alloc = lua_getallocf(vm->L, &vm->base_ud);
        lua_gc(vm->L, LUA_GCCOUNTB, 0);
        vm->used = (size_t)lua_gc(vm->L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(vm->L, LUA_GCCOUNTB, 0);
        lua_setallocf(vm->L, vm_alloc, vm);
    }
    if (vm->L == NULL) {
        bff_snapshot_release(vm->snap);
        free(vm);
        return mp_err_set(MP_ENOMEM, "cannot create a Lua state");
    }
    lua_pushlightuserdata(vm->L, &vm_key);
    lua_pushlightuserdata(vm->L, vm);
    lua_rawset(vm->L, LUA_REGISTRYINDEX);
    mp_status_t st = setup(vm);
    vm->nclients = snap->nclients;
    vm->clients = mp_xcalloc(snap->nclients ? snap->nclients : 1, sizeof(*vm->clients));
    for (size_t i = 0; i < snap->nclients; i++)
        vm->clients[i].cfg = &snap->clients[i];
    for (size_t i = 0; st == MP_OK && i < vm->nclients; i++)
        st = load_client(vm, &vm->clients[i]);
    lua_gc(vm->L, LUA_GCCOLLECT, 0);
    bff_vm_tune_gc(vm);
    if (st != MP_OK) {
        bff_vm_destroy(vm);
        return st;
    }
    *out = vm;
    return MP_OK;
}

/* The collector starts a cycle when the heap reaches `pause`% of what the last cycle left, and each cycle marks
 * everything alive: the scripts, the prelude, the sandboxes, a few hundred KB that barely change. Requests leave
 * only garbage (~12 KB each for the bench's home screen), so at the default 200% a full mark ran every ~20
 * requests. While the heap is small the pause is large (1000%: a mark every ~200 requests, for a few MB per state
 * at most); as the heap grows it steps down to the default, so a cycle always starts well before the state's memory
 * limit (LuaJIT has no emergency collection: a cycle that starts too late would fail requests with "not enough
 * memory" while garbage waits). Measured on the bench's home screen: 200% -> 400% saved ~2.8 us of CPU per
 * request, 400% -> 1000% another ~2 us. */
void bff_vm_tune_gc(bff_vm_t *vm)
{
    size_t limit = vm->limits.memory_limit;
    int pause = vm->used < limit / 64 ? 1000 : vm->used < limit / 16 ? 400 : 200; /* next cycle before limit / 4 */
    if (pause != vm->gc_pause) {
        lua_gc(vm->L, LUA_GCSETPAUSE, pause);
        vm->gc_pause = pause;
    }
}

void bff_vm_destroy(bff_vm_t *vm)
{
    if (vm == NULL)
        return;
    lua_close(vm->L);
    for (size_t i = 0; i < vm->nclients; i++) {
        bff_client_t *c = &vm->clients[i];
        for (size_t r = 0; r < c->nroutes; r++) {
            for (size_t s = 0; s < c->routes[r].nsegs; s++)
                free(c->routes[r].segs[s]);
            free(c->routes[r].path);
            free(c->routes[r].role);
            free(c->routes[r].where);
        }
        free(c->routes);
    }
    free(vm->clients);
    bff_call_series_dispose(vm);
    mp_buf_dispose(&vm->scratch);
    bff_snapshot_release(vm->snap);
    free(vm);
}

bff_client_t *bff_vm_client(bff_vm_t *vm, const char *name, size_t len)
{
    for (size_t i = 0; i < vm->nclients; i++)
        if (strlen(vm->clients[i].cfg->name) == len && memcmp(vm->clients[i].cfg->name, name, len) == 0)
            return &vm->clients[i];
    return NULL;
}
