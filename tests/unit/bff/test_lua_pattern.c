/*
 * test_lua_pattern.c: bff/pattern.c's string.find/match/gmatch/gsub against
 * LuaJIT's own, on thousands of generated patterns and subjects: the
 * replacements charge the CPU budget and must not change a single answer.
 * Plus the cases a generator rarely hits (captures, %b, %f, back-references,
 * replacement strings) and a bounded recursion depth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "unit/bff/pattern_diff.h"

static lua_State *theirs, *ours;

static int setup(void **st)
{
    theirs = pattern_diff_state(0);
    ours = pattern_diff_state(1);
    assert_non_null(theirs);
    assert_non_null(ours);
    return 0;
}

static int teardown(void **st)
{
    lua_close(theirs);
    lua_close(ours);
    return 0;
}

static void same(const char *s, size_t ls, const char *p, int init)
{
    char *a = pattern_diff_run(theirs, s, ls, p, strlen(p), init),
         *b = pattern_diff_run(ours, s, ls, p, strlen(p), init);
    assert_non_null(a);
    assert_non_null(b);
    if (strcmp(a, b) != 0)
        fail_msg("subject \"%.*s\", pattern \"%s\", init %d:\nLuaJIT:\n%s\nours:\n%s", (int)ls, s, p, init, a, b);
    free(a);
    free(b);
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) % n;
}

static void test_generated_patterns_answer_as_luajit(void **st)
{
    static const char *const atoms[] = {"a",     "b",     ".",      "%a",     "%d", "%s", "%w", "%A", "[ab]", "[^a]",
                                        "[a-c]", "[%d_]", "%(",     "%%",     "%.", "x",  " ",  "1",  "[]]",  "[^]a]",
                                        "%S",    "%b()",  "%f[%w]", "%f[%W]", "%1", "%l", "%u", "%g", "%G"};
    static const char *const quant[] = {"", "", "", "*", "+", "-", "?"};
    static const char subj_chars[] = "ab(x) 1_.A]%\n";
    char p[128], s[64];
    for (int n = 0; n < 20000; n++) {
        size_t lp = 0;
        int open = 0;
        if (rnd(5) == 0)
            p[lp++] = '^';
        for (int items = 1 + (int)rnd(6); items > 0 && lp < 100; items--) {
            uint32_t k = rnd(10);
            if (k == 0 && open < 3) {
                lp += (size_t)snprintf(p + lp, sizeof(p) - lp, rnd(4) ? "(" : "()");
                open += p[lp - 1] == '(';
            } else if (k == 1 && open > 0) {
                p[lp++] = ')';
                open--;
            } else {
                const char *a = atoms[rnd(sizeof(atoms) / sizeof(atoms[0]))];
                const char *q = a[0] == '%' && (a[1] == 'b' || a[1] == 'f' || a[1] == '1') ? "" : quant[rnd(7)];
                lp += (size_t)snprintf(p + lp, sizeof(p) - lp, "%s%s", a, q);
            }
        }
        while (open > 0 && rnd(3)) {
            p[lp++] = ')';
            open--;
        }
        if (rnd(6) == 0)
            p[lp++] = '$';
        p[lp] = '\0';
        size_t ls = rnd(24);
        for (size_t i = 0; i < ls; i++)
            s[i] = subj_chars[rnd(sizeof(subj_chars) - 1)];
        int init = rnd(4) == 0 ? (int)rnd(30) - 10 : 1;
        same(s, ls, p, init);
    }
}

static void test_the_corners(void **st)
{
    static const struct {
        const char *s, *p;
    } cases[] = {
        {"hello world from Lua", "(%w+) (%w+)"},
        {"key = value", "(%w+)%s*=%s*(%w+)"},
        {"THE (quick) fox", "%((%a+)%)"},
        {"f(a(b)c)d", "%b()"},
        {"THE (quick) fox", "%f[%a]%a+"},
        {"abcabc", "(abc)%1"},
        {"  trim me  ", "^%s*(.-)%s*$"},
        {"2026-11-24", "(%d+)-(%d+)-(%d+)"},
        {"abc", "()b()"},
        {"abc", ""},
        {"", ""},
        {"", "a*"},
        {"aaa", "a-b"},
        {"a.b", "a.b"},
        {"a+b", "a+b"},
        {"x$y", "x$y"},
        {"[x]", "[[]x[]]"},
        {"a%", "a%"},
        {"abc", "[a"},
        {"abc", "(a"},
        {"abc", "a)"},
        {"abc", "%b"},
        {"abc", "%f"},
        {"abc", "%2"},
        {"abc", "%0"},
        {"nul\0byte", "%z"},
        {"caf\xc3\xa9", "[\x80-\xff]+"},
        {"one two  three", "%s+"},
        {"a,b,,c", "([^,]*)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int init = -3; init <= 4; init++)
            same(cases[i].s, strlen(cases[i].s) + (strstr(cases[i].s, "nul") ? 5 : 0), cases[i].p, init);
}

static void test_replacement_strings_and_values(void **st)
{
    static const char *const chunks[] = {
        "return (string.gsub('hello world', '(o)', '[%1%1]'))",
        "return (string.gsub('hello', 'l', '%%'))",
        "return (string.gsub('hello', 'l', '%x'))",
        "return (string.gsub('hello', '', '-'))",
        "return (string.gsub('abc', '%w', '%0%0'))",
        "return (string.gsub('abc', '%w', '%2'))",
        "return (string.gsub('abc', '%w', '%'))",
        "return (string.gsub('abc', '%w', {}))",
        "return (string.gsub('abc', '%w', {a = 1, b = true}))",
        "return (string.gsub('abc', '%w', function() return {} end))",
        "return (string.gsub('abc', '%w', 7))",
        "return (string.gsub('abc', '%w', nil))",
        "return select(2, string.gsub('aaa', 'a', 'b', 2))",
        "return (string.gsub('aaa', '^a', 'b'))",
        "local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t+1] = k .. v end "
        "return table.concat(t)",
        "local t = {} for w in string.gmatch('^a^a', '^a') do t[#t+1] = w end return #t",
        "local t = {} for p in string.gmatch('abc', '()') do t[#t+1] = p end return table.concat(t, ',')",
        "return string.find('abc', 'b', 10)",
        "return string.find('abc', '', 4)",
        "return string.find('abc', '', 5)",
        "return string.match('abc', '.', -1)",
        "return string.find('a.c', '.', 1, true)",
        "return string.find('a\\0c', '\\0')",
        "return (('x'):rep(3):gsub('x', 'y'))",
        "return string.find('a\\0bx', '\\0.')",
        "return string.find('a\\0bx', '\\0b')",
        "return string.find('a\\0bx', 'b\\0')",
        "return string.match('a\\0bx', 'b\\0.')",
        "return string.gsub('a\\0b', '\\0', 'z')",
        "return string.gsub('a\\0b', 'a\\0', 'z')",
        "local n = 0 for w in string.gmatch('a\\0a', 'a\\0x') do n = n + 1 end return n",
    };
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        char a[512], b[512];
        lua_State *both[2] = {theirs, ours};
        char *outs[2] = {a, b};
        for (int k = 0; k < 2; k++) {
            lua_State *L = both[k];
            int top = lua_gettop(L);
            int ok = luaL_loadstring(L, chunks[i]) == 0 && lua_pcall(L, 0, LUA_MULTRET, 0) == 0;
            size_t n = 0;
            n += (size_t)snprintf(outs[k] + n, 512 - n, "%s", ok ? "ok" : "error");
            for (int j = top + 1; ok && j <= lua_gettop(L); j++)
                n += (size_t)snprintf(outs[k] + n, 512 - n, "|%s:%s", luaL_typename(L, j),
                                      lua_isstring(L, j) ? lua_tostring(L, j) : "");
            lua_settop(L, top);
        }
        if (strcmp(a, b) != 0)
            fail_msg("%s\nLuaJIT: %s\nours:   %s", chunks[i], a, b);
    }
}

/* LuaJIT recurses without a limit; ours stops at a depth a loop thread's stack holds, with an error. */
static void test_deep_patterns_are_an_error_not_a_crash(void **st)
{
    luaL_Buffer b;
    luaL_buffinit(ours, &b);
    for (int i = 0; i < 5000; i++)
        luaL_addstring(&b, "a?");
    luaL_pushresult(&b);
    lua_setglobal(ours, "deep");
    assert_int_equal(luaL_dostring(ours, "return pcall(string.find, ('a'):rep(5000), deep)"), 0);
    assert_false(lua_toboolean(ours, -2));
    assert_non_null(strstr(lua_tostring(ours, -1), "pattern too complex"));
    lua_settop(ours, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_patterns_answer_as_luajit),
        cmocka_unit_test(test_the_corners),
        cmocka_unit_test(test_replacement_strings_and_values),
        cmocka_unit_test(test_deep_patterns_are_an_error_not_a_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
