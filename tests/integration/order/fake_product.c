/*
 * fake_product.c: product.v1.lookup / reserve / release from memory, for
 * Order's integration tests only (see fake_product.h), following Product's
 * documented contract (docs/services.md#product): reservations are per
 * order id, all or nothing, and idempotent (a refused reserve is refused
 * again); release returns what a live reservation held, once, and a release
 * that comes first makes the late reserve refused.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "mp/bus_serve.h"
#include "mp/json.h"
#include "mp/problem.h"
#include "fake_product.h"

#define MAX_PRODUCTS 64
#define MAX_RESERVATIONS 1024
#define MAX_LINES 64

typedef struct product {
    char id[37], sku[64], name[128], currency[4];
    int64_t price, available;
} product_t;

typedef struct reservation {
    char order_id[37];
    int n, live, calls;
    int rejected; /* the first reserve was refused: every repeat is refused the same way */
    int released; /* released (possibly before any reserve): a later reserve is refused */
    char product_id[MAX_LINES][37];
    int64_t quantity[MAX_LINES];
} reservation_t;

struct fake_product {
    mp_bus_t *bus;
    mp_bus_server_t *srv;
    pthread_mutex_t mu;
    product_t products[MAX_PRODUCTS];
    int nproducts;
    reservation_t *reservations;
    int nreservations;
    int calls_lookup, calls_reserve, calls_release;
    bool down_lookup, down_reserve, down_release;
    bool mute_reserve; /* reserve, and lose the reply (what a NATS outage does after Product acted) */
    bool muting;       /* under mu: the reply being made is dropped */
};

static product_t *find(fake_product_t *fp, const char *id)
{
    for (int i = 0; id && i < fp->nproducts; i++)
        if (strcasecmp(fp->products[i].id, id) == 0)
            return &fp->products[i];
    return NULL;
}

static reservation_t *reservation(fake_product_t *fp, const char *order_id)
{
    for (int i = 0; i < fp->nreservations; i++)
        if (strcmp(fp->reservations[i].order_id, order_id) == 0)
            return &fp->reservations[i];
    return NULL;
}

static void reply(fake_product_t *fp, mp_msg_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (!fp->muting)
        mp_bus_reply(fp->bus, req, status, text, strlen(text), NULL, 0);
    free(text);
    json_decref(body);
}

static void reply_down(fake_product_t *fp, mp_msg_t *req)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_problem_render(&b, 503, "a dependency is unavailable, try again shortly", NULL, NULL);
    mp_bus_reply(fp->bus, req, 503, b.base, b.len, NULL, 0);
    mp_buf_dispose(&b);
}

/* 409 "insufficient stock", with the errors of the first refusal when there are new ones to report */
static void reply_conflict(fake_product_t *fp, mp_msg_t *req, mp_problem_errors_t *errs)
{
    mp_buf_t b = MP_BUF_INIT;
    mp_problem_render(&b, 409, "insufficient stock", NULL, errs ? errs->list : NULL);
    mp_bus_reply(fp->bus, req, 409, b.base, b.len, NULL, 0);
    mp_buf_dispose(&b);
    if (errs)
        mp_problem_errors_dispose(errs);
}

static json_t *product_json(const product_t *p)
{
    return json_pack("{s:s, s:s, s:s, s:{s:I, s:s}, s:I, s:s, s:i, s:s}", "id", p->id, "sku", p->sku, "name", p->name,
                     "price", "amount", (json_int_t)p->price, "currency", p->currency, "stock",
                     (json_int_t)p->available, "category", "test", "version", 1, "unknown_field",
                     "clients must ignore fields they do not know");
}

static void on_lookup(fake_product_t *fp, mp_msg_t *req, json_t *in)
{
    json_t *items = json_array(), *id;
    size_t i;
    json_array_foreach(json_object_get(in, "ids"), i, id)
    {
        product_t *p = find(fp, json_string_value(id));
        if (p) /* unknown ids are left out */
            json_array_append_new(items, product_json(p));
    }
    reply(fp, req, 200, json_pack("{s:o}", "items", items));
}

static void on_reserve(fake_product_t *fp, mp_msg_t *req, json_t *in)
{
    const char *order_id = mp_json_str(in, "order_id");
    json_t *items = json_object_get(in, "items"), *it;
    size_t i;
    reservation_t *r = order_id ? reservation(fp, order_id) : NULL;
    if (r) { /* idempotent per order id: the first outcome, again */
        r->calls++;
        if (r->rejected || r->released) /* as Product: once released, an order id never reserves again */
            reply_conflict(fp, req, NULL);
        else
            reply(fp, req, 200, json_pack("{s:s, s:b, s:O}", "order_id", order_id, "reserved", 1, "items", items));
        return;
    }
    mp_problem_errors_t errs = {0};
    json_array_foreach(items, i, it)
    {
        product_t *p = find(fp, mp_json_str(it, "product_id"));
        json_int_t q = json_integer_value(json_object_get(it, "quantity"));
        char ptr[48];
        snprintf(ptr, sizeof(ptr), "/items/%zu/quantity", i);
        if (p == NULL || q > p->available)
            mp_problem_add(&errs, ptr, "only %lld left", p ? (long long)p->available : 0LL);
    }
    if (order_id == NULL || json_array_size(items) > MAX_LINES || fp->nreservations == MAX_RESERVATIONS) {
        mp_problem_add(&errs, "/items", "the fake cannot hold this");
        reply_conflict(fp, req, &errs);
        return;
    }
    r = &fp->reservations[fp->nreservations++];
    memset(r, 0, sizeof(*r));
    snprintf(r->order_id, sizeof(r->order_id), "%s", order_id);
    r->calls = 1;
    if (mp_problem_count(&errs)) {
        r->rejected = 1;
        reply_conflict(fp, req, &errs);
        return;
    }
    r->live = 1;
    json_array_foreach(items, i, it)
    {
        product_t *p = find(fp, mp_json_str(it, "product_id"));
        p->available -= json_integer_value(json_object_get(it, "quantity"));
        snprintf(r->product_id[r->n], 37, "%s", p->id);
        r->quantity[r->n++] = json_integer_value(json_object_get(it, "quantity"));
    }
    reply(fp, req, 200, json_pack("{s:s, s:b, s:O}", "order_id", order_id, "reserved", 1, "items", items));
}

static void on_release(fake_product_t *fp, mp_msg_t *req, json_t *in)
{
    const char *order_id = mp_json_str(in, "order_id");
    reservation_t *r = order_id ? reservation(fp, order_id) : NULL;
    bool released = r && r->live;
    if (released) {
        for (int i = 0; i < r->n; i++)
            find(fp, r->product_id[i])->available += r->quantity[i];
        r->live = 0;
    }
    if (r == NULL && order_id && fp->nreservations < MAX_RESERVATIONS) { /* before its reserve: refuse that later */
        r = &fp->reservations[fp->nreservations++];
        memset(r, 0, sizeof(*r));
        snprintf(r->order_id, sizeof(r->order_id), "%s", order_id);
    }
    if (r)
        r->released = 1;
    reply(fp, req, 200, json_pack("{s:s?, s:b}", "order_id", order_id, "released", released));
}

static void on_request(void *arg, mp_msg_t *req, int worker)
{
    fake_product_t *fp = arg;
    const char *op = strrchr(mp_msg_subject(req), '.') + 1;
    json_t *in = NULL;
    mp_json_parse(&in, mp_msg_data(req), mp_msg_len(req));
    pthread_mutex_lock(&fp->mu);
    if (strcmp(op, "lookup") == 0) {
        fp->calls_lookup++;
        fp->down_lookup ? reply_down(fp, req) : on_lookup(fp, req, in);
    } else if (strcmp(op, "reserve") == 0) {
        fp->calls_reserve++;
        fp->muting = fp->mute_reserve;
        fp->down_reserve ? reply_down(fp, req) : on_reserve(fp, req, in);
        fp->muting = false;
    } else if (strcmp(op, "release") == 0) {
        fp->calls_release++;
        fp->down_release ? reply_down(fp, req) : on_release(fp, req, in);
    }
    pthread_mutex_unlock(&fp->mu);
    json_decref(in);
}

fake_product_t *fake_product_start(mp_bus_t *bus)
{
    fake_product_t *fp = calloc(1, sizeof(*fp));
    fp->bus = bus;
    fp->reservations = calloc(MAX_RESERVATIONS, sizeof(*fp->reservations));
    pthread_mutex_init(&fp->mu, NULL);
    mp_bus_server_opts_t o = {.workers = 4, .name = "fake_product"};
    if (mp_bus_server_create(&fp->srv, bus, &o) != MP_OK)
        abort();
    static const char *const ops[] = {"product.v1.lookup", "product.v1.reserve", "product.v1.release"};
    for (int i = 0; i < 3; i++)
        if (mp_bus_server_add(fp->srv, ops[i], "product", on_request, fp) != MP_OK)
            abort();
    natsConnection_Flush(mp_bus_conn(bus));
    return fp;
}

void fake_product_stop(fake_product_t *fp)
{
    mp_bus_server_destroy(fp->srv);
    pthread_mutex_destroy(&fp->mu);
    free(fp->reservations);
    free(fp);
}

void fake_product_add(fake_product_t *fp, const char *id, const char *sku, const char *name, int64_t price,
                      const char *currency, int64_t stock)
{
    pthread_mutex_lock(&fp->mu);
    product_t *p = &fp->products[fp->nproducts++];
    snprintf(p->id, sizeof(p->id), "%s", id);
    snprintf(p->sku, sizeof(p->sku), "%s", sku);
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->currency, sizeof(p->currency), "%s", currency);
    p->price = price;
    p->available = stock;
    pthread_mutex_unlock(&fp->mu);
}

int64_t fake_product_available(fake_product_t *fp, const char *id)
{
    pthread_mutex_lock(&fp->mu);
    product_t *p = find(fp, id);
    int64_t n = p ? p->available : -1;
    pthread_mutex_unlock(&fp->mu);
    return n;
}

void fake_product_set_stock(fake_product_t *fp, const char *id, int64_t stock)
{
    pthread_mutex_lock(&fp->mu);
    product_t *p = find(fp, id);
    if (p)
        p->available = stock;
    pthread_mutex_unlock(&fp->mu);
}

int fake_product_calls(fake_product_t *fp, const char *op)
{
    pthread_mutex_lock(&fp->mu);
    int n = strcmp(op, "lookup") == 0    ? fp->calls_lookup
            : strcmp(op, "reserve") == 0 ? fp->calls_reserve
                                         : fp->calls_release;
    pthread_mutex_unlock(&fp->mu);
    return n;
}

int fake_product_reserves_of(fake_product_t *fp, const char *order_id)
{
    pthread_mutex_lock(&fp->mu);
    reservation_t *r = reservation(fp, order_id);
    int n = r ? r->calls : 0;
    pthread_mutex_unlock(&fp->mu);
    return n;
}

void fake_product_mute_reserve(fake_product_t *fp, bool mute)
{
    pthread_mutex_lock(&fp->mu);
    fp->mute_reserve = mute;
    pthread_mutex_unlock(&fp->mu);
}

void fake_product_set_down(fake_product_t *fp, const char *op, bool down)
{
    pthread_mutex_lock(&fp->mu);
    if (strcmp(op, "lookup") == 0)
        fp->down_lookup = down;
    else if (strcmp(op, "reserve") == 0)
        fp->down_reserve = down;
    else
        fp->down_release = down;
    pthread_mutex_unlock(&fp->mu);
}
