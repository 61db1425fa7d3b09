-- the statement order.v1.list ran in the last `make bench` (sampled from pg_stat_activity)
SELECT "order".order_json(o)::text, to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24' || ':' || 'MI' || ':' || 'SS.US"Z"'), o.id FROM "order".orders o WHERE o.user_id = :p1 ORDER BY o.created_at DESC, o.id DESC LIMIT :p2::int;
