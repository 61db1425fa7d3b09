/*
 * view.c: service replies as lazy JSON views.
 *
 * A reply object or array reaches the script as a view: a userdata over
 * the reply's bytes that behaves like a table (v.key, v[i], #v, pairs,
 * ipairs, type(v) == "table"), decoding only the fields the script reads.
 * A view, or any part of it the script passes on unchanged, is written into
 * the response by copying its bytes: no decode, no re-encode. This is where
 * composition spends most of its time otherwise (measured: JSON was the top
 * of the profile once thread hand-offs were gone).
 *
 * The first write (v.x = 1, table.insert(v, ...)) materializes the view into
 * a real table, decoded in full, and from then on every operation goes to
 * that table, so scripts can still change what they got.
 *
 * The reply is validated in full before the first view is made, so copying
 * its bytes can never produce invalid JSON, and views walk it without
 * checking anything again. Validating also notes where each of the body's
 * first containers ends and how many members it has (spans), so finding a
 * member, the end of a value or the length of an array does not scan the
 * same bytes again (measured: re-scanning was 10% of a four-call request's
 * CPU). Each view keeps its reply alive (a userdata holding the spans and a
 * copy of the bytes, in its environment), so views may outlive their request;
 * views hold nothing outside Lua's heap, so they need no finalizer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "bff_int.h"

#define MAX_DEPTH 64

static char view_mt_key;

/* Where a container of the body ends and how many members it has, found while validating it: views look it up
 * instead of scanning the container again. */
typedef struct span {
    uint32_t start, end, count; /* offsets into the body: '{' or '[', the byte after '}' or ']' */
} span_t;

/* A reply body as views hold it (a userdata, kept alive by every view of it): the spans of its first
 * containers, in document order, then the bytes. */
typedef struct body {
    uint32_t nspans;
    span_t spans[];
} body_t;

#ifndef BODY_SPANS
#define BODY_SPANS 64 /* containers recorded per body; later ones are scanned when needed */
#endif

typedef struct view {
    const char *p;        /* the value's first byte ('{' or '[') inside the body */
    size_t len;           /* its length in bytes */
    const body_t *body;   /* the body p points into */
    int32_t count;        /* elements or members; -1 until counted */
    const uint32_t *offs; /* arrays: start offset (from p) of each element, built on first index (env[4]) */
    bool materialized;
} view_t;

static const char *body_bytes(const body_t *b)
{
    return (const char *)(b->spans + b->nspans);
}

/* The span of the container starting at p, or NULL when the body has none recorded for it. */
static const span_t *span_at(const body_t *b, const char *p)
{
    if (b == NULL)
        return NULL;
    uint32_t off = (uint32_t)(p - body_bytes(b)), lo = 0, hi = b->nspans;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (b->spans[mid].start < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->nspans && b->spans[lo].start == off ? &b->spans[lo] : NULL;
}

/* ---- skipping JSON without decoding it -------------------------------------------- */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || n > avail)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))) ||
        (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))))
        return 0;
    return n;
}

/* Eight bytes at a time: the bytes of a word that end or complicate a string (a quote, a backslash, a control
 * character, a byte of a multi-byte UTF-8 sequence) are flagged by their high bit. A flag above the first real one
 * may be false (a borrow), the lowest never is: on little-endian machines it says how many plain bytes to skip. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#define HAS_ZERO(w) (((w)-ONES) & ~(w)&HIGHS)

static inline uint64_t load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t special8(uint64_t w)
{
    return HAS_ZERO(w ^ (ONES * '"')) | HAS_ZERO(w ^ (ONES * '\\')) | ((w - ONES * 0x20) & ~w & HIGHS) | (w & HIGHS);
}

/* How many bytes come before the first flagged one (`mask` non-zero). */
static inline size_t plain_bytes(uint64_t mask)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(mask) / 8;
#else
    (void)mask;
    return 0;
#endif
}

/* A string starting at p ('"'); returns the byte after its closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    p++;
    while (p < e) {
        while (e - p >= 8) {
            uint64_t m = special8(load8(p));
            if (m) {
                p += plain_bytes(m);
                break;
            }
            p += 8;
        }
        if (p >= e)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (++p >= e)
                return NULL;
            switch (*p) {
            case 'u': {
                /* the decoder's rules (json.c): no \u0000, surrogates only as a high-low pair; a reply it would
                 * refuse must not pass as valid, or its views would read as nil and materialize as {} */
                int cp = e - p >= 5 ? bff_json_hex4(p + 1) : -1;
                if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                    return NULL;
                p += 5;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    int lo = e - p >= 6 && p[0] == '\\' && p[1] == 'u' ? bff_json_hex4(p + 2) : -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return NULL;
                    p += 6;
                }
                break;
            }
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p++;
                break;
            default:
                return NULL;
            }
        } else if (c < 0x80) {
            p++;
        } else {
            size_t n = utf8_len((const unsigned char *)p, (size_t)(e - p));
            if (n == 0)
                return NULL;
            p += n;
        }
    }
    return NULL;
}

/* The decoder reads numbers as doubles and refuses one that overflows (1e400): refuse it here too. */
static bool number_finite(const char *s, size_t n)
{
    char buf[64], *copy = n < sizeof(buf) ? buf : mp_xmalloc(n + 1);
    memcpy(copy, s, n);
    copy[n] = '\0';
    bool ok = isfinite(strtod(copy, NULL));
    if (copy != buf)
        free(copy);
    return ok;
}

static const char *skip_number(const char *p, const char *e)
{
    const char *s = p, *int_start;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return NULL;
    int_start = p;
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    /* only an exponent or a huge integer part can overflow: strtod just for those, replies rarely have them */
    bool may_overflow = p - int_start > 300;
    if (p < e && *p == '.') {
        const char *d = ++p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return NULL;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        const char *d = p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return NULL;
        may_overflow = true;
    }
    return may_overflow && !number_finite(s, (size_t)(p - s)) ? NULL : p;
}

/* Spans recorded while validating: at most `cap`, offsets from `base`. */
typedef struct spans {
    span_t *s;
    uint32_t n, cap;
    const char *base;
} spans_t;

static const char *skip_value(const char *p, const char *e, int depth, spans_t *sp);

/* A member of a container: strings and numbers, most of them, without a call (measured: the calls' prologues were a
 * fifth of validating). */
static inline __attribute__((always_inline)) const char *skip_member(const char *p, const char *e, int depth,
                                                                     spans_t *sp)
{
    if (p < e && *p == '"')
        return skip_string(p, e);
    if (p < e && ((*p >= '0' && *p <= '9') || *p == '-'))
        return skip_number(p, e);
    return skip_value(p, e, depth, sp);
}

/* Any value starting at p (no leading space); returns the byte after it, or NULL when malformed. */
static const char *skip_value(const char *p, const char *e, int depth, spans_t *sp)
{
    if (p >= e)
        return NULL;
    switch (*p) {
    case '"':
        return skip_string(p, e);
    case 't':
        return e - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return e - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return e - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        bool object = *p == '{';
        span_t *span = NULL;
        uint32_t count = 0;
        if (depth >= MAX_DEPTH)
            return NULL;
        if (sp && sp->n < sp->cap) {
            span = &sp->s[sp->n++];
            span->start = (uint32_t)(p - sp->base);
        }
        p = skip_ws(p + 1, e);
        for (;;) {
            if (p < e && *p == close && count == 0)
                break;
            if (object) {
                if (p >= e || *p != '"' || (p = skip_string(p, e)) == NULL)
                    return NULL;
                p = skip_ws(p, e);
                if (p >= e || *p++ != ':')
                    return NULL;
                p = skip_ws(p, e);
            }
            if ((p = skip_member(p, e, depth + 1, sp)) == NULL)
                return NULL;
            count++;
            p = skip_ws(p, e);
            if (p < e && *p == ',') {
                p = skip_ws(p + 1, e);
                continue;
            }
            if (p >= e || *p != close)
                return NULL;
            break;
        }
        if (span) {
            span->end = (uint32_t)(p + 1 - sp->base);
            span->count = count;
        }
        return p + 1;
    }
    default:
        return skip_number(p, e);
    }
}

static bool valid(const char *text, size_t len, spans_t *sp)
{
    const char *e = text + len, *p = skip_value(skip_ws(text, e), e, 0, sp);
    return p && skip_ws(p, e) == e;
}

bool bff_json_valid(const char *text, size_t len)
{
    return valid(text, len, NULL);
}

/* ---- walking a validated body ----------------------------------------------------------
 * Views only ever look at bytes bff_json_valid() accepted, so finding where a value ends needs no checks: strings
 * end at the first quote not escaped, containers where their bracket depth returns to zero. */

/* The byte after the string starting at p ('"'). */
static const char *next_string(const char *p, const char *e)
{
    p++;
    for (;;) {
        while (e - p >= 8) {
            uint64_t w = load8(p), m = HAS_ZERO(w ^ (ONES * '"')) | HAS_ZERO(w ^ (ONES * '\\'));
            if (m) {
                p += plain_bytes(m);
                break;
            }
            p += 8;
        }
        while (p < e && *p != '"' && *p != '\\')
            p++;
        if (p >= e)
            return e;
        if (*p == '"')
            return p + 1;
        p += 2; /* an escape: \" or \\ never ends the string; \uXXXX's digits hold neither */
    }
}

/* The byte after the value starting at p, in body `b`. */
static const char *next_value(const body_t *b, const char *p, const char *e)
{
    switch (*p) {
    case '"':
        return next_string(p, e);
    case '{':
    case '[': {
        const span_t *span = span_at(b, p);
        if (span)
            return body_bytes(b) + span->end;
        int depth = 0;
        while (p < e) {
            /* a word without quotes or brackets: '[' | 0x20 is '{' and ']' | 0x20 is '}', no other byte maps there */
            while (e - p >= 8) {
                uint64_t w = load8(p), b = w | (ONES * 0x20);
                if (HAS_ZERO(w ^ (ONES * '"')) | HAS_ZERO(b ^ (ONES * '{')) | HAS_ZERO(b ^ (ONES * '}')))
                    break;
                p += 8;
            }
            if (p >= e)
                break;
            switch (*p) {
            case '"':
                p = next_string(p, e);
                continue;
            case '{':
            case '[':
                depth++;
                break;
            case '}':
            case ']':
                if (--depth == 0)
                    return p + 1;
                break;
            }
            p++;
        }
        return e;
    }
    default: /* a number, true, false or null */
        while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        return p;
    }
}

/* ---- views ---------------------------------------------------------------------------- */

static view_t *to_view(lua_State *L, int idx)
{
    view_t *v = lua_touserdata(L, idx);
    if (v == NULL || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return NULL;
    lua_pushlightuserdata(L, &view_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bool yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes ? v : NULL;
}

bool bff_is_view(lua_State *L, int idx)
{
    return to_view(L, idx) != NULL;
}

/* The view's environment: [1] the body (body_t), [2] the cache of children, [3] the materialized table, [4] the
 * offsets of an array's elements. */
static void push_env_field(lua_State *L, int idx, int field)
{
    lua_getfenv(L, idx);
    lua_rawgeti(L, -1, field);
    lua_remove(L, -2);
}

/* Pushes a view over [p, p+len) of the body (body_t) at `body_idx`. */
static void push_view(lua_State *L, int body_idx, const char *p, size_t len)
{
    body_idx = body_idx < 0 ? lua_gettop(L) + body_idx + 1 : body_idx;
    const body_t *b = lua_touserdata(L, body_idx);
    view_t *v = lua_newuserdata(L, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->p = p;
    v->len = len;
    v->body = b;
    const span_t *span = span_at(b, p);
    v->count = span ? (int32_t)span->count : -1;
    lua_pushlightuserdata(L, &view_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, body_idx);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, -2);
}

/* Pushes the Lua value of the JSON value at [p, end): scalars decoded, containers as views. */
static void push_value(lua_State *L, int view_idx, const char *p, const char *end)
{
    char err[64];
    if (*p == '{' || *p == '[') {
        push_env_field(L, view_idx, 1); /* the body */
        push_view(L, -1, p, (size_t)(end - p));
        lua_remove(L, -2);
        return;
    }
    if (!bff_json_decode(L, p, (size_t)(end - p), err, sizeof(err)))
        lua_pushnil(L); /* unreachable: the body was validated */
}

static bool materialized(lua_State *L, int idx, view_t *v)
{
    if (!v->materialized)
        return false;
    push_env_field(L, idx, 3);
    return true;
}

/* Decodes the whole view into a real table, once; leaves it on the stack. */
static void materialize(lua_State *L, int idx, view_t *v)
{
    char err[64];
    if (materialized(L, idx, v))
        return;
    if (!bff_json_decode(L, v->p, v->len, err, sizeof(err)))
        lua_newtable(L);
    lua_getfenv(L, idx);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 3);
    lua_pop(L, 1);
    v->materialized = true;
}

/* The elements of the array from p, up to e: counts them and, when `offs` is given, records where each starts. */
static int32_t walk_array(const view_t *v, uint32_t *offs)
{
    int32_t n = 0;
    const char *e = v->p + v->len, *p = skip_ws(v->p + 1, e);
    while (p < e && *p != ']') {
        if (offs)
            offs[n] = (uint32_t)(p - v->p);
        n++;
        p = skip_ws(next_value(v->body, p, e), e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
    }
    return n;
}

/* Array views: the offsets of every element, built once, in a userdata the view's environment keeps (env[4]). */
static void index_array(lua_State *L, int idx, view_t *v)
{
    if (v->offs)
        return;
    if (v->count < 0)
        v->count = walk_array(v, NULL);
    uint32_t *offs = lua_newuserdata(L, (v->count ? (size_t)v->count : 1) * sizeof(*offs));
    walk_array(v, offs);
    lua_getfenv(L, idx);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 4);
    lua_pop(L, 1);
    v->offs = offs;
}

static int l_index(lua_State *L)
{
    view_t *v = to_view(L, 1);
    if (materialized(L, 1, v)) {
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        return 1;
    }
    push_env_field(L, 1, 2); /* cache */
    if (!lua_isnil(L, -1)) {
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        if (!lua_isnil(L, -1))
            return 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    const char *e = v->p + v->len, *hit = NULL, *hit_end = NULL;
    if (*v->p == '[') {
        if (lua_type(L, 2) != LUA_TNUMBER)
            return 0;
        index_array(L, 1, v);
        lua_Number d = lua_tonumber(L, 2);
        int64_t i = (int64_t)d;
        if ((lua_Number)i != d || i < 1 || i > v->count)
            return 0;
        hit = v->p + v->offs[i - 1];
        hit_end = next_value(v->body, hit, e);
    } else {
        if (lua_type(L, 2) != LUA_TSTRING)
            return 0;
        size_t klen;
        const char *key = lua_tolstring(L, 2, &klen);
        const char *p = skip_ws(v->p + 1, e);
        while (p < e && *p == '"') {
            const char *kend = next_string(p, e);
            /* keys with escapes are compared after decoding; plain keys by bytes */
            bool same = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
            if (!same && memchr(p + 1, '\\', (size_t)(kend - p - 2))) {
                char err[8];
                if (bff_json_decode(L, p, (size_t)(kend - p), err, sizeof(err))) {
                    same = lua_rawequal(L, -1, 2);
                    lua_pop(L, 1);
                }
            }
            p = skip_ws(skip_ws(kend, e) + 1, e);
            const char *vend = next_value(v->body, p, e);
            /* a null member is absent, as pairs and the decoder have it: {"a":null,"a":1} reads as a = 1 */
            if (same && !(vend - p == 4 && memcmp(p, "null", 4) == 0)) {
                hit = p;
                hit_end = vend;
                break;
            }
            p = skip_ws(vend, e);
            if (p < e && *p == ',')
                p = skip_ws(p + 1, e);
        }
    }
    if (hit == NULL)
        return 0;
    push_value(L, 1, hit, hit_end);
    /* cache containers so v.items == v.items and repeated reads are free */
    if (lua_type(L, -1) == LUA_TUSERDATA) {
        lua_getfenv(L, 1);
        lua_rawgeti(L, -1, 2);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, 2);
        }
        lua_pushvalue(L, 2);
        lua_pushvalue(L, -4);
        lua_rawset(L, -3);
        lua_pop(L, 2);
    }
    return 1;
}

static int l_newindex(lua_State *L)
{
    view_t *v = to_view(L, 1);
    materialize(L, 1, v);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

static int32_t count_members(view_t *v)
{
    if (v->count >= 0)
        return v->count;
    if (*v->p == '[')
        return v->count = walk_array(v, NULL);
    int32_t n = 0;
    const char *e = v->p + v->len, *p = skip_ws(v->p + 1, e);
    while (p < e && *p == '"') {
        p = skip_ws(skip_ws(next_string(p, e), e) + 1, e);
        p = skip_ws(next_value(v->body, p, e), e);
        n++;
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
    }
    return v->count = n;
}

/* #v: the length of an array (objects have no sequence part: 0, as for a table with string keys) */
static int l_len(lua_State *L)
{
    view_t *v = to_view(L, 1);
    if (materialized(L, 1, v)) {
        lua_pushinteger(L, (lua_Integer)lua_objlen(L, -1));
        return 1;
    }
    lua_pushinteger(L, *v->p == '[' ? count_members(v) : 0);
    return 1;
}

static int l_tostring(lua_State *L)
{
    lua_pushfstring(L, "table: %p", lua_touserdata(L, 1));
    return 1;
}

/* core.view_unwrap(v): the materialized table of a view (materializing it), for table.* on views */
static int l_unwrap(lua_State *L)
{
    view_t *v = to_view(L, 1);
    if (v == NULL) {
        lua_settop(L, 1);
        return 1;
    }
    materialize(L, 1, v);
    return 1;
}

/* core.view_next(v, state): iterates a view in document order; `state` is a cursor table {pos, index} */
static int l_iter(lua_State *L)
{
    view_t *v = to_view(L, lua_upvalueindex(1));
    size_t pos = (size_t)lua_tointeger(L, lua_upvalueindex(2));
    lua_Integer index = lua_tointeger(L, lua_upvalueindex(3));
    const char *e = v->p + v->len, *p = v->p + pos;
    p = skip_ws(p, e);
    if (p < e && *p == ',')
        p = skip_ws(p + 1, e);
    if (p >= e || *p == '}' || *p == ']')
        return 0;
    lua_pushvalue(L, lua_upvalueindex(1));
    int self = lua_gettop(L);
    if (*v->p == '[') {
        const char *end = next_value(v->body, p, e);
        lua_pushinteger(L, index + 1);
        push_value(L, self, p, end);
        p = end;
    } else {
        const char *kend = next_string(p, e);
        char err[8];
        if (!bff_json_decode(L, p, (size_t)(kend - p), err, sizeof(err)))
            return 0;
        p = skip_ws(skip_ws(kend, e) + 1, e);
        const char *end = next_value(v->body, p, e);
        /* null members are absent, as when decoding */
        if (end - p == 4 && memcmp(p, "null", 4) == 0) {
            lua_pushinteger(L, (lua_Integer)(end - v->p));
            lua_replace(L, lua_upvalueindex(2));
            lua_settop(L, 0);
            return l_iter(L);
        }
        push_value(L, self, p, end);
        p = end;
    }
    lua_pushinteger(L, (lua_Integer)(p - v->p));
    lua_replace(L, lua_upvalueindex(2));
    lua_pushinteger(L, index + 1);
    lua_replace(L, lua_upvalueindex(3));
    lua_remove(L, self);
    return 2;
}

/* core.view_pairs(v): an iterator function over a view (document order), or nil for materialized views */
static int l_pairs(lua_State *L)
{
    view_t *v = to_view(L, 1);
    if (v == NULL)
        return 0;
    if (materialized(L, 1, v))
        return 1; /* the caller iterates this table instead */
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 1); /* after the opening bracket */
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, l_iter, 3);
    return 1;
}

static int l_is_view(lua_State *L)
{
    lua_pushboolean(L, to_view(L, 1) != NULL);
    return 1;
}

bool bff_view_push_reply(lua_State *L, const char *body, size_t len)
{
    span_t spans[BODY_SPANS];
    spans_t sp = {spans, 0, BODY_SPANS, body};
    if (!valid(body, len, &sp))
        return false;
    const char *e = body + len, *p = skip_ws(body, e);
    if (*p == '{' || *p == '[') {
        /* the views' own copy (they may outlive the request), with what validating learnt of its containers */
        body_t *b = lua_newuserdata(L, sizeof(*b) + sp.n * sizeof(span_t) + len);
        b->nspans = sp.n;
        memcpy(b->spans, spans, sp.n * sizeof(span_t));
        char *copy = (char *)body_bytes(b);
        memcpy(copy, body, len);
        const char *cp = copy + (p - body), *ce = copy + len;
        while (ce > cp && (ce[-1] == ' ' || ce[-1] == '\n' || ce[-1] == '\r' || ce[-1] == '\t'))
            ce--;
        push_view(L, -1, cp, (size_t)(ce - cp));
        lua_remove(L, -2);
        return true;
    }
    char err[64];
    if (!bff_json_decode(L, body, len, err, sizeof(err)))
        lua_pushnil(L); /* unreachable: validated */
    return true;
}

/* For the encoder: 0 when `idx` is not a view; 1 with its bytes in *p, *len; 2 with its materialized table pushed. */
int bff_view_kind(lua_State *L, int idx, const char **p, size_t *len)
{
    view_t *v = to_view(L, idx);
    if (v == NULL)
        return 0;
    if (materialized(L, idx, v))
        return 2;
    *p = v->p;
    *len = v->len;
    return 1;
}

void bff_view_inject(lua_State *L)
{
    lua_pushlightuserdata(L, &view_mt_key);
    lua_createtable(L, 0, 6);
    lua_pushcfunction(L, l_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "json view");
    lua_setfield(L, -2, "__metatable");
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, l_is_view);
    lua_setfield(L, -2, "is_view");
    lua_pushcfunction(L, l_pairs);
    lua_setfield(L, -2, "view_pairs");
    lua_pushcfunction(L, l_unwrap);
    lua_setfield(L, -2, "view_unwrap");
}
