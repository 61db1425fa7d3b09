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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/bus.h"
#include "mp/log.h"

struct mp_bus {
    natsConnection *nc;
    natsOptions *opts;
    char *name;
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

static natsStatus apply_opts(mp_bus_t *bus, const mp_bus_opts_t *o)
{
    natsStatus s = natsOptions_Create(&bus->opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(bus->opts, NULL, 0);
    if (s == NATS_OK)
        s = natsOptions_SetURL(bus->opts, o->url ? o->url : "nats://127.0.0.1:4222");
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
    if (s == NATS_OK && o->retry_on_failed_connect)
        s = natsOptions_SetRetryOnFailedConnect(bus->opts, true, NULL, NULL);
    if (s == NATS_OK && o->user)
        s = natsOptions_SetUserInfo(bus->opts, o->user, o->password ? o->password : "");
    if (s == NATS_OK && o->creds_file)
        s = natsOptions_SetUserCredentialsFromFiles(bus->opts, o->creds_file, NULL);
    if (s == NATS_OK && o->ca_file) {
        s = natsOptions_SetSecure(bus->opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(bus->opts, o->ca_file);
    }
    return s;
}

mp_status_t mp_bus_connect(mp_bus_t **out, const mp_bus_opts_t *o)
{
    mp_bus_t *bus = mp_xcalloc(1, sizeof(*bus));
    bus->name = mp_xstrdup(o->name ? o->name : "moonport");
    pthread_mutex_init(&bus->mu, NULL);
    pthread_cond_init(&bus->cv, NULL);
    natsStatus s = apply_opts(bus, o);
    if (s == NATS_OK)
        s = natsConnection_Connect(&bus->nc, bus->opts);
    /* with retry on, a missing server is not an error: nats.c keeps trying */
    if (s == NATS_NOT_YET_CONNECTED)
        s = NATS_OK;
    if (s != NATS_OK) {
        mp_status_t st = mp_err_set(s == NATS_INVALID_ARG ? MP_EINVAL : MP_EUNAVAIL, "nats %s: %s",
                                    o->url ? o->url : "(default)", natsStatus_GetText(s));
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
    pthread_mutex_destroy(&bus->mu);
    pthread_cond_destroy(&bus->cv);
    free(bus->name);
    free(bus);
}

bool mp_bus_connected(mp_bus_t *bus)
{
    return bus && bus->nc && natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
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

mp_status_t mp_bus_request(mp_msg_t **reply, mp_bus_t *bus, const mp_bus_call_t *call)
{
    int64_t now = mp_now_ms();
    int64_t timeout = effective_timeout(call, now);
    mp_msg_t *m = NULL, *r = NULL;
    mp_status_t st;

    if (timeout <= 0)
        return mp_err_set(MP_ETIMEDOUT, "deadline passed before calling %s", call->subject);
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
    const char *v = NULL, **keys = NULL;
    int n = 0;
    if (natsMsgHeader_Get(m, name, &v) == NATS_OK)
        return v;
    /* NATS header names are case-sensitive, HTTP's are not: the gateway forwards "idempotency-key" as HTTP/2
     * spells it, and a service asking for "Idempotency-Key" must still find it */
    if (natsMsgHeader_Keys(m, &keys, &n) != NATS_OK)
        return NULL;
    for (int i = 0; i < n && v == NULL; i++)
        if (strcasecmp(keys[i], name) == 0 && natsMsgHeader_Get(m, keys[i], &v) != NATS_OK)
            v = NULL;
    free((void *)keys);
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
