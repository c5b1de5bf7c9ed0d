-- Structured message parts (automatic greetings and replies): [{"type": "text", "text"},
-- {"type": "articles", "items": [{id, title, url}]}, {"type": "time", "value": ISO}], rendered
-- by each reader in their own locale and time zone. `message` keeps the plain text for clients
-- that do not read parts. Article titles and times are not personal data: stored in clear.
ALTER TABLE chat_messages ADD COLUMN parts JSONB;
ALTER TABLE ticket_messages ADD COLUMN parts JSONB;
