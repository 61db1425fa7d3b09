/*
 * fuzz_bff_json.c: libFuzzer target for the BFF engine's JSON codec
 * (bff/json.c) and its lazy reply views (bff/view.c).
 *
 * One LuaJIT state, built once with the view metatable and bff.json, serves
 * every input. Properties, each an abort when broken:
 *   - bff_json_valid() accepts exactly what bff_json_decode() accepts (one
 *     grammar: RFC 8259, nesting at most 64, strings valid UTF-8, no \u0000);
 *   - a decoded value encodes, the encoding is valid and decodes again to an
 *     equal value (null members dropped, empty objects marked), which encodes
 *     to text of the same length (member order may differ), and every
 *     container keeps its kind (an object stays an object);
 *   - an object or array top-level pushed as a view walks like the decoded
 *     value (view-aware pairs as the sandbox does it, v[k], v[i], #v, a few
 *     levels down), encodes to its own bytes, and once materialized by
 *     `v.__fuzz = 1` encodes to the decoded value plus that field.
 * Members whose name occurs twice in one object are left out of the
 * view/decode comparison: RFC 8259 leaves their meaning open (the view reads
 * the first, the decoder keeps the last). Seeds: tests/fuzz/corpus/bff_json/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include "mp/buf.h"
#include "bff_int.h"

/* Receives the `core` table (is_view, view_pairs, json.*) and returns {walk, equal}. */
static const char helpers_lua[] =
    "local core = ...\n"
    "local is_view, view_pairs, encode = core.is_view, core.view_pairs, core.json.encode\n"
    "local function vpairs(t)\n" /* the sandbox's view-aware pairs (scripts/lua/prelude/sandbox.lua) */
    "  if type(t) == 'userdata' and is_view(t) then\n"
    "    local it = view_pairs(t)\n"
    "    if type(it) == 'table' then return pairs(it) end\n"
    "    return it, t, nil\n"
    "  end\n"
    "  return pairs(t)\n"
    "end\n"
    "local function equal(a, b, skip_mt)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  if not skip_mt and getmetatable(a) ~= getmetatable(b) then return false end\n"
    "  for k, x in pairs(a) do if not equal(x, rawget(b, k)) then return false end end\n"
    "  for k in pairs(b) do if rawget(a, k) == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "local walk\n"
    "local function check(x, y, depth, where)\n" /* x read from a view, y the decoder's value */
    "  if type(x) == 'userdata' then\n"
    "    if not is_view(x) or type(y) ~= 'table' then error(where .. ': a view where the decoder has a ' .. type(y)) "
    "end\n"
    "    local raw, enc = encode(x), encode(y)\n"
    "    if raw:sub(1, 1) ~= enc:sub(1, 1) then error(where .. ': ' .. raw:sub(1, 1) .. ' re-encodes as ' .. enc) end\n"
    "    if depth < 4 then walk(x, y, depth + 1, where) end\n"
    "  elseif type(x) == 'table' then error(where .. ': a table read from an unmaterialized view')\n"
    "  elseif x ~= y then error(where .. ': view has ' .. tostring(x) .. ', decoder ' .. tostring(y)) end\n"
    "end\n"
    "walk = function(v, d, depth, where)\n"
    "  local n, i, seen, dup, array = #v, 0, {}, {}, false\n"
    "  for k, x in vpairs(v) do\n"
    "    i = i + 1\n"
    "    if type(k) == 'number' then\n"
    "      array = true\n"
    "      if k ~= i then error(where .. ': element ' .. k .. ' came ' .. i .. 'th') end\n"
    "      check(x, d[k], depth, where .. '[' .. k .. ']')\n"
    "      check(v[k], d[k], depth, where .. '[' .. k .. ']')\n"
    "    elseif type(k) ~= 'string' then error(where .. ': a ' .. type(k) .. ' key')\n"
    "    elseif x == nil then error(where .. '.' .. k .. ': pairs yielded a null member')\n"
    "    else\n"
    "      if seen[k] ~= nil then dup[k] = true end\n"
    "      seen[k] = x\n"
    "    end\n"
    "  end\n"
    "  if array or n > 0 then\n"
    "    if n ~= i then error(where .. ': #v is ' .. n .. ' but pairs gave ' .. i) end\n"
    "    if v[0] ~= nil or v[n + 1] ~= nil or v.x ~= nil then error(where .. ': read past the array') end\n"
    "    return\n"
    "  end\n"
    "  for k, x in pairs(seen) do\n"
    "    if not dup[k] then\n"
    "      check(x, d[k], depth, where .. '.' .. k)\n"
    "      check(v[k], d[k], depth, where .. '.' .. k)\n"
    "    end\n"
    "  end\n"
    "  for k in pairs(d) do\n"
    "    if seen[k] == nil and not dup[k] then error(where .. '.' .. tostring(k) .. ': decoded but not in the view') "
    "end\n"
    "  end\n"
    "  if v[1] ~= nil or v['\\0absent'] ~= nil then error(where .. ': an absent member is not nil') end\n"
    "end\n"
    "return { walk = function(v, d) walk(v, d, 0, '$') end, equal = equal }\n";

static lua_State *L;
static int walk_ref, equal_ref;

static void die(const char *what, const char *detail, size_t size)
{
    fprintf(stderr, "fuzz_bff_json: %s%s%s (input %zu bytes)\n", what, detail ? ": " : "", detail ? detail : "", size);
    abort();
}

static void setup(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    /* as bff/vm.c runs scripts (and compiled traces would keep views alive past the collection below) */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_newtable(L); /* core */
    bff_json_inject(L);
    bff_view_inject(L);
    if (luaL_loadbuffer(L, helpers_lua, sizeof(helpers_lua) - 1, "=fuzz_helpers") != 0)
        die("helpers do not compile", lua_tostring(L, -1), 0);
    lua_insert(L, -2); /* chunk core */
    if (lua_pcall(L, 1, 1, 0) != 0)
        die("helpers do not load", lua_tostring(L, -1), 0);
    lua_getfield(L, -1, "walk");
    walk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "equal");
    equal_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
}

/* Calls a helper with the values at `a` and `b` (absolute indexes, third argument `flag`); returns its result. */
static bool call(int ref, int a, int b, bool flag, size_t size)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_pushboolean(L, flag);
    if (lua_pcall(L, 3, 1, 0) != 0)
        die("a view property failed", lua_tostring(L, -1), size);
    bool yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* Encodes the value at `idx` into `out` (reset first); dies when it cannot. */
static void encode(mp_buf_t *out, int idx, const char *what, size_t size)
{
    char err[200];
    mp_buf_reset(out);
    if (!bff_json_encode(L, idx, out, err, sizeof(err)))
        die(what, err, size);
    if (out->base == NULL || !bff_json_valid(out->base, out->len))
        die(what, "the encoding is not valid JSON", size);
}

/* Decodes `len` bytes the codec produced itself; dies when they do not decode. Pushes the value, returns its index. */
static int decode(const char *text, size_t len, const char *what, size_t size)
{
    char err[200];
    if (!bff_json_decode(L, text, len, err, sizeof(err))) {
        fprintf(stderr, "%.*s\n", (int)(len > 400 ? 400 : len), text);
        die(what, err, size);
    }
    return lua_gettop(L);
}

static void check_view(const char *text, size_t size, int decoded)
{
    const char *p = text, *e = text + size, *raw;
    size_t rawlen;
    mp_buf_t out = MP_BUF_INIT;

    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    bool object = *p == '{';
    if (!bff_view_push_reply(L, text, size))
        die("a valid value was refused as a reply", NULL, size);
    int v = lua_gettop(L);
    if (!bff_is_view(L, v) || bff_view_kind(L, v, &raw, &rawlen) != 1)
        die("an object or array did not become a view", NULL, size);
    if (rawlen != (size_t)(e - p) || memcmp(raw, p, rawlen) != 0)
        die("a view does not hold the value's bytes", NULL, size);

    call(walk_ref, v, decoded, false, size);

    /* passed on unchanged, a view is its bytes */
    encode(&out, v, "a view does not encode", size);
    if (out.len != rawlen || memcmp(out.base, raw, rawlen) != 0)
        die("a view encodes to other bytes than its own", NULL, size);
    if (!call(equal_ref, decode(out.base, out.len, "a view's encoding does not decode", size), decoded, false, size))
        die("a view's encoding decodes to another value", NULL, size);

    if (object) {
        /* the first write materializes the view into a table */
        lua_pushinteger(L, 1);
        lua_setfield(L, v, "__fuzz");
        if (bff_view_kind(L, v, &raw, &rawlen) != 2)
            die("a written view is not materialized", NULL, size);
        lua_pop(L, 1);
        encode(&out, v, "a materialized view does not encode", size);
        int again = decode(out.base, out.len, "a materialized view's encoding does not decode", size);
        lua_getfield(L, again, "__fuzz");
        if (lua_tointeger(L, -1) != 1)
            die("a materialized view lost the written field", NULL, size);
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_setfield(L, again, "__fuzz");
        /* the metatable marks empty objects only: writing a field may have changed emptiness */
        if (!call(equal_ref, again, decoded, true, size))
            die("a materialized view encodes to another value", NULL, size);
    }
    mp_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[200];
    mp_buf_t first = MP_BUF_INIT, second = MP_BUF_INIT;

    if (L == NULL)
        setup();
    bool valid = bff_json_valid(text, size);
    bool decoded = bff_json_decode(L, text, size, err, sizeof(err));
    if (valid != decoded)
        die(valid ? "bff_json_valid accepts what bff_json_decode refuses"
                  : "bff_json_decode accepts what bff_json_valid refuses",
            decoded ? NULL : err, size);
    if (!decoded)
        goto done;
    int d1 = lua_gettop(L);

    encode(&first, d1, "a decoded value does not encode", size);
    int d2 = decode(first.base, first.len, "the encoding of a decoded value does not decode", size);
    encode(&second, d2, "a re-decoded value does not encode", size);
    if (first.len != second.len || !call(equal_ref, d1, d2, false, size)) {
        fprintf(stderr, "first: %.*s\nsecond: %.*s\n", (int)first.len, first.base, (int)second.len, second.base);
        die("the round trip is not stable", NULL, size);
    }
    if (lua_type(L, d1) == LUA_TTABLE) {
        const char *p = text;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (first.base[0] != *p)
            die("the top-level container changed kind", first.base, size);
        check_view(text, size, d1);
    }

done:
    mp_buf_dispose(&first);
    mp_buf_dispose(&second);
    lua_settop(L, 0);
    /* views free their array index in __gc: collect now, or LeakSanitizer (which cannot see into LuaJIT's own
     * mmap'd heap) reports the index of every view still waiting for the collector */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
