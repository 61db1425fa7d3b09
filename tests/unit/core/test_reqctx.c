/*
 * test_reqctx.c: unit tests for core/reqctx.c.
 *
 * The request id and the traceparent are copied from client headers into
 * logs and downstream messages, so what matters is what is refused: every
 * malformed input must be replaced by a fresh, well-formed value, and a
 * valid one kept exactly. Headers are passed without a NUL (as h2o hands
 * them over) by slicing a larger buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "mp/reqctx.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN "00f067aa0ba902b7"
#define VALID_TP "00-" TRACE "-" SPAN "-01"

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Asserts `tp` is "00-<32 hex>-<16 hex>-<2 hex>" with non-zero ids. */
static void assert_traceparent_shape(const char *tp)
{
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp, "00-", 3);
    assert_true(is_lower_hex(tp + 3, 32));
    assert_int_equal(tp[35], '-');
    assert_true(is_lower_hex(tp + 36, 16));
    assert_int_equal(tp[52], '-');
    assert_true(is_lower_hex(tp + 53, 2));
    assert_true(strspn(tp + 3, "0") < 32);
    assert_true(strspn(tp + 36, "0") < 16);
}

static void init_str(mp_reqctx_t *rc, const char *rid, const char *tp)
{
    mp_reqctx_init(rc, rid, rid ? strlen(rid) : 0, tp, tp ? strlen(tp) : 0);
}

static void test_reqctx_valid_request_id_kept(void **state)
{
    mp_reqctx_t rc;
    init_str(&rc, "abc-DEF_1.2", NULL);
    assert_string_equal(rc.request_id, "abc-DEF_1.2");
    char max[129];
    memset(max, 'a', 128);
    max[128] = '\0';
    init_str(&rc, max, NULL);
    assert_string_equal(rc.request_id, max);
    /* not NUL-terminated: only `len` bytes count */
    const char hdr[] = "req-42,trailing garbage";
    mp_reqctx_init(&rc, hdr, 6, NULL, 0);
    assert_string_equal(rc.request_id, "req-42");
}

static void test_reqctx_invalid_request_id_replaced(void **state)
{
    char long_id[130];
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    const char *bad[] = {long_id, "has space", "", "caf\xc3\xa9", "a/b", "a\nb", "quote\"", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        mp_reqctx_t rc;
        init_str(&rc, bad[i], NULL);
        assert_int_equal(strlen(rc.request_id), 32);
        assert_true(is_lower_hex(rc.request_id, 32));
    }
    mp_reqctx_t rc;
    init_str(&rc, NULL, NULL);
    assert_int_equal(strlen(rc.request_id), 32);
    assert_true(is_lower_hex(rc.request_id, 32));
    mp_reqctx_init(&rc, "a\0b", 3, NULL, 0); /* an embedded NUL */
    assert_int_equal(strlen(rc.request_id), 32);
    assert_false(mp_reqctx_valid_id("a\0b", 3));
    assert_false(mp_reqctx_valid_id(NULL, 3));
    assert_true(mp_reqctx_valid_id("x", 1));
}

static void test_reqctx_generated_ids_differ(void **state)
{
    mp_reqctx_t a, b;
    init_str(&a, NULL, NULL);
    init_str(&b, NULL, NULL);
    assert_string_not_equal(a.request_id, b.request_id);
    assert_string_not_equal(a.trace_id, b.trace_id);
}

static void test_reqctx_valid_traceparent_continued(void **state)
{
    mp_reqctx_t rc;
    init_str(&rc, NULL, VALID_TP);
    assert_string_equal(rc.trace_id, TRACE);
    assert_traceparent_shape(rc.traceparent);
    assert_memory_equal(rc.traceparent + 3, TRACE, 32);     /* trace id kept */
    assert_memory_not_equal(rc.traceparent + 36, SPAN, 16); /* our own span */
    assert_string_equal(rc.traceparent + 52, "-01");        /* flags kept */

    init_str(&rc, NULL, "00-" TRACE "-" SPAN "-00");
    assert_string_equal(rc.traceparent + 52, "-00");
    init_str(&rc, NULL, "00-" TRACE "-" SPAN "-ff");
    assert_string_equal(rc.traceparent + 52, "-ff");
    assert_string_equal(rc.trace_id, TRACE);
}

static void test_reqctx_invalid_traceparent_replaced(void **state)
{
    static const char *bad[] = {
        "01-" TRACE "-" SPAN "-01",                        /* unknown version */
        "ff-" TRACE "-" SPAN "-01",                        /* forbidden version */
        "00-00000000000000000000000000000000-" SPAN "-01", /* all-zero trace id */
        "00-" TRACE "-0000000000000000-01",                /* all-zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SPAN "-01", /* uppercase hex */
        "00-" TRACE "-" SPAN "-0G",                        /* flags not hex */
        "00-" TRACE "-" SPAN "-1",                         /* too short */
        "00-" TRACE "-" SPAN "-01-extra",                  /* too long */
        "00-" TRACE "a-" SPAN "01",                        /* dash moved */
        "00" TRACE "-" SPAN "-01x",                        /* missing first dash */
        "00-" TRACE SPAN "--01",                           /* missing middle dash */
        "00-" TRACE "-" SPAN "001",                        /* missing last dash */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" SPAN "-01", /* non-hex in trace id */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mp_reqctx_t rc;
        init_str(&rc, "rid", bad[i]);
        if (strcmp(rc.trace_id, TRACE) == 0)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        assert_string_not_equal(rc.trace_id, TRACE);
        assert_int_equal(strlen(rc.trace_id), 32);
        assert_true(is_lower_hex(rc.trace_id, 32));
        assert_traceparent_shape(rc.traceparent);
        assert_memory_equal(rc.traceparent + 3, rc.trace_id, 32);
        assert_string_equal(rc.traceparent + 52, "-01"); /* a fresh trace is sampled */
        assert_string_equal(rc.request_id, "rid");
    }
    /* a valid header cut short by its length is refused too */
    mp_reqctx_t rc;
    mp_reqctx_init(&rc, NULL, 0, VALID_TP, 54);
    assert_string_not_equal(rc.trace_id, TRACE);
}

static void test_reqctx_generated_traceparent_format(void **state)
{
    for (int i = 0; i < 1000; i++) {
        mp_reqctx_t rc;
        init_str(&rc, NULL, NULL);
        assert_traceparent_shape(rc.traceparent);
        assert_memory_equal(rc.traceparent + 3, rc.trace_id, 32);
        assert_string_equal(rc.traceparent + 52, "-01");
    }
}

static void test_reqctx_rand_hex(void **state)
{
    char out[41];
    memset(out, 'X', sizeof(out));
    mp_rand_hex(out, 20);
    assert_int_equal(strlen(out), 40);
    assert_true(is_lower_hex(out, 40));
    mp_rand_hex(out, 0);
    assert_string_equal(out, "");
    /* every nibble value turns up: the output is not stuck on a few digits */
    int seen[16] = {0}, distinct = 0;
    for (int i = 0; i < 100; i++) {
        mp_rand_hex(out, 20);
        for (int j = 0; j < 40; j++)
            seen[out[j] <= '9' ? out[j] - '0' : out[j] - 'a' + 10] = 1;
    }
    for (int i = 0; i < 16; i++)
        distinct += seen[i];
    assert_int_equal(distinct, 16);
    assert_true(mp_rand64() != mp_rand64());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reqctx_valid_request_id_kept),
        cmocka_unit_test(test_reqctx_invalid_request_id_replaced),
        cmocka_unit_test(test_reqctx_generated_ids_differ),
        cmocka_unit_test(test_reqctx_valid_traceparent_continued),
        cmocka_unit_test(test_reqctx_invalid_traceparent_replaced),
        cmocka_unit_test(test_reqctx_generated_traceparent_format),
        cmocka_unit_test(test_reqctx_rand_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
