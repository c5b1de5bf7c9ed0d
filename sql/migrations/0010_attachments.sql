-- Attachments (files in chats and tickets). The bytes live in the configured store (a local
-- directory or an S3 bucket) under storage_key; this row holds what we know about them.
-- An upload belongs to its uploader until a message references it: then session_id or
-- ticket_id and message_id say whose it is. Rows with deleted_at set are waiting for their
-- bytes to be removed from the store (the retention duty finishes what a delete began).
CREATE TABLE attachments (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    uploader_id   UUID NOT NULL,
    uploader_role VARCHAR(20) NOT NULL,
    filename      VARCHAR(255) NOT NULL,
    content_type  VARCHAR(100) NOT NULL,
    size_bytes    BIGINT NOT NULL CHECK (size_bytes > 0),
    sha256        CHAR(64) NOT NULL,
    storage_key   VARCHAR(255) NOT NULL UNIQUE,
    thumbnail_key VARCHAR(255),
    session_id    UUID REFERENCES chat_sessions(id) ON DELETE SET NULL,
    ticket_id     UUID REFERENCES support_tickets(id) ON DELETE SET NULL,
    message_id    UUID,
    is_internal   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    referenced_at TIMESTAMPTZ,
    deleted_at    TIMESTAMPTZ,
    CHECK (session_id IS NULL OR ticket_id IS NULL)
);
CREATE INDEX attachments_uploader_idx ON attachments (uploader_id, created_at);
CREATE INDEX attachments_session_idx ON attachments (session_id);
CREATE INDEX attachments_ticket_idx ON attachments (ticket_id);
-- The retention duty's two questions: unreferenced uploads, and files waiting to be purged.
CREATE INDEX attachments_unreferenced_idx ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_orphaned_idx ON attachments (id)
    WHERE message_id IS NOT NULL AND session_id IS NULL AND ticket_id IS NULL;
CREATE INDEX attachments_deleted_idx ON attachments (deleted_at) WHERE deleted_at IS NOT NULL;
