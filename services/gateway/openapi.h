/*
 * openapi.h: the API contract the gateway enforces: every *.yaml in
 * api-specs/ (OpenAPI 3.0), loaded at start-up and bound to the route table
 * so that routes and specs cannot drift.
 *
 * An operation is method + path template, its operationId is the NATS
 * subject its route calls. Binding requires a one-to-one match: a route
 * with no operation, an operation with no route, or an operationId that is
 * not the route's subject stops start-up with `file:line: why` for each.
 *
 * Per request (params.c): path, query and header parameters are coerced
 * from text to the schema's type (integer, number, boolean, arrays of
 * them) and checked; unknown query parameters are refused; the JSON body is
 * checked against the operation's schema (schema.h). Parameter problems are
 * 400, body problems 422, each with one {pointer, detail} per field.
 *
 * Immutable after loading; shared by every loop thread.
 */
#ifndef MP_GW_OPENAPI_H
#define MP_GW_OPENAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "mp/problem.h"
#include "mp/status.h"
#include "routes.h"
#include "schema.h"

typedef enum { GW_IN_PATH, GW_IN_QUERY, GW_IN_HEADER } gw_param_in_t;

typedef struct gw_param {
    char *name;
    gw_param_in_t in;
    bool required;
    bool explode; /* query arrays: repeated keys (true, the default) or one comma-separated value */
    const gw_schema_t *schema;
} gw_param_t;

typedef struct gw_op {
    char *id;      /* operationId: unique, and the NATS subject unless x-subject says otherwise */
    char *subject; /* the NATS subject its route calls: x-subject, else the operationId (two routes such as
                    * /v1/users/me and /v1/users/{userId} may call one subject; operationIds must differ) */
    char *method;  /* "GET" */
    char *path;    /* the template, as in routes.yaml */
    const char *file;
    int line;
    gw_param_t *params;
    size_t nparams;
    const gw_schema_t *body; /* the JSON body's schema; NULL: the body is not JSON (or any JSON is fine) */
    bool has_json_body;      /* the operation declares an application/json request body */
    bool body_required;
    char **media; /* every declared request media type ("image/png", "application/json") */
    size_t nmedia;
    bool bound;
} gw_op_t;

typedef struct gw_openapi {
    gw_op_t *ops;
    size_t nops;
    struct gw_schema_ctx **ctxs; /* one per file; they own the schemas */
    size_t nctxs;
    char **files;
    size_t nfiles;
} gw_openapi_t;

/** Loads every *.yaml in `dir` (sorted by name). Errors: MP_EIO (cannot read the directory or a file), MP_EINVAL
 *  with every problem as "file:line: what", one per line, in mp_err_get(). On error `out` may hold partial results:
 *  dispose it. */
mp_status_t gw_openapi_load(gw_openapi_t *out, const char *dir);

/** Binds each route to its operation (sets route->op). Errors: MP_EINVAL listing every route without an operation
 *  (at `routes_file`:line), every operation without a route, and every subject/operationId mismatch. */
mp_status_t gw_openapi_bind(gw_openapi_t *api, gw_routes_t *routes, const char *routes_file);

/** Frees everything. Accepts a zeroed struct. */
void gw_openapi_dispose(gw_openapi_t *api);

/** Reads a request header for header parameters: its value and length, or NULL. */
typedef const char *(*gw_header_fn)(void *arg, const char *name, size_t *len);

/**
 * Checks the request's parameters against `op` and adds the path and query ones, coerced to their types, to `in`
 * (the operation's input object). `query` is the parsed query string (an object of strings, or arrays of strings for
 * repeated keys; may be NULL); `headers` reads header parameters. Problems go to `errs` with pointers "/<name>".
 * Returns true when every parameter is fine. A name the body already gives is a problem too.
 */
bool gw_openapi_check_params(const gw_op_t *op, json_t *in, const gw_match_t *m, json_t *query, gw_header_fn headers,
                             void *arg, mp_problem_errors_t *errs);

/** Checks a parsed JSON body against the operation's schema; adds one error per failing field to `errs`. Returns true
 *  when it is fine. */
bool gw_openapi_check_body(const gw_op_t *op, const json_t *body, mp_problem_errors_t *errs);

/** True when the operation accepts a request body of media type `type` (`len` bytes, parameters after ';' ignored;
 *  "image/..." and "*\/..." ranges in the spec match by range). */
bool gw_openapi_accepts(const gw_op_t *op, const char *type, size_t len);

#endif
