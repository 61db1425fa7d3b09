/*
 * mp/cors.h: Cross-Origin Resource Sharing for browser clients, one origin
 * list per mount (the REST API, each BFF under /bff/<client>/).
 *
 * An origin is allowed when it equals one in the list (case-insensitive;
 * never a wildcard, never `*`). For an allowed origin, responses echo it in
 * Access-Control-Allow-Origin with `Vary: Origin` and expose moonport's
 * headers (X-Request-Id, ETag, Location, Retry-After, RateLimit-*, ...).
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered here: 204 with the allowed methods and request headers
 * (Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match,
 * X-Request-Id, traceparent) and Max-Age; 403 for an unknown origin (no
 * CORS headers at all, so the browser blocks the call); 404 when nothing is
 * served at that path.
 *
 * Usage (a handler, before anything else):
 *
 *     if (mp_cors_is_preflight(req)) { mp_cors_preflight(&cors, req, methods_at(path), request_id); return 0; }
 *     mp_cors_apply(&cors, req);   // then answer as usual
 *
 * The list is immutable after mp_cors_init(); the functions that take a
 * request run on its loop thread.
 */
#ifndef MP_CORS_H
#define MP_CORS_H

#include <stdbool.h>
#include <stddef.h>
#include <h2o.h>

/* What browsers may send and read, the same for REST and the BFFs (which also expose Server-Timing). */
#define MP_CORS_ALLOW_HEADERS                                                                                          \
    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-Id, traceparent"
#define MP_CORS_EXPOSE_HEADERS                                                                                         \
    "X-Request-Id, ETag, Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "               \
    "Idempotent-Replayed"

typedef struct mp_cors {
    const char *const *origins; /* borrowed */
    size_t n;
    char max_age[24]; /* seconds, as text */
} mp_cors_t;

/** Sets up `c` with `n` origins ("https://app.example.com", no trailing slash) and preflight answers cached by
 *  browsers for `max_age_s` seconds. The origins are borrowed (the configuration's strings): they must outlive `c`.
 *  Allocates nothing; storage is the caller's. */
void mp_cors_init(mp_cors_t *c, const char *const *origins, size_t n, int max_age_s);

/** True when `origin` (`len` bytes) is in the list. Any thread. */
bool mp_cors_allowed(const mp_cors_t *c, const char *origin, size_t len);

/** True when `req` is a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
bool mp_cors_is_preflight(h2o_req_t *req);

/** For a request that is not a preflight: adds `Vary: Origin`, and when its Origin is allowed, the headers that let
 *  the browser read the response. Call before the response is sent (the headers stay on req->res). */
void mp_cors_apply(const mp_cors_t *c, h2o_req_t *req);

/** Answers a preflight. `allow_methods` lists the methods served at the path ("GET, POST"), or NULL when nothing is:
 *  then 404. An origin not in the list gets 403 and no CORS headers. Errors are problem+json. */
void mp_cors_preflight(const mp_cors_t *c, h2o_req_t *req, const char *allow_methods, const char *request_id);

#endif
