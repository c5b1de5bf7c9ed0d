-- name: insert_attachment(id, uploader_id, uploader_role, filename, content_type, size_bytes, sha256, storage_key, thumbnail_key, now)^
-- Record a stored upload; it belongs to its uploader until a message references it.
INSERT INTO attachments (id, uploader_id, uploader_role, filename, content_type, size_bytes, sha256,
                         storage_key, thumbnail_key, created_at)
VALUES (:id, :uploader_id, :uploader_role, :filename, :content_type, :size_bytes, :sha256,
        :storage_key, :thumbnail_key, :now)
RETURNING *;

-- name: get_attachment(id)^
-- One attachment that is not being deleted.
SELECT * FROM attachments WHERE id = :id AND deleted_at IS NULL;

-- name: claim_for_session(ids, uploader_id, session_id)
-- Tie the uploader's own uploads to a chat before the message naming them is written. A
-- resend of the same message claims them again (already this session's, still unreferenced).
UPDATE attachments SET session_id = :session_id
WHERE id = ANY(:ids::uuid[]) AND uploader_id = :uploader_id AND deleted_at IS NULL AND ticket_id IS NULL
  AND (session_id IS NULL OR session_id = :session_id)
  AND (message_id IS NULL OR session_id = :session_id)
RETURNING *;

-- name: bind_to_chat_message(ids, session_id, message_id, now)!
-- The chat message naming these uploads is stored: they are its files from now on.
UPDATE attachments SET message_id = :message_id, referenced_at = :now
WHERE id = ANY(:ids::uuid[]) AND session_id = :session_id AND message_id IS NULL;

-- name: bind_to_ticket_message(ids, uploader_id, ticket_id, message_id, is_internal, now)
-- In the ticket message's transaction: the uploader's own unreferenced uploads become its files.
UPDATE attachments SET ticket_id = :ticket_id, message_id = :message_id, is_internal = :is_internal,
                       referenced_at = :now
WHERE id = ANY(:ids::uuid[]) AND uploader_id = :uploader_id AND deleted_at IS NULL
  AND message_id IS NULL AND session_id IS NULL AND ticket_id IS NULL
RETURNING *;

-- name: mark_ticket_attachments_deleted(ticket_id, now)
-- A ticket is being deleted: its files are to be removed (in the delete's transaction).
UPDATE attachments SET deleted_at = :now
WHERE ticket_id = :ticket_id AND deleted_at IS NULL
RETURNING id, ticket_id, uploader_id;

-- name: mark_attachment_deleted(id, now)^
UPDATE attachments SET deleted_at = :now WHERE id = :id AND deleted_at IS NULL RETURNING *;

-- name: mark_expired_attachments(unreferenced_before, now, limit)
-- Retention: uploads no message took within the grace period, and files whose chat or ticket
-- is gone (the foreign keys cleared), are to be removed.
UPDATE attachments SET deleted_at = :now
WHERE id IN (
    SELECT id FROM attachments
    WHERE deleted_at IS NULL
      AND ((message_id IS NULL AND created_at < :unreferenced_before)
           OR (message_id IS NOT NULL AND session_id IS NULL AND ticket_id IS NULL))
    ORDER BY created_at
    LIMIT :limit)
RETURNING id, uploader_id, session_id, ticket_id, message_id;

-- name: attachments_to_purge(limit)
-- Rows whose bytes are to be removed from the store, oldest first.
SELECT id, storage_key, thumbnail_key FROM attachments
WHERE deleted_at IS NOT NULL ORDER BY deleted_at LIMIT :limit;

-- name: purge_attachment(id)!
DELETE FROM attachments WHERE id = :id AND deleted_at IS NOT NULL;
