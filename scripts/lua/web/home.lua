-- GET /bff/web/home: the signed-in home screen. Four calls leave at once;
-- only the profile is required, the rest fall back and are named in
-- `degraded` so the app renders what it has.
local bff = require "moonport.bff"
local shape = require "lib.shape"

bff.get("/home", function(req)
  local me = req.caller.sub
  local profile, featured, orders, unread = bff.all {
    bff.call("user.v1.get", { id = me }),
    bff.call("product.v1.list", { tag = "featured", limit = 8 },
             { optional = { items = {} }, cache_s = 30, cache_shared = true }),
    bff.call("order.v1.list", { limit = 5 }, { optional = { items = {} } }),
    bff.call("notification.v1.count", { unread = true }, { optional = { count = 0 }, timeout_ms = 150 }),
  }
  local recent = {}
  for i, o in ipairs(orders.items) do
    recent[i] = shape.order_row(o)
  end
  local cards = {}
  for i, p in ipairs(featured.items) do
    cards[i] = shape.card(p)
  end
  return {
    user = { id = profile.id, name = profile.display_name, avatar = profile.avatar_url, locale = profile.locale },
    featured = cards,
    recent_orders = recent,
    unread_notifications = unread.count,
  }
end)
