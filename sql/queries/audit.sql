-- name: insert_audit(actor_id, actor_role, action, entity, entity_id, request_id, ip, transport, changes)!
-- Append one audit row (the table refuses UPDATE, DELETE and TRUNCATE).
INSERT INTO audit_log (actor_id, actor_role, action, entity, entity_id, request_id, ip, transport, changes)
VALUES (:actor_id, :actor_role, :action, :entity, :entity_id, :request_id, :ip, :transport, :changes);

-- name: list_audit(actor_id, action, entity, entity_id, from_time, to_time, limit, offset)
-- Audit rows, newest first, with the total matching count on every row.
SELECT id, occurred_at, actor_id, actor_role, action, entity, entity_id, request_id, ip, transport, changes,
       count(*) OVER () AS total
FROM audit_log
WHERE (:actor_id::uuid IS NULL OR actor_id = :actor_id)
  AND (:action::text IS NULL OR action = :action)
  AND (:entity::text IS NULL OR entity = :entity)
  AND (:entity_id::text IS NULL OR entity_id = :entity_id)
  AND (:from_time::timestamptz IS NULL OR occurred_at >= :from_time)
  AND (:to_time::timestamptz IS NULL OR occurred_at < :to_time)
ORDER BY occurred_at DESC, id DESC
LIMIT :limit OFFSET :offset;
