local t = require "moonport.test"

local ME = { sub = "u1", roles = { "user" } }

t.case("mobile home: four products and counts instead of lists", function()
  t.reply("user.v1.get", t.file("fixtures/profile.json"))
  t.reply("product.v1.list", t.file("fixtures/featured.json"))
  t.reply("order.v1.list", t.file("fixtures/orders.json"))
  t.reply("notification.v1.count", { count = 3 })
  local res = t.get("/home", { caller = ME })
  t.eq(res.status, 200)
  t.eq(res.body.name, "Ada Lovelace")
  t.eq(res.body.recent_orders, 2)
  t.eq(res.body.unread, 3)
  t.eq(t.calls()[2].input, { tag = "featured", limit = 4 })
  t.eq(res.body.featured[1], { id = "00000000-0000-4000-8000-000000000001", name = "Product 1",
                               price = { amount = 1005, currency = "EUR" }, image = "https://img.example.com/p/1.jpg" })
  t.calls_overlapped()
end)

t.case("mobile product: compact, with stock as a yes or no", function()
  t.reply("product.v1.get", t.file("fixtures/product.json"))
  t.reply("product.v1.list", t.file("fixtures/related.json"))
  local res = t.get("/products/00000000-0000-4000-8000-000000000001")
  t.eq(res.status, 200)
  t.eq(res.body.in_stock, true)
  t.eq(res.body.related, 5)
  t.eq(res.body.sku, nil)
end)
