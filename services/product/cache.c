/*
 * cache.c: one product's JSON in Redis (`product:<id>`, with a TTL), read
 * through from Postgres, and invalidated by every write before it answers.
 *
 * Deleting the key alone leaves a race: a reader that fetched version 6
 * from Postgres just before a write committed version 7 could store 6 after
 * the write's DEL, and serve it until the TTL. So a write also raises a
 * fence, `product:<id>:fence` = the new version (kept monotonic), and a
 * reader stores its copy only when its version is not below the fence; both
 * steps are Lua scripts, atomic in Redis.
 *
 * Redis is a cache only: when it is down, reads go to Postgres and writes
 * cannot invalidate (the entry may be stale until its TTL). Both are counted
 * in a metric on every failure, but logged at most every 10 s each (with how
 * many were left out): an outage would otherwise write a line per request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/bus.h"
#include "mp/log.h"
#include "mp/metrics.h"
#include "product_int.h"

static int cache_ttl_s = 60;
static mp_series_t *m_hit, *m_miss, *m_unavailable, *m_invalidate_failed;
static mp_log_limiter_t read_warnings, invalidate_errors;

/* KEYS: entry, fence. ARGV: json, version, ttl. Stores unless a newer version fenced this one off. */
static const char fill_script[] = "local f = redis.call('GET', KEYS[2]) "
                                  "if f and tonumber(f) > tonumber(ARGV[2]) then return 0 end "
                                  "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) return 1";

/* KEYS: entry, fence. ARGV: version, fence ttl. Raises the fence (never lowers it) and drops the entry. */
static const char invalidate_script[] = "local f = redis.call('GET', KEYS[2]) "
                                        "if not f or tonumber(f) < tonumber(ARGV[1]) then "
                                        "redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) "
                                        "else redis.call('EXPIRE', KEYS[2], ARGV[2]) end "
                                        "redis.call('DEL', KEYS[1]) return 1";

void product_cache_configure(mp_cfg_t *cfg)
{
    cache_ttl_s = (int)(mp_cfg_duration_ms(cfg, "product.cache_ttl", 60000, 1000, 86400000) / 1000);
}

void product_cache_init(void)
{
    mp_metric_t *m = mp_metrics_counter("moonport_product_cache_total",
                                        "Product cache lookups and invalidations, by result", "result");
    m_hit = mp_metric_series(m, MP_LABELS("hit"));
    m_miss = mp_metric_series(m, MP_LABELS("miss"));
    m_unavailable = mp_metric_series(m, MP_LABELS("unavailable"));
    m_invalidate_failed = mp_metric_series(m, MP_LABELS("invalidate_failed"));
}

static void keys_of(char entry[64], char fence[72], const char *id)
{
    snprintf(entry, 64, "product:%s", id);
    snprintf(fence, 72, "product:%s:fence", id);
}

#define LOG_EVERY_MS 10000

static void warn_unavailable(const char *what)
{
    uint64_t left_out;
    char n[24];
    if (!mp_log_now_and_then(&read_warnings, LOG_EVERY_MS, &left_out))
        return;
    snprintf(n, sizeof(n), "%llu", (unsigned long long)left_out);
    mp_log_kv(MP_LOG_WARN, NULL, "redis unavailable: product reads go to postgres", "during", what, "error",
              mp_err_get(), "suppressed", n, NULL);
}

mp_status_t product_cache_get(char **json, mp_svc_t *svc, const char *id)
{
    char entry[64], fence[72];
    size_t len;
    keys_of(entry, fence, id);
    mp_status_t st = mp_cache_get(json, &len, mp_svc_cache(svc), entry);
    if (st == MP_OK) {
        mp_series_add(m_hit, 1);
        return MP_OK;
    }
    if (st == MP_ENOTFOUND) {
        mp_series_add(m_miss, 1);
    } else {
        mp_series_add(m_unavailable, 1);
        warn_unavailable("get");
    }
    return MP_ENOTFOUND;
}

void product_cache_fill(mp_svc_t *svc, const char *id, const char *json, const char *version)
{
    char entry[64], fence[72], ttl[16];
    keys_of(entry, fence, id);
    snprintf(ttl, sizeof(ttl), "%d", cache_ttl_s);
    const char *argv[] = {"EVAL", fill_script, "2", entry, fence, json, version, ttl};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    if (mp_cache_cmdargv(&r, mp_svc_cache(svc), 8, argv, lens) != MP_OK)
        warn_unavailable("fill");
    if (r)
        freeReplyObject(r);
}

void product_cache_invalidate(mp_svc_t *svc, const char *id, const char *version)
{
    char entry[64], fence[72], ttl[16];
    keys_of(entry, fence, id);
    /* the fence must outlive any reader still holding an older copy: a request's deadline is seconds, the entry's
     * TTL bounds the rest */
    snprintf(ttl, sizeof(ttl), "%d", cache_ttl_s + 120);
    const char *argv[] = {"EVAL", invalidate_script, "2", entry, fence, version, ttl};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    if (mp_cache_cmdargv(&r, mp_svc_cache(svc), 7, argv, lens) != MP_OK) {
        uint64_t left_out;
        char n[24];
        mp_series_add(m_invalidate_failed, 1);
        if (mp_log_now_and_then(&invalidate_errors, LOG_EVERY_MS, &left_out)) {
            snprintf(n, sizeof(n), "%llu", (unsigned long long)left_out);
            mp_log_kv(MP_LOG_ERROR, NULL, "product cache invalidation failed; the entry may be stale until its TTL",
                      "product_id", id, "version", version, "error", mp_err_get(), "suppressed", n, NULL);
        }
    }
    if (r)
        freeReplyObject(r);
}
