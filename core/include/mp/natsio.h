/*
 * mp/natsio.h: a minimal NATS client that lives on one libuv loop, for the
 * request-reply hot path of the gateway and the BFFs.
 *
 * Why not nats.c here: nats.c reads on its own thread and delivers each
 * message on a subscription thread, so every reply crossed two thread
 * hand-offs before reaching the loop that owns the request (measured: 15
 * context switches and 250 us of CPU per four-call BFF request). Speaking
 * the protocol on the loop itself removes them: the socket is read by the
 * loop, replies are parsed in place out of the read buffer, and everything
 * a loop iteration publishes leaves in one write. nats.c remains the client
 * for everything else (services, JetStream, subscriptions).
 *
 * Scope: CONNECT (user/password), PING/PONG keep-alive, one subscription
 * (the loop's reply inbox) and any number of request subscriptions in
 * queue groups (a service's endpoints, served on fibers: core/bus_serve_loop.c),
 * HPUB with headers, MSG/HMSG parsing, TLS when the server asks for it,
 * reconnect with back-off, and failover over the servers of a list (a
 * cluster's nodes; core/natsio.c says how). It knows only the listed
 * servers, not those a cluster announces: list every node, or a name that
 * resolves to the living ones. Loop thread only.
 */
#ifndef MP_NATSIO_H
#define MP_NATSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include <openssl/ssl.h>
#include "mp/bus.h"
#include "mp/status.h"

typedef struct mp_natsio mp_natsio_t;

/** A message for the subscription; every pointer is into the read buffer, valid during the callback only. */
typedef void (*mp_natsio_msg_cb)(void *arg, const char *subject, size_t subject_len, const char *hdrs, size_t hdrs_len,
                                 const char *data, size_t len);
/** A message for request subscription `sub` (its index in opts.subs), with its reply subject (may be empty). Every
 *  pointer is into the read buffer, valid during the callback only. */
typedef void (*mp_natsio_req_cb)(void *arg, size_t sub, const char *subject, size_t subject_len, const char *reply,
                                 size_t reply_len, const char *hdrs, size_t hdrs_len, const char *data, size_t len);
/** The connection came up (true) or went down (false): calls in flight will get no reply. Down may come twice for
 *  one loss: at the loss, and for what was held during a failover that found no server. */
typedef void (*mp_natsio_state_cb)(void *arg, bool up);
/** The server refused a publish to `subject` (this user lacks the permission); no reply will come for it. */
typedef void (*mp_natsio_denied_cb)(void *arg, const char *subject, size_t subject_len);

typedef struct mp_natsio_sub {
    const char *subject;
    const char *queue; /* queue group, or NULL */
} mp_natsio_sub_t;
typedef struct mp_natsio_opts {
    const char *url;  /* nats://host:port, or several separated by commas (mp/nats_url.h) */
    const char *user; /* NULL: no credentials */
    const char *password;
    const char *name;            /* connection name shown by the server */
    SSL_CTX *tls;                /* client TLS context, used when the server requires TLS; borrowed */
    const char *subscribe;       /* subscribed on every (re)connect, with sid 1 */
    const mp_natsio_sub_t *subs; /* request subscriptions, also on every (re)connect (sids 2...); copied */
    size_t nsubs;
    mp_natsio_req_cb on_request; /* their messages */
    mp_natsio_msg_cb on_msg;
    mp_natsio_state_cb on_state;
    mp_natsio_denied_cb on_denied; /* optional */
    void *arg;
} mp_natsio_opts_t;

/** Starts connecting (resolving the address now). Errors: MP_EINVAL (bad URL list). Caller owns `*out`; free with
 *  mp_natsio_destroy() on the loop thread. */
mp_status_t mp_natsio_create(mp_natsio_t **out, uv_loop_t *loop, const mp_natsio_opts_t *opts);
/** Closes the connection and frees once libuv has closed the handles (run the loop once more). */
void mp_natsio_destroy(mp_natsio_t *n);
/** True while connected and subscribed. */
bool mp_natsio_ready(const mp_natsio_t *n);
/** Unsubscribes the request subscriptions (for a drain): messages the server sent before it saw this still arrive;
 *  reconnects no longer subscribe them. */
void mp_natsio_unsubscribe_requests(mp_natsio_t *n);
/** True once the request subscriptions are gone on the server's side: after mp_natsio_unsubscribe_requests(), the
 *  PONG to the PING that followed the UNSUBs has come back, so every message the server sent for them has been read
 *  (and handed to on_request); or the connection they were on dropped and no later one subscribed them. False
 *  before mp_natsio_unsubscribe_requests(). Loop thread. */
bool mp_natsio_unsubscribed(const mp_natsio_t *n);
/** Bytes queued or being written (0 once everything published has been handed to the kernel, or when down). */
size_t mp_natsio_unsent(const mp_natsio_t *n);
/** Queues a message with headers; it leaves with everything else queued in this loop iteration. Header names and
 *  values holding CR or LF are dropped (no header injection). While failing over to another server of the list it
 *  is held and leaves once connected there; if no server takes the connection, on_state(false) tells the owner that
 *  it will get no reply. Errors: MP_EUNAVAIL (not connected and not failing over, or too much held), MP_ETOOBIG (over
 *  the server's max_payload). */
mp_status_t mp_natsio_publish(mp_natsio_t *n, const char *subject, const char *reply, const mp_bus_hdr_t *hdrs,
                              size_t nhdrs, const void *data, size_t len);

#endif
