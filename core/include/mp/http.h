/*
 * mp/http.h: the h2o bootstrap every process shares (the public gateway and
 * every admin port).
 *
 * A server runs N loop threads. Each owns a uv loop, an h2o context and its
 * own listening socket on the same address (SO_REUSEPORT lets the kernel
 * spread connections), so threads share nothing on the request path.
 * Handlers are registered once, before the threads start, through the
 * `configure` hook; per-thread state (a bus loop, Lua states) is made in
 * `on_thread_start` on the thread that will use it.
 *
 * Draining: mp_http_server_stop() closes the listeners, lets requests in
 * flight finish (up to a limit), then stops the loops. Requests are counted
 * by mp_http_track(), which every moonport handler calls first.
 *
 * Thread affinity: h2o_req_t and everything in mp_http_thread_t belong to
 * that loop thread.
 */
#ifndef MP_HTTP_H
#define MP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include <h2o.h>
#include "mp/status.h"

typedef struct mp_http_server mp_http_server_t;

/** One loop thread of a server. */
typedef struct mp_http_thread {
    h2o_context_t ctx; /* first, so a req's conn->ctx converts back to the thread */
    int index;
    uv_loop_t loop;
    mp_http_server_t *server;
    size_t inflight; /* requests started and not yet disposed */
    void *user;      /* per-thread state set by on_thread_start */
} mp_http_thread_t;

typedef struct mp_http_opts {
    const char *name;     /* for logs and metrics ("gateway", "admin") */
    const char *listen;   /* "host:port"; port 0 picks a free one (see mp_http_server_port) */
    int threads;          /* default 1 */
    size_t max_body;      /* h2o's own ceiling on request bodies; handlers enforce tighter limits */
    int idle_timeout_ms;  /* keep-alive and HTTP/2 idle timeout; default 30000 */
    const char *tls_cert; /* PEM files; both NULL for plain HTTP */
    const char *tls_key;
    /* registers handlers on the (single) host; runs once, on the caller's thread, before threads start */
    void (*configure)(void *arg, h2o_globalconf_t *conf, h2o_hostconf_t *host);
    void (*on_thread_start)(void *arg, mp_http_thread_t *t); /* on the new loop thread */
    void (*on_thread_stop)(void *arg, mp_http_thread_t *t);  /* on the loop thread, after its loop stopped */
    /* optional, on the loop thread: can it serve yet (its own connections up)? Until it says so, or ready_wait_ms
     * (default 5000) passed, the thread runs its loop without listening, so the kernel gives new connections to
     * the other processes on the port (SO_REUSEPORT) instead of queueing them where they would fail */
    bool (*thread_ready)(void *arg, mp_http_thread_t *t);
    int ready_wait_ms;
    void *arg;
} mp_http_opts_t;

/** Binds, configures and starts the loop threads. Errors: MP_EIO (bind/listen failed, detail says which address),
 *  MP_EINVAL (bad listen address or TLS files). Caller owns `*out`; stop and free with mp_http_server_stop(). */
mp_status_t mp_http_server_start(mp_http_server_t **out, const mp_http_opts_t *opts);

/** Stops accepting, waits up to `drain_ms` for requests in flight, stops and joins the threads, frees. Call from a
 *  thread that is not one of the server's loops. Accepts NULL. */
void mp_http_server_stop(mp_http_server_t *srv, int drain_ms);

/** Turns the errors h2o answers by itself (413 past max_body, 400 for a malformed request) into problem+json with
 *  X-Request-Id. mp_http_server_start() does it for its host. (http_errors.c) */
void mp_http_problem_errors(h2o_hostconf_t *host);

/** The bound port (useful with port 0). */
int mp_http_server_port(const mp_http_server_t *srv);

/** Reloads the TLS certificate and key from their files (SIGHUP). Errors leave the old ones serving. */
mp_status_t mp_http_server_reload_tls(mp_http_server_t *srv);

/** The loop thread serving `req`. */
static inline mp_http_thread_t *mp_http_thread_of(h2o_req_t *req)
{
    return (mp_http_thread_t *)req->conn->ctx;
}

/** Counts `req` as in flight until h2o disposes it; every handler calls this first so drain can wait for it. */
void mp_http_track(h2o_req_t *req);

/** Registers `on_req` for requests under `path` on `host`; returns its handler so callers can extend it (allocate
 *  `size` bytes, at least sizeof(h2o_handler_t)). Configure hook only. */
h2o_handler_t *mp_http_register(h2o_hostconf_t *host, const char *path, size_t size,
                                int (*on_req)(h2o_handler_t *self, h2o_req_t *req));

#endif
