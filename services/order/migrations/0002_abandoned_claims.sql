-- Claims whose request never answered (a crash between reserving stock and saving the order): the janitor in
-- idempotency.c finds them by age and releases their reservations.
CREATE INDEX idempotency_keys_unanswered ON "order".idempotency_keys (claimed_at) WHERE response_status IS NULL;
