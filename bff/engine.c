/*
 * engine.c: the BFF engine as a whole: start-up validation, the newest good
 * script snapshot, hot reload and its admin page.
 *
 * A reload reads a new snapshot and builds a throwaway Lua state from it on
 * the reloading thread: only if every script loads is the snapshot
 * installed (a generation number bump). Loop threads notice the new
 * generation on their next request and switch between requests, so no
 * request ever runs on a half-loaded set. A broken edit leaves the last good
 * set serving and its error on GET /bff/scripts of the admin port.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include "mp/admin.h"
#include "mp/alloc.h"
#include "mp/log.h"
#include "bff_int.h"

bff_engine_t bff_engine;

static struct {
    pthread_mutex_t mu;
    char *last_error;
    int64_t last_at;
    uint64_t reloads, failures;
    pthread_t watcher;
    int watching;
    _Atomic int stop;
} rl = {.mu = PTHREAD_MUTEX_INITIALIZER};

void bff_metrics_init(void)
{
    bff_engine.m_requests = mp_metrics_counter("moonport_bff_requests_total",
                                               "BFF requests by client, route and status", "client,route,status");
    bff_engine.m_duration = mp_metrics_histogram("moonport_bff_request_duration_seconds",
                                                 "BFF request latency by client and route", "client,route");
    bff_engine.m_calls = mp_metrics_counter("moonport_bff_calls_total", "Service calls made by BFF scripts, by result",
                                            "client,subject,result");
    bff_engine.m_call_duration = mp_metrics_histogram("moonport_bff_call_duration_seconds",
                                                      "Service call latency seen by BFF scripts", "subject");
    bff_engine.m_reloads = mp_metrics_counter("moonport_bff_reloads_total", "Script reloads by result", "result");
}

bff_snapshot_t *bff_engine_snapshot(void)
{
    pthread_mutex_lock(&rl.mu);
    bff_snapshot_t *s = atomic_load(&bff_engine.snap);
    if (s)
        bff_snapshot_retain(s);
    pthread_mutex_unlock(&rl.mu);
    return s;
}

void bff_engine_install(bff_snapshot_t *snap)
{
    pthread_mutex_lock(&rl.mu);
    bff_snapshot_t *old = atomic_load(&bff_engine.snap);
    snap->generation = atomic_load(&bff_engine.generation) + 1;
    atomic_store(&bff_engine.snap, snap);
    atomic_store(&bff_engine.generation, snap->generation);
    pthread_mutex_unlock(&rl.mu);
    bff_snapshot_release(old);
}

void bff_engine_note_reload(const char *error)
{
    pthread_mutex_lock(&rl.mu);
    free(rl.last_error);
    rl.last_error = error ? mp_xstrdup(error) : NULL;
    rl.last_at = mp_now_ms();
    rl.reloads++;
    rl.failures += error != NULL;
    pthread_mutex_unlock(&rl.mu);
    if (bff_engine.m_reloads)
        mp_metric_add(bff_engine.m_reloads, MP_LABELS(error ? "error" : "ok"), 1);
}

/* Loads and validates the scripts; installs them when every one loads. */
static mp_status_t load_and_install(void)
{
    bff_snapshot_t *snap = NULL;
    bff_vm_t *check = NULL;
    mp_status_t st = bff_snapshot_load(&snap, bff_engine.dir);
    if (st == MP_OK)
        st = bff_vm_create(&check, snap, &bff_engine.limits, false);
    bff_vm_destroy(check);
    if (st != MP_OK) {
        bff_snapshot_release(snap);
        return st;
    }
    bff_engine_install(snap);
    return MP_OK;
}

void mp_bff_reload(void)
{
    if (load_and_install() != MP_OK) {
        mp_log_kv(MP_LOG_ERROR, NULL, "BFF script reload failed; the last good scripts keep serving", "error",
                  mp_err_get(), NULL);
        bff_engine_note_reload(mp_err_get());
        return;
    }
    mp_log_kv(MP_LOG_INFO, NULL, "BFF scripts reloaded", NULL);
    bff_engine_note_reload(NULL);
}

/* ---- the watcher: a cheap fingerprint of the tree every 200 ms ------------------------------- */

static void fingerprint_dir(uint64_t *h, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sb) != 0)
            continue;
        for (const char *p = path; *p; p++)
            *h = (*h ^ (unsigned char)*p) * 1099511628211ULL;
        *h ^= (uint64_t)sb.st_mtim.tv_sec * 1000000007ULL + (uint64_t)sb.st_mtim.tv_nsec + (uint64_t)sb.st_size;
        *h *= 1099511628211ULL;
        if (S_ISDIR(sb.st_mode) && depth < 6)
            fingerprint_dir(h, path, depth + 1);
    }
    closedir(d);
}

static uint64_t fingerprint(void)
{
    uint64_t h = 1469598103934665603ULL;
    fingerprint_dir(&h, bff_engine.dir, 0);
    return h;
}

static void *watch_main(void *arg)
{
    mp_log_set_thread_service("bff");
    uint64_t seen = fingerprint();
    while (!atomic_load(&rl.stop)) {
        usleep(200 * 1000);
        uint64_t now = fingerprint();
        if (now == seen)
            continue;
        /* editors save in steps: wait until the tree holds still for a moment */
        usleep(100 * 1000);
        uint64_t again = fingerprint();
        if (again != now)
            continue;
        seen = again;
        mp_bff_reload();
    }
    return NULL;
}

/* ---- the admin page ------------------------------------------------------------------------ */

static int scripts_page(void *arg, mp_buf_t *out, const char **ctype)
{
    bff_snapshot_t *s = bff_engine_snapshot();
    pthread_mutex_lock(&rl.mu);
    mp_buf_printf(out, "{\"generation\":%llu,\"reloads\":%llu,\"failed_reloads\":%llu,\"last_error\":",
                  (unsigned long long)(s ? s->generation : 0), (unsigned long long)rl.reloads,
                  (unsigned long long)rl.failures);
    if (rl.last_error) {
        mp_buf_puts(out, "\"");
        mp_buf_json_escape(out, rl.last_error, strlen(rl.last_error));
        mp_buf_puts(out, "\"");
    } else {
        mp_buf_puts(out, "null");
    }
    pthread_mutex_unlock(&rl.mu);
    mp_buf_puts(out, ",\"clients\":[");
    for (size_t i = 0; s && i < s->nclients; i++)
        mp_buf_printf(out, "%s\"%s\"", i ? "," : "", s->clients[i].name);
    mp_buf_puts(out, "],\"files\":[");
    for (size_t i = 0; s && i < s->nfiles; i++)
        mp_buf_printf(out, "%s\"%s\"", i ? "," : "", s->files[i].path);
    mp_buf_puts(out, "]}");
    bff_snapshot_release(s);
    *ctype = "application/json";
    return 200;
}

/* ---- init -------------------------------------------------------------------------------------- */

bool mp_bff_owns(const char *path, size_t len)
{
    return len >= 5 && memcmp(path, "/bff/", 5) == 0;
}

mp_status_t mp_bff_init(const mp_bff_opts_t *opts)
{
    bff_engine.opts = *opts;
    bff_engine.dir = mp_xstrdup(opts->scripts_dir ? opts->scripts_dir : "scripts/lua");
    bff_engine.limits.cpu_budget = opts->cpu_budget > 0 ? opts->cpu_budget : 10000000;
    bff_engine.limits.memory_limit = opts->memory_limit ? opts->memory_limit : 256u << 20;
    bff_engine.limits.request_alloc_limit = opts->request_alloc_limit ? opts->request_alloc_limit : 64u << 20;
    bff_metrics_init();
    mp_status_t st = load_and_install();
    if (st != MP_OK)
        return st;
    mp_admin_page("/bff/scripts", scripts_page, NULL);
    if (opts->hot_reload) {
        atomic_store(&rl.stop, 0);
        if (pthread_create(&rl.watcher, NULL, watch_main, NULL) == 0)
            rl.watching = 1;
    }
    return MP_OK;
}

void mp_bff_fini(void)
{
    if (rl.watching) {
        atomic_store(&rl.stop, 1);
        pthread_join(rl.watcher, NULL);
        rl.watching = 0;
    }
    bff_snapshot_t *s = atomic_load(&bff_engine.snap);
    atomic_store(&bff_engine.snap, NULL);
    bff_snapshot_release(s);
    free(bff_engine.dir);
    bff_engine.dir = NULL;
    pthread_mutex_lock(&rl.mu);
    free(rl.last_error);
    rl.last_error = NULL;
    pthread_mutex_unlock(&rl.mu);
}
