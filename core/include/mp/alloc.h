/*
 * mp/alloc.h: allocation that aborts on exhaustion (as h2o_mem_alloc and
 * Redis's zmalloc do), so callers never check for NULL. Allocation failures
 * inside libpq, hiredis or nats.c are mapped to MP_ENOMEM at their adapters
 * instead. Any thread.
 */
#ifndef MP_ALLOC_H
#define MP_ALLOC_H

#include <stddef.h>

/** malloc() that aborts with a message on failure. Caller owns the result; free with free(). */
void *mp_xmalloc(size_t sz);
/** calloc() that aborts on failure. Caller owns the result; free with free(). */
void *mp_xcalloc(size_t n, size_t sz);
/** realloc() that aborts on failure. Caller owns the result; free with free(). */
void *mp_xrealloc(void *p, size_t sz);
/** strdup() that aborts on failure; NULL in gives NULL out. Caller owns the result; free with free(). */
char *mp_xstrdup(const char *s);
/** strndup() that aborts on failure. Caller owns the result; free with free(). */
char *mp_xstrndup(const char *s, size_t n);
/** asprintf() that aborts on failure. Caller owns the result; free with free(). */
char *mp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
