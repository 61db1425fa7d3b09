/*
 * b64url.c: strict unpadded base64url (see mp/b64url.h).
 *
 * The decoder accepts exactly the strings the encoder produces: it refuses a
 * length of 4n+1 and non-zero bits left over after the last byte, so two
 * different texts never decode to the same bytes (a signature cannot be
 * re-encoded to slip past a replay cache keyed on the token text). It writes
 * at most floor(3*len/4) bytes, within the documented 3*len/4+3.
 */
#include <limits.h>
#include <stdint.h>
#include "mp/b64url.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Compares ranges rather than indexing a table so a signed or high-bit char cannot index out of bounds. */
static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t mp_b64url_encode(char *out, const unsigned char *in, size_t len)
{
    char *p = out;
    size_t i = 0;

    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = alphabet[(v >> 6) & 63];
        *p++ = alphabet[v & 63];
    }
    if (len - i > 0) {
        uint32_t v = (uint32_t)in[i] << 16 | (len - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        if (len - i == 2)
            *p++ = alphabet[(v >> 6) & 63];
    }
    *p = '\0';
    return (size_t)(p - out);
}

long mp_b64url_decode(unsigned char *out, const char *in, size_t len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    /* 4n+1 characters carry 6 bits past the last whole byte: no encoder produces that. */
    if (len % 4 == 1 || len / 4 > LONG_MAX / 3)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = sextet(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or several texts would decode to the same bytes. */
    if (acc != 0)
        return -1;
    return (long)n;
}
