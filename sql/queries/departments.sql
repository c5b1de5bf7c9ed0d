-- name: list_departments(public_only, category, q_pattern, sort, limit, offset)
-- A page of departments (only those customers see when public_only), with the total on every row.
SELECT *, count(*) OVER () AS total FROM departments
WHERE (NOT :public_only OR is_public)
  AND (:category::text IS NULL OR name = :category OR :category = ANY(categories))
  AND (:q_pattern::text IS NULL OR name ILIKE :q_pattern OR display_name ILIKE :q_pattern)
ORDER BY
  CASE WHEN :sort = 'name' THEN name END ASC,
  CASE WHEN :sort = '-name' THEN name END DESC,
  CASE WHEN :sort = 'display_name' THEN display_name END ASC,
  CASE WHEN :sort = '-display_name' THEN display_name END DESC,
  CASE WHEN :sort = 'created_at' THEN created_at END ASC,
  CASE WHEN :sort = '-created_at' THEN created_at END DESC,
  id
LIMIT :limit OFFSET :offset;

-- name: get_department(id)^
SELECT * FROM departments WHERE id = :id;

-- name: get_department_by_name(name)^
SELECT * FROM departments WHERE name = :name;

-- name: lock_department(id)^
SELECT * FROM departments WHERE id = :id FOR UPDATE;

-- name: lock_department_catalogue()$
-- Serialise writers of departments' names and categories (each category has at most one
-- department), so two admins cannot give one category to two departments at once.
SELECT pg_advisory_xact_lock(hashtext('support-service:departments'));

-- name: category_clashes(id, names)
-- Departments other than :id that are named like, or already serve, one of the names.
SELECT name, array(SELECT unnest(categories) INTERSECT SELECT unnest(:names::text[])) AS served,
       name = ANY(:names::text[]) AS named
FROM departments
WHERE (:id::uuid IS NULL OR id <> :id)
  AND (categories && :names::text[] OR name = ANY(:names::text[]));

-- name: insert_department(name, display_name, description, categories, business_hours, time_zone, offline_message, is_public, queue_timeout_minutes, greeting, queue_alert_minutes, now)^
INSERT INTO departments (name, display_name, description, categories, business_hours, time_zone,
                         offline_message, is_public, queue_timeout_minutes, greeting, queue_alert_minutes,
                         created_at, updated_at)
VALUES (:name, :display_name, :description, :categories, :business_hours, :time_zone,
        :offline_message, :is_public, :queue_timeout_minutes, :greeting, :queue_alert_minutes, :now, :now)
RETURNING *;

-- name: ensure_department(name, display_name, now)^
-- The department's row, created with defaults when nothing had named it yet; returns the row
-- only when it was created here (so the caller records that once).
INSERT INTO departments (name, display_name, created_at, updated_at)
VALUES (:name, :display_name, :now, :now)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: update_department(id, display_name, description, categories, business_hours, time_zone, offline_message, is_public, queue_timeout_minutes, greeting, queue_alert_minutes, now)^
-- Write back every mutable column of a department locked with lock_department.
UPDATE departments
SET display_name = :display_name, description = :description, categories = :categories,
    business_hours = :business_hours, time_zone = :time_zone, offline_message = :offline_message,
    is_public = :is_public, queue_timeout_minutes = :queue_timeout_minutes, greeting = :greeting,
    queue_alert_minutes = :queue_alert_minutes, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: department_in_use(name)^
-- What still works in a department: its agents, open chats and unresolved tickets.
SELECT (SELECT count(*) FROM support_agents WHERE department = :name)::int AS agents,
       (SELECT count(*) FROM chat_sessions WHERE department = :name AND status IN ('queued', 'active'))::int AS open_chats,
       (SELECT count(*) FROM support_tickets
        WHERE department = :name AND status NOT IN ('resolved', 'closed'))::int AS open_tickets;

-- name: delete_department(id)^
DELETE FROM departments WHERE id = :id RETURNING *;

-- name: department_display_names(names)
SELECT name, display_name FROM departments WHERE name = ANY(:names::text[]);

-- name: queue_alert_changes(now, default_minutes)
-- Departments whose alert must be raised (the oldest queued chat waited past the threshold)
-- or cleared (none does any more). Runs in the chat-timers cluster duty: one sweep at a time.
WITH waits AS (
    SELECT d.id, d.name, d.queue_alert_raised_at,
           coalesce(d.queue_alert_minutes, :default_minutes) AS threshold_minutes,
           (SELECT min(coalesce(s.queued_at, s.started_at)) FROM chat_sessions s
            WHERE s.department = d.name AND s.status = 'queued') AS oldest
    FROM departments d
)
SELECT w.*, count_waiting.n AS waiting
FROM waits w
CROSS JOIN LATERAL (SELECT count(*)::int AS n FROM chat_sessions s
                    WHERE s.department = w.name AND s.status = 'queued') count_waiting
WHERE (w.queue_alert_raised_at IS NULL AND w.threshold_minutes > 0 AND w.oldest IS NOT NULL
       AND w.oldest < :now::timestamptz - make_interval(mins => w.threshold_minutes))
   OR (w.queue_alert_raised_at IS NOT NULL AND (w.threshold_minutes = 0 OR w.oldest IS NULL
       OR w.oldest >= :now::timestamptz - make_interval(mins => w.threshold_minutes)));

-- name: set_queue_alert(id, raised_at)^
UPDATE departments SET queue_alert_raised_at = :raised_at WHERE id = :id RETURNING *;
