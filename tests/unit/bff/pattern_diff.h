/*
 * pattern_diff.h: what test_lua_pattern.c and fuzz_bff_pattern.c share to
 * hold bff/pattern.c to LuaJIT's own string functions: a Lua state with
 * either set of functions and a `run(s, p, init)` that calls every one of
 * them and renders each answer (errors as "error") into one string, so two
 * states' answers compare with strcmp.
 */
#ifndef MP_TEST_PATTERN_DIFF_H
#define MP_TEST_PATTERN_DIFF_H

#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "bff/bff_int.h"

static const char *const pattern_diff_runner =
    "local function pack(ok, ...)\n"
    "  if not ok then return 'error' end\n"
    "  local t = {}\n"
    "  for i = 1, select('#', ...) do local v = select(i, ...); t[#t + 1] = type(v) .. ':' .. tostring(v) end\n"
    "  return table.concat(t, '|')\n"
    "end\n"
    "function run(s, p, init)\n"
    "  local out = {}\n"
    "  out[1] = pack(pcall(string.find, s, p, init))\n"
    "  out[2] = pack(pcall(string.match, s, p, init))\n"
    "  out[3] = pack(pcall(function()\n"
    "    local r = {}\n"
    "    for a, b in string.gmatch(s, p) do\n"
    "      r[#r + 1] = tostring(a) .. ',' .. tostring(b)\n"
    "      if #r > 40 then break end\n"
    "    end\n"
    "    return table.concat(r, ';')\n"
    "  end))\n"
    "  out[4] = pack(pcall(string.gsub, s, p, '<%0>'))\n"
    "  out[5] = pack(pcall(string.gsub, s, p, function(a, b) return b and (a .. '=' .. tostring(b)) or nil end, 3))\n"
    "  out[6] = pack(pcall(string.gsub, s, p, {a = 'T', [''] = false}))\n"
    "  out[7] = pack(pcall(string.gsub, s, p, '[%1]'))\n"
    "  out[8] = pack(pcall(string.find, s, p, init, true))\n"
    "  out[9] = pack(pcall(function() return s:match(p) end))\n"
    "  return table.concat(out, '\\n')\n"
    "end\n";

/* A state with LuaJIT's functions (ours == 0) or bff/pattern.c's; NULL if the runner does not load. */
static lua_State *pattern_diff_state(int ours)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (ours)
        bff_pattern_install(L);
    if (luaL_dostring(L, pattern_diff_runner) != 0) {
        lua_close(L);
        return NULL;
    }
    return L;
}

/* run(s, p, init) in L: the rendered answers (malloc'd), or NULL if the runner itself failed. */
static char *pattern_diff_run(lua_State *L, const char *s, size_t ls, const char *p, size_t lp, int init)
{
    lua_getglobal(L, "run");
    lua_pushlstring(L, s, ls);
    lua_pushlstring(L, p, lp);
    lua_pushinteger(L, init);
    if (lua_pcall(L, 3, 1, 0) != 0) {
        lua_pop(L, 1);
        return NULL;
    }
    char *out = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
}

#endif
