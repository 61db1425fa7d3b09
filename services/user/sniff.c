/*
 * sniff.c: image types from magic bytes and structure (see sniff.h).
 *
 * Checking only the first bytes would let "\x89PNG" followed by anything
 * pass, so each format also checks what a truncated or forged file gets
 * wrong: PNG's IHDR CRC and IEND trailer, JPEG's EOI, WebP's RIFF length.
 */
#include <stdint.h>
#include <string.h>
#include "sniff.h"

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* PNG's CRC-32 (ISO 3309), bit by bit: it runs over 17 bytes, so no table is worth it */
static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static int is_png(const unsigned char *p, size_t len)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    /* signature + IHDR (4 length, 4 type, 13 data, 4 CRC) + IEND (12) */
    if (len < 8 + 25 + 12 || memcmp(p, sig, 8) != 0)
        return 0;
    const unsigned char *ihdr = p + 8;
    if (be32(ihdr) != 13 || memcmp(ihdr + 4, "IHDR", 4) != 0)
        return 0;
    if (be32(ihdr + 8) == 0 || be32(ihdr + 12) == 0)
        return 0;
    uint32_t crc = crc32_of(ihdr + 4, 17);
    return crc == be32(ihdr + 21) && memcmp(p + len - 12, iend, 12) == 0;
}

static int is_jpeg(const unsigned char *p, size_t len)
{
    if (len < 8 || p[0] != 0xff || p[1] != 0xd8 || p[2] != 0xff)
        return 0;
    unsigned char m = p[3];
    /* APPn, DQT, DHT, SOFn, COM or DRI may follow SOI */
    int marker_ok =
        (m >= 0xe0 && m <= 0xef) || m == 0xdb || m == 0xc4 || (m >= 0xc0 && m <= 0xcf) || m == 0xfe || m == 0xdd;
    /* some writers pad after EOI with zeros */
    while (len > 4 && p[len - 1] == 0)
        len--;
    return marker_ok && p[len - 2] == 0xff && p[len - 1] == 0xd9;
}

static int is_webp(const unsigned char *p, size_t len)
{
    if (len < 20 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0)
        return 0;
    uint32_t riff = le32(p + 4);
    if ((size_t)riff + 8 != len && (size_t)riff + 9 != len) /* odd sizes may carry one pad byte */
        return 0;
    const unsigned char *c = p + 12;
    uint32_t chunk = le32(c + 4);
    int known = memcmp(c, "VP8 ", 4) == 0 || memcmp(c, "VP8L", 4) == 0 || memcmp(c, "VP8X", 4) == 0;
    return known && chunk > 0 && (size_t)chunk <= len - 20;
}

const char *user_image_type(const unsigned char *p, size_t len)
{
    if (p == NULL)
        return NULL;
    if (is_png(p, len))
        return "image/png";
    if (is_jpeg(p, len))
        return "image/jpeg";
    if (is_webp(p, len))
        return "image/webp";
    return NULL;
}
