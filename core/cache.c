/*
 * cache.c: a hiredis connection pool (see mp/cache.h).
 *
 * A fixed array of slots under one mutex; a checked-out slot's redisContext
 * belongs to the thread that holds it, so hiredis runs outside the lock.
 * Contexts are opened lazily (connect timeout, then the command timeout as
 * socket timeouts, then AUTH and SELECT). Any I/O error frees the context,
 * because a reply may still be in flight on it and would answer the next
 * command; the slot reconnects on its next use. An idle context whose
 * socket turned readable (Redis closed it, e.g. on restart or CLIENT KILL)
 * is replaced at checkout, so callers see errors only while Redis is down.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/cache.h"
#include "mp/redis_url.h"

typedef struct slot {
    redisContext *c; /* NULL until first use or after an I/O error */
    bool busy;       /* under cache->mu */
} slot_t;

struct mp_cache {
    char *host, *password;
    int port, db_index, pool_size, timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot_t *slots;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval tv_ms(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* ---- pool ---------------------------------------------------------------- */

mp_status_t mp_cache_create(mp_cache_t **out, const mp_cache_opts_t *opts)
{
    mp_cache_t *k = mp_xcalloc(1, sizeof(*k));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&k->mu, NULL);
    k->pool_size = opts->pool_size > 0 ? opts->pool_size : 4;
    k->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 1000;
    k->slots = mp_xcalloc((size_t)k->pool_size, sizeof(*k->slots));
    mp_redis_url_t u;
    mp_status_t st = mp_redis_url_parse(&u, opts->url ? opts->url : "redis://127.0.0.1:6379");
    if (st != MP_OK) {
        mp_redis_url_dispose(&u);
        mp_cache_destroy(k);
        return st;
    }
    k->host = u.host;
    k->port = u.port;
    k->db_index = u.db;
    k->password = u.password;
    if (opts->password) {
        free(k->password);
        k->password = mp_xstrdup(opts->password);
    }
    *out = k;
    return MP_OK;
}

void mp_cache_destroy(mp_cache_t *cache)
{
    if (cache == NULL)
        return;
    for (int i = 0; i < cache->pool_size; i++)
        if (cache->slots[i].c)
            redisFree(cache->slots[i].c);
    pthread_mutex_destroy(&cache->mu);
    pthread_cond_destroy(&cache->cv);
    free(cache->slots);
    free(cache->host);
    free(cache->password);
    free(cache);
}

/* A command during connection set-up (AUTH, SELECT); an error reply makes the connection unusable. */
static mp_status_t setup_cmd(redisContext *c, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    mp_status_t st = MP_OK;
    if (r == NULL)
        st = mp_err_set(MP_EUNAVAIL, "redis %s: %s", what, c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        st = mp_err_set(MP_EUNAVAIL, "redis %s: %s", what, r->str);
    freeReplyObject(r);
    return st;
}

static mp_status_t open_ctx(redisContext **out, mp_cache_t *k, int connect_ms)
{
    redisContext *c = redisConnectWithTimeout(k->host, k->port, tv_ms(connect_ms));
    mp_status_t st = MP_OK;
    if (c == NULL)
        return mp_err_set(MP_ENOMEM, "redis: out of memory connecting");
    if (c->err)
        st = mp_err_set(MP_EUNAVAIL, "redis %s:%d: %s", k->host, k->port, c->errstr);
    /* the connect timeout covers only connect(2); commands get theirs as socket timeouts */
    if (st == MP_OK && redisSetTimeout(c, tv_ms(k->timeout_ms)) != REDIS_OK)
        st = mp_err_set(MP_EUNAVAIL, "redis: setting the timeout: %s", c->errstr);
    if (st == MP_OK && k->password)
        st = setup_cmd(c, "AUTH", "AUTH %s", k->password);
    if (st == MP_OK && k->db_index)
        st = setup_cmd(c, "SELECT", "SELECT %d", k->db_index);
    if (st != MP_OK) {
        redisFree(c);
        return st;
    }
    *out = c;
    return MP_OK;
}

/* An idle connection has nothing to read: a readable socket means Redis closed it. */
static bool idle_ctx_ok(redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return c->err == 0 && poll(&p, 1, 0) == 0;
}

static void release(mp_cache_t *k, slot_t *s)
{
    pthread_mutex_lock(&k->mu);
    s->busy = false;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static mp_status_t acquire(slot_t **out, mp_cache_t *k, int wait_ms, int connect_ms)
{
    slot_t *s = NULL;
    int64_t deadline = now_ms() + wait_ms;
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    pthread_mutex_lock(&k->mu);
    for (;;) {
        /* prefer a slot that is already connected */
        for (int i = 0; i < k->pool_size; i++)
            if (!k->slots[i].busy && (s == NULL || (s->c == NULL && k->slots[i].c)))
                s = &k->slots[i];
        if (s || now_ms() >= deadline)
            break;
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    if (s)
        s->busy = true;
    pthread_mutex_unlock(&k->mu);
    if (s == NULL)
        return mp_err_set(MP_EUNAVAIL, "redis: no free connection within %d ms (pool of %d)", wait_ms, k->pool_size);
    if (s->c && !idle_ctx_ok(s->c)) {
        redisFree(s->c);
        s->c = NULL;
    }
    if (s->c == NULL) {
        mp_status_t st = open_ctx(&s->c, k, connect_ms);
        if (st != MP_OK) {
            release(k, s);
            return st;
        }
    }
    *out = s;
    return MP_OK;
}

/* Turns a reply into a status, drops the context on I/O errors, and returns the slot to the pool. */
static mp_status_t finish(redisReply **out, mp_cache_t *k, slot_t *s, redisReply *r)
{
    mp_status_t st = MP_OK;
    if (r == NULL || s->c->err) {
        /* hiredis reports a socket timeout as the EAGAIN text */
        bool timeout = s->c->err == REDIS_ERR_IO && strcmp(s->c->errstr, strerror(EAGAIN)) == 0;
        st = mp_err_set(s->c->err == REDIS_ERR_OOM ? MP_ENOMEM : MP_EUNAVAIL, "redis %s:%d: %s", k->host, k->port,
                        timeout           ? "timed out"
                        : s->c->errstr[0] ? s->c->errstr
                                          : "no reply");
        freeReplyObject(r);
        redisFree(s->c); /* a late reply on it would answer the next command */
        s->c = NULL;
    } else if (r->type == REDIS_REPLY_ERROR) {
        /* "unknown command 'X', with args beginning with: ..." quotes values: keep them out of the logs */
        char *args = strstr(r->str, ", with args beginning with");
        st = mp_err_set(MP_EINTERNAL, "redis: %.*s", args ? (int)(args - r->str) : (int)r->len, r->str);
        freeReplyObject(r);
    } else if (out) {
        *out = r;
    } else {
        freeReplyObject(r);
    }
    release(k, s);
    return st;
}

mp_status_t mp_cache_cmd(redisReply **reply, mp_cache_t *cache, const char *fmt, ...)
{
    slot_t *s;
    mp_status_t st = acquire(&s, cache, cache->timeout_ms, cache->timeout_ms);
    if (st != MP_OK)
        return st;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(s->c, fmt, ap);
    va_end(ap);
    return finish(reply, cache, s, r);
}

mp_status_t mp_cache_cmdargv(redisReply **reply, mp_cache_t *cache, int argc, const char **argv, const size_t *lens)
{
    slot_t *s;
    mp_status_t st = acquire(&s, cache, cache->timeout_ms, cache->timeout_ms);
    if (st != MP_OK)
        return st;
    return finish(reply, cache, s, redisCommandArgv(s->c, argc, argv, lens));
}

mp_status_t mp_cache_get(char **val, size_t *len, mp_cache_t *cache, const char *key)
{
    redisReply *r = NULL;
    mp_status_t st = mp_cache_cmd(&r, cache, "GET %s", key);
    if (st != MP_OK)
        return st;
    if (r->type == REDIS_REPLY_NIL) {
        st = mp_err_set(MP_ENOTFOUND, "cache: key not found"); /* keys may embed tokens: not logged */
    } else if (r->type != REDIS_REPLY_STRING) {
        st = mp_err_set(MP_EINTERNAL, "cache: GET answered type %d", r->type);
    } else {
        *val = mp_xstrndup(r->str, r->len); /* NUL-terminated, binary-safe through *len */
        *len = r->len;
    }
    freeReplyObject(r);
    return st;
}

mp_status_t mp_cache_set(mp_cache_t *cache, const char *key, const void *val, size_t len, int ttl_s)
{
    if (ttl_s < 0)
        return mp_err_set(MP_EINVAL, "cache: negative ttl %d", ttl_s);
    /* %b sends the value as one bulk string: binary-safe, nothing to escape */
    if (ttl_s > 0)
        return mp_cache_cmd(NULL, cache, "SET %s %b EX %d", key, val, len, ttl_s);
    return mp_cache_cmd(NULL, cache, "SET %s %b", key, val, len);
}

mp_status_t mp_cache_del(mp_cache_t *cache, const char *key)
{
    return mp_cache_cmd(NULL, cache, "DEL %s", key);
}

mp_status_t mp_cache_ping(mp_cache_t *cache, int timeout_ms)
{
    if (timeout_ms <= 0)
        timeout_ms = cache->timeout_ms;
    int64_t deadline = now_ms() + timeout_ms;
    int connect_ms = timeout_ms < cache->timeout_ms ? timeout_ms : cache->timeout_ms;
    slot_t *s;
    mp_status_t st = acquire(&s, cache, timeout_ms, connect_ms);
    if (st != MP_OK)
        return MP_EUNAVAIL; /* the reason is in mp_err_get() */
    int left = (int)(deadline - now_ms());
    redisReply *r = NULL;
    if (left > 0 && redisSetTimeout(s->c, tv_ms(left)) == REDIS_OK)
        r = redisCommand(s->c, "PING");
    if (r && s->c->err == 0 && redisSetTimeout(s->c, tv_ms(cache->timeout_ms)) != REDIS_OK)
        s->c->err = REDIS_ERR_IO; /* keep no context with the ping's short timeout */
    redisReply *pong = NULL;
    if ((st = finish(&pong, cache, s, r)) != MP_OK)
        return MP_EUNAVAIL; /* an error reply (NOAUTH, LOADING ...) also means not ready */
    if (!(pong->type == REDIS_REPLY_STATUS && strcmp(pong->str, "PONG") == 0))
        st = mp_err_set(MP_EUNAVAIL, "cache ping: unexpected reply");
    freeReplyObject(pong);
    return st;
}
