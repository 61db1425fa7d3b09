-- Orders and their items. Prices are copied from Product when the order is
-- placed and never change afterwards. "order" is a reserved word: always quoted.
CREATE TABLE "order".orders (
    id            uuid PRIMARY KEY,
    user_id       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    currency      text NOT NULL,
    total_amount  bigint NOT NULL CHECK (total_amount >= 0),
    locale        text,
    cancel_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_user ON "order".orders (user_id, created_at DESC, id DESC);

CREATE TABLE "order".order_items (
    order_id    uuid NOT NULL REFERENCES "order".orders (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    product_id  uuid NOT NULL,
    sku         text NOT NULL,
    name        text NOT NULL,
    unit_amount bigint NOT NULL CHECK (unit_amount >= 0),
    quantity    integer NOT NULL CHECK (quantity > 0),
    line_amount bigint NOT NULL CHECK (line_amount >= 0),
    PRIMARY KEY (order_id, position)
);

-- Idempotency-Key claims (CONVENTIONS.md), per user. Keys and request bodies
-- are kept as SHA-256 digests only. A row without a response is a request in
-- flight; one older than 30 s without a response was abandoned by a crash
-- and may be taken over (with the same order id, so Product's reservation,
-- idempotent per order id, is reused).
CREATE TABLE "order".idempotency_keys (
    user_id         text NOT NULL,
    key_hash        text NOT NULL,
    request_hash    text NOT NULL,
    order_id        uuid NOT NULL DEFAULT gen_random_uuid(),
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    response_status integer,
    response_body   text,
    PRIMARY KEY (user_id, key_hash)
);
CREATE INDEX idempotency_keys_age ON "order".idempotency_keys (created_at);

-- The order as clients see it (CONVENTIONS.md: money in minor units, RFC 3339 UTC).
CREATE FUNCTION "order".order_json(o "order".orders) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', o.id,
        'status', o.status,
        'items', COALESCE((
            SELECT json_agg(json_build_object(
                'product_id', i.product_id,
                'sku', i.sku,
                'name', i.name,
                'quantity', i.quantity,
                'unit_price', json_build_object('amount', i.unit_amount, 'currency', o.currency),
                'line_total', json_build_object('amount', i.line_amount, 'currency', o.currency)) ORDER BY i.position)
            FROM "order".order_items i WHERE i.order_id = o.id), '[]'::json),
        'total', json_build_object('amount', o.total_amount, 'currency', o.currency),
        'cancel_reason', o.cancel_reason,
        'created_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'updated_at', to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- Events (docs/events.md): the outbox this service publishes from, and the
-- event ids its consumers have handled.
CREATE TABLE "order".outbox (
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    subject      text NOT NULL,
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    data         jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON "order".outbox (seq) WHERE published_at IS NULL;

CREATE TABLE "order".processed_events (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
