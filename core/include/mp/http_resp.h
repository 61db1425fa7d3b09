/*
 * mp/http_resp.h: sending responses from h2o handlers: JSON, problem+json,
 * and the headers every moonport response carries (X-Request-Id,
 * X-Content-Type-Options). Loop thread only (they touch the h2o_req_t).
 */
#ifndef MP_HTTP_RESP_H
#define MP_HTTP_RESP_H

#include <stddef.h>
#include <h2o.h>
#include <jansson.h>
#include "mp/status.h"

/** Adds the headers every response carries. Called by the send functions below; exported for handlers that
 *  stream. */
void mp_http_common_headers(h2o_req_t *req, const char *request_id);

/** Sends `len` bytes (copied into the request's pool) with `content_type` (NULL: none) and `status`. */
void mp_http_send(h2o_req_t *req, int status, const char *content_type, const void *body, size_t len,
                  const char *request_id);

/** Sends a problem+json response. `errors` is a borrowed JSON array of {pointer, detail} or NULL. */
void mp_http_problem(h2o_req_t *req, int status, const char *request_id, const char *detail, json_t *errors);

/** Sends the problem a status maps to, with `detail` (NULL: the status's message). The one place a status becomes an
 *  HTTP error. */
void mp_http_problem_from_status(h2o_req_t *req, mp_status_t st, const char *request_id, const char *detail);

/** Finds a request header (case-insensitive name); returns its value and sets *len, or NULL. Borrowed from req. */
const char *mp_http_header(h2o_req_t *req, const char *name, size_t *len);

#endif
