/*
 * etag.c: entity tags and If-Match / If-None-Match lists (see mp/etag.h).
 *
 * The list is parsed strictly: an entity tag is an optional W/ and a quoted
 * string of etagc characters (no quotes, no controls), and tags are
 * separated by commas with optional spaces. Anything else matches nothing,
 * so a garbled If-Match fails closed (412) rather than open.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "mp/etag.h"

void mp_etag_version(char *out, size_t size, int64_t version)
{
    snprintf(out, size, "\"%" PRId64 "\"", version);
}

/* Splits one entity tag off `*p`: sets its opaque part (inside the quotes) and weakness; false when malformed. */
static bool next_tag(const char **p, const char **opaque, size_t *len, bool *is_weak)
{
    const char *s = *p;
    *is_weak = false;
    if (s[0] == 'W' && s[1] == '/') {
        *is_weak = true;
        s += 2;
    }
    if (*s != '"')
        return false;
    const char *start = ++s;
    while (*s && *s != '"') {
        if ((unsigned char)*s < 0x21 || *s == 0x7f)
            return false;
        s++;
    }
    if (*s != '"')
        return false;
    *opaque = start;
    *len = (size_t)(s - start);
    *p = s + 1;
    return true;
}

bool mp_etag_match(const char *header, const char *etag, bool weak)
{
    const char *want, *have;
    size_t want_len, have_len;
    bool want_weak, have_weak;
    if (header == NULL || etag == NULL)
        return false;
    const char *e = etag;
    if (!next_tag(&e, &want, &want_len, &want_weak) || *e != '\0')
        return false;
    const char *p = header;
    p += strspn(p, " \t");
    if (p[0] == '*' && p[1 + strspn(p + 1, " \t")] == '\0')
        return true;
    bool matched = false;
    while (*p) {
        if (!next_tag(&p, &have, &have_len, &have_weak))
            return false;
        if (have_len == want_len && memcmp(have, want, want_len) == 0 && (weak || (!have_weak && !want_weak)))
            matched = true;
        p += strspn(p, " \t");
        if (*p == ',') {
            p++;
            p += strspn(p, " \t");
            if (*p == '\0')
                return false;
        } else if (*p != '\0') {
            return false;
        }
    }
    return matched;
}
