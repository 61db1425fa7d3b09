/*
 * sniff.h: what kind of image a byte string is, judged from the bytes
 * (never from the Content-Type a client claims).
 *
 * Pure function: no I/O, no allocation, any thread.
 */
#ifndef MP_USER_SNIFF_H
#define MP_USER_SNIFF_H

#include <stddef.h>

/** "image/png", "image/jpeg" or "image/webp" when `p` (`len` bytes, borrowed) has that format's structure; NULL
 *  otherwise. Checked: PNG: the signature, a first IHDR chunk of 13 bytes with a non-zero size and a correct CRC,
 *  and an IEND chunk at the end. JPEG: SOI followed by a marker, and EOI at the end. WebP: RIFF whose size matches
 *  the bytes, "WEBP", then a VP8, VP8L or VP8X chunk. A header alone is not an image. */
const char *user_image_type(const unsigned char *p, size_t len);

#endif
