/*
 * mp/bff.h: the Lua BFF engine as its host (the gateway role) sees it.
 *
 * Scripts live in scripts/lua/<client>/; each client directory is an
 * independent BFF mounted at /bff/<client>/ with its own settings
 * (bff.yaml: default auth, deadline, CORS origins, Server-Timing). Scripts
 * declare routes; each HTTP request runs its route in its own coroutine on
 * the loop thread that accepted it, and service calls go out through that
 * thread's bus loop without blocking it.
 *
 * Every loop thread owns its LuaJIT states (one per script generation):
 * a reload builds a new state per thread between requests, and an old one is
 * closed when its last in-flight request finishes.
 *
 * Thread affinity: mp_bff_init/mp_bff_fini and the commands on the main
 * thread; mp_bff_thread_* and mp_bff_handle on their loop thread.
 */
#ifndef MP_BFF_H
#define MP_BFF_H

#include <stdbool.h>
#include <stdint.h>
#include <h2o.h>
#include "mp/bus_loop.h"
#include "mp/reqctx.h"
#include "mp/status.h"

typedef struct mp_bff_thread mp_bff_thread_t;

typedef struct mp_bff_opts {
    const char *scripts_dir;    /* "scripts/lua": holds one directory per client, plus lib/ and prelude/ */
    bool server_timing;         /* default for clients that do not say */
    bool hot_reload;            /* watch the files and reload on change */
    int64_t cpu_budget;         /* Lua instructions a request may run (0: default 10 million) */
    size_t memory_limit;        /* bytes one Lua state may hold (0: default 256 MiB) */
    size_t request_alloc_limit; /* bytes one request may allocate in all (0: default 64 MiB) */
} mp_bff_opts_t;

/** The caller the host verified, or NULL for anonymous requests. Borrowed for the call. */
typedef struct mp_bff_caller {
    const char *sub;
    const char *roles; /* comma-separated */
} mp_bff_caller_t;

/** Loads and checks every client's scripts. A syntax or load error stops start-up: MP_EINVAL with "file:line:
 *  message" in mp_err_get(). Main thread, before the loop threads start. */
mp_status_t mp_bff_init(const mp_bff_opts_t *opts);
/** Stops the watcher and frees the shared script snapshot. Main thread, after the loop threads stopped. */
void mp_bff_fini(void);
/** Re-reads the scripts now (SIGHUP). A broken set keeps the last good one serving; the error is logged and shown
 *  on the admin page. Any thread. */
void mp_bff_reload(void);
/** True when `path` (the request path) is under /bff/. */
bool mp_bff_owns(const char *path, size_t len);

/** Creates the loop thread's engine, calling services through `bl`. On the loop thread. */
mp_status_t mp_bff_thread_start(mp_bff_thread_t **out, mp_bus_loop_t *bl, uv_loop_t *loop);
/** Cancels requests in flight and closes every Lua state of this thread. On the loop thread. */
void mp_bff_thread_stop(mp_bff_thread_t *t);

/** Serves one request under /bff/. The engine answers it (now or after its service calls); `rc` (copied) names it,
 *  `caller` is the verified caller or NULL. On the loop thread. */
void mp_bff_handle(mp_bff_thread_t *t, h2o_req_t *req, const mp_reqctx_t *rc, const mp_bff_caller_t *caller);

/* `moonport bff ...` commands (offline: no NATS, no database) */
int mp_bff_cmd_test(int argc, char **argv);
int mp_bff_cmd_check(int argc, char **argv);
int mp_bff_cmd_record(mp_bus_t *bus, int argc, char **argv);

#endif
