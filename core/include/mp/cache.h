/*
 * mp/cache.h: a hiredis connection pool for Redis.
 *
 * Commands go out either printf-style (hiredis's %s and %b, which send each
 * value as its own bulk string, so values never need escaping) or as an
 * argv vector. A connection that fails is dropped and reopened on its next
 * use, so a Redis restart costs errors only while it is down.
 *
 * Thread-safe pool. Blocking: worker threads only; loop threads that need
 * Redis use hiredis's async API on their own loop.
 */
#ifndef MP_CACHE_H
#define MP_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "mp/status.h"

typedef struct mp_cache mp_cache_t;

typedef struct mp_cache_opts {
    const char *url;      /* redis://[:password@]host[:port][/db]; default redis://127.0.0.1:6379 */
    const char *password; /* overrides the URL's; NULL: none; copied */
    int pool_size;        /* default 4 */
    int timeout_ms;       /* connect and command timeout; default 1000 */
} mp_cache_opts_t;

/** Creates a pool (connects lazily). Errors: MP_EINVAL (bad URL). Caller owns `*out`; free with mp_cache_destroy(). */
mp_status_t mp_cache_create(mp_cache_t **out, const mp_cache_opts_t *opts);
/** Closes every connection and frees. Accepts NULL. */
void mp_cache_destroy(mp_cache_t *cache);

/** Runs a printf-style command (hiredis format: %s for C strings, %b for pointer+length). Caller owns `*reply` (may
 *  be NULL to discard); free with freeReplyObject(). An error reply from Redis is MP_EINTERNAL with its text in
 *  mp_err_get(). Errors: MP_EUNAVAIL (cannot connect, connection lost, timed out). */
mp_status_t mp_cache_cmd(redisReply **reply, mp_cache_t *cache, const char *fmt, ...);
/** Runs a command given as argc strings with lengths. Same contract as mp_cache_cmd(). */
mp_status_t mp_cache_cmdargv(redisReply **reply, mp_cache_t *cache, int argc, const char **argv, const size_t *lens);

/** GET: caller owns `*val` (NUL-terminated; free with free()), `*len` its length. Errors: MP_ENOTFOUND, MP_EUNAVAIL. */
mp_status_t mp_cache_get(char **val, size_t *len, mp_cache_t *cache, const char *key);
/** SET with an expiry in seconds (0: none). */
mp_status_t mp_cache_set(mp_cache_t *cache, const char *key, const void *val, size_t len, int ttl_s);
/** DEL. Deleting a missing key is not an error. */
mp_status_t mp_cache_del(mp_cache_t *cache, const char *key);
/** PING within `timeout_ms`; for /readyz. */
mp_status_t mp_cache_ping(mp_cache_t *cache, int timeout_ms);

#endif
