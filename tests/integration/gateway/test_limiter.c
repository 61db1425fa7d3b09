/*
 * Integration tests for the gateway's Redis-backed rate limiter
 * (services/gateway/limiter.c over core/redis_loop.c) against a real Redis:
 * decisions go through the script and are shared by two limiters (two
 * replicas), a flushed script falls back to EVAL, a Redis that does not
 * answer (a listener that never replies) and one that is not there make
 * decisions local at once, and the backend gauge says which is in use.
 *
 * Each limiter runs on a libuv loop of the test's own, as on a gateway loop
 * thread. Keys are prefixed t_<pid>: and expire on their own.
 *
 * With leases (lease.h), a loose limit is taken from Redis in batches: two
 * replicas still share one bucket (never more than it gives out), far fewer
 * calls reach Redis, requests queued on one lease share its calls, and a
 * queued request that is cancelled is never answered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/cache.h"
#include "mp/metrics.h"
#include "services/gateway/lease.h"
#include "services/gateway/limiter.h"
#include "integration/testenv.h"

static char prefix[32];

typedef struct outcome {
    bool done;
    gw_rl_result_t res;
} outcome_t;

static void on_decision(void *arg, const gw_rl_result_t *res)
{
    outcome_t *o = arg;
    o->done = true;
    o->res = *res;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One decision; `*via_redis` says whether it waited for Redis. Runs the loop until it is made. */
static gw_rl_result_t decide(uv_loop_t *loop, gw_limiter_t *l, const gw_rl_policy_t *p, const char *key,
                             bool *via_redis)
{
    outcome_t o = {0};
    gw_limit_wait_t *w = NULL;
    if (gw_limiter_check(&o.res, &w, l, p, key, on_decision, &o)) {
        *via_redis = false;
        return o.res;
    }
    *via_redis = true;
    int64_t until = mono_ms() + 5000;
    while (!o.done && mono_ms() < until)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(o.done);
    return o.res;
}

static gw_rl_policy_t policy(const char *group, const char *rate, const char *burst)
{
    gw_rl_policy_t p = {.group = group, .enabled = true};
    assert_true(gw_rl_parse_rate(&p.rate, rate));
    p.burst = atof(burst);
    snprintf(p.rate_arg, sizeof(p.rate_arg), "%.17g", p.rate);
    snprintf(p.burst_arg, sizeof(p.burst_arg), "%s", burst);
    p.m_allowed = mp_metric_series(mp_metrics_counter("t_allowed", "t", "group"), MP_LABELS(group));
    p.m_limited = mp_metric_series(mp_metrics_counter("t_limited", "t", "group"), MP_LABELS(group));
    return p;
}

/* Runs the loop until the limiter sends decisions to Redis (its connection is ready), probing group "probe". */
static void wait_ready(uv_loop_t *loop, gw_limiter_t *l)
{
    gw_rl_policy_t probe = policy("probe", "1000/s", "1000");
    int64_t until = mono_ms() + 5000;
    while (mono_ms() < until) {
        bool via;
        decide(loop, l, &probe, "x", &via);
        if (via)
            return;
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    fail_msg("the limiter never became ready");
}

static double backend(const char *which)
{
    return mp_series_value(
        mp_metric_series(mp_metrics_gauge("moonport_ratelimit_backend", "", "backend"), MP_LABELS(which)));
}

/* A limiter on its own loop, as on a gateway loop thread; two of them stand for two replicas. */
typedef struct replica {
    uv_loop_t loop;
    gw_limiter_t *l;
} replica_t;

static gw_limiter_shared_t shared;

static void shared_init(const char *url, int timeout_ms, int nthreads)
{
    shared = (gw_limiter_shared_t){
        .redis_url = url, .prefix = prefix, .timeout_ms = timeout_ms, .nthreads = nthreads, .use_redis = true};
    gw_limiter_shared_init(&shared);
}

static void replica_start(replica_t *r)
{
    memset(r, 0, sizeof(*r));
    uv_loop_init(&r->loop);
    assert_int_equal(gw_limiter_create(&r->l, &r->loop, &shared), MP_OK);
}

static void replica_stop(replica_t *r)
{
    gw_limiter_destroy(r->l);
    while (uv_run(&r->loop, UV_RUN_NOWAIT))
        ;
    assert_int_equal(uv_loop_close(&r->loop), 0); /* every handle closed */
}

static void test_limiter_decides_in_redis_shared_by_replicas(void **state)
{
    replica_t a, b;
    /* a generous timeout: this test is about sharing, not speed (the machine may be busy) */
    shared_init(MP_TEST_REDIS_URL(), 2000, 2);
    replica_start(&a);
    replica_start(&b);
    wait_ready(&a.loop, a.l);
    wait_ready(&b.loop, b.l);
    assert_true(backend("redis") == 1 && backend("local") == 0);
    gw_rl_policy_t p = policy("shared", "1/m", "6");
    int allowed = 0;
    bool via;
    for (int i = 0; i < 10; i++) {
        gw_rl_result_t r = decide(i % 2 ? &a.loop : &b.loop, i % 2 ? a.l : b.l, &p, "i:1.2.3.4", &via);
        assert_true(via);
        allowed += r.allowed;
        if (!r.allowed) {
            assert_int_equal(r.remaining, 0);
            assert_true(r.retry_after_s > 50 && r.retry_after_s <= 60);
            assert_int_equal(r.limit, 6);
        }
    }
    assert_int_equal(allowed, 6); /* two replicas, one bucket */
    /* the bucket is in Redis under the prefix, group and key */
    mp_cache_t *c = NULL;
    assert_int_equal(mp_cache_create(&c, &(mp_cache_opts_t){.url = MP_TEST_REDIS_URL()}), MP_OK);
    redisReply *r = NULL;
    assert_int_equal(mp_cache_cmd(&r, c, "EXISTS %sshared:i:1.2.3.4", prefix), MP_OK);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* SCRIPT FLUSH: the next decision answers NOSCRIPT and is retried with EVAL, still in Redis */
    assert_int_equal(mp_cache_cmd(NULL, c, "SCRIPT FLUSH"), MP_OK);
    gw_rl_policy_t q = policy("flushed", "1/m", "1");
    gw_rl_result_t first = decide(&a.loop, a.l, &q, "u:x", &via);
    assert_true(via && first.allowed);
    gw_rl_result_t second = decide(&b.loop, b.l, &q, "u:x", &via);
    assert_true(via && !second.allowed); /* the other replica sees the same bucket */
    mp_cache_destroy(c);
    replica_stop(&a);
    replica_stop(&b);
    gw_limiter_shared_dispose(&shared);
}

/* calls of EVALSHA Redis has answered so far */
static long evalsha_calls(mp_cache_t *c)
{
    redisReply *r = NULL;
    assert_int_equal(mp_cache_cmd(&r, c, "INFO commandstats"), MP_OK);
    const char *at = strstr(r->str, "cmdstat_evalsha:calls=");
    long n = at ? atol(at + strlen("cmdstat_evalsha:calls=")) : 0;
    freeReplyObject(r);
    return n;
}

static void test_limiter_leases_share_one_bucket_in_batches(void **state)
{
    replica_t a, b;
    shared_init(MP_TEST_REDIS_URL(), 2000, 2);
    shared.lease_ms = 100;
    replica_start(&a);
    replica_start(&b);
    wait_ready(&a.loop, a.l);
    wait_ready(&b.loop, b.l);
    mp_cache_t *c = NULL;
    assert_int_equal(mp_cache_create(&c, &(mp_cache_opts_t){.url = MP_TEST_REDIS_URL()}), MP_OK);
    gw_rl_policy_t p = policy("leased", "100/s", "200");
    p.lease_max = gw_lease_max(&p, shared.lease_ms);
    assert_int_equal(p.lease_max, 10);
    long calls0 = evalsha_calls(c);
    int allowed = 0, redis = 0;
    gw_rl_result_t last_refusal = {0};
    int64_t t0 = mono_ms();
    for (int i = 0; i < 400; i++) {
        bool via;
        gw_rl_result_t r = decide(i % 2 ? &a.loop : &b.loop, i % 2 ? a.l : b.l, &p, "u:lessee", &via);
        allowed += r.allowed;
        redis += via;
        assert_int_equal(r.limit, 200);
        if (!r.allowed)
            last_refusal = r;
    }
    double elapsed = (double)(mono_ms() - t0) / 1000.0;
    /* one bucket for both: never more than it gave out (burst + refill), and no less than the burst minus what the
     * two replicas may still hold in leases */
    assert_true(allowed <= 200 + 100 * elapsed + 1);
    assert_true(allowed >= 200 - 2 * 10);
    assert_true(last_refusal.retry_after_s >= 1);
    assert_int_equal(last_refusal.remaining, 0);
    /* in batches: far fewer calls than decisions */
    long calls = evalsha_calls(c) - calls0;
    assert_true(redis < 150);
    assert_true(calls <= redis + 2);
    mp_cache_destroy(c);
    replica_stop(&a);
    replica_stop(&b);
    gw_limiter_shared_dispose(&shared);
}

static void test_limiter_requests_queued_on_a_lease_share_its_calls(void **state)
{
    replica_t a;
    shared_init(MP_TEST_REDIS_URL(), 2000, 1);
    shared.lease_ms = 1000;
    replica_start(&a);
    wait_ready(&a.loop, a.l);
    mp_cache_t *c = NULL;
    assert_int_equal(mp_cache_create(&c, &(mp_cache_opts_t){.url = MP_TEST_REDIS_URL()}), MP_OK);
    gw_rl_policy_t p = policy("queued", "1000/s", "1000");
    p.lease_max = gw_lease_max(&p, shared.lease_ms);
    long calls0 = evalsha_calls(c);
    /* eight requests of one client arrive before Redis answers anything: they queue on one lease */
    outcome_t o[8];
    gw_limit_wait_t *w[8];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 8; i++)
        assert_false(gw_limiter_check(&o[i].res, &w[i], a.l, &p, "u:queue", on_decision, &o[i]));
    gw_limiter_cancel(a.l, w[3]); /* its client went away: never answered, the others still are */
    int64_t until = mono_ms() + 5000;
    for (bool done = false; !done && mono_ms() < until;) {
        uv_run(&a.loop, UV_RUN_ONCE);
        done = true;
        for (int i = 0; i < 8; i++)
            done &= i == 3 || o[i].done;
    }
    for (int i = 0; i < 8; i++) {
        assert_true(o[i].done == (i != 3));
        assert_true(i == 3 || o[i].res.allowed);
    }
    /* leases of 1, 2 and 4 tokens: three calls for seven requests */
    long calls = evalsha_calls(c) - calls0;
    assert_true(calls <= 3);
    /* the next lease is of 8: one call, then seven requests from it */
    bool via;
    gw_rl_result_t r = decide(&a.loop, a.l, &p, "u:queue", &via);
    assert_true(r.allowed && via);
    for (int i = 0; i < 7; i++) {
        r = decide(&a.loop, a.l, &p, "u:queue", &via);
        assert_true(r.allowed && !via);
    }
    assert_true(r.remaining > 900 && r.remaining < 1000);
    mp_cache_destroy(c);
    replica_stop(&a);
    gw_limiter_shared_dispose(&shared);
}

/* A port where something accepts connections and never answers. */
static int silent_port(int *fd)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(*fd, 8), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&addr, &len), 0);
    return ntohs(addr.sin_port);
}

static void test_limiter_silent_or_missing_redis_decides_locally(void **state)
{
    int fd;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", silent_port(&fd));
    replica_t r;
    shared_init(url, 50, 1);
    replica_start(&r);
    /* never ready (the setup commands get no answer): every decision is local, at once */
    for (int i = 0; i < 20; i++)
        uv_run(&r.loop, UV_RUN_NOWAIT);
    gw_rl_policy_t p = policy("silent", "1/m", "2");
    bool via;
    int allowed = 0;
    for (int i = 0; i < 4; i++) {
        allowed += decide(&r.loop, r.l, &p, "i:9.9.9.9", &via).allowed;
        assert_false(via);
    }
    assert_int_equal(allowed, 2); /* the local bucket still limits */
    assert_true(backend("local") == 1 && backend("redis") == 0);
    replica_stop(&r);
    gw_limiter_shared_dispose(&shared);
    close(fd);

    snprintf(url, sizeof(url), "redis://127.0.0.1:1");
    shared_init(url, 50, 1);
    replica_start(&r);
    usleep(50000);
    uv_run(&r.loop, UV_RUN_NOWAIT);
    decide(&r.loop, r.l, &p, "i:9.9.9.8", &via);
    assert_false(via);
    replica_stop(&r);
    gw_limiter_shared_dispose(&shared);
}

int main(void)
{
    snprintf(prefix, sizeof(prefix), "t_%d:", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limiter_decides_in_redis_shared_by_replicas),
        cmocka_unit_test(test_limiter_silent_or_missing_redis_decides_locally),
        cmocka_unit_test(test_limiter_leases_share_one_bucket_in_batches),
        cmocka_unit_test(test_limiter_requests_queued_on_a_lease_share_its_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
