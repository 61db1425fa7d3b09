/*
 * templates.c: the texts of notifications, one per template and locale,
 * with "{{name}}" placeholders filled from the request's data. A locale we
 * have no text for falls back to English.
 *
 * Placeholders: a string or a number is written as is; money
 * ({"amount", "currency"}) is written in the locale's way ("12.34 EUR",
 * "12,34 EUR"); anything missing is left empty. Adding a template is adding
 * rows here (and a test); adding a language is adding a row per template.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "notification_int.h"

typedef struct notif_template {
    const char *name, *locale, *title, *body;
} notif_template_t;

static const notif_template_t templates[] = {
    {"order_confirmed", "en", "Order confirmed",
     "Your order {{order_id}} for {{total}} is confirmed and paid. Thank you!"},
    {"order_confirmed", "de", "Bestellung best\xc3\xa4tigt",
     "Ihre Bestellung {{order_id}} \xc3\xbc"
     "ber {{total}} ist best\xc3\xa4tigt und bezahlt. Vielen Dank!"},
    {"order_cancelled", "en", "Order cancelled",
     "Your order {{order_id}} was cancelled as you asked. Nothing was charged, or the charge is refunded."},
    {"order_cancelled", "de", "Bestellung storniert",
     "Ihre Bestellung {{order_id}} wurde wie gew\xc3\xbcnscht storniert. Es wurde nichts abgebucht, oder der "
     "Betrag wird erstattet."},
    {"order_payment_failed", "en", "Payment failed",
     "We could not take the payment of {{total}} for your order {{order_id}}, so the order was cancelled."},
    {"order_payment_failed", "de", "Zahlung fehlgeschlagen",
     "Die Zahlung von {{total}} f\xc3\xbcr Ihre Bestellung {{order_id}} ist fehlgeschlagen; die Bestellung wurde "
     "storniert."},
    {"payment_refunded", "en", "Payment refunded",
     "The payment of {{total}} for your cancelled order {{order_id}} has been refunded."},
    {"payment_refunded", "de", "Zahlung erstattet",
     "Die Zahlung von {{total}} f\xc3\xbcr Ihre stornierte Bestellung {{order_id}} wurde erstattet."},
};

static const notif_template_t *find(const char *name, const char *locale)
{
    for (size_t i = 0; i < sizeof(templates) / sizeof(*templates); i++)
        if (strcmp(templates[i].name, name) == 0 && strcmp(templates[i].locale, locale) == 0)
            return &templates[i];
    return NULL;
}

/* Minor units per major unit: most currencies have cents, a few have none. */
static int decimals(const char *currency)
{
    static const char *const none[] = {"JPY", "KRW", "ISK", "CLP", "VND", NULL};
    for (size_t i = 0; none[i]; i++)
        if (strcmp(none[i], currency) == 0)
            return 0;
    return 2;
}

static void put_money(mp_buf_t *b, const json_t *v, const char *locale)
{
    json_int_t amount = json_integer_value(json_object_get(v, "amount"));
    const char *currency = json_string_value(json_object_get(v, "currency"));
    char sep = strcmp(locale, "de") == 0 ? ',' : '.';
    const char *sign = amount < 0 ? "-" : "";
    uint64_t a = amount < 0 ? (uint64_t)(-(amount + 1)) + 1 : (uint64_t)amount;
    if (decimals(currency) == 0)
        mp_buf_printf(b, "%s%" PRIu64 " %s", sign, a, currency);
    else
        mp_buf_printf(b, "%s%" PRIu64 "%c%02" PRIu64 " %s", sign, a / 100, sep, a % 100, currency);
}

static void put_value(mp_buf_t *b, const json_t *v, const char *locale)
{
    if (json_is_string(v))
        mp_buf_puts(b, json_string_value(v));
    else if (json_is_integer(v))
        mp_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_object(v) && json_is_integer(json_object_get(v, "amount")) &&
             json_is_string(json_object_get(v, "currency")))
        put_money(b, v, locale);
}

static char *fill(const char *text, const json_t *data, const char *locale)
{
    mp_buf_t b = MP_BUF_INIT;
    for (const char *p = text; *p;) {
        const char *open = strstr(p, "{{"), *close = open ? strstr(open, "}}") : NULL;
        if (close == NULL) {
            mp_buf_puts(&b, p);
            break;
        }
        mp_buf_append(&b, p, (size_t)(open - p));
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(close - open - 2), open + 2);
        put_value(&b, json_object_get(data, key), locale);
        p = close + 2;
    }
    return mp_buf_steal(&b);
}

mp_status_t notif_render(char **title, char **body, char used[8], const char *name, const char *locale,
                         const json_t *data)
{
    const notif_template_t *t = locale ? find(name, locale) : NULL;
    if (t == NULL)
        t = find(name, "en");
    if (t == NULL)
        return mp_err_set(MP_ENOTFOUND, "no template named \"%s\"", name);
    snprintf(used, 8, "%s", t->locale);
    *title = fill(t->title, data, t->locale);
    *body = fill(t->body, data, t->locale);
    return MP_OK;
}
