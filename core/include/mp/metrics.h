/*
 * mp/metrics.h: a process-wide registry of counters, gauges and histograms,
 * rendered in Prometheus text format 0.0.4 on the admin port.
 *
 * A metric is a family (name, help, label names); a series is one set of
 * label values. Looking a series up takes a lock and a hash, so hot paths
 * look it up once and keep the pointer: series live until the process exits.
 * Updating a series is lock-free (atomics), from any thread.
 *
 * Names follow CONVENTIONS.md: prefix `moonport_`, `_total` on counters,
 * `_seconds` on durations.
 */
#ifndef MP_METRICS_H
#define MP_METRICS_H

#include <stddef.h>
#include "mp/buf.h"

typedef enum { MP_METRIC_COUNTER, MP_METRIC_GAUGE, MP_METRIC_HISTOGRAM } mp_metric_type_t;

typedef struct mp_metric mp_metric_t; /* a family */
typedef struct mp_series mp_series_t; /* one label set of a family */

/** Default latency buckets in seconds: 0.0005 .. 10. */
extern const double mp_metrics_latency_buckets[];
extern const size_t mp_metrics_latency_nbuckets;

/**
 * Returns the family `name`, creating it on first use. `labels` is a comma-separated list of label names ("route,
 * method,status") or NULL/"" for none. Calling again with the same name returns the same family (type and labels
 * must match; a mismatch is a programmer error and aborts). `buckets` (ascending upper bounds, +Inf implied) is
 * used by histograms only; NULL means the latency buckets. Owned by the registry; never freed. Any thread.
 */
mp_metric_t *mp_metrics_family(mp_metric_type_t type, const char *name, const char *help, const char *labels,
                               const double *buckets, size_t nbuckets);

/** Shorthands for mp_metrics_family(). */
mp_metric_t *mp_metrics_counter(const char *name, const char *help, const char *labels);
mp_metric_t *mp_metrics_gauge(const char *name, const char *help, const char *labels);
mp_metric_t *mp_metrics_histogram(const char *name, const char *help, const char *labels);

/**
 * Returns the series of `m` for `values` (as many strings as the family has labels; NULL when it has none), creating
 * it on first use. Label values are copied and escaped when rendered. Owned by the registry; the pointer stays valid
 * for the life of the process. Any thread.
 */
mp_series_t *mp_metric_series(mp_metric_t *m, const char *const *values);

/** Adds `v` (>= 0 for counters) to a counter or gauge. Any thread, lock-free. */
void mp_series_add(mp_series_t *s, double v);
/** Sets a gauge. Any thread, lock-free. */
void mp_series_set(mp_series_t *s, double v);
/** Records one observation in a histogram. Any thread, lock-free. */
void mp_series_observe(mp_series_t *s, double v);
/** Reads a counter's or gauge's value, or a histogram's observation count; for tests and health checks. */
double mp_series_value(const mp_series_t *s);

/** Looks the series up and adds `v`; for cold paths. `values` as in mp_metric_series(). */
void mp_metric_add(mp_metric_t *m, const char *const *values, double v);
/** Looks the series up and records an observation; for cold paths. */
void mp_metric_observe(mp_metric_t *m, const char *const *values, double v);

/** A callback run at the start of every render, to refresh gauges that are sampled rather than updated (pool sizes,
 *  queue depths). Runs on the rendering thread. */
typedef void (*mp_metrics_collect_cb)(void *arg);
/** Registers a collect callback. Any thread; callbacks are never removed. */
void mp_metrics_on_collect(mp_metrics_collect_cb cb, void *arg);

/** Appends the whole registry to `out` in Prometheus text format 0.0.4, families sorted by name. Any thread. */
void mp_metrics_render(mp_buf_t *out);

/** Forgets every family and series; for unit tests only (not thread-safe against concurrent use). */
void mp_metrics__reset(void);

/** Builds a label-value array literal: MP_LABELS("GET", "/v1/x", "200"). */
#define MP_LABELS(...) ((const char *const[]){__VA_ARGS__})

#endif
