/*
 * ceiling.c: mp-ceiling, the benchmark's upper bound: a C client making the
 * same NATS request-reply calls directly, with no HTTP and no script in
 * between (one loop thread, a fixed number of calls in flight, through
 * moonport's own bus loop).
 *
 *   mp-ceiling --nats URL --subject S [--inflight 64] [--seconds 10] [--body JSON]
 *              [--sub USER_ID [--roles R]] [--idempotent]
 *
 * --sub makes each call as the gateway does for a signed-in caller (Auth-Sub, Auth-Roles);
 * --idempotent sends a fresh Idempotency-Key with every call (order.v1.create). A call is counted as
 * done only when its reply's Status is 2xx; other replies count as failed.
 *
 * Prints one JSON line: {"calls_per_s":..., "p50_ms":..., "p99_ms":...}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <h2o.h>
#include "mp/bus.h"
#include "mp/bus_loop.h"

static mp_bus_loop_t *bl;
static const char *subject, *body, *sub, *roles;
static int idempotent;
static long seq;
static long done, failed;
static int64_t until_ns;
static double *lat;
static size_t nlat, caplat;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct slot {
    int64_t t0;
} slot_t;

static void fire(slot_t *s);

static void on_reply(void *arg, mp_status_t st, const mp_reply_t *reply)
{
    slot_t *s = arg;
    int64_t t = now_ns();
    if (st == MP_OK && reply->status >= 200 && reply->status < 300) {
        done++;
        if (nlat == caplat) {
            caplat = caplat ? caplat * 2 : 1 << 16;
            lat = realloc(lat, caplat * sizeof(*lat));
        }
        lat[nlat++] = (double)(t - s->t0) / 1e6;
    } else if (st != MP_ECANCELED) {
        if (failed++ == 0 && st == MP_OK)
            fprintf(stderr, "mp-ceiling: %s answered %d: %.*s\n", subject, reply->status, (int)reply->len,
                    (const char *)reply->data);
    }
    if (t < until_ns && st != MP_ECANCELED)
        fire(s);
}

static void fire(slot_t *s)
{
    char key[48];
    mp_bus_hdr_t idem = {"Idempotency-Key", key};
    snprintf(key, sizeof(key), "bench-%d-%ld", (int)getpid(), ++seq);
    mp_bus_call_t call = {.subject = subject,
                          .body = body,
                          .len = strlen(body),
                          .ctx = {.auth_sub = sub, .auth_roles = roles},
                          .extra = idempotent ? &idem : NULL,
                          .nextra = idempotent ? 1 : 0,
                          .timeout_ms = 5000};
    s->t0 = now_ns();
    if (mp_bus_call_async(NULL, bl, &call, on_reply, s) != MP_OK)
        failed++;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
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
    const char *url = arg(argc, argv, "--nats", "nats://127.0.0.1:4222");
    int inflight = atoi(arg(argc, argv, "--inflight", "64"));
    double seconds = atof(arg(argc, argv, "--seconds", "10"));
    subject = arg(argc, argv, "--subject", "echo.v1.product");
    body = arg(argc, argv, "--body", "{\"id\":\"p1\"}");
    sub = arg(argc, argv, "--sub", NULL);
    roles = arg(argc, argv, "--roles", sub ? "user" : NULL);
    for (int i = 1; i < argc; i++)
        idempotent |= strcmp(argv[i], "--idempotent") == 0;
    mp_bus_t *bus;
    mp_bus_opts_t o = {.url = url, .name = "mp-ceiling", .send_asap = atoi(arg(argc, argv, "--send-asap", "1")) != 0};
    if (mp_bus_connect(&bus, &o) != MP_OK) {
        fprintf(stderr, "mp-ceiling: %s\n", mp_err_get());
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    mp_bus_loop_create(&bl, bus, &loop);
    while (!mp_bus_loop_ready(bl)) /* the loop's own connection comes up asynchronously */
        uv_run(&loop, UV_RUN_ONCE);
    slot_t *slots = calloc((size_t)inflight, sizeof(*slots));
    int64_t t0 = now_ns();
    until_ns = t0 + (int64_t)(seconds * 1e9);
    for (int i = 0; i < inflight; i++)
        fire(&slots[i]);
    while (mp_bus_loop_pending(bl) > 0)
        uv_run(&loop, UV_RUN_ONCE);
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, nlat, sizeof(*lat), cmp);
    printf("{\"calls_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"failed\":%ld}\n", (double)done / secs,
           nlat ? lat[nlat / 2] : 0, nlat ? lat[(size_t)(nlat * 0.99)] : 0, failed);
    return 0;
}
