/*
 * mp/b64url.h: unpadded base64url (RFC 4648 section 5), the encoding of every
 * JWS segment and JWK member.
 *
 * The decoder is strict because it reads attacker input: padding, whitespace,
 * characters outside the alphabet, an impossible length (4n+1) and non-zero
 * trailing bits are all errors, so each byte string has exactly one accepted
 * encoding. Leaf module: libc only. Thread-safe (no state).
 */
#ifndef MP_B64URL_H
#define MP_B64URL_H

#include <stddef.h>

/** Encodes `len` bytes as unpadded base64url into `out` (room for 4*ceil(len/3)+1 bytes) and NUL-terminates it;
 *  returns the length without the NUL. Borrowed buffers; any thread. */
size_t mp_b64url_encode(char *out, const unsigned char *in, size_t len);
/** Decodes unpadded base64url (padding and other characters are an error). Returns the decoded length, or -1.
 *  `out` needs room for 3*len/4+3 bytes; on -1 its contents are unspecified. Borrowed buffers; any thread. */
long mp_b64url_decode(unsigned char *out, const char *in, size_t len);

#endif
