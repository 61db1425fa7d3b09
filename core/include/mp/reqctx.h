/*
 * mp/reqctx.h: the identity of one request as it crosses moonport: its
 * X-Request-Id (the client's when valid, else ours) and its W3C trace
 * context (traceparent), continued when the client sent one.
 *
 * Leaf module: libc only. Any thread (the random source is thread-local).
 */
#ifndef MP_REQCTX_H
#define MP_REQCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mp_reqctx {
    char request_id[129];
    char trace_id[33];    /* 32 lowercase hex */
    char traceparent[56]; /* "00-<trace>-<our span>-<flags>" to send downstream */
} mp_reqctx_t;

/** Fills `rc` from the client's X-Request-Id and traceparent headers (either may be NULL/empty, neither needs a NUL).
 *  A request id is kept when it is 1-128 of [A-Za-z0-9._-]; a traceparent when it is a valid version-00 header with
 *  non-zero ids. Otherwise fresh random ones are made. */
void mp_reqctx_init(mp_reqctx_t *rc, const char *rid, size_t rid_len, const char *tp, size_t tp_len);

/** True when `s` (len bytes) is an acceptable request id. */
bool mp_reqctx_valid_id(const char *s, size_t len);

/** Writes `nbytes` random bytes as 2*nbytes lowercase hex plus a NUL into `out`. Fast, not for secrets. */
void mp_rand_hex(char *out, size_t nbytes);

/** A fast thread-local pseudo-random 64-bit number (not for secrets). */
uint64_t mp_rand64(void);

#endif
