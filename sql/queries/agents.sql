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

-- name: agent_stats(department, since, until, limit, offset)
-- Per agent (of the department, or all), for supervisors: live status and load, and over the
-- window: chats assigned, their average first response (assigned -> first agent message), the
-- average handle time of chats that ended (assigned -> ended), and the ratings received.
SELECT a.*, count(*) OVER () AS total,
       c.chats, c.first_response_avg, c.first_response_count, c.handle_avg, c.handle_count,
       f.ratings, f.rating_avg
FROM support_agents a
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE s.assigned_at >= :since) AS chats,
           avg(extract(epoch FROM s.first_response_at - s.assigned_at))
               FILTER (WHERE s.assigned_at >= :since AND s.first_response_at IS NOT NULL) AS first_response_avg,
           count(*) FILTER (WHERE s.assigned_at >= :since AND s.first_response_at IS NOT NULL) AS first_response_count,
           avg(extract(epoch FROM s.ended_at - s.assigned_at))
               FILTER (WHERE s.ended_at >= :since AND s.ended_at < :until) AS handle_avg,
           count(*) FILTER (WHERE s.ended_at >= :since AND s.ended_at < :until) AS handle_count
    FROM chat_sessions s
    WHERE s.agent_id = a.user_id AND s.assigned_at IS NOT NULL AND s.assigned_at < :until
      AND (s.assigned_at >= :since OR s.ended_at >= :since)
) c ON TRUE
LEFT JOIN LATERAL (
    SELECT count(*) AS ratings, avg(fb.rating) AS rating_avg
    FROM feedback fb
    WHERE fb.agent_id = a.user_id AND fb.created_at >= :since AND fb.created_at < :until
) f ON TRUE
WHERE (:department::text IS NULL OR a.department = :department)
ORDER BY a.department, a.display_name, a.id
LIMIT :limit OFFSET :offset;
