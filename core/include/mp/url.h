/*
 * mp/url.h: percent-decoding for paths and query strings, shared by the
 * gateway and the BFF host. Leaf module: libc only. Any thread.
 */
#ifndef MP_URL_H
#define MP_URL_H

#include <stdbool.h>
#include <stddef.h>

/** Percent-decodes `len` bytes of `in` into `out` (room for len+1) and NUL-terminates it; '+' becomes a space only
 *  when `plus_is_space` (query strings). Returns the decoded length, or -1 on a bad escape or a decoded NUL. */
long mp_url_decode(char *out, const char *in, size_t len, bool plus_is_space);

#endif
