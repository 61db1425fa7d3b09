/*
 * bff_int.h: the BFF engine's internals, shared by its files:
 *
 *   snapshot.c  an immutable copy of scripts/lua (files + client settings)
 *   vm.c        one sandboxed lua_State built from a snapshot: allocator,
 *               CPU hook, safe globals, `require`, route registration
 *   json.c      JSON <-> Lua values
 *   request.c   one HTTP request: its coroutine, request table, response
 *   calls.c     bff.call / wait / all: service calls, fallbacks, caching
 *   cache.c     per-thread result cache and in-flight coalescing
 *   thread.c    the per-loop-thread engine: generations and dispatch
 *   reload.c    the file watcher, SIGHUP, the admin page
 *   cmd_*.c     `moonport bff test | check | record`
 *
 * Thread affinity: a vm and everything reachable from it belong to one
 * loop thread (or to one command's thread). Snapshots are shared, read-only.
 */
#ifndef MP_BFF_INT_H
#define MP_BFF_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include "mp/bff.h"
#include "mp/buf.h"
#include "mp/bus.h"
#include "mp/metrics.h"
#include "mp/u64map.h"

#define BFF_MAX_SEGS 12
#define BFF_MAX_PARAMS 8
#define BFF_IDLE_COROUTINES 64 /* per state: finished coroutines kept for reuse */
#define BFF_MAX_DEGRADED 16    /* fallbacks listed in a response's `degraded` */

/* ---- snapshot: what is on disk, read once ------------------------------------ */

typedef struct bff_file {
    char *path; /* relative to scripts_dir: "web/home.lua" */
    char *text;
    size_t len;
} bff_file_t;

typedef struct bff_client_cfg {
    char *name;          /* "web" */
    bool auth_required;  /* default for its routes */
    int64_t deadline_ms; /* default route deadline */
    char **cors_origins;
    size_t ncors;
    int server_timing; /* -1: engine default, 0/1 */
} bff_client_cfg_t;

typedef struct bff_snapshot {
    _Atomic int refs;
    uint64_t generation;
    char *dir;
    bff_file_t *files;
    size_t nfiles;
    bff_client_cfg_t *clients;
    size_t nclients;
} bff_snapshot_t;

mp_status_t bff_snapshot_load(bff_snapshot_t **out, const char *dir);
bff_snapshot_t *bff_snapshot_retain(bff_snapshot_t *s);
void bff_snapshot_release(bff_snapshot_t *s);
const bff_file_t *bff_snapshot_file(const bff_snapshot_t *s, const char *path);

/* ---- routes -------------------------------------------------------------------------- */

typedef enum { BFF_P_STR, BFF_P_INT, BFF_P_UUID } bff_ptype_t;

typedef struct bff_route {
    char method[8];
    char *path; /* the template as written: "/products/{id:uuid}" */
    char *segs[BFF_MAX_SEGS];
    bool is_param[BFF_MAX_SEGS];
    bff_ptype_t ptype[BFF_MAX_SEGS];
    size_t nsegs;
    int fn_ref;          /* the handler in the registry */
    int auth;            /* -1: client default, 0: none, 1: required */
    char *role;          /* required role or NULL */
    int64_t deadline_ms; /* 0: client default */
    char *where;         /* "web/home.lua:12" */
    /* metric series, looked up on first use (request.c, record) */
    mp_series_t *m_duration;
    mp_series_t *m_requests; /* for m_requests_status */
    int m_requests_status;
} bff_route_t;

typedef struct bff_client {
    const bff_client_cfg_t *cfg; /* borrowed from the snapshot */
    bff_route_t *routes;
    size_t nroutes;
} bff_client_t;

/* ---- a Lua state built from one snapshot ------------------------------------------- */

typedef struct bff_req bff_req_t;
typedef struct bff_call bff_call_t;
typedef struct bff_vm bff_vm_t;

/* How calls reach services: the bus in production, fixtures in `moonport bff test`. */
typedef struct bff_transport {
    /* start `c`; on completion the transport calls bff_call_complete() later (never from inside start) */
    mp_status_t (*start)(void *self, bff_call_t *c, const mp_bus_call_t *call);
    void (*cancel)(void *self, bff_call_t *c);
    void *self;
} bff_transport_t;

typedef struct bff_limits {
    int64_t cpu_budget;
    size_t memory_limit;
    size_t request_alloc_limit;
} bff_limits_t;

struct bff_vm {
    lua_State *L;
    bff_snapshot_t *snap;
    bff_client_t *clients;
    size_t nclients;
    bff_limits_t limits;
    size_t used;          /* bytes held by the state */
    lua_Alloc base_alloc; /* LuaJIT's own allocator, which ours wraps for accounting */
    void *base_ud;
    bff_req_t *current;  /* the request whose coroutine is running, for the hook and allocator */
    int64_t load_budget; /* instructions left while loading scripts */
    const char *loading_client;
    size_t inflight; /* requests still running on this state */
    struct mp_bff_thread *thread;
    bff_transport_t transport;
    bool server_timing;
    struct bff_vm *next_old;                                          /* in the thread's list of retiring states */
    int ref_req_mt, ref_call_mt, ref_resp_mt, ref_err_mt, ref_obj_mt; /* registry refs */
    int idle_cos[BFF_IDLE_COROUTINES]; /* registry refs of coroutines that returned, ready for the next request */
    size_t nidle_cos;
    int gc_pause;                         /* the collector's pause in force (bff_vm_tune_gc) */
    mp_buf_t scratch;                     /* bff.call's input JSON, reused */
    struct bff_call_series **call_series; /* per client and subject, open addressing (request.c, record) */
    size_t ncall_series, capcall_series;
};

/** Builds a state from `snap`: safe globals, prelude, every client's scripts and routes. Errors: MP_EINVAL with
 *  "file:line: message". Caller owns `*out`; close with bff_vm_destroy(). */
mp_status_t bff_vm_create(bff_vm_t **out, bff_snapshot_t *snap, const bff_limits_t *limits, bool server_timing);
void bff_vm_destroy(bff_vm_t *vm);
/** Frees the state's cache of call metric series (request.c). */
void bff_call_series_dispose(bff_vm_t *vm);
/** Sets the collector's pause for the state's current size; cheap, called after every request. */
void bff_vm_tune_gc(bff_vm_t *vm);
bff_client_t *bff_vm_client(bff_vm_t *vm, const char *name, size_t len);
/** Pushes a fresh sandboxed environment for `client` (its own `require` cache). */
void bff_vm_push_env(lua_State *L, const char *client);
/** Runs a compiled-in prelude file with the `nargs` values on top of the stack as its arguments. */
mp_status_t bff_vm_run_prelude(lua_State *L, const char *name, int nargs, int nresults);
/** Pushes the request's query table parsed from a query string. */
void bff_push_query_string(lua_State *L, const char *q, size_t len);

typedef struct bff_match {
    bff_route_t *route;
    const char *names[BFF_MAX_PARAMS];
    char values[BFF_MAX_PARAMS][256];
    bff_ptype_t types[BFF_MAX_PARAMS];
    size_t nparams;
} bff_match_t;

typedef enum { BFF_MATCH_OK, BFF_MATCH_NONE, BFF_MATCH_METHOD, BFF_MATCH_BAD_PARAM } bff_match_result_t;
bff_match_result_t bff_route_match(bff_match_t *m, bff_client_t *c, const char *method, size_t mlen, const char *path,
                                   size_t len, char *allow, size_t allow_size);
/** Parses a template into `r` (segments, typed parameters). Returns NULL or a static error message. */
const char *bff_route_parse(bff_route_t *r, const char *tmpl);

/* ---- JSON ---------------------------------------------------------------------------- */

/** Pushes the Lua value for `len` bytes of JSON. Returns false (nothing pushed, message in `err`) when malformed. */
bool bff_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t errsize);
/** Appends the JSON for the value at `idx`. Returns false with a message in `err` (cycles, NaN, bad keys ...). */
bool bff_json_encode(lua_State *L, int idx, mp_buf_t *out, char *err, size_t errsize);
/** True when `len` bytes are one valid JSON value (UTF-8 checked, nesting at most 64), decoding nothing. */
bool bff_json_valid(const char *text, size_t len);
/* The value of the four hex digits at p (a \uXXXX escape), or -1. */
int bff_json_hex4(const char *p);
/** Validates a reply body and pushes it: objects and arrays as lazy views, scalars decoded. Returns false (nothing
 *  pushed) when it is not one valid JSON value (bff_json_valid). */
bool bff_view_push_reply(lua_State *L, const char *body, size_t len);
/** 0: not a view; 1: a view whose bytes are *p, *len; 2: a materialized view, its table pushed. */
int bff_view_kind(lua_State *L, int idx, const char **p, size_t *len);
bool bff_is_view(lua_State *L, int idx);
/** Registers the view metatable and core.is_view / view_pairs / view_unwrap into the table on top. */
void bff_view_inject(lua_State *L);
/** Registers `bff.json.*` helpers (encode, decode, null, object, array) into the table on top of the stack. */
void bff_json_inject(lua_State *L);
/** Replaces string.find/match/gmatch/gsub with versions that charge their steps to the CPU budget (pattern.c). */
void bff_pattern_install(lua_State *L);
/** Charges `n` instructions to the running request, or to loading; raises the CPU kill past the budget. A state
 *  that is not a bff_vm's is not charged. (vm.c) */
void bff_vm_charge(lua_State *L, int64_t n);

/* ---- requests and calls ---------------------------------------------------------------- */

typedef struct bff_degraded {
    char subject[96];
    char reason[64];
} bff_degraded_t;

struct bff_req {
    bff_vm_t *vm;
    h2o_req_t *req; /* NULL in offline tests */
    mp_reqctx_t rc;
    char sub[128];
    char roles[256];
    bool has_caller;
    bff_client_t *client;
    bff_route_t *route;
    lua_State *co;
    int co_ref;
    int64_t deadline_ms; /* wall clock */
    int64_t t0_ns;
    bff_call_t **calls;
    size_t ncalls, capcalls;
    size_t waiting; /* awaited calls not yet done */
    bool wait_all;  /* awaiting a group, stop early on a required failure */
    bool running;   /* inside lua_resume */
    bool gone, done;
    int killed;    /* 1 cpu, 2 memory */
    bool replayed; /* a call was answered Idempotent-Replayed: the response says so too */
    int64_t instructions;
    size_t allocated;
    bff_degraded_t *degraded; /* BFF_MAX_DEGRADED, allocated by the first fallback: most requests have none */
    size_t ndegraded;
    /* the finished response, for offline tests */
    void (*on_done)(bff_req_t *r, int status, const mp_buf_t *body, const char *content_type);
    void *user;
};

typedef enum { BFF_CALL_PENDING, BFF_CALL_DONE } bff_call_state_t;

struct bff_call {
    bff_req_t *r; /* NULL once the request is gone */
    int idx;
    char subject[96];
    bff_call_state_t state;
    mp_status_t st; /* transport outcome */
    int status;     /* reply Status */
    char *body;
    size_t len;
    bool optional;
    int fallback_ref;
    bool awaited;
    bool cache_hit, coalesced;
    bool keyed; /* sent an Idempotency-Key: its reply may say it was a replay */
    int cache_s;
    bool cache_shared;
    char *cache_key;
    int64_t t0_ns, t1_ns;
    uint64_t bus_id;
    int value_ref;                /* decoded result, once asked */
    struct bff_call *next_waiter; /* coalescing: calls riding on this one */
};

/** Runs (or resumes) the request's coroutine; finishes the request when it returns or fails. */
void bff_req_run(bff_req_t *r);
/** A call's outcome arrived (transport or cache). Takes ownership of `body` (malloc'd). Loop thread. */
void bff_call_complete(bff_call_t *c, mp_status_t st, int status, char *body, size_t len);
/** Frees a call no request owns anymore. */
void bff_call_free(bff_call_t *c);
/** Registers bff.call and friends (the C half of the `moonport.bff` module) into the table on top. */
void bff_calls_inject(lua_State *L);
/** Registers the request/response helpers into the table on top. */
void bff_request_inject(lua_State *L);
/** Starts a request on `vm` for `client`/`match`. The request answers through its h2o_req_t or on_done. */
bff_req_t *bff_req_start(bff_vm_t *vm, bff_client_t *client, bff_match_t *m, h2o_req_t *req, const mp_reqctx_t *rc,
                         const mp_bff_caller_t *caller);
/** Frees a request (after its pool's disposal, or an offline test's run). */
void bff_req_free(bff_req_t *r);
/** Pushes the request table the handler receives. */
void bff_req_push_table(lua_State *L, bff_req_t *r, bff_match_t *m);

/** Matches a route: 0, or an HTTP status with `detail` (405 fills `allow`). */
int bff_dispatch(bff_match_t *m, bff_client_t *client, const char *method, size_t mlen, const char *path, size_t plen,
                 char *allow, size_t allow_size, const char **detail);
/** Checks the route's auth and role against the caller: 0, 401 or 403 with `detail`. */
int bff_authorize(bff_match_t *m, bff_client_t *client, const mp_bff_caller_t *caller, const char **detail);
/** Answers before any script ran (bad input). */
void bff_req_reject(bff_req_t *r, int status, const char *detail);
bool bff_is_error(lua_State *L, int idx);
bool bff_is_response(lua_State *L, int idx);
void bff_thread_request_done(bff_vm_t *vm);

/* ---- per-thread engine ------------------------------------------------------------------ */

typedef struct bff_cache_entry bff_cache_entry_t;
typedef struct bff_cache {
    bff_cache_entry_t **buckets;
    size_t nbuckets, count, max;
} bff_cache_t;

void bff_cache_init(bff_cache_t *c, size_t max);
void bff_cache_dispose(bff_cache_t *c);
/** A fresh cached body for `key`, or NULL. Borrowed until the next cache call. */
const char *bff_cache_get(bff_cache_t *c, const char *key, size_t *len, int64_t now_ms);
void bff_cache_put(bff_cache_t *c, const char *key, const char *body, size_t len, int64_t expires_ms);
/** In-flight calls by cache key, for coalescing. */
bff_call_t *bff_cache_leader(bff_cache_t *c, const char *key);
void bff_cache_set_leader(bff_cache_t *c, const char *key, bff_call_t *leader);

struct mp_bff_thread {
    mp_bus_loop_t *bl;
    uv_loop_t *loop;
    bff_vm_t *vm;  /* the newest generation */
    bff_vm_t *old; /* retiring generations, closed when idle */
    bff_cache_t cache;
    uint64_t generation;
};

/* ---- engine-wide state (engine.c) ---------------------------------------------------------- */

typedef struct bff_engine {
    mp_bff_opts_t opts;
    bff_limits_t limits;
    char *dir;
    _Atomic(bff_snapshot_t *) snap; /* the newest good snapshot */
    _Atomic uint64_t generation;
    mp_metric_t *m_requests, *m_duration, *m_calls, *m_call_duration, *m_reloads;
} bff_engine_t;

extern bff_engine_t bff_engine;

/** The newest good snapshot, retained. */
bff_snapshot_t *bff_engine_snapshot(void);
/** Installs a validated snapshot (takes the reference). */
void bff_engine_install(bff_snapshot_t *snap);
/** Records the outcome of the latest reload attempt for the admin page (NULL error: success). */
void bff_engine_note_reload(const char *error);
void bff_metrics_init(void);

#endif
