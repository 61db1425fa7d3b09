/*
 * alloc.c: aborting allocators (see mp/alloc.h). Running out of memory in a
 * server is not an error we can answer sensibly, so we stop loudly.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"

static void oom(size_t sz)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", sz);
    abort();
}

void *mp_xmalloc(size_t sz)
{
    void *p = malloc(sz ? sz : 1);
    if (p == NULL)
        oom(sz);
    return p;
}

void *mp_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL)
        oom(n * sz);
    return p;
}

void *mp_xrealloc(void *p, size_t sz)
{
    void *q = realloc(p, sz ? sz : 1);
    if (q == NULL)
        oom(sz);
    return q;
}

char *mp_xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return mp_xstrndup(s, strlen(s));
}

char *mp_xstrndup(const char *s, size_t n)
{
    char *p = mp_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mp_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return out;
}
