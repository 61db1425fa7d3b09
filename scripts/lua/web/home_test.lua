local t = require "moonport.test"

local ME = { sub = "u1", roles = { "user" } }

local function all_up()
  t.reply("user.v1.get", t.file("fixtures/profile.json"))
  t.reply("product.v1.list", t.file("fixtures/featured.json"))
  t.reply("order.v1.list", t.file("fixtures/orders.json"))
  t.reply("notification.v1.count", { count = 2 })
end

t.case("home composes four calls made side by side", function()
  all_up()
  local res = t.get("/home", { caller = ME })
  t.eq(res.status, 200)
  t.eq(res.body.user, { id = "u1", name = "Ada Lovelace", avatar = "https://img.example.com/u/ada.png",
                        locale = "en-GB" })
  t.eq(#res.body.featured, 8)
  t.eq(res.body.featured[1], { id = "00000000-0000-4000-8000-000000000001", name = "Product 1",
                               price = { amount = 1005, currency = "EUR" },
                               image_url = "https://img.example.com/p/1.jpg", category = "audio" })
  t.eq(res.body.recent_orders[1].item_count, 2)
  t.eq(res.body.unread_notifications, 2)
  t.eq(res.body.degraded, nil)
  t.calls_overlapped()
  t.eq(t.calls()[1].input, { id = "u1" })
end)

t.case("home still renders when orders are down", function()
  all_up()
  t.fail("order.v1.list", "timeout")
  local res = t.get("/home", { caller = ME })
  t.eq(res.status, 200)
  t.eq(res.body.recent_orders, {})
  t.eq(res.body.degraded, { { dependency = "order.v1.list", reason = "timeout" } })
end)

t.case("home needs the profile: a 503 when the user service is down", function()
  all_up()
  t.fail("user.v1.get", "unavailable")
  local res = t.get("/home", { caller = ME })
  t.eq(res.status, 503)
  t.eq(res.body.detail, "user.v1.get is unavailable")
end)

t.case("home needs a signed-in caller", function()
  t.eq(t.get("/home").status, 401)
end)
