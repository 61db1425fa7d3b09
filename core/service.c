/*
 * service.c: running one service's endpoints: JSON decoding, dispatch to
 * handlers on the worker pool, replies, statistics and metrics (see
 * mp/service.h).
 *
 * A handler either replies itself or returns a status; the framework turns
 * an unanswered error into a problem. 5xx details go to the log under the
 * request id and never to the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/json.h"
#include "service_int.h"

static mp_metric_t *m_requests, *m_duration;

/* ---- replies -------------------------------------------------------------- */

static mp_status_t send_reply(mp_svc_req_t *req, int status, const void *body, size_t len)
{
    if (req->replied)
        return mp_err_set(MP_EINVAL, "reply sent twice");
    req->replied = 1;
    req->status = status;
    /* the NATS micro convention, so generic tooling sees our errors too */
    char code[12];
    if (status >= 400 && req->nhdrs < 7) {
        snprintf(code, sizeof(code), "%d", status);
        req->hdrs[req->nhdrs++] = (mp_bus_hdr_t){"Nats-Service-Error-Code", code};
        req->hdrs[req->nhdrs++] = (mp_bus_hdr_t){"Nats-Service-Error", mp_http_reason(status)};
    }
    return mp_bus_reply(req->svc->bus, req->msg, status, body, len, req->hdrs, req->nhdrs);
}

mp_status_t mp_svc_reply_json(mp_svc_req_t *req, int status, json_t *body)
{
    mp_buf_t b = MP_BUF_INIT;
    if (body) {
        mp_json_dump(&b, body);
        json_decref(body);
    }
    mp_status_t st = send_reply(req, status, b.base, b.len);
    mp_buf_dispose(&b);
    return st;
}

mp_status_t mp_svc_reply_raw(mp_svc_req_t *req, int status, const char *content_type, const void *body, size_t len)
{
    mp_svc_reply_header(req, "Content-Type", content_type);
    if (strcmp(content_type, "application/json") != 0 || len == 0)
        return send_reply(req, status, body, len);
    /* JSON rendered by Postgres comes spaced out ("a" : 1, ...): every client gets it compact, as jansson writes */
    char *compact = mp_xmalloc(len);
    mp_status_t st = send_reply(req, status, compact, mp_json_compact(compact, body, len));
    free(compact);
    return st;
}

mp_status_t mp_svc_reply_problem(mp_svc_req_t *req, int status, const char *detail, mp_problem_errors_t *errors)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_problem_render(&b, status, detail, req->log.request_id, errors ? errors->list : NULL);
    if (errors)
        mp_problem_errors_dispose(errors);
    mp_status_t st = send_reply(req, status, b.base, b.len);
    mp_buf_dispose(&b);
    return st;
}

void mp_svc_reply_header(mp_svc_req_t *req, const char *name, const char *value)
{
    if (req->nhdrs >= 6 || value == NULL) /* two slots stay free for the error headers */
        return;
    char *n = mp_xstrdup(name), *v = mp_xstrdup(value);
    req->hdr_store[req->nhdrs] = n;
    req->hdrs[req->nhdrs] = (mp_bus_hdr_t){n, v};
    req->nhdrs++;
}

/* ---- request helpers ------------------------------------------------------ */

const char *mp_svc_header(mp_svc_req_t *req, const char *name)
{
    const char *v = mp_msg_header(req->msg, name);
    if (v != NULL)
        return v;
    /* NATS header names are case-sensitive, and the gateway passes client headers on under their lower-case HTTP/2
     * names ("if-match"), while other callers write "If-Match": accept both */
    char lower[64];
    size_t n = strlen(name);
    if (n >= sizeof(lower))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    return strcmp(lower, name) == 0 ? NULL : mp_msg_header(req->msg, lower);
}

bool mp_svc_has_role(const mp_svc_req_t *req, const char *role)
{
    size_t n = strlen(role);
    for (const char *p = req->auth_roles; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, role, n) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

const char *mp_svc_body(const mp_svc_req_t *req, size_t *len)
{
    *len = mp_msg_len(req->msg);
    return mp_msg_data(req->msg);
}

mp_status_t mp_svc_call(mp_msg_t **reply, mp_svc_req_t *req, const char *subject, json_t *input, int timeout_ms)
{
    mp_buf_t b = MP_BUF_INIT;
    if (input)
        mp_json_dump(&b, input);
    mp_bus_call_t call = {.subject = subject,
                          .body = b.base ? b.base : "{}",
                          .len = b.base ? b.len : 2,
                          .ctx = req->ctx,
                          .timeout_ms = timeout_ms};
    mp_status_t st = mp_bus_request(reply, req->svc->bus, &call);
    mp_buf_dispose(&b);
    return st;
}

/* ---- accessors --------------------------------------------------------------- */

const char *mp_svc_name(const mp_svc_t *svc)
{
    return svc->def->name;
}
mp_db_t *mp_svc_db(const mp_svc_t *svc)
{
    return svc->db;
}
mp_cache_t *mp_svc_cache(const mp_svc_t *svc)
{
    return svc->cache;
}
mp_bus_t *mp_svc_bus(const mp_svc_t *svc)
{
    return svc->bus;
}
mp_cfg_t *mp_svc_cfg(const mp_svc_t *svc)
{
    return svc->cfg;
}
void *mp_svc_state(const mp_svc_t *svc)
{
    return svc->state;
}
void mp_svc_set_state(mp_svc_t *svc, void *state)
{
    svc->state = state;
}
const mp_yaml_node_t *mp_svc_descriptor(const mp_svc_t *svc)
{
    return svc->descriptor ? svc->descriptor->root : NULL;
}
bool mp_svc_stopping(const mp_svc_t *svc)
{
    return atomic_load(&svc->stopping);
}

/* ---- dispatch ------------------------------------------------------------------ */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fill_request(mp_svc_req_t *req, mp_ep_stats_t *s, mp_msg_t *msg, int worker)
{
    memset(req, 0, sizeof(*req));
    req->op = s->ep->op;
    req->msg = msg;
    req->worker = worker;
    req->auth_sub = mp_msg_header(msg, MP_HDR_AUTH_SUB);
    req->auth_roles = mp_msg_header(msg, MP_HDR_AUTH_ROLES);
    if (req->auth_roles == NULL)
        req->auth_roles = "";
    req->log.request_id = mp_msg_header(msg, MP_HDR_REQUEST_ID);
    const char *tp = mp_msg_header(msg, MP_HDR_TRACEPARENT);
    if (tp && strlen(tp) == 55) {
        memcpy(req->trace_id, tp + 3, 32);
        req->trace_id[32] = '\0';
        req->log.trace_id = req->trace_id;
    }
    const char *deadline = mp_msg_header(msg, MP_HDR_DEADLINE);
    req->ctx = (mp_bus_ctx_t){.request_id = req->log.request_id,
                              .traceparent = tp,
                              .auth_sub = req->auth_sub,
                              .auth_roles = req->auth_roles,
                              .deadline_ms = deadline ? strtoll(deadline, NULL, 10) : 0};
}

/* Decodes the body into req->input; answers 400 itself when it cannot. */
static bool decode_body(mp_svc_req_t *req)
{
    size_t len = mp_msg_len(req->msg);
    if (len == 0) {
        req->input = json_object();
        return true;
    }
    json_t *v = NULL;
    if (mp_json_parse(&v, mp_msg_data(req->msg), len) != MP_OK) {
        char detail[300];
        snprintf(detail, sizeof(detail), "malformed JSON: %s", mp_err_get());
        mp_svc_reply_problem(req, 400, detail, NULL);
        return false;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        mp_svc_reply_problem(req, 400, "the request body must be a JSON object", NULL);
        return false;
    }
    req->input = v;
    return true;
}

static void answer_error(mp_svc_req_t *req, mp_status_t st)
{
    int http = mp_status_http(st);
    if (http >= 500) {
        mp_log_kv(MP_LOG_ERROR, &req->log, "handler failed", "subject", mp_msg_subject(req->msg), "status",
                  mp_status_name(st), "error", mp_err_get(), NULL);
        mp_svc_reply_problem(req, http,
                             http == 503 ? "a dependency is unavailable, try again shortly"
                                         : "the service could not complete the request",
                             NULL);
    } else {
        mp_svc_reply_problem(req, http, *mp_err_get() ? mp_err_get() : mp_status_str(st), NULL);
    }
}

static void record(mp_ep_stats_t *s, mp_svc_req_t *req, int64_t ns)
{
    char code[12];
    atomic_fetch_add(&s->requests, 1);
    atomic_fetch_add(&s->nanos, (uint64_t)ns);
    if (req->status >= 500) {
        atomic_fetch_add(&s->errors, 1);
        pthread_mutex_lock(&s->mu);
        snprintf(s->last_error, sizeof(s->last_error), "%d %s", req->status, mp_http_reason(req->status));
        pthread_mutex_unlock(&s->mu);
    }
    snprintf(code, sizeof(code), "%d", req->status ? req->status : 0);
    mp_metric_add(m_requests, MP_LABELS(s->subject, code), 1);
    mp_series_observe(s->duration, (double)ns / 1e9);
}

static void on_endpoint(void *arg, mp_msg_t *msg, int worker)
{
    mp_ep_stats_t *s = arg;
    mp_svc_t *svc = s->svc;
    mp_svc_req_t req;
    int64_t t0 = mono_ns();

    fill_request(&req, s, msg, worker);
    req.svc = svc;
    mp_err_clear();
    if ((s->ep->flags & MP_EP_RAW) || decode_body(&req)) {
        mp_db_deadline(req.ctx.deadline_ms); /* a statement outliving its caller is cancelled */
        mp_status_t st = s->ep->handler(&req);
        mp_db_deadline(0);
        if (!req.replied)
            answer_error(&req, st == MP_OK ? mp_err_set(MP_EINTERNAL, "handler returned without replying") : st);
    }
    record(s, &req, mono_ns() - t0);
    json_decref(req.input);
    for (size_t i = 0; i < req.nhdrs; i++) {
        if (req.hdr_store[i]) {
            free((char *)req.hdrs[i].value);
            free(req.hdr_store[i]);
        }
    }
}

mp_status_t mp_svc__subscribe(mp_svc_t *svc)
{
    mp_status_t st;
    m_requests = mp_metrics_counter("moonport_nats_requests_total", "NATS requests served, by subject and status",
                                    "subject,status");
    m_duration = mp_metrics_histogram("moonport_nats_request_duration_seconds",
                                      "Time spent serving NATS requests, by subject", "subject");
    mp_bus_server_opts_t o = {.workers = svc->workers,
                              .fibers = svc->fibers,
                              .nats_loop = svc->nats_loop,
                              .max_queue = (size_t)svc->max_queue,
                              .name = svc->def->name};
    if ((st = mp_bus_server_create(&svc->server, svc->bus, &o)) != MP_OK)
        return st;
    for (size_t i = 0; i < svc->nstats; i++) {
        mp_ep_stats_t *s = &svc->stats[i];
        s->duration = mp_metric_series(m_duration, MP_LABELS(s->subject));
        if ((st = mp_bus_server_add(svc->server, s->subject, svc->def->name, on_endpoint, s)) != MP_OK)
            return st;
    }
    if ((st = mp_svc__discovery_subscribe(svc)) != MP_OK)
        return st;
    return mp_bus_server_start(svc->server);
}
