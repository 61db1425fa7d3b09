-- Routes that exercise replies as lazy JSON views (bff/view.c).
local bff = require "moonport.bff"

local kept -- a view stashed across requests (module state): it must stay valid

bff.get("/views/read", function()
  local r = bff.fetch("echo.v1.doc", {})
  local names = {}
  for i, item in ipairs(r.items) do
    names[i] = item.name
  end
  local keys = {}
  for k, _ in pairs(r.meta) do
    keys[#keys + 1] = k
  end
  return {
    type_root = type(r), type_items = type(r.items), type_name = type(r.items[1].name),
    count = #r.items, obj_len = #r.meta, names = names, keys = keys,
    same_child = r.items == r.items, escaped = r["we\"ird"], missing = r.nope, null_field = r.gone,
    second_nested = r.items[2].tags[2], out_of_range = r.items[99], by_string = r.items["1"],
    flag = r.meta.flag, num = r.meta.n,
  }
end)

bff.get("/views/pass", function()
  local r = bff.fetch("echo.v1.doc", {})
  return { items = r.items, first = r.items[1], whole = r }
end)

bff.get("/views/write", function()
  local r = bff.fetch("echo.v1.doc", {})
  r.meta.added = "yes"
  table.insert(r.items, { name = "new" })
  r.items[1].name = "changed"
  return { meta = r.meta, count = #r.items, last = r.items[#r.items].name, first = r.items[1].name }
end)

bff.get("/views/forward", function()
  local r = bff.fetch("echo.v1.doc", {})
  local again = bff.fetch("echo.v1.again", { items = r.items })
  return { got = again.items[2].name }
end)

bff.get("/views/keep", function()
  local r = bff.fetch("echo.v1.doc", {})
  kept = r.items
  return { ok = true }
end)

bff.get("/views/kept", function()
  return { first = kept and kept[1].name, count = kept and #kept }
end)
