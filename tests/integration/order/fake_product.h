/*
 * fake_product.h: a stand-in for the Product service in Order's integration
 * tests ONLY (never linked into the moonport binary). It answers
 * product.v1.lookup, .reserve and .release exactly as their contract says
 * (docs/services.md#order), from an in-memory catalog, and can be told to
 * fail like a Product that is down.
 *
 * Thread-safe: it answers on its own worker threads; tests read its state.
 */
#ifndef MP_TEST_FAKE_PRODUCT_H
#define MP_TEST_FAKE_PRODUCT_H

#include <stdbool.h>
#include <stdint.h>
#include "mp/bus.h"

typedef struct fake_product fake_product_t;

/** Starts answering product.v1.* on `bus` (queue group "product"). */
fake_product_t *fake_product_start(mp_bus_t *bus);
void fake_product_stop(fake_product_t *fp);

/** Adds a product with `stock` units available. `id` is a UUID. */
void fake_product_add(fake_product_t *fp, const char *id, const char *sku, const char *name, int64_t price,
                      const char *currency, int64_t stock);
/** Units available now (stock minus what live reservations hold); -1 for an unknown id. */
int64_t fake_product_available(fake_product_t *fp, const char *id);
/** Sets the units available. */
void fake_product_set_stock(fake_product_t *fp, const char *id, int64_t stock);
/** Calls answered so far for `op` ("lookup", "reserve", "release"), and reserve calls for one order id. */
int fake_product_calls(fake_product_t *fp, const char *op);
int fake_product_reserves_of(fake_product_t *fp, const char *order_id);
/** Reserves but never answers (the reply lost after Product acted), until unmuted. */
void fake_product_mute_reserve(fake_product_t *fp, bool mute);
/** While `down`, `op` answers 503 as a Product whose database is away would. */
void fake_product_set_down(fake_product_t *fp, const char *op, bool down);

#endif
