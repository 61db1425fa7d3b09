local t = require "moonport.test"

local ME = { sub = "u1", roles = { "user" } }
local O1 = "00000000-0000-4000-8000-000000000001"

t.case("an order shows each line with its product", function()
  local orders = t.file("fixtures/orders.json")
  t.reply("order.v1.get", orders.items[1])
  t.reply("product.v1.lookup", t.file("fixtures/lookup.json"))
  local res = t.get("/orders/" .. O1, { caller = ME })
  t.eq(res.status, 200)
  t.eq(res.body.status, "confirmed")
  t.eq(#res.body.items, 2)
  t.eq(res.body.items[2].image_url, "https://img.example.com/p/2.jpg")
  t.eq(res.body.items[2].line_total, { amount = 2020, currency = "EUR" })
  t.eq(t.calls()[2].input, { ids = { orders.items[1].items[1].product_id, orders.items[1].items[2].product_id } })
end)

t.case("without product details the order still shows its lines", function()
  local orders = t.file("fixtures/orders.json")
  t.reply("order.v1.get", orders.items[1])
  t.fail("product.v1.lookup", "timeout")
  local res = t.get("/orders/" .. O1, { caller = ME })
  t.eq(res.status, 200)
  t.eq(res.body.items[1].name, "Product 1")
  t.eq(res.body.items[1].image_url, nil)
end)

t.case("someone else's order is the service's 404", function()
  t.fail("order.v1.get", 404, { detail = "no such order" })
  t.eq(t.get("/orders/" .. O1, { caller = ME }).status, 404)
end)

t.case("checkout passes the Idempotency-Key through", function()
  t.reply("order.v1.create", { id = O1, status = "pending", total = { amount = 1005, currency = "EUR" } },
          { status = 201 })
  local body = { items = { { product_id = O1, quantity = 1 } }, payment_token = "tok_ok" }
  local res = t.post("/checkout", body, { caller = ME, headers = { ["Idempotency-Key"] = "k-123" } })
  t.eq(res.status, 201)
  t.eq(res.body, { id = O1, status = "pending", total = { amount = 1005, currency = "EUR" } })
  t.eq(t.calls()[1].headers["idempotency-key"], "k-123")
  t.eq(t.calls()[1].input, body)
end)

t.case("checkout without an Idempotency-Key is refused before any call", function()
  local res = t.post("/checkout", { items = {} }, { caller = ME })
  t.eq(res.status, 400)
  t.eq(#t.calls(), 0)
end)

t.case("the order service's own validation errors reach the app", function()
  local problem = { status = 422, detail = "the request has invalid fields",
                   errors = { { pointer = "/items/0/quantity", detail = "must be from 1 to 1000" } } }
  t.fail("order.v1.create", 422, { body = problem })
  local res = t.post("/checkout", { items = {} }, { caller = ME, headers = { ["Idempotency-Key"] = "k" } })
  t.eq(res.status, 422)
  t.eq(res.body.detail, "the request has invalid fields")
  t.eq(res.body.errors, { { pointer = "/items/0/quantity", detail = "must be from 1 to 1000" } })
end)
