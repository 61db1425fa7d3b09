-- Product owns the catalogue (products with price, stock, category, tags)
-- and the stock reservations made for orders.
--
-- Search needs pg_trgm, and creating an extension needs a superuser, which
-- the service's role is not: the stack (infra/local/stack.py, the harness)
-- or the database administrator creates it. Stop here with a clear message
-- rather than fail later on an unknown operator.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        RAISE EXCEPTION 'the pg_trgm extension is missing in database %: as a superuser run CREATE EXTENSION pg_trgm;',
            current_database();
    END IF;
END
$$;

-- Tags as one text for the search vector. array_to_string is only STABLE
-- in general (element output functions), but for text[] it is immutable,
-- which a generated column requires.
CREATE FUNCTION product.tags_text(tags text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string(tags, ' ') $$;

CREATE TABLE product.products (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku          text NOT NULL UNIQUE CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    price_amount bigint NOT NULL CHECK (price_amount >= 0),
    currency     text NOT NULL DEFAULT 'EUR' CHECK (currency = 'EUR'),
    stock        integer NOT NULL CHECK (stock >= 0),
    category     text NOT NULL CHECK (category ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    tags         text[] NOT NULL DEFAULT '{}',
    image_url    text CHECK (image_url LIKE 'https://%'),
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- weighted full-text document: name (A) above tags (B) above description (C)
    search       tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', name), 'A') ||
                     setweight(to_tsvector('english', product.tags_text(tags)), 'B') ||
                     setweight(to_tsvector('english', description), 'C')) STORED
);
CREATE INDEX products_search ON product.products USING gin (search);
CREATE INDEX products_name_trgm ON product.products USING gin (name gin_trgm_ops);
CREATE INDEX products_tags ON product.products USING gin (tags);
-- keyset pagination, one index per sort order
CREATE INDEX products_newest ON product.products (created_at DESC, id DESC);
CREATE INDEX products_by_name ON product.products (name, id);
CREATE INDEX products_by_price ON product.products (price_amount, id);
CREATE INDEX products_by_category ON product.products (category, created_at DESC, id DESC);

-- One row per order that asked for stock: what it asked, and the outcome,
-- so a repeated reserve or release (retries, redelivered messages) answers
-- the same and never moves stock twice. A release that arrives before its
-- reserve leaves a 'released' row, and the late reserve is refused.
CREATE TABLE product.stock_orders (
    order_id    uuid PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('reserved', 'rejected', 'released')),
    items       jsonb,          -- the request, normalised (sorted by product id)
    errors      jsonb,          -- why it was rejected (the 409's errors)
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);

-- The stock each order holds, per product.
CREATE TABLE product.reservations (
    order_id   uuid NOT NULL REFERENCES product.stock_orders (order_id),
    product_id uuid NOT NULL,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    PRIMARY KEY (order_id, product_id)
);
