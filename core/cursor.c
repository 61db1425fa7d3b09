/*
 * cursor.c: opaque keyset-pagination cursors (see mp/cursor.h).
 *
 * The decoder reads client input, so it refuses anything the encoder could
 * not have produced for this `kind`: bad base64url, another kind, a field
 * count other than the caller expects, empty fields and NUL bytes.
 */
#include <string.h>
#include "mp/b64url.h"
#include "mp/cursor.h"

mp_status_t mp_cursor_encode(char *out, size_t size, const char *kind, const char *const *fields, size_t n)
{
    char raw[1536];
    size_t len = strlen(kind);
    if (n == 0 || n > MP_CURSOR_MAX_FIELDS || strchr(kind, '\n'))
        return mp_err_set(MP_EINVAL, "cursor: bad kind or field count");
    if (len >= sizeof(raw))
        return mp_err_set(MP_ETOOBIG, "cursor: too long");
    memcpy(raw, kind, len);
    for (size_t i = 0; i < n; i++) {
        size_t fl = fields[i] ? strlen(fields[i]) : 0;
        if (fields[i] == NULL || memchr(fields[i], '\n', fl))
            return mp_err_set(MP_EINVAL, "cursor: field %zu is missing or holds a newline", i);
        if (len + 1 + fl >= sizeof(raw))
            return mp_err_set(MP_ETOOBIG, "cursor: too long");
        raw[len++] = '\n';
        memcpy(raw + len, fields[i], fl);
        len += fl;
    }
    if (4 * ((len + 2) / 3) + 1 > size)
        return mp_err_set(MP_ETOOBIG, "cursor: output buffer too small");
    mp_b64url_encode(out, (const unsigned char *)raw, len);
    return MP_OK;
}

mp_status_t mp_cursor_decode(const char **fields, size_t n, char *buf, size_t size, const char *kind,
                             const char *cursor)
{
    size_t clen = strlen(cursor), klen = strlen(kind);
    const char *found[MP_CURSOR_MAX_FIELDS];
    if (n == 0 || n > MP_CURSOR_MAX_FIELDS)
        return mp_err_set(MP_EINVAL, "cursor: bad field count");
    if (clen == 0 || 3 * clen / 4 + 3 > size)
        return mp_err_set(clen == 0 ? MP_EINVAL : MP_ETOOBIG, "cursor: empty or too long");
    long len = mp_b64url_decode((unsigned char *)buf, cursor, clen);
    if (len < 0)
        return mp_err_set(MP_EINVAL, "the cursor is malformed");
    buf[len] = '\0';
    if ((size_t)len != strlen(buf) || (size_t)len <= klen || memcmp(buf, kind, klen) != 0 || buf[klen] != '\n')
        return mp_err_set(MP_EINVAL, "the cursor does not belong to this listing");
    char *p = buf + klen;
    size_t got = 0;
    while (p && *p == '\n') {
        *p++ = '\0';
        if (got == n || *p == '\0' || *p == '\n')
            return mp_err_set(MP_EINVAL, "the cursor does not belong to this listing");
        found[got++] = p;
        p = strchr(p, '\n');
    }
    if (got != n)
        return mp_err_set(MP_EINVAL, "the cursor does not belong to this listing");
    memcpy(fields, found, n * sizeof(*fields));
    return MP_OK;
}
