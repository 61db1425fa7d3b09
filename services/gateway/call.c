/*
 * call.c: calling the route's service over NATS, with its circuit breaker,
 * retries and deadline, and turning the reply into the HTTP response.
 *
 * Each attempt asks the service's breaker first; an open circuit answers
 * 503 with Retry-After at once. An attempt that finds no responder, or
 * (when the route sets attempt_timeout) runs out of its share of the
 * deadline, may be tried again: only idempotent reads (GET), or writes that
 * carry an Idempotency-Key on routes that opt in, at most once, after a
 * jittered backoff, while the deadline leaves room, and only when the loop
 * thread's retry budget allows: every request earns `gateway.retry.budget`
 * (0.1) of a retry, so retries add at most ~10% load however badly a service
 * fails. The Deadline header always carries the request's whole budget.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "mp/http_resp.h"
#include "mp/log.h"
#include "mp/reqctx.h"
#include "gateway.h"

#define MAX_ATTEMPTS 2
#define MAX_RETRY_TOKENS 10.0

/* request headers a service may see, and reply headers a client may see; nothing else crosses */
static const char *const pass_request[] = {"if-match", "if-none-match", "idempotency-key", "accept-language", NULL};
/* reply headers as services set them on NATS (names there are case-sensitive) and as HTTP sends them: lower case,
 * which HTTP/2 requires (an upper-case name is a PROTOCOL_ERROR for the client) */
static const struct {
    const char *nats, *http;
} pass_reply[] = {{"ETag", "etag"},
                  {"Cache-Control", "cache-control"},
                  {"Last-Modified", "last-modified"},
                  {"Location", "location"},
                  {"Retry-After", "retry-after"},
                  {"Idempotent-Replayed", "idempotent-replayed"},
                  {"Vary", "vary"},
                  {"Content-Disposition", "content-disposition"},
                  {NULL, NULL}};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void attempt(gw_req_t *gr);

/* ---- breaker bookkeeping ------------------------------------------------------------------------- */

static void breaker_record(gw_req_t *gr, bool failed)
{
    if (!gr->th->gw->breakers)
        return;
    gw_breaker_event_t ev;
    gw_breaker_record(&gr->pol->service->breaker, mono_ms(), gr->probe, failed, &ev);
    gw_service_report(gr->pol->service, &ev);
    gr->probe = false;
}

static void breaker_release(gw_req_t *gr)
{
    if (gr->th->gw->breakers)
        gw_breaker_release(&gr->pol->service->breaker, gr->probe);
    gr->probe = false;
}

/* ---- retries ----------------------------------------------------------------------------------------- */

static bool has_idempotency_key(h2o_req_t *req)
{
    return h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1) >= 0;
}

static void on_retry_timer(h2o_timeout_entry_t *e)
{
    gw_req_t *gr = H2O_STRUCT_FROM_MEMBER(gw_req_t, retry_entry, e);
    if (!gr->gone)
        attempt(gr);
}

/* Schedules another attempt after `st` when the route, the deadline and the budget allow it. */
static bool retry(gw_req_t *gr, mp_status_t st)
{
    gw_thread_t *th = gr->th;
    const gw_route_t *rt = gr->match.route;
    bool allowed = gr->pol->retry_reads || (gr->pol->retry_keyed_writes && has_idempotency_key(gr->req));
    if (!allowed || gr->attempts >= MAX_ATTEMPTS)
        return false;
    if (st != MP_EUNAVAIL && !(st == MP_ETIMEDOUT && rt->attempt_timeout_ms > 0))
        return false;
    int64_t left = gr->deadline_ms - mp_now_ms();
    if (left < th->gw->retry.backoff_ms * 3 / 2 + 5)
        return false;
    if (th->retry_tokens < 1.0) {
        mp_series_add(gr->pol->m_retry_denied, 1);
        return false;
    }
    th->retry_tokens -= 1.0;
    mp_series_add(gr->pol->m_retried, 1);
    gr->retry_entry.cb = on_retry_timer;
    /* full jitter over five delays, 0.5x to 1.5x the backoff, so retries of a burst spread out */
    h2o_timeout_link(gr->req->conn->ctx->loop, &th->retry_delay[mp_rand64() % GW_RETRY_DELAYS], &gr->retry_entry);
    return true;
}

/* ---- the reply ------------------------------------------------------------------------------------------- */

static void send_reply(gw_req_t *gr, int status, const mp_reply_t *reply)
{
    h2o_req_t *req = gr->req;
    size_t n;
    for (size_t i = 0; pass_reply[i].nats; i++) {
        const char *v = mp_reply_header(reply, pass_reply[i].nats, &n);
        if (v)
            h2o_add_header_by_str(&req->pool, &req->res.headers, pass_reply[i].http, strlen(pass_reply[i].http), 1,
                                  NULL, h2o_strdup(&req->pool, v, n).base, n);
    }
    const char *ct = status >= 400 ? "application/problem+json" : "application/json";
    const char *v = mp_reply_header(reply, "Content-Type", &n);
    if (v)
        ct = h2o_strdup(&req->pool, v, n).base;
    if (status == 204 || status == 304 || reply->len == 0)
        mp_http_send(req, status, status == 204 || status == 304 ? NULL : ct, "", 0, gr->rc.request_id);
    else
        mp_http_send(req, status, ct, reply->data, reply->len, gr->rc.request_id);
    gw_proxy_record(gr, status);
}

/* The reply is borrowed (mp/bus_loop.h): everything kept is copied into the request's pool. */
static void on_reply(void *arg, mp_status_t st, const mp_reply_t *reply)
{
    gw_req_t *gr = arg;
    gr->calling = 0;
    if (st == MP_ECANCELED || gr->gone) {
        breaker_release(gr);
        return;
    }
    int status = st == MP_OK ? reply->status : 0;
    breaker_record(gr, st != MP_OK || status >= 500);
    if (st != MP_OK && retry(gr, st))
        return;
    if (st == MP_ETIMEDOUT) {
        gw_proxy_fail(gr, 504, "the service did not answer before the deadline");
    } else if (st != MP_OK) {
        h2o_add_header(&gr->req->pool, &gr->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        gw_proxy_fail(gr, 503, "no service is available to answer this request");
    } else if (status < 200 || status == 502) {
        mp_log_kv(MP_LOG_ERROR, &(mp_log_ctx_t){gr->rc.request_id, gr->rc.trace_id}, "bad status from service",
                  "subject", gr->match.route->subject, NULL);
        gw_proxy_fail(gr, 502, "the service answered with an invalid status");
    } else {
        send_reply(gr, status, reply);
    }
}

/* ---- the call --------------------------------------------------------------------------------------------- */

static void attempt(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    const gw_route_t *rt = gr->match.route;
    gw_t *gw = gr->th->gw;
    mp_bus_hdr_t extra[8];
    size_t nextra = 0;

    if (gw->breakers) {
        gw_service_t *svc = gr->pol->service;
        gw_breaker_event_t ev;
        int retry_after = 1;
        bool ok = gw_breaker_admit(&svc->breaker, mono_ms(), &gr->probe, &retry_after, &ev);
        gw_service_report(svc, &ev);
        if (!ok) {
            char ra[16], detail[200];
            snprintf(ra, sizeof(ra), "%d", retry_after);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                           h2o_strdup(&req->pool, ra, SIZE_MAX).base, strlen(ra));
            snprintf(detail, sizeof(detail), "the %s service is failing: its circuit is open, try again later",
                     svc->name);
            mp_series_add(gr->pol->m_circuit_open, 1);
            gw_proxy_fail(gr, 503, detail);
            return;
        }
    }
    for (size_t i = 0; pass_request[i]; i++) {
        ssize_t at = h2o_find_header_by_str(&req->headers, pass_request[i], strlen(pass_request[i]), -1);
        if (at >= 0)
            extra[nextra++] = (mp_bus_hdr_t){
                pass_request[i],
                h2o_strdup(&req->pool, req->headers.entries[at].value.base, req->headers.entries[at].value.len).base};
    }
    if (gr->raw_input) {
        extra[nextra++] = (mp_bus_hdr_t){"Mp-Input", gr->raw_input};
        extra[nextra++] = (mp_bus_hdr_t){"Content-Type", gr->raw_type};
    }
    /* a shorter attempt only makes sense when another attempt may follow */
    bool may_retry = gr->pol->retry_reads || (gr->pol->retry_keyed_writes && has_idempotency_key(req));
    mp_bus_call_t call = {
        .subject = rt->subject,
        .body = gr->body,
        .len = gr->body_len,
        .timeout_ms = (int)(may_retry && rt->attempt_timeout_ms ? rt->attempt_timeout_ms : rt->timeout_ms),
        .extra = extra,
        .nextra = nextra,
        .ctx = {.request_id = gr->rc.request_id,
                .traceparent = gr->rc.traceparent,
                .auth_sub = gr->authenticated ? gr->claims.sub : NULL,
                .auth_roles = gr->authenticated ? gr->roles : NULL,
                .deadline_ms = gr->deadline_ms},
    };
    gr->attempts++;
    mp_status_t st = mp_bus_call_async(&gr->call_id, gr->th->bl, &call, on_reply, gr);
    if (st == MP_OK) {
        gr->calling = 1;
        return;
    }
    breaker_release(gr);
    if (st == MP_ETIMEDOUT)
        gw_proxy_fail(gr, 504, "the deadline passed before the service was called");
    else
        gw_proxy_fail(gr, 503, "the message bus is unavailable");
}

void gw_call_start(gw_req_t *gr, const void *body, size_t len, const char *raw_input, const char *raw_type)
{
    gw_thread_t *th = gr->th;
    /* the request earns its share of a retry whether or not it needs one */
    th->retry_tokens += th->gw->retry.budget;
    if (th->retry_tokens > MAX_RETRY_TOKENS)
        th->retry_tokens = MAX_RETRY_TOKENS;
    gr->body = h2o_mem_alloc_pool(&gr->req->pool, len + 1);
    memcpy(gr->body, body, len);
    gr->body_len = len;
    gr->raw_input = raw_input;
    gr->raw_type = raw_type;
    gr->deadline_ms = mp_now_ms() + gr->match.route->timeout_ms;
    attempt(gr);
}
