-- A ticket message's idempotency key, as chat messages have one: the sender's client_msg_id.
-- A resend with the same key (the widget's, after a lost answer or a reload) finds the message
-- stored the first time instead of storing a second one.
ALTER TABLE ticket_messages ADD COLUMN client_msg_id VARCHAR(64);
CREATE UNIQUE INDEX ticket_messages_client_msg_idx ON ticket_messages (ticket_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
