/*
 * backup_nats.c: the NATS side of backups (see backup_int.h): a stream's
 * snapshot and restore through the JetStream API, which nats.c 3.4 does not
 * wrap, and who is running ($SRV.PING).
 *
 * Snapshot ($JS.API.STREAM.SNAPSHOT.<stream>): we subscribe to an inbox of
 * our own and name it as the deliver subject; the server answers the request
 * with the stream's config and state, then sends the snapshot (an opaque,
 * compressed archive) as chunks to the inbox, each with a reply subject we
 * publish an empty ack to (its flow control), and ends with an empty
 * message; a status header on it (newer servers) reports a failure.
 *
 * Restore ($JS.API.STREAM.RESTORE.<stream>, the stream must not exist): the
 * answer names a subject to send the same bytes to, as requests, each
 * answered when stored; an empty request ends it, and its answer is the new
 * stream's info or an error.
 *
 * Inboxes use the connection's prefix, so a tool user that may read only
 * its own replies (infra/local/nats_auth.py) can do all of this.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backup_int.h"
#include "mp/json.h"
#include "mp/reqctx.h"

#define CHUNK_SIZE (128 * 1024)
#define API_WAIT_MS 10000
#define CHUNK_WAIT_MS 30000   /* between two chunks of a snapshot, or for a restored chunk to be stored */
#define FINISH_WAIT_MS 300000 /* for the server to build the stream from what it was sent */

static void new_inbox(char *out, size_t size, mp_bus_t *bus)
{
    char id[25];
    mp_rand_hex(id, 12);
    snprintf(out, size, "%s.%s", mp_bus_inbox_prefix(bus), id);
}

/* A JetStream API answer's "error" as a status, or MP_OK when it has none. */
static mp_status_t api_error(const json_t *v, const char *subject)
{
    json_t *err = json_object_get(v, "error");
    if (err == NULL)
        return MP_OK;
    json_int_t code = json_integer_value(json_object_get(err, "code"));
    const char *desc = mp_json_str(err, "description");
    return mp_err_set(code == 404 ? MP_ENOTFOUND : MP_EINTERNAL, "%s: JetStream answered %lld: %s", subject,
                      (long long)code, desc ? desc : "(no description)");
}

static mp_status_t parse_answer(json_t **out, natsMsg *reply, const char *subject)
{
    json_t *v = NULL;
    if (mp_json_parse(&v, natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply)) != MP_OK)
        return mp_err_set(MP_EINTERNAL, "%s: JetStream's answer is not JSON", subject);
    mp_status_t st = api_error(v, subject);
    if (st != MP_OK) {
        json_decref(v);
        return st;
    }
    *out = v;
    return MP_OK;
}

/* A request whose answer is JSON; `body` may be NULL (an empty request). */
static mp_status_t request(json_t **out, mp_bus_t *bus, const char *subject, const void *body, size_t len, int wait_ms)
{
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, mp_bus_conn(bus), subject, body, (int)len, wait_ms);
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS)
        return mp_err_set(s == NATS_TIMEOUT ? MP_ETIMEDOUT : MP_EUNAVAIL,
                          "%s: no answer from JetStream (is it enabled, and may this NATS user use the stream's "
                          "API?)",
                          subject);
    if (s != NATS_OK)
        return mp_bus__from_nats(s);
    mp_status_t st = parse_answer(out, reply, subject);
    natsMsg_Destroy(reply);
    return st;
}

static mp_status_t api(json_t **out, mp_bus_t *bus, const char *verb, const char *stream, const json_t *req)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "$JS.API.STREAM.%s.%s", verb, stream);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    mp_status_t st = request(out, bus, subject, body, body ? strlen(body) : 0, API_WAIT_MS);
    free(body);
    return st;
}

mp_status_t mp_backup__js_info(json_t **info, mp_bus_t *bus, const char *stream)
{
    return api(info, bus, "INFO", stream, NULL);
}

mp_status_t mp_backup__js_delete(mp_bus_t *bus, const char *stream)
{
    json_t *v = NULL;
    mp_status_t st = api(&v, bus, "DELETE", stream, NULL);
    json_decref(v);
    return st;
}

/* ---- snapshot --------------------------------------------------------------------------- */

/* Writes the chunks arriving on `sub` to `fd`, acking each, until the empty message that ends them. */
static mp_status_t receive_chunks(natsSubscription *sub, natsConnection *nc, int fd)
{
    for (;;) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, CHUNK_WAIT_MS);
        if (s == NATS_TIMEOUT)
            return mp_err_set(MP_ETIMEDOUT, "the stream's snapshot stalled: nothing for %d s", CHUNK_WAIT_MS / 1000);
        if (s != NATS_OK)
            return mp_bus__from_nats(s);
        int len = natsMsg_GetDataLength(m);
        if (len == 0) {
            /* the end; newer servers put a status on it ("408 No Flow Response" when they gave up on us) */
            int status = mp_msg_status(m);
            const char *why = mp_msg_header(m, "Description");
            mp_status_t st =
                status >= 400 ? mp_err_set(MP_EINTERNAL, "the server ended the snapshot: %d %s", status, why ? why : "")
                              : MP_OK;
            natsMsg_Destroy(m);
            return st;
        }
        bool written = mp_backup__write_all(fd, natsMsg_GetData(m), (size_t)len);
        const char *reply = natsMsg_GetReply(m);
        if (written && reply && *reply)
            s = natsConnection_Publish(nc, reply, NULL, 0);
        natsMsg_Destroy(m);
        if (!written)
            return mp_err_set(MP_EIO, "writing the stream's snapshot: %s", strerror(errno));
        if (s != NATS_OK)
            return mp_bus__from_nats(s);
    }
}

mp_status_t mp_backup__js_snapshot(json_t **info, mp_bus_t *bus, const char *stream, const char *path)
{
    char inbox[256];
    natsSubscription *sub = NULL;
    json_t *answer = NULL;
    int fd = -1;
    new_inbox(inbox, sizeof(inbox), bus);
    /* subscribed before asking, so no chunk can arrive ahead of our interest */
    mp_status_t st = mp_bus__from_nats(natsConnection_SubscribeSync(&sub, mp_bus_conn(bus), inbox));
    if (st == MP_OK) {
        json_t *req =
            json_pack("{s:s, s:b, s:i}", "deliver_subject", inbox, "no_consumers", 0, "chunk_size", CHUNK_SIZE);
        st = api(&answer, bus, "SNAPSHOT", stream, req);
        json_decref(req);
    }
    if (st == MP_OK && (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        st = mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    if (st == MP_OK)
        st = receive_chunks(sub, mp_bus_conn(bus), fd);
    if (st == MP_OK && fsync(fd) != 0)
        st = mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && st == MP_OK)
        st = mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    if (st == MP_OK)
        *info = json_pack("{s:O, s:O}", "config", json_object_get(answer, "config"), "state",
                          json_object_get(answer, "state"));
    json_decref(answer);
    natsSubscription_Destroy(sub);
    return st;
}

/* ---- restore ---------------------------------------------------------------------------- */

/* One chunk to the restore's subject; the server answers it, empty, once stored. */
static mp_status_t send_chunk(natsConnection *nc, const char *subject, const char *data, int len)
{
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, nc, subject, data, len, CHUNK_WAIT_MS);
    if (s != NATS_OK)
        return s == NATS_TIMEOUT ? mp_err_set(MP_ETIMEDOUT, "the stream's restore stalled") : mp_bus__from_nats(s);
    int n = natsMsg_GetDataLength(reply);
    mp_status_t st = MP_OK;
    /* an answer with a body is a failure: "-ERR ..." from the server, or the final error response */
    if (n > 0)
        st = mp_err_set(MP_EINTERNAL, "the server refused the stream's snapshot: %.*s", n > 300 ? 300 : n,
                        natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    return st;
}

static mp_status_t send_file(natsConnection *nc, const char *subject, const char *path)
{
    static char buf[CHUNK_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    mp_status_t st = MP_OK;
    ssize_t n;
    while (st == MP_OK && (n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0)
            st = mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
        else
            st = send_chunk(nc, subject, buf, (int)n);
    }
    close(fd);
    return st;
}

mp_status_t mp_backup__js_restore(json_t **state, mp_bus_t *bus, const char *stream, const json_t *info,
                                  const char *path)
{
    json_t *answer = NULL, *done = NULL;
    json_t *req =
        json_pack("{s:O, s:O}", "config", json_object_get(info, "config"), "state", json_object_get(info, "state"));
    mp_status_t st = api(&answer, bus, "RESTORE", stream, req);
    json_decref(req);
    const char *to = st == MP_OK ? mp_json_str(answer, "deliver_subject") : NULL;
    if (st == MP_OK && to == NULL)
        st = mp_err_set(MP_EINTERNAL, "JetStream's restore answer names no subject to send the snapshot to");
    if (st == MP_OK)
        st = send_file(mp_bus_conn(bus), to, path);
    if (st == MP_OK) /* the end: the server now builds the stream and answers with its info */
        st = request(&done, bus, to, NULL, 0, FINISH_WAIT_MS);
    if (st == MP_OK) { /* the stream's info, flat: config, state, created */
        json_t *restored = json_object_get(done, "state");
        *state = restored ? json_incref(restored) : json_object();
    }
    json_decref(done);
    json_decref(answer);
    return st;
}

/* ---- who is running --------------------------------------------------------------------- */

static void add_name(char *names, size_t size, const char *name)
{
    size_t n = strlen(name), len = strlen(names);
    for (const char *p = names; (p = strstr(p, name)) != NULL; p += n)
        if ((p == names || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return;
    if (len + n + 2 <= size)
        snprintf(names + len, size - len, "%s%s", len ? "," : "", name);
}

mp_status_t mp_backup__running(size_t *count, char *names, size_t size, mp_bus_t *bus, int wait_ms)
{
    char inbox[256];
    natsSubscription *sub = NULL;
    natsConnection *nc = mp_bus_conn(bus);
    new_inbox(inbox, sizeof(inbox), bus);
    mp_status_t st = mp_bus__from_nats(natsConnection_SubscribeSync(&sub, nc, inbox));
    if (st == MP_OK)
        st = mp_bus__from_nats(natsConnection_PublishRequest(nc, "$SRV.PING", inbox, NULL, 0));
    size_t found = 0;
    names[0] = '\0';
    for (int64_t end = mp_now_ms() + wait_ms; st == MP_OK && mp_now_ms() < end;) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, end - mp_now_ms()) != NATS_OK)
            break;
        json_t *v = NULL;
        if (mp_json_parse(&v, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)) == MP_OK &&
            mp_json_str(v, "name")) {
            add_name(names, size, mp_json_str(v, "name"));
            found++;
        }
        json_decref(v);
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    if (st == MP_OK)
        *count = found;
    return st;
}
