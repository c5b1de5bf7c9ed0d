-- The event log read as a stream (gRPC SubscribeToSupportEvents, StreamChat) and the events
-- other services publish (gRPC PublishSupportEvent, the Kafka consumer).
--
-- Cursors are (txid, position), passed as text: rows are read in that order and only below
-- pg_snapshot_xmin(pg_current_snapshot()), so a row that commits later can never fall behind a
-- cursor already handed out (see migration 0004).

-- name: stream_head()^
-- The cursor of "now": the last row no running transaction can precede.
SELECT txid::text AS txid, position
FROM support_events
WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY txid DESC, position DESC
LIMIT 1;

-- name: stream_cursor_of(event_id)^
-- The cursor of one event (resume after it).
SELECT txid::text AS txid, position FROM support_events WHERE event_id = :event_id;

-- name: stream_after(after_txid, after_position, type_patterns, topics, entity_type, entity_id, limit)
-- Events after a cursor in commit-safe order, optionally filtered (NULL = any): types as LIKE
-- patterns, topics, entity.
SELECT position, txid::text AS txid, event_id, type, topic, entity_type, entity_id, source, actor_id,
       payload, created_at
FROM support_events
WHERE (txid, position) > (:after_txid::text::xid8, :after_position::bigint)
  AND txid < pg_snapshot_xmin(pg_current_snapshot())
  AND (:type_patterns::text[] IS NULL OR type LIKE ANY(:type_patterns::text[]))
  AND (:topics::text[] IS NULL OR topic = ANY(:topics::text[]))
  AND (:entity_type::text IS NULL OR entity_type = :entity_type::text)
  AND (:entity_id::text IS NULL OR entity_id = :entity_id::text)
ORDER BY txid, position
LIMIT :limit;

-- name: insert_external_event(event_id, type, topic, entity_type, entity_id, source, actor_id, payload, created_at, published_at)^
-- An event another service published; nothing when its event_id is already in the log.
-- published_at is set for events that came from Kafka (the relay must not send them back).
INSERT INTO support_events (event_id, type, topic, entity_type, entity_id, source, actor_id, payload,
                            created_at, published_at)
VALUES (:event_id, :type, :topic, :entity_type, :entity_id, :source, :actor_id, :payload,
        coalesce(:created_at::timestamptz, now()), :published_at)
ON CONFLICT (event_id) DO NOTHING
RETURNING position, txid::text AS txid, event_id, type, topic, entity_type, entity_id, source, actor_id,
          payload, created_at;

-- name: event_by_event_id(event_id)^
SELECT position, event_id, type, topic, entity_type, entity_id, source, actor_id, payload, created_at
FROM support_events WHERE event_id = :event_id;
