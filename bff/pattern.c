/*
 * pattern.c: string.find, match, gmatch and gsub with Lua patterns, charged
 * to the request's CPU budget.
 *
 * The count hook that bounds a script's CPU fires between Lua instructions,
 * and a library call runs to its end in C: LuaJIT's own matcher, given
 * ("a"):rep(1e6):find("a*b"), backtracks for minutes on the loop thread
 * while every other request on it waits. These replacements implement the
 * same pattern language (Lua 5.1's, as LuaJIT has it) and charge every
 * step of the matcher to the request (bff_vm_charge), so such a call is
 * killed like an endless loop. A plain find (no special characters, or
 * `plain`) is a linear memmem and is not charged.
 *
 * The matcher is the classic recursive backtracker: match() walks the
 * pattern and recurses only where a choice is made (a quantifier, a
 * capture), so recursion is bounded by the pattern's items; it also stops
 * at MAX_DEPTH ("pattern too complex"), as stack is not unlimited on a loop
 * thread. tests/unit/bff/test_lua_pattern.c and
 * tests/fuzz/fuzz_bff_pattern.c hold it to LuaJIT's answers.
 */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <string.h>
#include <lauxlib.h>
#include "bff_int.h"

#define MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MAX_DEPTH 200
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define CHARGE_EVERY 1000 /* steps between two calls into the budget */
#define SPECIALS "^$*+?.([%-"

typedef struct matcher {
    const char *src, *src_end, *pat_end;
    lua_State *L;
    int level, depth, steps;
    struct {
        const char *init;
        ptrdiff_t len;
    } cap[MAX_CAPTURES];
} matcher_t;

static void step(matcher_t *m)
{
    if (++m->steps == CHARGE_EVERY) {
        m->steps = 0;
        bff_vm_charge(m->L, CHARGE_EVERY);
    }
}

/* ---- character classes ---------------------------------------------------------------- */

static int class_has(int c, int cl)
{
    int yes;
    switch (tolower(cl)) {
    case 'a':
        yes = isalpha(c);
        break;
    case 'c':
        yes = iscntrl(c);
        break;
    case 'd':
        yes = isdigit(c);
        break;
    case 'g':
        yes = isgraph(c);
        break; /* LuaJIT has it, as Lua 5.2 does */
    case 'l':
        yes = islower(c);
        break;
    case 'p':
        yes = ispunct(c);
        break;
    case 's':
        yes = isspace(c);
        break;
    case 'u':
        yes = isupper(c);
        break;
    case 'w':
        yes = isalnum(c);
        break;
    case 'x':
        yes = isxdigit(c);
        break;
    case 'z':
        yes = c == 0;
        break;
    default:
        return cl == c; /* %. %% %[ ...: the character itself */
    }
    return isupper(cl) ? !yes : yes != 0;
}

/* [set] from p (its '[') to last (its ']') */
static int set_has(int c, const char *p, const char *last)
{
    int want = 1;
    if (p[1] == '^') {
        want = 0;
        p++;
    }
    while (++p < last) {
        if (*p == '%') {
            p++;
            if (class_has(c, (unsigned char)*p))
                return want;
        } else if (p[1] == '-' && p + 2 < last) {
            p += 2;
            if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p)
                return want;
        } else if ((unsigned char)*p == c)
            return want;
    }
    return !want;
}

/* The end of the single-character class starting at p. */
static const char *class_end(matcher_t *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character is in the set even when it is ']' */
            if (p >= m->pat_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            if (*p++ == '%' && p < m->pat_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static int single_has(matcher_t *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return class_has(c, (unsigned char)p[1]);
    case '[':
        return set_has(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the matcher ---------------------------------------------------------------------- */

static const char *match(matcher_t *m, const char *s, const char *p);

static const char *greedy(matcher_t *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_has(m, s + i, p, ep)) {
        step(m);
        i++;
    }
    for (; i >= 0; i--) { /* longest first, giving back one at a time */
        step(m);
        const char *res = match(m, s + i, ep + 1);
        if (res)
            return res;
    }
    return NULL;
}

static const char *lazy(matcher_t *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        step(m);
        const char *res = match(m, s, ep + 1);
        if (res)
            return res;
        if (!single_has(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher_t *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *res = match(m, s, p);
    if (res == NULL)
        m->level--;
    return res;
}

static const char *close_capture(matcher_t *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    const char *res = match(m, s, p);
    if (res == NULL)
        m->cap[l].len = CAP_UNFINISHED;
    return res;
}

/* %bxy: s at an x, up to its balancing y */
static const char *balanced(matcher_t *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    int open = 1;
    while (++s < m->src_end) {
        step(m);
        if (*s == p[1]) {
            if (--open == 0)
                return s + 1;
        } else if (*s == p[0])
            open++;
    }
    return NULL;
}

static int capture_index(matcher_t *m, int c)
{
    int l = c - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
        luaL_error(m->L, "invalid capture index");
    return l;
}

static const char *match(matcher_t *m, const char *s, const char *p)
{
    if (++m->depth > MAX_DEPTH)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        step(m);
        if (p == m->pat_end)
            break;
        if (*p == '(') {
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION) : open_capture(m, s, p + 1, CAP_UNFINISHED);
            goto done;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            goto done;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            s = s == m->src_end ? s : NULL;
            goto done;
        }
        if (*p == '%' && p[1] == 'b') {
            if ((s = balanced(m, s, p + 2)) == NULL)
                goto done;
            p += 4;
            continue;
        }
        if (*p == '%' && p[1] == 'f') {
            p += 2;
            if (*p != '[')
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(m, p);
            int prev = s == m->src ? 0 : (unsigned char)s[-1], cur = s < m->src_end ? (unsigned char)*s : 0;
            if (set_has(prev, p, ep - 1) || !set_has(cur, p, ep - 1)) {
                s = NULL;
                goto done;
            }
            p = ep;
            continue;
        }
        if (*p == '%' && isdigit((unsigned char)p[1])) {
            int l = capture_index(m, (unsigned char)p[1]);
            size_t len = (size_t)m->cap[l].len;
            if ((size_t)(m->src_end - s) < len || memcmp(m->cap[l].init, s, len) != 0) {
                s = NULL;
                goto done;
            }
            s += len;
            p += 2;
            continue;
        }
        const char *ep = class_end(m, p);
        int hit = single_has(m, s, p, ep);
        if (*ep == '?') {
            const char *res;
            if (hit && (res = match(m, s + 1, ep + 1)) != NULL) {
                s = res;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        if (*ep == '*') {
            s = greedy(m, s, p, ep);
            goto done;
        }
        if (*ep == '+') {
            s = hit ? greedy(m, s + 1, p, ep) : NULL;
            goto done;
        }
        if (*ep == '-') {
            s = lazy(m, s, p, ep);
            goto done;
        }
        if (!hit) {
            s = NULL;
            goto done;
        }
        s++;
        p = ep;
    }
done:
    m->depth--;
    return s;
}

/* ---- captures to Lua ------------------------------------------------------------------ */

static void push_capture(matcher_t *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index");
        lua_pushlstring(m->L, s, (size_t)(e - s)); /* no captures: the whole match */
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_UNFINISHED)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, m->cap[i].init - m->src + 1);
    else
        lua_pushlstring(m->L, m->cap[i].init, (size_t)len);
}

/* s == NULL: only the explicit captures (string.find) */
static int push_captures(matcher_t *m, const char *s, const char *e)
{
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* The pattern ends at its first NUL, as in LuaJIT (Lua 5.1's matcher stops there). */
static void matcher_init(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p)
{
    memset(m, 0, sizeof(*m));
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + strlen(p);
}

/* ---- the library functions ------------------------------------------------------------ */

/* Any special character in all lp bytes (past a NUL too: LuaJIT looks at the whole string, and then matches the
 * pattern only up to that NUL). */
static int has_specials(const char *p, size_t lp)
{
    for (const char *c = SPECIALS; *c; c++)
        if (memchr(p, *c, lp))
            return 1;
    return 0;
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls), *p = luaL_checklstring(L, 2, &lp);
    ptrdiff_t init = (ptrdiff_t)luaL_optinteger(L, 3, 1);
    init = init < 0 ? (ptrdiff_t)ls + init : init - 1;
    if (init < 0)
        init = 0;
    else if ((size_t)init > ls) /* Lua 5.1's rule, which LuaJIT keeps: past the end means at the end */
        init = (ptrdiff_t)ls;
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - (size_t)init, p, lp);
        if (hit == NULL) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, hit - s + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }
    matcher_t m;
    matcher_init(&m, L, s, ls, p);
    int anchored = *p == '^';
    if (anchored)
        p++;
    const char *from = s + init;
    do {
        m.level = 0;
        m.depth = 0;
        const char *e = match(&m, from, p);
        if (e) {
            if (!find)
                return push_captures(&m, from, e);
            lua_pushinteger(L, from - s + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (from++ < m.src_end && !anchored);
    lua_pushnil(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int l_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* the iterator gmatch returns: upvalues (subject, pattern, where the next search starts) */
static int gmatch_next(lua_State *L)
{
    size_t ls;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls), *p = lua_tostring(L, lua_upvalueindex(2));
    matcher_t m;
    matcher_init(&m, L, s, ls, p);
    for (const char *from = s + lua_tointeger(L, lua_upvalueindex(3)); from <= m.src_end; from++) {
        m.level = 0;
        m.depth = 0;
        const char *e = match(&m, from, p);
        if (e) {
            lua_Integer next = e - s;
            if (e == from)
                next++; /* an empty match: step over it */
            lua_pushinteger(L, next);
            lua_replace(L, lua_upvalueindex(3));
            return push_captures(&m, from, e);
        }
    }
    return 0;
}

static int l_gmatch(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* A replacement string: %0-%9 are captures, % before anything else is that character. */
static void add_template(matcher_t *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    const char *r = lua_tolstring(m->L, 3, &l);
    for (size_t i = 0; i < l; i++) {
        step(m);
        if (r[i] != '%') {
            luaL_addchar(b, r[i]);
            continue;
        }
        i++; /* r[l] is the string's terminating NUL: a trailing % adds a NUL byte, as LuaJIT's does */
        if (!isdigit((unsigned char)r[i]))
            luaL_addchar(b, r[i]);
        else if (r[i] == '0')
            luaL_addlstring(b, s, (size_t)(e - s));
        else {
            push_capture(m, r[i] - '1', s, e);
            luaL_addvalue(b);
        }
    }
}

static void add_replacement(matcher_t *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    switch (lua_type(L, 3)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
        add_template(m, b, s, e);
        return;
    case LUA_TFUNCTION:
        lua_pushvalue(L, 3);
        lua_call(L, push_captures(m, s, e), 1);
        break;
    default: /* a table */
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
        break;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the match as it was */
        lua_pop(L, 1);
        lua_pushlstring(L, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
}

static int l_gsub(lua_State *L)
{
    size_t ls;
    const char *s = luaL_checklstring(L, 1, &ls), *p = luaL_checkstring(L, 2);
    int rt = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
    luaL_argcheck(L, rt == LUA_TNUMBER || rt == LUA_TSTRING || rt == LUA_TFUNCTION || rt == LUA_TTABLE, 3,
                  "string/function/table expected");
    matcher_t m;
    matcher_init(&m, L, s, ls, p);
    int anchored = *p == '^';
    if (anchored)
        p++;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *from = s;
    while (n < max) {
        m.level = 0;
        m.depth = 0;
        const char *e = match(&m, from, p);
        if (e) {
            n++;
            add_replacement(&m, &b, from, e);
        }
        if (e && e > from)
            from = e;
        else if (from < m.src_end)
            luaL_addchar(&b, *from++);
        else
            break;
        if (anchored)
            break;
    }
    luaL_addlstring(&b, from, (size_t)(m.src_end - from));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void bff_pattern_install(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
    lua_getglobal(L, "string");
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_pop(L, 1);
}
