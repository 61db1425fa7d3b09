/*
 * test_cors.c: unit tests for core/cors.c: which origins are allowed, what
 * counts as a preflight, and the headers an allowed origin gets (echoed,
 * never `*`, always with Vary: Origin). The preflight answers themselves
 * need a live connection and are covered black-box (test_edge.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "mp/cors.h"

static const char *const origins[] = {"http://localhost:5173", "https://app.example.com"};

typedef struct fake {
    h2o_req_t req;
} fake_t;

static void fake_init(fake_t *f, const char *method, const char *origin, const char *acrm)
{
    memset(f, 0, sizeof(*f));
    h2o_mem_init_pool(&f->req.pool);
    f->req.method = h2o_iovec_init(method, strlen(method));
    if (origin)
        h2o_add_header_by_str(&f->req.pool, &f->req.headers, H2O_STRLIT("origin"), 0, NULL, origin, strlen(origin));
    if (acrm)
        h2o_add_header_by_str(&f->req.pool, &f->req.headers, H2O_STRLIT("access-control-request-method"), 0, NULL, acrm,
                              strlen(acrm));
}

static const char *res_header(fake_t *f, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&f->req.res.headers, name, strlen(name), -1);
    return i < 0 ? NULL
                 : h2o_strdup(&f->req.pool, f->req.res.headers.entries[i].value.base,
                              f->req.res.headers.entries[i].value.len)
                       .base;
}

static void test_cors_allows_listed_origins_only(void **state)
{
    mp_cors_t c;
    mp_cors_init(&c, origins, 2, 600);
    assert_true(mp_cors_allowed(&c, H2O_STRLIT("http://localhost:5173")));
    assert_true(mp_cors_allowed(&c, H2O_STRLIT("HTTPS://APP.EXAMPLE.COM")));
    assert_false(mp_cors_allowed(&c, H2O_STRLIT("http://localhost:5174")));
    assert_false(mp_cors_allowed(&c, H2O_STRLIT("https://app.example.com.evil.io")));
    assert_false(mp_cors_allowed(&c, H2O_STRLIT("https://app.example.co")));
    assert_false(mp_cors_allowed(&c, H2O_STRLIT("null")));
    assert_false(mp_cors_allowed(&c, H2O_STRLIT("*")));
    assert_string_equal(c.max_age, "600");
}

static void test_cors_preflight_needs_options_origin_and_method(void **state)
{
    fake_t f;
    fake_init(&f, "OPTIONS", "http://localhost:5173", "POST");
    assert_true(mp_cors_is_preflight(&f.req));
    h2o_mem_clear_pool(&f.req.pool);
    fake_init(&f, "OPTIONS", "http://localhost:5173", NULL);
    assert_false(mp_cors_is_preflight(&f.req));
    h2o_mem_clear_pool(&f.req.pool);
    fake_init(&f, "OPTIONS", NULL, "POST");
    assert_false(mp_cors_is_preflight(&f.req));
    h2o_mem_clear_pool(&f.req.pool);
    fake_init(&f, "POST", "http://localhost:5173", "POST");
    assert_false(mp_cors_is_preflight(&f.req));
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_cors_apply_echoes_an_allowed_origin(void **state)
{
    mp_cors_t c;
    mp_cors_init(&c, origins, 2, 600);
    fake_t f;
    fake_init(&f, "GET", "https://app.example.com", NULL);
    mp_cors_apply(&c, &f.req);
    assert_string_equal(res_header(&f, "access-control-allow-origin"), "https://app.example.com");
    assert_string_equal(res_header(&f, "vary"), "Origin");
    assert_non_null(strstr(res_header(&f, "access-control-expose-headers"), "X-Request-Id"));
    assert_non_null(strstr(res_header(&f, "access-control-expose-headers"), "RateLimit-Remaining"));
    h2o_mem_clear_pool(&f.req.pool);

    fake_init(&f, "GET", "https://evil.example.net", NULL);
    mp_cors_apply(&c, &f.req);
    assert_null(res_header(&f, "access-control-allow-origin"));
    assert_null(res_header(&f, "access-control-expose-headers"));
    assert_string_equal(res_header(&f, "vary"), "Origin"); /* caches must still key on Origin */
    h2o_mem_clear_pool(&f.req.pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cors_allows_listed_origins_only),
        cmocka_unit_test(test_cors_preflight_needs_options_origin_and_method),
        cmocka_unit_test(test_cors_apply_echoes_an_allowed_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
