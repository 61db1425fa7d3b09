-- The same compositions bench/node/bff.js implements in Node, so the two are
-- measured doing the same work over the same NATS.
local bff = require "moonport.bff"

-- a home screen: four calls in parallel, three of them optional
bff.get("/home", function(req)
  local profile, featured, orders, unread = bff.all {
    bff.call("echo.v1.profile", { id = "u1" }),
    bff.call("echo.v1.featured", { tag = "featured", limit = 8 }, { optional = { items = {} } }),
    bff.call("echo.v1.orders", { user_id = "u1", limit = 5 }, { optional = { items = {} } }),
    bff.call("echo.v1.unread", { unread = true }, { optional = { items = {} } }),
  }
  return {
    user = profile.items[1],
    featured = featured.items,
    recent_orders = orders.items,
    unread_notifications = #unread.items,
  }
end)

-- one call, its reply reshaped
bff.get("/one", function(req)
  local p = bff.fetch("echo.v1.product", { id = "p1" })
  return { product = p.items[1], count = #p.items }
end)
