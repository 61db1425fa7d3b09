/*
 * redis_url.c: redis:// URLs (see mp/redis_url.h), shared by the blocking
 * pool (cache.c) and the loop threads' async connections (redis_loop.c).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/redis_url.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes s[0..n) (a password may hold '@', ':' or '/' only escaped). NULL on a bad escape. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = mp_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
        } else if (i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            free(out);
            return NULL;
        }
    }
    *o = '\0';
    return out;
}

/* Parses s[0..n) as a decimal integer in [lo, hi]. */
static bool parse_int(int *out, const char *s, size_t n, long lo, long hi)
{
    long v = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* redis://[[user]:password@]host[:port][/db]; the user is ignored (AUTH with the password alone). Messages never
 * quote the URL, which may carry the password. */
mp_status_t mp_redis_url_parse(mp_redis_url_t *k, const char *url)
{
    memset(k, 0, sizeof(*k));
    if (strncmp(url, "redis://", 8) != 0)
        return mp_err_set(MP_EINVAL, "redis URL: the URL must start with redis:// (no TLS or unix sockets)");
    const char *p = url + 8, *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return mp_err_set(MP_EINVAL, "redis URL: URL credentials must be [user]:password");
        if ((k->password = pct_decode(colon + 1, (size_t)(at - colon - 1))) == NULL)
            return mp_err_set(MP_EINVAL, "redis URL: bad %%-escape in the URL password");
        p = at + 1;
    }
    const char *host = p, *host_end, *after;
    if (*p == '[') { /* [IPv6] */
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            return mp_err_set(MP_EINVAL, "redis URL: unclosed [ in the URL host");
        after = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end == NULL)
            host_end = end;
        after = host_end;
    }
    if (host_end == host)
        return mp_err_set(MP_EINVAL, "redis URL: the URL has no host");
    k->host = mp_xstrndup(host, (size_t)(host_end - host));
    k->port = 6379;
    if (after < end && (*after != ':' || !parse_int(&k->port, after + 1, (size_t)(end - after - 1), 1, 65535)))
        return mp_err_set(MP_EINVAL, "redis URL: the URL port must be 1-65535");
    if (*end == '/' && end[1] != '\0' && !parse_int(&k->db, end + 1, strlen(end + 1), 0, 1L << 30))
        return mp_err_set(MP_EINVAL, "redis URL: the URL path must be a database number");
    if (*end == '?' || *end == '#')
        return mp_err_set(MP_EINVAL, "redis URL: the URL takes no query or fragment");
    return MP_OK;
}

void mp_redis_url_dispose(mp_redis_url_t *u)
{
    free(u->host);
    free(u->password);
    u->host = u->password = NULL;
}
