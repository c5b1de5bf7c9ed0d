-- Customer feedback on a ticket or a chat session (exactly one), one per ticket/session.

-- name: feedback_ticket(id)^
-- What feedback on a ticket needs to know about it.
SELECT id, customer_id, agent_id, category, department, status FROM support_tickets WHERE id = :id;

-- name: feedback_session(id)^
-- What feedback on a chat session needs to know about it.
SELECT id, customer_id, agent_id, department, status, assigned_at FROM chat_sessions WHERE id = :id;

-- name: insert_feedback(ticket_id, chat_session_id, customer_id, agent_id, rating, comment, category, department, sentiment_score, now)^
INSERT INTO feedback (ticket_id, chat_session_id, customer_id, agent_id, rating, comment, category,
                      department, sentiment_score, created_at, updated_at)
VALUES (:ticket_id, :chat_session_id, :customer_id, :agent_id, :rating, :comment, :category,
        :department, :sentiment_score, :now, :now)
RETURNING *;

-- name: get_feedback(id)^
-- A feedback row with the agents of its ticket and session now (agents see feedback on theirs).
SELECT f.*, t.agent_id AS ticket_agent_id, s.agent_id AS session_agent_id
FROM feedback f
LEFT JOIN support_tickets t ON t.id = f.ticket_id
LEFT JOIN chat_sessions s ON s.id = f.chat_session_id
WHERE f.id = :id;

-- name: lock_feedback(id)^
SELECT f.*, t.agent_id AS ticket_agent_id, s.agent_id AS session_agent_id
FROM feedback f
LEFT JOIN support_tickets t ON t.id = f.ticket_id
LEFT JOIN chat_sessions s ON s.id = f.chat_session_id
WHERE f.id = :id
FOR UPDATE OF f;

-- name: update_feedback(id, rating, comment, category, sentiment_score, now)^
UPDATE feedback
SET rating = :rating, comment = :comment, category = :category, sentiment_score = :sentiment_score,
    updated_at = :now
WHERE id = :id
RETURNING *;

-- name: set_feedback_sentiment(id, sentiment_score)!
UPDATE feedback SET sentiment_score = :sentiment_score WHERE id = :id;

-- name: set_session_satisfaction(id, rating)!
-- A chat's satisfaction_rating follows its feedback.
UPDATE chat_sessions SET satisfaction_rating = :rating WHERE id = :id;

-- name: list_feedback(customer_scope, agent_scope, ticket_id, chat_session_id, agent_id, customer_id, rating, category, department, created_after, created_before, sort, limit, offset)
-- A page of the feedback the caller may see, with the total on every row. customer_scope: a
-- customer's own; agent_scope: feedback on the agent's tickets and chats.
SELECT f.*, count(*) OVER () AS total
FROM feedback f
LEFT JOIN support_tickets t ON t.id = f.ticket_id
LEFT JOIN chat_sessions s ON s.id = f.chat_session_id
WHERE (:customer_scope::uuid IS NULL OR f.customer_id = :customer_scope)
  AND (:agent_scope::uuid IS NULL OR f.agent_id = :agent_scope OR t.agent_id = :agent_scope
       OR s.agent_id = :agent_scope)
  AND (:ticket_id::uuid IS NULL OR f.ticket_id = :ticket_id)
  AND (:chat_session_id::uuid IS NULL OR f.chat_session_id = :chat_session_id)
  AND (:agent_id::uuid IS NULL OR f.agent_id = :agent_id)
  AND (:customer_id::uuid IS NULL OR f.customer_id = :customer_id)
  AND (:rating::integer[] IS NULL OR f.rating = ANY(:rating))
  AND (:category::text IS NULL OR f.category = :category)
  AND (:department::text IS NULL OR f.department = :department)
  AND (:created_after::timestamptz IS NULL OR f.created_at >= :created_after)
  AND (:created_before::timestamptz IS NULL OR f.created_at < :created_before)
ORDER BY
  CASE WHEN :sort = 'created_at' THEN f.created_at END ASC,
  CASE WHEN :sort = '-created_at' THEN f.created_at END DESC,
  CASE WHEN :sort = 'rating' THEN f.rating END ASC,
  CASE WHEN :sort = '-rating' THEN f.rating END DESC,
  CASE WHEN :sort = 'sentiment_score' THEN f.sentiment_score END ASC,
  CASE WHEN :sort = '-sentiment_score' THEN f.sentiment_score END DESC,
  f.created_at DESC, f.id
LIMIT :limit OFFSET :offset;
