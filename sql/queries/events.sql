-- name: insert_event(event_id, type, topic, entity_type, entity_id, source, actor_id, payload)^
-- Append one event to the outbox / event log.
INSERT INTO support_events (event_id, type, topic, entity_type, entity_id, source, actor_id, payload)
VALUES (:event_id, :type, :topic, :entity_type, :entity_id, :source, :actor_id, :payload)
RETURNING position, event_id, type, topic, entity_type, entity_id, source, actor_id, payload, created_at;

-- name: events_after(after, entity_type, entity_id, limit)
-- Events after a position, in commit order: only rows whose transaction is older than every
-- transaction still running, so a late commit behind a higher position is never skipped.
SELECT position, event_id, type, topic, entity_type, entity_id, source, actor_id, payload, created_at
FROM support_events
WHERE position > :after
  AND txid < pg_snapshot_xmin(pg_current_snapshot())
  AND (:entity_type::text IS NULL OR entity_type = :entity_type)
  AND (:entity_id::text IS NULL OR entity_id = :entity_id)
ORDER BY position
LIMIT :limit;

-- name: entity_events(entity_type, entity_id)
-- One entity's timeline, oldest first.
SELECT position, event_id, type, entity_type, entity_id, actor_id, payload, created_at
FROM support_events
WHERE entity_type = :entity_type AND entity_id = :entity_id
ORDER BY position;

-- name: events_for_entity_count(entity_type, entity_id)$
SELECT count(*) FROM support_events WHERE entity_type = :entity_type AND entity_id = :entity_id;

-- name: last_event_position()$
SELECT coalesce(max(position), 0) FROM support_events;

-- name: events_of_types_after(after, types, limit)
-- Events of the given types after a position, in commit order (see events_after).
SELECT position, event_id, type, entity_type, entity_id, actor_id, payload, created_at
FROM support_events
WHERE position > :after
  AND txid < pg_snapshot_xmin(pg_current_snapshot())
  AND type = ANY(:types)
ORDER BY position
LIMIT :limit;
