/*
 * redis_loop.c: a non-blocking Redis connection for one loop thread (see
 * mp/redis_loop.h).
 *
 * hiredis calls each command's callback exactly once: with the reply, or
 * with NULL when the context is freed. That callback owns the command
 * record's lifetime; our own timeout or a cancel only answers the caller
 * early (cmd->cb = NULL) and leaves the record for hiredis to finish. A
 * timed-out command drops the whole context (redisAsyncFree), which makes
 * hiredis finish every record at once, and a uv timer reconnects later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include <h2o.h>
#include "mp/alloc.h"
#include "mp/redis_loop.h"
#include "mp/redis_url.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000

struct mp_redis_cmd {
    h2o_timeout_entry_t timeout;
    mp_redis_loop_t *rl;
    mp_redis_reply_cb cb; /* NULL once the caller was answered */
    void *arg;
};

struct mp_redis_loop {
    uv_loop_t *loop;
    mp_redis_url_t url;
    char **scripts;
    size_t nscripts;
    redisAsyncContext *ac;
    bool ready;
    size_t setup_pending; /* setup replies still due on this connection */
    uint64_t generation;  /* bumped per connection, so a stale setup reply is recognised */
    h2o_timeout_t cmd_timeout, setup_timeout;
    h2o_timeout_entry_t setup_entry;
    uv_timer_t reconnect;
    int backoff_ms;
    bool destroying;
    int closing; /* handles still closing at destroy */
    void (*on_ready)(void *arg, bool ready);
    void *arg;
};

void mp_redis_script_sha(char out[41], const char *script)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- connection state ------------------------------------------------------------------------- */

static void connect_now(mp_redis_loop_t *rl);

static void set_ready(mp_redis_loop_t *rl, bool ready)
{
    if (rl->ready == ready)
        return;
    rl->ready = ready;
    if (rl->on_ready && !rl->destroying)
        rl->on_ready(rl->arg, ready);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_reconnect(mp_redis_loop_t *rl)
{
    if (rl->destroying || uv_is_active((uv_handle_t *)&rl->reconnect))
        return;
    uv_timer_start(&rl->reconnect, on_reconnect_timer, (uint64_t)rl->backoff_ms, 0);
    rl->backoff_ms = rl->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : rl->backoff_ms * 2;
}

/* Forgets the connection: every command on it is finished by hiredis (MP_EUNAVAIL to callers still waiting). */
static void drop(mp_redis_loop_t *rl)
{
    redisAsyncContext *ac = rl->ac;
    rl->ac = NULL;
    rl->generation++;
    if (h2o_timeout_is_linked(&rl->setup_entry))
        h2o_timeout_unlink(&rl->setup_entry);
    set_ready(rl, false);
    if (ac)
        redisAsyncFree(ac);
    schedule_reconnect(rl);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    mp_redis_loop_t *rl = ac->data;
    if (rl && status != REDIS_OK && rl->ac == ac) {
        /* hiredis frees the context itself after a failed connect */
        rl->ac = NULL;
        drop(rl);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    mp_redis_loop_t *rl = ac->data;
    if (rl && rl->ac == ac) { /* lost (Redis closed it); not one we dropped ourselves */
        rl->ac = NULL;
        drop(rl);
    }
}

static void on_setup_timeout(h2o_timeout_entry_t *e)
{
    mp_redis_loop_t *rl = H2O_STRUCT_FROM_MEMBER(mp_redis_loop_t, setup_entry, e);
    drop(rl);
}

/* privdata: the generation the setup command belongs to, smuggled in a pointer */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    mp_redis_loop_t *rl = ac->data;
    redisReply *reply = r;
    if (rl == NULL || rl->destroying || (uint64_t)(uintptr_t)privdata != rl->generation || rl->ac != ac)
        return;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        drop(rl); /* wrong password, unknown db, a script Redis refuses: retry later, stay unready */
        return;
    }
    if (--rl->setup_pending == 0) {
        h2o_timeout_unlink(&rl->setup_entry);
        rl->backoff_ms = RECONNECT_MIN_MS;
        set_ready(rl, true);
    }
}

static void setup_cmd(mp_redis_loop_t *rl, int argc, const char **argv, const size_t *lens)
{
    if (redisAsyncCommandArgv(rl->ac, on_setup_reply, (void *)(uintptr_t)rl->generation, argc, argv, lens) == REDIS_OK)
        rl->setup_pending++;
}

static void connect_now(mp_redis_loop_t *rl)
{
    if (rl->destroying || rl->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(rl->url.host, rl->url.port);
    if (ac == NULL || ac->err || redisLibuvAttach(ac, rl->loop) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(rl);
        return;
    }
    ac->data = rl;
    rl->ac = ac;
    rl->generation++;
    rl->setup_pending = 0;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* queued now, written once the socket connects: one pipelined round trip */
    if (rl->url.password) {
        const char *argv[] = {"AUTH", rl->url.password};
        size_t lens[] = {4, strlen(rl->url.password)};
        setup_cmd(rl, 2, argv, lens);
    }
    if (rl->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", rl->url.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        setup_cmd(rl, 2, argv, lens);
    }
    for (size_t i = 0; i < rl->nscripts; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", rl->scripts[i]};
        size_t lens[] = {6, 4, strlen(rl->scripts[i])};
        setup_cmd(rl, 3, argv, lens);
    }
    const char *ping[] = {"PING"};
    size_t ping_len[] = {4};
    setup_cmd(rl, 1, ping, ping_len); /* at least one reply proves the connection */
    h2o_timeout_link(rl->loop, &rl->setup_timeout, &rl->setup_entry);
}

/* ---- commands ----------------------------------------------------------------------------------- */

static void answer(mp_redis_cmd_t *c, mp_status_t st, redisReply *reply)
{
    mp_redis_reply_cb cb = c->cb;
    c->cb = NULL;
    if (h2o_timeout_is_linked(&c->timeout))
        h2o_timeout_unlink(&c->timeout);
    if (cb)
        cb(c->arg, st, reply);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    mp_redis_cmd_t *c = privdata;
    mp_redis_loop_t *rl = c->rl;
    answer(c, r ? MP_OK : (rl->destroying ? MP_ECANCELED : MP_EUNAVAIL), r);
    free(c);
}

static void on_cmd_timeout(h2o_timeout_entry_t *e)
{
    mp_redis_cmd_t *c = H2O_STRUCT_FROM_MEMBER(mp_redis_cmd_t, timeout, e);
    mp_redis_loop_t *rl = c->rl;
    answer(c, mp_err_set(MP_ETIMEDOUT, "redis did not answer in time"), NULL);
    /* everything queued behind this command is at least as late: start over */
    if (rl->ac)
        drop(rl);
}

mp_status_t mp_redis_loop_cmd(mp_redis_cmd_t **cmd, mp_redis_loop_t *rl, int argc, const char **argv,
                              const size_t *lens, mp_redis_reply_cb cb, void *arg)
{
    if (!rl->ready || rl->ac == NULL)
        return mp_err_set(MP_EUNAVAIL, "redis is not connected");
    mp_redis_cmd_t *c = mp_xcalloc(1, sizeof(*c));
    c->rl = rl;
    c->cb = cb;
    c->arg = arg;
    c->timeout.cb = on_cmd_timeout;
    if (redisAsyncCommandArgv(rl->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return mp_err_set(MP_EUNAVAIL, "redis is disconnecting");
    }
    h2o_timeout_link(rl->loop, &rl->cmd_timeout, &c->timeout);
    if (cmd)
        *cmd = c;
    return MP_OK;
}

void mp_redis_loop_cancel(mp_redis_loop_t *rl, mp_redis_cmd_t *cmd)
{
    if (cmd && cmd->cb)
        answer(cmd, MP_ECANCELED, NULL);
}

bool mp_redis_loop_ready(const mp_redis_loop_t *rl)
{
    return rl->ready;
}

/* ---- life ----------------------------------------------------------------------------------------- */

mp_status_t mp_redis_loop_create(mp_redis_loop_t **out, uv_loop_t *loop, const mp_redis_loop_opts_t *o)
{
    mp_redis_loop_t *rl = mp_xcalloc(1, sizeof(*rl));
    mp_status_t st = mp_redis_url_parse(&rl->url, o->url ? o->url : "redis://127.0.0.1:6379");
    if (st != MP_OK) {
        mp_redis_url_dispose(&rl->url);
        free(rl);
        return st;
    }
    if (o->password) {
        free(rl->url.password);
        rl->url.password = mp_xstrdup(o->password);
    }
    for (const char *const *s = o->scripts; s && *s; s++)
        rl->nscripts++;
    rl->scripts = mp_xcalloc(rl->nscripts + 1, sizeof(*rl->scripts));
    for (size_t i = 0; i < rl->nscripts; i++)
        rl->scripts[i] = mp_xstrdup(o->scripts[i]);
    rl->loop = loop;
    rl->on_ready = o->on_ready;
    rl->arg = o->arg;
    rl->backoff_ms = RECONNECT_MIN_MS;
    h2o_timeout_init(loop, &rl->cmd_timeout, (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms : 50));
    h2o_timeout_init(loop, &rl->setup_timeout, (uint64_t)(o->setup_timeout_ms > 0 ? o->setup_timeout_ms : 1000));
    rl->setup_entry.cb = on_setup_timeout;
    uv_timer_init(loop, &rl->reconnect);
    rl->reconnect.data = rl;
    connect_now(rl);
    *out = rl;
    return MP_OK;
}

static void on_closed(uv_handle_t *h)
{
    mp_redis_loop_t *rl = h->data;
    if (--rl->closing > 0)
        return;
    for (size_t i = 0; i < rl->nscripts; i++)
        free(rl->scripts[i]);
    free(rl->scripts);
    mp_redis_url_dispose(&rl->url);
    free(rl);
}

void mp_redis_loop_destroy(mp_redis_loop_t *rl)
{
    if (rl == NULL)
        return;
    rl->destroying = true;
    redisAsyncContext *ac = rl->ac;
    rl->ac = NULL;
    if (h2o_timeout_is_linked(&rl->setup_entry))
        h2o_timeout_unlink(&rl->setup_entry);
    if (ac) {
        ac->data = NULL; /* setup replies see no owner */
        redisAsyncFree(ac);
    }
    /* three timers to close, in no promised order: the last close callback frees. h2o_timeout_dispose() would
     * close the timeouts' timers without a callback, so they are closed here instead (libuv backend) */
    rl->closing = 3;
    uv_handle_t *timers[] = {(uv_handle_t *)&rl->cmd_timeout._backend.timer,
                             (uv_handle_t *)&rl->setup_timeout._backend.timer, (uv_handle_t *)&rl->reconnect};
    for (int i = 0; i < 3; i++) {
        timers[i]->data = rl;
        uv_close(timers[i], on_closed);
    }
}
