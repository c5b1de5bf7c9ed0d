-- Every chat message updates its session row (last_seq, last_message_at). Without an index on a
-- column that changes, and with room left on the page, PostgreSQL can update it in place (HOT):
-- no new index entries per message. The inactivity sweep reads the few active sessions by status.
DROP INDEX chat_sessions_active_idx;
CREATE INDEX chat_sessions_active_status_idx ON chat_sessions (status) WHERE status = 'active';
ALTER TABLE chat_sessions SET (fillfactor = 80);
