/*
 * routes.h: the gateway's route table: method + path template
 * (`/v1/users/{userId}`) -> NATS subject, with per-route auth, timeout and
 * body limit, loaded from YAML (config/routes.yaml).
 *
 * Matching splits the path into segments once and compares them with each
 * route's template; templates are few (tens), so a linear scan over
 * pre-split segments beats building a trie. A path that matches a template
 * under another method gives 405 with the allowed methods.
 *
 * Immutable after loading; shared by every loop thread.
 */
#ifndef MP_GW_ROUTES_H
#define MP_GW_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "mp/buf.h"
#include "mp/status.h"
#include "mp/yaml.h"

#define GW_MAX_SEGMENTS 16
#define GW_MAX_PARAMS 8
#define GW_MAX_PARAM_LEN 256

typedef enum { GW_AUTH_NONE, GW_AUTH_OPTIONAL, GW_AUTH_REQUIRED } gw_auth_t;
typedef enum { GW_BODY_JSON, GW_BODY_RAW } gw_body_t;

typedef struct gw_route {
    char *method;                /* "GET" */
    char *path;                  /* the template, also the metrics label */
    char *subject;               /* "user.v1.get" */
    char *segs[GW_MAX_SEGMENTS]; /* literal text, or the parameter name when is_param */
    bool is_param[GW_MAX_SEGMENTS];
    size_t nsegs;
    gw_auth_t auth;
    char *role; /* required role, or NULL */
    int64_t timeout_ms;
    int64_t body_limit;
    gw_body_t body;
    char *group; /* policy group (rate limits), default "default" */
    int line;    /* where it was declared, for messages */
    /* policies */
    int max_inflight;           /* load shedding: requests in flight at once; 0: the gateway's default */
    int retry;                  /* retries allowed: -1 default (GET yes), 0 never, 1 yes (idempotent reads, or writes
                                 * carrying an Idempotency-Key) */
    int64_t attempt_timeout_ms; /* one attempt's budget when retries may follow a timeout; 0: the whole timeout */
    size_t index;               /* position in the table (per-route state arrays) */
    const struct gw_op *op;     /* its operation in the API specs (openapi.h), set by gw_openapi_bind() */
} gw_route_t;

typedef struct gw_routes {
    gw_route_t *items;
    size_t n;
    int64_t max_body; /* the largest body_limit, h2o's ceiling */
} gw_routes_t;

/** A matched route with its decoded path parameters. */
typedef struct gw_match {
    const gw_route_t *route;
    const char *names[GW_MAX_PARAMS];
    char values[GW_MAX_PARAMS][GW_MAX_PARAM_LEN];
    size_t nparams;
} gw_match_t;

/** Loads routes from a YAML document (a map with `defaults` and `routes`). Errors: MP_EINVAL with every problem as
 *  "file:line: what", one per line, in mp_err_get(). On error `out` may hold partial routes: dispose it. */
mp_status_t gw_routes_load(gw_routes_t *out, const mp_yaml_doc_t *doc);
/** Frees the table. */
void gw_routes_dispose(gw_routes_t *r);

typedef enum { GW_MATCH_OK, GW_MATCH_NOT_FOUND, GW_MATCH_BAD_METHOD, GW_MATCH_BAD_PATH } gw_match_result_t;

/** Matches `method` and the path part of `path` (no query; `len` bytes, percent-encoded). On GW_MATCH_BAD_METHOD,
 *  `allow` (if not NULL) receives the allowed methods ("GET, PATCH"). On GW_MATCH_BAD_PATH the path is malformed
 *  (bad percent-encoding, a parameter too long or holding control characters or '/'). */
gw_match_result_t gw_routes_match(gw_match_t *m, const gw_routes_t *r, const char *method, size_t method_len,
                                  const char *path, size_t len, char *allow, size_t allow_size);

/** Appends "file:line: message" (a newline first when `errs` is not empty): how every loader of the gateway's
 *  files (routes, API specs) reports a problem. `at` may be NULL (line 0). */
void gw_errorf(mp_buf_t *errs, const char *file, const mp_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Percent-decodes `len` bytes into `out` (room for len+1); '+' stays '+' (paths) unless `plus_is_space`. Returns the
 *  decoded length, or -1 on a bad escape or a decoded NUL. */
long gw_pct_decode(char *out, const char *in, size_t len, bool plus_is_space);

#define GW_MAX_QUERY_PARAMS 32

/** Parses a query string (`len` bytes after the '?', percent-encoded, '+' for space) into the object `q`: each key's
 *  value a string, or a list of strings when the key repeats. Returns false with a reason in `why` (more than
 *  GW_MAX_QUERY_PARAMS parameters, a bad escape, text that is not UTF-8); `q` may then hold some of them. */
bool gw_query_parse(json_t *q, const char *qs, size_t len, char *why, size_t why_size);

#endif
