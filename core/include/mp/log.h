/*
 * mp/log.h: structured logs, one JSON object a line on stderr
 * (CONVENTIONS.md): ts, level, service, msg, request_id and trace_id where
 * known, plus string fields the caller adds.
 *
 * A line is built in memory and written with one write(2), so lines from
 * different threads never interleave. The `service` field is per thread (a
 * process running several roles names each role's threads), falling back to
 * the process name. Never pass secrets, tokens or whole bodies. Any thread.
 */
#ifndef MP_LOG_H
#define MP_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { MP_LOG_DEBUG, MP_LOG_INFO, MP_LOG_WARN, MP_LOG_ERROR, MP_LOG_FATAL } mp_log_level_t;

/** Request context carried into log lines. Both fields may be NULL. Borrowed by the log call only. */
typedef struct mp_log_ctx {
    const char *request_id;
    const char *trace_id;
} mp_log_ctx_t;

/** Sets the process-wide service name (default "moonport") and minimum level. Call once at start-up. */
void mp_log_init(const char *service, mp_log_level_t min_level);
/** Names the service for log lines written by the calling thread (NULL restores the process name). The string must
 *  outlive the thread's use of it (a literal or a registry name). */
void mp_log_set_thread_service(const char *service);
/** Parses "debug", "info", "warn", "error". Returns false (and leaves *out) on anything else. */
bool mp_log_level_parse(mp_log_level_t *out, const char *s);
/** True when lines at `lvl` are written. */
bool mp_log_enabled(mp_log_level_t lvl);
/** Redirects output to `fd` (default 2); for tests. */
void mp_log_set_fd(int fd);

/** Writes a line whose msg is printf-formatted. `ctx` may be NULL. */
void mp_log(mp_log_level_t lvl, const mp_log_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Writes a line with msg `msg` and extra string fields given as key, value pairs ending with NULL. A NULL value
 *  skips its key. `ctx` may be NULL. Example: mp_log_kv(MP_LOG_WARN, ctx, "db down", "error", e, NULL). */
void mp_log_kv(mp_log_level_t lvl, const mp_log_ctx_t *ctx, const char *msg, ...) __attribute__((sentinel));

/** A line that an outage would repeat on every request (a dependency's error on a hot path): keep one limiter per
 *  kind of line, zero-initialised (a static is fine), shared by every thread. */
typedef struct mp_log_limiter {
    _Atomic int64_t last_ms;     /* monotonic ms of the last line let through; 0: none yet */
    _Atomic uint64_t suppressed; /* calls refused since that line */
} mp_log_limiter_t;

/** True when the caller should write its line now: the first time, then at most once per `every_ms` (one thread
 *  wins a race). When it answers true and `suppressed` is not NULL, `*suppressed` is how many calls it refused since
 *  the previous line (for a "suppressed" field), and the count starts again. Any thread. */
bool mp_log_now_and_then(mp_log_limiter_t *l, int64_t every_ms, uint64_t *suppressed);

#define MP_LOG_DEBUG_ON() mp_log_enabled(MP_LOG_DEBUG)

#endif
