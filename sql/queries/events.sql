-- name: insert_event(event_id, type, topic, entity_type, entity_id, source, actor_id, payload)^
-- Append one event to the outbox / event log.
INSERT INTO support_events (event_id, type, topic, entity_type, entity_id, source, actor_id, payload)
VALUES (:event_id, :type, :topic, :entity_type, :entity_id, :source, :actor_id, :payload)
RETURNING position, event_id, type, topic, entity_type, entity_id, source, actor_id, payload, created_at;

-- name: entity_events(entity_type, entity_id)
-- One entity's timeline, oldest first.
SELECT position, event_id, type, entity_type, entity_id, actor_id, payload, created_at
FROM support_events
WHERE entity_type = :entity_type AND entity_id = :entity_id
ORDER BY position;

-- name: events_for_entity_count(entity_type, entity_id)$
SELECT count(*) FROM support_events WHERE entity_type = :entity_type AND entity_id = :entity_id;

