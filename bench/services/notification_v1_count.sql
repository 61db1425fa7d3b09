-- the statement notification.v1.count ran in the last `make bench` (sampled from pg_stat_activity)
SELECT count(*) FROM notification.notifications WHERE user_id = :p1 AND read_at IS NULL;
