-- name: department_for_category(category)$
-- The department a category routes to (API.md): the department listing it among its categories,
-- else the one named like it; a category nothing maps is its own department (its row is created
-- on first use by the caller), and no category at all means general.
SELECT coalesce(
    (SELECT name FROM departments WHERE :category = ANY(categories) AND name <> :category LIMIT 1),
    :category::text,
    'general');

-- name: insert_ticket(customer_id, agent_id, category, subcategory, department, priority, channel, subject, description, customer_email, customer_name, tags, metadata, now)^
-- Create a ticket with a human-friendly number and SLA due times from its priority's policy.
INSERT INTO support_tickets (
    ticket_number, customer_id, agent_id, category, subcategory, department, priority, channel,
    subject, description, customer_email, customer_name, tags, metadata, assigned_at,
    first_response_due_at, resolution_due_at, created_at, updated_at)
SELECT 'TKT-' || lpad(n::text, greatest(6, length(n::text)), '0'),
       :customer_id, :agent_id, :category, :subcategory, :department, :priority, :channel,
       :subject, :description, :customer_email, :customer_name, :tags, :metadata,
       CASE WHEN :agent_id::uuid IS NOT NULL THEN :now::timestamptz END,
       :now::timestamptz + make_interval(mins => p.first_response_minutes),
       :now::timestamptz + make_interval(mins => p.resolution_minutes),
       :now, :now
FROM (SELECT nextval('ticket_number_seq') AS n) AS seq
LEFT JOIN sla_policies p ON p.priority = :priority
RETURNING *;

-- name: get_ticket(id)^
SELECT * FROM support_tickets WHERE id = :id;

-- name: lock_ticket(id)^
-- The ticket, locked for a read-modify-write in the caller's transaction.
SELECT * FROM support_tickets WHERE id = :id FOR UPDATE;

-- name: agent_chats_with_customer(agent_id, customer_id)$
-- Whether the agent is in an active chat with the customer (agents may read that customer's tickets).
SELECT EXISTS (SELECT 1 FROM chat_sessions
               WHERE agent_id = :agent_id AND customer_id = :customer_id AND status = 'active');

-- name: list_tickets(customer_scope, agent_scope, status, priority, category, agent_id, customer_id, q_pattern, created_after, created_before, sort, limit, offset)
-- A page of tickets the caller may see, with the total matching count on every row.
-- customer_scope/agent_scope restrict to a customer's own / an agent's visible tickets.
SELECT t.*, count(*) OVER () AS total
FROM support_tickets t
WHERE (:customer_scope::uuid IS NULL OR t.customer_id = :customer_scope)
  AND (:agent_scope::uuid IS NULL OR t.agent_id = :agent_scope
       OR t.customer_id IN (SELECT customer_id FROM chat_sessions
                            WHERE agent_id = :agent_scope AND status = 'active'))
  AND (:status::text[] IS NULL OR t.status = ANY(:status))
  AND (:priority::text[] IS NULL OR t.priority = ANY(:priority))
  AND (:category::text IS NULL OR t.category = :category)
  AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)
  AND (:customer_id::uuid IS NULL OR t.customer_id = :customer_id)
  AND (:q_pattern::text IS NULL OR t.subject ILIKE :q_pattern)
  AND (:created_after::timestamptz IS NULL OR t.created_at >= :created_after)
  AND (:created_before::timestamptz IS NULL OR t.created_at < :created_before)
ORDER BY
  CASE WHEN :sort = 'created_at' THEN t.created_at END ASC,
  CASE WHEN :sort = '-created_at' THEN t.created_at END DESC,
  CASE WHEN :sort = 'updated_at' THEN t.updated_at END ASC,
  CASE WHEN :sort = '-updated_at' THEN t.updated_at END DESC,
  CASE WHEN :sort = 'priority' THEN array_position(ARRAY['low','medium','high','urgent'], t.priority::text) END ASC,
  CASE WHEN :sort = '-priority' THEN array_position(ARRAY['low','medium','high','urgent'], t.priority::text) END DESC,
  CASE WHEN :sort = 'status' THEN t.status END ASC,
  CASE WHEN :sort = '-status' THEN t.status END DESC,
  CASE WHEN :sort = 'ticket_number' THEN t.ticket_number END ASC,
  CASE WHEN :sort = '-ticket_number' THEN t.ticket_number END DESC,
  CASE WHEN :sort = 'subject' THEN t.subject END ASC,
  CASE WHEN :sort = '-subject' THEN t.subject END DESC,
  t.created_at DESC, t.id
LIMIT :limit OFFSET :offset;

-- name: update_ticket(id, agent_id, category, subcategory, department, priority, status, subject, description, customer_email, customer_name, tags, metadata, assigned_at, first_response_at, resolved_at, closed_at, reopened_count, escalation_level, escalated_at, now)^
-- Write back every mutable column of a ticket locked with lock_ticket.
UPDATE support_tickets
SET agent_id = :agent_id, category = :category, subcategory = :subcategory, department = :department,
    priority = :priority, status = :status, subject = :subject, description = :description,
    customer_email = :customer_email, customer_name = :customer_name, tags = :tags, metadata = :metadata,
    assigned_at = :assigned_at, first_response_at = :first_response_at, resolved_at = :resolved_at,
    closed_at = :closed_at, reopened_count = :reopened_count, escalation_level = :escalation_level,
    escalated_at = :escalated_at, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: delete_ticket(id)!
DELETE FROM support_tickets WHERE id = :id;

-- name: insert_ticket_message(id, ticket_id, sender_id, sender_type, message, message_type, attachments, is_internal, now, parts, client_msg_id)^
-- ``id`` may be null (a new one is drawn); attachments' rows name the message by a given one.
INSERT INTO ticket_messages (id, ticket_id, sender_id, sender_type, message, message_type, attachments, is_internal,
                             parts, created_at, client_msg_id)
VALUES (coalesce(:id::uuid, gen_random_uuid()), :ticket_id, :sender_id, :sender_type, :message, :message_type,
        :attachments, :is_internal, :parts, :now, :client_msg_id)
RETURNING *;

-- name: get_ticket_message_by_client_id(ticket_id, sender_id, client_msg_id)^
-- The message a sender stored earlier under this idempotency key, if any.
SELECT * FROM ticket_messages
WHERE ticket_id = :ticket_id AND sender_id = :sender_id AND client_msg_id = :client_msg_id;

-- name: list_ticket_messages(ticket_id, include_internal, limit, offset)
-- A ticket's messages, oldest first; internal notes only when asked for.
SELECT m.*, count(*) OVER () AS total
FROM ticket_messages m
WHERE m.ticket_id = :ticket_id AND (:include_internal OR NOT m.is_internal)
ORDER BY m.created_at, m.id
LIMIT :limit OFFSET :offset;

-- name: insert_escalation(ticket_id, rule_id, trigger, from_level, to_level, from_priority, to_priority, from_agent_id, to_agent_id, reason, actor_id, now)^
INSERT INTO ticket_escalations (ticket_id, rule_id, trigger, from_level, to_level, from_priority, to_priority,
                                from_agent_id, to_agent_id, reason, actor_id, created_at)
VALUES (:ticket_id, :rule_id, :trigger, :from_level, :to_level, :from_priority, :to_priority,
        :from_agent_id, :to_agent_id, :reason, :actor_id, :now)
RETURNING *;

-- name: get_ticket_message(ticket_id, id)^
SELECT * FROM ticket_messages WHERE ticket_id = :ticket_id AND id = :id;
