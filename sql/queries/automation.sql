-- name: active_categorization_rules()
-- The active categorisation rules, the one that wins first.
SELECT keywords, category FROM categorization_rules WHERE is_active
ORDER BY priority DESC, created_at, id;

-- name: active_priority_rules()
-- The active priority rules, the one that wins first.
SELECT conditions, set_priority FROM priority_rules WHERE is_active
ORDER BY priority DESC, created_at, id;

-- name: release_agent_load(user_id)!
UPDATE support_agents SET current_tickets = greatest(current_tickets - 1, 0) WHERE user_id = :user_id;

-- name: charge_agent_load(user_id)!
UPDATE support_agents SET current_tickets = current_tickets + 1 WHERE user_id = :user_id;

-- name: department_has_capacity(department, ceiling)$
-- Whether any available agent of the department could take a ticket now.
SELECT EXISTS (SELECT 1 FROM support_agents WHERE department = :department AND is_available
               AND status <> 'offline' AND current_tickets < least(max_tickets, :ceiling));

-- name: lock_assignment_turn(department)!
-- Assigners of one department take turns until their transactions end.
SELECT pg_advisory_xact_lock(hashtext('support-service:assign:' || :department));

-- name: assignment_candidate_free(department, ceiling, skills, wanted)^
-- The least-loaded available agent of the department under the ceiling (with one of the skills,
-- unless skills is null; those with a wanted skill first), whose row is not locked now; locked.
SELECT user_id, department, current_tickets FROM support_agents
WHERE department = :department AND is_available AND status <> 'offline'
  AND current_tickets < least(max_tickets, :ceiling)
  AND (:skills::text[] IS NULL OR lower(skills::text)::text[] && :skills::text[])
ORDER BY current_tickets, (lower(skills::text)::text[] && coalesce(:wanted::text[], '{}')) DESC, id
LIMIT 1 FOR UPDATE SKIP LOCKED;

-- name: assignment_candidate_wait(department, ceiling, skills, wanted)^
-- As assignment_candidate_free, but waiting for a locked row.
SELECT user_id, department, current_tickets FROM support_agents
WHERE department = :department AND is_available AND status <> 'offline'
  AND current_tickets < least(max_tickets, :ceiling)
  AND (:skills::text[] IS NULL OR lower(skills::text)::text[] && :skills::text[])
ORDER BY current_tickets, (lower(skills::text)::text[] && coalesce(:wanted::text[], '{}')) DESC, id
LIMIT 1 FOR UPDATE;

-- name: lock_waiting_tickets(department, limit)
-- Open unassigned tickets (of the department, if given), oldest first, skipping locked ones; locked.
SELECT * FROM support_tickets
WHERE status = 'open' AND agent_id IS NULL AND (:department::text IS NULL OR department = :department)
ORDER BY created_at, id LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- name: auto_assign_ticket(id, agent_id, now)^
UPDATE support_tickets SET agent_id = :agent_id, assigned_at = :now, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: agent_department(user_id)$
SELECT department FROM support_agents WHERE user_id = :user_id;

-- name: list_categorization_rules(active, limit, offset)
SELECT *, count(*) OVER () AS total FROM categorization_rules WHERE (:active::boolean IS NULL OR is_active = :active)
ORDER BY priority DESC, created_at, id LIMIT :limit OFFSET :offset;

-- name: get_categorization_rule(id)^
SELECT * FROM categorization_rules WHERE id = :id;

-- name: lock_categorization_rule(id)^
SELECT * FROM categorization_rules WHERE id = :id FOR UPDATE;

-- name: insert_categorization_rule(keywords, category, priority, is_active, now)^
INSERT INTO categorization_rules (keywords, category, priority, is_active, created_at, updated_at)
VALUES (:keywords, :category, coalesce(:priority::integer, 0), coalesce(:is_active::boolean, true), :now, :now)
RETURNING *;

-- name: update_categorization_rule(id, keywords, category, priority, is_active, now)^
-- Write back every mutable column of a rule locked with lock_categorization_rule.
UPDATE categorization_rules
SET keywords = :keywords, category = :category, priority = :priority, is_active = :is_active, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: delete_categorization_rule(id)^
DELETE FROM categorization_rules WHERE id = :id RETURNING id;

-- name: list_priority_rules(active, limit, offset)
SELECT *, count(*) OVER () AS total FROM priority_rules WHERE (:active::boolean IS NULL OR is_active = :active)
ORDER BY priority DESC, created_at, id LIMIT :limit OFFSET :offset;

-- name: get_priority_rule(id)^
SELECT * FROM priority_rules WHERE id = :id;

-- name: lock_priority_rule(id)^
SELECT * FROM priority_rules WHERE id = :id FOR UPDATE;

-- name: insert_priority_rule(conditions, set_priority, priority, is_active, now)^
INSERT INTO priority_rules (conditions, set_priority, priority, is_active, created_at, updated_at)
VALUES (:conditions, :set_priority, coalesce(:priority::integer, 0), coalesce(:is_active::boolean, true), :now, :now)
RETURNING *;

-- name: update_priority_rule(id, conditions, set_priority, priority, is_active, now)^
-- Write back every mutable column of a rule locked with lock_priority_rule.
UPDATE priority_rules
SET conditions = :conditions, set_priority = :set_priority, priority = :priority, is_active = :is_active,
    updated_at = :now
WHERE id = :id
RETURNING *;

-- name: delete_priority_rule(id)^
DELETE FROM priority_rules WHERE id = :id RETURNING id;
