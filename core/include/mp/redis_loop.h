/*
 * mp/redis_loop.h: Redis from an h2o loop thread without ever blocking it:
 * one hiredis async connection per loop, driven by hiredis's libuv adapter.
 *
 * Every command has a deadline (`timeout_ms`, a fixed h2o_timeout for the
 * loop). A command past it is answered MP_ETIMEDOUT at once, and the
 * connection is dropped and reopened in the background (with backoff, 100 ms
 * doubling up to 2 s), because a Redis that does not answer in time cannot
 * be trusted to answer the commands queued behind it. On connect the module
 * sends AUTH / SELECT as the URL says and SCRIPT LOAD for every script given
 * at creation; the connection is *ready* only when all of those answered.
 * While it is not ready, commands fail at once with MP_EUNAVAIL, so callers
 * fall back immediately instead of waiting.
 *
 * Callback contract (libuv's): if mp_redis_loop_cmd() returns anything but
 * MP_OK the callback never runs; otherwise it runs exactly once on the loop
 * thread, never from inside mp_redis_loop_cmd(): with MP_OK and the reply
 * (an error reply is MP_OK too; look at reply->type), MP_ETIMEDOUT,
 * MP_EUNAVAIL (connection lost) or MP_ECANCELED (mp_redis_loop_cancel() or
 * destroy). The reply is borrowed for the callback's duration.
 *
 * Thread affinity: everything belongs to the loop thread that created it.
 */
#ifndef MP_REDIS_LOOP_H
#define MP_REDIS_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include "mp/status.h"

typedef struct mp_redis_loop mp_redis_loop_t;
typedef struct mp_redis_cmd mp_redis_cmd_t;

typedef void (*mp_redis_reply_cb)(void *arg, mp_status_t st, redisReply *reply);

typedef struct mp_redis_loop_opts {
    const char *url;            /* redis://[:password@]host[:port][/db] */
    const char *password;       /* overrides the URL's; NULL: the URL's or none; copied */
    int timeout_ms;             /* per command; default 50 */
    int setup_timeout_ms;       /* connect + AUTH/SELECT/SCRIPT LOAD; default 1000 */
    const char *const *scripts; /* NULL-terminated Lua bodies to SCRIPT LOAD on every connect; may be NULL */
    void (*on_ready)(void *arg, bool ready); /* each time readiness changes; loop thread */
    void *arg;
} mp_redis_loop_opts_t;

/** Creates the connection state and starts connecting. Errors: MP_EINVAL (bad URL). Caller owns `*out`; destroy it
 *  with mp_redis_loop_destroy() on the same thread. */
mp_status_t mp_redis_loop_create(mp_redis_loop_t **out, uv_loop_t *loop, const mp_redis_loop_opts_t *opts);

/** Cancels every command in flight (callbacks run with MP_ECANCELED), closes the connection and frees (the memory
 *  goes when the loop next runs its close callbacks). Accepts NULL. */
void mp_redis_loop_destroy(mp_redis_loop_t *rl);

/** True when connected and set up: commands will be sent. */
bool mp_redis_loop_ready(const mp_redis_loop_t *rl);

/** Sends a command given as `argc` strings with lengths. `*cmd` (may be NULL) receives a handle for
 *  mp_redis_loop_cancel(), valid until the callback runs. Errors (callback will not run): MP_EUNAVAIL (not ready). */
mp_status_t mp_redis_loop_cmd(mp_redis_cmd_t **cmd, mp_redis_loop_t *rl, int argc, const char **argv,
                              const size_t *lens, mp_redis_reply_cb cb, void *arg);

/** Runs the command's callback now with MP_ECANCELED; the reply, when it comes, is dropped. */
void mp_redis_loop_cancel(mp_redis_loop_t *rl, mp_redis_cmd_t *cmd);

/** The SHA1 (40 hex digits and a NUL) that EVALSHA needs for the script body `script`. */
void mp_redis_script_sha(char out[41], const char *script);

#endif
