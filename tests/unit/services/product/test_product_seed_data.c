/*
 * test_product_seed_data.c: unit tests for services/product/seed_data.c and
 * the field rules in fields.c: the generated catalogue is deterministic
 * (same seed, same products), spread over at least 10 categories, with
 * unique SKUs, valid fields and some "featured" products; another seed
 * gives another catalogue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "services/product/seed_data.c"
#include "services/product/fields.c"

static void test_product_seed_is_deterministic(void **state)
{
    seed_product_t a, b;
    for (unsigned i = 0; i < SEED_DEFAULT_COUNT; i += 97) {
        seed_product_make(&a, SEED_DEFAULT_SEED, i);
        seed_product_make(&b, SEED_DEFAULT_SEED, i);
        assert_memory_equal(&a, &b, sizeof(a));
    }
    /* pinned: a change here changes everyone's demo data, so make it on purpose */
    seed_product_make(&a, SEED_DEFAULT_SEED, 0);
    assert_string_equal(a.sku, "MP-CMP-00001");
    assert_string_equal(a.category, "computers");
    seed_product_make(&b, SEED_DEFAULT_SEED + 1, 0);
    assert_string_equal(b.sku, a.sku);
    assert_true(strcmp(a.name, b.name) != 0 || a.price != b.price || a.stock != b.stock);
}

static int cmp_sku(const void *x, const void *y)
{
    return strcmp((const char *)x, (const char *)y);
}

static void test_product_seed_is_valid_varied_and_unique(void **state)
{
    static char skus[SEED_DEFAULT_COUNT][32];
    size_t featured = 0, per_category[16] = {0};
    assert_true(seed_category_count() >= 10);
    for (unsigned i = 0; i < SEED_DEFAULT_COUNT; i++) {
        seed_product_t p;
        seed_product_make(&p, SEED_DEFAULT_SEED, i);
        assert_true(product_sku_valid(p.sku));
        assert_true(product_slug_valid(p.category, 64));
        assert_true(p.name[0] != '\0' && strlen(p.name) < 200);
        assert_true(p.price > 0 && p.price % 100 == 99);
        assert_true(p.stock >= 0 && p.stock <= 500);
        assert_true(mp_https_url_valid(p.image_url));
        for (size_t t = 0; p.tags[t]; t++) {
            assert_true(product_slug_valid(p.tags[t], 32));
            featured += strcmp(p.tags[t], "featured") == 0;
        }
        per_category[i % seed_category_count()]++;
        memcpy(skus[i], p.sku, sizeof(skus[i]));
    }
    qsort(skus, SEED_DEFAULT_COUNT, sizeof(skus[0]), cmp_sku);
    for (unsigned i = 1; i < SEED_DEFAULT_COUNT; i++)
        assert_true(strcmp(skus[i - 1], skus[i]) != 0);
    assert_true(featured >= 20);
    for (size_t c = 0; c < seed_category_count(); c++)
        assert_true(per_category[c] >= SEED_DEFAULT_COUNT / seed_category_count());
}

static void test_product_slugs_and_skus(void **state)
{
    assert_true(product_slug_valid("home-office", 64));
    assert_false(product_slug_valid("Home", 64));
    assert_false(product_slug_valid("-x", 64));
    assert_false(product_slug_valid("", 64));
    assert_false(product_slug_valid("abcdefghijklmnopqrstuvwxyz0123456789", 32));
    assert_true(product_sku_valid("MP-CMP-00001"));
    assert_true(product_sku_valid("a.b_c-1"));
    assert_false(product_sku_valid("-x"));
    assert_false(product_sku_valid("has space"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_seed_is_deterministic),
        cmocka_unit_test(test_product_seed_is_valid_varied_and_unique),
        cmocka_unit_test(test_product_slugs_and_skus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
