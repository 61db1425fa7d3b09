/*
 * bus_loop.c: non-blocking NATS requests for one loop thread (see
 * mp/bus_loop.h), on the loop's own connection (core/natsio.c).
 *
 * Deadlines live in a binary min-heap of (due, seq) pairs with lazy
 * deletion: a call answered early stays in the heap until its due time and
 * is skipped then, because its seq is no longer in the call table. One uv
 * timer is armed for the earliest due time. This keeps the common path (a
 * reply arriving in time) at one hash delete and no heap work.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "mp/bus_loop.h"
#include "mp/natsio.h"
#include "mp/reqctx.h"
#include "mp/u64map.h"

typedef struct call {
    uint64_t seq;
    uint64_t subject_hash; /* to fail it at once if the server refuses its subject */
    mp_bus_reply_cb cb;
    void *arg;
    struct call *next_free;
} call_t;

typedef struct due {
    uint64_t at; /* uv_now() milliseconds */
    uint64_t seq;
} due_t;

struct mp_bus_loop {
    mp_bus_t *bus;
    uv_loop_t *loop;
    mp_natsio_t *io;
    char inbox[160];
    size_t inbox_len;
    uint64_t next_seq;
    mp_u64map_t calls;
    call_t *free_calls;
    due_t *heap;
    size_t heap_len, heap_cap;
    uv_timer_t timer;
    uint64_t timer_at; /* 0: not armed */
};

/* ---- call records ------------------------------------------------------ */

static call_t *call_new(mp_bus_loop_t *bl)
{
    call_t *c = bl->free_calls;
    if (c != NULL)
        bl->free_calls = c->next_free;
    else
        c = mp_xmalloc(sizeof(*c));
    return c;
}

/* Removes the call and runs its callback: the only way a callback runs. */
static void finish(mp_bus_loop_t *bl, uint64_t seq, mp_status_t st, const mp_reply_t *reply)
{
    call_t *c = mp_u64map_del(&bl->calls, seq);
    if (c == NULL)
        return; /* a late reply to a call that timed out or was cancelled */
    mp_bus_reply_cb cb = c->cb;
    void *arg = c->arg;
    c->next_free = bl->free_calls;
    bl->free_calls = c;
    cb(arg, st, reply);
}

/* ---- deadline heap ----------------------------------------------------- */

static void heap_push(mp_bus_loop_t *bl, due_t d)
{
    if (bl->heap_len == bl->heap_cap) {
        bl->heap_cap = bl->heap_cap ? bl->heap_cap * 2 : 64;
        bl->heap = mp_xrealloc(bl->heap, bl->heap_cap * sizeof(*bl->heap));
    }
    size_t i = bl->heap_len++;
    while (i > 0 && bl->heap[(i - 1) / 2].at > d.at) {
        bl->heap[i] = bl->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    bl->heap[i] = d;
}

static due_t heap_pop(mp_bus_loop_t *bl)
{
    due_t top = bl->heap[0], last = bl->heap[--bl->heap_len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const due_t *cur = &last;
        if (l < bl->heap_len && bl->heap[l].at < cur->at)
            m = l, cur = &bl->heap[l];
        if (r < bl->heap_len && bl->heap[r].at < cur->at)
            m = r;
        if (m == i)
            break;
        bl->heap[i] = bl->heap[m];
        i = m;
    }
    if (bl->heap_len > 0)
        bl->heap[i] = last;
    return top;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(mp_bus_loop_t *bl)
{
    if (bl->heap_len == 0) {
        if (bl->timer_at) {
            uv_timer_stop(&bl->timer);
            bl->timer_at = 0;
        }
        return;
    }
    uint64_t at = bl->heap[0].at;
    if (bl->timer_at == at)
        return;
    uint64_t now = uv_now(bl->loop);
    uv_timer_start(&bl->timer, on_timer, at > now ? at - now : 0, 0);
    bl->timer_at = at;
}

static void on_timer(uv_timer_t *t)
{
    mp_bus_loop_t *bl = t->data;
    uint64_t now = uv_now(bl->loop);
    bl->timer_at = 0;
    while (bl->heap_len > 0 && bl->heap[0].at <= now) {
        due_t d = heap_pop(bl);
        if (mp_u64map_get(&bl->calls, d.seq) != NULL)
            finish(bl, d.seq, mp_err_set(MP_ETIMEDOUT, "no reply before the deadline"), NULL);
    }
    /* drop stale entries at the top so the timer is not armed for answered calls */
    while (bl->heap_len > 0 && mp_u64map_get(&bl->calls, bl->heap[0].seq) == NULL)
        heap_pop(bl);
    arm_timer(bl);
}

/* ---- replies ----------------------------------------------------------- */

static uint64_t seq_of(const mp_bus_loop_t *bl, const char *subject, size_t len)
{
    if (len <= bl->inbox_len + 1 || memcmp(subject, bl->inbox, bl->inbox_len) != 0 || subject[bl->inbox_len] != '.')
        return 0;
    uint64_t seq = 0;
    for (size_t i = bl->inbox_len + 1; i < len; i++) {
        if (subject[i] < '0' || subject[i] > '9')
            return 0;
        seq = seq * 10 + (uint64_t)(subject[i] - '0');
    }
    return seq;
}

/* The status line's code ("NATS/1.0 503") or the Status header. */
static int reply_status(const mp_reply_t *r, bool *no_responders)
{
    *no_responders = false;
    if (r->hdrs == NULL)
        return 200;
    if (r->hdrs_len >= 12 && memcmp(r->hdrs, "NATS/1.0 503", 12) == 0 && r->len == 0) {
        *no_responders = true; /* the server says nobody subscribes to the subject */
        return 503;
    }
    size_t n = 0;
    const char *v = mp_reply_header(r, MP_HDR_STATUS, &n);
    if (v == NULL)
        return 200;
    int code = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 502;
        code = code * 10 + (v[i] - '0');
    }
    return n == 3 && code >= 100 && code <= 599 ? code : 502;
}

static void on_msg(void *arg, const char *subject, size_t slen, const char *hdrs, size_t hlen, const char *data,
                   size_t len)
{
    mp_bus_loop_t *bl = arg;
    uint64_t seq = seq_of(bl, subject, slen);
    mp_reply_t r = {.data = data, .len = len, .hdrs = hlen ? hdrs : NULL, .hdrs_len = hlen};
    bool none;
    r.status = reply_status(&r, &none);
    if (none)
        finish(bl, seq, mp_err_set(MP_EUNAVAIL, "no service is listening"), NULL);
    else
        finish(bl, seq, MP_OK, &r);
}

/* FNV-1a: calls remember their subject by this, not by a copy. */
static uint64_t subject_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* nats-server refused a publish: this role may not call the subject, so its calls fail now, not at the deadline.
 * Every pending call is in the deadline heap; matches are collected first because a callback may start calls. */
static void on_denied(void *arg, const char *subject, size_t len)
{
    mp_bus_loop_t *bl = arg;
    uint64_t h = subject_hash(subject, len), *seqs = NULL;
    size_t n = 0;
    for (size_t i = 0; i < bl->heap_len; i++) {
        call_t *c = mp_u64map_get(&bl->calls, bl->heap[i].seq);
        if (c != NULL && c->subject_hash == h) {
            seqs = mp_xrealloc(seqs, (n + 1) * sizeof(*seqs));
            seqs[n++] = c->seq;
        }
    }
    for (size_t i = 0; i < n; i++)
        finish(bl, seqs[i], mp_err_set(MP_EUNAVAIL, "this role may not call %.*s", (int)len, subject), NULL);
    free(seqs);
}

/* The connection dropped: no reply can come for anything in flight. */
static void on_state(void *arg, bool up)
{
    mp_bus_loop_t *bl = arg;
    if (up)
        return;
    while (bl->calls.len > 0)
        for (size_t i = 0; i < bl->calls.cap; i++)
            if (bl->calls.keys[i])
                finish(bl, bl->calls.keys[i], mp_err_set(MP_EUNAVAIL, "the NATS connection dropped"), NULL);
}

/* ---- public API -------------------------------------------------------- */

mp_status_t mp_bus_loop_create(mp_bus_loop_t **out, mp_bus_t *bus, uv_loop_t *loop)
{
    mp_bus_loop_t *bl = mp_xcalloc(1, sizeof(*bl));
    char id[33], pattern[176];
    const mp_bus_opts_t *bo = mp_bus__opts(bus);
    bl->bus = bus;
    bl->loop = loop;
    bl->next_seq = 1;
    mp_rand_hex(id, 12);
    /* under this role's inbox prefix, so nats-server's permissions give it its own replies and no one else's */
    snprintf(bl->inbox, sizeof(bl->inbox), "%s.%s", mp_bus_inbox_prefix(bus), id);
    bl->inbox_len = strlen(bl->inbox);
    snprintf(pattern, sizeof(pattern), "%s.*", bl->inbox);
    mp_natsio_opts_t o = {.url = bo->url,
                          .user = bo->user,
                          .password = bo->password,
                          .name = bo->name,
                          .tls = mp_bus__tls(bus),
                          .subscribe = pattern,
                          .on_msg = on_msg,
                          .on_state = on_state,
                          .on_denied = on_denied,
                          .arg = bl};
    mp_status_t st = mp_natsio_create(&bl->io, loop, &o);
    if (st != MP_OK) {
        free(bl);
        return st;
    }
    uv_timer_init(loop, &bl->timer);
    bl->timer.data = bl;
    *out = bl;
    return MP_OK;
}

static void on_timer_closed(uv_handle_t *h)
{
    mp_bus_loop_t *bl = h->data;
    while (bl->free_calls) {
        call_t *c = bl->free_calls;
        bl->free_calls = c->next_free;
        free(c);
    }
    free(bl->heap);
    mp_u64map_dispose(&bl->calls);
    free(bl);
}

void mp_bus_loop_destroy(mp_bus_loop_t *bl)
{
    if (bl == NULL)
        return;
    while (bl->calls.len > 0)
        for (size_t i = 0; i < bl->calls.cap; i++)
            if (bl->calls.keys[i])
                finish(bl, bl->calls.keys[i], MP_ECANCELED, NULL);
    mp_natsio_destroy(bl->io);
    uv_timer_stop(&bl->timer);
    uv_close((uv_handle_t *)&bl->timer, on_timer_closed);
}

bool mp_bus_loop_ready(const mp_bus_loop_t *bl)
{
    return mp_natsio_ready(bl->io);
}

mp_status_t mp_bus_call_async(uint64_t *id, mp_bus_loop_t *bl, const mp_bus_call_t *call, mp_bus_reply_cb cb, void *arg)
{
    char reply_to[192], deadline[24];
    int64_t now = mp_now_ms();
    int64_t timeout = call->timeout_ms > 0 ? call->timeout_ms : 5000;
    mp_bus_hdr_t hdrs[16];
    size_t n = 0;

    if (call->ctx.deadline_ms > 0 && call->ctx.deadline_ms - now < timeout)
        timeout = call->ctx.deadline_ms - now;
    if (timeout <= 0)
        return mp_err_set(MP_ETIMEDOUT, "deadline passed before calling %s", call->subject);
    mp_u64_dec(deadline, (uint64_t)(call->ctx.deadline_ms > 0 ? call->ctx.deadline_ms : now + timeout));
    hdrs[n++] = (mp_bus_hdr_t){MP_HDR_REQUEST_ID, call->ctx.request_id};
    hdrs[n++] = (mp_bus_hdr_t){MP_HDR_TRACEPARENT, call->ctx.traceparent};
    hdrs[n++] = (mp_bus_hdr_t){MP_HDR_AUTH_SUB, call->ctx.auth_sub};
    hdrs[n++] = (mp_bus_hdr_t){MP_HDR_AUTH_ROLES, call->ctx.auth_roles};
    hdrs[n++] = (mp_bus_hdr_t){MP_HDR_DEADLINE, deadline};
    for (size_t i = 0; i < call->nextra && n < 16; i++)
        hdrs[n++] = call->extra[i];

    uint64_t seq = bl->next_seq++;
    memcpy(reply_to, bl->inbox, bl->inbox_len); /* "<inbox>.<seq>", without snprintf on the hot path */
    reply_to[bl->inbox_len] = '.';
    mp_u64_dec(reply_to + bl->inbox_len + 1, seq);
    mp_status_t st = mp_natsio_publish(bl->io, call->subject, reply_to, hdrs, n, call->body, call->len);
    if (st != MP_OK)
        return st;
    call_t *c = call_new(bl);
    c->seq = seq;
    c->subject_hash = subject_hash(call->subject, strlen(call->subject));
    c->cb = cb;
    c->arg = arg;
    mp_u64map_put(&bl->calls, seq, c);
    heap_push(bl, (due_t){uv_now(bl->loop) + (uint64_t)timeout, seq});
    arm_timer(bl);
    if (id)
        *id = seq;
    return MP_OK;
}

void mp_bus_cancel(mp_bus_loop_t *bl, uint64_t id)
{
    if (mp_u64map_get(&bl->calls, id) != NULL)
        finish(bl, id, MP_ECANCELED, NULL);
}

size_t mp_bus_loop_pending(const mp_bus_loop_t *bl)
{
    return bl->calls.len;
}
