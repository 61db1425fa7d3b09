/*
 * cors.c: CORS answers for browser clients (see mp/cors.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/cors.h"
#include "mp/http_resp.h"

void mp_cors_init(mp_cors_t *c, const char *const *origins, size_t n, int max_age_s)
{
    c->origins = origins;
    c->n = n;
    snprintf(c->max_age, sizeof(c->max_age), "%d", max_age_s > 0 ? max_age_s : 0);
}

bool mp_cors_allowed(const mp_cors_t *c, const char *origin, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->origins[i]) == len && strncasecmp(c->origins[i], origin, len) == 0)
            return true;
    return false;
}

/* h2o 2.2.5 has no token for Origin */
static h2o_iovec_t origin_of(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

bool mp_cors_is_preflight(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && origin_of(req).base != NULL &&
           h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) >= 0;
}

static void allow_origin(h2o_req_t *req, h2o_iovec_t origin)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   h2o_strdup(&req->pool, origin.base, origin.len).base, origin.len);
}

void mp_cors_apply(const mp_cors_t *c, h2o_req_t *req)
{
    /* the answer depends on the Origin: caches must key on it, even when this one sent none */
    h2o_set_header_token(&req->pool, &req->res.headers, H2O_TOKEN_VARY, H2O_STRLIT("Origin"));
    h2o_iovec_t origin = origin_of(req);
    if (origin.base == NULL || !mp_cors_allowed(c, origin.base, origin.len))
        return;
    allow_origin(req, origin);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT(MP_CORS_EXPOSE_HEADERS));
}

void mp_cors_preflight(const mp_cors_t *c, h2o_req_t *req, const char *allow_methods, const char *request_id)
{
    h2o_iovec_t origin = origin_of(req);
    h2o_set_header_token(&req->pool, &req->res.headers, H2O_TOKEN_VARY, H2O_STRLIT("Origin"));
    if (!mp_cors_allowed(c, origin.base, origin.len)) {
        mp_http_problem(req, 403, request_id, "this origin may not call the API from a browser", NULL);
        return;
    }
    allow_origin(req, origin);
    if (allow_methods == NULL) {
        mp_http_problem(req, 404, request_id, "no route matches this path", NULL);
        return;
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          h2o_strdup(&req->pool, allow_methods, SIZE_MAX).base, strlen(allow_methods));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT(MP_CORS_ALLOW_HEADERS));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL, c->max_age,
                          strlen(c->max_age));
    mp_http_send(req, 204, NULL, "", 0, request_id);
}
