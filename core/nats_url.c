/*
 * nats_url.c: NATS server lists (see mp/nats_url.h), shared by the nats.c
 * connection (bus.c) and the loop connections (natsio.c), so both read
 * `nats.url` the same way.
 */
#define _GNU_SOURCE /* memmem, memrchr */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/nats_url.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The port in s[0..n): 1-65535, digits only. */
static bool parse_port(int *out, const char *s, size_t n)
{
    long v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (int)v;
    return true;
}

/* One entry, s[0..n) without surrounding spaces: [scheme://][user[:password]@]host[:port]. False when its host or
 * port is not one; what was parsed stays in `srv` for the dispose. */
static bool parse_server(mp_nats_server_t *srv, const char *s, size_t n)
{
    const char *end = s + n, *p = s;
    srv->url = mp_xstrndup(s, n);
    const char *scheme = memmem(s, n, "://", 3);
    if (scheme)
        p = scheme + 3;
    const char *at = memrchr(p, '@', (size_t)(end - p)); /* the last '@': a password may hold one */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        srv->user = mp_xstrndup(p, (size_t)((colon ? colon : at) - p));
        srv->password = colon ? mp_xstrndup(colon + 1, (size_t)(at - colon - 1)) : NULL;
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    size_t hl = (size_t)((colon ? colon : end) - p);
    if (hl == 0 || hl > 255 || memchr(p, '/', hl) || memchr(p, ' ', hl))
        return false;
    srv->host = mp_xstrndup(p, hl);
    srv->port = 4222;
    return colon == NULL || parse_port(&srv->port, colon + 1, (size_t)(end - colon - 1));
}

mp_status_t mp_nats_url_parse(mp_nats_url_t *out, const char *list)
{
    memset(out, 0, sizeof(*out));
    for (const char *p = list ? list : ""; *p;) {
        const char *comma = strchr(p, ','), *e = comma ? comma : p + strlen(p);
        const char *b = p;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (e > b) {
            if (out->count == MP_NATS_URL_MAX)
                return mp_err_set(MP_EINVAL, "nats.url: more than %d servers", MP_NATS_URL_MAX);
            if (!parse_server(&out->servers[out->count++], b, (size_t)(e - b)))
                return mp_err_set(MP_EINVAL, "nats.url: server %zu is not [nats://][user[:password]@]host[:port]",
                                  out->count);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (out->count == 0)
        return mp_err_set(MP_EINVAL, "nats.url: no server");
    return MP_OK;
}

void mp_nats_url_dispose(mp_nats_url_t *u)
{
    for (size_t i = 0; i < u->count; i++) {
        mp_nats_server_t *s = &u->servers[i];
        if (s->password)
            memset(s->password, 0, strlen(s->password));
        if (s->url && s->password) /* the entry holds the password too */
            memset(s->url, 0, strlen(s->url));
        free(s->url);
        free(s->host);
        free(s->user);
        free(s->password);
    }
    memset(u, 0, sizeof(*u));
}
