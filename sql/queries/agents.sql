-- name: insert_agent(user_id, display_name, role, department, skills, max_tickets, max_chats, is_available, performance_score)^
INSERT INTO support_agents (user_id, display_name, role, department, skills, max_tickets, max_chats,
                            is_available, performance_score)
VALUES (:user_id, :display_name, :role, :department, :skills, :max_tickets, :max_chats,
        :is_available, :performance_score)
RETURNING *;

-- name: get_agent(id)^
SELECT * FROM support_agents WHERE id = :id;

-- name: get_agent_by_user(user_id)^
SELECT * FROM support_agents WHERE user_id = :user_id;

-- name: lock_agent(id)^
SELECT * FROM support_agents WHERE id = :id FOR UPDATE;

-- name: list_agents(department, role, status, is_available, limit, offset)
SELECT a.*, count(*) OVER () AS total
FROM support_agents a
WHERE (:department::text IS NULL OR a.department = :department)
  AND (:role::text IS NULL OR a.role = :role)
  AND (:status::text IS NULL OR a.status = :status)
  AND (:is_available::boolean IS NULL OR a.is_available = :is_available)
ORDER BY a.display_name, a.id
LIMIT :limit OFFSET :offset;

-- name: update_agent(id, display_name, role, department, skills, max_tickets, max_chats, status, is_available, performance_score, now)^
UPDATE support_agents
SET display_name = :display_name, role = :role, department = :department, skills = :skills,
    max_tickets = :max_tickets, max_chats = :max_chats, status = :status, is_available = :is_available,
    performance_score = :performance_score, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: delete_agent(id)!
DELETE FROM support_agents WHERE id = :id;
