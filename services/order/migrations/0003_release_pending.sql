-- A claim whose order may hold stock that could not be given back yet (the
-- reserve's reply was lost and the release failed too, e.g. NATS was down):
-- kept, not deleted, so the janitor or the key's next retry releases that
-- order id before anything else uses the key (idempotency.c).
ALTER TABLE "order".idempotency_keys ADD COLUMN release_pending boolean NOT NULL DEFAULT false;
