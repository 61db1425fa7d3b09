local t = require "moonport.test"

local P1 = "00000000-0000-4000-8000-000000000001"

t.case("a product page shows the product and five others from its category", function()
  t.reply("product.v1.get", t.file("fixtures/product.json"))
  t.reply("product.v1.list", t.file("fixtures/related.json"))
  local res = t.get("/products/" .. P1)
  t.eq(res.status, 200)
  t.eq(res.body.product.sku, "SKU-00001")
  t.eq(#res.body.related, 5)
  for _, r in ipairs(res.body.related) do
    t.ok(r.id ~= P1, "the product itself is not related to itself")
  end
  t.eq(t.calls()[2].input, { category = "audio", limit = 6 })
end)

t.case("an unknown product is the service's 404", function()
  t.fail("product.v1.get", 404, { detail = "no such product" })
  local res = t.get("/products/" .. P1)
  t.eq(res.status, 404)
  t.eq(res.body.detail, "no such product")
end)

t.case("related products are optional", function()
  t.reply("product.v1.get", t.file("fixtures/product.json"))
  t.fail("product.v1.list", 500)
  local res = t.get("/products/" .. P1)
  t.eq(res.status, 200)
  t.eq(res.body.related, {})
  t.eq(res.body.degraded[1].dependency, "product.v1.list")
end)

t.case("search passes the query and cursor and returns cards", function()
  t.reply("product.v1.list", t.file("fixtures/featured.json"))
  local res = t.get("/search?q=head+phones&cursor=abc")
  t.eq(res.status, 200)
  t.eq(res.body.query, "head phones")
  t.eq(#res.body.items, 8)
  t.eq(res.body.next_cursor, "c2")
  t.eq(t.calls()[1].input, { q = "head phones", limit = 20, cursor = "abc" })
end)

t.case("search without a query is a 400 naming /q", function()
  local res = t.get("/search")
  t.eq(res.status, 400)
  t.eq(res.body.errors, { { pointer = "/q", detail = "1 to 100 characters" } })
  t.eq(#t.calls(), 0)
end)

t.case("a malformed product id never reaches the service", function()
  t.eq(t.get("/products/not-an-id").status, 400)
  t.eq(#t.calls(), 0)
end)
