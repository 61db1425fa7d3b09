/*
 * mp/bus.h: the NATS connection every role shares, its messages, and the
 * blocking request-reply used from worker threads.
 *
 * Calls carry moonport's context as NATS headers (CONVENTIONS.md):
 * Request-Id, traceparent, Deadline (absolute unix ms), Auth-Sub and
 * Auth-Roles; replies carry Status (an HTTP code). A reply is an mp_msg_t,
 * which is nats.c's message itself (no copy).
 *
 * Loop threads must never block: they use mp/bus_loop.h instead of
 * mp_bus_request(). Services answer with mp/bus_serve.h.
 *
 * Thread-safe: one mp_bus_t is shared by every thread of the process.
 */
#ifndef MP_BUS_H
#define MP_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nats/nats.h>
#include <openssl/ssl.h>
#include "mp/status.h"

typedef struct mp_bus mp_bus_t;
typedef natsMsg mp_msg_t;

/* header names, shared by every producer and consumer */
#define MP_HDR_REQUEST_ID "Request-Id"
#define MP_HDR_TRACEPARENT "traceparent"
#define MP_HDR_DEADLINE "Deadline"
#define MP_HDR_AUTH_SUB "Auth-Sub"
#define MP_HDR_AUTH_ROLES "Auth-Roles"
#define MP_HDR_STATUS "Status"

typedef struct mp_bus_opts {
    const char *url;              /* nats://host:port[,nats://...] (mp/nats_url.h): a cluster's nodes */
    const char *name;             /* connection name shown by the server */
    const char *user;             /* NULL: no user/password */
    const char *password;         /* borrowed for the call only */
    const char *creds_file;       /* NULL or a .creds file (JWT + nkey seed) */
    const char *ca_file;          /* NULL or CA bundle: enables TLS */
    const char *inbox_prefix;     /* reply subjects start with this (default "_INBOX"); per-role prefixes let
                                   * nats-server permissions give each role only its own replies */
    bool send_asap;               /* write each message at once instead of batching (lower latency) */
    int connect_timeout_ms;       /* default 2000 */
    bool retry_on_failed_connect; /* start even when the server is down, connect in the background */
    int stream_replicas;          /* copies of each JetStream stream this process creates or updates (EVENTS) on a
                                   * cluster's nodes; 0: 1 (a single server) */
} mp_bus_opts_t;

/** A header beyond the context ones (e.g. If-Match passed through). */
typedef struct mp_bus_hdr {
    const char *name;
    const char *value;
} mp_bus_hdr_t;

/** The context a call carries. Any field may be NULL/0. Borrowed for the call. */
typedef struct mp_bus_ctx {
    const char *request_id;
    const char *traceparent;
    const char *auth_sub;
    const char *auth_roles; /* comma-separated */
    int64_t deadline_ms;    /* absolute unix milliseconds; 0: none */
} mp_bus_ctx_t;

typedef struct mp_bus_call {
    const char *subject;
    const void *body;
    size_t len;
    mp_bus_ctx_t ctx;
    const mp_bus_hdr_t *extra;
    size_t nextra;
    int timeout_ms; /* the wait is the smaller of this and what is left before ctx.deadline_ms */
} mp_bus_call_t;

/** Connects. Errors: MP_EUNAVAIL (server unreachable and retry not asked), MP_EINVAL (bad options). Caller owns
 *  `*out`; free with mp_bus_destroy(). */
mp_status_t mp_bus_connect(mp_bus_t **out, const mp_bus_opts_t *opts);
/** Flushes and closes. Accepts NULL. Call after every subscription user is gone. */
void mp_bus_destroy(mp_bus_t *bus);
/** True while connected (false while reconnecting). Any thread. */
bool mp_bus_connected(mp_bus_t *bus);
/** A round trip to the server (PING, wait for its PONG), bounded by `timeout_ms`: what readiness asks, since a
 *  frozen server still looks connected. Blocks the caller up to `timeout_ms`. Errors: MP_EUNAVAIL (not connected,
 *  or the connection failed), MP_ETIMEDOUT (no answer in time). Any thread. */
mp_status_t mp_bus_ping(mp_bus_t *bus, int timeout_ms);
/** The nats.c connection, for JetStream and subscriptions. Borrowed. */
natsConnection *mp_bus_conn(mp_bus_t *bus);
/** The prefix of this connection's reply subjects ("_INBOX" or the configured one), for inboxes made outside
 *  nats.c's request API (mp/bus_loop.h). Borrowed; valid until mp_bus_destroy(). Any thread. */
const char *mp_bus_inbox_prefix(const mp_bus_t *bus);

/** Sends a request and waits for the reply (blocking: worker threads only). Caller owns `*reply`; free with
 *  mp_msg_destroy(). Errors: MP_ETIMEDOUT, MP_EUNAVAIL (no responder, or disconnected). The reply's own Status is
 *  not an error here: read it with mp_msg_status(). */
mp_status_t mp_bus_request(mp_msg_t **reply, mp_bus_t *bus, const mp_bus_call_t *call);
/** Publishes a message (no reply expected) with the call's headers. `call->timeout_ms` is ignored. */
mp_status_t mp_bus_publish(mp_bus_t *bus, const mp_bus_call_t *call);

/**
 * Builds the nats message for `call` with reply subject `reply_to` (may be NULL). Caller owns `*out` (free with
 * mp_msg_destroy()). Used by the async and serving layers; exported for them.
 */
mp_status_t mp_bus__build_msg(mp_msg_t **out, const mp_bus_call_t *call, const char *reply_to, int64_t now_ms);

/** The message's payload. Borrowed; valid until the message is destroyed. */
const char *mp_msg_data(const mp_msg_t *m);
/** The payload length. */
size_t mp_msg_len(const mp_msg_t *m);
/** A header's first value, or NULL. Borrowed; valid until the message is destroyed. */
const char *mp_msg_header(mp_msg_t *m, const char *name);
/** The reply's Status header as an HTTP code; 200 when absent; 502 when not a valid code. */
int mp_msg_status(mp_msg_t *m);
/** The message's subject. Borrowed. */
const char *mp_msg_subject(const mp_msg_t *m);
/** Frees a message. Accepts NULL. */
void mp_msg_destroy(mp_msg_t *m);

/** A reply seen by a loop thread (mp/bus_loop.h): points into a read buffer, valid during the callback only. */
typedef struct mp_reply {
    int status;       /* the Status header as an HTTP code (200 when absent, 502 when unusable) */
    const char *data; /* the payload */
    size_t len;
    const char *hdrs; /* the raw header block ("NATS/1.0\r\nName: value\r\n...\r\n"), or NULL */
    size_t hdrs_len;
} mp_reply_t;

/** One "Name: value" line of a raw header block, value trimmed; pointers into the block. */
typedef struct mp_hdr_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} mp_hdr_field_t;
/** Reads the next field at *at (before `end`; start past the "NATS/1.0" status line) and moves *at on; false at the
 *  end. Lines without a colon are skipped. */
bool mp_hdr_next(const char **at, const char *end, mp_hdr_field_t *f);

/** A header of `r` by name (case-insensitive): its value and *len, or NULL. Points into the reply. */
const char *mp_reply_header(const mp_reply_t *r, const char *name, size_t *len);

/** The options the bus was connected with (loop connections reuse them), and a client TLS context when
 *  nats.ca_file is set (NULL otherwise). Borrowed; valid until the bus is destroyed. */
const mp_bus_opts_t *mp_bus__opts(const mp_bus_t *bus);
SSL_CTX *mp_bus__tls(mp_bus_t *bus);

/** A way to send a request other than nats.c's blocking one: returns false to decline (nats.c is used), else sets
 *  *st and, on MP_OK, *reply. Installed by core/bus_serve_loop.c so a handler on a serving fiber parks the fiber,
 *  not its thread. Once, before serving. */
typedef bool (*mp_bus_request_hook)(mp_status_t *st, mp_msg_t **reply, const mp_bus_call_t *call);
void mp_bus__set_request_hook(mp_bus_request_hook hook);

/** Current wall-clock time in unix milliseconds (the unit of the Deadline header). Any thread. */
int64_t mp_now_ms(void);
/** Maps a nats.c status to ours, recording nats.c's text with mp_err_set(). */
mp_status_t mp_bus__from_nats(natsStatus s);

#endif
