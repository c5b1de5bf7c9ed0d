-- name: insert_session(session_key, customer_id, customer_name, department, subject, metadata, now)^
-- A new queued session; the partial unique index refuses a second open one per customer.
INSERT INTO chat_sessions (session_id, customer_id, customer_name, department, subject, metadata, status,
                           started_at, queued_at, created_at)
VALUES (:session_key, :customer_id, :customer_name, :department, :subject, :metadata, 'queued', :now, :now, :now)
RETURNING *;

-- name: open_session_of_customer(customer_id)^
SELECT * FROM chat_sessions WHERE customer_id = :customer_id AND status IN ('queued', 'active');

-- name: get_session(id)^
SELECT * FROM chat_sessions WHERE id = :id;

-- name: get_session_by_key(session_key)^
SELECT * FROM chat_sessions WHERE session_id = :session_key;

-- name: lock_session(id)^
SELECT * FROM chat_sessions WHERE id = :id FOR UPDATE;

-- name: open_sessions_of_customer(customer_id)
SELECT id FROM chat_sessions WHERE customer_id = :customer_id AND status IN ('queued', 'active');

-- name: open_sessions_of_agent(agent_id)
SELECT * FROM chat_sessions WHERE agent_id = :agent_id AND status = 'active' ORDER BY assigned_at;

-- name: pick_agent(department, exclude_agent)^
-- The least-loaded online, connected, available agent of the department with free capacity,
-- locked so no other transaction can fill the same place; the least recently assigned first.
SELECT * FROM support_agents
WHERE department = :department AND status = 'online' AND is_online AND is_available
  AND active_chats < max_chats
  AND (:exclude_agent::uuid IS NULL OR user_id <> :exclude_agent)
ORDER BY active_chats, updated_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: lock_agent_by_user(user_id)^
SELECT * FROM support_agents WHERE user_id = :user_id FOR UPDATE;

-- name: lock_queue(department)$
-- Serialise drain steps of one department (whichever replica runs them), for the transaction.
-- SKIP LOCKED alone let two concurrent drains each skip the session or agent the other held
-- and both stop while a waiting chat and a free place remained.
SELECT pg_advisory_xact_lock(hashtextextended('chat-queue:' || :department, 0));

-- name: next_queued(department)^
-- The session to serve next in a department, locked (skipping ones another replica holds).
SELECT * FROM chat_sessions
WHERE status = 'queued' AND department = :department
ORDER BY queue_priority DESC, queued_at, started_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: assign_session(id, agent_id, now)^
UPDATE chat_sessions
SET status = 'active', agent_id = :agent_id, assigned_at = :now, queue_position = NULL,
    last_message_at = coalesce(last_message_at, :now)
WHERE id = :id
RETURNING *;

-- name: add_agent_chats(user_id, delta, now)^
UPDATE support_agents
SET active_chats = greatest(active_chats + :delta, 0), updated_at = :now
WHERE user_id = :user_id
RETURNING *;

-- name: queue_of(department)
-- The waiting sessions of a department (all departments when null), in serving order.
SELECT s.*, row_number() OVER (PARTITION BY s.department
                               ORDER BY s.queue_priority DESC, s.queued_at, s.started_at) AS position
FROM chat_sessions s
WHERE s.status = 'queued' AND (:department::text IS NULL OR s.department = :department)
ORDER BY s.department, position;

-- name: queue_rate(department, since, now)$
-- Sessions assigned per second in the department recently: the basis of wait estimates.
SELECT count(*)::float / greatest(extract(epoch FROM :now::timestamptz - :since::timestamptz), 1)
FROM chat_sessions
WHERE department = :department AND assigned_at >= :since;

-- name: next_seq(id, now)$
-- Take the session's next message number (the row lock orders concurrent senders).
UPDATE chat_sessions SET last_seq = last_seq + 1, last_message_at = :now
WHERE id = :id AND status IN ('queued', 'active')
RETURNING last_seq;

-- name: find_message(session_id, sender_id, client_msg_id)^
SELECT * FROM chat_messages
WHERE session_id = :session_id AND sender_id IS NOT DISTINCT FROM :sender_id AND client_msg_id = :client_msg_id;

-- name: insert_message(session_id, seq, client_msg_id, sender_id, sender_type, message, message_type, now)^
INSERT INTO chat_messages (session_id, seq, client_msg_id, sender_id, sender_type, message, message_type, created_at)
VALUES (:session_id, :seq, :client_msg_id, :sender_id, :sender_type, :message, :message_type, :now)
RETURNING *;

-- name: mark_first_response(id, now)!
UPDATE chat_sessions SET first_response_at = :now WHERE id = :id AND first_response_at IS NULL;

-- name: messages_after(session_id, after_seq, limit)
SELECT * FROM chat_messages WHERE session_id = :session_id AND seq > :after_seq ORDER BY seq LIMIT :limit;

-- name: insert_note(session_id, sender_id, message, now)^
INSERT INTO chat_notes (session_id, sender_id, message, created_at)
VALUES (:session_id, :sender_id, :message, :now)
RETURNING *;

-- name: notes_of(session_id)
SELECT * FROM chat_notes WHERE session_id = :session_id ORDER BY created_at, id;

-- name: read_customer(id, up_to_seq)^
UPDATE chat_sessions SET customer_last_read_seq = greatest(customer_last_read_seq, least(:up_to_seq, last_seq))
WHERE id = :id RETURNING customer_last_read_seq AS up_to_seq;

-- name: read_agent(id, up_to_seq)^
UPDATE chat_sessions SET agent_last_read_seq = greatest(agent_last_read_seq, least(:up_to_seq, last_seq))
WHERE id = :id RETURNING agent_last_read_seq AS up_to_seq;

-- name: end_session(id, status, reason, now)^
UPDATE chat_sessions
SET status = :status, end_reason = :reason, ended_at = :now, queue_position = NULL,
    duration_seconds = greatest(0, extract(epoch FROM :now::timestamptz - started_at))::int
WHERE id = :id
RETURNING *;

-- name: transfer_session(id, agent_id, department, now)^
UPDATE chat_sessions SET agent_id = :agent_id, department = :department, assigned_at = :now
WHERE id = :id RETURNING *;

-- name: update_session_details(id, subject, metadata)^
UPDATE chat_sessions SET subject = :subject, metadata = :metadata WHERE id = :id RETURNING *;

-- name: requeue_session(id, now)^
-- Back to the head of its department's queue (its agent went away).
UPDATE chat_sessions
SET status = 'queued', agent_id = NULL, assigned_at = NULL, queue_priority = 1, queued_at = :now
WHERE id = :id
RETURNING *;

-- name: set_rating(id, rating)!
UPDATE chat_sessions SET satisfaction_rating = :rating WHERE id = :id;

-- name: link_ticket(id, ticket_id)!
UPDATE chat_sessions SET ticket_id = :ticket_id WHERE id = :id;

-- name: insert_session_feedback(chat_session_id, customer_id, agent_id, rating, comment, category)^
INSERT INTO feedback (chat_session_id, customer_id, agent_id, rating, comment, category)
VALUES (:chat_session_id, :customer_id, :agent_id, :rating, :comment, :category)
RETURNING *;

-- name: expired_queue(now, default_minutes)
-- Queued sessions that have waited past their department's queue timeout (else the configured
-- one), locked for ending.
SELECT s.* FROM chat_sessions s LEFT JOIN departments d ON d.name = s.department
WHERE s.status = 'queued'
  AND s.queued_at < :now::timestamptz - make_interval(mins => coalesce(d.queue_timeout_minutes, :default_minutes))
ORDER BY s.queued_at LIMIT 200 FOR UPDATE OF s SKIP LOCKED;

-- name: inactive_sessions(cutoff)
SELECT * FROM chat_sessions WHERE status = 'active' AND last_message_at < :cutoff
ORDER BY last_message_at LIMIT 200 FOR UPDATE SKIP LOCKED;

-- name: list_sessions(customer_scope, agent_scope, status, department, agent_id, customer_id, sort, limit, offset)
SELECT s.*, count(*) OVER () AS total
FROM chat_sessions s
WHERE (:customer_scope::uuid IS NULL OR s.customer_id = :customer_scope)
  AND (:agent_scope::uuid IS NULL OR s.agent_id = :agent_scope)
  AND (:status::text IS NULL OR s.status = :status)
  AND (:department::text IS NULL OR s.department = :department)
  AND (:agent_id::uuid IS NULL OR s.agent_id = :agent_id)
  AND (:customer_id::uuid IS NULL OR s.customer_id = :customer_id)
ORDER BY
  CASE WHEN :sort = 'started_at' THEN s.started_at END ASC,
  CASE WHEN :sort = '-started_at' THEN s.started_at END DESC,
  s.id
LIMIT :limit OFFSET :offset;

-- name: agent_names(user_ids)
SELECT user_id, display_name FROM support_agents WHERE user_id = ANY(:user_ids);

-- name: agents_snapshot(department)
SELECT user_id, display_name, status, active_chats, max_chats, department, is_online, role
FROM support_agents
WHERE (:department::text IS NULL OR department = :department)
ORDER BY display_name;

-- name: set_agent_presence(user_id, is_online, now)^
UPDATE support_agents SET is_online = :is_online, last_seen_at = :now
WHERE user_id = :user_id
RETURNING *;

-- name: set_agent_status(user_id, status, now)^
UPDATE support_agents SET status = :status, updated_at = :now WHERE user_id = :user_id RETURNING *;

-- name: online_agents()
SELECT user_id FROM support_agents WHERE is_online;

-- name: lapsed_agents(cutoff)
-- Agents without a connected socket since before the grace cutoff who still count as present.
SELECT * FROM support_agents
WHERE NOT is_online AND status <> 'offline' AND last_seen_at < :cutoff
FOR UPDATE SKIP LOCKED;

-- name: position_of(id)$
-- A queued session's place in its department's queue (null when it is not queued).
SELECT q.position FROM (
    SELECT id, row_number() OVER (ORDER BY queue_priority DESC, queued_at, started_at) AS position
    FROM chat_sessions
    WHERE status = 'queued' AND department = (SELECT department FROM chat_sessions WHERE id = :id)
) q WHERE q.id = :id;

-- name: insert_messages(ids, session_ids, sender_ids, sender_types, scopes, client_msg_ids, bodies, message_types, attachments, parts, topic, now)
-- Store a batch of chat messages in one statement (one round trip, one commit). Per item:
-- it is stored only if its session is open and the sender takes part (scope 'customer': the
-- session's customer; 'agent': its agent; 'all': supervisors and services). Each session's
-- last_seq moves by its number of new messages and they take the numbers in batch order.
-- Items that match an earlier message (same session, sender, client_msg_id) return that one.
-- Every stored message writes its chat.message event. Returns one row per stored or matched
-- item with `ord` (1-based position in the batch) and `duplicate`.
WITH input AS (
    SELECT * FROM unnest(:ids::uuid[], :session_ids::uuid[], :sender_ids::uuid[], :sender_types::text[],
                         :scopes::text[], :client_msg_ids::text[], :bodies::text[], :message_types::text[],
                         :attachments::text[], :parts::text[])
             WITH ORDINALITY AS i(id, session_id, sender_id, sender_type, scope, client_msg_id, message,
                                  message_type, attachments, parts, ord)
),
earlier AS (
    SELECT i.ord, m.* FROM input i
    JOIN chat_messages m ON m.session_id = i.session_id AND m.sender_id = i.sender_id
                        AND m.client_msg_id = i.client_msg_id
),
fresh AS (
    SELECT i.* FROM input i
    JOIN chat_sessions s ON s.id = i.session_id
    WHERE s.status IN ('queued', 'active')
      AND (i.scope = 'all' OR (i.scope = 'customer' AND s.customer_id = i.sender_id)
                           OR (i.scope = 'agent' AND s.agent_id = i.sender_id))
      AND NOT EXISTS (SELECT 1 FROM earlier e WHERE e.ord = i.ord)
),
counts AS (
    SELECT session_id, count(*) AS n, bool_or(sender_type = 'agent') AS agent_wrote FROM fresh GROUP BY session_id
),
locked AS (
    -- Lock the sessions in id order, so concurrent batches never wait on each other in a cycle.
    SELECT s.id FROM chat_sessions s WHERE s.id IN (SELECT session_id FROM counts) ORDER BY s.id FOR UPDATE
),
bumped AS (
    UPDATE chat_sessions s
    SET last_seq = s.last_seq + c.n, last_message_at = :now,
        first_response_at = CASE WHEN c.agent_wrote THEN coalesce(s.first_response_at, :now) ELSE s.first_response_at END
    FROM counts c
    WHERE s.id = c.session_id AND s.id IN (SELECT id FROM locked)
    RETURNING s.id, s.last_seq, c.n
),
numbered AS (
    SELECT f.*, b.last_seq - b.n + row_number() OVER (PARTITION BY f.session_id ORDER BY f.ord) AS seq
    FROM fresh f JOIN bumped b ON b.id = f.session_id
),
stored AS (
    INSERT INTO chat_messages (id, session_id, seq, client_msg_id, sender_id, sender_type, message, message_type,
                               attachments, parts, created_at)
    SELECT id, session_id, seq, client_msg_id, sender_id, sender_type, message, message_type,
           attachments::jsonb, parts::jsonb, :now FROM numbered
    RETURNING *
),
logged AS (
    INSERT INTO support_events (type, topic, entity_type, entity_id, actor_id, payload, created_at)
    SELECT 'chat.message', :topic, 'chat_session', session_id::text, sender_id,
           jsonb_build_object('session_id', session_id, 'message_id', id, 'seq', seq,
                              'sender_type', sender_type, 'sender_id', sender_id),
           :now
    FROM stored
)
SELECT n.ord, FALSE AS duplicate, s.id, s.session_id, s.seq, s.client_msg_id, s.sender_id, s.sender_type,
       s.message, s.message_type, s.attachments, s.parts, s.created_at
FROM stored s JOIN numbered n ON n.id = s.id
UNION ALL
SELECT e.ord, TRUE, e.id, e.session_id, e.seq, e.client_msg_id, e.sender_id, e.sender_type,
       e.message, e.message_type, e.attachments, e.parts, e.created_at
FROM earlier e;

-- name: chat_availability(department)
-- Per department (one by name, or every public one): agents online and connected, free chat
-- places and queued chats, for the widget's pre-chat form and its "leave a message" offer.
WITH names AS (
    SELECT name FROM departments WHERE :department::text IS NULL AND is_public
    UNION
    SELECT :department::text WHERE :department::text IS NOT NULL
)
SELECT n.name, d.display_name, d.description, d.offline_message,
       d.business_hours, d.time_zone,
       count(a.id)::int AS online_agents,
       coalesce(sum(greatest(a.max_chats - a.active_chats, 0)), 0)::int AS free_places,
       (SELECT count(*)::int FROM chat_sessions s WHERE s.department = n.name AND s.status = 'queued') AS queued
FROM names n
LEFT JOIN departments d ON d.name = n.name
LEFT JOIN support_agents a ON a.department = n.name AND a.status = 'online' AND a.is_online AND a.is_available
GROUP BY n.name, d.display_name, d.description, d.offline_message, d.business_hours, d.time_zone
ORDER BY n.name;

-- name: session_greeting(id)^
-- What a chat's greeting says: its department's own greeting (NULL: the default one) and the
-- display name of the agent an active session is with (NULL while it waits).
SELECT d.greeting, a.display_name AS agent_name
FROM chat_sessions s
LEFT JOIN departments d ON d.name = s.department
LEFT JOIN support_agents a ON a.user_id = s.agent_id AND s.status = 'active'
WHERE s.id = :id;

-- name: first_customer_messages(ids)
-- The first message each session's customer wrote (queue previews: agents see what a waiting
-- customer asked before they accept).
SELECT DISTINCT ON (m.session_id) m.session_id, m.message
FROM chat_messages m
WHERE m.session_id = ANY(:ids::uuid[]) AND m.sender_type = 'customer'
ORDER BY m.session_id, m.seq;
