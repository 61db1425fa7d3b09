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
#include "lease.h"
#include "limiter.h"

/* KEYS[1] bucket; ARGV rate (tokens/s), burst, and how many tokens to take (1 when absent: one request; more for a
 * lease, lease.h). Takes as many as it has whole, up to that. Returns {tokens taken (0: refused), whole tokens left,
 * ms until one token, ms until full}. Same arithmetic as gw_bucket_take(); the time is Redis's, so every replica
 * agrees on it. */
const char gw_limiter_script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local want = tonumber(ARGV[3] or '1')\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local b = redis.call('HMGET', KEYS[1], 't', 'ts')\n"
    "local tokens, ts = tonumber(b[1]), tonumber(b[2])\n"
    "if tokens == nil or ts == nil then tokens = burst; ts = now end\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000); ts = now end\n"
    "local taken = 0\n"
    "if tokens >= 1 then taken = math.min(want, math.floor(tokens)); tokens = tokens - taken end\n"
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "local retry = 0\n"
    "if taken == 0 then retry = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "return {taken, math.floor(tokens), retry, math.ceil((burst - tokens) * 1000 / rate)}\n";

#define LEASE_MAX_KEYS 10000 /* clients with leases per loop thread */

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
    gw_lease_table_t *leases; /* NULL: no leases (gateway.rate_limit.lease 0, or local buckets only) */
};

/* One script call: one request's decision, or a batch of tokens for a lease. */
typedef struct call {
    gw_limiter_t *l;
    const gw_rl_policy_t *p;
    mp_redis_cmd_t *cmd;
    bool evaled;
    gw_limit_wait_t *w; /* the request it decides, or NULL for a lease's batch */
    gw_lease_t *lease;  /* the lease it fills, or NULL */
    int64_t sent_ms;    /* when it was sent (monotonic): Redis decided after this */
    const char *key;    /* the client key, inside redis_key */
    char want[24];      /* ARGV[3] */
    char redis_key[];   /* <prefix><group>:<key> */
} call_t;

/* A request waiting for a decision: on its own call, or queued on a lease (call NULL). */
struct gw_limit_wait {
    gw_lease_waiter_t link; /* first: a waiter popped from a lease is this record */
    gw_limiter_t *l;
    const gw_rl_policy_t *p;
    gw_limit_cb cb;
    void *arg;
    call_t *call;
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

/* {taken, whole tokens left, ms until one token, ms until full}; the decision of one request in `res`. */
static bool parse_reply(long *taken, gw_rl_result_t *res, const gw_rl_policy_t *p, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    *taken = (long)r->element[0]->integer;
    gw_rl_result_set(res, *taken >= 1, p->burst, (double)r->element[1]->integer, r->element[2]->integer,
                     r->element[3]->integer);
    return true;
}

static bool send_script(call_t *c, bool eval);
static bool fetch_lease(gw_limiter_t *l, gw_lease_t *ls, int64_t now);

/* Hands a decision (already counted) to the request waiting for it and frees its record. */
static void answer(gw_limit_wait_t *w, const gw_rl_result_t *res)
{
    gw_limit_cb cb = w->cb;
    void *cb_arg = w->arg;
    free(w);
    cb(cb_arg, res);
}

/* Serves a lease's queue after Redis answered for it: from what the lease now holds (tokens, or a refusal), or
 * locally when Redis could not decide (`failed`); asks for another batch for whoever is left. */
static void serve_lease(gw_limiter_t *l, gw_lease_t *ls, bool failed)
{
    int64_t now = mono_ms();
    gw_lease_waiter_t *first;
    bool outer = !ls->serving;
    ls->serving = true; /* callbacks run below: the table must not forget this lease meanwhile */
    /* a callback may queue more requests on this lease or cancel queued ones: take the head afresh each time */
    while ((first = ls->waiters.next) != &ls->waiters) {
        gw_rl_result_t res;
        if (failed)
            decide_locally(&res, l, ls->p, ls->key);
        else if (gw_lease_take(ls, now, &res))
            count(ls->p, &res);
        else
            break; /* the batch ran out: the rest wait for the next */
        gw_lease_unwait(first);
        answer((gw_limit_wait_t *)first, &res);
    }
    if (ls->waiters.next != &ls->waiters && !ls->fetching && !fetch_lease(l, ls, now)) {
        mp_series_add(state.fail_unavailable, 1);
        serve_lease(l, ls, true);
    }
    if (outer)
        ls->serving = false;
}

static void on_reply(void *arg, mp_status_t st, redisReply *reply)
{
    call_t *c = arg;
    gw_limiter_t *l = c->l;
    gw_limit_wait_t *w = c->w;
    gw_lease_t *ls = c->lease;
    gw_rl_result_t res;
    long taken = 0;
    if (ls)
        ls->fetching = false;
    if (st == MP_ECANCELED) { /* gw_limiter_cancel() or destroy: nobody is told */
        free(w);
        free(c);
        return;
    }
    bool ok = st == MP_OK && parse_reply(&taken, &res, c->p, reply);
    if (!ok && st == MP_OK && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
        !c->evaled && send_script(c, true)) {
        if (ls)
            ls->fetching = true;
        return; /* the script was flushed: EVAL carries it (and caches it again) */
    }
    if (!ok) {
        mp_series_add(st == MP_ETIMEDOUT ? state.fail_timeout
                      : st == MP_OK      ? state.fail_reply
                                         : state.fail_unavailable,
                      1);
        if (st == MP_OK && reply->type == REDIS_REPLY_ERROR)
            mp_log_kv(MP_LOG_WARN, NULL, "redis refused the rate-limit script", "error", reply->str, NULL);
    }
    if (ls) {
        if (ok)
            gw_lease_grant(ls, taken, (double)reply->element[1]->integer, reply->element[2]->integer, c->sent_ms);
        free(c);
        serve_lease(l, ls, !ok);
        return;
    }
    if (ok)
        count(c->p, &res);
    else
        decide_locally(&res, l, c->p, c->key);
    free(c);
    answer(w, &res);
}

static call_t *new_call(gw_limiter_t *l, const gw_rl_policy_t *p, const char *key, long want)
{
    size_t plen = strlen(l->sh->prefix), glen = strlen(p->group), klen = strlen(key);
    call_t *c = mp_xcalloc(1, sizeof(*c) + plen + glen + klen + 2);
    c->l = l;
    c->p = p;
    memcpy(c->redis_key, l->sh->prefix, plen);
    memcpy(c->redis_key + plen, p->group, glen);
    c->redis_key[plen + glen] = ':';
    memcpy(c->redis_key + plen + glen + 1, key, klen + 1);
    c->key = c->redis_key + plen + glen + 1;
    snprintf(c->want, sizeof(c->want), "%ld", want);
    return c;
}

static bool send_script(call_t *c, bool eval)
{
    c->sent_ms = mono_ms();
    const char *argv[] = {eval ? "EVAL" : "EVALSHA",
                          eval ? gw_limiter_script : c->l->sha,
                          "1",
                          c->redis_key,
                          c->p->rate_arg,
                          c->p->burst_arg,
                          c->want};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    c->evaled = eval;
    return mp_redis_loop_cmd(&c->cmd, c->l->redis, 7, argv, lens, on_reply, c) == MP_OK;
}

/* Asks Redis for the lease's next batch. */
static bool fetch_lease(gw_limiter_t *l, gw_lease_t *ls, int64_t now)
{
    call_t *c = new_call(l, ls->p, ls->key, gw_lease_next(ls, now));
    c->lease = ls;
    if (!send_script(c, false)) {
        free(c);
        return false;
    }
    ls->fetching = true;
    return true;
}

bool gw_limiter_check(gw_rl_result_t *res, gw_limit_wait_t **wait, gw_limiter_t *l, const gw_rl_policy_t *p,
                      const char *key, gw_limit_cb cb, void *arg)
{
    if (!l->sh->use_redis || !l->ready) {
        decide_locally(res, l, p, key);
        return true;
    }
    gw_limit_wait_t *w = NULL;
    int64_t now = p->lease_max > 1 && l->leases ? mono_ms() : 0;
    gw_lease_t *ls = now ? gw_lease_get(l->leases, p, key, now) : NULL;
    if (ls) {
        if (gw_lease_take(ls, now, res)) {
            count(p, res);
            return true;
        }
        w = mp_xcalloc(1, sizeof(*w));
        *w = (gw_limit_wait_t){.l = l, .p = p, .cb = cb, .arg = arg};
        gw_lease_wait(ls, &w->link);
        if (ls->fetching || fetch_lease(l, ls, now)) {
            *wait = w;
            return false; /* the batch Redis is asked for serves it */
        }
        gw_lease_unwait(&w->link);
    } else {
        w = mp_xcalloc(1, sizeof(*w));
        *w = (gw_limit_wait_t){.l = l, .p = p, .cb = cb, .arg = arg};
        w->call = new_call(l, p, key, 1);
        w->call->w = w;
        if (send_script(w->call, false)) {
            *wait = w;
            return false;
        }
        free(w->call);
    }
    free(w);
    mp_series_add(state.fail_unavailable, 1);
    decide_locally(res, l, p, key);
    return true;
}

void gw_limiter_cancel(gw_limiter_t *l, gw_limit_wait_t *wait)
{
    if (wait->call) {
        mp_redis_loop_cancel(l->redis, wait->call->cmd); /* on_reply frees both */
        return;
    }
    gw_lease_unwait(&wait->link); /* the batch it waited for still fills the lease */
    free(wait);
}

static void drop_waiter(gw_lease_waiter_t *w)
{
    free(w); /* a gw_limit_wait_t, whose first member it is */
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
        if (sh->lease_ms > 0)
            l->leases = gw_lease_table_create(LEASE_MAX_KEYS, sh->lease_ms);
    }
    *out = l;
    return MP_OK;
}

void gw_limiter_destroy(gw_limiter_t *l)
{
    if (l == NULL)
        return;
    mp_redis_loop_destroy(l->redis); /* calls in flight end with MP_ECANCELED, before their leases go */
    gw_lease_table_destroy(l->leases, drop_waiter);
    free(l);
}
