/*
 * natsio.c: the loop-native NATS client (see mp/natsio.h).
 *
 * Connection life: resolve -> TCP connect -> read INFO -> (TLS handshake if
 * the server requires it) -> CONNECT + PING + SUB -> PONG means ready, all
 * within CONNECT_TIMEOUT_MS. Any read or write error, -ERR (but a
 * permissions violation, which refuses one message only), or two unanswered
 * keep-alive PINGs close the socket, tell the owner (its calls in flight
 * fail at once), and connect again.
 *
 * Servers: `url` may list several (a cluster's nodes). A connection starts
 * at a random one, so a process's loops spread over the nodes. A lost
 * connection tries the others in turn at once, the lost one last; only after
 * every server failed once does it back off, from 100 ms up to 2 s, before
 * the next round. During that first round (failover) publishes are held, up
 * to HOLD_MAX bytes, and sent once the next server took the connection, so
 * a node's crash costs only the calls that were in flight on it; when no
 * server takes it, the held calls fail as calls made while disconnected do.
 *
 * Writes: publishes append to `out`; a uv_prepare handle (it runs every
 * iteration right before the loop blocks for I/O) hands `out` to
 * h2o_socket_write, keeping one write in flight and double-buffering the
 * next. So everything a loop iteration publishes leaves in one write.
 */
#define _GNU_SOURCE
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <h2o.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "mp/log.h"
#include "mp/nats_url.h"
#include "mp/natsio.h"
#include "mp/reqctx.h"

#define PING_INTERVAL_MS 20000
#define MAX_BACKOFF_MS 2000
#define CONNECT_TIMEOUT_MS 2000 /* from TCP connect to PONG: a frozen server accepts but never sends INFO */
#define HOLD_MAX (1024 * 1024)  /* publishes held during a failover */

typedef enum { S_IDLE, S_CONNECTING, S_INFO, S_TLS, S_AWAIT_PONG, S_READY } state_t;

struct mp_natsio {
    uv_loop_t *loop;
    mp_natsio_opts_t o;
    char *user, *password, *name, *subscribe;
    mp_natsio_sub_t *subs; /* copies of opts.subs */
    size_t nsubs;
    bool subs_off;             /* unsubscribed for a drain */
    uint64_t denied_logged_ms; /* last permissions-violation log line */
    mp_nats_url_t servers;
    size_t cur;      /* the server in use or being tried */
    size_t tried;    /* servers tried since the connection was last ready or the last back-off */
    bool failover;   /* a ready connection was lost and the other servers get their first try: publishes wait */
    char where[272]; /* "host:port" of the current server, for the log */
    h2o_socket_t *sock;
    state_t state;
    mp_buf_t out, wbuf;
    mp_buf_t held;        /* published during a failover, sent once connected */
    uv_prepare_t flusher; /* runs right before the loop blocks: everything queued this iteration leaves then */
    uv_timer_t retry;     /* the back-off before the next attempt, or the attempt's connect timeout */
    uv_timer_t pinger;
    int backoff_ms;
    int pings_out;
    uint64_t pings_sent, pongs_got; /* on this connection: PONGs come back in the order of the PINGs */
    uint64_t unsub_ping;            /* the PING sent after a drain's UNSUBs (0: none in flight on this connection) */
    size_t max_payload;
    int closing, handles_open;
    int64_t last_log;
};

static void start_connect(mp_natsio_t *n);
static void drop(mp_natsio_t *n, const char *why);

/* ---- writing ------------------------------------------------------------------------ */

static void on_written(h2o_socket_t *sock, const char *err);

static void flush(mp_natsio_t *n)
{
    if (n->sock == NULL || h2o_socket_is_writing(n->sock) || n->out.len == 0)
        return;
    mp_buf_t t = n->wbuf; /* swap: `out` goes out, the old write buffer collects the next batch */
    n->wbuf = n->out;
    n->out = t;
    mp_buf_reset(&n->out);
    h2o_iovec_t iov = h2o_iovec_init(n->wbuf.base, n->wbuf.len);
    h2o_socket_write(n->sock, &iov, 1, on_written);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    mp_natsio_t *n = sock->data;
    if (err != NULL) {
        drop(n, err);
        return;
    }
    mp_buf_reset(&n->wbuf);
    flush(n);
}

static void on_prepare(uv_prepare_t *h)
{
    mp_natsio_t *n = h->data;
    flush(n);
    if (n->out.len == 0)
        uv_prepare_stop(&n->flusher);
}

static void queue(mp_natsio_t *n, const char *p, size_t len)
{
    mp_buf_append(&n->out, p, len);
    if (n->out.len > 64 * 1024)
        flush(n);
    else if (!uv_is_active((uv_handle_t *)&n->flusher))
        uv_prepare_start(&n->flusher, on_prepare);
}

/* ---- protocol out ------------------------------------------------------------------ */

static void send_connect(mp_natsio_t *n)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_puts(&b, "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,"
                    "\"lang\":\"c\",\"version\":\"moonport\",\"protocol\":1,\"name\":\"");
    mp_buf_json_escape(&b, n->name, strlen(n->name));
    mp_buf_puts(&b, "\"");
    if (n->user) {
        mp_buf_puts(&b, ",\"user\":\"");
        mp_buf_json_escape(&b, n->user, strlen(n->user));
        mp_buf_puts(&b, "\",\"pass\":\"");
        mp_buf_json_escape(&b, n->password ? n->password : "", n->password ? strlen(n->password) : 0);
        mp_buf_puts(&b, "\"");
    }
    mp_buf_puts(&b, "}\r\nPING\r\n");
    n->pings_sent = 1;
    n->pongs_got = n->unsub_ping = 0; /* a new connection: only what it subscribes (nothing once drained) counts */
    if (n->subscribe)
        mp_buf_printf(&b, "SUB %s 1\r\n", n->subscribe);
    for (size_t i = 0; i < n->nsubs && !n->subs_off; i++)
        mp_buf_printf(&b, "SUB %s%s%s %zu\r\n", n->subs[i].subject, n->subs[i].queue ? " " : "",
                      n->subs[i].queue ? n->subs[i].queue : "", i + 2);
    queue(n, b.base, b.len);
    if (b.base) /* the CONNECT may hold a password */
        memset(b.base, 0, b.len);
    mp_buf_dispose(&b);
    n->state = S_AWAIT_PONG;
}

/* The length of `s` when it holds none of the bytes in `bad`, else -1 (also for NULL). */
static long length_without(const char *s, const char *bad)
{
    if (s == NULL)
        return -1;
    size_t n = strcspn(s, bad);
    return s[n] ? -1 : (long)n;
}

/* Appends n bytes at *p. */
static void put(char **p, const char *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

/* Queues bytes for the socket, or keeps them for the next server while failing over. */
static void emit(mp_natsio_t *n, bool hold, const char *p, size_t len)
{
    if (hold)
        mp_buf_append(&n->held, p, len);
    else
        queue(n, p, len);
}

/* Built with memcpy, not snprintf: publishing is on every call's path (four times per home screen). */
mp_status_t mp_natsio_publish(mp_natsio_t *n, const char *subject, const char *reply, const mp_bus_hdr_t *hdrs,
                              size_t nhdrs, const void *data, size_t len)
{
    char hb[2048], *h = hb;
    bool hold = n->state != S_READY;
    if (hold && !n->failover)
        return mp_err_set(MP_EUNAVAIL, "nats: not connected");
    long sl = length_without(subject, " \r\n"), rl = reply ? length_without(reply, " \r\n") : 0;
    if (sl < 0 || rl < 0)
        return mp_err_set(MP_EINVAL, "nats: bad subject");
    put(&h, "NATS/1.0\r\n", 10);
    for (size_t i = 0; i < nhdrs; i++) {
        long nl = length_without(hdrs[i].name, "\r\n"), vl = length_without(hdrs[i].value, "\r\n");
        if (nl < 0 || vl <= 0)
            continue;
        size_t hl = (size_t)(h - hb);
        if ((size_t)(nl + vl) + 4 >= sizeof(hb) - hl - 2)
            return mp_err_set(MP_ETOOBIG, "nats: headers too large");
        put(&h, hdrs[i].name, (size_t)nl);
        put(&h, ": ", 2);
        put(&h, hdrs[i].value, (size_t)vl);
        put(&h, "\r\n", 2);
    }
    put(&h, "\r\n", 2);
    size_t hl = (size_t)(h - hb);
    if (n->max_payload && hl + len > n->max_payload)
        return mp_err_set(MP_ETOOBIG, "nats: message larger than the server's max_payload");
    /* HPUB <subject> [reply] <header bytes> <total bytes> */
    char line[512], hls[21], tls[21], *l = line;
    size_t hn = mp_u64_dec(hls, hl), tn = mp_u64_dec(tls, hl + len);
    size_t ll = 5 + (size_t)sl + (reply ? 1 + (size_t)rl : 0) + 1 + hn + 1 + tn + 2;
    if (ll >= sizeof(line))
        return mp_err_set(MP_EINVAL, "nats: subject too long");
    put(&l, "HPUB ", 5);
    put(&l, subject, (size_t)sl);
    if (reply) {
        put(&l, " ", 1);
        put(&l, reply, (size_t)rl);
    }
    put(&l, " ", 1);
    put(&l, hls, hn);
    put(&l, " ", 1);
    put(&l, tls, tn);
    put(&l, "\r\n", 2);
    if (hold && n->held.len + ll + hl + len + 2 > HOLD_MAX)
        return mp_err_set(MP_EUNAVAIL, "nats: failing over to another server, and too much is waiting already");
    mp_buf_reserve(hold ? &n->held : &n->out, ll + hl + len + 2);
    emit(n, hold, line, ll);
    emit(n, hold, hb, hl);
    if (len)
        emit(n, hold, data, len);
    emit(n, hold, "\r\n", 2);
    return MP_OK;
}

/* ---- protocol in -------------------------------------------------------------------- */

static void on_info(mp_natsio_t *n, const char *json, size_t len)
{
    const char *mp = memmem(json, len, "\"max_payload\":", 14), *end = json + len;
    if (mp == NULL)
        return;
    /* the read buffer is not NUL-terminated: no strtoul, which would skip the CRLF and read on past the line */
    size_t v = 0;
    const char *p = mp + 14;
    while (p < end && *p == ' ')
        p++;
    for (int digits = 0; p < end && *p >= '0' && *p <= '9' && digits < 15; p++, digits++)
        v = v * 10 + (size_t)(*p - '0');
    n->max_payload = v;
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    mp_natsio_t *n = sock->data;
    if (err) {
        drop(n, err);
        return;
    }
    send_connect(n);
}

/* PONG to the first PING: connected and subscribed. What waited during a failover goes out now. */
static void on_ready(mp_natsio_t *n)
{
    n->state = S_READY;
    n->backoff_ms = 100;
    n->tried = 0;
    uv_timer_stop(&n->retry); /* the connect timeout */
    if (n->held.len) {
        queue(n, n->held.base, n->held.len);
        mp_buf_reset(&n->held);
    }
    n->failover = false;
    mp_log_kv(MP_LOG_INFO, NULL, "nats loop connection ready", "connection", n->name, "server", n->where, NULL);
    if (n->o.on_state)
        n->o.on_state(n->o.arg, true);
}

/* Splits a protocol line into at most `max` space-separated tokens. */
static int tokens(const char *line, size_t len, const char **tok, size_t *tlen, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len && n < max) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            break;
        tok[n] = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        tlen[n] = (size_t)(line + i - tok[n]);
        n++;
    }
    return n;
}

/* A size field of MSG/HMSG: digits only, within the token (strtoul would skip whitespace, CR and LF, reading on past
 * the line and the buffer, and would take signs). */
static bool parse_size(const char *s, size_t len, size_t *out)
{
    size_t v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* -ERR 'Permissions Violation for Publish to "x.v1.y"': this role may not send there. Logged at most once a
 * second (a hot path must not flood the log); the owner fails the calls to that subject at once. */
static void on_denied(mp_natsio_t *n, const char *msg)
{
    static const char pub[] = "Publish to \"";
    uint64_t now = uv_now(n->loop);
    if (now - n->denied_logged_ms >= 1000 || n->denied_logged_ms == 0) {
        n->denied_logged_ms = now;
        mp_log_kv(MP_LOG_WARN, NULL, "nats refused a message: this role lacks the permission", "connection", n->name,
                  "error", msg, NULL);
    }
    const char *at = strstr(msg, pub), *end = at ? strchr(at + sizeof(pub) - 1, '"') : NULL;
    if (end != NULL && n->o.on_denied != NULL)
        n->o.on_denied(n->o.arg, at + sizeof(pub) - 1, (size_t)(end - at - (sizeof(pub) - 1)));
}

/* Handles one complete item at the start of `p`; returns bytes consumed, 0 when more data is needed, -1 on a
 * protocol error. */
static long parse_one(mp_natsio_t *n, const char *p, size_t avail)
{
    const char *eol = memmem(p, avail, "\r\n", 2);
    if (eol == NULL)
        return avail > 64 * 1024 ? -1 : 0;
    size_t ll = (size_t)(eol - p), used = ll + 2;
    const char *tok[7];
    size_t tl[7];
    if (ll >= 4 && (strncasecmp(p, "MSG ", 4) == 0 || strncasecmp(p, "HMSG ", 5) == 0)) {
        bool h = p[0] == 'H' || p[0] == 'h';
        int nt = tokens(p, ll, tok, tl, 7); /* one more than allowed, so a line with too many is refused */
        /* MSG subj sid [reply] size | HMSG subj sid [reply] hdrlen total */
        int want = h ? 5 : 4;
        if (nt < want - 0 || nt > want + 1)
            return -1;
        size_t total = 0, hdr = 0;
        if (!parse_size(tok[nt - 1], tl[nt - 1], &total) || (h && !parse_size(tok[nt - 2], tl[nt - 2], &hdr)))
            return -1;
        if (hdr > total || total > 64u * 1024 * 1024)
            return -1;
        if (avail < used + total + 2)
            return 0;
        const char *body = eol + 2;
        size_t sid = 0;
        if (!parse_size(tok[2], tl[2], &sid))
            return -1;
        if (sid >= 2 && sid - 2 < n->nsubs && n->o.on_request) {
            bool has_reply = nt == want + 1;
            n->o.on_request(n->o.arg, sid - 2, tok[1], tl[1], has_reply ? tok[3] : "", has_reply ? tl[3] : 0, body, hdr,
                            body + hdr, total - hdr);
        } else if (sid < 2) {
            n->o.on_msg(n->o.arg, tok[1], tl[1], body, hdr, body + hdr, total - hdr);
        } /* else: a subscription just dropped; its late messages are nobody's */
        return (long)(used + total + 2);
    }
    if (ll >= 4 && strncasecmp(p, "PING", 4) == 0) {
        queue(n, "PONG\r\n", 6);
    } else if (ll >= 4 && strncasecmp(p, "PONG", 4) == 0) {
        n->pings_out = 0;
        n->pongs_got++;
        if (n->state == S_AWAIT_PONG)
            on_ready(n);
    } else if (ll >= 4 && strncasecmp(p, "INFO", 4) == 0) {
        on_info(n, p + 4, ll - 4);
        if (n->state == S_INFO) {
            if (memmem(p, ll, "\"tls_required\":true", 19)) {
                if (n->o.tls == NULL)
                    return -1;
                n->state = S_TLS;
                h2o_socket_ssl_handshake(n->sock, n->o.tls, n->servers.servers[n->cur].host, on_handshake);
                return (long)used;
            }
            send_connect(n);
        }
    } else if (ll >= 4 && strncasecmp(p, "-ERR", 4) == 0) {
        char msg[256]; /* the line only: the buffer is not NUL-terminated */
        snprintf(msg, sizeof(msg), "%.*s", (int)(ll - 4 < sizeof(msg) - 1 ? ll - 4 : sizeof(msg) - 1), p + 4);
        /* a refused publish costs that one message and the server keeps the connection; a refused subscription
         * (our inbox) would leave every call waiting for a reply that cannot come: that one reconnects, loudly */
        if (strstr(msg, "Permissions Violation for Publish") != NULL) {
            on_denied(n, msg);
            return (long)used;
        }
        mp_log_kv(MP_LOG_ERROR, NULL, "nats server error", "connection", n->name, "error", msg, NULL);
        return -1;
    }
    return (long)used; /* +OK and anything unknown: skipped */
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    mp_natsio_t *n = sock->data;
    if (err != NULL) {
        drop(n, err);
        return;
    }
    size_t off = 0;
    while (off < sock->input->size && n->sock == sock) {
        long used = parse_one(n, sock->input->bytes + off, sock->input->size - off);
        if (used < 0) {
            drop(n, "protocol error");
            return;
        }
        if (used == 0 || n->state == S_TLS)
            break;
        off += (size_t)used;
    }
    if (n->sock == sock && off)
        h2o_buffer_consume(&sock->input, off);
}

/* ---- connection life ------------------------------------------------------------------- */

static void on_connect(h2o_socket_t *sock, const char *err)
{
    mp_natsio_t *n = sock->data;
    if (err) {
        drop(n, err);
        return;
    }
    n->state = S_INFO;
    h2o_socket_read_start(sock, on_read);
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void on_connect_timeout(uv_timer_t *t)
{
    mp_natsio_t *n = t->data;
    if (n->state != S_READY)
        drop(n, "no answer within the connect timeout");
}

/* The failover round ended without a server: what was held fails now, as calls made while disconnected do. */
static void end_failover(mp_natsio_t *n)
{
    if (!n->failover)
        return;
    n->failover = false;
    mp_buf_reset(&n->held);
    if (n->o.on_state)
        n->o.on_state(n->o.arg, false);
}

/* Moves to the next server and returns how long to wait before trying it: nothing while the round lasts (every
 * server once, the lost one last), then the back-off. */
static uint64_t next_attempt(mp_natsio_t *n, bool was_ready)
{
    if (was_ready) {
        n->tried = 0;
        n->failover = n->servers.count > 1;
    }
    n->cur = n->servers.count ? (n->cur + 1) % n->servers.count : 0;
    if (++n->tried < n->servers.count)
        return 0;
    n->tried = 0;
    end_failover(n);
    uint64_t wait = (uint64_t)n->backoff_ms;
    n->backoff_ms = n->backoff_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : n->backoff_ms * 2;
    return wait;
}

static void drop(mp_natsio_t *n, const char *why)
{
    bool was_ready = n->state == S_READY;
    char lost[sizeof(n->where)];
    memcpy(lost, n->where, sizeof(lost));
    if (n->sock) {
        h2o_socket_t *s = n->sock;
        n->sock = NULL;
        h2o_socket_close(s);
    }
    n->state = S_IDLE;
    n->unsub_ping = 0; /* the subscriptions went with the connection */
    mp_buf_reset(&n->out);
    mp_buf_reset(&n->wbuf);
    if (n->closing) {
        if (was_ready && n->o.on_state)
            n->o.on_state(n->o.arg, false);
        return;
    }
    uint64_t wait = next_attempt(n, was_ready); /* before the owner hears of it: calls it makes now are held */
    if (was_ready && n->o.on_state)
        n->o.on_state(n->o.arg, false);
    int64_t now = (int64_t)uv_now(n->loop);
    if (was_ready || now - n->last_log > 10000) {
        mp_log_kv(MP_LOG_WARN, NULL, "nats loop connection lost; retrying", "connection", n->name, "server", lost,
                  "error", why, NULL);
        n->last_log = now;
    }
    uv_timer_start(&n->retry, on_retry, wait, 0);
}

static void start_connect(mp_natsio_t *n)
{
    const mp_nats_server_t *srv = &n->servers.servers[n->cur];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", srv->port);
    snprintf(n->where, sizeof(n->where), "%s:%d", srv->host, srv->port);
    if (getaddrinfo(srv->host, port, &hints, &res) != 0 || res == NULL) {
        drop(n, "cannot resolve the server");
        return;
    }
    n->state = S_CONNECTING;
    n->sock = h2o_socket_connect(n->loop, res->ai_addr, res->ai_addrlen, on_connect);
    freeaddrinfo(res);
    if (n->sock == NULL) {
        drop(n, "cannot connect");
        return;
    }
    n->sock->data = n;
    uv_timer_start(&n->retry, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

static void on_ping_timer(uv_timer_t *t)
{
    mp_natsio_t *n = t->data;
    if (n->state != S_READY)
        return;
    if (++n->pings_out > 2) { /* the server stopped answering: do not wait for TCP to notice */
        drop(n, "keep-alive PINGs unanswered");
        return;
    }
    n->pings_sent++;
    queue(n, "PING\r\n", 6);
}

/* The servers of `url`; credentials in it as nats.c reads them (nats://user:pass@host), unless nats.user is set. */
static mp_status_t take_servers(mp_natsio_t *n, const char *url)
{
    mp_status_t st = mp_nats_url_parse(&n->servers, url);
    if (st != MP_OK)
        return st;
    for (size_t i = 0; n->user == NULL && i < n->servers.count; i++) {
        if (n->servers.servers[i].user) {
            n->user = mp_xstrdup(n->servers.servers[i].user);
            n->password = mp_xstrdup(n->servers.servers[i].password);
        }
    }
    /* each loop starts at a random node, so a gateway's loops (and a node's crash) spread over the cluster */
    n->cur = n->servers.count > 1 ? (size_t)(mp_rand64() % n->servers.count) : 0;
    return MP_OK;
}

static void free_subs(mp_natsio_t *n)
{
    for (size_t i = 0; i < n->nsubs; i++) {
        free((char *)n->subs[i].subject);
        free((char *)n->subs[i].queue);
    }
    free(n->subs);
}

static void free_client(mp_natsio_t *n)
{
    mp_buf_dispose(&n->out);
    mp_buf_dispose(&n->wbuf);
    mp_buf_dispose(&n->held);
    mp_nats_url_dispose(&n->servers);
    if (n->password)
        memset(n->password, 0, strlen(n->password));
    free(n->password);
    free(n->user);
    free(n->name);
    free(n->subscribe);
    free_subs(n);
    free(n);
}

mp_status_t mp_natsio_create(mp_natsio_t **out, uv_loop_t *loop, const mp_natsio_opts_t *o)
{
    mp_natsio_t *n = mp_xcalloc(1, sizeof(*n));
    n->loop = loop;
    n->o = *o;
    n->name = mp_xstrdup(o->name ? o->name : "moonport-loop");
    n->user = mp_xstrdup(o->user);
    n->password = mp_xstrdup(o->password);
    n->subscribe = mp_xstrdup(o->subscribe);
    n->subs = mp_xcalloc(o->nsubs ? o->nsubs : 1, sizeof(*n->subs));
    for (size_t i = 0; i < o->nsubs; i++)
        n->subs[n->nsubs++] = (mp_natsio_sub_t){mp_xstrdup(o->subs[i].subject), mp_xstrdup(o->subs[i].queue)};
    n->o.subs = NULL;
    n->backoff_ms = 100;
    mp_status_t st = take_servers(n, o->url ? o->url : "nats://127.0.0.1:4222");
    if (st != MP_OK) {
        free_client(n);
        return st;
    }
    uv_prepare_init(loop, &n->flusher);
    n->flusher.data = n;
    uv_timer_init(loop, &n->retry);
    n->retry.data = n;
    uv_timer_init(loop, &n->pinger);
    n->pinger.data = n;
    uv_timer_start(&n->pinger, on_ping_timer, PING_INTERVAL_MS, PING_INTERVAL_MS);
    n->handles_open = 3;
    start_connect(n);
    *out = n;
    return MP_OK;
}

bool mp_natsio_ready(const mp_natsio_t *n)
{
    return n->state == S_READY;
}

static void on_handle_closed(uv_handle_t *h)
{
    mp_natsio_t *n = h->data;
    if (--n->handles_open > 0)
        return;
    free_client(n);
}

size_t mp_natsio_unsent(const mp_natsio_t *n)
{
    return n->sock ? n->out.len + n->wbuf.len : 0;
}

void mp_natsio_unsubscribe_requests(mp_natsio_t *n)
{
    if (n->subs_off)
        return;
    n->subs_off = true;
    if (n->state != S_READY && n->state != S_AWAIT_PONG)
        return; /* not subscribed now, and the next connect subscribes nothing */
    mp_buf_t b = MP_BUF_INIT;
    for (size_t i = 0; i < n->nsubs; i++)
        mp_buf_printf(&b, "UNSUB %zu\r\n", i + 2);
    mp_buf_puts(&b, "PING\r\n"); /* its PONG comes after every message the server sent for them */
    n->unsub_ping = ++n->pings_sent;
    queue(n, b.base, b.len);
    mp_buf_dispose(&b);
}

bool mp_natsio_unsubscribed(const mp_natsio_t *n)
{
    return n->subs_off && (n->unsub_ping == 0 || n->pongs_got >= n->unsub_ping);
}

void mp_natsio_destroy(mp_natsio_t *n)
{
    if (n == NULL)
        return;
    n->closing = 1;
    n->o.on_state = NULL;
    if (n->sock) {
        h2o_socket_t *s = n->sock;
        n->sock = NULL;
        h2o_socket_close(s);
    }
    uv_close((uv_handle_t *)&n->flusher, on_handle_closed);
    uv_close((uv_handle_t *)&n->retry, on_handle_closed);
    uv_close((uv_handle_t *)&n->pinger, on_handle_closed);
}
