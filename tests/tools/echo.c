/*
 * echo.c: mp-echo, a minimal NATS responder for tests and benchmarks.
 *
 *   mp-echo --nats URL [--prefix echo] [--workers 8] [--bytes N] [--inline]
 *
 * Serves <prefix>.v1.<anything> in the queue group <prefix>: replies 200
 * with the request body (or, with --bytes N, a fixed JSON reply of about N
 * bytes). An input field "sleep_ms" delays the reply; "status" sets its
 * Status. <prefix>.v1.stats answers {"calls": N} (calls served so far, the
 * stats call excluded), so tests can see how many calls really arrived.
 * --inline answers on nats.c's delivery thread with the fixed reply and
 * ignores sleep_ms/status: the cheapest responder, for benchmarks.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/bus_serve.h"

static mp_bus_t *bus;
static _Atomic long calls;
static char *fixed;
static size_t fixed_len;
static char stats_subject[128];

/* --inline: answer on the delivery thread, no hand-off */
static void on_inline(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    atomic_fetch_add(&calls, 1);
    if (fixed)
        mp_bus_reply(bus, msg, 200, fixed, fixed_len, NULL, 0);
    else
        mp_bus_reply(bus, msg, 200, mp_msg_data(msg), mp_msg_len(msg), NULL, 0);
    natsMsg_Destroy(msg);
}

static void on_request(void *arg, mp_msg_t *req, int worker)
{
    char status_text[12] = "200";
    int status = 200;
    if (strcmp(mp_msg_subject(req), stats_subject) == 0) {
        char body[64];
        int n = snprintf(body, sizeof(body), "{\"calls\":%ld}", atomic_load(&calls));
        mp_bus_reply(bus, req, 200, body, (size_t)n, NULL, 0);
        return;
    }
    atomic_fetch_add(&calls, 1);
    json_t *in = json_loadb(mp_msg_data(req), mp_msg_len(req), 0, NULL);
    json_t *sleep_ms = json_object_get(in, "sleep_ms"), *st = json_object_get(in, "status");
    if (json_is_integer(sleep_ms) && json_integer_value(sleep_ms) > 0)
        usleep((useconds_t)json_integer_value(sleep_ms) * 1000);
    if (json_is_integer(st))
        status = (int)json_integer_value(st);
    snprintf(status_text, sizeof(status_text), "%d", status);
    json_decref(in);
    if (fixed)
        mp_bus_reply(bus, req, status, fixed, fixed_len, NULL, 0);
    else
        mp_bus_reply(bus, req, status, mp_msg_data(req), mp_msg_len(req), NULL, 0);
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    const char *url = arg(argc, argv, "--nats", "nats://127.0.0.1:4222"), *prefix = arg(argc, argv, "--prefix", "echo");
    int workers = atoi(arg(argc, argv, "--workers", "8"));
    int bytes = atoi(arg(argc, argv, "--bytes", "0"));
    char subject[128];
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (bytes > 0) { /* a reply shaped like a service's: an object holding a list */
        json_t *items = json_array();
        while (json_array_size(items) * 60 < (size_t)bytes)
            json_array_append_new(items, json_pack("{s:s, s:i, s:s}", "id", "7d3c1c1e-0000-4000-8000-000000000000", "n",
                                                   (int)json_array_size(items), "name", "item name"));
        fixed = json_dumps(json_pack("{s:o, s:n}", "items", items, "next_cursor"), JSON_COMPACT);
        fixed_len = strlen(fixed);
    }
    mp_bus_opts_t o = {.url = url, .name = "mp-echo", .send_asap = atoi(arg(argc, argv, "--send-asap", "1")) != 0};
    if (mp_bus_connect(&bus, &o) != MP_OK) {
        fprintf(stderr, "mp-echo: %s\n", mp_err_get());
        return 1;
    }
    int inl = 0;
    for (int i = 1; i < argc; i++)
        inl |= strcmp(argv[i], "--inline") == 0;
    if (inl) {
        natsSubscription *subs[4] = {0};
        snprintf(subject, sizeof(subject), "%s.v1.*", prefix);
        /* several subscriptions in one queue group: nats.c gives each its own delivery thread */
        for (int i = 0; i < 2; i++)
            if (natsConnection_QueueSubscribe(&subs[i], mp_bus_conn(bus), subject, prefix, on_inline, NULL) !=
                    NATS_OK ||
                natsSubscription_SetPendingLimits(subs[i], -1, -1) != NATS_OK)
                return 1;
        natsConnection_Flush(mp_bus_conn(bus));
        printf("mp-echo ready on %s (inline)\n", subject);
        fflush(stdout);
        int sig;
        sigwait(&sigs, &sig);
        for (int i = 0; i < 2; i++)
            natsSubscription_Destroy(subs[i]);
        mp_bus_destroy(bus);
        free(fixed);
        return 0;
    }
    mp_bus_server_t *srv = NULL;
    mp_bus_server_opts_t so = {.workers = workers > 0 ? workers : 8, .max_queue = 100000, .name = "echo"};
    snprintf(subject, sizeof(subject), "%s.v1.*", prefix);
    snprintf(stats_subject, sizeof(stats_subject), "%s.v1.stats", prefix);
    if (mp_bus_server_create(&srv, bus, &so) != MP_OK ||
        mp_bus_server_add(srv, subject, prefix, on_request, NULL) != MP_OK) {
        fprintf(stderr, "mp-echo: %s\n", mp_err_get());
        return 1;
    }
    natsConnection_Flush(mp_bus_conn(bus));
    printf("mp-echo ready on %s\n", subject);
    fflush(stdout);
    int sig;
    sigwait(&sigs, &sig);
    mp_bus_server_destroy(srv);
    mp_bus_destroy(bus);
    free(fixed);
    return 0;
}
