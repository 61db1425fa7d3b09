/*
 * bff_mount.c: the gateway's door to the Lua BFFs at /bff/<client>/...
 * A bearer token, when sent, is verified exactly as for REST routes
 * (including the wait for a key refresh on an unknown kid); the engine then
 * decides per route whether a caller is required. An invalid token is a 401
 * even on public BFF routes: a client that sends one should learn it is bad.
 * Every BFF request then takes a token from the rate-limit group `bff` (by
 * caller, or by address for anonymous ones) like any REST route.
 */
#include <string.h>
#include "mp/http.h"
#include "gateway.h"

static gw_route_t bff_route = {.method = "*", .path = "/bff/", .subject = "", .auth = GW_AUTH_OPTIONAL, .group = "bff"};

static void to_engine(gw_req_t *gr)
{
    mp_bff_caller_t caller = {gr->claims.sub, gr->roles};
    mp_bff_handle(gr->th->bff, gr->req, &gr->rc, gr->authenticated ? &caller : NULL);
}

/* the limit is keyed by the verified caller, so it comes after the token check */
static void after_auth(gw_req_t *gr)
{
    if (gw_policy_rate_limit(gr))
        to_engine(gr);
}

int gw_bff_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    gw_req_t *gr = gw_req_new(req);
    gr->cont = after_auth;
    gr->after_limit = to_engine;
    gr->match.route = &bff_route;
    gr->pol = &gr->th->gw->bff_policy;
    if (gr->th->bff == NULL) {
        gw_proxy_fail(gr, 404, "no BFF is configured");
        return 0;
    }
    if (!gw_edge_secure(gr))
        return 0;
    if (req->entity.base != NULL && req->entity.len > gr->th->gw->bff_body_limit) {
        gw_proxy_fail(gr, 413, "the request body is larger than the BFF accepts");
        return 0;
    }
    if (gw_auth_check(gr))
        after_auth(gr);
    return 0;
}
