-- One ticket event may mail several people with one template (an escalation notifying the
-- customer, the assigned agent and supervisors): the outbox is unique per (event, template,
-- recipient_key). recipient_key names who, without the address: 'customer' or the staff
-- member's user id (the address itself is encrypted with a random nonce, so it cannot be a key).
ALTER TABLE email_notifications ADD COLUMN recipient_key VARCHAR(64) NOT NULL DEFAULT 'customer';
ALTER TABLE email_notifications DROP CONSTRAINT email_notifications_event_id_template_key;
ALTER TABLE email_notifications ADD CONSTRAINT email_notifications_event_template_recipient_key
    UNIQUE (event_id, template, recipient_key);
