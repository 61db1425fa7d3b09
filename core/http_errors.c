/*
 * http_errors.c: h2o's own error responses as problem details.
 *
 * A few errors are answered by h2o before any handler runs: a request body
 * over the server's ceiling (413), a malformed request line, headers or
 * chunked body (400), a request timeout. h2o sends them as text/plain from
 * the host's fallback path. This filter, registered there, turns each into
 * the problem+json every other error is (CONVENTIONS.md), with X-Request-Id
 * and nosniff, so a client parses one error format whatever refused it.
 */
#include <string.h>
#include "mp/buf.h"
#include "mp/http.h"
#include "mp/http_resp.h"
#include "mp/problem.h"
#include "mp/reqctx.h"

typedef struct problem_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
} problem_ostream_t;

/* Drops h2o's text and sends ours with the last call (h2o sends an inline error in one final call). */
static void send_problem(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    problem_ostream_t *o = (problem_ostream_t *)self;
    if (h2o_send_state_is_in_progress(state))
        h2o_ostream_send_next(&o->super, req, NULL, 0, state);
    else
        h2o_ostream_send_next(&o->super, req, &o->body, 1, state);
}

static const char *detail_of(int status)
{
    switch (status) {
    case 413:
        return "the request body is larger than this server accepts";
    case 408:
        return "the request was not received in time";
    default:
        return "the request is malformed";
    }
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    if (req->res.status >= 400) {
        ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
        mp_reqctx_t rc;
        mp_buf_t b = MP_BUF_INIT;
        mp_reqctx_init(&rc, i >= 0 ? req->headers.entries[i].value.base : NULL,
                       i >= 0 ? req->headers.entries[i].value.len : 0, NULL, 0);
        mp_problem_render(&b, req->res.status, detail_of(req->res.status), rc.request_id, NULL);
        problem_ostream_t *o = (problem_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = send_problem;
        o->body = h2o_strdup(&req->pool, b.base, b.len);
        mp_buf_dispose(&b);
        memset(&req->res.headers, 0, sizeof(req->res.headers));
        req->res.content_length = o->body.len;
        mp_http_common_headers(req, rc.request_id);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/problem+json"));
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void mp_http_problem_errors(h2o_hostconf_t *host)
{
    h2o_filter_t *f = h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->on_setup_ostream = on_setup_ostream;
}
