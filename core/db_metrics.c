/*
 * db_metrics.c: a pool's counters as Prometheus series, labelled with the
 * service that owns the pool. Sampled when /metrics is rendered, so the
 * query path pays nothing but the atomic adds in db.c.
 *
 *   moonport_db_connections{service,state="open"|"busy"|"size"}   gauge
 *   moonport_db_pool_waits_total{service}          checkouts that found every slot busy
 *   moonport_db_pool_wait_seconds_total{service}   time those checkouts waited
 *   moonport_db_pool_timeouts_total{service}       checkouts that gave up
 *   moonport_db_statements_prepared_total{service} statements prepared (once per text per connection)
 *   moonport_db_statements_cancelled_total{service} statements cancelled at their request's deadline
 *
 * busy/size is the pool's in-flight share; a rising wait rate says the
 * pool (services.<name>.db_pool) is smaller than the work, not that
 * Postgres is slow.
 */
#include "mp/alloc.h"
#include "mp/db.h"
#include "mp/metrics.h"

typedef struct exporter {
    mp_db_t *db;
    mp_series_t *open, *busy, *size, *waits, *wait_s, *timeouts, *prepared, *cancelled;
    mp_db_counters_t last;
} exporter_t;

/* Counters only grow: add what happened since the last render. */
static void add_since(mp_series_t *s, double now, double before)
{
    if (now > before)
        mp_series_add(s, now - before);
}

static void on_collect(void *arg)
{
    exporter_t *e = arg;
    mp_db_counters_t c;
    mp_db_counters(e->db, &c);
    mp_series_set(e->open, c.open);
    mp_series_set(e->busy, c.busy);
    mp_series_set(e->size, c.size);
    add_since(e->waits, (double)c.waits, (double)e->last.waits);
    add_since(e->wait_s, c.wait_seconds, e->last.wait_seconds);
    add_since(e->timeouts, (double)c.timeouts, (double)e->last.timeouts);
    add_since(e->prepared, (double)c.prepared, (double)e->last.prepared);
    add_since(e->cancelled, (double)c.cancelled, (double)e->last.cancelled);
    e->last = c;
}

static mp_series_t *counter(const char *name, const char *help, const char *service)
{
    return mp_metric_series(mp_metrics_counter(name, help, "service"), (const char *const[]){service});
}

void mp_db_metrics_export(mp_db_t *db, const char *service)
{
    exporter_t *e = mp_xcalloc(1, sizeof(*e)); /* lives as long as the registry's callback list: the process */
    mp_metric_t *conns = mp_metrics_gauge("moonport_db_connections",
                                          "Postgres pool connections: open, busy (in flight), size", "service,state");
    e->db = db;
    e->open = mp_metric_series(conns, (const char *const[]){service, "open"});
    e->busy = mp_metric_series(conns, (const char *const[]){service, "busy"});
    e->size = mp_metric_series(conns, (const char *const[]){service, "size"});
    e->waits = counter("moonport_db_pool_waits_total", "Checkouts that found every pool slot busy", service);
    e->wait_s = counter("moonport_db_pool_wait_seconds_total", "Time checkouts waited for a pool slot", service);
    e->timeouts = counter("moonport_db_pool_timeouts_total", "Checkouts that gave up waiting for a slot", service);
    e->prepared =
        counter("moonport_db_statements_prepared_total", "Statements prepared (once per text per connection)", service);
    e->cancelled =
        counter("moonport_db_statements_cancelled_total", "Statements cancelled at their request's deadline", service);
    mp_metrics_on_collect(on_collect, e);
}
