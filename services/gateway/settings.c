/*
 * settings.c: the gateway's policy settings (docs/gateway.md lists every
 * one): read from gateway.* at configure time, then bound to the loaded
 * routes as one gw_route_policy_t per route and one breaker per service,
 * each with its metrics, so the request path only follows pointers.
 *
 * Rate-limit groups and per-service breakers are maps keyed by name; their
 * fields go through mp_cfg getters (so MOONPORT_GATEWAY_RATE_LIMITS_LOGIN_
 * RATE overrides a file value) and unknown fields are reported like any
 * unknown key.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/log.h"
#include "gateway.h"
#include "lease.h"

static const char *const default_origins = "http://localhost:5173,http://127.0.0.1:5173";

/* built-in limits for groups the configuration does not name; login and sign-up are far tighter than reads */
static const struct {
    const char *group, *rate;
    double burst;
    gw_rl_key_t key;
} builtin_limits[] = {
    {"default", "50/s", 100, GW_RL_KEY_USER},
    {"login", "10/m", 5, GW_RL_KEY_IP},
    {"auth", "30/m", 10, GW_RL_KEY_IP},
};

static const char *const limit_fields[] = {"rate", "burst", "key", "enabled", NULL};
static const char *const breaker_fields[] = {"window", "failure_ratio", "min_requests", "cooldown", "probes", NULL};

/* Every key under each entry of the map at `key` must be one of `fields`. */
static void check_fields(mp_cfg_t *cfg, const mp_yaml_node_t *map, const char *key, const char *const *fields)
{
    if (map == NULL)
        return;
    if (map->type != MP_YAML_MAP) {
        mp_cfg_error_at(cfg, map, "%s must be a map of names to settings", key);
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const mp_yaml_node_t *entry = map->kids[i];
        if (entry->type != MP_YAML_MAP) {
            mp_cfg_error_at(cfg, entry, "%s.%s must be a map of settings", key, map->keys[i]);
            continue;
        }
        for (size_t k = 0; k < entry->n; k++) {
            bool known = false;
            for (size_t f = 0; fields[f]; f++)
                known |= strcmp(fields[f], entry->keys[k]) == 0;
            if (!known)
                mp_cfg_error_at(cfg, entry->kids[k], "unknown key \"%s.%s.%s\"", key, map->keys[i], entry->keys[k]);
        }
    }
}

/* The built-in limits of `group` (those of "default" for a group without its own); false when it has none. */
static bool builtin_limit(const char *group, const char **rate, double *burst, gw_rl_key_t *kind)
{
    bool found = false;
    for (size_t i = 0; i < sizeof(builtin_limits) / sizeof(builtin_limits[0]); i++) {
        if (strcmp(builtin_limits[i].group, group) == 0 || (!found && i == 0)) {
            found = strcmp(builtin_limits[i].group, group) == 0;
            *rate = builtin_limits[i].rate;
            *burst = builtin_limits[i].burst;
            *kind = builtin_limits[i].key;
        }
    }
    return found;
}

static void set_args(gw_rl_policy_t *p)
{
    snprintf(p->rate_arg, sizeof(p->rate_arg), "%.17g", p->rate);
    snprintf(p->burst_arg, sizeof(p->burst_arg), "%.0f", p->burst);
}

static void read_limit(gw_rl_policy_t *p, mp_cfg_t *cfg, const char *group)
{
    char key[256];
    const char *rate_text;
    double burst;
    gw_rl_key_t kind;
    builtin_limit(group, &rate_text, &burst, &kind);
    p->group = group;
    snprintf(key, sizeof(key), "gateway.rate_limits.%s.rate", group);
    const char *rate = mp_cfg_str(cfg, key, rate_text);
    if (!gw_rl_parse_rate(&p->rate, rate)) {
        mp_cfg_error_at(cfg, mp_cfg_node(cfg, key), "%s: \"%s\" is not a rate like 10/s, 100/m or 1000/h", key, rate);
        gw_rl_parse_rate(&p->rate, rate_text);
    }
    snprintf(key, sizeof(key), "gateway.rate_limits.%s.burst", group);
    p->burst = (double)mp_cfg_int(cfg, key, (int64_t)burst, 1, 1000000000);
    snprintf(key, sizeof(key), "gateway.rate_limits.%s.key", group);
    static const char *const kinds[] = {"user", "ip", NULL};
    p->key = (gw_rl_key_t)mp_cfg_enum(cfg, key, kind == GW_RL_KEY_USER ? "user" : "ip", kinds);
    snprintf(key, sizeof(key), "gateway.rate_limits.%s.enabled", group);
    p->enabled = mp_cfg_bool(cfg, key, true);
    set_args(p);
}

static void read_breaker(gw_breaker_opts_t *o, mp_cfg_t *cfg, const char *prefix, const gw_breaker_opts_t *def)
{
    char key[256];
    snprintf(key, sizeof(key), "%s.window", prefix);
    o->window_ms = mp_cfg_duration_ms(cfg, key, def->window_ms, 1000, 120000);
    o->bucket_ms = 1000;
    snprintf(key, sizeof(key), "%s.failure_ratio", prefix);
    o->failure_ratio = mp_cfg_double(cfg, key, def->failure_ratio, 0.01, 1.0);
    snprintf(key, sizeof(key), "%s.min_requests", prefix);
    o->min_requests = (int)mp_cfg_int(cfg, key, def->min_requests, 1, 1000000);
    snprintf(key, sizeof(key), "%s.cooldown", prefix);
    o->cooldown_ms = mp_cfg_duration_ms(cfg, key, def->cooldown_ms, 100, 600000);
    snprintf(key, sizeof(key), "%s.probes", prefix);
    o->probes = (int)mp_cfg_int(cfg, key, def->probes, 1, 1000);
}

void gw_settings_read(gw_t *gw, mp_cfg_t *cfg)
{
    gw->specs_dir = mp_cfg_str(cfg, "gateway.specs_dir", "api-specs");
    gw->validate = mp_cfg_bool(cfg, "gateway.validation", true);
    gw->max_header_bytes = (size_t)mp_cfg_size(cfg, "gateway.max_header_size", 16 * 1024, 1024, 1024 * 1024);
    gw->max_inflight = (int)mp_cfg_int(cfg, "gateway.max_inflight", 1024, 1, 1000000);
    gw->hsts = mp_cfg_str(cfg, "gateway.tls.hsts", "max-age=31536000; includeSubDomains");
    if (gw->hsts && (*gw->hsts == '\0' || strcmp(gw->hsts, "off") == 0))
        gw->hsts = NULL;
    gw->gzip.enabled = mp_cfg_bool(cfg, "gateway.gzip.enabled", true);
    gw->gzip.level = (int)mp_cfg_int(cfg, "gateway.gzip.level", 1, 1, 9);
    gw->gzip.min_size = (size_t)mp_cfg_size(cfg, "gateway.gzip.min_size", 256, 0, 1 << 30);

    const char *const *origins = NULL;
    size_t norigins = mp_cfg_strv(cfg, "gateway.cors.origins", default_origins, &origins);
    int max_age = (int)(mp_cfg_duration_ms(cfg, "gateway.cors.max_age", 600000, 0, 86400000) / 1000);
    mp_cors_init(&gw->cors, origins, norigins, max_age);

    const char *const *proxies = NULL;
    size_t nproxies = mp_cfg_strv(cfg, "gateway.trusted_proxies", NULL, &proxies);
    if (nproxies > GW_MAX_CONFIGURED) {
        mp_cfg_error_at(cfg, mp_cfg_node(cfg, "gateway.trusted_proxies"), "gateway.trusted_proxies: at most %d blocks",
                        GW_MAX_CONFIGURED);
        nproxies = GW_MAX_CONFIGURED;
    }
    for (size_t i = 0; i < nproxies; i++) {
        if (gw_cidr_parse(&gw->trusted_proxies[gw->ntrusted], proxies[i]))
            gw->ntrusted++;
        else
            mp_cfg_error_at(cfg, mp_cfg_node(cfg, "gateway.trusted_proxies"),
                            "gateway.trusted_proxies: \"%s\" is not an address or CIDR block", proxies[i]);
    }

    gw->rate_limit = mp_cfg_bool(cfg, "gateway.rate_limit.enabled", true);
    gw->limiter.redis_url = mp_cfg_str(cfg, "redis.url", "redis://127.0.0.1:6379");
    gw->limiter.timeout_ms = (int)mp_cfg_duration_ms(cfg, "gateway.rate_limit.redis_timeout", 50, 1, 10000);
    gw->limiter.prefix = mp_cfg_str(cfg, "gateway.rate_limit.key_prefix", "mp:rl:");
    gw->limiter.use_redis = mp_cfg_bool(cfg, "gateway.rate_limit.redis", true);
    gw->limiter.local_max_keys = (size_t)mp_cfg_int(cfg, "gateway.rate_limit.local_max_keys", 100000, 1000, 100000000);
    gw->limiter.lease_ms = mp_cfg_duration_ms(cfg, "gateway.rate_limit.lease", 100, 0, 5000);
    const mp_yaml_node_t *groups = mp_cfg_node(cfg, "gateway.rate_limits");
    check_fields(cfg, groups, "gateway.rate_limits", limit_fields);
    size_t ngroups = groups && groups->type == MP_YAML_MAP ? groups->n : 0;
    if (ngroups > GW_MAX_CONFIGURED) {
        mp_cfg_error_at(cfg, groups, "gateway.rate_limits: at most %d groups", GW_MAX_CONFIGURED);
        ngroups = GW_MAX_CONFIGURED;
    }
    for (size_t i = 0; i < ngroups; i++)
        read_limit(&gw->conf_limits[gw->nconf_limits++], cfg, groups->keys[i]);

    gw->breakers = mp_cfg_bool(cfg, "gateway.circuit_breaker.enabled", true);
    gw_breaker_opts_t builtin = {
        .window_ms = 10000, .failure_ratio = 0.5, .min_requests = 20, .cooldown_ms = 5000, .probes = 3};
    read_breaker(&gw->breaker_defaults, cfg, "gateway.circuit_breaker", &builtin);
    const mp_yaml_node_t *per_service = mp_cfg_node(cfg, "gateway.circuit_breakers");
    check_fields(cfg, per_service, "gateway.circuit_breakers", breaker_fields);
    size_t nsvc = per_service && per_service->type == MP_YAML_MAP ? per_service->n : 0;
    if (nsvc > GW_MAX_CONFIGURED) {
        mp_cfg_error_at(cfg, per_service, "gateway.circuit_breakers: at most %d services", GW_MAX_CONFIGURED);
        nsvc = GW_MAX_CONFIGURED;
    }
    for (size_t i = 0; i < nsvc; i++) {
        char prefix[200];
        snprintf(prefix, sizeof(prefix), "gateway.circuit_breakers.%s", per_service->keys[i]);
        gw->breaker_overrides[i].name = per_service->keys[i];
        read_breaker(&gw->breaker_overrides[i].opts, cfg, prefix, &gw->breaker_defaults);
    }
    gw->nbreaker_overrides = nsvc;

    gw->retry.enabled = mp_cfg_bool(cfg, "gateway.retry.enabled", true);
    gw->retry.budget = mp_cfg_double(cfg, "gateway.retry.budget", 0.1, 0, 1);
    gw->retry.backoff_ms = (int)mp_cfg_duration_ms(cfg, "gateway.retry.backoff", 25, 1, 10000);
}

/* ---- binding to the routes ------------------------------------------------------------------------- */

static gw_rl_policy_t *limit_for(gw_t *gw, const char *group)
{
    for (size_t i = 0; i < gw->nlimits; i++)
        if (strcmp(gw->limits[i].group, group) == 0)
            return &gw->limits[i];
    return NULL;
}

static gw_service_t *service_for(gw_t *gw, const char *subject)
{
    size_t len = strcspn(subject, ".");
    for (size_t i = 0; i < gw->nservices; i++)
        if (strlen(gw->services[i].name) == len && strncmp(gw->services[i].name, subject, len) == 0)
            return &gw->services[i];
    gw_service_t *s = &gw->services[gw->nservices++];
    s->name = mp_xstrndup(subject, len);
    gw_breaker_opts_t o = gw->breaker_defaults;
    for (size_t i = 0; i < gw->nbreaker_overrides; i++)
        if (strcmp(gw->breaker_overrides[i].name, s->name) == 0)
            o = gw->breaker_overrides[i].opts;
    gw_breaker_init(&s->breaker, &o);
    mp_metric_t *state =
        mp_metrics_gauge("moonport_circuit_state", "Circuit per service: 0 closed, 1 open, 2 half-open", "service");
    mp_metric_t *trans = mp_metrics_counter("moonport_circuit_transitions_total",
                                            "Circuit state changes per service, by the state entered", "service,to");
    s->m_state = mp_metric_series(state, MP_LABELS(s->name));
    s->m_to[GW_CIRCUIT_CLOSED] = mp_metric_series(trans, MP_LABELS(s->name, "closed"));
    s->m_to[GW_CIRCUIT_OPEN] = mp_metric_series(trans, MP_LABELS(s->name, "open"));
    s->m_to[GW_CIRCUIT_HALF_OPEN] = mp_metric_series(trans, MP_LABELS(s->name, "half_open"));
    mp_series_set(
        mp_metric_series(mp_metrics_gauge("moonport_circuit_failure_ratio_threshold",
                                          "Share of failed calls in the window that opens the circuit", "service"),
                         MP_LABELS(s->name)),
        o.failure_ratio);
    mp_series_set(mp_metric_series(mp_metrics_gauge("moonport_circuit_min_requests",
                                                    "Calls in the window before the circuit may open", "service"),
                                   MP_LABELS(s->name)),
                  o.min_requests);
    mp_series_set(mp_metric_series(mp_metrics_gauge("moonport_circuit_cooldown_seconds",
                                                    "How long an open circuit refuses calls before probing", "service"),
                                   MP_LABELS(s->name)),
                  (double)o.cooldown_ms / 1000.0);
    return s;
}

static void on_collect(void *arg)
{
    gw_t *gw = arg;
    static mp_metric_t *inflight;
    if (inflight == NULL)
        inflight = mp_metrics_gauge("moonport_gateway_inflight", "Requests in flight per route", "route,method");
    for (size_t i = 0; i < gw->routes.n; i++)
        mp_series_set(mp_metric_series(inflight, MP_LABELS(gw->routes.items[i].path, gw->routes.items[i].method)),
                      atomic_load(&gw->policies[i].inflight));
    for (size_t i = 0; i < gw->nservices; i++)
        mp_series_set(gw->services[i].m_state, gw_breaker_state(&gw->services[i].breaker));
}

/* Adds the limits of a group the configuration does not name. */
static gw_rl_policy_t *add_limit(gw_t *gw, const char *group)
{
    gw_rl_policy_t lim = {0};
    const char *rate_text;
    gw_rl_key_t kind;
    bool own = builtin_limit(group, &rate_text, &lim.burst, &kind);
    gw_rl_policy_t *def = limit_for(gw, "default");
    if (!own && def) {
        lim = *def;
    } else {
        gw_rl_parse_rate(&lim.rate, rate_text);
        lim.key = kind;
        lim.enabled = true;
    }
    lim.group = group;
    set_args(&lim);
    gw->limits[gw->nlimits++] = lim; /* room for every route's group was made by gw_settings_bind() */
    return &gw->limits[gw->nlimits - 1];
}

/* The limits of `group`: as configured, else the built-in or `default` ones (added on first use). */
static gw_rl_policy_t *group_limit(gw_t *gw, const char *group)
{
    gw_rl_policy_t *lim = limit_for(gw, group);
    return lim ? lim : add_limit(gw, group);
}

void gw_settings_bind(gw_t *gw)
{
    mp_metric_t *rejected = mp_metrics_counter("moonport_gateway_rejected_total",
                                               "Requests the gateway answered itself, by policy", "route,reason");
    mp_metric_t *retries = mp_metrics_counter("moonport_gateway_retries_total",
                                              "Retried calls, and retries the budget refused", "route,outcome");
    mp_metric_t *decisions = mp_metrics_counter("moonport_ratelimit_decisions_total",
                                                "Rate-limit decisions per route group", "group,result");
    mp_metric_t *rate = mp_metrics_gauge("moonport_ratelimit_rate", "Tokens per second per route group", "group");
    mp_metric_t *burst = mp_metrics_gauge("moonport_ratelimit_burst", "Bucket size per route group", "group");
    mp_metric_t *info =
        mp_metrics_gauge("moonport_gateway_route_policy", "Each route's policies (value: max in flight)",
                         "route,method,group,service,timeout_ms,retry,validated");
    gw->policies = mp_xcalloc(gw->routes.n ? gw->routes.n : 1, sizeof(*gw->policies));
    gw->limits = mp_xcalloc(gw->nconf_limits + gw->routes.n + 2, sizeof(*gw->limits)); /* + `default`, `bff` */
    memcpy(gw->limits, gw->conf_limits, gw->nconf_limits * sizeof(*gw->limits));
    gw->nlimits = gw->nconf_limits;
    gw->services = mp_xcalloc(gw->routes.n ? gw->routes.n : 1, sizeof(*gw->services));
    for (size_t i = 0; i < gw->routes.n; i++) {
        const gw_route_t *rt = &gw->routes.items[i];
        gw_route_policy_t *p = &gw->policies[i];
        p->limit = group_limit(gw, rt->group);
        p->service = service_for(gw, rt->subject);
        p->max_inflight = rt->max_inflight ? rt->max_inflight : gw->max_inflight;
        bool get = strcmp(rt->method, "GET") == 0;
        p->retry_reads = gw->retry.enabled && rt->retry != 0 && get;
        p->retry_keyed_writes = gw->retry.enabled && rt->retry == 1 && !get;
        p->m_shed = mp_metric_series(rejected, MP_LABELS(rt->path, "shed"));
        p->m_limited = mp_metric_series(rejected, MP_LABELS(rt->path, "rate_limited"));
        p->m_invalid = mp_metric_series(rejected, MP_LABELS(rt->path, "invalid"));
        p->m_circuit_open = mp_metric_series(rejected, MP_LABELS(rt->path, "circuit_open"));
        p->m_retried = mp_metric_series(retries, MP_LABELS(rt->path, "sent"));
        p->m_retry_denied = mp_metric_series(retries, MP_LABELS(rt->path, "budget_exhausted"));
        char timeout[24];
        snprintf(timeout, sizeof(timeout), "%lld", (long long)rt->timeout_ms);
        mp_series_set(mp_metric_series(info, MP_LABELS(rt->path, rt->method, rt->group, p->service->name, timeout,
                                                       p->retry_reads || p->retry_keyed_writes ? "true" : "false",
                                                       gw->validate ? "true" : "false")),
                      p->max_inflight);
    }
    /* every BFF request, whatever its client and route, counts against the group `bff` */
    gw->bff_policy.limit = group_limit(gw, "bff");
    gw->bff_policy.m_limited = mp_metric_series(rejected, MP_LABELS("/bff/", "rate_limited"));
    for (size_t i = 0; i < gw->nlimits; i++) {
        gw_rl_policy_t *lim = &gw->limits[i];
        lim->m_allowed = mp_metric_series(decisions, MP_LABELS(lim->group, "allowed"));
        lim->m_limited = mp_metric_series(decisions, MP_LABELS(lim->group, "limited"));
        lim->lease_max = gw->limiter.lease_ms > 0 ? gw_lease_max(lim, gw->limiter.lease_ms) : 1;
        mp_series_set(mp_metric_series(rate, MP_LABELS(lim->group)), lim->enabled && gw->rate_limit ? lim->rate : 0);
        mp_series_set(mp_metric_series(burst, MP_LABELS(lim->group)), lim->burst);
    }
    for (size_t i = 0; i < gw->routes.n; i++)
        if (!gw->rate_limit || !gw->policies[i].limit->enabled)
            gw->policies[i].limit = NULL;
    if (!gw->rate_limit || !gw->bff_policy.limit->enabled)
        gw->bff_policy.limit = NULL;
    mp_metrics_on_collect(on_collect, gw);
}

void gw_service_report(gw_service_t *svc, const gw_breaker_event_t *ev)
{
    static const char *const names[] = {"closed", "open", "half-open"};
    if (!ev->changed)
        return;
    mp_series_set(svc->m_state, ev->to);
    mp_series_add(svc->m_to[ev->to], 1);
    char ratio[32] = "", calls[16] = "";
    if (ev->to == GW_CIRCUIT_OPEN && ev->calls) {
        snprintf(ratio, sizeof(ratio), "%.2f", ev->ratio);
        snprintf(calls, sizeof(calls), "%u", ev->calls);
    }
    mp_log_kv(ev->to == GW_CIRCUIT_OPEN ? MP_LOG_WARN : MP_LOG_INFO, NULL, "circuit state changed", "service",
              svc->name, "from", names[ev->from], "to", names[ev->to], "failure_ratio", ratio[0] ? ratio : NULL,
              "calls", calls[0] ? calls : NULL, NULL);
}

void gw_settings_dispose(gw_t *gw)
{
    free(gw->limits);
    gw->limits = NULL;
    gw->nlimits = 0;
    for (size_t i = 0; i < gw->nservices; i++) {
        free(gw->services[i].name);
        gw_breaker_dispose(&gw->services[i].breaker);
    }
    free(gw->services);
    gw->services = NULL;
    gw->nservices = 0;
    free(gw->policies);
    gw->policies = NULL;
    gw_limiter_shared_dispose(&gw->limiter);
}
