/*
 * mp/page.h: answering one page of a keyset-paginated listing
 * (CONVENTIONS.md: `{"items": [...], "next_cursor": "<opaque>" | null}`).
 *
 * The handler runs its query with LIMIT limit+1, selecting per row the
 * item's JSON text, its sort key as exact text and its id; the extra row
 * only tells that another page exists. The cursor (mp/cursor.h) is made
 * from the last item shown.
 *
 * Worker threads (it replies through mp_svc_reply_raw()).
 */
#ifndef MP_PAGE_H
#define MP_PAGE_H

#include <stdint.h>
#include "mp/db.h"
#include "mp/service.h"

typedef struct mp_page_cols {
    int json; /* the item as JSON text */
    int key;  /* the sort key as exact text */
    int id;   /* the tie-breaking id */
} mp_page_cols_t;

/** Replies 200 with the first `limit` rows of `res` (borrowed) as items, and a cursor of kind `kind` after the last
 *  one when `res` holds more than `limit` rows (else null). Errors: those of mp_svc_reply_raw(); a cursor that
 *  cannot be encoded (a key too long) is MP_EINTERNAL, nothing sent. */
mp_status_t mp_svc_reply_page(mp_svc_req_t *req, const mp_db_res_t *res, int64_t limit, const char *kind,
                              mp_page_cols_t cols);

#endif
