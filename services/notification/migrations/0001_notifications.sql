-- Notifications as users see them, one per events.notification.requested
-- (event_id is unique: a redelivered request never makes a second one).
CREATE TABLE notification.notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id   text NOT NULL UNIQUE,
    user_id    text NOT NULL,
    template   text NOT NULL,
    locale     text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_by_user ON notification.notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notification.notifications (user_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;

-- Delivery through the configured adapter, retried with backoff; after the
-- last attempt the delivery is `dead` and a dead_letters row keeps what was
-- not delivered, for an operator to look at or replay.
CREATE TABLE notification.deliveries (
    notification_id uuid PRIMARY KEY REFERENCES notification.notifications (id) ON DELETE CASCADE,
    adapter         text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz
);
CREATE INDEX deliveries_due ON notification.deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE notification.dead_letters (
    id              bigserial PRIMARY KEY,
    notification_id uuid NOT NULL,
    adapter         text NOT NULL,
    attempts        integer NOT NULL,
    last_error      text,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The notification as its owner sees it.
CREATE FUNCTION notification.notification_json(n notification.notifications) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', n.id,
        'template', n.template,
        'locale', n.locale,
        'title', n.title,
        'body', n.body,
        'data', n.data,
        'read', n.read_at IS NOT NULL,
        'created_at', to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'read_at', to_char(n.read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- The message an adapter delivers (file, webhook): the notification plus its owner.
CREATE FUNCTION notification.message_json(n notification.notifications) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', n.id,
        'user_id', n.user_id,
        'template', n.template,
        'locale', n.locale,
        'title', n.title,
        'body', n.body,
        'data', n.data,
        'created_at', to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- Events (docs/events.md): the ids the consumer has handled.
CREATE TABLE notification.processed_events (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
