/*
 * auth.c: the gateway's bearer-token check (see gateway.h).
 *
 * A token signed with a key the gateway has not seen yet (Auth rotated its
 * key) parks the request on its loop thread while one JWKS refresh goes to
 * Auth over NATS; the answer resumes every parked request on that thread.
 * Refreshes are rate-limited process-wide, so forged kids cannot make the
 * gateway hammer Auth: past the limit an unknown kid is simply a 401.
 */
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mp/log.h"
#include "gateway.h"

#define KEY_REFRESH_MIN_INTERVAL_MS 1000

static void unauthorized(gw_req_t *gr, const char *detail)
{
    h2o_add_header_by_str(&gr->req->pool, &gr->req->res.headers, H2O_STRLIT("www-authenticate"), 0, NULL,
                          H2O_STRLIT("Bearer realm=\"moonport\""));
    gw_proxy_fail(gr, 401, detail);
}

static void on_jwks(void *arg, mp_status_t st, const mp_reply_t *reply)
{
    gw_thread_t *th = arg;
    th->key_refreshing = 0;
    if (st == MP_OK && reply->status == 200) {
        if (gw_keys_install(th->gw, reply->data, reply->len) != MP_OK)
            mp_log_kv(MP_LOG_ERROR, NULL, "auth served an unusable JWKS", "error", mp_err_get(), NULL);
    } else if (st != MP_ECANCELED) {
        mp_log_kv(MP_LOG_WARN, NULL, "JWKS refresh failed", "error", st == MP_OK ? "bad status" : mp_status_str(st),
                  NULL);
    }
    /* resume everyone who waited; a kid still unknown now gets its 401 */
    while (!h2o_linklist_is_empty(&th->key_waiters)) {
        gw_req_t *gr = H2O_STRUCT_FROM_MEMBER(gw_req_t, waiter, th->key_waiters.next);
        h2o_linklist_unlink(&gr->waiter);
        if (gw_auth_check(gr)) {
            if (gr->cont)
                gr->cont(gr);
            else
                gw_proxy_continue(gr);
        }
    }
}

/* Parks `gr` until a key refresh answers; starts one unless one is in flight. Returns 0 when parked. */
static int park_for_keys(gw_req_t *gr)
{
    gw_thread_t *th = gr->th;
    if (!th->key_refreshing) {
        if (!gw_keys_may_refresh(th->gw->keys, mp_now_ms(), KEY_REFRESH_MIN_INTERVAL_MS))
            return 1;
        mp_bus_call_t call = {.subject = "auth.v1.jwks",
                              .body = "{}",
                              .len = 2,
                              .timeout_ms = 2000,
                              .ctx = {.request_id = gr->rc.request_id, .traceparent = gr->rc.traceparent}};
        if (mp_bus_call_async(NULL, th->bl, &call, on_jwks, th) != MP_OK)
            return 1;
        th->key_refreshing = 1;
    }
    h2o_linklist_insert(&th->key_waiters, &gr->waiter);
    return 0;
}

static const char *bearer_token(h2o_req_t *req, size_t *len)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 8 || strncasecmp(v.base, "bearer ", 7) != 0)
        return "";
    const char *p = v.base + 7;
    size_t n = v.len - 7;
    while (n > 0 && *p == ' ')
        p++, n--;
    *len = n;
    return p;
}

static void join_roles(gw_req_t *gr)
{
    size_t n = 0;
    gr->roles[0] = '\0';
    for (size_t i = 0; i < gr->claims.nroles; i++) {
        size_t l = strlen(gr->claims.roles[i]);
        if (n + l + 2 > sizeof(gr->roles))
            break;
        if (n)
            gr->roles[n++] = ',';
        memcpy(gr->roles + n, gr->claims.roles[i], l + 1);
        n += l;
    }
}

static int has_role(const gw_req_t *gr, const char *role)
{
    for (size_t i = 0; i < gr->claims.nroles; i++)
        if (strcmp(gr->claims.roles[i], role) == 0)
            return 1;
    return 0;
}

int gw_auth_check(gw_req_t *gr)
{
    const gw_route_t *rt = gr->match.route;
    gw_t *gw = gr->th->gw;
    size_t len = 0;

    gr->authenticated = 0;
    if (rt->auth == GW_AUTH_NONE)
        return 1; /* public route: identity is neither checked nor forwarded */
    const char *token = bearer_token(gr->req, &len);
    if (token == NULL) {
        if (rt->auth == GW_AUTH_OPTIONAL)
            return 1;
        unauthorized(gr, "this route needs a bearer token");
        return 0;
    }
    if (len == 0) {
        unauthorized(gr, "the Authorization header must be \"Bearer <token>\"");
        return 0;
    }
    mp_jwks_t *keys = gw_keys_get(gw->keys);
    mp_jwt_verify_opts_t opts = {.issuer = gw->issuer, .audience = gw->audience, .leeway_s = gw->leeway_s};
    mp_status_t st = keys ? mp_jwt_verify(&gr->claims, keys, token, len, &opts) : MP_ENOTFOUND;
    mp_jwks_release(keys);
    if (st == MP_ENOTFOUND) {
        if (park_for_keys(gr) == 0)
            return 0;
        unauthorized(gr, "the token is signed with an unknown key");
        return 0;
    }
    if (st != MP_OK) {
        unauthorized(gr, mp_err_get());
        return 0;
    }
    if (gw_keys_revoked(gw->keys, gr->claims.sid, (int64_t)time(NULL))) {
        unauthorized(gr, "the session of this token was revoked");
        return 0;
    }
    if (rt->role && !has_role(gr, rt->role)) {
        gw_proxy_fail(gr, 403, "this route needs a role the caller does not have");
        return 0;
    }
    gr->authenticated = 1;
    join_roles(gr);
    return 1;
}
