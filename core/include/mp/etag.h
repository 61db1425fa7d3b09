/*
 * mp/etag.h: entity tags and the conditional request headers that carry
 * them (RFC 9110 section 8.8.3 and 13.1), as CONVENTIONS.md uses them:
 * strong, quoted ETags; a versioned resource's ETag is its version in
 * quotes ("7"); If-Match with a stale one is 412, If-None-Match with the
 * current one is 304.
 *
 * Leaf module: libc only. Thread-safe (no state).
 */
#ifndef MP_ETAG_H
#define MP_ETAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Writes the ETag of a version, `"7"`, into `out` (at least 24 bytes). */
void mp_etag_version(char *out, size_t size, int64_t version);

/** True when the header value `header` (an If-Match or If-None-Match field: "*" or a comma-separated list of entity
 *  tags, each `"opaque"` or `W/"opaque"`) matches the entity tag `etag` (quoted, e.g. "\"7\""). `weak` selects the
 *  weak comparison (If-None-Match: W/ is ignored on both sides); otherwise the strong comparison (If-Match: a weak
 *  tag never matches). A malformed list matches nothing. Borrowed strings. */
bool mp_etag_match(const char *header, const char *etag, bool weak);

#endif
