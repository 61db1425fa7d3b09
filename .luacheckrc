-- luacheck for BFF scripts (make test runs it). Scripts run in moonport's
-- sandbox (bff/vm.c): these standard globals do not exist there.
std = "luajit"
max_line_length = 120
not_globals = { "io", "load", "loadstring", "loadfile", "dofile", "debug", "jit", "collectgarbage",
                "getfenv", "setfenv", "module", "newproxy", "coroutine", "package" }
-- the engine's own prelude runs outside the sandbox, with the full library
files["scripts/lua/prelude/"] = { not_globals = {} }
-- the sandbox tests try the forbidden globals on purpose
files["tests/lua/engine/lab/util.lua"] = { ignore = { "11[1-3]", "122" } }
-- a route handler may ignore its request
unused_args = false
