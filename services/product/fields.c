/*
 * fields.c: checking a product's fields in create and update requests.
 *
 * Every problem is recorded at its JSON pointer (/price/amount, /tags/2) so
 * an admin tool can mark each wrong field at once. Tags are stored
 * de-duplicated and sorted, so the same set always reads back the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/buf.h"
#include "mp/json.h"
#include "product_int.h"

#define PRICE_MAX 1000000000000LL /* 10 billion euros in cents */
#define STOCK_MAX 1000000000
#define TAGS_MAX 20

bool product_slug_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '-')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

bool product_sku_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[0] == '_' || s[0] == '-')
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static bool has_control(const char *s, bool allow_newlines)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && !(allow_newlines && (*p == '\n' || *p == '\t' || *p == '\r'))) || *p == 0x7f)
            return true;
    return false;
}

static void check_price(product_fields_t *f, mp_input_t *in, bool create)
{
    json_t *price = mp_input_json(in, "price", create ? MP_IN_REQUIRED : 0, JSON_OBJECT);
    if (price == NULL)
        return;
    const char *key;
    json_t *v, *amount = json_object_get(price, "amount"), *cur = json_object_get(price, "currency");
    size_t before = mp_problem_count(&in->errs);
    json_object_foreach(price, key, v)
    {
        if (strcmp(key, "amount") != 0 && strcmp(key, "currency") != 0) {
            char ptr[300];
            mp_json_pointer_join(ptr, sizeof(ptr), "/price", key);
            mp_problem_add(&in->errs, ptr, "is not a known field");
        }
    }
    if (!json_is_integer(amount) || json_integer_value(amount) < 0 || json_integer_value(amount) > PRICE_MAX)
        mp_problem_add(&in->errs, "/price/amount", "must be an integer amount of cents from 0 to %lld", PRICE_MAX);
    if (!json_is_string(cur) || strcmp(json_string_value(cur), "EUR") != 0)
        mp_problem_add(&in->errs, "/price/currency", "must be \"EUR\"");
    if (mp_problem_count(&in->errs) == before) {
        f->has_price = true;
        f->price = json_integer_value(amount);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_tags(product_fields_t *f, mp_input_t *in)
{
    json_t *tags = mp_input_json(in, "tags", 0, JSON_ARRAY);
    const char *list[TAGS_MAX];
    size_t n = 0, i;
    json_t *t;
    bool ok = true;
    if (tags == NULL)
        return;
    if (json_array_size(tags) > TAGS_MAX) {
        mp_input_fail(in, "tags", "may hold at most %d tags", TAGS_MAX);
        return;
    }
    json_array_foreach(tags, i, t)
    {
        if (!json_is_string(t) || !product_slug_valid(json_string_value(t), 32)) {
            char ptr[32];
            snprintf(ptr, sizeof(ptr), "/tags/%zu", i);
            mp_problem_add(&in->errs, ptr, "must be 1-32 of a-z, 0-9 and -");
            ok = false;
            continue;
        }
        list[n++] = json_string_value(t);
    }
    if (!ok)
        return;
    qsort(list, n, sizeof(*list), cmp_str);
    json_t *out = json_array();
    for (i = 0; i < n; i++)
        if (i == 0 || strcmp(list[i], list[i - 1]) != 0)
            json_array_append_new(out, json_string(list[i]));
    mp_buf_t b = MP_BUF_INIT;
    mp_json_dump(&b, out);
    json_decref(out);
    f->tags_json = mp_buf_steal(&b);
}

void product_fields_check(product_fields_t *f, mp_input_t *in, bool create)
{
    unsigned req = create ? MP_IN_REQUIRED : 0;
    memset(f, 0, sizeof(*f));
    f->sku = mp_input_str(in, "sku", req, 1, 64);
    if (f->sku && !product_sku_valid(f->sku))
        mp_input_fail(in, "sku", "must be 1-64 of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit");
    f->name = mp_input_str(in, "name", req, 1, 200);
    if (f->name && (has_control(f->name, false) || f->name[strspn(f->name, " ")] == '\0'))
        mp_input_fail(in, "name", "must not be blank or hold control characters");
    f->description = mp_input_str(in, "description", 0, 0, 5000);
    if (f->description && has_control(f->description, true))
        mp_input_fail(in, "description", "must not hold control characters other than newlines and tabs");
    f->has_stock = mp_input_int(in, "stock", req, 0, STOCK_MAX, &f->stock);
    f->category = mp_input_str(in, "category", req, 1, 64);
    if (f->category && !product_slug_valid(f->category, 64))
        mp_input_fail(in, "category", "must be 1-64 of a-z, 0-9 and -, starting with a letter or digit");
    f->image_url_given = json_object_get(in->obj, "image_url") != NULL;
    f->image_url = mp_input_str(in, "image_url", MP_IN_NULLABLE, 1, 2048);
    if (f->image_url && !mp_https_url_valid(f->image_url))
        mp_input_fail(in, "image_url", "must be an https URL with a host");
    check_price(f, in, create);
    check_tags(f, in);
}

void product_fields_dispose(product_fields_t *f)
{
    free(f->tags_json);
    f->tags_json = NULL;
}
