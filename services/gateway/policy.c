/*
 * policy.c: the per-route policies on the request path that come before
 * the call: load shedding (a cap on requests in flight) and rate limits.
 *
 * Shedding: each route counts its requests in flight across every loop
 * thread (one atomic); past its cap the request gets 503 with Retry-After at
 * once instead of queueing without bound. The slot is given back when the
 * request is disposed, whatever happened to it.
 *
 * Rate limits: the route group's token bucket, keyed by the verified user
 * (or, for anonymous callers and `key: ip` groups, the client address,
 * see clientip.h). The decision's RateLimit-* headers go on req->res, so
 * every response of a limited route carries them; a refusal is 429 with
 * Retry-After.
 */
#include <stdio.h>
#include <string.h>
#include "mp/log.h"
#include "gateway.h"

int gw_policy_admit(gw_req_t *gr)
{
    gw_route_policy_t *p = (gw_route_policy_t *)gr->pol;
    if (atomic_fetch_add(&p->inflight, 1) >= p->max_inflight) {
        atomic_fetch_sub(&p->inflight, 1);
        mp_series_add(p->m_shed, 1);
        h2o_add_header(&gr->req->pool, &gr->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        gw_proxy_fail(gr, 503, "the gateway is at its limit of requests in flight for this route");
        return 0;
    }
    gr->holds_slot = 1;
    return 1;
}

static void add_num_header(h2o_req_t *req, const char *name, size_t name_len, long v)
{
    /* every response of a limited route carries three of these: digits by hand, straight into the pool */
    char digits[24], *buf = h2o_mem_alloc_pool(&req->pool, sizeof(digits));
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    size_t n = 0, len = 0;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = digits[--n];
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 0, NULL, buf, len);
}

/* Applies a decision: headers always, 429 when refused. Returns 1 when the request may go on. */
static int apply(gw_req_t *gr, const gw_rl_result_t *res)
{
    h2o_req_t *req = gr->req;
    add_num_header(req, H2O_STRLIT("ratelimit-limit"), res->limit);
    add_num_header(req, H2O_STRLIT("ratelimit-remaining"), res->remaining);
    add_num_header(req, H2O_STRLIT("ratelimit-reset"), res->reset_s);
    if (res->allowed)
        return 1;
    mp_series_add(gr->pol->m_limited, 1);
    char detail[120];
    snprintf(detail, sizeof(detail), "too many requests; try again in %ld second%s", res->retry_after_s,
             res->retry_after_s == 1 ? "" : "s");
    add_num_header(req, H2O_STRLIT("retry-after"), res->retry_after_s);
    gw_proxy_fail(gr, 429, detail);
    return 0;
}

static void on_decision(void *arg, const gw_rl_result_t *res)
{
    gw_req_t *gr = arg;
    gr->limit_wait = NULL;
    if (gr->gone)
        return;
    if (apply(gr, res)) {
        if (gr->after_limit)
            gr->after_limit(gr);
        else
            gw_proxy_after_limit(gr);
    }
}

int gw_policy_rate_limit(gw_req_t *gr)
{
    const gw_rl_policy_t *lim = gr->pol->limit;
    if (lim == NULL)
        return 1;
    char key[300];
    if (lim->key == GW_RL_KEY_USER && gr->authenticated) {
        size_t n = strlen(gr->claims.sub); /* < sizeof(claims.sub): fits */
        memcpy(key, "u:", 2);
        memcpy(key + 2, gr->claims.sub, n + 1);
    } else {
        h2o_req_t *req = gr->req;
        gw_t *gw = gr->th->gw;
        struct sockaddr_storage ss;
        socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
        ssize_t xff = gw->ntrusted ? h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-forwarded-for"), -1) : -1;
        char ip[64];
        gw_client_ip(ip, sizeof(ip), len ? (struct sockaddr *)&ss : NULL,
                     xff >= 0 ? req->headers.entries[xff].value.base : NULL,
                     xff >= 0 ? req->headers.entries[xff].value.len : 0, gw->trusted_proxies, gw->ntrusted);
        snprintf(key, sizeof(key), "i:%s", ip);
    }
    gw_rl_result_t res;
    if (!gw_limiter_check(&res, &gr->limit_wait, gr->th->limiter, lim, key, on_decision, gr))
        return 0; /* Redis decides; on_decision continues */
    return apply(gr, &res);
}
