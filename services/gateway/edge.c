/*
 * edge.c: what every public request meets first, before routing: the
 * security headers every response carries, the limit on all request headers
 * together (431), and CORS (preflights answered here; allowed origins get
 * their headers on whatever response follows).
 *
 * Headers are put on req->res before anything is answered, so every later
 * response (a service's reply or a problem) carries them.
 *
 * h2o 2.2.5's own limits sit in front of this: an HTTP/1 request head over
 * about 400 KiB or with more than 100 headers is refused by h2o with a plain
 * 400 and the connection closed; everything below that reaches us and is
 * measured against gateway.max_header_size.
 */
#include <string.h>
#include "mp/http_resp.h"
#include "gateway.h"

static size_t headers_size(h2o_req_t *req)
{
    size_t n = 0;
    for (size_t i = 0; i != req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4; /* ": " and CRLF */
    return n;
}

/* The methods served at the request's path ("GET, DELETE"), or NULL when none. Pool memory. */
static const char *methods_at(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    gw_match_t m;
    char allow[64];
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    /* no route has the method OPTIONS, so a path that exists answers with every method it has */
    if (gw_routes_match(&m, &gr->th->gw->routes, H2O_STRLIT("OPTIONS"), req->path.base, path_len, allow,
                        sizeof(allow)) != GW_MATCH_BAD_METHOD)
        return NULL;
    return h2o_strdup(&req->pool, allow, SIZE_MAX).base;
}

int gw_edge_secure(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    gw_t *gw = gr->th->gw;

    if (gw->hsts && req->scheme == &H2O_URL_SCHEME_HTTPS)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL, gw->hsts,
                       strlen(gw->hsts));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL, H2O_STRLIT("DENY"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                          H2O_STRLIT("no-referrer"));
    if (headers_size(req) > gw->max_header_bytes) {
        gw_proxy_fail(gr, 431, "the request's headers are larger than the gateway accepts");
        return 0;
    }
    return 1;
}

int gw_edge_check(gw_req_t *gr)
{
    h2o_req_t *req = gr->req;
    gw_t *gw = gr->th->gw;

    if (!gw_edge_secure(gr))
        return 0;
    if (mp_cors_is_preflight(req)) {
        mp_cors_preflight(&gw->cors, req, methods_at(gr), gr->rc.request_id);
        gw_proxy_record(gr, req->res.status);
        return 0;
    }
    mp_cors_apply(&gw->cors, req);
    return 1;
}
