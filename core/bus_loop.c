/*
 * bus_loop.c: non-blocking NATS requests for one loop thread (see
 * mp/bus_loop.h).
 *
 * Deadlines live in a binary min-heap of (due, seq) pairs with lazy
 * deletion: a call answered early stays in the heap until its due time and
 * is skipped then, because its seq is no longer in the call table. One uv
 * timer is armed for the earliest due time. This keeps the common path (a
 * reply arriving in time) at one hash delete and no heap work.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/bus_loop.h"
#include "mp/u64map.h"

typedef struct call {
    uint64_t seq;
    mp_bus_reply_cb cb;
    void *arg;
    struct call *next_free;
} call_t;

typedef struct due {
    uint64_t at; /* uv_now() milliseconds */
    uint64_t seq;
} due_t;

/* a reply on its way from a nats.c thread to the loop */
typedef struct handoff {
    h2o_multithread_message_t super;
    natsMsg *msg;
} handoff_t;

struct mp_bus_loop {
    mp_bus_t *bus;
    uv_loop_t *loop;
    h2o_multithread_receiver_t receiver;
    natsSubscription *sub;
    char inbox[160];
    size_t inbox_len;
    uint64_t next_seq;
    mp_u64map_t calls;
    call_t *free_calls;
    due_t *heap;
    size_t heap_len, heap_cap;
    uv_timer_t timer;
    uint64_t timer_at; /* 0: not armed */
    pthread_mutex_t done_mu;
    pthread_cond_t done_cv;
    int sub_done;
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

static void call_free(mp_bus_loop_t *bl, call_t *c)
{
    c->next_free = bl->free_calls;
    bl->free_calls = c;
}

/* Removes the call and runs its callback: the only way a callback runs. */
static void finish(mp_bus_loop_t *bl, uint64_t seq, mp_status_t st, natsMsg *reply)
{
    call_t *c = mp_u64map_del(&bl->calls, seq);
    if (c == NULL) {
        natsMsg_Destroy(reply); /* late reply to a call that timed out or was cancelled */
        return;
    }
    mp_bus_reply_cb cb = c->cb;
    void *arg = c->arg;
    call_free(bl, c);
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

/* nats.c thread: hand the reply to the loop, touch nothing else. */
static void on_nats_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    mp_bus_loop_t *bl = closure;
    handoff_t *h = mp_xmalloc(sizeof(*h));
    memset(&h->super, 0, sizeof(h->super));
    h->msg = msg;
    h2o_multithread_send_message(&bl->receiver, &h->super);
}

static void on_sub_complete(void *closure)
{
    mp_bus_loop_t *bl = closure;
    pthread_mutex_lock(&bl->done_mu);
    bl->sub_done = 1;
    pthread_cond_signal(&bl->done_cv);
    pthread_mutex_unlock(&bl->done_mu);
}

static uint64_t seq_of(const mp_bus_loop_t *bl, const char *subject)
{
    if (subject == NULL || strncmp(subject, bl->inbox, bl->inbox_len) != 0 || subject[bl->inbox_len] != '.')
        return 0;
    return strtoull(subject + bl->inbox_len + 1, NULL, 10);
}

/* loop thread: match each reply with its call */
static void on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    mp_bus_loop_t *bl = H2O_STRUCT_FROM_MEMBER(mp_bus_loop_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        handoff_t *h = H2O_STRUCT_FROM_MEMBER(handoff_t, super.link, messages->next);
        h2o_linklist_unlink(&h->super.link);
        natsMsg *msg = h->msg;
        free(h);
        uint64_t seq = seq_of(bl, natsMsg_GetSubject(msg));
        if (natsMsg_IsNoResponders(msg)) {
            natsMsg_Destroy(msg);
            finish(bl, seq, mp_err_set(MP_EUNAVAIL, "no service is listening"), NULL);
        } else {
            finish(bl, seq, MP_OK, msg);
        }
    }
}

/* ---- public API -------------------------------------------------------- */

mp_status_t mp_bus_loop_create(mp_bus_loop_t **out, mp_bus_t *bus, uv_loop_t *loop, h2o_multithread_queue_t *queue)
{
    mp_bus_loop_t *bl = mp_xcalloc(1, sizeof(*bl));
    natsInbox *inbox = NULL;
    char pattern[176];

    bl->bus = bus;
    bl->loop = loop;
    bl->next_seq = 1;
    pthread_mutex_init(&bl->done_mu, NULL);
    pthread_cond_init(&bl->done_cv, NULL);
    natsStatus s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        /* nats.c's inbox is "_INBOX.<nuid>": keep the unique part under this connection's prefix, so the
         * server's permissions for this role's replies cover it */
        const char *nuid = strrchr((const char *)inbox, '.');
        snprintf(bl->inbox, sizeof(bl->inbox), "%s.%s", mp_bus_inbox_prefix(bus),
                 nuid ? nuid + 1 : (const char *)inbox);
        bl->inbox_len = strlen(bl->inbox);
        natsInbox_Destroy(inbox);
        snprintf(pattern, sizeof(pattern), "%s.*", bl->inbox);
        s = natsConnection_Subscribe(&bl->sub, mp_bus_conn(bus), pattern, on_nats_reply, bl);
    }
    /* a burst of replies must not be dropped as a slow consumer */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(bl->sub, -1, -1);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(bl->sub, on_sub_complete, bl);
    if (s != NATS_OK) {
        mp_status_t st = mp_bus__from_nats(s);
        natsSubscription_Destroy(bl->sub);
        pthread_mutex_destroy(&bl->done_mu);
        pthread_cond_destroy(&bl->done_cv);
        free(bl);
        return st;
    }
    h2o_multithread_register_receiver(queue, &bl->receiver, on_replies);
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
    pthread_mutex_destroy(&bl->done_mu);
    pthread_cond_destroy(&bl->done_cv);
    free(bl);
}

void mp_bus_loop_destroy(mp_bus_loop_t *bl)
{
    if (bl == NULL)
        return;
    /* stop deliveries, and wait until nats.c has left our callback for good */
    natsSubscription_Unsubscribe(bl->sub);
    pthread_mutex_lock(&bl->done_mu);
    while (!bl->sub_done)
        pthread_cond_wait(&bl->done_cv, &bl->done_mu);
    pthread_mutex_unlock(&bl->done_mu);
    natsSubscription_Destroy(bl->sub);
    /* replies already handed over are still queued for this loop: take them now */
    uv_run(bl->loop, UV_RUN_NOWAIT);
    while (bl->calls.len > 0) {
        for (size_t i = 0; i < bl->calls.cap; i++)
            if (bl->calls.keys[i])
                finish(bl, bl->calls.keys[i], MP_ECANCELED, NULL);
    }
    h2o_multithread_unregister_receiver(bl->receiver.queue, &bl->receiver);
    uv_timer_stop(&bl->timer);
    uv_close((uv_handle_t *)&bl->timer, on_timer_closed);
}

mp_status_t mp_bus_call_async(uint64_t *id, mp_bus_loop_t *bl, const mp_bus_call_t *call, mp_bus_reply_cb cb, void *arg)
{
    char reply_to[192];
    int64_t now = mp_now_ms();
    int64_t timeout = call->timeout_ms > 0 ? call->timeout_ms : 5000;
    mp_msg_t *m = NULL;
    mp_status_t st;

    if (call->ctx.deadline_ms > 0 && call->ctx.deadline_ms - now < timeout)
        timeout = call->ctx.deadline_ms - now;
    if (timeout <= 0)
        return mp_err_set(MP_ETIMEDOUT, "deadline passed before calling %s", call->subject);

    uint64_t seq = bl->next_seq++;
    snprintf(reply_to, sizeof(reply_to), "%s.%" PRIu64, bl->inbox, seq);
    if ((st = mp_bus__build_msg(&m, call, reply_to, now)) != MP_OK)
        return st;
    natsStatus s = natsConnection_PublishMsg(mp_bus_conn(bl->bus), m);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        return mp_bus__from_nats(s);

    call_t *c = call_new(bl);
    c->seq = seq;
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
