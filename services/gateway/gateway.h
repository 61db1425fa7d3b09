/*
 * gateway.h: state shared by the gateway role's files. The role (gateway.c:
 * config, HTTP server, key refresh thread); the request path in the order a
 * request meets it: edge.c (security headers, header size, CORS), proxy.c
 * (route, input, validation glue), policy.c (load shedding, rate limits),
 * auth.c (token check), call.c (breaker, deadline, retries, the reply); and
 * settings.c, which turns gateway.* into per-route policies. The policies'
 * building blocks are leaf modules with their own headers: openapi.h,
 * schema.h, limiter.h, ratelimit.h, breaker.h, clientip.h, tokcache.h.
 *
 * `gw_t` is process-wide and read-only once serving starts, except for the
 * key store, the breakers and the in-flight counters, which are
 * thread-safe. `gw_thread_t` belongs to one loop thread.
 */
#ifndef MP_GW_GATEWAY_H
#define MP_GW_GATEWAY_H

#include <stdatomic.h>
#include <h2o.h>
#include "mp/bff.h"
#include "mp/cfg.h"
#include "mp/bus_loop.h"
#include "mp/http.h"
#include "mp/jwt.h"
#include "mp/metrics.h"
#include "mp/reqctx.h"
#include "mp/cors.h"
#include "breaker.h"
#include "clientip.h"
#include "keys.h"
#include "limiter.h"
#include "openapi.h"
#include "routes.h"
#include "tokcache.h"

/* most rate-limit groups, per-service breakers and trusted proxy blocks the configuration may name */
#define GW_MAX_CONFIGURED 64

/* A service's circuit breaker, with its metrics. */
typedef struct gw_service {
    char *name; /* the subject's first token */
    gw_breaker_t breaker;
    mp_series_t *m_state, *m_to[3]; /* transitions_total by target state */
} gw_service_t;

/* Policies of one route, parallel to gw_routes_t.items (route->index). */
typedef struct gw_route_policy {
    gw_rl_policy_t *limit; /* NULL: not rate limited */
    gw_service_t *service; /* its breaker */
    int max_inflight;
    _Atomic int inflight;
    bool retry_reads, retry_keyed_writes; /* may a failed call be retried */
    mp_series_t *m_shed, *m_limited, *m_invalid, *m_circuit_open, *m_retried, *m_retry_denied;
} gw_route_policy_t;

typedef struct gw {
    gw_routes_t routes;
    gw_openapi_t api;
    gw_route_policy_t *policies;
    gw_service_t *services;
    size_t nservices;
    gw_keys_t *keys;
    mp_bus_t *bus;
    mp_http_server_t *http;
    /* settings */
    const char *listen;
    int threads;
    const char *routes_file;
    const char *specs_dir;
    const char *issuer;
    const char *audience;
    int leeway_s;
    size_t token_cache; /* verified tokens kept per loop thread; 0: none */
    int idle_timeout_ms;
    const char *tls_cert, *tls_key;
    bool bff_enabled;
    mp_bff_opts_t bff;
    size_t bff_body_limit;   /* request bodies the BFF mount takes (bff.body_limit); more is 413 */
    const char *hsts;        /* Strict-Transport-Security value under TLS; NULL: off */
    size_t max_header_bytes; /* all request headers together; 431 past it */
    bool validate;           /* check requests against api-specs/ */
    int max_inflight;        /* default per route */
    struct {
        bool enabled;
        int level;
        size_t min_size;
    } gzip;
    mp_cors_t cors;
    /* what configure reads lives in fixed arrays and borrows the configuration's strings, so a process that
     * never starts the gateway role (or fails before it) has nothing to free */
    gw_cidr_t trusted_proxies[GW_MAX_CONFIGURED];
    size_t ntrusted;
    bool rate_limit;                               /* master switch */
    gw_rl_policy_t conf_limits[GW_MAX_CONFIGURED]; /* gateway.rate_limits.<group> */
    size_t nconf_limits;
    gw_rl_policy_t *limits; /* every group the routes use (gw_settings_bind) */
    size_t nlimits;
    gw_route_policy_t bff_policy; /* the /bff/ mount: rate-limited as the group `bff` */
    gw_limiter_shared_t limiter;
    char *redis_password; /* secret, owned */
    bool breakers;        /* master switch */
    gw_breaker_opts_t breaker_defaults;
    struct gw_breaker_override {
        const char *name;
        gw_breaker_opts_t opts;
    } breaker_overrides[GW_MAX_CONFIGURED]; /* gateway.circuit_breakers.<service> */
    size_t nbreaker_overrides;
    struct {
        bool enabled;
        double budget; /* retries earned per request */
        int backoff_ms;
    } retry;
    /* metrics */
    mp_metric_t *m_requests, *m_duration;
} gw_t;

#define GW_RETRY_DELAYS 5

typedef struct gw_thread {
    gw_t *gw;
    mp_bus_loop_t *bl;
    mp_bff_thread_t *bff;
    gw_limiter_t *limiter;
    h2o_linklist_t key_waiters; /* requests parked until a JWKS refresh answers */
    int key_refreshing;
    mp_jwks_t *jwks;       /* the key set this thread verifies with (retained), renewed when keys_gen moves */
    uint64_t keys_gen;     /* gw_keys_generation() when jwks was taken */
    gw_tokcache_t *tokens; /* verified tokens (auth.c); NULL when gateway.token_cache is 0 */
    double retry_tokens;   /* the retry budget of this thread */
    h2o_timeout_t retry_delay[GW_RETRY_DELAYS]; /* backoff with jitter: one is picked at random */
} gw_thread_t;

/* one request through the gateway; lives in the request's pool */
typedef struct gw_req {
    h2o_req_t *req;
    gw_thread_t *th;
    gw_match_t match;
    const gw_route_policy_t *pol;
    mp_reqctx_t rc;
    mp_jwt_claims_t claims;
    int authenticated;
    char roles[MP_JWT_MAX_ROLES * 33];
    uint64_t call_id;
    int calling;
    int gone;       /* the client went away: the pool is being disposed */
    int holds_slot; /* counted in its route's in-flight total */
    int64_t t0_ns;
    h2o_linklist_t waiter;                  /* in th->key_waiters while parked */
    void (*cont)(struct gw_req *gr);        /* what runs after the token check (NULL: the REST proxy) */
    void (*after_limit)(struct gw_req *gr); /* what runs after a rate-limit decision that let it through (NULL: REST) */
    gw_limit_wait_t *limit_wait;            /* waiting for a rate-limit decision */
    /* the call, kept for retries */
    char *body;
    size_t body_len;
    const char *raw_input, *raw_type;
    int64_t deadline_ms;
    int attempts;
    bool probe; /* this attempt is a half-open probe */
    h2o_timeout_entry_t retry_entry;
} gw_req_t;

/** The h2o handler for every public request. */
int gw_proxy_on_req(h2o_handler_t *self, h2o_req_t *req);

/** Checks the request's bearer token as the route demands. Returns 1 to continue, 0 when it answered (401/403) or
 *  parked the request until a key refresh (it resumes with gw_proxy_continue()). */
int gw_auth_check(gw_req_t *gr);

/** Continues a request after its token was checked. */
void gw_proxy_continue(gw_req_t *gr);

/** Sends a problem for the request and records it. */
/** A request's gateway state in its pool: the request id and trace context from its headers, the clock started, and
 *  cleanup (pending calls, limit waits, in-flight slots) when the pool goes. Both mounts start with it. (proxy.c) */
gw_req_t *gw_req_new(h2o_req_t *req);
void gw_proxy_fail(gw_req_t *gr, int status, const char *detail);

/** Records an answered request: metrics and the access log line. */
void gw_proxy_record(gw_req_t *gr, int status);

/** Sends the operation's input to its service and answers with the reply (call.c): breaker, deadline, retries.
 *  `body` is copied; `raw_input`/`raw_type` (raw routes) are pool strings or NULL. */
void gw_call_start(gw_req_t *gr, const void *body, size_t len, const char *raw_input, const char *raw_type);

/** Continues a request after its rate limit allowed it: validation, the breaker, the call (proxy.c). */
void gw_proxy_after_limit(gw_req_t *gr);

/** Applies the route's rate limit. Returns 1 to continue now, 0 when it answered 429 or waits for Redis (it then
 *  continues with gw_proxy_after_limit()). (policy.c) */
int gw_policy_rate_limit(gw_req_t *gr);

/** Takes a slot in the route's in-flight cap; 0 when full (it answered 503). (policy.c) */
int gw_policy_admit(gw_req_t *gr);

/** Security headers, the header-size limit and CORS for every request. Returns 0 when it answered (431, a
 *  preflight). (edge.c) */
int gw_edge_check(gw_req_t *gr);
/** The security headers and the header-size limit alone, for the BFF mount (each BFF client has its own
 *  CORS). Returns 0 when it answered (431). (edge.c) */
int gw_edge_secure(gw_req_t *gr);

/** Reads every gateway.* policy setting (settings.c). */
void gw_settings_read(gw_t *gw, mp_cfg_t *cfg);
/** Builds the per-route policies and per-service breakers after the routes are loaded, with their metrics. */
void gw_settings_bind(gw_t *gw);
/** Frees what gw_settings_read() and gw_settings_bind() made. */
void gw_settings_dispose(gw_t *gw);
/** Logs and exports a breaker's state change. */
void gw_service_report(gw_service_t *svc, const gw_breaker_event_t *ev);

/** Parses a JWKS document and installs it. Any thread. */
mp_status_t gw_keys_install(gw_t *gw, const char *json, size_t len);

/** The h2o handler for /bff/...: checks the token if one is sent, then hands over to the BFF engine. */
int gw_bff_on_req(h2o_handler_t *self, h2o_req_t *req);

/** The gateway singleton. */
extern gw_t gw_state;

#endif
