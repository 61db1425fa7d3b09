/*
 * bus.c: the shared NATS connection, message building with context headers,
 * and blocking request-reply (see mp/bus.h).
 *
 * nats.c does the heavy lifting (reconnects, the request multiplexer); this
 * file pins down how moonport uses it: context always travels as headers,
 * the wait never outlives the caller's deadline, and "no responders" (the
 * server's 503 status on a request nobody serves) becomes MP_EUNAVAIL so the
 * gateway can answer 503 at once instead of waiting for a timeout.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/bus.h"
#include "mp/log.h"
#include "mp/nats_url.h"

struct mp_bus {
    natsConnection *nc;
    natsOptions *opts;
    char *name;
    mp_bus_opts_t saved; /* copies, for the loop connections */
    SSL_CTX *tls;
    char *inbox_prefix;
    /* nats.c runs connection callbacks on its own thread, even during close:
     * destroy waits for the final "closed" callback before freeing */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closed;
    int closing;
};

int64_t mp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mp_status_t mp_bus__from_nats(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return MP_OK;
    case NATS_TIMEOUT:
        return mp_err_set(MP_ETIMEDOUT, "nats: timed out");
    case NATS_NO_RESPONDERS:
        return mp_err_set(MP_EUNAVAIL, "nats: no responders");
    case NATS_NO_MEMORY:
        return mp_err_set(MP_ENOMEM, "nats: out of memory");
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        return mp_err_set(MP_EINVAL, "nats: %s", natsStatus_GetText(s));
    default:
        return mp_err_set(MP_EUNAVAIL, "nats: %s", natsStatus_GetText(s));
    }
}

static void on_disconnected(natsConnection *nc, void *arg)
{
    mp_bus_t *bus = arg;
    if (!bus->closing)
        mp_log_kv(MP_LOG_WARN, NULL, "nats disconnected", "connection", bus->name, NULL);
}

static void on_reconnected(natsConnection *nc, void *arg)
{
    mp_bus_t *bus = arg;
    mp_log_kv(MP_LOG_INFO, NULL, "nats reconnected", "connection", bus->name, NULL);
}

static void on_closed(natsConnection *nc, void *arg)
{
    mp_bus_t *bus = arg;
    pthread_mutex_lock(&bus->mu);
    bus->closed = 1;
    pthread_cond_signal(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

/* nats.c thread: an asynchronous error (a permissions violation, a slow consumer). The server refuses a publish
 * silently as far as the publisher can tell, so this line is how an operator learns that a role lacks a permission;
 * at most one a second, so a hot path cannot flood the log. */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
    static mp_log_limiter_t limit;
    mp_bus_t *bus = arg;
    if (!mp_log_now_and_then(&limit, 1000, NULL))
        return;
    const char *text = NULL;
    natsConnection_GetLastError(nc, &text);
    mp_log_kv(MP_LOG_WARN, NULL, "nats reported an error", "connection", bus->name, "error",
              text && *text ? text : natsStatus_GetText(err), NULL);
}

/* nats.c takes one URL per natsOptions_SetURL: a list (a cluster's nodes) becomes its server pool instead, which it
 * tries in random order, so the processes of a platform spread over the nodes, and on a lost connection it moves to
 * the next one at once. */
static natsStatus set_servers(natsOptions *opts, const mp_nats_url_t *list)
{
    const char *urls[MP_NATS_URL_MAX];
    for (size_t i = 0; i < list->count; i++)
        urls[i] = list->servers[i].url;
    natsStatus s = natsOptions_SetURL(opts, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, urls, (int)list->count);
    return s;
}

static natsStatus apply_opts(mp_bus_t *bus, const mp_bus_opts_t *o, const mp_nats_url_t *servers)
{
    natsStatus s = natsOptions_Create(&bus->opts);
    if (s == NATS_OK)
        s = set_servers(bus->opts, servers);
    if (s == NATS_OK)
        s = natsOptions_SetName(bus->opts, bus->name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(bus->opts, o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(bus->opts, o->send_asap);
    /* reconnect forever: a service outlives any NATS restart */
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(bus->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(bus->opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(bus->opts, 8 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(bus->opts, 5000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(bus->opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(bus->opts, on_disconnected, bus);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(bus->opts, on_reconnected, bus);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(bus->opts, on_closed, bus);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(bus->opts, on_async_error, bus);
    if (s == NATS_OK && o->retry_on_failed_connect)
        s = natsOptions_SetRetryOnFailedConnect(bus->opts, true, NULL, NULL);
    if (s == NATS_OK && o->user)
        s = natsOptions_SetUserInfo(bus->opts, o->user, o->password ? o->password : "");
    if (s == NATS_OK && o->inbox_prefix && strcmp(o->inbox_prefix, "_INBOX") != 0)
        s = natsOptions_SetCustomInboxPrefix(bus->opts, o->inbox_prefix);
    if (s == NATS_OK && o->creds_file)
        s = natsOptions_SetUserCredentialsFromFiles(bus->opts, o->creds_file, NULL);
    if (s == NATS_OK && o->ca_file) {
        s = natsOptions_SetSecure(bus->opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(bus->opts, o->ca_file);
    }
    return s;
}

static void save_opts(mp_bus_t *bus, const mp_bus_opts_t *o)
{
    bus->saved = *o;
    bus->saved.url = mp_xstrdup(o->url ? o->url : "nats://127.0.0.1:4222");
    bus->saved.name = bus->name;
    bus->saved.user = mp_xstrdup(o->user);
    bus->saved.password = mp_xstrdup(o->password);
    bus->saved.creds_file = mp_xstrdup(o->creds_file);
    bus->saved.ca_file = mp_xstrdup(o->ca_file);
    if (o->ca_file) {
        bus->tls = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(bus->tls, TLS1_2_VERSION);
        SSL_CTX_set_verify(bus->tls, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_load_verify_locations(bus->tls, o->ca_file, NULL) != 1)
            mp_log_kv(MP_LOG_ERROR, NULL, "cannot load the NATS CA file", "file", o->ca_file, NULL);
    }
}

const mp_bus_opts_t *mp_bus__opts(const mp_bus_t *bus)
{
    return &bus->saved;
}

SSL_CTX *mp_bus__tls(mp_bus_t *bus)
{
    return bus->tls;
}

bool mp_hdr_next(const char **at, const char *end, mp_hdr_field_t *f)
{
    const char *p = *at;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        *at = eol + 1;
        if (colon == NULL) {
            p = eol + 1;
            continue;
        }
        const char *v = colon + 1, *ve = eol;
        while (v < eol && *v == ' ')
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
            ve--;
        *f = (mp_hdr_field_t){p, (size_t)(colon - p), v, (size_t)(ve - v)};
        return true;
    }
    *at = end;
    return false;
}

const char *mp_reply_header(const mp_reply_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    if (r->hdrs == NULL)
        return NULL;
    const char *end = r->hdrs + r->hdrs_len, *at = memchr(r->hdrs, '\n', r->hdrs_len); /* past the status line */
    at = at ? at + 1 : end;
    mp_hdr_field_t f;
    while (mp_hdr_next(&at, end, &f))
        if (f.name_len == nl && strncasecmp(f.name, name, nl) == 0) {
            *len = f.value_len;
            return f.value;
        }
    return NULL;
}

mp_status_t mp_bus_connect(mp_bus_t **out, const mp_bus_opts_t *o)
{
    mp_bus_t *bus = mp_xcalloc(1, sizeof(*bus));
    bus->name = mp_xstrdup(o->name ? o->name : "moonport");
    bus->inbox_prefix = mp_xstrdup(o->inbox_prefix && *o->inbox_prefix ? o->inbox_prefix : "_INBOX");
    save_opts(bus, o);
    pthread_mutex_init(&bus->mu, NULL);
    pthread_cond_init(&bus->cv, NULL);
    mp_nats_url_t servers;
    mp_status_t st = mp_nats_url_parse(&servers, bus->saved.url);
    if (st != MP_OK) {
        mp_nats_url_dispose(&servers);
        mp_bus_destroy(bus);
        return st;
    }
    natsStatus s = apply_opts(bus, o, &servers);
    mp_nats_url_dispose(&servers);
    if (s == NATS_OK)
        s = natsConnection_Connect(&bus->nc, bus->opts);
    /* with retry on, a missing server is not an error: nats.c keeps trying */
    if (s == NATS_NOT_YET_CONNECTED)
        s = NATS_OK;
    if (s != NATS_OK) {
        /* not the URL: it may carry a password */
        st = mp_err_set(s == NATS_INVALID_ARG ? MP_EINVAL : MP_EUNAVAIL, "nats: %s", natsStatus_GetText(s));
        mp_bus_destroy(bus);
        return st;
    }
    *out = bus;
    return MP_OK;
}

void mp_bus_destroy(mp_bus_t *bus)
{
    if (bus == NULL)
        return;
    if (bus->nc) {
        bus->closing = 1;
        natsConnection_FlushTimeout(bus->nc, 1000);
        natsConnection_Close(bus->nc);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&bus->mu);
        while (!bus->closed && pthread_cond_timedwait(&bus->cv, &bus->mu, &until) == 0)
            ;
        pthread_mutex_unlock(&bus->mu);
        natsConnection_Destroy(bus->nc);
    }
    natsOptions_Destroy(bus->opts);
    free((char *)bus->saved.url);
    free((char *)bus->saved.user);
    if (bus->saved.password)
        memset((char *)bus->saved.password, 0, strlen(bus->saved.password));
    free((char *)bus->saved.password);
    free((char *)bus->saved.creds_file);
    free((char *)bus->saved.ca_file);
    SSL_CTX_free(bus->tls);
    pthread_mutex_destroy(&bus->mu);
    pthread_cond_destroy(&bus->cv);
    free(bus->name);
    free(bus->inbox_prefix);
    free(bus);
}

const char *mp_bus_inbox_prefix(const mp_bus_t *bus)
{
    return bus->inbox_prefix;
}

bool mp_bus_connected(mp_bus_t *bus)
{
    return bus && bus->nc && natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
}

mp_status_t mp_bus_ping(mp_bus_t *bus, int timeout_ms)
{
    if (!mp_bus_connected(bus))
        return mp_err_set(MP_EUNAVAIL, "not connected");
    /* a PING the server must answer with a PONG after everything sent before it: a frozen or wedged server keeps
     * the TCP connection up (so the status stays CONNECTED) but answers nothing */
    natsStatus s = natsConnection_FlushTimeout(bus->nc, timeout_ms);
    if (s == NATS_OK)
        return MP_OK;
    if (s == NATS_TIMEOUT)
        return mp_err_set(MP_ETIMEDOUT, "no PONG within %d ms", timeout_ms);
    return mp_err_set(MP_EUNAVAIL, "ping: %s", natsStatus_GetText(s));
}

natsConnection *mp_bus_conn(mp_bus_t *bus)
{
    return bus->nc;
}

static natsStatus set_hdr(natsMsg *m, const char *name, const char *value)
{
    return value && *value ? natsMsgHeader_Set(m, name, value) : NATS_OK;
}

mp_status_t mp_bus__build_msg(mp_msg_t **out, const mp_bus_call_t *call, const char *reply_to, int64_t now_ms)
{
    natsMsg *m = NULL;
    char deadline[24];
    natsStatus s = natsMsg_Create(&m, call->subject, reply_to, call->body, (int)call->len);
    if (s == NATS_OK)
        s = set_hdr(m, MP_HDR_REQUEST_ID, call->ctx.request_id);
    if (s == NATS_OK)
        s = set_hdr(m, MP_HDR_TRACEPARENT, call->ctx.traceparent);
    if (s == NATS_OK)
        s = set_hdr(m, MP_HDR_AUTH_SUB, call->ctx.auth_sub);
    if (s == NATS_OK)
        s = set_hdr(m, MP_HDR_AUTH_ROLES, call->ctx.auth_roles);
    if (s == NATS_OK && call->ctx.deadline_ms > 0) {
        snprintf(deadline, sizeof(deadline), "%" PRId64, call->ctx.deadline_ms);
        s = natsMsgHeader_Set(m, MP_HDR_DEADLINE, deadline);
    } else if (s == NATS_OK && call->timeout_ms > 0) {
        /* a request always tells the service when its answer stops mattering */
        snprintf(deadline, sizeof(deadline), "%" PRId64, now_ms + call->timeout_ms);
        s = natsMsgHeader_Set(m, MP_HDR_DEADLINE, deadline);
    }
    for (size_t i = 0; s == NATS_OK && i < call->nextra; i++)
        s = set_hdr(m, call->extra[i].name, call->extra[i].value);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return mp_bus__from_nats(s);
    }
    *out = m;
    return MP_OK;
}

/* The wait: the call's timeout, cut to what is left of its deadline. */
static int64_t effective_timeout(const mp_bus_call_t *call, int64_t now)
{
    int64_t t = call->timeout_ms > 0 ? call->timeout_ms : 5000;
    if (call->ctx.deadline_ms > 0 && call->ctx.deadline_ms - now < t)
        t = call->ctx.deadline_ms - now;
    return t;
}

static _Atomic(mp_bus_request_hook) request_hook;

void mp_bus__set_request_hook(mp_bus_request_hook hook)
{
    atomic_store(&request_hook, hook);
}

mp_status_t mp_bus_request(mp_msg_t **reply, mp_bus_t *bus, const mp_bus_call_t *call)
{
    int64_t now = mp_now_ms();
    int64_t timeout = effective_timeout(call, now);
    mp_msg_t *m = NULL, *r = NULL;
    mp_status_t st;

    if (timeout <= 0)
        return mp_err_set(MP_ETIMEDOUT, "deadline passed before calling %s", call->subject);
    mp_bus_request_hook hook = atomic_load(&request_hook);
    if (hook && hook(&st, reply, call)) /* on a serving fiber: park it, not the thread */
        return st;
    if ((st = mp_bus__build_msg(&m, call, NULL, now)) != MP_OK)
        return st;
    natsStatus s = natsConnection_RequestMsg(&r, bus->nc, m, timeout);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        return mp_bus__from_nats(s);
    *reply = r;
    return MP_OK;
}

mp_status_t mp_bus_publish(mp_bus_t *bus, const mp_bus_call_t *call)
{
    mp_msg_t *m = NULL;
    mp_status_t st = mp_bus__build_msg(&m, call, NULL, mp_now_ms());
    if (st != MP_OK)
        return st;
    natsStatus s = natsConnection_PublishMsg(bus->nc, m);
    natsMsg_Destroy(m);
    return mp_bus__from_nats(s);
}

const char *mp_msg_data(const mp_msg_t *m)
{
    const char *d = natsMsg_GetData(m);
    return d ? d : "";
}

size_t mp_msg_len(const mp_msg_t *m)
{
    int n = natsMsg_GetDataLength(m);
    return n > 0 ? (size_t)n : 0;
}

const char *mp_msg_header(mp_msg_t *m, const char *name)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, name, &v) != NATS_OK)
        return NULL;
    return v;
}

int mp_msg_status(mp_msg_t *m)
{
    const char *v = mp_msg_header(m, MP_HDR_STATUS);
    if (v == NULL)
        return 200;
    char *end;
    long code = strtol(v, &end, 10);
    if (end == v || *end != '\0' || code < 100 || code > 599)
        return 502;
    return (int)code;
}

const char *mp_msg_subject(const mp_msg_t *m)
{
    return natsMsg_GetSubject(m);
}

void mp_msg_destroy(mp_msg_t *m)
{
    natsMsg_Destroy(m);
}
