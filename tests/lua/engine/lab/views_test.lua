-- Replies are lazy JSON views: they must behave like the tables a script expects.
local t = require "moonport.test"
local json = require("moonport.bff").json

local DOC = {
  items = { { name = "a", tags = { "x", "y" } }, { name = "b", tags = { "z", "w" } } },
  meta = { flag = true, n = 42 },
  ["we\"ird"] = "quoted key",
}

t.case("reading fields, lists, lengths and iteration", function()
  t.reply("echo.v1.doc", DOC)
  local res = t.get("/views/read")
  t.eq(res.status, 200)
  local b = res.body
  t.eq(b.type_root, "table")
  t.eq(b.type_items, "table")
  t.eq(b.type_name, "string")
  t.eq(b.count, 2)
  t.eq(b.obj_len, 0)
  t.eq(b.names, { "a", "b" })
  table.sort(b.keys)
  t.eq(b.keys, { "flag", "n" })
  t.eq(b.same_child, true)
  t.eq(b.escaped, "quoted key")
  t.eq(b.missing, nil)
  t.eq(b.second_nested, "w")
  t.eq(b.out_of_range, nil)
  t.eq(b.by_string, nil)
  t.eq(b.flag, true)
  t.eq(b.num, 42)
end)

t.case("null members are absent, as when decoding", function()
  local doc = { items = DOC.items, meta = { flag = false, n = json.null, other = 1 }, gone = json.null }
  t.reply("echo.v1.doc", doc)
  local res = t.get("/views/read")
  t.eq(res.status, 200)
  t.eq(res.body.null_field, nil)
  t.eq(res.body.num, nil)
  table.sort(res.body.keys)
  t.eq(res.body.keys, { "flag", "other" }) -- pairs skips the null member
end)

t.case("untouched parts pass through byte for byte", function()
  t.reply("echo.v1.doc", DOC)
  local res = t.get("/views/pass")
  t.eq(res.body.items, DOC.items)
  t.eq(res.body.first, DOC.items[1])
  t.eq(res.body.whole, DOC)
end)

t.case("a write materializes the view and sticks", function()
  t.reply("echo.v1.doc", DOC)
  local res = t.get("/views/write")
  t.eq(res.body.meta, { flag = true, n = 42, added = "yes" })
  t.eq(res.body.count, 3)
  t.eq(res.body.last, "new")
  t.eq(res.body.first, "changed")
end)

t.case("a view can be sent on to another service", function()
  t.reply("echo.v1.doc", DOC)
  t.reply("echo.v1.again", { items = DOC.items })
  t.eq(t.get("/views/forward").body.got, "b")
  t.eq(t.calls()[2].input, { items = DOC.items })
end)

t.case("a view kept by the script outlives its request", function()
  t.reply("echo.v1.doc", DOC)
  t.get("/views/keep")
  local res = t.get("/views/kept")
  t.eq(res.body, { first = "a", count = 2 })
end)
