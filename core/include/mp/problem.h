/*
 * mp/problem.h: RFC 9457 problem details, the one error shape moonport
 * speaks (CONVENTIONS.md): {"type", "title", "status", "detail",
 * "request_id"} plus "errors": [{"pointer", "detail"}] for validation.
 *
 * This is the single place where a status becomes a problem body, used both
 * by HTTP handlers (mp/http_resp.h) and by services replying over NATS.
 * Leaf module: jansson and libc. Any thread.
 */
#ifndef MP_PROBLEM_H
#define MP_PROBLEM_H

#include <jansson.h>
#include "mp/buf.h"
#include "mp/status.h"

/** The standard reason phrase for an HTTP status ("Not Found"); "Unknown" for others. Static storage. */
const char *mp_http_reason(int status);

/** Appends the problem JSON for `status` to `out`. `detail` and `request_id` may be NULL. `errors` (a JSON array of
 *  {pointer, detail} objects, borrowed reference) may be NULL. Details are JSON-escaped; never put secrets in them. */
void mp_problem_render(mp_buf_t *out, int status, const char *detail, const char *request_id, json_t *errors);

/** A list of validation errors being collected (JSON pointers and messages). */
typedef struct mp_problem_errors {
    json_t *list; /* NULL until the first error */
} mp_problem_errors_t;

/** Adds an error at `pointer` (an RFC 6901 JSON pointer such as "/items/0/quantity"), printf-style detail. */
void mp_problem_add(mp_problem_errors_t *e, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Number of errors collected. */
size_t mp_problem_count(const mp_problem_errors_t *e);
/** Frees the list. */
void mp_problem_errors_dispose(mp_problem_errors_t *e);

/** Appends `key` to a JSON pointer prefix with RFC 6901 escaping ("~" -> "~0", "/" -> "~1") into `out`; `out` may be
 *  `prefix` itself. */
void mp_json_pointer_join(char *out, size_t size, const char *prefix, const char *key);

#endif
