/*
 * mp/status.h: the one status enum every fallible moonport function returns.
 *
 * The names, their messages and the HTTP status each maps to come from one
 * X-macro (libuv's uv-errno map), so the three cannot drift apart. A status
 * becomes an HTTP problem in exactly one place: mp_http_problem_from_status().
 *
 * Lower layers attach human detail to a failure with mp_err_set() (a
 * thread-local buffer, as nats.c's nats_setError), and the layer that handles
 * the error reads it once with mp_err_get(). Thread-safe.
 */
#ifndef MP_STATUS_H
#define MP_STATUS_H

/* X(name, http status, message) */
#define MP_STATUS_MAP(X)                                                                                               \
    X(OK, 200, "ok")                                                                                                   \
    X(EINVAL, 400, "invalid argument")                                                                                 \
    X(EUNAUTH, 401, "authentication required")                                                                         \
    X(EFORBIDDEN, 403, "forbidden")                                                                                    \
    X(ENOTFOUND, 404, "not found")                                                                                     \
    X(ECONFLICT, 409, "conflict")                                                                                      \
    X(EPRECOND, 412, "precondition failed")                                                                            \
    X(ETOOBIG, 413, "too large")                                                                                       \
    X(EMEDIA, 415, "unsupported media type")                                                                           \
    X(EVALIDATION, 422, "validation failed")                                                                           \
    X(ELIMIT, 429, "rate limited")                                                                                     \
    X(EINTERNAL, 500, "internal error")                                                                                \
    X(ENOMEM, 500, "out of memory")                                                                                    \
    X(EIO, 500, "i/o error")                                                                                           \
    X(EBADREPLY, 502, "bad reply from a service")                                                                      \
    X(EUNAVAIL, 503, "dependency unavailable")                                                                         \
    X(ETIMEDOUT, 504, "timed out")                                                                                     \
    X(ECANCELED, 499, "canceled")

typedef enum {
#define MP__STATUS_ENUM(name, http, msg) MP_##name,
    MP_STATUS_MAP(MP__STATUS_ENUM)
#undef MP__STATUS_ENUM
        MP__STATUS_COUNT
} mp_status_t;

/** Returns the message for `s` ("unknown status" when out of range). Static storage; any thread. */
const char *mp_status_str(mp_status_t s);

/** Returns the symbolic name of `s` without the MP_ prefix ("ETIMEDOUT"). Static storage; any thread. */
const char *mp_status_name(mp_status_t s);

/** Returns the HTTP status code `s` maps to (200 for MP_OK). Any thread. */
int mp_status_http(mp_status_t s);

/** Returns the status whose HTTP code is `http` (the first in the map), MP_EINTERNAL for unknown 5xx, MP_EINVAL for
 *  unknown 4xx, MP_OK for 1xx-3xx. Any thread. */
mp_status_t mp_status_from_http(int http);

/**
 * Records human detail for the failure about to be returned by this thread, printf-style. The text is kept in a
 * thread-local buffer (truncated at 4 KiB) until the next mp_err_set() or mp_err_clear(). Returns `s` so callers
 * can write `return mp_err_set(MP_EINVAL, "bad port %d", p);`.
 */
mp_status_t mp_err_set(mp_status_t s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Returns this thread's last detail text ("" when none). Borrowed; valid until this thread's next mp_err_set(). */
const char *mp_err_get(void);

/** Forgets this thread's detail text. */
void mp_err_clear(void);

#endif
