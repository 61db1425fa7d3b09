-- Product pages and search on the web: public (no sign-in needed).
local bff = require "moonport.bff"
local shape = require "lib.shape"

-- GET /bff/web/products/{id}: the product, and others from its category
bff.get("/products/{id:uuid}", { auth = "none" }, function(req)
  local product = bff.fetch("product.v1.get", { id = req.params.id }, { cache_s = 10, cache_shared = true })
  local related = bff.fetch("product.v1.list", { category = product.category, limit = 6 },
                            { optional = { items = {} }, cache_s = 30, cache_shared = true })
  local others = {}
  for _, p in ipairs(related.items) do
    if p.id ~= product.id and #others < 5 then
      others[#others + 1] = shape.card(p)
    end
  end
  return { product = product, related = others }
end)

-- GET /bff/web/search?q=...&cursor=...
bff.get("/search", { auth = "none" }, function(req)
  local q = req.query.q
  if type(q) ~= "string" or #q == 0 or #q > 100 then
    bff.fail(400, "q must be 1 to 100 characters", { { pointer = "/q", detail = "1 to 100 characters" } })
  end
  local page = bff.fetch("product.v1.list", { q = q, limit = 20, cursor = req.query.cursor })
  local items = {}
  for i, p in ipairs(page.items) do
    items[i] = shape.card(p)
  end
  return { query = q, items = items, next_cursor = page.next_cursor or bff.json.null }
end)
