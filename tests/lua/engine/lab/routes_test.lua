-- Offline tests of the lab routes: `moonport bff test tests/lua/engine/lab`
local t = require "moonport.test"

t.case("four calls run side by side", function()
  for _, s in ipairs({ "a", "b", "c", "d" }) do
    t.reply("echo.v1." .. s, { n = 1 }, { delay_ms = 100 })
  end
  local res = t.get("/parallel?ms=100")
  t.eq(res.status, 200)
  t.eq(res.body.sum, 4)
  t.calls_overlapped()
  t.eq(#t.calls(), 4)
  t.eq(t.calls()[1].input, { sleep_ms = 100, n = 1 })
end)

t.case("an optional call that times out falls back and is named in degraded", function()
  t.reply("echo.v1.slow", { items = { 1 } }, { delay_ms = 300 }) -- longer than its 50 ms budget
  t.reply("echo.v1.fast", { value = 7 })
  local res = t.get("/fallback")
  t.eq(res.status, 200)
  t.eq(res.body, { items = {}, value = 7, degraded = { { dependency = "echo.v1.slow", reason = "timeout" } } })
end)

t.case("a required call that times out is a 504", function()
  t.fail("echo.v1.slow", "timeout")
  t.eq(t.get("/required-timeout").status, 504)
end)

t.case("a service's 404 passes through with its detail; a 500 becomes 502", function()
  t.fail("echo.v1.status", 404, { detail = "no such thing" })
  local res = t.get("/status/404")
  t.eq(res.status, 404)
  t.eq(res.body.detail, "no such thing")
  t.fail("echo.v1.status", 500)
  t.eq(t.get("/status/500").status, 502)
end)

t.case("a service's 503 (its database down) and 504 stand: they are not answers that went wrong", function()
  t.fail("echo.v1.status", 503)
  t.eq(t.get("/status/503").status, 503)
  t.fail("echo.v1.status", 504)
  t.eq(t.get("/status/504").status, 504)
end)

t.case("fixture files, typed params and bad params", function()
  t.reply("echo.v1.cached", t.file("fixtures/cached.json"))
  t.eq(t.get("/cached?k=a").body, { k = "from-fixture" })
  t.eq(t.get("/items/0F8FAD5B-D9CB-469F-A165-70867728950E").body.id, "0f8fad5b-d9cb-469f-a165-70867728950e")
  t.eq(t.get("/items/not-a-uuid").status, 400)
end)

t.case("auth: anonymous is refused, a caller is passed through", function()
  t.eq(t.get("/me").status, 401)
  local res = t.get("/me", { caller = { sub = "u1", roles = { "user" } } })
  t.eq(res.body, { sub = "u1", roles = { "user" } })
  t.eq(t.get("/admin", { caller = { sub = "u1", roles = { "user" } } }).status, 403)
  t.eq(t.get("/admin", { caller = { sub = "u2", roles = { "user", "admin" } } }).status, 200)
end)

t.case("bodies and statuses", function()
  local res = t.post("/echo-body", { a = { 1, 2 } })
  t.eq(res.status, 201)
  t.eq(res.body.got, { a = { 1, 2 } })
  local f = t.get("/fail")
  t.eq(f.status, 409)
  t.eq(f.body.errors, { { pointer = "/thing", detail = "taken" } })
end)

t.case("the sandbox holds", function()
  t.eq(t.get("/escape").body, { escaped = {} })
end)
