-- Escalation rules, SLA policies and breaches (app/services/escalation.py).

-- name: list_escalation_rules()
SELECT * FROM escalation_rules ORDER BY priority DESC, created_at, id;

-- name: active_escalation_rules()
-- The rules evaluation runs, highest priority first.
SELECT * FROM escalation_rules WHERE is_active ORDER BY priority DESC, created_at, id;

-- name: get_escalation_rule(id)^
SELECT * FROM escalation_rules WHERE id = :id;

-- name: lock_escalation_rule(id)^
SELECT * FROM escalation_rules WHERE id = :id FOR UPDATE;

-- name: insert_escalation_rule(rule_name, description, conditions, actions, priority, is_active, now)^
INSERT INTO escalation_rules (rule_name, description, conditions, actions, priority, is_active, created_at, updated_at)
VALUES (:rule_name, :description, :conditions, :actions, :priority, :is_active, :now, :now)
RETURNING *;

-- name: update_escalation_rule(id, rule_name, description, conditions, actions, priority, is_active, now)^
UPDATE escalation_rules
SET rule_name = :rule_name, description = :description, conditions = :conditions, actions = :actions,
    priority = :priority, is_active = :is_active, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: delete_escalation_rule(id)^
DELETE FROM escalation_rules WHERE id = :id RETURNING rule_name;

-- name: list_sla_policies()
SELECT * FROM sla_policies
ORDER BY array_position(ARRAY['low', 'medium', 'high', 'urgent'], priority::text);

-- name: upsert_sla_policy(priority, first_response_minutes, resolution_minutes, now)^
INSERT INTO sla_policies (priority, first_response_minutes, resolution_minutes, updated_at)
VALUES (:priority, :first_response_minutes, :resolution_minutes, :now)
ON CONFLICT (priority) DO UPDATE
SET first_response_minutes = excluded.first_response_minutes,
    resolution_minutes = excluded.resolution_minutes, updated_at = excluded.updated_at
RETURNING *;

-- name: rule_applications(ticket_id)
-- (rule, level) pairs a rule already escalated the ticket at: the level it left and the one it set.
SELECT rule_id, from_level AS level FROM ticket_escalations WHERE ticket_id = :ticket_id AND rule_id IS NOT NULL
UNION
SELECT rule_id, to_level FROM ticket_escalations WHERE ticket_id = :ticket_id AND rule_id IS NOT NULL;

-- name: last_agent_reply(ticket_id)$
-- When an agent last answered the customer (internal notes are no answer).
SELECT max(created_at) FROM ticket_messages
WHERE ticket_id = :ticket_id AND sender_type = 'agent' AND NOT is_internal;

-- name: pick_escalation_agent(department, role, prefer_department)$
-- The available agent (of the department and/or role) with the fewest open tickets, those of
-- prefer_department first.
SELECT user_id FROM support_agents
WHERE (:department::text IS NULL OR department = :department)
  AND (:role::text IS NULL OR role = :role) AND is_available
ORDER BY (department IS NOT DISTINCT FROM :prefer_department::text) DESC, current_tickets, user_id
LIMIT 1;

-- name: unresolved_ticket_ids(statuses)
SELECT id FROM support_tickets WHERE status = ANY(:statuses::text[]) ORDER BY created_at;

-- name: sla_overdue_ticket_ids(statuses, now)
-- Unresolved tickets with no first response by its due time, or unresolved past the resolution due time.
SELECT id FROM support_tickets
WHERE status = ANY(:statuses::text[])
  AND ((first_response_at IS NULL AND first_response_due_at < :now) OR resolution_due_at < :now);

-- name: sla_breach_kinds(ticket_id)
-- The breach kinds already announced for a ticket.
SELECT payload->>'kind' AS kind FROM support_events
WHERE entity_type = 'ticket' AND entity_id = :ticket_id AND type = 'ticket.sla_breached';

-- name: mark_sla_breached(id, now)!
UPDATE support_tickets SET sla_breached = TRUE, updated_at = :now WHERE id = :id;
