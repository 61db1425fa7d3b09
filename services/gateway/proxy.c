/*
 * proxy.c: one public request through the gateway: the edge checks
 * (edge.c), the route, load shedding and the token check, the rate limit
 * (policy.c), then the operation's input: path parameters, query and JSON
 * body, checked against the API specs (openapi.h) and merged into one JSON
 * object, which call.c sends to the service.
 *
 * The request context (gw_req_t) lives in the request's memory pool with a
 * disposer: when the client goes away before the reply, the disposer cancels
 * whatever the request waits for (a call, a rate-limit decision, a retry
 * timer), and callbacks see `gone` and touch nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mp/http_resp.h"
#include "mp/json.h"
#include "mp/log.h"
#include "mp/problem.h"
#include "gateway.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- outcome: metrics and access log -------------------------------------------- */

void gw_proxy_record(gw_req_t *gr, int status)
{
    gw_t *gw = gr->th->gw;
    char code[12];
    const char *route = gr->match.route ? gr->match.route->path : "(none)";
    double secs = (double)(mono_ns() - gr->t0_ns) / 1e9;
    snprintf(code, sizeof(code), "%d", status);
    mp_metric_add(gw->m_requests, MP_LABELS(route, gr->match.route ? gr->match.route->method : "-", code), 1);
    mp_metric_observe(gw->m_duration, MP_LABELS(route), secs);
    if (mp_log_enabled(MP_LOG_INFO)) {
        char ms[32];
        snprintf(ms, sizeof(ms), "%.3f", secs * 1000);
        h2o_iovec_t m = gr->req->method;
        char method[16];
        snprintf(method, sizeof(method), "%.*s", (int)(m.len < 15 ? m.len : 15), m.base);
        mp_log_kv(MP_LOG_INFO, &(mp_log_ctx_t){gr->rc.request_id, gr->rc.trace_id}, "request", "method", method,
                  "route", route, "status", code, "duration_ms", ms, "sub", gr->authenticated ? gr->claims.sub : NULL,
                  NULL);
    }
}

void gw_proxy_fail(gw_req_t *gr, int status, const char *detail)
{
    mp_http_problem(gr->req, status, gr->rc.request_id, detail, NULL);
    gw_proxy_record(gr, status);
}

static void fail_with_errors(gw_req_t *gr, int status, const char *detail, mp_problem_errors_t *errs)
{
    mp_http_problem(gr->req, status, gr->rc.request_id, detail, errs->list);
    mp_problem_errors_dispose(errs);
    gw_proxy_record(gr, status);
}

/* ---- building the operation's input --------------------------------------------------- */

static bool is_json_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    return v.len >= 16 && strncasecmp(v.base, "application/json", 16) == 0 && (v.len == 16 || v.base[16] == ';');
}

static bool method_has_body(h2o_req_t *req)
{
    return !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
           !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
}

/* Adds path parameters to `in`; a body field of the same name is a conflict. */
static bool add_path_params(gw_req_t *gr, json_t *in, mp_problem_errors_t *errs)
{
    for (size_t i = 0; i < gr->match.nparams; i++) {
        char ptr[300];
        if (json_object_get(in, gr->match.names[i])) {
            mp_json_pointer_join(ptr, sizeof(ptr), "", gr->match.names[i]);
            mp_problem_add(errs, ptr, "is given by the path and may not be in the body");
            continue;
        }
        json_t *v = json_string(gr->match.values[i]);
        if (v == NULL) { /* not UTF-8 */
            mp_json_pointer_join(ptr, sizeof(ptr), "", gr->match.names[i]);
            mp_problem_add(errs, ptr, "is not valid UTF-8");
            continue;
        }
        json_object_set_new(in, gr->match.names[i], v);
    }
    return mp_problem_count(errs) == 0;
}

/* The request's query string into `q` (see gw_query_parse()). */
static bool parse_query(gw_req_t *gr, json_t *q, char *why, size_t why_size)
{
    h2o_req_t *req = gr->req;
    return gw_query_parse(q, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, why, why_size);
}

/* Adds the query parameters to `in`; a name that the path or body already gives is a conflict. */
static bool add_query(gw_req_t *gr, json_t *in, char *why, size_t why_size)
{
    if (gr->req->query_at == SIZE_MAX)
        return true;
    json_t *q = json_object(), *v;
    const char *key;
    bool ok = parse_query(gr, q, why, why_size);
    json_object_foreach(q, key, v)
    {
        if (!ok)
            break;
        if (json_object_get(in, key)) {
            snprintf(why, why_size, "query parameter %s is also given by the path or the body", key);
            ok = false;
        } else {
            json_object_set(in, key, v);
        }
    }
    json_decref(q);
    return ok;
}

/* Parses the JSON body into a new object; answers the client and returns NULL when it cannot. */
static json_t *parse_body(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    if (req->entity.base == NULL || req->entity.len == 0 || !method_has_body(req))
        return json_object();
    if (!is_json_type(req)) {
        gw_proxy_fail(gr, 415, "the request body must be JSON (Content-Type: application/json)");
        return NULL;
    }
    json_t *v = NULL;
    if (mp_json_parse(&v, req->entity.base, req->entity.len) != MP_OK) {
        char detail[300];
        snprintf(detail, sizeof(detail), "malformed JSON: %s", mp_err_get());
        gw_proxy_fail(gr, 400, detail);
        return NULL;
    }
    if (!json_is_object(v)) {
        mp_problem_errors_t errs = {0};
        mp_problem_add(&errs, "", "the body must be a JSON object");
        json_decref(v);
        fail_with_errors(gr, 422, "the request body is not a JSON object", &errs);
        return NULL;
    }
    return v;
}

/* ---- checking and sending ---------------------------------------------------------------------------- */

static const char *header_param(void *arg, const char *name, size_t *len)
{
    char lower[128];
    size_t n = strlen(name);
    if (n >= sizeof(lower))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    return mp_http_header(arg, lower, len);
}

/* Path and query parameters into `in`: checked against the operation when there is one (400 on problems). */
static bool add_params(gw_req_t *gr, json_t *in)
{
    const gw_op_t *op = gr->match.route->op;
    char why[200];
    mp_problem_errors_t errs = {0};
    if (op == NULL || !gr->th->gw->validate) {
        if (!add_path_params(gr, in, &errs)) {
            fail_with_errors(gr, 422, "the request has conflicting fields", &errs);
            return false;
        }
        if (!add_query(gr, in, why, sizeof(why))) {
            gw_proxy_fail(gr, 400, why);
            return false;
        }
        return true;
    }
    json_t *q = json_object();
    bool ok = gr->req->query_at == SIZE_MAX || parse_query(gr, q, why, sizeof(why));
    if (!ok)
        gw_proxy_fail(gr, 400, why);
    else if (!(ok = gw_openapi_check_params(op, in, &gr->match, q, header_param, gr->req, &errs))) {
        mp_series_add(gr->pol->m_invalid, 1);
        fail_with_errors(gr, 400, "a parameter is missing or malformed", &errs);
    }
    json_decref(q);
    return ok;
}

/* The body of a raw route must be of a media type its operation declares. */
static bool raw_type_ok(gw_req_t *gr)
{
    const gw_op_t *op = gr->match.route->op;
    h2o_req_t *req = gr->req;
    if (op == NULL || !gr->th->gw->validate || req->entity.base == NULL || req->entity.len == 0)
        return true;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i >= 0 && gw_openapi_accepts(op, req->headers.entries[i].value.base, req->headers.entries[i].value.len))
        return true;
    gw_proxy_fail(gr, 415, "the request body's Content-Type is not one this operation accepts");
    return false;
}

void gw_proxy_after_limit(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    const gw_route_t *rt = gr->match.route;
    mp_problem_errors_t errs = {0};

    if (req->entity.base && (int64_t)req->entity.len > rt->body_limit) {
        gw_proxy_fail(gr, 413, "the request body is larger than this route accepts");
        return;
    }
    if (rt->body == GW_BODY_RAW && !raw_type_ok(gr))
        return;
    json_t *in = rt->body == GW_BODY_RAW ? json_object() : parse_body(gr);
    if (in == NULL)
        return;
    if (rt->body == GW_BODY_JSON && rt->op && gr->th->gw->validate && rt->op->body_required &&
        (req->entity.base == NULL || req->entity.len == 0)) { /* requestBody.required: no body is not `{}` */
        mp_problem_errors_t errs = {0};
        mp_problem_add(&errs, "", "a request body is required");
        json_decref(in);
        mp_series_add(gr->pol->m_invalid, 1);
        fail_with_errors(gr, 422, "the request body breaks the API contract", &errs);
        return;
    }
    if (rt->body == GW_BODY_JSON && rt->op && gr->th->gw->validate && !gw_openapi_check_body(rt->op, in, &errs)) {
        json_decref(in);
        mp_series_add(gr->pol->m_invalid, 1);
        fail_with_errors(gr, 422, "the request body breaks the API contract", &errs);
        return;
    }
    if (!add_params(gr, in)) {
        json_decref(in);
        return;
    }
    mp_buf_t b = MP_BUF_INIT;
    mp_json_dump(&b, in);
    json_decref(in);
    if (rt->body == GW_BODY_RAW) {
        ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
        const char *type =
            i >= 0 ? h2o_strdup(&req->pool, req->headers.entries[i].value.base, req->headers.entries[i].value.len).base
                   : "application/octet-stream";
        char *input = h2o_strdup(&req->pool, b.base, b.len).base;
        gw_call_start(gr, req->entity.base ? req->entity.base : "", req->entity.base ? req->entity.len : 0, input,
                      type);
    } else {
        gw_call_start(gr, b.base, b.len, NULL, NULL);
    }
    mp_buf_dispose(&b);
}

void gw_proxy_continue(gw_req_t *gr)
{
    if (gw_policy_rate_limit(gr))
        gw_proxy_after_limit(gr);
}

/* ---- entry ------------------------------------------------------------------------------------- */

static void on_gr_dispose(void *p)
{
    gw_req_t *gr = p;
    gr->gone = 1;
    if (h2o_linklist_is_linked(&gr->waiter))
        h2o_linklist_unlink(&gr->waiter);
    if (gr->calling)
        mp_bus_cancel(gr->th->bl, gr->call_id);
    if (gr->limit_wait)
        gw_limiter_cancel(gr->th->limiter, gr->limit_wait);
    if (h2o_timeout_is_linked(&gr->retry_entry))
        h2o_timeout_unlink(&gr->retry_entry);
    if (gr->holds_slot)
        atomic_fetch_sub(&((gw_route_policy_t *)gr->pol)->inflight, 1);
}

gw_req_t *gw_req_new(h2o_req_t *req)
{
    size_t rid_len = 0, tp_len = 0;
    gw_req_t *gr = h2o_mem_alloc_shared(&req->pool, sizeof(*gr), on_gr_dispose);
    mp_http_track(req);
    memset(gr, 0, sizeof(*gr));
    gr->req = req;
    gr->th = mp_http_thread_of(req)->user;
    gr->t0_ns = mono_ns();
    const char *rid = mp_http_header(req, "x-request-id", &rid_len);
    const char *tp = mp_http_header(req, "traceparent", &tp_len);
    mp_reqctx_init(&gr->rc, rid, rid_len, tp, tp_len);
    return gr;
}

int gw_proxy_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    gw_req_t *gr = gw_req_new(req);
    char allow[64];

    if (!gw_edge_check(gr))
        return 0;

    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    switch (gw_routes_match(&gr->match, &gr->th->gw->routes, req->method.base, req->method.len, req->path.base,
                            path_len, allow, sizeof(allow))) {
    case GW_MATCH_OK:
        break;
    case GW_MATCH_BAD_METHOD:
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       h2o_strdup(&req->pool, allow, SIZE_MAX).base, strlen(allow));
        gw_proxy_fail(gr, 405, "this method is not allowed on this path");
        return 0;
    case GW_MATCH_BAD_PATH:
        gw_proxy_fail(gr, 400, "a path parameter is malformed");
        return 0;
    default:
        gw_proxy_fail(gr, 404, "no route matches this path");
        return 0;
    }
    gr->pol = &gr->th->gw->policies[gr->match.route->index];
    if (!gw_policy_admit(gr))
        return 0;
    if (gw_auth_check(gr))
        gw_proxy_continue(gr);
    return 0;
}
