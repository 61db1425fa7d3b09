-- Routes that exercise the BFF engine against mp-echo (tests/tools/echo.c):
-- echo.v1.* answers with its input after `sleep_ms`, with Status `status`.
local bff = require "moonport.bff"
local util = require "lab.util"

bff.get("/version", function()
  return { version = "v1" }
end)

bff.get("/parallel", function(req)
  local ms = tonumber(req.query.ms) or 100
  local t0 = bff.now_ms()
  local a, b, c, d = bff.all {
    bff.call("echo.v1.a", { sleep_ms = ms, n = 1 }),
    bff.call("echo.v1.b", { sleep_ms = ms, n = 2 }),
    bff.call("echo.v1.c", { sleep_ms = ms, n = 3 }),
    bff.call("echo.v1.d", { sleep_ms = ms, n = 4 }),
  }
  return { sum = a.n + b.n + c.n + d.n, elapsed_ms = bff.now_ms() - t0 }
end)

bff.get("/fallback", function()
  local slow = bff.call("echo.v1.slow", { sleep_ms = 300 }, { timeout_ms = 50, optional = { items = {} } })
  local fast = bff.call("echo.v1.fast", { value = 7 })
  local s, f = bff.all { slow, fast }
  return { items = s.items, value = f.value }
end)

bff.get("/required-timeout", function()
  return bff.fetch("echo.v1.slow", { sleep_ms = 300 }, { timeout_ms = 50 })
end)

bff.get("/deadline", { deadline_ms = 80 }, function()
  -- the call asks for 5 s, but the route's 80 ms deadline caps it
  return bff.fetch("echo.v1.slow", { sleep_ms = 300 }, { timeout_ms = 5000 })
end)

bff.get("/unavailable", function()
  return bff.fetch("nobody.v1.here", {})
end)

bff.get("/status/{code:int}", function(req)
  return bff.fetch("echo.v1.status", { status = req.params.code, detail = "from echo" })
end)

bff.get("/cached", function(req)
  local v = bff.fetch("echo.v1.cached", { k = req.query.k or "x", sleep_ms = 100 },
                      { cache_s = 30, cache_shared = true })
  return { k = v.k }
end)

bff.get("/me", { auth = "required" }, function(req)
  return { sub = req.caller.sub, roles = req.caller.roles }
end)

bff.get("/admin", { role = "admin" }, function(req)
  return { ok = true }
end)

bff.post("/echo-body", function(req)
  return { got = req.body, id = req.id }, 201
end)

bff.get("/items/{id:uuid}", function(req)
  return { id = req.params.id }
end)

bff.get("/fail", function()
  bff.fail(409, "this thing conflicts", { { pointer = "/thing", detail = "taken" } })
end)

bff.get("/boom", function()
  local t = nil
  return t.field -- a bug: 500, traceback in the log only
end)

bff.get("/loop", function()
  while true do end
end)

bff.get("/pcall-loop", function()
  while true do
    pcall(function() while true do end end)
  end
end)

-- backtracking in C, where the count hook never fires: string.find charges its own steps (bff/pattern.c)
bff.get("/pattern-bomb", function()
  local s = string.rep("a", 200000)
  local ok = pcall(string.find, s, ".-.-b") -- the kill is not an error pcall may keep
  return { ok = ok }
end)

bff.get("/bomb", function()
  local t = {}
  for i = 1, 1e9 do
    t[i] = string.rep("x", 1000000 + i) -- unique strings: no interning
  end
  return t
end)

bff.get("/escape", function()
  return { escaped = util.escape_attempts() }
end)

bff.get("/log", function(req)
  bff.log.info("hello from a script", { who = "lab" })
  return { logged = true }
end)
