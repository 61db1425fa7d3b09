/*
 * http_post.h: the smallest blocking HTTP/1.1 client that a webhook needs:
 * one POST to an http:// URL, with a deadline on the whole exchange, and the
 * response's status code. No redirects, no keep-alive, no TLS (https is
 * planned; until then put a TLS-terminating proxy in front, see
 * docs/services.md). Any thread; blocking.
 */
#ifndef MP_NOTIFICATION_HTTP_POST_H
#define MP_NOTIFICATION_HTTP_POST_H

#include <stddef.h>
#include "mp/status.h"

typedef struct http_url {
    char host[256];
    char port[8];
    char path[1024]; /* with the query, "/" at least */
} http_url_t;

/** Parses "http://host[:port][/path]" (IPv6 hosts in brackets). Errors: MP_EINVAL with the reason. */
mp_status_t http_url_parse(http_url_t *out, const char *url);

/** POSTs `len` bytes of `body` with Content-Type application/json and the extra header lines `headers` (each
 *  "Name: value", NULL-terminated; the caller keeps CR and LF out of them). `*status` gets the response's status code.
 *  Errors: MP_EUNAVAIL (cannot connect), MP_ETIMEDOUT (the deadline passed), MP_EIO (the connection broke),
 *  MP_EBADREPLY (not HTTP). */
mp_status_t http_post(int *status, const http_url_t *url, const char *const *headers, const char *body, size_t len,
                      int timeout_ms);

#endif
