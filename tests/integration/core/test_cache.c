/*
 * Integration tests for mp_cache against a real Redis: binary-safe values,
 * expiry, error mapping, URL handling (database, AUTH), unreachable and
 * silent servers, reconnection after a killed or timed-out connection, and
 * concurrent use of the pool.
 *
 * Keys are prefixed t_<pid>: and deleted by the teardown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <netinet/in.h>
#include <pthread.h>
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
#include "integration/testenv.h"

static mp_cache_t *cache;
static char prefix[32];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "t_<pid>:<name>" in a static ring of buffers, enough for the keys one test uses at once. */
static const char *key(const char *name)
{
    static char ring[8][96];
    static int next;
    char *k = ring[next++ % 8];
    snprintf(k, sizeof(ring[0]), "%s%s", prefix, name);
    return k;
}

/* A port with a listener that completes connections and never answers (fd returned to close), or, with
 * listen_too false, a port nobody listens on. */
static int test_port(int *port, bool listen_too)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listen_too)
        assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    if (!listen_too) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static long long cmd_int(mp_cache_t *k, const char *fmt, const char *arg)
{
    redisReply *r = NULL;
    assert_int_equal(mp_cache_cmd(&r, k, fmt, arg), MP_OK);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static int group_setup(void **state)
{
    snprintf(prefix, sizeof(prefix), "t_%d:", (int)getpid());
    mp_cache_opts_t o = {.url = MP_TEST_REDIS_URL()};
    assert_int_equal(mp_cache_create(&cache, &o), MP_OK);
    return 0;
}

static int group_teardown(void **state)
{
    redisReply *r = NULL;
    char pattern[48];
    snprintf(pattern, sizeof(pattern), "%s*", prefix);
    assert_int_equal(mp_cache_cmd(&r, cache, "KEYS %s", pattern), MP_OK);
    for (size_t i = 0; i < r->elements; i++)
        assert_int_equal(mp_cache_del(cache, r->element[i]->str), MP_OK);
    freeReplyObject(r);
    mp_cache_destroy(cache);
    return 0;
}

static void test_cache_binary_round_trip(void **state)
{
    const char bin[] = {'a', '\0', 'b', '\r', '\n', '\xff', '\0'};
    char *val = NULL;
    size_t len = 0;
    assert_int_equal(mp_cache_set(cache, key("bin"), bin, sizeof(bin), 0), MP_OK);
    assert_int_equal(mp_cache_get(&val, &len, cache, key("bin")), MP_OK);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(val, bin, sizeof(bin));
    assert_int_equal(val[len], '\0');
    free(val);
    assert_int_equal(mp_cache_del(cache, key("bin")), MP_OK);
    assert_int_equal(mp_cache_get(&val, &len, cache, key("bin")), MP_ENOTFOUND);
    assert_int_equal(mp_cache_del(cache, key("bin")), MP_OK); /* already gone: not an error */

    /* argv form: binary key and value with explicit lengths; a key with spaces stays one argument */
    char bkey[64];
    int klen = snprintf(bkey, sizeof(bkey), "%sargv key", prefix);
    bkey[klen - 4] = '\0'; /* "argv\0key" */
    const char *argv[] = {"SET", bkey, bin};
    size_t lens[] = {3, (size_t)klen, sizeof(bin)};
    assert_int_equal(mp_cache_cmdargv(NULL, cache, 3, argv, lens), MP_OK);
    redisReply *r = NULL;
    assert_int_equal(mp_cache_cmd(&r, cache, "GET %b", bkey, (size_t)klen), MP_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, sizeof(bin));
    assert_memory_equal(r->str, bin, sizeof(bin));
    freeReplyObject(r);
    assert_int_equal(mp_cache_cmd(NULL, cache, "DEL %b", bkey, (size_t)klen), MP_OK);
}

static void test_cache_set_ttl(void **state)
{
    assert_int_equal(mp_cache_set(cache, key("ttl"), "v", 1, 100), MP_OK);
    long long ttl = cmd_int(cache, "TTL %s", key("ttl"));
    assert_true(ttl > 0 && ttl <= 100);
    assert_int_equal(mp_cache_set(cache, key("ttl"), "v", 1, 0), MP_OK);
    assert_int_equal(cmd_int(cache, "TTL %s", key("ttl")), -1); /* no expiry */
    assert_int_equal(mp_cache_set(cache, key("ttl"), "v", 1, -5), MP_EINVAL);
}

static void test_cache_get_missing_is_not_found(void **state)
{
    char *val = (char *)"untouched";
    size_t len = 7;
    assert_int_equal(mp_cache_get(&val, &len, cache, key("never-set")), MP_ENOTFOUND);
    assert_string_equal(val, "untouched"); /* outputs are written only on MP_OK */
    assert_int_equal(len, 7);
}

static void test_cache_error_reply_is_internal(void **state)
{
    redisReply *r = NULL;
    char *val;
    size_t len;
    assert_int_equal(mp_cache_set(cache, key("word"), "abc", 3, 0), MP_OK);
    assert_int_equal(mp_cache_cmd(&r, cache, "INCR %s", key("word")), MP_EINTERNAL);
    assert_null(r);
    assert_non_null(strstr(mp_err_get(), "not an integer"));
    assert_int_equal(mp_cache_cmd(NULL, cache, "RPUSH %s x", key("list")), MP_OK);
    assert_int_equal(mp_cache_get(&val, &len, cache, key("list")), MP_EINTERNAL);
    assert_non_null(strstr(mp_err_get(), "WRONGTYPE"));
    assert_int_equal(mp_cache_cmd(NULL, cache, "NOSUCHCMD %s", "secret-arg"), MP_EINTERNAL);
    assert_non_null(strstr(mp_err_get(), "unknown command"));
    assert_null(strstr(mp_err_get(), "secret")); /* Redis quotes the arguments; the detail must not */
    /* an error reply leaves the connection in use */
    assert_int_equal(mp_cache_get(&val, &len, cache, key("word")), MP_OK);
    assert_string_equal(val, "abc");
    free(val);
}

static void test_cache_ping(void **state)
{
    assert_int_equal(mp_cache_ping(cache, 1000), MP_OK);
}

static void test_cache_bad_url_is_invalid(void **state)
{
    const char *bad[] = {"http://127.0.0.1:6379",
                         "rediss://127.0.0.1",
                         "redis://",
                         "redis://:6379",
                         "redis://host:0",
                         "redis://host:65536",
                         "redis://host:port",
                         "redis://host:",
                         "redis://host/x",
                         "redis://host/1/2",
                         "redis://host/1?db=2",
                         "redis://[::1",
                         "redis://hunter2@host",
                         "redis://:hunter2%zz@host",
                         "redis://:hunter2@host:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        mp_cache_t *k = NULL;
        mp_cache_opts_t o = {.url = bad[i]};
        assert_int_equal(mp_cache_create(&k, &o), MP_EINVAL);
        assert_null(k);
        assert_null(strstr(mp_err_get(), "hunter2"));
    }
    /* well-formed variants parse (connecting is lazy) */
    const char *good[] = {"redis://h", "redis://h:1/", "redis://user:p%40ss@h:6380/15", "redis://[::1]:6379/0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        mp_cache_t *k = NULL;
        mp_cache_opts_t o = {.url = good[i]};
        assert_int_equal(mp_cache_create(&k, &o), MP_OK);
        mp_cache_destroy(k);
    }
}

static void test_cache_url_selects_db_and_sends_auth(void **state)
{
    char url[160];
    mp_cache_t *k;
    char *val;
    size_t len;
    snprintf(url, sizeof(url), "%s/3", MP_TEST_REDIS_URL());
    mp_cache_opts_t o = {.url = url};
    assert_int_equal(mp_cache_create(&k, &o), MP_OK);
    assert_int_equal(mp_cache_set(k, key("db3"), "three", 5, 60), MP_OK);
    assert_int_equal(mp_cache_get(&val, &len, cache, key("db3")), MP_ENOTFOUND); /* not in db 0 */
    assert_int_equal(mp_cache_get(&val, &len, k, key("db3")), MP_OK);
    free(val);
    assert_int_equal(mp_cache_del(k, key("db3")), MP_OK);
    mp_cache_destroy(k);

    /* the test server has no password, so an AUTH is refused: proof that one is sent, from the URL or opts */
    const char *base = MP_TEST_REDIS_URL() + strlen("redis://");
    snprintf(url, sizeof(url), "redis://:hunter2@%s", base);
    for (int with_opt = 0; with_opt < 2; with_opt++) {
        mp_cache_opts_t a = {.url = with_opt ? MP_TEST_REDIS_URL() : url, .password = with_opt ? "hunter3" : NULL};
        assert_int_equal(mp_cache_create(&k, &a), MP_OK);
        assert_int_equal(mp_cache_ping(k, 1000), MP_EUNAVAIL);
        assert_non_null(strstr(mp_err_get(), "AUTH"));
        assert_null(strstr(mp_err_get(), "hunter"));
        mp_cache_destroy(k);
    }
}

static void test_cache_unreachable_is_unavailable_quickly(void **state)
{
    char url[64];
    int port;
    mp_cache_t *k;
    test_port(&port, false);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    mp_cache_opts_t o = {.url = url, .timeout_ms = 5000};
    assert_int_equal(mp_cache_create(&k, &o), MP_OK);
    int64_t t0 = now_ms();
    assert_int_equal(mp_cache_ping(k, 500), MP_EUNAVAIL);
    assert_int_equal(mp_cache_cmd(NULL, k, "GET x"), MP_EUNAVAIL);
    assert_true(now_ms() - t0 < 1000);
    mp_cache_destroy(k);

    /* a server that accepts and never answers: the ping's own timeout holds, not the pool's 5 s */
    int fd = test_port(&port, true);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    assert_int_equal(mp_cache_create(&k, &o), MP_OK);
    t0 = now_ms();
    assert_int_equal(mp_cache_ping(k, 300), MP_EUNAVAIL);
    int64_t took = now_ms() - t0;
    assert_true(took >= 250 && took < 1000);
    mp_cache_destroy(k);
    close(fd);
}

static long long client_id(mp_cache_t *k)
{
    redisReply *r = NULL;
    assert_int_equal(mp_cache_cmd(&r, k, "CLIENT ID"), MP_OK);
    long long id = r->integer;
    freeReplyObject(r);
    return id;
}

static void test_cache_reconnects_after_lost_connection(void **state)
{
    mp_cache_t *k;
    char id[24];
    mp_cache_opts_t o = {.url = MP_TEST_REDIS_URL(), .pool_size = 1, .timeout_ms = 300};
    assert_int_equal(mp_cache_create(&k, &o), MP_OK);

    /* killed while idle: replaced at checkout, no error for the caller */
    long long id1 = client_id(k);
    snprintf(id, sizeof(id), "%lld", id1);
    assert_int_equal(cmd_int(cache, "CLIENT KILL ID %s", id), 1);
    long long id2 = client_id(k);
    assert_true(id2 != id1);

    /* a command that times out drops its connection: the late BLPOP answer must not reach the next command */
    assert_int_equal(mp_cache_cmd(NULL, k, "BLPOP %s 1", key("q")), MP_EUNAVAIL);
    assert_non_null(strstr(mp_err_get(), "timed out"));
    assert_int_equal(mp_cache_cmd(NULL, cache, "RPUSH %s late", key("q")), MP_OK);
    redisReply *r = NULL;
    assert_int_equal(mp_cache_cmd(&r, k, "PING"), MP_OK);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    assert_true(client_id(k) != id2);
    mp_cache_destroy(k);
}

typedef struct incr_arg {
    mp_cache_t *k;
    const char *key;
    int failures;
} incr_arg_t;

static void *incr_thread(void *arg)
{
    incr_arg_t *a = arg;
    for (int i = 0; i < 500; i++)
        a->failures += mp_cache_cmd(NULL, a->k, "INCR %s", a->key) != MP_OK;
    return NULL;
}

static void test_cache_concurrent_incr(void **state)
{
    /* four threads on a pool of two: slots are shared and waited for, never used by two threads at once */
    mp_cache_t *k;
    mp_cache_opts_t o = {.url = MP_TEST_REDIS_URL(), .pool_size = 2};
    assert_int_equal(mp_cache_create(&k, &o), MP_OK);
    const char *counter = key("counter");
    assert_int_equal(mp_cache_del(k, counter), MP_OK);
    pthread_t th[4];
    incr_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (incr_arg_t){.k = k, .key = counter};
        pthread_create(&th[i], NULL, incr_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    char *val;
    size_t len;
    assert_int_equal(mp_cache_get(&val, &len, k, counter), MP_OK);
    assert_string_equal(val, "2000");
    free(val);
    mp_cache_destroy(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_binary_round_trip),
        cmocka_unit_test(test_cache_set_ttl),
        cmocka_unit_test(test_cache_get_missing_is_not_found),
        cmocka_unit_test(test_cache_error_reply_is_internal),
        cmocka_unit_test(test_cache_ping),
        cmocka_unit_test(test_cache_bad_url_is_invalid),
        cmocka_unit_test(test_cache_url_selects_db_and_sends_auth),
        cmocka_unit_test(test_cache_unreachable_is_unavailable_quickly),
        cmocka_unit_test(test_cache_reconnects_after_lost_connection),
        cmocka_unit_test(test_cache_concurrent_incr),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
