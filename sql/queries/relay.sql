-- The outbox relay (app/kafka/relay.py) and the retention duty.

-- name: relay_unpublished(limit)
-- Unpublished events, oldest first, only from transactions no running one can precede: one
-- entity's events are written under its row lock, so position order is their commit order.
SELECT position, event_id, type, topic, entity_type, entity_id, source, actor_id, payload, created_at
FROM support_events
WHERE published_at IS NULL
  AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY position
LIMIT :limit;

-- name: relay_mark_published(positions, now)!
UPDATE support_events SET published_at = :now
WHERE position = ANY(:positions::bigint[]) AND published_at IS NULL;

-- name: relay_backlog(now)^
-- How far the relay is behind: unpublished events and the age of the oldest, in seconds.
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM (:now::timestamptz - min(created_at))), 0)::float8 AS lag_seconds
FROM support_events
WHERE published_at IS NULL;

-- name: prune_events(cutoff, include_unpublished, limit)$
-- Delete up to `limit` events older than the cutoff that the relay is done with (all old ones
-- when no relay runs); returns how many went.
WITH doomed AS (
    SELECT position FROM support_events
    WHERE created_at < :cutoff
      AND (published_at IS NOT NULL OR :include_unpublished::boolean)
    ORDER BY position
    LIMIT :limit
), deleted AS (
    DELETE FROM support_events e USING doomed d WHERE e.position = d.position RETURNING 1
)
SELECT count(*) FROM deleted;
