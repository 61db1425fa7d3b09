/*
 * page.c: one page of a keyset-paginated listing as a reply (see
 * mp/page.h). Items are JSON text from Postgres, copied as they are.
 */
#include "mp/buf.h"
#include "mp/cursor.h"
#include "mp/page.h"

mp_status_t mp_svc_reply_page(mp_svc_req_t *req, const mp_db_res_t *res, int64_t limit, const char *kind,
                              mp_page_cols_t cols)
{
    int rows = mp_db_rows(res), shown = rows > limit ? (int)limit : rows;
    char next[2800];
    if (rows > limit) {
        const char *fields[] = {mp_db_get(res, shown - 1, cols.key), mp_db_get(res, shown - 1, cols.id)};
        mp_status_t st = mp_cursor_encode(next, sizeof(next), kind, fields, 2);
        if (st != MP_OK)
            return st;
    }
    mp_buf_t b = MP_BUF_INIT;
    mp_buf_puts(&b, "{\"items\":[");
    for (int i = 0; i < shown; i++) {
        if (i)
            mp_buf_puts(&b, ",");
        mp_buf_puts(&b, mp_db_get(res, i, cols.json));
    }
    if (rows > limit)
        mp_buf_printf(&b, "],\"next_cursor\":\"%s\"}", next);
    else
        mp_buf_puts(&b, "],\"next_cursor\":null}");
    mp_status_t st = mp_svc_reply_raw(req, 200, "application/json", b.base, b.len);
    mp_buf_dispose(&b);
    return st;
}
