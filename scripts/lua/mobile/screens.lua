-- Mobile screens: what a phone shows, and no more.
local bff = require "moonport.bff"

local function compact(p)
  return { id = p.id, name = p.name, price = p.price, image = p.image_url }
end

-- GET /bff/mobile/home: name, four featured products, counts
bff.get("/home", function(req)
  local profile, featured, orders, unread = bff.all {
    bff.call("user.v1.get", { id = req.caller.sub }),
    bff.call("product.v1.list", { tag = "featured", limit = 4 },
             { optional = { items = {} }, cache_s = 30, cache_shared = true }),
    bff.call("order.v1.list", { limit = 5 }, { optional = { items = {} } }),
    bff.call("notification.v1.count", { unread = true }, { optional = { count = 0 }, timeout_ms = 150 }),
  }
  local cards = {}
  for i, p in ipairs(featured.items) do
    cards[i] = compact(p)
  end
  return {
    name = profile.display_name,
    avatar = profile.avatar_url,
    featured = cards,
    recent_orders = #orders.items,
    unread = unread.count,
  }
end)

-- GET /bff/mobile/products/{id}: the product, whether it is in stock, how many related
bff.get("/products/{id:uuid}", { auth = "none" }, function(req)
  local p = bff.fetch("product.v1.get", { id = req.params.id }, { cache_s = 10, cache_shared = true })
  local related = bff.fetch("product.v1.list", { category = p.category, limit = 6 },
                            { optional = { items = {} }, cache_s = 30, cache_shared = true })
  local n = 0
  for _, r in ipairs(related.items) do
    if r.id ~= p.id then
      n = n + 1
    end
  end
  return {
    id = p.id, name = p.name, price = p.price, image = p.image_url,
    description = p.description, in_stock = (p.stock or 0) > 0, related = n,
  }
end)
