/*
 * mp/buf.h: a growable byte buffer (Redis sds without the header trick).
 * The contents are always NUL-terminated so they can be handed to C string
 * APIs. Leaf module: libc only. Not thread-safe; one owner at a time.
 */
#ifndef MP_BUF_H
#define MP_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_buf {
    char *base; /* NULL until the first append */
    size_t len;
    size_t cap;
} mp_buf_t;

#define MP_BUF_INIT                                                                                                    \
    {                                                                                                                  \
        NULL, 0, 0                                                                                                     \
    }

/** Makes room for `extra` more bytes. Aborts on OOM. */
void mp_buf_reserve(mp_buf_t *b, size_t extra);
/** Appends `len` bytes. */
void mp_buf_append(mp_buf_t *b, const void *p, size_t len);
/** Appends a C string. */
void mp_buf_puts(mp_buf_t *b, const char *s);
/** Appends printf-style formatted text. */
void mp_buf_printf(mp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends `s` escaped as the inside of a JSON string (no quotes added); invalid UTF-8 bytes become U+FFFD. */
void mp_buf_json_escape(mp_buf_t *b, const char *s, size_t len);
/** Empties the buffer but keeps its memory. */
void mp_buf_reset(mp_buf_t *b);
/** Frees the memory; the buffer may be reused after. */
void mp_buf_dispose(mp_buf_t *b);
/** Hands the contents to the caller (free with free()) and leaves the buffer empty. Never NULL. */
char *mp_buf_steal(mp_buf_t *b);
/** Writes `v` in decimal at `out` (room for 21 bytes) and a NUL; returns the number of digits. For hot paths, where
 *  snprintf's format parsing costs more than the number. */
size_t mp_u64_dec(char *out, uint64_t v);

#endif
