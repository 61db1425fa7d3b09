/*
 * clientip.c: the client's address behind trusted proxies (see clientip.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clientip.h"

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Text -> family + bytes, IPv4-mapped IPv6 folded to IPv4. */
static bool parse_addr(int *family, uint8_t *addr, const char *text)
{
    if (inet_pton(AF_INET, text, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, addr) != 1)
        return false;
    *family = AF_INET6;
    if (memcmp(addr, v4_mapped, 12) == 0) {
        memmove(addr, addr + 12, 4);
        *family = AF_INET;
    }
    return true;
}

bool gw_cidr_parse(gw_cidr_t *out, const char *text)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (!parse_addr(&out->family, out->addr, buf))
        return false;
    int max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || b < 0 || b > max)
            return false;
        out->bits = (int)b;
    }
    return true;
}

bool gw_cidr_contains(const gw_cidr_t *c, int family, const uint8_t *addr)
{
    if (c->family != family)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static bool trusted_addr(const gw_cidr_t *t, size_t n, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (gw_cidr_contains(&t[i], family, addr))
            return true;
    return false;
}

static void format_addr(char *out, size_t size, int family, const uint8_t *addr)
{
    if (inet_ntop(family, addr, out, (socklen_t)size) == NULL)
        snprintf(out, size, "unknown");
}

void gw_client_ip(char *out, size_t size, const struct sockaddr *peer, const char *xff, size_t xff_len,
                  const gw_cidr_t *trusted, size_t ntrusted)
{
    int family = AF_UNSPEC;
    uint8_t addr[16] = {0};
    if (peer && peer->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer && peer->sa_family == AF_INET6) {
        family = AF_INET6;
        memcpy(addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
        if (memcmp(addr, v4_mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            family = AF_INET;
        }
    } else {
        snprintf(out, size, "unknown");
        return;
    }
    /* walk X-Forwarded-For from the nearest hop while each hop so far is a proxy we trust */
    size_t end = xff ? xff_len : 0;
    while (trusted_addr(trusted, ntrusted, family, addr) && end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (xff[a] == ' ' || xff[a] == '\t'))
            a++;
        while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'))
            b--;
        char text[64];
        int f;
        uint8_t next[16];
        if (b - a == 0 || b - a >= sizeof(text))
            break;
        memcpy(text, xff + a, b - a);
        text[b - a] = '\0';
        if (!parse_addr(&f, next, text))
            break; /* not an address (a port, garbage): the last trusted hop is all we know */
        family = f;
        memcpy(addr, next, 16);
        end = start > 0 ? start - 1 : 0;
        if (start == 0)
            break;
    }
    format_addr(out, size, family, addr);
}
