/*
 * fuzz_bff_pattern.c: libFuzzer target for bff/pattern.c, differential:
 * every answer of its string.find/match/gmatch/gsub must equal LuaJIT's own
 * (results, captures, positions, or that both raise an error).
 *
 * Input: byte 0 picks `init` (-8..8), then the subject up to the first NUL
 * and the pattern after it (NULs included) (at most 64 and 32 bytes: LuaJIT's matcher has
 * no budget and backtracks for minutes on long inputs, which is the very
 * reason bff/pattern.c exists; an input over 2 million steps in ours is
 * dropped before LuaJIT runs it). Seeds: tests/fuzz/corpus/bff_pattern/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../unit/bff/pattern_diff.h"

/* The engine charges steps to the request's budget (vm.c, not linked here). This budget stops inputs whose matching
 * explodes (nested quantifiers backtrack exponentially); LuaJIT's matcher, walking the same steps without any budget,
 * is then not run at all. */
#define STEP_LIMIT 2000000
static int64_t steps_used;

void bff_vm_charge(lua_State *L, int64_t n)
{
    if ((steps_used += n) > STEP_LIMIT)
        luaL_error(L, "over the fuzzer's step budget");
}

static lua_State *theirs, *ours;

static char *run(lua_State *L, const char *s, size_t ls, const char *p, size_t lp, int init)
{
    char *out = pattern_diff_run(L, s, ls, p, lp, init);
    if (out == NULL) {
        fprintf(stderr, "fuzz_bff_pattern: the runner failed\n");
        abort();
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (theirs == NULL) {
        theirs = pattern_diff_state(0);
        ours = pattern_diff_state(1);
        if (theirs == NULL || ours == NULL)
            abort();
    }
    if (size < 1)
        return 0;
    int init = (int)(data[0] % 17) - 8;
    const char *s = (const char *)data + 1, *nul = memchr(s, 0, size - 1);
    size_t ls = nul ? (size_t)(nul - s) : size - 1;
    const char *p = nul ? nul + 1 : "";
    size_t lp = nul ? size - 1 - ls - 1 : 0;
    if (ls > 64 || lp > 32)
        return 0;
    steps_used = 0;
    char *b = run(ours, s, ls, p, lp, init);
    if (steps_used > STEP_LIMIT) {
        free(b);
        return 0;
    }
    char *a = run(theirs, s, ls, p, lp, init);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "fuzz_bff_pattern: subject \"%.*s\" pattern \"%.*s\" init %d\nLuaJIT:\n%s\nours:\n%s\n",
                (int)ls, s, (int)lp, p, init, a, b);
        abort();
    }
    free(a);
    free(b);
    lua_gc(theirs, LUA_GCSTEP, 0);
    lua_gc(ours, LUA_GCSTEP, 0);
    return 0;
}
