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
 * its bytes can never produce invalid JSON. Each view keeps its reply alive
 * (a Lua string in its environment), so views may outlive their request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "bff_int.h"

#define MAX_DEPTH 64

static char view_mt_key;

typedef struct view {
    const char *p;  /* the value's first byte ('{' or '[') inside the body string */
    size_t len;     /* its length in bytes */
    int32_t count;  /* elements or members; -1 until counted */
    uint32_t *offs; /* arrays: start offset (from p) of each element, built on first index */
    bool materialized;
} view_t;

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

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string starting at p ('"'); returns the byte after its closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    p++;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (++p >= e)
                return NULL;
            if (*p == 'u') {
                if (e - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]))
                    return NULL;
                p += 5;
            } else if (strchr("\"\\/bfnrt", *p) && *p) {
                p++;
            } else {
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

static const char *skip_number(const char *p, const char *e)
{
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
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
    }
    return p;
}

/* Any value starting at p (no leading space); returns the byte after it, or NULL when malformed. */
static const char *skip_value(const char *p, const char *e, int depth)
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
        if (depth >= MAX_DEPTH)
            return NULL;
        p = skip_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (object) {
                if (p >= e || *p != '"' || (p = skip_string(p, e)) == NULL)
                    return NULL;
                p = skip_ws(p, e);
                if (p >= e || *p++ != ':')
                    return NULL;
                p = skip_ws(p, e);
            }
            if ((p = skip_value(p, e, depth + 1)) == NULL)
                return NULL;
            p = skip_ws(p, e);
            if (p < e && *p == ',') {
                p = skip_ws(p + 1, e);
                continue;
            }
            return p < e && *p == close ? p + 1 : NULL;
        }
    }
    default:
        return skip_number(p, e);
    }
}

bool bff_json_valid(const char *text, size_t len)
{
    const char *e = text + len, *p = skip_value(skip_ws(text, e), e, 0);
    return p && skip_ws(p, e) == e;
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

/* The view's environment: [1] the body string, [2] the cache of children, [3] the materialized table. */
static void push_env_field(lua_State *L, int idx, int field)
{
    lua_getfenv(L, idx);
    lua_rawgeti(L, -1, field);
    lua_remove(L, -2);
}

/* Pushes a view over [p, p+len) of the body held by the view at `parent` (or the string at `body`). */
static void push_view(lua_State *L, int body_idx, const char *p, size_t len)
{
    body_idx = body_idx < 0 ? lua_gettop(L) + body_idx + 1 : body_idx;
    view_t *v = lua_newuserdata(L, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->p = p;
    v->len = len;
    v->count = -1;
    lua_pushlightuserdata(L, &view_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, body_idx);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, -2);
}

/* Pushes the Lua value of the JSON value at [p, end): scalars decoded, containers as views. */
static void push_value(lua_State *L, int view_idx, const char *p, const char *end)
{
    char err[64];
    if (*p == '{' || *p == '[') {
        push_env_field(L, view_idx, 1); /* the body string */
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

/* Array views: the offsets of every element, built once. */
static void index_array(view_t *v)
{
    if (v->offs)
        return;
    size_t cap = 8, n = 0;
    v->offs = mp_xmalloc(cap * sizeof(*v->offs));
    const char *e = v->p + v->len, *p = skip_ws(v->p + 1, e);
    while (p < e && *p != ']') {
        if (n == cap)
            v->offs = mp_xrealloc(v->offs, (cap *= 2) * sizeof(*v->offs));
        v->offs[n++] = (uint32_t)(p - v->p);
        p = skip_ws(skip_value(p, e, 0), e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
    }
    v->count = (int32_t)n;
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
        index_array(v);
        lua_Number d = lua_tonumber(L, 2);
        int64_t i = (int64_t)d;
        if ((lua_Number)i != d || i < 1 || i > v->count)
            return 0;
        hit = v->p + v->offs[i - 1];
        hit_end = skip_value(hit, e, 0);
    } else {
        if (lua_type(L, 2) != LUA_TSTRING)
            return 0;
        size_t klen;
        const char *key = lua_tolstring(L, 2, &klen);
        const char *p = skip_ws(v->p + 1, e);
        while (p < e && *p == '"') {
            const char *kend = skip_string(p, e);
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
            const char *vend = skip_value(p, e, 0);
            if (same) {
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
    if (*v->p == '[') {
        index_array(v);
        return v->count;
    }
    int32_t n = 0;
    const char *e = v->p + v->len, *p = skip_ws(v->p + 1, e);
    while (p < e && *p == '"') {
        p = skip_ws(skip_ws(skip_string(p, e), e) + 1, e);
        p = skip_ws(skip_value(p, e, 0), e);
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

static int l_gc(lua_State *L)
{
    view_t *v = lua_touserdata(L, 1);
    free(v->offs);
    v->offs = NULL;
    return 0;
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
        const char *end = skip_value(p, e, 0);
        lua_pushinteger(L, index + 1);
        push_value(L, self, p, end);
        p = end;
    } else {
        const char *kend = skip_string(p, e);
        char err[8];
        if (!bff_json_decode(L, p, (size_t)(kend - p), err, sizeof(err)))
            return 0;
        p = skip_ws(skip_ws(kend, e) + 1, e);
        const char *end = skip_value(p, e, 0);
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

/* Makes a view of a validated reply body (object or array) or decodes a scalar; pushes it. */
void bff_view_push_reply(lua_State *L, const char *body, size_t len)
{
    const char *e = body + len, *p = body;
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p < e && (*p == '{' || *p == '[')) {
        lua_pushlstring(L, body, len); /* the view's own copy: it may outlive the request */
        size_t n;
        const char *copy = lua_tolstring(L, -1, &n);
        const char *cp = copy + (p - body), *ce = copy + len;
        while (ce > cp && (ce[-1] == ' ' || ce[-1] == '\n' || ce[-1] == '\r' || ce[-1] == '\t'))
            ce--;
        push_view(L, -1, cp, (size_t)(ce - cp));
        lua_remove(L, -2);
        return;
    }
    char err[64];
    if (!bff_json_decode(L, body, len, err, sizeof(err)))
        lua_pushnil(L);
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
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
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
