/*
 * mp/nats_url.h: the server list `nats.url` takes: one URL,
 * [nats://|tls://][user[:password]@]host[:port], or several separated by
 * commas (the nodes of a cluster: "nats://a:4222,nats://b:4222").
 *
 * Shared by the nats.c connection (bus.c), which hands each entry to nats.c
 * as written, and the loop connections (natsio.c), which need host, port and
 * credentials apart. Credentials are taken as written (no percent-decoding),
 * as nats.c takes them. Messages never quote the list: it may hold passwords.
 * Leaf module: libc only. Any thread.
 */
#ifndef MP_NATS_URL_H
#define MP_NATS_URL_H

#include <stddef.h>
#include "mp/status.h"

#define MP_NATS_URL_MAX 16 /* servers in one list */

typedef struct mp_nats_server {
    char *url;      /* the entry as written, without surrounding spaces; owned */
    char *host;     /* owned */
    int port;       /* default 4222 */
    char *user;     /* owned; NULL when the entry has none */
    char *password; /* owned; NULL when the entry has none */
} mp_nats_server_t;

typedef struct mp_nats_url {
    mp_nats_server_t servers[MP_NATS_URL_MAX];
    size_t count; /* at least 1 after a successful parse */
} mp_nats_url_t;

/** Parses a comma-separated server list into `out` (storage is the caller's; empty entries are skipped). Errors:
 *  MP_EINVAL with the reason (no server, more than MP_NATS_URL_MAX, a host or port that is not one). Always dispose
 *  `out`, also on error. */
mp_status_t mp_nats_url_parse(mp_nats_url_t *out, const char *list);
/** Frees the strings (and wipes the passwords). Accepts a zeroed or half-parsed `u`. */
void mp_nats_url_dispose(mp_nats_url_t *u);

#endif
