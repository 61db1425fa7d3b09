/*
 * gateway.c: the gateway role: reads its settings and routes, keeps Auth's
 * keys and revocations current, and runs the public HTTP server whose loop
 * threads each own a bus loop for non-blocking NATS calls.
 *
 * Keys and revocations arrive three ways: a fetch at start and every 30 s
 * from a small sync thread (it may block: it is not a loop thread), a
 * refresh on an unknown kid (auth.c), and the revocation events Auth
 * publishes, which a plain subscription applies within milliseconds.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mp/alloc.h"
#include "mp/bus.h"
#include "mp/json.h"
#include "mp/log.h"
#include "mp/service.h"
#include "gateway.h"

#define SYNC_INTERVAL_MS 30000
#define KEYS_AT_START_MS 5000 /* how long start-up waits for auth's keys while auth is there but slow */

gw_t gw_state;

static struct {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, started;
    natsSubscription *revocations;
} sync_thread = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

mp_status_t gw_keys_install(gw_t *gw, const char *json, size_t len)
{
    mp_jwks_t *keys = NULL;
    mp_status_t st = mp_jwks_parse(&keys, json, len);
    if (st != MP_OK)
        return st;
    mp_log(MP_LOG_INFO, NULL, "installed %zu signing keys from auth", mp_jwks_count(keys));
    gw_keys_set(gw->keys, keys);
    return MP_OK;
}

/* {"session_id": "...", "until": 1700000000} from an event's data or a revocations list item */
static void apply_revocation(gw_t *gw, const json_t *item)
{
    const char *sid = mp_json_str(item, "session_id");
    json_t *until = json_object_get(item, "until");
    if (sid && json_is_integer(until))
        gw_keys_revoke(gw->keys, sid, json_integer_value(until));
}

static void on_revoked_event(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    json_t *ev = NULL;
    if (mp_json_parse(&ev, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg)) == MP_OK) {
        apply_revocation(closure, json_object_get(ev, "data"));
        json_decref(ev);
    }
    natsMsg_Destroy(msg);
}

/* Fetches the keys and the revocations once; returns the keys' outcome (MP_EUNAVAIL at once when no Auth runs). */
static mp_status_t sync_once(gw_t *gw)
{
    mp_msg_t *reply = NULL;
    mp_bus_call_t jwks = {.subject = "auth.v1.jwks", .body = "{}", .len = 2, .timeout_ms = 2000};
    mp_status_t st = mp_bus_request(&reply, gw->bus, &jwks);
    if (st == MP_OK && mp_msg_status(reply) != 200)
        st = mp_err_set(MP_EUNAVAIL, "auth answered %d", mp_msg_status(reply));
    if (st == MP_OK && (st = gw_keys_install(gw, mp_msg_data(reply), mp_msg_len(reply))) != MP_OK)
        mp_log_kv(MP_LOG_ERROR, NULL, "auth served an unusable JWKS", "error", mp_err_get(), NULL);
    mp_msg_destroy(reply);
    reply = NULL;

    mp_bus_call_t rev = {.subject = "auth.v1.revocations", .body = "{}", .len = 2, .timeout_ms = 2000};
    json_t *list = NULL;
    if (mp_bus_request(&reply, gw->bus, &rev) == MP_OK && mp_msg_status(reply) == 200 &&
        mp_json_parse(&list, mp_msg_data(reply), mp_msg_len(reply)) == MP_OK) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(list, "items"), i, item) apply_revocation(gw, item);
    }
    json_decref(list);
    mp_msg_destroy(reply);
    return st;
}

/* Before the listener opens: a gateway that took requests without Auth's keys would answer 401 to valid tokens
 * (only one loop thread at a time may ask Auth for them), as a freshly started replica did in every rolling
 * restart. With no Auth running at all it starts without them; the sync thread keeps asking every second. */
static void fetch_keys_first(gw_t *gw)
{
    int64_t until = mp_now_ms() + KEYS_AT_START_MS;
    mp_status_t st;
    while ((st = sync_once(gw)) != MP_OK && st != MP_EUNAVAIL && mp_now_ms() < until)
        usleep(100 * 1000);
    if (st != MP_OK)
        mp_log_kv(MP_LOG_WARN, NULL, "starting without auth's signing keys; tokens get 401 until they arrive", "error",
                  mp_err_get(), NULL);
}

static bool have_keys(gw_t *gw)
{
    mp_jwks_t *have = gw_keys_get(gw->keys);
    mp_jwks_release(have);
    return have != NULL;
}

static void *sync_main(void *arg)
{
    gw_t *gw = arg;
    mp_log_set_thread_service("gateway");
    pthread_mutex_lock(&sync_thread.mu);
    for (bool first = true; !sync_thread.stop; first = false) {
        pthread_mutex_unlock(&sync_thread.mu);
        if (!first || !have_keys(gw)) /* start-up fetched them a moment ago */
            sync_once(gw);
        pthread_mutex_lock(&sync_thread.mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        /* quickly at first (auth may still be starting), then every 30 s */
        until.tv_sec += have_keys(gw) ? SYNC_INTERVAL_MS / 1000 : 1;
        pthread_cond_timedwait(&sync_thread.cv, &sync_thread.mu, &until);
    }
    pthread_mutex_unlock(&sync_thread.mu);
    return NULL;
}

/* ---- HTTP server hooks ------------------------------------------------------------ */

static void configure_http(void *arg, h2o_globalconf_t *conf, h2o_hostconf_t *host)
{
    gw_t *gw = arg;
    /* the longer prefix first: h2o takes the first registered path that matches */
    h2o_compress_args_t args = {
        .min_size = gw->gzip.min_size, .gzip = {.quality = gw->gzip.level}, .brotli = {.quality = -1}};
    if (gw->bff_enabled) {
        h2o_pathconf_t *bpath = h2o_config_register_path(host, "/bff/", 0);
        h2o_handler_t *bh = h2o_create_handler(bpath, sizeof(*bh));
        bh->on_req = gw_bff_on_req;
        if (gw->gzip.enabled)
            h2o_compress_register(bpath, &args);
    }
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = gw_proxy_on_req;
    if (gw->gzip.enabled) /* h2o's filter: gzip when Accept-Encoding allows, for compressible types (JSON) of 200s */
        h2o_compress_register(path, &args);
}

static void on_thread_start(void *arg, mp_http_thread_t *t)
{
    gw_t *gw = arg;
    gw_thread_t *th = mp_xcalloc(1, sizeof(*th));
    th->gw = gw;
    h2o_linklist_init_anchor(&th->key_waiters);
    if (gw->token_cache)
        th->tokens = gw_tokcache_create(gw->token_cache);
    if (mp_bus_loop_create(&th->bl, gw->bus, &t->loop) != MP_OK ||
        gw_limiter_create(&th->limiter, &t->loop, &gw->limiter) != MP_OK) {
        mp_log_kv(MP_LOG_FATAL, NULL, "cannot create the loop's bus or redis connection", "error", mp_err_get(), NULL);
        abort();
    }
    if (gw->bff_enabled && mp_bff_thread_start(&th->bff, th->bl, &t->loop) != MP_OK) {
        mp_log_kv(MP_LOG_FATAL, NULL, "cannot start the BFF engine", "error", mp_err_get(), NULL);
        abort();
    }
    for (int i = 0; i < GW_RETRY_DELAYS; i++)
        h2o_timeout_init(
            &t->loop, &th->retry_delay[i],
            (uint64_t)(gw->retry.backoff_ms * (2 + i)) / 4 > 0 ? (uint64_t)(gw->retry.backoff_ms * (2 + i)) / 4 : 1);
    t->user = th;
}

/* A loop thread serves once its own NATS connection is up: before that every call would answer 503. */
static bool thread_ready(void *arg, mp_http_thread_t *t)
{
    gw_thread_t *th = t->user;
    return mp_bus_loop_ready(th->bl);
}

static void on_thread_stop(void *arg, mp_http_thread_t *t)
{
    gw_thread_t *th = t->user;
    mp_bff_thread_stop(th->bff);
    mp_bus_loop_destroy(th->bl);
    gw_limiter_destroy(th->limiter);
    gw_tokcache_destroy(th->tokens);
    mp_jwks_release(th->jwks);
    for (int i = 0; i < GW_RETRY_DELAYS; i++)
        h2o_timeout_dispose(&t->loop, &th->retry_delay[i]);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    free(th);
    t->user = NULL;
}

/* ---- the role ----------------------------------------------------------------------- */

static void gateway_configure(mp_svc_t *svc, mp_cfg_t *cfg)
{
    gw_t *gw = &gw_state;
    gw->listen = mp_cfg_str(cfg, "gateway.listen", "0.0.0.0:8080");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    gw->threads = (int)mp_cfg_int(cfg, "gateway.threads", cpus > 0 ? cpus : 2, 1, 256);
    gw->routes_file = mp_cfg_str(cfg, "gateway.routes_file", "config/routes.yaml");
    gw->idle_timeout_ms = (int)mp_cfg_duration_ms(cfg, "gateway.idle_timeout", 30000, 1000, 3600000);
    gw->tls_cert = mp_cfg_str(cfg, "gateway.tls.cert_file", NULL);
    gw->tls_key = mp_cfg_str(cfg, "gateway.tls.key_file", NULL);
    gw->issuer = mp_cfg_str(cfg, "jwt.issuer", "moonport");
    gw->audience = mp_cfg_str(cfg, "jwt.audience", "moonport-api");
    gw->leeway_s = (int)(mp_cfg_duration_ms(cfg, "jwt.leeway", 60000, 0, 60000) / 1000);
    gw->token_cache = (size_t)mp_cfg_int(cfg, "gateway.token_cache", 4096, 0, 10000000);
    gw->bff_enabled = mp_cfg_bool(cfg, "bff.enabled", true);
    gw->bff.scripts_dir = mp_cfg_str(cfg, "bff.scripts_dir", "scripts/lua");
    gw->bff.hot_reload = mp_cfg_bool(cfg, "bff.hot_reload", true);
    gw->bff.server_timing = mp_cfg_bool(cfg, "bff.server_timing", true);
    gw->bff.cpu_budget = mp_cfg_int(cfg, "bff.cpu_budget", 10000000, 100000, 10000000000LL);
    gw->bff.memory_limit = (size_t)mp_cfg_size(cfg, "bff.memory_limit", 256 << 20, 16 << 20, 1LL << 34);
    gw->bff.request_alloc_limit = (size_t)mp_cfg_size(cfg, "bff.request_alloc_limit", 64 << 20, 1 << 20, 1LL << 32);
    gw->bff_body_limit = (size_t)mp_cfg_size(cfg, "bff.body_limit", 1 << 20, 1024, 64 << 20);
    gw_settings_read(gw, cfg);
}

/* Routes and API specs, bound one to one; any mismatch is a configuration error (exit 2). */
static mp_status_t load_contract(gw_t *gw)
{
    mp_yaml_doc_t *doc = NULL;
    mp_status_t st = mp_yaml_load_file(&doc, gw->routes_file);
    if (st != MP_OK)
        return st == MP_EIO ? mp_err_set(MP_EINVAL, "%s", mp_err_get()) : st;
    st = gw_routes_load(&gw->routes, doc);
    mp_yaml_destroy(doc);
    if (st != MP_OK)
        return st;
    if (!gw->validate)
        return MP_OK;
    if ((st = gw_openapi_load(&gw->api, gw->specs_dir)) != MP_OK)
        return st == MP_EIO ? mp_err_set(MP_EINVAL, "%s", mp_err_get()) : st;
    if ((st = gw_openapi_bind(&gw->api, &gw->routes, gw->routes_file)) != MP_OK)
        return st;
    mp_log_kv(MP_LOG_INFO, NULL, "API specs loaded and bound to the routes", "specs", gw->specs_dir, NULL);
    return MP_OK;
}

static mp_status_t gateway_init(mp_svc_t *svc)
{
    gw_t *gw = &gw_state;
    mp_status_t st = load_contract(gw);
    if (st != MP_OK) {
        gw_openapi_dispose(&gw->api);
        gw_routes_dispose(&gw->routes);
        return st;
    }
    if (gw->bff_enabled && (st = mp_bff_init(&gw->bff)) != MP_OK) {
        gw_openapi_dispose(&gw->api);
        gw_routes_dispose(&gw->routes);
        return st;
    }
    gw->bus = mp_svc_bus(svc);
    gw->limiter.nthreads = gw->threads;
    gw->limiter.use_redis = gw->limiter.use_redis && gw->rate_limit;
    gw->redis_password = mp_cfg_secret(mp_svc_cfg(svc), "redis.password");
    gw->limiter.redis_password = gw->redis_password;
    gw_limiter_shared_init(&gw->limiter);
    gw_settings_bind(gw);
    gw->keys = gw_keys_create();
    gw->m_requests = mp_metrics_counter("moonport_http_requests_total", "HTTP requests answered by the gateway",
                                        "route,method,status");
    gw->m_duration = mp_metrics_histogram("moonport_http_request_duration_seconds",
                                          "Time from request to response at the gateway", "route");
    return MP_OK;
}

/* h2o's own ceiling on a request body. A body a little over a route's limit is read whole and refused by the route
 * with a 413 problem on a connection that stays usable; h2o cuts off only bodies twice the largest limit (also a
 * problem, http_errors.c, and the connection is closed without reading the rest). */
static size_t h2o_body_ceiling(const gw_t *gw)
{
    size_t most = (size_t)gw->routes.max_body;
    if (gw->bff_enabled && gw->bff_body_limit > most)
        most = gw->bff_body_limit;
    return 2 * most + 64 * 1024;
}

static mp_status_t gateway_start(mp_svc_t *svc)
{
    gw_t *gw = &gw_state;
    natsStatus ns = natsConnection_Subscribe(&sync_thread.revocations, mp_bus_conn(gw->bus),
                                             "events.auth.session_revoked", on_revoked_event, gw);
    if (ns != NATS_OK)
        return mp_bus__from_nats(ns);
    fetch_keys_first(gw);
    sync_thread.stop = 0;
    if (pthread_create(&sync_thread.tid, NULL, sync_main, gw) != 0)
        return mp_err_set(MP_ENOMEM, "cannot start the key sync thread");
    sync_thread.started = 1;
    mp_http_opts_t o = {
        .name = "gateway",
        .listen = gw->listen,
        .threads = gw->threads,
        .max_body = h2o_body_ceiling(gw),
        .idle_timeout_ms = gw->idle_timeout_ms,
        .tls_cert = gw->tls_cert,
        .tls_key = gw->tls_key,
        .configure = configure_http,
        .on_thread_start = on_thread_start,
        .on_thread_stop = on_thread_stop,
        .thread_ready = thread_ready,
        .arg = gw,
    };
    mp_status_t st = mp_http_server_start(&gw->http, &o);
    if (st == MP_OK)
        mp_log_kv(MP_LOG_INFO, NULL, "gateway listening", "listen", gw->listen, NULL);
    return st;
}

static void gateway_stop(mp_svc_t *svc)
{
    gw_t *gw = &gw_state;
    mp_http_server_stop(gw->http, 10000);
    gw->http = NULL;
    if (sync_thread.started) {
        pthread_mutex_lock(&sync_thread.mu);
        sync_thread.stop = 1;
        pthread_cond_signal(&sync_thread.cv);
        pthread_mutex_unlock(&sync_thread.mu);
        pthread_join(sync_thread.tid, NULL);
        sync_thread.started = 0;
    }
    natsSubscription_Unsubscribe(sync_thread.revocations);
}

static void gateway_fini(mp_svc_t *svc)
{
    gw_t *gw = &gw_state;
    natsSubscription_Destroy(sync_thread.revocations);
    sync_thread.revocations = NULL;
    gw_keys_destroy(gw->keys);
    gw->keys = NULL;
    gw_settings_dispose(gw);
    gw_openapi_dispose(&gw->api);
    gw_routes_dispose(&gw->routes);
    if (gw->bff_enabled)
        mp_bff_fini();
    mp_cfg_secret_free(gw->redis_password);
    gw->redis_password = NULL;
}

static void gateway_reload(mp_svc_t *svc)
{
    if (gw_state.bff_enabled)
        mp_bff_reload();
    if (gw_state.http && mp_http_server_reload_tls(gw_state.http) != MP_OK)
        mp_log_kv(MP_LOG_ERROR, NULL, "TLS reload failed; the old certificate keeps serving", "error", mp_err_get(),
                  NULL);
}

static int cmd_bff_test(mp_svc_t *svc, int argc, char **argv)
{
    return mp_bff_cmd_test(argc, argv);
}

static int cmd_bff_check(mp_svc_t *svc, int argc, char **argv)
{
    return mp_bff_cmd_check(argc, argv);
}

static int cmd_bff_record(mp_svc_t *svc, int argc, char **argv)
{
    return mp_bff_cmd_record(mp_svc_bus(svc), argc, argv);
}

static const mp_command_t gateway_commands[] = {
    {"bff test", "[DIR...]: run BFF script tests offline with fixtures (default: every client)", cmd_bff_test,
     .offline = true},
    {"bff check", "[DIR...]: load every BFF script and check its service calls against the services", cmd_bff_check,
     .offline = true},
    {"bff record", "--subject S --input JSON --out FILE: save a live service reply as a test fixture", cmd_bff_record},
    {NULL},
};

MP_SERVICE(gateway, .needs = MP_EDGE, .commands = gateway_commands, .configure = gateway_configure,
           .init = gateway_init, .start = gateway_start, .stop = gateway_stop, .fini = gateway_fini,
           .reload = gateway_reload);
