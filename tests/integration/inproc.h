/*
 * inproc.h: running moonport roles inside an integration test process.
 *
 * mp_serve_test_start() writes a config (a free admin port, quiet logs,
 * plus `extra` YAML), points MOONPORT_NATS_URL / _POSTGRES_DSN / _REDIS_URL
 * at the harness's servers, and runs `moonport serve --roles <roles>` on a
 * thread. SIGTERM, SIGINT and SIGHUP are blocked first in the calling
 * thread, so every thread started later inherits the mask and the serving
 * thread's sigwaitinfo is the only taker: mp_serve_test_stop() sends one
 * SIGTERM and the roles drain and stop as in production. Call start before
 * creating any other thread; one serve per process.
 */
#ifndef MP_TEST_INPROC_H
#define MP_TEST_INPROC_H

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/serve.h"
#include "integration/testenv.h"

static pthread_t mp_inproc_thread;
static int mp_inproc_rc = -1;
static char mp_inproc_config[64];
static char mp_inproc_roles[64];

static inline int mp_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &len))
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static void *mp_inproc_main(void *arg)
{
    char *argv[] = {"serve", "--config", mp_inproc_config, "--roles", mp_inproc_roles, NULL};
    mp_inproc_rc = mp_serve_main(5, argv);
    return NULL;
}

/** Starts `roles` in this process; returns 0, or -1 when the config cannot be written or the thread started. */
static inline int mp_serve_test_start(const char *roles, const char *extra)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    snprintf(mp_inproc_roles, sizeof(mp_inproc_roles), "%s", roles);
    snprintf(mp_inproc_config, sizeof(mp_inproc_config), "/tmp/mp-inproc-%d.yaml", (int)getpid());
    FILE *f = fopen(mp_inproc_config, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "log:\n  level: warn\nadmin:\n  listen: 127.0.0.1:%d\nshutdown:\n  drain: 5s\n%s", mp_test_free_port(),
            extra ? extra : "");
    fclose(f);
    setenv("MOONPORT_NATS_URL", MP_TEST_NATS_URL(), 1);
    setenv("MOONPORT_POSTGRES_DSN", MP_TEST_PG_DSN(), 1);
    setenv("MOONPORT_REDIS_URL", MP_TEST_REDIS_URL(), 1);
    return pthread_create(&mp_inproc_thread, NULL, mp_inproc_main, NULL) == 0 ? 0 : -1;
}

/** Stops what mp_serve_test_start() started; returns serve's exit code (0 after a clean drain). */
static inline int mp_serve_test_stop(void)
{
    kill(getpid(), SIGTERM);
    pthread_join(mp_inproc_thread, NULL);
    unlink(mp_inproc_config);
    return mp_inproc_rc;
}

/** Sends `body` to `subject` with context `ctx` and waits up to 10 s: returns the reply's status (-1 when none came)
 *  and, when `out` is not NULL, the reply parsed (new reference, NULL for an empty body). */
static inline int mp_test_request(json_t **out, mp_bus_t *bus, const char *subject, const char *body, mp_bus_ctx_t ctx)
{
    mp_bus_call_t c = {.subject = subject, .body = body, .len = strlen(body), .timeout_ms = 10000, .ctx = ctx};
    mp_msg_t *reply = NULL;
    if (mp_bus_request(&reply, bus, &c) != MP_OK)
        return -1;
    int status = mp_msg_status(reply);
    if (out)
        *out = mp_msg_len(reply) ? json_loadb(mp_msg_data(reply), mp_msg_len(reply), 0, NULL) : NULL;
    mp_msg_destroy(reply);
    return status;
}

#endif
