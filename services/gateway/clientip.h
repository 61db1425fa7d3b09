/*
 * clientip.h: who the client is, for per-address rate limits, when the
 * gateway may sit behind load balancers and proxies.
 *
 * The peer address is the client unless it is a trusted proxy
 * (gateway.trusted_proxies, CIDR blocks). Then X-Forwarded-For is read from
 * the right (the hop closest to us) to the left, skipping trusted proxies;
 * the first address that is not one is the client. Entries a client wrote
 * itself sit further left and are never reached while an untrusted hop is
 * in between, so a client cannot pick its own rate-limit key. A malformed
 * entry stops the walk at the last trusted hop. IPv4-mapped IPv6 addresses
 * count as IPv4.
 *
 * Leaf module: libc only. Immutable lists; any thread.
 */
#ifndef MP_GW_CLIENTIP_H
#define MP_GW_CLIENTIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct gw_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} gw_cidr_t;

/** Parses "10.0.0.0/8", "192.168.1.7" (a /32), "fd00::/8" or "::1". */
bool gw_cidr_parse(gw_cidr_t *out, const char *text);

/** True when the address (`family`, 4 or 16 bytes at `addr`) is inside `c`. */
bool gw_cidr_contains(const gw_cidr_t *c, int family, const uint8_t *addr);

/** Writes the client's address as text into `out` (at least 46 bytes). `peer` is the socket's peer; `xff` the
 *  X-Forwarded-For header (`xff_len` bytes, NULL when absent); `trusted` the proxies' blocks. */
void gw_client_ip(char *out, size_t size, const struct sockaddr *peer, const char *xff, size_t xff_len,
                  const gw_cidr_t *trusted, size_t ntrusted);

#endif
