/*
 * mp/input.h: checking a JSON request body field by field, collecting every
 * problem with its JSON pointer so the client gets them all in one 422.
 *
 * Typical use in a handler:
 *
 *     mp_input_t in;
 *     mp_input_init(&in, req->input);
 *     const char *email = mp_input_str(&in, "email", MP_IN_REQUIRED, 3, 254);
 *     mp_input_only(&in, MP_INPUT_FIELDS("email", "password"));
 *     if (!mp_input_ok(&in))
 *         return mp_input_reply(req, &in);
 *
 * Unknown fields are errors (CONVENTIONS.md), so every handler ends its
 * checks with mp_input_only(). Strings returned are borrowed from the JSON.
 * Not thread-safe; one request at a time.
 */
#ifndef MP_INPUT_H
#define MP_INPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "mp/problem.h"

struct mp_svc_req;

enum {
    MP_IN_REQUIRED = 1 << 0, /* missing is an error */
    MP_IN_NULLABLE = 1 << 1, /* JSON null is accepted (returned as absent) */
    MP_IN_PARAM = 1 << 2,    /* a path or query parameter: a bad value is 400, not 422; numbers may come as text */
};

typedef struct mp_input {
    json_t *obj;              /* borrowed */
    mp_problem_errors_t errs; /* body problems (422) */
    int bad_param;            /* a parameter was malformed (400) */
    char param_detail[256];
} mp_input_t;

/** Starts checking `obj` (a JSON object, borrowed; NULL is treated as {}). */
void mp_input_init(mp_input_t *in, json_t *obj);
/** Frees the collected errors. */
void mp_input_dispose(mp_input_t *in);

/** A string field of `min`-`max` characters (UTF-8 code points). Returns NULL when absent or wrong (error recorded
 *  when required or wrong). */
const char *mp_input_str(mp_input_t *in, const char *key, unsigned flags, size_t min, size_t max);
/** An integer field within [min, max]; returns true and sets *out when present and valid. */
bool mp_input_int(mp_input_t *in, const char *key, unsigned flags, int64_t min, int64_t max, int64_t *out);
/** A boolean field; returns true and sets *out when present and valid. */
bool mp_input_bool(mp_input_t *in, const char *key, unsigned flags, bool *out);
/** Any JSON value of the given jansson type (JSON_OBJECT, JSON_ARRAY ...); borrowed, NULL when absent/wrong. */
json_t *mp_input_json(mp_input_t *in, const char *key, unsigned flags, json_type type);
/** A UUID string (any version, canonical 8-4-4-4-12 hex form), lower-cased into `out` (37 bytes). A malformed
 *  one is an error like any other (400 for MP_IN_PARAM). Returns true when present and valid. */
bool mp_input_uuid(mp_input_t *in, const char *key, unsigned flags, char out[37]);
/** True when `s` is a canonical UUID. */
bool mp_uuid_valid(const char *s);
/** Records an error for `key` (e.g. a rule the handler checks itself). */
void mp_input_fail(mp_input_t *in, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Records an error for every field not in `allowed` (NULL-terminated). */
void mp_input_only(mp_input_t *in, const char *const *allowed);
/** True when nothing failed so far. */
bool mp_input_ok(const mp_input_t *in);
/** Replies 400 (a malformed parameter) or 422 with every error, and disposes `in`. Returns MP_OK (replied). */
mp_status_t mp_input_reply(struct mp_svc_req *req, mp_input_t *in);

/** Pagination (CONVENTIONS.md): `limit` 1-100 (default 20) and an opaque `cursor`, as parameters. */
void mp_input_page(mp_input_t *in, int64_t *limit, const char **cursor);

/** True when `url` is an absolute https URL with a host and no userinfo, at most 2048 bytes, without spaces,
 *  backslashes or control bytes (image and avatar links a browser will load). */
bool mp_https_url_valid(const char *url);

/** Number of UTF-8 code points in `s` (invalid bytes count one each). */
size_t mp_utf8_len(const char *s);

#define MP_INPUT_FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

#endif
