-- One payment per order (order_id is unique: the charge is idempotent per
-- order, and the order id is the idempotency key sent to the provider).
-- No payment token is stored: it arrives in events.order.created and goes to
-- the provider only.
--   pending   claimed, the charge is being tried (or retried after an outage)
--   succeeded / failed   the provider's answer, published with the same commit
--   voided    the order was cancelled before any charge: none will be made
--   refunded  the order was cancelled after a successful charge
CREATE TABLE payment.payments (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id       uuid NOT NULL UNIQUE,
    user_id        text NOT NULL,
    amount         bigint NOT NULL CHECK (amount >= 0),
    currency       text NOT NULL,
    provider       text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'voided', 'refunded')),
    provider_ref   text,
    failure_reason text,
    attempts       integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Events (docs/events.md).
CREATE TABLE payment.outbox (
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    subject      text NOT NULL,
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    data         jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON payment.outbox (seq) WHERE published_at IS NULL;

CREATE TABLE payment.processed_events (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
