/*
 * serve.c: start-up, signals and drain for `moonport serve`, `moonport
 * migrate`, service subcommands and platform tools (see mp/serve.h).
 *
 * Signals are blocked in every thread (they inherit the main thread's mask)
 * and taken synchronously with sigtimedwait() on the main thread, so no
 * handler ever runs in the middle of library code.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mp/admin.h"
#include "mp/alloc.h"
#include "mp/serve.h"
#include "service_int.h"

/* characters a NATS subject token may hold that are safe in an inbox prefix */
#define SUBJECT_TOKEN_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

typedef struct settings {
    const char *nats_url, *nats_user, *nats_creds, *nats_ca;
    char *nats_inbox; /* owned */
    bool send_asap;
    int stream_replicas;
    const char *pg_dsn;
    int pg_statement_timeout_ms;
    bool pg_prepare;
    const char *redis_url;
    int redis_pool;
} settings_t;

typedef struct process {
    mp_cfg_t *cfg;
    settings_t set;
    mp_svc_t *svcs; /* one per registered service */
    size_t nsvcs;
    mp_bus_t *bus;
    mp_http_server_t *admin;
    const char *admin_listen;
    int drain_ms;
    sigset_t sigs;
} process_t;

/* ---- options ------------------------------------------------------------------ */

const char *mp_serve_opt(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], name) == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return NULL;
}

const char *mp_serve_config_path(int argc, char **argv)
{
    const char *p = mp_serve_opt(argc, argv, "--config");
    if (p == NULL)
        p = getenv("MOONPORT_CONFIG");
    if (p == NULL && access("config/moonport.yaml", R_OK) == 0)
        p = "config/moonport.yaml";
    return p;
}

static bool role_chosen(const char *roles, const char *name)
{
    if (roles == NULL || *roles == '\0' || strcmp(roles, "all") == 0)
        return true;
    size_t n = strlen(name);
    for (const char *p = roles; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* Every name in --roles must be a registered service. */
static bool roles_known(const char *roles)
{
    if (roles == NULL || strcmp(roles, "all") == 0)
        return true;
    char *copy = mp_xstrdup(roles), *save = NULL;
    bool ok = true;
    for (char *r = strtok_r(copy, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        bool found = false;
        for (size_t i = 0; mp_services[i]; i++)
            found |= strcmp(mp_services[i]->name, r) == 0;
        if (!found) {
            fprintf(stderr, "moonport: unknown role \"%s\"; roles are:", r);
            for (size_t i = 0; mp_services[i]; i++)
                fprintf(stderr, " %s", mp_services[i]->name);
            fprintf(stderr, "\n");
            ok = false;
        }
    }
    free(copy);
    return ok;
}

/* ---- configuration ------------------------------------------------------------ */

static void read_service_settings(process_t *p, mp_svc_t *svc)
{
    char key[128];
    snprintf(key, sizeof(key), "services.%s.workers", svc->def->name);
    svc->workers = (int)mp_cfg_int(p->cfg, key, 4, 1, 256);
    snprintf(key, sizeof(key), "services.%s.fibers", svc->def->name);
    svc->fibers = (int)mp_cfg_int(p->cfg, key, 64, 0, 4096);
    snprintf(key, sizeof(key), "services.%s.nats_loop", svc->def->name);
    svc->nats_loop = mp_cfg_bool(p->cfg, key, true);
    snprintf(key, sizeof(key), "services.%s.max_queue", svc->def->name);
    svc->max_queue = (int)mp_cfg_int(p->cfg, key, 4096, 1, 1000000);
    snprintf(key, sizeof(key), "services.%s.postgres_dsn", svc->def->name);
    svc->postgres_dsn = mp_cfg_str(p->cfg, key, NULL);
    snprintf(key, sizeof(key), "services.%s.db_pool", svc->def->name);
    svc->db_pool = (int)mp_cfg_int(p->cfg, key, svc->workers, 1, 256);
}

/* Connection settings; secrets are read when connecting so they spend as little time in memory as possible. */
static void read_settings(process_t *p)
{
    settings_t *s = &p->set;
    s->nats_url = mp_cfg_str(p->cfg, "nats.url", "nats://127.0.0.1:4222");
    s->nats_user = mp_cfg_str(p->cfg, "nats.user", NULL);
    s->nats_creds = mp_cfg_str(p->cfg, "nats.creds_file", NULL);
    s->nats_ca = mp_cfg_str(p->cfg, "nats.ca_file", NULL);
    /* each role's replies under its own prefix, so the server can let a role read only its own replies */
    const char *inbox = mp_cfg_str(p->cfg, "nats.inbox_prefix", NULL);
    if (inbox == NULL && s->nats_user && s->nats_user[strspn(s->nats_user, SUBJECT_TOKEN_CHARS)] == '\0')
        s->nats_inbox = mp_xasprintf("_INBOX.%s", s->nats_user);
    else
        s->nats_inbox = mp_xstrdup(inbox ? inbox : "_INBOX");
    s->send_asap = mp_cfg_bool(p->cfg, "nats.send_asap", true);
    /* JetStream keeps at most 5 copies; more than the cluster's nodes is refused when the stream is made */
    s->stream_replicas = (int)mp_cfg_int(p->cfg, "nats.stream_replicas", 1, 1, 5);
    s->pg_dsn = mp_cfg_str(p->cfg, "postgres.dsn", "host=127.0.0.1 dbname=moonport user=moonport");
    s->pg_statement_timeout_ms = (int)mp_cfg_duration_ms(p->cfg, "postgres.statement_timeout", 5000, 0, 600000);
    /* off only behind a proxy that hands each transaction a different server session (pgbouncer pool_mode=transaction
     * before 1.21): prepared statements belong to a session */
    s->pg_prepare = mp_cfg_bool(p->cfg, "postgres.prepare", true);
    s->redis_url = mp_cfg_str(p->cfg, "redis.url", "redis://127.0.0.1:6379");
    s->redis_pool = (int)mp_cfg_int(p->cfg, "redis.pool_size", 0, 0, 256);
    /* read each secret once now so a literal secret or an unreadable file stops start-up with the rest; the
     * connections read them again when they connect */
    static const char *const secrets[] = {"nats.password", "postgres.password", "redis.password"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        mp_cfg_secret_free(mp_cfg_secret(p->cfg, secrets[i]));
}

/* Loads the configuration and every service's descriptor and section. Prints problems; returns false on any. */
static bool load(process_t *p, int argc, char **argv)
{
    const char *path = mp_serve_config_path(argc, argv);
    if (mp_cfg_load(&p->cfg, path) != MP_OK) {
        fprintf(stderr, "%s\n", mp_err_get());
        return false;
    }
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    mp_log_init("moonport", (mp_log_level_t)mp_cfg_enum(p->cfg, "log.level", "info", levels));
    p->admin_listen = mp_cfg_str(p->cfg, "admin.listen", "0.0.0.0:9090");
    p->drain_ms = (int)mp_cfg_duration_ms(p->cfg, "shutdown.drain", 10000, 0, 600000);
    read_settings(p);

    for (p->nsvcs = 0; mp_services[p->nsvcs]; p->nsvcs++)
        ;
    p->svcs = mp_xcalloc(p->nsvcs, sizeof(*p->svcs));
    for (size_t i = 0; i < p->nsvcs; i++) {
        mp_svc_t *svc = &p->svcs[i];
        svc->def = mp_services[i];
        svc->cfg = p->cfg;
        if (mp_svc__load_descriptor(svc) != MP_OK) {
            fprintf(stderr, "%s\n", mp_err_get());
            return false;
        }
        read_service_settings(p, svc);
        if (svc->def->configure)
            svc->def->configure(svc, p->cfg);
    }
    if (mp_cfg_check(p->cfg) != MP_OK) {
        fprintf(stderr, "%s\n", mp_err_get());
        return false;
    }
    return true;
}

/* ---- connections ----------------------------------------------------------------- */

/* `retry`: start even while NATS is away and connect in the background (a role waits for it; a tool should not) */
static mp_status_t connect_bus(process_t *p, const char *name, bool retry)
{
    char *password = mp_cfg_secret(p->cfg, "nats.password");
    mp_bus_opts_t o = {
        .url = p->set.nats_url,
        .name = name,
        .user = p->set.nats_user,
        .password = password,
        .creds_file = p->set.nats_creds,
        .ca_file = p->set.nats_ca,
        .inbox_prefix = p->set.nats_inbox,
        .send_asap = p->set.send_asap,
        .retry_on_failed_connect = retry,
        .stream_replicas = p->set.stream_replicas,
    };
    mp_status_t st = mp_bus_connect(&p->bus, &o);
    mp_cfg_secret_free(password);
    return st;
}

static mp_status_t check_nats(void *arg)
{
    process_t *p = arg;
    return mp_bus_ping(p->bus, 1000);
}

static mp_status_t check_db(void *arg)
{
    return mp_db_ping(((mp_svc_t *)arg)->db, 1000);
}

static mp_status_t check_cache(void *arg)
{
    return mp_cache_ping(((mp_svc_t *)arg)->cache, 1000);
}

static mp_status_t open_pools(process_t *p, mp_svc_t *svc)
{
    mp_status_t st;
    char app[64];
    snprintf(app, sizeof(app), "moonport-%s", svc->def->name);
    if (svc->def->needs & MP_NEEDS_DB) {
        char *password = mp_cfg_secret(p->cfg, "postgres.password");
        mp_db_opts_t o = {
            .dsn = svc->postgres_dsn ? svc->postgres_dsn : p->set.pg_dsn,
            .password = password,
            .pool_size = svc->db_pool,
            .statement_timeout_ms = p->set.pg_statement_timeout_ms,
            .app_name = app,
            .no_prepare = !p->set.pg_prepare,
            .settings = svc->def->db_settings,
        };
        st = mp_db_create(&svc->db, &o);
        mp_cfg_secret_free(password);
        if (st != MP_OK)
            return st;
        mp_db_metrics_export(svc->db, svc->def->name);
    }
    if (svc->def->needs & MP_NEEDS_CACHE) {
        char *password = mp_cfg_secret(p->cfg, "redis.password");
        mp_cache_opts_t o = {.url = p->set.redis_url,
                             .password = password,
                             .pool_size = p->set.redis_pool ? p->set.redis_pool : svc->workers};
        st = mp_cache_create(&svc->cache, &o);
        mp_cfg_secret_free(password);
        if (st != MP_OK)
            return st;
    }
    return MP_OK;
}

static bool signal_arrived(process_t *p)
{
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

/* Migrations must be in place before a service serves; Postgres may still be starting, so wait for it. */
static mp_status_t migrate_with_retry(process_t *p, mp_svc_t *svc)
{
    int64_t last_log = 0;
    for (;;) {
        mp_status_t st = mp_db_migrate(svc->db, svc->def->name, svc->def->files);
        if (st != MP_EUNAVAIL)
            return st;
        if (mp_now_ms() - last_log > 5000) {
            mp_log_kv(MP_LOG_WARN, NULL, "waiting for postgres", "service", svc->def->name, "error", mp_err_get(),
                      NULL);
            last_log = mp_now_ms();
        }
        if (p && signal_arrived(p))
            return mp_err_set(MP_ECANCELED, "stopped while waiting for postgres");
        usleep(500 * 1000);
    }
}

/* ---- roles ---------------------------------------------------------------------- */

static mp_status_t start_role(process_t *p, mp_svc_t *svc)
{
    mp_status_t st;
    char name[64];
    svc->bus = p->bus;
    if ((st = open_pools(p, svc)) != MP_OK)
        return st;
    if (svc->db) {
        snprintf(name, sizeof(name), "postgres:%s", svc->def->name);
        mp_health_register(name, check_db, svc);
        if ((st = migrate_with_retry(p, svc)) != MP_OK)
            return st;
    }
    if (svc->cache) {
        snprintf(name, sizeof(name), "redis:%s", svc->def->name);
        mp_health_register(name, check_cache, svc);
    }
    if (svc->def->init && (st = svc->def->init(svc)) != MP_OK)
        return st;
    if ((st = mp_svc__subscribe(svc)) != MP_OK)
        return st;
    if (svc->def->start && (st = svc->def->start(svc)) != MP_OK)
        return st;
    svc->running = 1;
    mp_log_kv(MP_LOG_INFO, NULL, "role started", "role", svc->def->name, "version", svc->version, NULL);
    return MP_OK;
}

static void stop_role(process_t *p, mp_svc_t *svc)
{
    if (!svc->running)
        return;
    atomic_store(&svc->stopping, 1);
    if (svc->def->stop)
        svc->def->stop(svc);
    mp_bus_server_drain(svc->server, p->drain_ms);
}

static void free_role(mp_svc_t *svc)
{
    if (svc->running && svc->def->fini)
        svc->def->fini(svc);
    mp_bus_server_destroy(svc->server);
    mp_db_destroy(svc->db);
    mp_cache_destroy(svc->cache);
    mp_yaml_destroy(svc->descriptor);
    for (size_t i = 0; i < svc->nstats; i++)
        pthread_mutex_destroy(&svc->stats[i].mu);
    free(svc->stats);
}

/* After a failed load(): what it read so far (descriptors, statistics, the configuration). */
static void unload(process_t *p)
{
    for (size_t i = 0; p->svcs && i < p->nsvcs; i++)
        free_role(&p->svcs[i]);
    free(p->svcs);
    free(p->set.nats_inbox);
    mp_cfg_destroy(p->cfg);
}

static void block_signals(process_t *p)
{
    sigemptyset(&p->sigs);
    sigaddset(&p->sigs, SIGTERM);
    sigaddset(&p->sigs, SIGINT);
    sigaddset(&p->sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &p->sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void wait_for_stop(process_t *p)
{
    for (;;) {
        int sig = sigwaitinfo(&p->sigs, NULL);
        if (sig == SIGHUP) {
            mp_log(MP_LOG_INFO, NULL, "SIGHUP: reloading");
            for (size_t i = 0; i < p->nsvcs; i++)
                if (p->svcs[i].running && p->svcs[i].def->reload)
                    p->svcs[i].def->reload(&p->svcs[i]);
        } else if (sig == SIGTERM || sig == SIGINT) {
            mp_log(MP_LOG_INFO, NULL, "%s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
    }
}

static void teardown(process_t *p)
{
    for (size_t i = p->nsvcs; i-- > 0;)
        free_role(&p->svcs[i]);
    mp_bus_destroy(p->bus);
    free(p->svcs);
    free(p->set.nats_inbox);
    mp_cfg_destroy(p->cfg);
}

int mp_serve_main(int argc, char **argv)
{
    process_t p = {0};
    const char *roles = mp_serve_opt(argc, argv, "--roles");
    int rc = 0;

    block_signals(&p);
    if (!roles_known(roles) || !load(&p, argc, argv)) {
        unload(&p);
        return 2;
    }
    if (connect_bus(&p, "moonport", true) != MP_OK) {
        mp_log_kv(MP_LOG_FATAL, NULL, "cannot use nats", "error", mp_err_get(), NULL);
        teardown(&p);
        return 1;
    }
    mp_health_register("nats", check_nats, &p);
    /* the admin port comes up first so probes can watch start-up (readyz stays 503 until roles are up) */
    if (mp_admin_start(&p.admin, p.admin_listen) != MP_OK) {
        mp_log_kv(MP_LOG_FATAL, NULL, "cannot start the admin port", "error", mp_err_get(), NULL);
        teardown(&p);
        return 1;
    }
    /* inner roles first, edge roles (public traffic) last, so nothing is let in before it can be served */
    for (int edge = 0; edge < 2; edge++) {
        for (size_t i = 0; i < p.nsvcs && rc == 0; i++) {
            mp_svc_t *svc = &p.svcs[i];
            if (!role_chosen(roles, svc->def->name) || !!(svc->def->needs & MP_EDGE) != edge)
                continue;
            mp_status_t st = start_role(&p, svc);
            if (st != MP_OK) {
                mp_log_kv(MP_LOG_FATAL, NULL, "role failed to start", "role", svc->def->name, "error", mp_err_get(),
                          NULL);
                /* a role that refuses its files (routes, specs) is a configuration error, like those load() finds */
                if (st == MP_EINVAL)
                    fprintf(stderr, "%s\n", mp_err_get());
                rc = st == MP_EINVAL ? 2 : 1;
            }
        }
    }
    if (rc == 0) {
        mp_admin_set_started();
        mp_log_kv(MP_LOG_INFO, NULL, "moonport ready", "admin", p.admin_listen, "roles", roles ? roles : "all", NULL);
        wait_for_stop(&p);
    }
    mp_admin_set_draining();
    /* edge roles first, so no new work arrives while inner roles drain */
    for (int edge = 1; edge >= 0; edge--)
        for (size_t i = p.nsvcs; i-- > 0;)
            if (!!(p.svcs[i].def->needs & MP_EDGE) == edge)
                stop_role(&p, &p.svcs[i]);
    mp_http_server_stop(p.admin, 0);
    teardown(&p);
    mp_log(MP_LOG_INFO, NULL, "stopped");
    return rc;
}

int mp_migrate_main(int argc, char **argv)
{
    process_t p = {0};
    const char *roles = mp_serve_opt(argc, argv, "--roles");
    int rc = 0;
    if (!roles_known(roles) || !load(&p, argc, argv)) {
        unload(&p);
        return 2;
    }
    for (size_t i = 0; i < p.nsvcs && rc == 0; i++) {
        mp_svc_t *svc = &p.svcs[i];
        if (!role_chosen(roles, svc->def->name) || !(svc->def->needs & MP_NEEDS_DB))
            continue;
        if (open_pools(&p, svc) != MP_OK || mp_db_migrate(svc->db, svc->def->name, svc->def->files) != MP_OK) {
            fprintf(stderr, "moonport migrate: %s: %s\n", svc->def->name, mp_err_get());
            rc = 1;
        } else {
            printf("%s: migrations up to date\n", svc->def->name);
        }
    }
    teardown(&p);
    return rc;
}

int mp_serve_command(const mp_service_def_t *def, const mp_command_t *cmd, int argc, char **argv)
{
    process_t p = {0};
    int rc;
    if (cmd->offline)
        return cmd->run(NULL, argc, argv);
    if (!load(&p, argc, argv)) {
        unload(&p);
        return 2;
    }
    mp_svc_t *svc = NULL;
    for (size_t i = 0; i < p.nsvcs; i++)
        if (p.svcs[i].def == def)
            svc = &p.svcs[i];
    /* commands talk to the database directly and to other services over NATS when it is there */
    if (connect_bus(&p, "moonport-cli", true) != MP_OK || open_pools(&p, svc) != MP_OK ||
        (svc->db && migrate_with_retry(NULL, svc) != MP_OK)) {
        fprintf(stderr, "moonport: %s\n", mp_err_get());
        teardown(&p);
        return 1;
    }
    svc->bus = p.bus;
    if (def->init && def->init(svc) != MP_OK) {
        fprintf(stderr, "moonport: %s\n", mp_err_get());
        teardown(&p);
        return 1;
    }
    svc->running = 1; /* so fini runs */
    rc = cmd->run(svc, argc, argv);
    teardown(&p);
    return rc;
}

int mp_serve_tool(const char *name, mp_serve_tool_fn run, int argc, char **argv)
{
    process_t p = {0};
    char conn_name[64];
    if (!load(&p, argc, argv)) {
        unload(&p);
        return 2;
    }
    snprintf(conn_name, sizeof(conn_name), "moonport-%s", name);
    if (connect_bus(&p, conn_name, false) != MP_OK) {
        fprintf(stderr, "moonport %s: cannot reach NATS: %s\n", name, mp_err_get());
        teardown(&p);
        return 1;
    }
    mp_serve_schema_t *schemas = mp_xcalloc(p.nsvcs, sizeof(*schemas));
    size_t n = 0;
    for (size_t i = 0; i < p.nsvcs; i++) {
        mp_svc_t *svc = &p.svcs[i];
        if (svc->def->needs & MP_NEEDS_DB)
            schemas[n++] = (mp_serve_schema_t){svc->def->name, svc->postgres_dsn ? svc->postgres_dsn : p.set.pg_dsn};
    }
    mp_serve_tool_t tool = {.cfg = p.cfg, .bus = p.bus, .schemas = schemas, .nschemas = n};
    int rc = run(&tool, argc, argv);
    free(schemas);
    teardown(&p);
    return rc;
}
