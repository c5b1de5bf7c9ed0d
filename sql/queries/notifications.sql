-- E-mail notifications from the outbox (app/services/notifications.py).

-- name: mailable_events(types, lookback)
-- Recent ticket events of the given types that have no e-mail yet, with what the e-mail needs.
SELECT e.event_id, e.type, e.payload, t.customer_email, t.ticket_number, t.subject, t.status, t.priority,
       t.id AS ticket_id, t.customer_id, t.agent_id, t.department, t.created_at, t.first_response_due_at,
       d.time_zone
FROM support_events e
JOIN support_tickets t ON e.entity_type = 'ticket' AND t.id::text = e.entity_id
LEFT JOIN departments d ON d.name = t.department
WHERE e.type = ANY(:types::text[]) AND e.created_at > now() - :lookback::interval
  AND NOT EXISTS (SELECT 1 FROM email_notifications n WHERE n.event_id = e.event_id)
ORDER BY e.position
LIMIT 1000;

-- name: queue_email(event_id, template, recipient_key, recipient, data, now)$
-- One e-mail per (event, template, recipient_key): NULL when it is already queued.
INSERT INTO email_notifications (event_id, template, recipient_key, recipient, data, next_attempt_at)
VALUES (:event_id, :template, :recipient_key, :recipient, :data, :now)
ON CONFLICT (event_id, template, recipient_key) DO NOTHING
RETURNING id;

-- name: escalation_supervisors(department)
-- The supervisors an escalation e-mail goes to: those of the ticket's department, else all.
SELECT user_id FROM support_agents
WHERE role = 'supervisor'
  AND (department = :department OR NOT EXISTS (
         SELECT 1 FROM support_agents WHERE role = 'supervisor' AND department = :department))
ORDER BY user_id
LIMIT 50;

-- name: due_emails(now, limit)
SELECT * FROM email_notifications
WHERE status = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at, created_at, id
LIMIT :limit;

-- name: email_sent(id, attempts, now)!
UPDATE email_notifications SET status = 'sent', attempts = :attempts, sent_at = :now, last_error = NULL
WHERE id = :id;

-- name: email_failed(id, status, attempts, next_attempt_at, error)!
UPDATE email_notifications
SET status = :status, attempts = :attempts, next_attempt_at = :next_attempt_at, last_error = :error
WHERE id = :id;

-- name: list_emails(status, limit, offset)
SELECT id, event_id, template, status, attempts, next_attempt_at, last_error, created_at, sent_at,
       count(*) OVER () AS total
FROM email_notifications
WHERE (:status::text IS NULL OR status = :status)
ORDER BY created_at DESC, id
LIMIT :limit OFFSET :offset;

