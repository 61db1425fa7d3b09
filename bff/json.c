/*
 * json.c: JSON to Lua values and back, directly (no intermediate tree), for
 * service replies, request bodies and responses.
 *
 * Conventions a script author can rely on (docs/bff-guide.md):
 *   - objects become tables with string keys, arrays tables 1..n;
 *   - null becomes nil (so `if x.avatar then` works); bff.json.null writes
 *     an explicit null;
 *   - an empty table encodes as [] (BFF responses mostly hold lists); an
 *     empty object decoded from JSON remembers it was an object, and
 *     bff.json.object() makes a new one;
 *   - numbers are doubles: integers up to 2^53 print without a fraction.
 * Nesting is limited to 64 levels both ways, which also stops cycles.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bff_int.h"

#define MAX_DEPTH 64

static char obj_mt_key; /* registry key of the "this is an object" metatable */
static char null_key;   /* address used as the json.null sentinel */

/* ---- decoding ---------------------------------------------------------------- */

typedef struct dec {
    lua_State *L;
    const char *p, *end, *start;
    char *err;
    size_t errsize;
    mp_buf_t tmp;
} dec_t;

static bool fail(dec_t *d, const char *what)
{
    snprintf(d->err, d->errsize, "%s at byte %ld", what, (long)(d->p - d->start));
    return false;
}

static void skip_ws(dec_t *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void put_utf8(mp_buf_t *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    mp_buf_append(b, u, n);
}

/* Length of a valid UTF-8 sequence at p, or 0. */
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

static bool dec_string(dec_t *d)
{
    const char *s = ++d->p; /* after the quote */
    /* fast path: no escapes */
    while (d->p < d->end && *d->p != '"' && *d->p != '\\' && (unsigned char)*d->p >= 0x20) {
        if ((unsigned char)*d->p < 0x80) {
            d->p++;
        } else {
            size_t n = utf8_len((const unsigned char *)d->p, (size_t)(d->end - d->p));
            if (n == 0)
                return fail(d, "invalid UTF-8 in a string");
            d->p += n;
        }
    }
    if (d->p < d->end && *d->p == '"') {
        lua_pushlstring(d->L, s, (size_t)(d->p - s));
        d->p++;
        return true;
    }
    mp_buf_reset(&d->tmp);
    mp_buf_append(&d->tmp, s, (size_t)(d->p - s));
    while (d->p < d->end && *d->p != '"') {
        unsigned char c = (unsigned char)*d->p;
        if (c < 0x20)
            return fail(d, "control character in a string");
        if (c != '\\') {
            size_t n = c < 0x80 ? 1 : utf8_len((const unsigned char *)d->p, (size_t)(d->end - d->p));
            if (n == 0)
                return fail(d, "invalid UTF-8 in a string");
            mp_buf_append(&d->tmp, d->p, n);
            d->p += n;
            continue;
        }
        if (++d->p >= d->end)
            break;
        char e = *d->p++;
        const char *map = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = strchr(map, e);
        if (e != '\0' && hit) {
            mp_buf_append(&d->tmp, to + (hit - map), 1);
        } else if (e == 'u') {
            int cp = d->end - d->p >= 4 ? hex4(d->p) : -1;
            if (cp < 0)
                return fail(d, "bad \\u escape");
            d->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int lo = d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u' ? hex4(d->p + 2) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(d, "unpaired surrogate");
                d->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return fail(d, "unpaired surrogate");
            }
            if (cp == 0)
                return fail(d, "NUL in a string");
            put_utf8(&d->tmp, (unsigned)cp);
        } else {
            return fail(d, "bad escape");
        }
    }
    if (d->p >= d->end)
        return fail(d, "unterminated string");
    d->p++;
    lua_pushlstring(d->L, d->tmp.base, d->tmp.len);
    return true;
}

static bool dec_number(dec_t *d)
{
    const char *s = d->p;
    if (*d->p == '-')
        d->p++;
    if (d->p >= d->end || *d->p < '0' || *d->p > '9')
        return fail(d, "bad number");
    if (*d->p == '0' && d->p + 1 < d->end && d->p[1] >= '0' && d->p[1] <= '9')
        return fail(d, "leading zero in a number");
    while (d->p < d->end && ((*d->p >= '0' && *d->p <= '9') || *d->p == '.' || *d->p == 'e' || *d->p == 'E' ||
                             *d->p == '+' || *d->p == '-'))
        d->p++;
    char buf[64];
    size_t n = (size_t)(d->p - s);
    if (n >= sizeof(buf))
        return fail(d, "number too long");
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v))
        return fail(d, "bad number");
    lua_pushnumber(d->L, v);
    return true;
}

static bool dec_value(dec_t *d, int depth);

static bool dec_container(dec_t *d, int depth, bool object)
{
    if (depth >= MAX_DEPTH)
        return fail(d, "nested deeper than 64 levels");
    if (!lua_checkstack(d->L, 4))
        return fail(d, "out of stack");
    d->p++;
    lua_newtable(d->L);
    skip_ws(d);
    int n = 0;
    if (d->p < d->end && *d->p == (object ? '}' : ']')) {
        d->p++;
        if (object) {
            lua_pushlightuserdata(d->L, &obj_mt_key);
            lua_rawget(d->L, LUA_REGISTRYINDEX);
            lua_setmetatable(d->L, -2);
        }
        return true;
    }
    for (;;) {
        skip_ws(d);
        if (object) {
            if (d->p >= d->end || *d->p != '"' || !dec_string(d))
                return d->err[0] ? false : fail(d, "expected a string key");
            skip_ws(d);
            if (d->p >= d->end || *d->p++ != ':')
                return fail(d, "expected ':'");
        }
        if (!dec_value(d, depth + 1))
            return false;
        if (object) {
            if (lua_isnil(d->L, -1))
                lua_pop(d->L, 2); /* null member: absent */
            else
                lua_rawset(d->L, -3);
        } else {
            lua_rawseti(d->L, -2, ++n); /* a null element leaves a hole; #t stops there */
        }
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == (object ? '}' : ']')) {
            d->p++;
            return true;
        }
        return fail(d, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool dec_value(dec_t *d, int depth)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, "unexpected end");
    switch (*d->p) {
    case '{':
        return dec_container(d, depth, true);
    case '[':
        return dec_container(d, depth, false);
    case '"':
        return dec_string(d);
    case 't':
        if (d->end - d->p >= 4 && memcmp(d->p, "true", 4) == 0) {
            d->p += 4;
            lua_pushboolean(d->L, 1);
            return true;
        }
        break;
    case 'f':
        if (d->end - d->p >= 5 && memcmp(d->p, "false", 5) == 0) {
            d->p += 5;
            lua_pushboolean(d->L, 0);
            return true;
        }
        break;
    case 'n':
        if (d->end - d->p >= 4 && memcmp(d->p, "null", 4) == 0) {
            d->p += 4;
            lua_pushnil(d->L);
            return true;
        }
        break;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            return dec_number(d);
    }
    return fail(d, "unexpected character");
}

bool bff_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t errsize)
{
    dec_t d = {L, text, text + len, text, err, errsize, MP_BUF_INIT};
    int top = lua_gettop(L);
    err[0] = '\0';
    bool ok = dec_value(&d, 0);
    if (ok) {
        skip_ws(&d);
        if (d.p != d.end)
            ok = fail(&d, "trailing characters");
    }
    mp_buf_dispose(&d.tmp);
    if (!ok)
        lua_settop(L, top); /* drop partial values; the caller gets nothing on error */
    return ok;
}

/* ---- encoding ----------------------------------------------------------------- */

typedef struct enc {
    lua_State *L;
    mp_buf_t *out;
    char *err;
    size_t errsize;
} enc_t;

static bool efail(enc_t *e, const char *fmt, const char *arg)
{
    snprintf(e->err, e->errsize, fmt, arg);
    return false;
}

static void enc_string(enc_t *e, int idx)
{
    size_t n;
    const char *s = lua_tolstring(e->L, idx, &n);
    mp_buf_puts(e->out, "\"");
    mp_buf_json_escape(e->out, s, n);
    mp_buf_puts(e->out, "\"");
}

static bool enc_number(enc_t *e, double v)
{
    if (!isfinite(v))
        return efail(e, "cannot encode %s as JSON", "NaN or infinity");
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        /* integers are most numbers in a response: format them without printf */
        char tmp[24], *q = tmp + sizeof(tmp);
        long long x = (long long)v;
        unsigned long long u = x < 0 ? (unsigned long long)-x : (unsigned long long)x;
        do
            *--q = (char)('0' + u % 10);
        while ((u /= 10) != 0);
        if (x < 0)
            *--q = '-';
        mp_buf_append(e->out, q, (size_t)(tmp + sizeof(tmp) - q));
    } else {
        mp_buf_printf(e->out, "%.17g", v);
    }
    return true;
}

static bool enc_value(enc_t *e, int idx, int depth);

/* An array when the keys are exactly 1..n; n is returned, -1 for an object. */
static long array_length(enc_t *e, int idx)
{
    lua_State *L = e->L;
    long n = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        double k = lua_tonumber(L, -1);
        if (k < 1 || k != floor(k)) {
            lua_pop(L, 1);
            return -1;
        }
        n++;
        if (k > max)
            max = (long)k;
    }
    return n == max ? n : -1;
}

static bool is_object_marked(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_pushlightuserdata(L, &obj_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static bool enc_table(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth >= MAX_DEPTH)
        return efail(e, "%s", "table nested deeper than 64 levels (a cycle?)");
    if (!lua_checkstack(L, 6))
        return efail(e, "%s", "out of stack");
    long n = is_object_marked(L, idx) ? -1 : array_length(e, idx);
    if (n >= 0) {
        mp_buf_puts(e->out, "[");
        for (long i = 1; i <= n; i++) {
            if (i > 1)
                mp_buf_puts(e->out, ",");
            lua_rawgeti(L, idx, (int)i);
            bool ok = enc_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (!ok)
                return false;
        }
        mp_buf_puts(e->out, "]");
        return true;
    }
    mp_buf_puts(e->out, "{");
    bool first = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return efail(e, "%s", "a table mixes list items and named fields, or has non-string keys");
        }
        if (!first)
            mp_buf_puts(e->out, ",");
        first = false;
        enc_string(e, lua_gettop(L) - 1);
        mp_buf_puts(e->out, ":");
        if (!enc_value(e, lua_gettop(L), depth + 1)) {
            lua_pop(L, 2);
            return false;
        }
        lua_pop(L, 1);
    }
    mp_buf_puts(e->out, "}");
    return true;
}

static bool enc_value(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        mp_buf_puts(e->out, "null");
        return true;
    case LUA_TBOOLEAN:
        mp_buf_puts(e->out, lua_toboolean(L, idx) ? "true" : "false");
        return true;
    case LUA_TNUMBER:
        return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING:
        enc_string(e, idx);
        return true;
    case LUA_TTABLE:
        return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_key) {
            mp_buf_puts(e->out, "null");
            return true;
        }
        return efail(e, "cannot encode %s as JSON", "a pointer");
    case LUA_TUSERDATA: {
        const char *raw;
        size_t rlen;
        switch (bff_view_kind(L, idx, &raw, &rlen)) {
        case 1: /* a reply or part of one the script passes on unchanged: its bytes, as they came */
            mp_buf_append(e->out, raw, rlen);
            return true;
        case 2: {
            bool ok = enc_table(e, lua_gettop(L), depth);
            lua_pop(L, 1);
            return ok;
        }
        default:
            return efail(e, "cannot encode %s as JSON (did you forget :wait() on a call?)", "a call");
        }
    }
    default:
        return efail(e, "cannot encode a %s as JSON", lua_typename(L, lua_type(L, idx)));
    }
}

bool bff_json_encode(lua_State *L, int idx, mp_buf_t *out, char *err, size_t errsize)
{
    enc_t e = {L, out, err, errsize};
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    err[0] = '\0';
    return enc_value(&e, idx, 0);
}

/* ---- the script API: bff.json ---------------------------------------------------- */

static int l_encode(lua_State *L)
{
    mp_buf_t b = MP_BUF_INIT;
    char err[200];
    luaL_checkany(L, 1);
    if (!bff_json_encode(L, 1, &b, err, sizeof(err))) {
        mp_buf_dispose(&b);
        return luaL_error(L, "bff.json.encode: %s", err);
    }
    lua_pushlstring(L, b.base ? b.base : "", b.len);
    mp_buf_dispose(&b);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[200];
    if (!bff_json_decode(L, s, n, err, sizeof(err))) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static int l_object(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE), lua_settop(L, 1);
    lua_pushlightuserdata(L, &obj_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    return 1;
}

void bff_json_inject(lua_State *L)
{
    /* the object marker metatable, locked so scripts cannot change it */
    lua_pushlightuserdata(L, &obj_mt_key);
    lua_newtable(L);
    lua_pushliteral(L, "json object");
    lua_setfield(L, -2, "__metatable");
    lua_rawset(L, LUA_REGISTRYINDEX);

    lua_newtable(L); /* bff.json */
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, l_object);
    lua_setfield(L, -2, "object");
    lua_pushlightuserdata(L, &null_key);
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "json");
}
