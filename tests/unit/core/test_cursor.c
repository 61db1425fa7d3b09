/*
 * test_cursor.c: unit tests for core/cursor.c: round trips, and refusal of
 * every cursor the encoder could not have made for this listing (a client
 * can send anything as ?cursor=).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "mp/b64url.h"
#include "mp/cursor.h"

static void test_cursor_round_trip_keeps_fields_exactly(void **state)
{
    char out[512], buf[512];
    const char *fields[2];
    const char *in[] = {"2026-11-23T21:07:08.123456Z", "0b0e3f57-4c4e-4a55-9d1a-6b0f1c9f1e2a"};
    assert_int_equal(mp_cursor_encode(out, sizeof(out), "product.newest", in, 2), MP_OK);
    assert_null(strpbrk(out, "+/=")); /* URL-safe, unpadded: fits in a query string as is */
    assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "product.newest", out), MP_OK);
    assert_string_equal(fields[0], in[0]);
    assert_string_equal(fields[1], in[1]);
}

static void test_cursor_keeps_utf8_and_spaces(void **state)
{
    char out[512], buf[512];
    const char *fields[2], *in[] = {"Zürich Café, große Tasse", "id-1"};
    assert_int_equal(mp_cursor_encode(out, sizeof(out), "k", in, 2), MP_OK);
    assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "k", out), MP_OK);
    assert_string_equal(fields[0], in[0]);
}

static void test_cursor_from_another_listing_is_refused(void **state)
{
    char out[512], buf[512];
    const char *fields[2], *in[] = {"10", "id"};
    assert_int_equal(mp_cursor_encode(out, sizeof(out), "product.price_asc", in, 2), MP_OK);
    assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "product.price_desc", out), MP_EINVAL);
    assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "product.price", out), MP_EINVAL);
    assert_int_equal(mp_cursor_decode(fields, 3, buf, sizeof(buf), "product.price_asc", out), MP_EINVAL);
    assert_int_equal(mp_cursor_decode(fields, 1, buf, sizeof(buf), "product.price_asc", out), MP_EINVAL);
}

static void test_cursor_garbage_is_refused(void **state)
{
    char buf[512], forged[64];
    const char *fields[2];
    static const char *const bad[] = {"", "!!!!", "abc=", "a", "cHJvZHVjdA", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "product", bad[i]), MP_EINVAL);
    /* right kind but an empty field, or a NUL smuggled inside */
    mp_b64url_encode(forged, (const unsigned char *)"k\n\nid", 5);
    assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "k", forged), MP_EINVAL);
    mp_b64url_encode(forged, (const unsigned char *)"k\nx\0y\nid", 8);
    assert_int_equal(mp_cursor_decode(fields, 2, buf, sizeof(buf), "k", forged), MP_EINVAL);
}

static void test_cursor_encode_refuses_newlines_and_small_buffers(void **state)
{
    char out[16];
    const char *nl[] = {"a\nb", "id"}, *ok[] = {"aaaaaaaaaaaaaaaaaaaa", "id"};
    assert_int_equal(mp_cursor_encode(out, sizeof(out), "k", nl, 2), MP_EINVAL);
    assert_int_equal(mp_cursor_encode(out, sizeof(out), "k", ok, 2), MP_ETOOBIG);
    assert_int_equal(mp_cursor_encode(out, sizeof(out), "k", ok, 0), MP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_round_trip_keeps_fields_exactly),
        cmocka_unit_test(test_cursor_keeps_utf8_and_spaces),
        cmocka_unit_test(test_cursor_from_another_listing_is_refused),
        cmocka_unit_test(test_cursor_garbage_is_refused),
        cmocka_unit_test(test_cursor_encode_refuses_newlines_and_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
