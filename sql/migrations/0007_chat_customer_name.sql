-- The customer's name from their token when a chat starts (encrypted, like the tickets' contact
-- details), so the console shows agents who they are talking to, in the queue and in the chat.
ALTER TABLE chat_sessions ADD COLUMN customer_name TEXT;  -- encrypted
