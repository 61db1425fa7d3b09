/*
 * mp/json.h: JSON helpers over jansson shared by the gateway, the services
 * and the BFF host: strict parsing with moonport's limits (nesting depth
 * 64, CONVENTIONS.md) and compact dumping into our buffers.
 * Leaf module: jansson and libc. Any thread.
 */
#ifndef MP_JSON_H
#define MP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "mp/buf.h"
#include "mp/status.h"

#define MP_JSON_MAX_DEPTH 64

/** True when the JSON text nests arrays/objects at most `max` levels (strings are skipped correctly). Works on any
 *  bytes; does not validate the rest of the syntax. */
bool mp_json_depth_ok(const char *text, size_t len, int max);

/** Copies JSON text `in` to `out` (room for `len` bytes) without the whitespace between tokens, as Postgres's
 *  json_build_object puts it (`{"a" : 1, "b" : 2}`); strings are copied as they are. Returns the new length. Works on
 *  any bytes (text that is not JSON comes out with its whitespace outside quotes removed). */
size_t mp_json_compact(char *out, const char *in, size_t len);

/** Parses `len` bytes as one JSON value (any type; duplicate keys rejected; NUL bytes in strings refused) within the
 *  depth limit. Errors: MP_EINVAL with "line L column C: what" in mp_err_get(). New reference in `*out`. */
mp_status_t mp_json_parse(json_t **out, const char *text, size_t len);

/** Appends `v` compactly (no spaces, keys in insertion order) to `out`. */
void mp_json_dump(mp_buf_t *out, const json_t *v);

/** The string at key `k` of object `o`, or NULL when absent or not a string. Borrowed. */
const char *mp_json_str(const json_t *o, const char *k);

#endif
