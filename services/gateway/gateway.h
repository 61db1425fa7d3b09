/*
 * gateway.h: state shared by the gateway role's files: the role itself
 * (gateway.c: config, HTTP server, key refresh thread), the request path
 * (proxy.c) and the token check (auth.c).
 *
 * `gw_t` is process-wide and read-only once serving starts, except for the
 * key store, which is thread-safe. `gw_thread_t` belongs to one loop thread.
 */
#ifndef MP_GW_GATEWAY_H
#define MP_GW_GATEWAY_H

#include <h2o.h>
#include "mp/bff.h"
#include "mp/bus_loop.h"
#include "mp/http.h"
#include "mp/jwt.h"
#include "mp/metrics.h"
#include "mp/reqctx.h"
#include "keys.h"
#include "routes.h"

typedef struct gw {
    gw_routes_t routes;
    gw_keys_t *keys;
    mp_bus_t *bus;
    mp_http_server_t *http;
    /* settings */
    const char *listen;
    int threads;
    const char *routes_file;
    const char *issuer;
    const char *audience;
    int leeway_s;
    int idle_timeout_ms;
    const char *tls_cert, *tls_key;
    bool bff_enabled;
    mp_bff_opts_t bff;
    /* metrics */
    mp_metric_t *m_requests, *m_duration;
} gw_t;

typedef struct gw_thread {
    gw_t *gw;
    mp_bus_loop_t *bl;
    mp_bff_thread_t *bff;
    h2o_linklist_t key_waiters; /* requests parked until a JWKS refresh answers */
    int key_refreshing;
} gw_thread_t;

/* one request through the gateway; lives in the request's pool */
typedef struct gw_req {
    h2o_req_t *req;
    gw_thread_t *th;
    gw_match_t match;
    mp_reqctx_t rc;
    mp_jwt_claims_t claims;
    int authenticated;
    char roles[MP_JWT_MAX_ROLES * 33];
    uint64_t call_id;
    int calling;
    int gone; /* the client went away: the pool is being disposed */
    int64_t t0_ns;
    h2o_linklist_t waiter;           /* in th->key_waiters while parked */
    void (*cont)(struct gw_req *gr); /* what runs after the token check (NULL: the REST proxy) */
} gw_req_t;

/** The h2o handler for every public request. */
int gw_proxy_on_req(h2o_handler_t *self, h2o_req_t *req);

/** Checks the request's bearer token as the route demands. Returns 1 to continue, 0 when it answered (401/403) or
 *  parked the request until a key refresh (it resumes with gw_proxy_continue()). */
int gw_auth_check(gw_req_t *gr);

/** Continues a request after its token was checked. */
void gw_proxy_continue(gw_req_t *gr);

/** Sends a problem for the request and records it. */
void gw_proxy_fail(gw_req_t *gr, int status, const char *detail);

/** Parses a JWKS document and installs it. Any thread. */
mp_status_t gw_keys_install(gw_t *gw, const char *json, size_t len);

/** The h2o handler for /bff/...: checks the token if one is sent, then hands over to the BFF engine. */
int gw_bff_on_req(h2o_handler_t *self, h2o_req_t *req);

/** The gateway singleton. */
extern gw_t gw_state;

#endif
