/*
 * test_buf.c: unit tests for core/buf.c.
 *
 * mp_buf_json_escape() writes client-supplied text into every JSON body and
 * log line moonport emits, so its tests run the escaped output back through
 * jansson: whatever bytes go in, the result must be a valid JSON string,
 * valid text must survive unchanged, and each invalid byte must become one
 * U+FFFD.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "mp/buf.h"

#define FFFD "\xef\xbf\xbd"

/* Escapes `len` bytes and returns the escaped text (caller frees). */
static char *escape(const char *s, size_t len)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_json_escape(&b, s, len);
    return mp_buf_steal(&b);
}

/* Escapes, wraps in quotes, parses with jansson and compares the decoded string with `want`. */
static void assert_escapes_to(const char *in, size_t len, const char *want)
{
    char *esc = escape(in, len);
    mp_buf_t doc = MP_BUF_INIT;
    mp_buf_printf(&doc, "\"%s\"", esc);
    json_t *v = json_loadb(doc.base, doc.len, JSON_DECODE_ANY, NULL);
    int same = v != NULL && strcmp(json_string_value(v), want) == 0;
    if (!same)
        fprintf(stderr, "escaped: %s\n", esc);
    json_decref(v);
    mp_buf_dispose(&doc);
    free(esc);
    assert_true(same);
}

static void test_buf_append_grows_and_terminates(void **state)
{
    mp_buf_t b = MP_BUF_INIT;
    assert_null(b.base);
    mp_buf_append(&b, "", 0);
    assert_non_null(b.base); /* even an empty append gives a terminated string */
    assert_string_equal(b.base, "");
    size_t total = 0;
    for (int i = 0; i < 1000; i++) {
        mp_buf_append(&b, "0123456789", 10);
        total += 10;
        assert_int_equal(b.len, total);
        assert_true(b.cap > b.len);
        assert_int_equal(b.base[b.len], '\0');
    }
    assert_int_equal(strlen(b.base), 10000);
    assert_memory_equal(b.base + 9990, "0123456789", 10);
    mp_buf_puts(&b, "!");
    assert_int_equal(b.base[10000], '!');
    size_t cap = b.cap;
    mp_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.base, "");
    assert_int_equal(b.cap, cap); /* memory kept */
    mp_buf_dispose(&b);
    assert_null(b.base);
    assert_int_equal(b.cap, 0);
    mp_buf_reset(&b); /* on an empty buffer: no crash */
}

static void test_buf_binary_bytes_kept(void **state)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_append(&b, "a\0b", 3);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.base, "a\0b", 4);
    mp_buf_dispose(&b);
}

static void test_buf_reserve(void **state)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_reserve(&b, 1000);
    assert_true(b.cap >= 1001);
    char *base = b.base;
    for (int i = 0; i < 100; i++)
        mp_buf_append(&b, "0123456789", 10);
    assert_ptr_equal(b.base, base); /* no reallocation within the reservation */
    mp_buf_dispose(&b);
}

static void test_buf_printf(void **state)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_printf(&b, "%s=%d", "a", 1);
    mp_buf_printf(&b, "%s", "");
    mp_buf_printf(&b, ",%05.1f", 3.14159);
    assert_string_equal(b.base, "a=1,003.1");
    assert_int_equal(b.len, 9);
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mp_buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 9 + 5001);
    assert_int_equal(b.base[b.len - 1], ']');
    assert_int_equal(b.base[b.len], '\0');
    mp_buf_dispose(&b);
}

static void test_buf_steal(void **state)
{
    mp_buf_t b = MP_BUF_INIT;
    char *empty = mp_buf_steal(&b);
    assert_string_equal(empty, ""); /* never NULL */
    free(empty);
    mp_buf_puts(&b, "hello");
    char *s = mp_buf_steal(&b);
    assert_string_equal(s, "hello");
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    free(s);
}

static void test_buf_json_escape_specials(void **state)
{
    char *e = escape("a\"b\\c/d", 7);
    assert_string_equal(e, "a\\\"b\\\\c/d");
    free(e);
    e = escape("\n\r\t\x01\x1f\x7f", 6);
    assert_string_equal(e, "\\n\\r\\t\\u0001\\u001f\x7f");
    free(e);
    e = escape("x\0y", 3); /* an embedded NUL is escaped, not a terminator */
    assert_string_equal(e, "x\\u0000y");
    free(e);
    const char *mixed = "quote\" back\\ nl\n ctl\x02";
    assert_escapes_to(mixed, strlen(mixed), mixed);
}

static void test_buf_json_escape_keeps_valid_utf8(void **state)
{
    static const char *valid[] = {
        "caf\xc3\xa9",      /* 2 bytes */
        "\xe2\x82\xac",     /* euro, 3 bytes */
        "\xf0\x9f\x8c\x99", /* U+1F319, 4 bytes */
        "\xc2\x80",         /* lowest 2-byte */
        "\xe0\xa0\x80",     /* lowest 3-byte */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        char *e = escape(valid[i], strlen(valid[i]));
        assert_string_equal(e, valid[i]);
        free(e);
        assert_escapes_to(valid[i], strlen(valid[i]), valid[i]);
    }
}

static void test_buf_json_escape_replaces_invalid_utf8(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\xff", FFFD},
        {"\x80", FFFD},                            /* lone continuation */
        {"a\xc3", "a" FFFD},                       /* truncated at the end */
        {"\xc3(", FFFD "("},                       /* lead without continuation */
        {"\xc0\xaf", FFFD FFFD},                   /* overlong '/' (2 bytes) */
        {"\xc1\xbf", FFFD FFFD},                   /* overlong (2 bytes) */
        {"\xe0\x80\xaf", FFFD FFFD FFFD},          /* overlong '/' (3 bytes) */
        {"\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD}, /* overlong '/' (4 bytes) */
        {"\xed\xa0\x80", FFFD FFFD FFFD},          /* U+D800 high surrogate */
        {"\xed\xbf\xbf", FFFD FFFD FFFD},          /* U+DFFF low surrogate */
        {"\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD}, /* never-valid lead */
        {"\xe2\x82", FFFD FFFD},                   /* euro cut short */
        {"ok\xf0\x9f\x8c", "ok" FFFD FFFD FFFD},   /* moon cut short */
        {"\xe2\x28\xa1", FFFD "(" FFFD},           /* bad second byte */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *e = escape(cases[i].in, strlen(cases[i].in));
        if (strcmp(e, cases[i].want) != 0)
            fprintf(stderr, "case %zu\n", i);
        assert_string_equal(e, cases[i].want);
        free(e);
        assert_escapes_to(cases[i].in, strlen(cases[i].in), cases[i].want);
    }
}

static void test_buf_json_escape_every_byte_is_valid_json(void **state)
{
    /* every single byte and every two-byte pair escapes to something jansson accepts */
    char in[2];
    for (int a = 0; a < 256; a++) {
        for (int c = 0; c < 256; c++) {
            in[0] = (char)a;
            in[1] = (char)c;
            char *e = escape(in, 2);
            mp_buf_t doc = MP_BUF_INIT;
            mp_buf_printf(&doc, "\"%s\"", e);
            json_t *v = json_loadb(doc.base, doc.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            mp_buf_dispose(&doc);
            free(e);
            if (v == NULL)
                fprintf(stderr, "bytes %02x %02x\n", a, c);
            assert_non_null(v);
            json_decref(v);
        }
    }
}

static void test_u64_dec_matches_printf(void **state)
{
    (void)state;
    const uint64_t cases[] = {0, 7, 10, 99, 100, 1733000000000ull, 18446744073709551615ull};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[21], want[32];
        snprintf(want, sizeof(want), "%llu", (unsigned long long)cases[i]);
        assert_int_equal(mp_u64_dec(got, cases[i]), strlen(want));
        assert_string_equal(got, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_grows_and_terminates),
        cmocka_unit_test(test_buf_binary_bytes_kept),
        cmocka_unit_test(test_buf_reserve),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_steal),
        cmocka_unit_test(test_buf_json_escape_specials),
        cmocka_unit_test(test_buf_json_escape_keeps_valid_utf8),
        cmocka_unit_test(test_buf_json_escape_replaces_invalid_utf8),
        cmocka_unit_test(test_buf_json_escape_every_byte_is_valid_json),
        cmocka_unit_test(test_u64_dec_matches_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
