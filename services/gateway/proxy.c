/*
 * proxy.c: one public request through the gateway: match the route, check
 * the token, turn path parameters, query and JSON body into the operation's
 * input, call the service over NATS without blocking the loop, and turn its
 * reply (Status header + body) into the HTTP response.
 *
 * The request context (gw_req_t) lives in the request's memory pool with a
 * disposer: when the client goes away before the reply, the disposer cancels
 * the call, and the reply callback sees `gone` and touches nothing.
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

#define MAX_QUERY_PARAMS 32

/* request headers a service may see, and reply headers a client may see; nothing else crosses */
static const char *const pass_request[] = {"if-match", "if-none-match", "idempotency-key", "accept-language", NULL};
static const char *const pass_reply[] = {"ETag",     "Cache-Control",       "Last-Modified",
                                         "Location", "Retry-After",         "Idempotent-Replayed",
                                         "Vary",     "Content-Disposition", NULL};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- outcome: metrics and access log -------------------------------------------- */

static void record(gw_req_t *gr, int status)
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
    record(gr, status);
}

static void fail_with_errors(gw_req_t *gr, int status, const char *detail, mp_problem_errors_t *errs)
{
    mp_http_problem(gr->req, status, gr->rc.request_id, detail, errs->list);
    mp_problem_errors_dispose(errs);
    record(gr, status);
}

/* ---- the reply --------------------------------------------------------------------- */

static void on_reply(void *arg, mp_status_t st, const mp_reply_t *reply)
{
    gw_req_t *gr = arg;
    gr->calling = 0;
    if (st == MP_ECANCELED || gr->gone)
        return;
    if (st == MP_ETIMEDOUT) {
        gw_proxy_fail(gr, 504, "the service did not answer before the deadline");
        return;
    }
    if (st != MP_OK) {
        h2o_add_header_by_str(&gr->req->pool, &gr->req->res.headers, H2O_STRLIT("retry-after"), 0, NULL,
                              H2O_STRLIT("1"));
        gw_proxy_fail(gr, 503, "no service is available to answer this request");
        return;
    }
    int status = reply->status;
    if (status < 200 || status == 502) {
        mp_log_kv(MP_LOG_ERROR, &(mp_log_ctx_t){gr->rc.request_id, gr->rc.trace_id}, "bad status from service",
                  "subject", gr->match.route->subject, NULL);
        gw_proxy_fail(gr, 502, "the service answered with an invalid status");
        return;
    }
    h2o_req_t *req = gr->req;
    size_t n;
    for (size_t i = 0; pass_reply[i]; i++) {
        const char *v = mp_reply_header(reply, pass_reply[i], &n);
        if (v)
            h2o_add_header_by_str(&req->pool, &req->res.headers, pass_reply[i], strlen(pass_reply[i]), 1, NULL,
                                  h2o_strdup(&req->pool, v, n).base, n);
    }
    const char *ct = "application/json";
    const char *v = mp_reply_header(reply, "Content-Type", &n);
    if (v)
        ct = h2o_strdup(&req->pool, v, n).base;
    else if (status >= 400)
        ct = "application/problem+json";
    if (status == 204 || status == 304 || reply->len == 0)
        mp_http_send(req, status, status == 204 || status == 304 ? NULL : ct, "", 0, gr->rc.request_id);
    else
        mp_http_send(req, status, ct, reply->data, reply->len, gr->rc.request_id);
    record(gr, status);
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

/* Collects the query string's parameters into `q` (a repeated key becomes a list). */
static bool parse_query(gw_req_t *gr, json_t *q, char *why, size_t why_size)
{
    h2o_req_t *req = gr->req;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t count = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        size_t klen = (size_t)((eq ? eq : stop) - p), vlen = eq ? (size_t)(stop - eq - 1) : 0;
        if (klen > 0) {
            if (++count > MAX_QUERY_PARAMS) {
                snprintf(why, why_size, "more than %d query parameters", MAX_QUERY_PARAMS);
                return false;
            }
            char *key = h2o_mem_alloc_pool(&req->pool, klen + 1), *val = h2o_mem_alloc_pool(&req->pool, vlen + 1);
            json_t *jk = NULL, *jv = NULL;
            if (gw_pct_decode(key, p, klen, true) < 0 || gw_pct_decode(val, eq ? eq + 1 : "", vlen, true) < 0 ||
                (jk = json_string(key)) == NULL || (jv = json_string(val)) == NULL) {
                json_decref(jk);
                snprintf(why, why_size, "the query string is not valid percent-encoded UTF-8");
                return false;
            }
            json_decref(jk);
            json_t *have = json_object_get(q, key);
            if (have == NULL)
                json_object_set_new(q, key, jv);
            else if (json_is_array(have))
                json_array_append_new(have, jv);
            else
                json_object_set_new(q, key, json_pack("[O o]", have, jv));
        }
        p = stop + 1;
    }
    return true;
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

/* ---- the call ----------------------------------------------------------------------------- */

static void call_service(gw_req_t *gr, const void *body, size_t len, const char *raw_input, const char *raw_type)
{
    h2o_req_t *req = gr->req;
    const gw_route_t *rt = gr->match.route;
    mp_bus_hdr_t extra[8];
    size_t nextra = 0;

    for (size_t i = 0; pass_request[i]; i++) {
        ssize_t at = h2o_find_header_by_str(&req->headers, pass_request[i], strlen(pass_request[i]), -1);
        if (at >= 0)
            extra[nextra++] = (mp_bus_hdr_t){
                pass_request[i],
                h2o_strdup(&req->pool, req->headers.entries[at].value.base, req->headers.entries[at].value.len).base};
    }
    if (raw_input) {
        extra[nextra++] = (mp_bus_hdr_t){"Mp-Input", raw_input};
        extra[nextra++] = (mp_bus_hdr_t){"Content-Type", raw_type};
    }
    mp_bus_call_t call = {
        .subject = rt->subject,
        .body = body,
        .len = len,
        .timeout_ms = (int)rt->timeout_ms,
        .extra = extra,
        .nextra = nextra,
        .ctx = {.request_id = gr->rc.request_id,
                .traceparent = gr->rc.traceparent,
                .auth_sub = gr->authenticated ? gr->claims.sub : NULL,
                .auth_roles = gr->authenticated ? gr->roles : NULL,
                .deadline_ms = mp_now_ms() + rt->timeout_ms},
    };
    mp_status_t st = mp_bus_call_async(&gr->call_id, gr->th->bl, &call, on_reply, gr);
    if (st == MP_OK) {
        gr->calling = 1;
        return;
    }
    if (st == MP_ETIMEDOUT)
        gw_proxy_fail(gr, 504, "the deadline passed before the service was called");
    else
        gw_proxy_fail(gr, 503, "the message bus is unavailable");
}

void gw_proxy_continue(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    const gw_route_t *rt = gr->match.route;
    char why[200];
    mp_problem_errors_t errs = {0};

    if (req->entity.base && (int64_t)req->entity.len > rt->body_limit) {
        gw_proxy_fail(gr, 413, "the request body is larger than this route accepts");
        return;
    }
    json_t *in = rt->body == GW_BODY_RAW ? json_object() : parse_body(gr);
    if (in == NULL)
        return;
    if (!add_path_params(gr, in, &errs)) {
        json_decref(in);
        fail_with_errors(gr, 422, "the request has conflicting fields", &errs);
        return;
    }
    if (!add_query(gr, in, why, sizeof(why))) {
        json_decref(in);
        gw_proxy_fail(gr, 400, why);
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
        call_service(gr, req->entity.base ? req->entity.base : "", req->entity.base ? req->entity.len : 0, input, type);
    } else {
        call_service(gr, b.base, b.len, NULL, NULL);
    }
    mp_buf_dispose(&b);
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
}

static const char *header_value(h2o_req_t *req, const h2o_token_t *tok, const char *name, size_t *len)
{
    ssize_t i =
        tok ? h2o_find_header(&req->headers, tok, -1) : h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) {
        *len = 0;
        return NULL;
    }
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

int gw_proxy_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    mp_http_thread_t *t = mp_http_thread_of(req);
    gw_req_t *gr = h2o_mem_alloc_shared(&req->pool, sizeof(*gr), on_gr_dispose);
    size_t rid_len, tp_len;
    char allow[64];

    mp_http_track(req);
    memset(gr, 0, sizeof(*gr));
    gr->req = req;
    gr->th = t->user;
    gr->t0_ns = mono_ns();
    const char *rid = header_value(req, NULL, "x-request-id", &rid_len);
    const char *tp = header_value(req, NULL, "traceparent", &tp_len);
    mp_reqctx_init(&gr->rc, rid, rid_len, tp, tp_len);

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
    if (gw_auth_check(gr))
        gw_proxy_continue(gr);
    return 0;
}
