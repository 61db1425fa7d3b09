/*
 * limiter.c: rate-limit decisions through Redis with a local fallback (see
 * limiter.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/log.h"
#include "mp/redis_loop.h"
#include "limiter.h"

/* KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns {allowed, whole tokens left, ms until one token, ms until
 * full}. Same arithmetic as gw_bucket_take(); the time is Redis's, so every replica agrees on it. */
const char gw_limiter_script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local b = redis.call('HMGET', KEYS[1], 't', 'ts')\n"
    "local tokens, ts = tonumber(b[1]), tonumber(b[2])\n"
    "if tokens == nil or ts == nil then tokens = burst; ts = now end\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000); ts = now end\n"
    "local allowed = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1 end\n"
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "local retry = 0\n"
    "if allowed == 0 then retry = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "return {allowed, math.floor(tokens), retry, math.ceil((burst - tokens) * 1000 / rate)}\n";

static struct {
    _Atomic int down; /* loop threads whose Redis connection is not ready */
    atomic_bool ever_ready, warned;
    mp_series_t *backend_redis, *backend_local;
    mp_series_t *fail_timeout, *fail_unavailable, *fail_reply;
} state;

struct gw_limiter {
    gw_limiter_shared_t *sh;
    mp_redis_loop_t *redis;
    bool ready;
    char sha[41];
};

struct gw_limit_wait {
    gw_limiter_t *l;
    const gw_rl_policy_t *p;
    gw_limit_cb cb;
    void *arg;
    mp_redis_cmd_t *cmd;
    bool evaled;
    char *redis_key;
    const char *key; /* inside redis_key */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_backend_gauges(bool redis)
{
    mp_series_set(state.backend_redis, redis ? 1 : 0);
    mp_series_set(state.backend_local, redis ? 0 : 1);
}

void gw_limiter_shared_init(gw_limiter_shared_t *sh)
{
    mp_metric_t *backend = mp_metrics_gauge("moonport_ratelimit_backend",
                                            "Which store decides rate limits (1 = in use): redis or local", "backend");
    mp_metric_t *fail = mp_metrics_counter("moonport_ratelimit_redis_failures_total",
                                           "Rate-limit decisions Redis could not make, decided locally", "reason");
    state.backend_redis = mp_metric_series(backend, MP_LABELS("redis"));
    state.backend_local = mp_metric_series(backend, MP_LABELS("local"));
    state.fail_timeout = mp_metric_series(fail, MP_LABELS("timeout"));
    state.fail_unavailable = mp_metric_series(fail, MP_LABELS("unavailable"));
    state.fail_reply = mp_metric_series(fail, MP_LABELS("bad_reply"));
    atomic_store(&state.down, sh->nthreads);
    atomic_store(&state.ever_ready, false);
    atomic_store(&state.warned, false);
    set_backend_gauges(false);
    if (sh->local == NULL)
        sh->local = gw_rl_local_create(sh->local_max_keys ? sh->local_max_keys : 100000);
}

void gw_limiter_shared_dispose(gw_limiter_shared_t *sh)
{
    gw_rl_local_destroy(sh->local);
    sh->local = NULL;
}

/* ---- backend changes --------------------------------------------------------------------------------- */

static void on_redis_ready(void *arg, bool ready)
{
    gw_limiter_t *l = arg;
    l->ready = ready;
    if (ready) {
        if (atomic_fetch_sub(&state.down, 1) == 1) {
            atomic_store(&state.ever_ready, true);
            set_backend_gauges(true);
            mp_log_kv(MP_LOG_INFO, NULL, "rate limits are shared through redis", NULL);
        }
    } else if (atomic_fetch_add(&state.down, 1) == 0) {
        set_backend_gauges(false);
        mp_log_kv(MP_LOG_WARN, NULL, "rate limiting falls back to local buckets: redis is unavailable or slow", NULL);
    }
}

/* ---- deciding ------------------------------------------------------------------------------------------- */

static void count(const gw_rl_policy_t *p, const gw_rl_result_t *res)
{
    mp_series_add(res->allowed ? p->m_allowed : p->m_limited, 1);
}

static void decide_locally(gw_rl_result_t *res, gw_limiter_t *l, const gw_rl_policy_t *p, const char *key)
{
    if (l->sh->use_redis && !atomic_load(&state.ever_ready) && !atomic_exchange(&state.warned, true))
        mp_log_kv(MP_LOG_WARN, NULL, "redis is not reachable yet: rate limiting uses local buckets", NULL);
    gw_rl_local_take(res, l->sh->local, p, key, mono_ms());
    count(p, res);
}

static bool parse_reply(gw_rl_result_t *res, const gw_rl_policy_t *p, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    gw_rl_result_set(res, r->element[0]->integer == 1, p->burst, (double)r->element[1]->integer, r->element[2]->integer,
                     r->element[3]->integer);
    return true;
}

static bool send_script(gw_limit_wait_t *w, bool eval);

static void on_reply(void *arg, mp_status_t st, redisReply *reply)
{
    gw_limit_wait_t *w = arg;
    gw_rl_result_t res;
    if (st == MP_ECANCELED) {
        free(w->redis_key);
        free(w);
        return;
    }
    if (st == MP_OK && parse_reply(&res, w->p, reply)) {
        count(w->p, &res);
    } else if (st == MP_OK && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
               !w->evaled && send_script(w, true)) {
        return; /* the script was flushed: EVAL carries it (and caches it again) */
    } else {
        mp_series_add(st == MP_ETIMEDOUT ? state.fail_timeout
                      : st == MP_OK      ? state.fail_reply
                                         : state.fail_unavailable,
                      1);
        if (st == MP_OK && reply->type == REDIS_REPLY_ERROR)
            mp_log_kv(MP_LOG_WARN, NULL, "redis refused the rate-limit script", "error", reply->str, NULL);
        decide_locally(&res, w->l, w->p, w->key);
    }
    gw_limit_cb cb = w->cb;
    void *cb_arg = w->arg;
    free(w->redis_key);
    free(w);
    cb(cb_arg, &res);
}

static bool send_script(gw_limit_wait_t *w, bool eval)
{
    const char *argv[] = {eval ? "EVAL" : "EVALSHA",
                          eval ? gw_limiter_script : w->l->sha,
                          "1",
                          w->redis_key,
                          w->p->rate_arg,
                          w->p->burst_arg};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    w->evaled = eval;
    return mp_redis_loop_cmd(&w->cmd, w->l->redis, 6, argv, lens, on_reply, w) == MP_OK;
}

bool gw_limiter_check(gw_rl_result_t *res, gw_limit_wait_t **wait, gw_limiter_t *l, const gw_rl_policy_t *p,
                      const char *key, gw_limit_cb cb, void *arg)
{
    if (!l->sh->use_redis || !l->ready) {
        decide_locally(res, l, p, key);
        return true;
    }
    gw_limit_wait_t *w = mp_xcalloc(1, sizeof(*w));
    w->l = l;
    w->p = p;
    w->cb = cb;
    w->arg = arg;
    w->redis_key = mp_xasprintf("%s%s:%s", l->sh->prefix, p->group, key);
    w->key = w->redis_key + strlen(l->sh->prefix) + strlen(p->group) + 1;
    if (!send_script(w, false)) {
        free(w->redis_key);
        free(w);
        mp_series_add(state.fail_unavailable, 1);
        decide_locally(res, l, p, key);
        return true;
    }
    *wait = w;
    return false;
}

void gw_limiter_cancel(gw_limiter_t *l, gw_limit_wait_t *wait)
{
    mp_redis_loop_cancel(l->redis, wait->cmd);
}

/* ---- life ------------------------------------------------------------------------------------------------ */

mp_status_t gw_limiter_create(gw_limiter_t **out, uv_loop_t *loop, gw_limiter_shared_t *sh)
{
    gw_limiter_t *l = mp_xcalloc(1, sizeof(*l));
    l->sh = sh;
    mp_redis_script_sha(l->sha, gw_limiter_script);
    if (sh->use_redis) {
        const char *scripts[] = {gw_limiter_script, NULL};
        mp_redis_loop_opts_t o = {.url = sh->redis_url,
                                  .password = sh->redis_password,
                                  .timeout_ms = sh->timeout_ms,
                                  .scripts = scripts,
                                  .on_ready = on_redis_ready,
                                  .arg = l};
        mp_status_t st = mp_redis_loop_create(&l->redis, loop, &o);
        if (st != MP_OK) {
            free(l);
            return st;
        }
    }
    *out = l;
    return MP_OK;
}

void gw_limiter_destroy(gw_limiter_t *l)
{
    if (l == NULL)
        return;
    mp_redis_loop_destroy(l->redis);
    free(l);
}
