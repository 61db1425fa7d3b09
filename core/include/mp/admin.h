/*
 * mp/admin.h: the admin port every process serves (CONVENTIONS.md):
 * GET /healthz (alive: 200), GET /readyz (200 only when every registered
 * dependency check passes, else 503 naming what is down), GET /metrics.
 *
 * Roles register their checks (their NATS link, their Postgres pool, their
 * Redis pool) and extra pages before the admin server starts. Checks block
 * (they ping), so they run on the admin server's own loop thread, never on
 * the public one; results are cached for a second so probes cannot hammer
 * the databases.
 */
#ifndef MP_ADMIN_H
#define MP_ADMIN_H

#include "mp/buf.h"
#include "mp/http.h"
#include "mp/status.h"

/** A readiness check: MP_OK when the dependency answers; otherwise a status and mp_err_set() detail. */
typedef mp_status_t (*mp_health_check_cb)(void *arg);

/** Registers a check named `name` ("nats", "postgres:auth"). Before mp_admin_start(). The name is copied. */
void mp_health_register(const char *name, mp_health_check_cb cb, void *arg);

/** An extra admin page: fills `out` with the body and returns the HTTP status; sets *content_type (static). */
typedef int (*mp_admin_page_cb)(void *arg, mp_buf_t *out, const char **content_type);

/** Registers an extra GET page at exactly `path` (e.g. "/bff/scripts"). Any time, any thread. */
void mp_admin_page(const char *path, mp_admin_page_cb cb, void *arg);

/** Marks start-up as finished: until then /readyz answers 503 "starting", whatever the checks say. */
void mp_admin_set_started(void);

/** Marks the process as draining: /readyz answers 503 from now on, so load balancers stop sending traffic. */
void mp_admin_set_draining(void);

/** Runs every check now and renders the /readyz body; returns 200 or 503. Exported for tests. */
int mp_admin_readiness(mp_buf_t *out);

/** Starts the admin server on `listen` with one loop thread. Caller stops it with mp_http_server_stop(). */
mp_status_t mp_admin_start(mp_http_server_t **out, const char *listen);

#endif
