/*
 * list.c: product.v1.list: products filtered by category, tag and search
 * text, in one of five orders, a page at a time.
 *
 * Pages use keyset pagination: the cursor holds the sort key and id of the
 * last item, and the next page is "rows after that (key, id)" in the same
 * order. The id breaks ties, so the order is total and pages never repeat
 * or skip a product, even while products are added (OFFSET would shift).
 *
 * Search (q): a product matches when its weighted full-text document (name
 * A, tags B, description C; english stemming) matches the query, or when
 * the query is trigram-similar to a part of its name (pg_trgm word
 * similarity), which is what finds "keybaord". The relevance score is an
 * integer, round(10000 * ts_rank) + round(1000 * word_similarity), so the
 * cursor carries it exactly and pages stay stable.
 *
 * Relevance is computed for a bounded set of candidates, not for every
 * match: ranking is per row (ts_rank reads the whole weighted document), so
 * a common word in a million products cost a second per query. The
 * candidates are the SEARCH_CANDIDATES names nearest the query by word
 * similarity (a GiST trigram index walks them in order, so this costs the
 * same at any size) and the first SEARCH_CANDIDATES full-text matches a
 * GiST scan of the document finds (of any rank: a product whose name has
 * the word is among the nearest names anyway, so these add tag and
 * description matches; GIN could only hand over every match at once). A relevance search therefore
 * pages through at most 2 x SEARCH_CANDIDATES products, the best of them
 * first; the other sorts filter every match, as before.
 *
 * Each sort and combination of filters is its own statement, built once
 * from constant fragments at first use (never from values), so Postgres
 * plans each shape once for the indexes it can use.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/buf.h"
#include "mp/cursor.h"
#include "mp/page.h"
#include "product_int.h"

/* The <% operator's threshold and enable_seqscan are session settings: see PRODUCT_DB_SETTINGS. */

/* Candidates a relevance search ranks from each index (see the top of the file). */
#define SEARCH_CANDIDATES "60"

#define SCORE_OF(Q)                                                                                                    \
    "(round(10000 * ts_rank(p.search, websearch_to_tsquery('english', " Q "))) + round(1000 * word_similarity(" Q      \
    ", p.name)))::bigint"

typedef struct sort {
    const char *name;
    const char *key, *key_text, *key_type, *cmp, *dir; /* the order's expression ($Q: the search text) */
    bool needs_q;
} sort_t;

static const sort_t sorts[] = {
    {"newest", "p.created_at", "to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
     "timestamptz", "<", "DESC", false},
    {"relevance", SCORE_OF("$Q"), SCORE_OF("$Q") "::text", "bigint", "<", "DESC", true},
    {"name", "p.name", "p.name", "text", ">", "ASC", false},
    {"price_asc", "p.price_amount", "p.price_amount::text", "bigint", ">", "ASC", false},
    {"price_desc", "p.price_amount", "p.price_amount::text", "bigint", "<", "DESC", false},
    {NULL},
};
#define NSORTS 5

/* Which filters a listing has: one statement per combination and sort, so each has a plan the planner can cache
 * and fit to its indexes (a `$1 IS NULL OR ...` catch-all gets one generic plan for every combination). */
enum { F_CATEGORY = 1, F_TAG = 2, F_Q = 4, F_AFTER = 8, NCOMBOS = 16 };

static char *statements[NSORTS][NCOMBOS]; /* built once from the constants above; never from values */
static pthread_once_t statements_once = PTHREAD_ONCE_INIT;

/* Appends `frag` with each "$Q" replaced by the search text's parameter number. */
static void put(mp_buf_t *b, const char *frag, int q_param)
{
    for (const char *p = frag; *p; p++) {
        if (p[0] == '$' && p[1] == 'Q') {
            mp_buf_printf(b, "$%d", q_param);
            p++;
        } else {
            mp_buf_append(b, p, 1);
        }
    }
}

/* The same filters as the listing's, on the candidates' own scan of the table. */
static void put_filters(mp_buf_t *b, int cat, int tag)
{
    if (cat)
        mp_buf_printf(b, " AND c.category = $%d", cat);
    if (tag)
        mp_buf_printf(b, " AND c.tags @> ARRAY[$%d::text]", tag);
}

/* The ids a relevance search ranks: the nearest names by word similarity, then full-text matches. */
static void put_candidates(mp_buf_t *b, int cat, int tag, int q)
{
    mp_buf_printf(b, "(SELECT c.id FROM product.products c WHERE $%d <%% c.name", q);
    put_filters(b, cat, tag);
    mp_buf_printf(b, " ORDER BY c.name <->> $%d LIMIT " SEARCH_CANDIDATES ")", q);
    mp_buf_printf(
        b, " UNION (SELECT c.id FROM product.products c WHERE c.search @@ websearch_to_tsquery('english', $%d)", q);
    put_filters(b, cat, tag);
    mp_buf_puts(b, " LIMIT " SEARCH_CANDIDATES ")");
}

/* The statement for sort `s` and filters `f`. Parameters are numbered in the order list_params() packs them:
 * category, tag, q, cursor key, cursor id, limit; absent ones take no number. */
static char *build_statement(const sort_t *s, unsigned f)
{
    mp_buf_t b = {0};
    int n = 0, q = 0;
    const char *and = " WHERE ";
    mp_buf_puts(&b, "SELECT " PRODUCT_JSON ", ");
    int cat = f & F_CATEGORY ? ++n : 0, tag = f & F_TAG ? ++n : 0;
    q = f & F_Q ? ++n : 0;
    put(&b, s->key_text, q);
    mp_buf_puts(&b, ", p.id FROM product.products p");
    if (cat) {
        mp_buf_printf(&b, "%sp.category = $%d", and, cat);
        and = " AND ";
    }
    if (tag) {
        mp_buf_printf(&b, "%sp.tags @> ARRAY[$%d::text]", and, tag);
        and = " AND ";
    }
    if (q && s->needs_q) {
        mp_buf_printf(&b, "%sp.id IN (", and);
        put_candidates(&b, cat, tag, q);
        mp_buf_puts(&b, ")");
        and = " AND ";
    } else if (q) {
        mp_buf_printf(&b, "%s(p.search @@ websearch_to_tsquery('english', $%d) OR $%d <%% p.name)", and, q, q);
        and = " AND ";
    }
    if (f & F_AFTER) {
        mp_buf_printf(&b, "%s((", and);
        put(&b, s->key, q);
        mp_buf_printf(&b, "), p.id) %s ($%d::%s, $%d::uuid)", s->cmp, n + 1, s->key_type, n + 2);
        n += 2;
    }
    mp_buf_puts(&b, " ORDER BY ");
    put(&b, s->key, q);
    mp_buf_printf(&b, " %s, p.id %s LIMIT $%d::int", s->dir, s->dir, n + 1);
    return mp_buf_steal(&b);
}

static void build_statements(void)
{
    for (int i = 0; i < NSORTS; i++)
        for (unsigned f = 0; f < NCOMBOS; f++)
            if (!sorts[i].needs_q || (f & F_Q))
                statements[i][f] = build_statement(&sorts[i], f);
}

/* The cursor's kind: the sort and a digest of the filters, so a cursor only continues the listing it came from. */
static void cursor_kind(char *out, size_t size, const char *sort, const char *category, const char *tag, const char *q)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const char *parts[3] = {category, tag, q};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i] ? parts[i] : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ (parts[i] ? 0x1f : 0x1e)) * 1099511628211ULL;
    }
    snprintf(out, size, "product.list.v1.%s.%016llx", sort, (unsigned long long)h);
}

static mp_status_t bad_param(mp_svc_req_t *req, const char *detail)
{
    return mp_svc_reply_problem(req, 400, detail, NULL);
}

mp_status_t product_list(mp_svc_req_t *req)
{
    mp_input_t in;
    int64_t limit = 20;
    mp_input_init(&in, req->input);
    const char *category = mp_input_str(&in, "category", MP_IN_PARAM, 1, 64);
    const char *tag = mp_input_str(&in, "tag", MP_IN_PARAM, 1, 32);
    const char *q = mp_input_str(&in, "q", MP_IN_PARAM, 1, 200);
    const char *sort_name = mp_input_str(&in, "sort", MP_IN_PARAM, 1, 16);
    mp_input_int(&in, "limit", MP_IN_PARAM, 1, 100, &limit);
    const char *cursor = mp_input_str(&in, "cursor", MP_IN_PARAM, 1, 2048);
    mp_input_only(&in, MP_INPUT_FIELDS("category", "tag", "q", "sort", "limit", "cursor"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (q && q[strspn(q, " \t")] == '\0')
        q = NULL; /* a blank search is no search */
    if ((category && !product_slug_valid(category, 64)) || (tag && !product_slug_valid(tag, 32)))
        return bad_param(req, "parameters category and tag are 1-64 (tags 1-32) of a-z, 0-9 and -");

    int si = -1;
    if (sort_name == NULL)
        sort_name = q ? "relevance" : "newest";
    for (int i = 0; sorts[i].name && si < 0; i++)
        if (strcmp(sorts[i].name, sort_name) == 0)
            si = i;
    const sort_t *sort = si >= 0 ? &sorts[si] : NULL;
    if (sort == NULL)
        return bad_param(req, "parameter sort: must be one of newest, relevance, name, price_asc, price_desc");
    if (strcmp(sort->name, "relevance") == 0 && q == NULL)
        return bad_param(req, "parameter sort: relevance needs a search text q");

    char kind[96], cbuf[2048], lim[24];
    const char *after[2] = {NULL, NULL};
    cursor_kind(kind, sizeof(kind), sort->name, category, tag, q);
    if (cursor && (mp_cursor_decode(after, 2, cbuf, sizeof(cbuf), kind, cursor) != MP_OK || !mp_uuid_valid(after[1])))
        return bad_param(req, "parameter cursor: not a cursor of this listing (same filters and sort)");
    snprintf(lim, sizeof(lim), "%lld", (long long)limit + 1);

    /* the parameters present, in the order build_statement() numbered them */
    const char *params[6];
    int n = 0;
    unsigned f = (category ? F_CATEGORY : 0) | (tag ? F_TAG : 0) | (q ? F_Q : 0) | (cursor ? F_AFTER : 0);
    const char *all[6] = {category, tag, q, after[0], after[1], lim};
    for (int i = 0; i < 6; i++)
        if (all[i] || (i >= 3 && i <= 4 && cursor) || i == 5)
            params[n++] = all[i];
    pthread_once(&statements_once, build_statements);
    mp_db_res_t *res = NULL;
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc), statements[si][f], n, params);
    if (st == MP_EINVAL) /* a forged cursor key that does not parse as its type; the SQL error stays in the log */
        return bad_param(req, "parameter cursor: not a cursor of this listing (same filters and sort)");
    if (st != MP_OK)
        return st;
    mp_svc_reply_header(req, "Cache-Control", "no-cache");
    st = mp_svc_reply_page(req, res, limit, kind, (mp_page_cols_t){.json = 0, .key = 1, .id = 2});
    mp_db_res_free(res);
    return st;
}
