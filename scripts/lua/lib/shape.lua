-- Shapes shared by the web and mobile BFFs (require "lib.shape").
local M = {}

-- The parts of a product a product card needs.
function M.card(p)
  return { id = p.id, name = p.name, price = p.price, image_url = p.image_url, category = p.category }
end

-- An order line, with the product's name and picture when we know them.
function M.order_line(line, product)
  return {
    product_id = line.product_id,
    name = (product and product.name) or line.name,
    image_url = product and product.image_url,
    quantity = line.quantity,
    unit_price = line.unit_price,
    line_total = line.line_total,
  }
end

-- An order as a list row: counts, not the lines themselves.
function M.order_row(o)
  return { id = o.id, status = o.status, total = o.total, created_at = o.created_at, item_count = #o.items }
end

return M
