/*
 * mp/redis_url.h: parsing redis://[[user]:password@]host[:port][/db] (no TLS,
 * no unix sockets). The user is ignored: AUTH takes the password alone.
 * Messages never quote the URL, which may carry the password.
 * Leaf module: libc only. Any thread.
 */
#ifndef MP_REDIS_URL_H
#define MP_REDIS_URL_H

#include "mp/status.h"

typedef struct mp_redis_url {
    char *host;     /* owned */
    int port;       /* default 6379 */
    int db;         /* default 0 */
    char *password; /* owned; NULL when the URL has none */
} mp_redis_url_t;

/** Parses `url` into `out` (storage is the caller's). Errors: MP_EINVAL with the reason. Always dispose `out`, also
 *  on error. */
mp_status_t mp_redis_url_parse(mp_redis_url_t *out, const char *url);
/** Frees the strings. */
void mp_redis_url_dispose(mp_redis_url_t *u);

#endif
