/*
 * service_discovery.c: the NATS service-discovery protocol (ADR-32), so the
 * standard `nats micro ls|info|stats` tooling sees every moonport service:
 * each instance answers $SRV.<VERB>, $SRV.<VERB>.<name> and
 * $SRV.<VERB>.<name>.<id> for PING, INFO and STATS, outside any queue group
 * (every instance must answer).
 */
#include <stdio.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/json.h"
#include "service_int.h"

typedef struct verb_arg {
    mp_svc_t *svc;
    const char *verb;
} verb_arg_t; /* the layout of mp_svc_t.discovery[] */

static json_t *base(mp_svc_t *svc, const char *type)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{}}", "type", type, "name", svc->def->name, "id", svc->id, "version",
                     svc->version, "metadata");
}

static json_t *info_endpoints(mp_svc_t *svc)
{
    json_t *a = json_array();
    for (size_t i = 0; i < svc->nstats; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:{}}", "name", svc->stats[i].ep->op, "subject",
                                           svc->stats[i].subject, "queue_group", svc->def->name, "metadata"));
    return a;
}

static json_t *stats_endpoints(mp_svc_t *svc)
{
    json_t *a = json_array();
    for (size_t i = 0; i < svc->nstats; i++) {
        mp_ep_stats_t *s = &svc->stats[i];
        uint64_t n = atomic_load(&s->requests), ns = atomic_load(&s->nanos);
        pthread_mutex_lock(&s->mu);
        json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I}", "name", s->ep->op, "subject", s->subject,
                              "queue_group", svc->def->name, "num_requests", (json_int_t)n, "num_errors",
                              (json_int_t)atomic_load(&s->errors), "last_error", s->last_error, "processing_time",
                              (json_int_t)ns, "average_processing_time", (json_int_t)(n ? ns / n : 0));
        pthread_mutex_unlock(&s->mu);
        json_array_append_new(a, e);
    }
    return a;
}

void mp_svc__discovery_render(mp_svc_t *svc, const char *verb, mp_buf_t *out)
{
    json_t *j;
    if (strcmp(verb, "INFO") == 0) {
        j = base(svc, "io.nats.micro.v1.info_response");
        json_object_set_new(j, "description", json_string(svc->description));
        json_object_set_new(j, "endpoints", info_endpoints(svc));
    } else if (strcmp(verb, "STATS") == 0) {
        j = base(svc, "io.nats.micro.v1.stats_response");
        json_object_set_new(j, "started", json_string(svc->started));
        json_object_set_new(j, "endpoints", stats_endpoints(svc));
    } else {
        j = base(svc, "io.nats.micro.v1.ping_response");
    }
    mp_json_dump(out, j);
    json_decref(j);
}

static void on_discovery(void *arg, mp_msg_t *msg, int worker)
{
    verb_arg_t *va = arg;
    mp_buf_t b = MP_BUF_INIT;
    mp_svc__discovery_render(va->svc, va->verb, &b);
    /* plain replies: discovery tooling does not know moonport's Status header */
    mp_bus_reply_plain(va->svc->bus, msg, b.base, b.len);
    mp_buf_dispose(&b);
}

mp_status_t mp_svc__discovery_subscribe(mp_svc_t *svc)
{
    static const char *verbs[] = {"PING", "INFO", "STATS"};
    char subject[160];
    mp_status_t st;
    for (size_t v = 0; v < 3; v++) {
        verb_arg_t *va = (verb_arg_t *)&svc->discovery[v]; /* lives as long as the service */
        va->svc = svc;
        va->verb = verbs[v];
        const char *forms[3] = {"$SRV.%s", "$SRV.%s.%s", "$SRV.%s.%s.%s"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(subject, sizeof(subject), forms[i], verbs[v], svc->def->name, svc->id);
            if ((st = mp_bus_server_add(svc->server, subject, NULL, on_discovery, va)) != MP_OK)
                return st;
        }
    }
    return MP_OK;
}
