/*
 * mp/cursor.h: the opaque `cursor` of keyset pagination (CONVENTIONS.md:
 * `?cursor=`, `"next_cursor"`).
 *
 * A cursor carries the sort key of the last item of a page plus its id, so
 * the next page is "rows after this key" rather than an OFFSET: pages stay
 * stable while rows are added or removed. Its text is unpadded base64url of
 * "<kind>\n<field>\n<field>...". `kind` names the listing it belongs to
 * (e.g. "product.newest", plus a digest of the filters), so a cursor handed
 * to another listing or sort is refused instead of silently skipping rows.
 * Clients must treat it as opaque; the format may change.
 *
 * Leaf module: b64url and libc. Thread-safe (no state).
 */
#ifndef MP_CURSOR_H
#define MP_CURSOR_H

#include <stddef.h>
#include "mp/status.h"

/** Most fields one cursor carries. */
#define MP_CURSOR_MAX_FIELDS 4

/** Encodes `kind` and `n` fields (1..MP_CURSOR_MAX_FIELDS; none may contain '\n' or be NULL) into `out` (`size`
 *  bytes, NUL-terminated). Borrowed buffers. Errors: MP_EINVAL (a field holds '\n', bad n), MP_ETOOBIG (`out` is
 *  too small). */
mp_status_t mp_cursor_encode(char *out, size_t size, const char *kind, const char *const *fields, size_t n);

/** Decodes `cursor` made by mp_cursor_encode() with the same `kind` and `n` fields. The fields are copied into
 *  `buf` (`size` bytes) and `fields[i]` point into it (borrowed from `buf`); written only on MP_OK. Errors:
 *  MP_EINVAL (not base64url, another kind, another field count, empty field), MP_ETOOBIG (`buf` too small). */
mp_status_t mp_cursor_decode(const char **fields, size_t n, char *buf, size_t size, const char *kind,
                             const char *cursor);

#endif
