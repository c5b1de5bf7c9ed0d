-- Chat routing details: chats that go back to the queue (their agent went offline) are served
-- before newcomers, and their queue timeout counts from when they re-entered it.
ALTER TABLE chat_sessions ADD COLUMN queue_priority INTEGER NOT NULL DEFAULT 0;
DROP INDEX chat_sessions_queue_idx;
CREATE INDEX chat_sessions_queue_idx ON chat_sessions (department, queue_priority DESC, queued_at)
    WHERE status = 'queued';
CREATE INDEX chat_sessions_active_idx ON chat_sessions (last_message_at) WHERE status = 'active';
CREATE INDEX support_agents_presence_idx ON support_agents (is_online, status);
