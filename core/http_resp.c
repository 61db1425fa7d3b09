/*
 * http_resp.c: response helpers for h2o handlers (see mp/http_resp.h).
 */
#include <string.h>
#include "mp/buf.h"
#include "mp/http_resp.h"
#include "mp/problem.h"

void mp_http_common_headers(h2o_req_t *req, const char *request_id)
{
    if (request_id)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                              h2o_strdup(&req->pool, request_id, SIZE_MAX).base, strlen(request_id));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
}

void mp_http_send(h2o_req_t *req, int status, const char *content_type, const void *body, size_t len,
                  const char *request_id)
{
    req->res.status = status;
    req->res.reason = mp_http_reason(status);
    mp_http_common_headers(req, request_id);
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    /* h2o_send_inline() leaves the length unknown (chunked on HTTP/1.1); we know it, and the gzip filter's
     * minimum size needs it */
    if (status != 204 && status != 304)
        req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void mp_http_problem(h2o_req_t *req, int status, const char *request_id, const char *detail, json_t *errors)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_problem_render(&b, status, detail, request_id, errors);
    mp_http_send(req, status, "application/problem+json", b.base, b.len, request_id);
    mp_buf_dispose(&b);
}

void mp_http_problem_from_status(h2o_req_t *req, mp_status_t st, const char *request_id, const char *detail)
{
    mp_http_problem(req, mp_status_http(st), request_id, detail ? detail : mp_status_str(st), NULL);
}

const char *mp_http_header(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}
