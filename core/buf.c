/*
 * buf.c: growable NUL-terminated byte buffer (see mp/buf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"

void mp_buf_reserve(mp_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->base = mp_xrealloc(b->base, cap);
    b->cap = cap;
}

void mp_buf_append(mp_buf_t *b, const void *p, size_t len)
{
    mp_buf_reserve(b, len);
    if (len)
        memcpy(b->base + b->len, p, len);
    b->len += len;
    b->base[b->len] = '\0';
}

void mp_buf_puts(mp_buf_t *b, const char *s)
{
    mp_buf_append(b, s, strlen(s));
}

void mp_buf_printf(mp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    mp_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    /* overlong 3/4-byte forms, surrogates and code points above U+10FFFF */
    if (n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
        return 0;
    if (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

void mp_buf_json_escape(mp_buf_t *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    mp_buf_reserve(b, len + 2);
    while (p < end) {
        /* the common case: a run of printable ASCII, copied at once */
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            mp_buf_append(b, run, (size_t)(p - run));
        if (p == end)
            break;
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            mp_buf_append(b, esc, 2);
            p++;
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (c == '\n')
                mp_buf_append(b, "\\n", 2);
            else if (c == '\r')
                mp_buf_append(b, "\\r", 2);
            else if (c == '\t')
                mp_buf_append(b, "\\t", 2);
            else
                mp_buf_append(b, esc, 6);
            p++;
        } else {
            size_t n = utf8_seq_len(p, (size_t)(end - p));
            if (n == 0) {
                mp_buf_append(b, "\xef\xbf\xbd", 3);
                p++;
            } else {
                mp_buf_append(b, p, n);
                p += n;
            }
        }
    }
}

void mp_buf_reset(mp_buf_t *b)
{
    b->len = 0;
    if (b->base)
        b->base[0] = '\0';
}

void mp_buf_dispose(mp_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

char *mp_buf_steal(mp_buf_t *b)
{
    char *p = b->base ? b->base : mp_xstrdup("");
    b->base = NULL;
    b->len = b->cap = 0;
    return p;
}

size_t mp_u64_dec(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0, i = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        out[i++] = tmp[--n];
    out[i] = '\0';
    return i;
}
