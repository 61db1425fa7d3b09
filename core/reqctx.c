/*
 * reqctx.c: request ids and trace context (see mp/reqctx.h).
 *
 * Ids come from a per-thread xoshiro256** generator seeded from
 * getrandom(): unique enough for correlation, and cheap on the hot path. They
 * are never used as secrets (tokens use OpenSSL's RAND_bytes).
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "mp/reqctx.h"

static __thread uint64_t rng[4];
static __thread int rng_ready;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t mp_rand64(void)
{
    if (!rng_ready) {
        if (getrandom(rng, sizeof(rng), 0) != (ssize_t)sizeof(rng)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            rng[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)&ts << 17);
            rng[1] = (uint64_t)ts.tv_sec * 0x9e3779b97f4a7c15ULL;
            rng[2] = rng[0] ^ 0xdeadbeefcafebabeULL;
            rng[3] = rng[1] ^ 0x0123456789abcdefULL;
        }
        rng_ready = 1;
    }
    uint64_t result = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return result;
}

void mp_rand_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = 0;
    for (size_t i = 0; i < nbytes; i++) {
        if (i % 8 == 0)
            r = mp_rand64();
        unsigned char b = (unsigned char)(r >> ((i % 8) * 8));
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    out[2 * nbytes] = '\0';
}

bool mp_reqctx_valid_id(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool lower_hex(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* "00-" 32 hex "-" 16 hex "-" 2 hex, ids not all zero (W3C Trace Context level 1) */
static bool parse_traceparent(const char *tp, size_t len, char trace[33], char flags[3])
{
    if (tp == NULL || len != 55 || memcmp(tp, "00-", 3) != 0 || tp[35] != '-' || tp[52] != '-')
        return false;
    if (!lower_hex(tp + 3, 32) || !lower_hex(tp + 36, 16))
        return false;
    if (!((tp[53] >= '0' && tp[53] <= '9') || (tp[53] >= 'a' && tp[53] <= 'f')) ||
        !((tp[54] >= '0' && tp[54] <= '9') || (tp[54] >= 'a' && tp[54] <= 'f')))
        return false;
    memcpy(trace, tp + 3, 32);
    trace[32] = '\0';
    flags[0] = tp[53];
    flags[1] = tp[54];
    flags[2] = '\0';
    return true;
}

void mp_reqctx_init(mp_reqctx_t *rc, const char *rid, size_t rid_len, const char *tp, size_t tp_len)
{
    char span[17], flags[3] = "01";
    if (mp_reqctx_valid_id(rid, rid_len)) {
        memcpy(rc->request_id, rid, rid_len);
        rc->request_id[rid_len] = '\0';
    } else {
        mp_rand_hex(rc->request_id, 16);
    }
    if (!parse_traceparent(tp, tp_len, rc->trace_id, flags))
        mp_rand_hex(rc->trace_id, 16);
    mp_rand_hex(span, 8);
    memcpy(rc->traceparent, "00-", 3);
    memcpy(rc->traceparent + 3, rc->trace_id, 32);
    rc->traceparent[35] = '-';
    memcpy(rc->traceparent + 36, span, 16);
    rc->traceparent[52] = '-';
    memcpy(rc->traceparent + 53, flags, 2);
    rc->traceparent[55] = '\0';
}
