/*
 * events.c: the EVENTS stream's definition and the event body (see
 * mp/events.h).
 *
 * The stream is declared in code, not by an operator, so that a fresh
 * environment (a test stack, a new cluster) works with no manual step: the
 * first outbox or consumer to start creates it, and a changed definition is
 * applied by the next start. Storage type cannot be changed by an update;
 * that case is logged and the stream is used as it is. The replica count
 * comes from `nats.stream_replicas` through the bus's options, and a change
 * of it is such an update: JetStream moves the stream to more or fewer nodes.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "mp/events.h"
#include "mp/json.h"
#include "mp/log.h"

#define NANOS_PER_S 1000000000LL

mp_status_t mp_events_js(jsCtx **out, mp_bus_t *bus, int wait_ms)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = wait_ms;
    return mp_bus__from_nats(natsConnection_JetStream(out, mp_bus_conn(bus), &o));
}

mp_status_t mp_events_ensure_stream(jsCtx *js, int replicas)
{
    static const char *subjects[] = {MP_EVENTS_SUBJECTS};
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;

    jsStreamConfig_Init(&cfg);
    cfg.Name = MP_EVENTS_STREAM;
    cfg.Description = "moonport domain events (CONVENTIONS.md)";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.MaxAge = 7 * 86400 * NANOS_PER_S;
    cfg.Duplicates = 120 * NANOS_PER_S;
    cfg.Replicas = replicas > 0 ? replicas : 1; /* durable consumers inherit it (their Replicas stay 0) */
    natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) /* there, with another definition */
        s = js_UpdateStream(&si, js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK)
        return MP_OK;
    if (jerr != 0)
        return mp_err_set(MP_EINTERNAL, "stream %s: JetStream error %d: %s", MP_EVENTS_STREAM, (int)jerr,
                          nats_GetLastError(NULL));
    return mp_bus__from_nats(s);
}

mp_status_t mp_event_parse(mp_event_t *ev, json_t **body, const char *text, size_t len)
{
    json_t *v = NULL;
    if (mp_json_parse(&v, text, len) != MP_OK)
        return MP_EINVAL;
    mp_event_t e = {.id = mp_json_str(v, "id"),
                    .type = mp_json_str(v, "type"),
                    .occurred_at = mp_json_str(v, "occurred_at"),
                    .data = json_object_get(v, "data")};
    if (e.id == NULL || *e.id == '\0' || e.type == NULL || !json_is_object(e.data)) {
        json_decref(v);
        return mp_err_set(MP_EINVAL, "an event needs a string id and type and an object data");
    }
    *ev = e;
    *body = v;
    return MP_OK;
}

bool mp_events__sql(char *out, size_t size, const char *fmt, const char *schema)
{
    if (schema == NULL || !((*schema >= 'a' && *schema <= 'z') || *schema == '_'))
        return false;
    for (const char *p = schema; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    size_t n = 0, sl = strlen(schema);
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '%' && p[1] == 'S') {
            if (n + sl + 2 >= size)
                return false;
            out[n++] = '"';
            memcpy(out + n, schema, sl);
            n += sl;
            out[n++] = '"';
            p++;
        } else {
            if (n + 1 >= size)
                return false;
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return true;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mp_events__failed(mp_events__streak_t *s, const char *what, const char *key, const char *value, const char *error)
{
    int64_t now = mono_ms();
    if (s->since_ms == 0)
        s->since_ms = now;
    if (s->last_log_ms == 0 || now - s->last_log_ms >= 30000) {
        mp_log_kv(MP_LOG_WARN, NULL, what, key, value, "error", error, NULL);
        s->last_log_ms = now;
    }
}

void mp_events__ok(mp_events__streak_t *s, const char *what, const char *key, const char *value)
{
    if (s->since_ms == 0)
        return;
    char secs[24];
    snprintf(secs, sizeof(secs), "%.1f", (double)(mono_ms() - s->since_ms) / 1000);
    mp_log_kv(MP_LOG_INFO, NULL, what, key, value, "after_s", secs, NULL);
    s->since_ms = s->last_log_ms = 0;
}
