-- Orders on the web: one order with each item's product, and checkout.
local bff = require "moonport.bff"
local shape = require "lib.shape"

-- GET /bff/web/orders/{id}: the order, its lines enriched with product details
bff.get("/orders/{id:uuid}", function(req)
  local order = bff.fetch("order.v1.get", { id = req.params.id })
  local ids = {}
  for i, line in ipairs(order.items) do
    ids[i] = line.product_id
  end
  local products = bff.fetch("product.v1.lookup", { ids = ids }, { optional = { items = {} } })
  local by_id = {}
  for _, p in ipairs(products.items) do
    by_id[p.id] = p
  end
  local lines = {}
  for i, line in ipairs(order.items) do
    lines[i] = shape.order_line(line, by_id[line.product_id])
  end
  return { id = order.id, status = order.status, total = order.total, created_at = order.created_at, items = lines }
end)

-- POST /bff/web/checkout {items, payment_token}: the client's Idempotency-Key
-- goes through to the Order service, so a retried checkout never orders twice.
bff.post("/checkout", { deadline_ms = 3000 }, function(req)
  local key = req.headers["idempotency-key"]
  if not key then
    bff.fail(400, "checkout needs an Idempotency-Key header")
  end
  local body = req.body or {}
  local order = bff.fetch("order.v1.create", { items = body.items, payment_token = body.payment_token },
                          { headers = { ["idempotency-key"] = key }, timeout_ms = 2500 })
  return { id = order.id, status = order.status, total = order.total }, 201
end)
