-- Bulk data for the analytics and KB search benchmark (bench/gen_data.py), generated inside
-- PostgreSQL with generate_series: a year of a busy help desk ending at :now. Deterministic for a
-- given seed (setseed). Encrypted columns get one real ciphertext made by the caller, so the
-- API can read every row.

-- name: seed(seed)^
SELECT setseed(:seed);

-- name: departments()!
INSERT INTO departments (name, description)
SELECT d, 'bench department' FROM unnest(ARRAY['general', 'billing', 'bookings', 'technical', 'accounts', 'partners']) AS d
ON CONFLICT (name) DO NOTHING;

-- name: agents(count)!
INSERT INTO support_agents (user_id, display_name, role, department, skills, status, is_online)
SELECT gen_random_uuid(), 'Bench Agent ' || n, CASE WHEN n % 10 = 0 THEN 'supervisor' ELSE 'agent' END,
       (ARRAY['general', 'billing', 'bookings', 'technical', 'accounts', 'partners'])[1 + n % 6], '{}', 'offline', FALSE
FROM generate_series(1, :count) AS n;

-- name: tickets(count, now, description)!
-- Statuses 55 % resolved, 25 % closed, 8 % open, 7 % in progress, 5 % pending; first responses
-- for nine in ten, after minutes to hours; resolutions after hours to days; 5 % reopened.
WITH agents AS (SELECT array_agg(user_id ORDER BY user_id) AS ids FROM support_agents WHERE display_name LIKE 'Bench Agent %'),
raw AS (
    SELECT n, :now::timestamptz - random() * interval '365 days' AS created_at, random() AS s, random() AS a,
           random() AS fr, random() AS rs, (ARRAY['general', 'billing', 'bookings', 'technical', 'accounts', 'partners'])[1 + floor(random() * 6)::int] AS dept
    FROM generate_series(1, :count) AS n
)
INSERT INTO support_tickets (ticket_number, customer_id, agent_id, category, department, priority, status, channel,
                             subject, description, assigned_at, first_response_at, resolved_at, closed_at,
                             reopened_count, escalation_level, tags, created_at, updated_at)
SELECT 'BENCH-' || lpad(n::text, 7, '0'), gen_random_uuid(),
       CASE WHEN a < 0.92 THEN agents.ids[1 + floor(a / 0.92 * array_length(agents.ids, 1))::int] END,
       dept, dept,
       (ARRAY['low', 'medium', 'medium', 'high', 'urgent'])[1 + floor(random() * 5)::int],
       status, (ARRAY['web', 'chat', 'email', 'api'])[1 + floor(random() * 4)::int],
       'Bench ticket ' || n, :description,
       CASE WHEN a < 0.92 THEN created_at + fr * interval '30 minutes' END,
       CASE WHEN fr < 0.9 THEN created_at + (fr * fr) * interval '12 hours' + interval '2 minutes' END,
       CASE WHEN status IN ('resolved', 'closed') THEN created_at + (rs * rs) * interval '6 days' + interval '20 minutes' END,
       CASE WHEN status = 'closed' THEN created_at + (rs * rs) * interval '6 days' + interval '1 day' END,
       CASE WHEN random() < 0.05 THEN 1 ELSE 0 END, 0, '{}', created_at, created_at
FROM raw, agents,
     LATERAL (SELECT CASE WHEN s < 0.55 THEN 'resolved' WHEN s < 0.80 THEN 'closed' WHEN s < 0.88 THEN 'open'
                          WHEN s < 0.95 THEN 'in_progress' ELSE 'pending' END AS status) AS st;

-- name: escalations(share)!
INSERT INTO ticket_escalations (ticket_id, trigger, from_level, to_level, from_priority, to_priority, from_agent_id,
                                to_agent_id, created_at)
SELECT id, CASE WHEN random() < 0.5 THEN 'rule' ELSE 'manual' END, 0, 1, priority, 'urgent', agent_id, agent_id,
       created_at + random() * interval '2 days'
FROM support_tickets
WHERE ticket_number LIKE 'BENCH-%' AND random() < :share;

-- name: chat_sessions(count, now)!
-- 84 % answered and ended, 8 % timed out in the queue, 7 % abandoned, the rest still open.
WITH agents AS (SELECT array_agg(user_id ORDER BY user_id) AS ids FROM support_agents WHERE display_name LIKE 'Bench Agent %'),
raw AS (
    SELECT n, :now::timestamptz - random() * interval '365 days' AS started_at, random() AS s, random() AS w,
           random() AS d, (ARRAY['general', 'billing', 'bookings', 'technical', 'accounts', 'partners'])[1 + floor(random() * 6)::int] AS dept
    FROM generate_series(1, :count) AS n
), shaped AS (
    SELECT raw.*, CASE WHEN n <= 50 THEN 'active' WHEN s < 0.84 THEN 'ended' WHEN s < 0.92 THEN 'timed_out'
                       ELSE 'abandoned' END AS status,
           interval '5 seconds' + (w * w) * interval '8 minutes' AS wait,
           interval '2 minutes' + d * interval '40 minutes' AS length
    FROM raw
)
INSERT INTO chat_sessions (session_id, customer_id, agent_id, department, status, subject, started_at, queued_at,
                           assigned_at, first_response_at, last_message_at, ended_at, end_reason, duration_seconds,
                           last_seq, created_at)
SELECT 'bench-' || n, gen_random_uuid(),
       CASE WHEN status IN ('ended', 'active') THEN agents.ids[1 + floor(random() * array_length(agents.ids, 1))::int] END,
       dept, status, 'Bench chat ' || n,
       CASE WHEN status = 'active' THEN :now::timestamptz - interval '10 minutes' ELSE started_at END,
       CASE WHEN status = 'active' THEN :now::timestamptz - interval '10 minutes' ELSE started_at END,
       CASE WHEN status IN ('ended', 'active') THEN started_at + wait END,
       CASE WHEN status IN ('ended', 'active') THEN started_at + wait + interval '20 seconds' END,
       CASE WHEN status = 'ended' THEN started_at + wait + length END,
       CASE WHEN status = 'ended' THEN started_at + wait + length
            WHEN status = 'timed_out' THEN started_at + interval '5 minutes'
            WHEN status = 'abandoned' THEN started_at + wait / 2 END,
       CASE status WHEN 'ended' THEN 'customer' WHEN 'timed_out' THEN 'queue_timeout' WHEN 'abandoned' THEN 'customer' END,
       CASE WHEN status = 'ended' THEN extract(epoch FROM length)::int END,
       CASE WHEN status IN ('ended', 'active') THEN 10 ELSE 1 END,
       started_at
FROM shaped, agents;

-- name: chat_messages(per_session, limit, message)!
-- per_session messages for each answered session (one for the others), up to `limit` in all.
INSERT INTO chat_messages (session_id, seq, sender_id, sender_type, message, created_at)
SELECT s.id, q, CASE WHEN q % 2 = 1 THEN s.customer_id ELSE s.agent_id END,
       CASE WHEN q % 2 = 1 THEN 'customer' ELSE 'agent' END, :message,
       coalesce(s.assigned_at, s.started_at) + q * interval '40 seconds'
FROM (SELECT * FROM chat_sessions WHERE session_id LIKE 'bench-%' ORDER BY id LIMIT :limit) AS s,
     LATERAL generate_series(1, CASE WHEN s.agent_id IS NULL THEN 1 ELSE :per_session END) AS q
LIMIT :limit;

-- name: articles(count, now)!
-- Titles and bodies from a support vocabulary, so searches hit many articles (as on a real
-- help centre); nine in ten published.
WITH vocabulary AS (
    SELECT ARRAY['booking', 'cancel', 'cancellation', 'refund', 'payment', 'invoice', 'card', 'hotel', 'room',
                 'reservation', 'check-in', 'checkout', 'airport', 'transfer', 'luggage', 'flight', 'change',
                 'date', 'guest', 'child', 'breakfast', 'parking', 'deposit', 'voucher', 'discount', 'loyalty',
                 'points', 'account', 'password', 'email', 'receipt', 'tax', 'currency', 'fee', 'policy',
                 'insurance', 'claim', 'delay', 'upgrade', 'review', 'message', 'host', 'property', 'apartment',
                 'villa', 'pool', 'wifi', 'pet', 'accessibility', 'wheelchair', 'visa', 'passport', 'late',
                 'early', 'night', 'week', 'group', 'business', 'family', 'contact', 'support', 'agent', 'chat',
                 'phone', 'app', 'mobile', 'notification', 'security', 'fraud', 'privacy', 'data', 'address',
                 'map', 'location', 'distance', 'price', 'total', 'night', 'extra', 'bed', 'crib', 'shuttle',
                 'train', 'car', 'rental', 'driver', 'license', 'fuel', 'damage', 'cleaning', 'noise',
                 'complaint', 'compensation', 'rebooking', 'overbooking', 'confirmation', 'number', 'code',
                 'gift', 'subscription', 'newsletter', 'language'] AS words
)
INSERT INTO kb_articles (title, content, content_text, content_format, category, tags, author_id, is_published,
                         published_at, view_count, helpful_count, not_helpful_count, created_at, updated_at)
SELECT initcap(t.title), t.body, t.body, 'markdown',
       (ARRAY['general', 'billing', 'bookings', 'technical', 'accounts', 'partners'])[1 + n % 6],
       ARRAY[words[1 + floor(random() * array_length(words, 1))::int], words[1 + floor(random() * array_length(words, 1))::int]],
       gen_random_uuid(), n % 10 <> 0, CASE WHEN n % 10 <> 0 THEN created END,
       floor(random() * 5000)::int, floor(random() * 200)::int, floor(random() * 40)::int, created, created
FROM vocabulary, generate_series(1, :count) AS n,
     LATERAL (SELECT :now::timestamptz - random() * interval '700 days' + n * interval '0 seconds' AS created) AS c,
     LATERAL (SELECT (SELECT string_agg(words[1 + floor(random() * array_length(words, 1))::int] || repeat('', g), ' ')
                      FROM generate_series(1, 4 + n % 4) AS g) || ' ' || n AS title,
                     (SELECT string_agg(words[1 + floor(random() * array_length(words, 1))::int]
                                        || CASE WHEN k % 12 = 0 THEN '.' ELSE '' END, ' ')
                      FROM generate_series(1, 120 + n % 200) AS k) AS body) AS t;

-- name: feedback(on_tickets, on_chats, comment)!
-- Feedback on resolved/closed tickets and on answered chats, at most one each, mostly good.
INSERT INTO feedback (ticket_id, chat_session_id, customer_id, agent_id, rating, comment, category, department,
                      sentiment_score, created_at, updated_at)
SELECT ticket_id, chat_session_id, customer_id, agent_id, rating, :comment, category, department,
       round(((rating - 3) / 2.0 * 0.8 + (random() - 0.5) * 0.4)::numeric, 2), created_at, created_at
FROM (
    SELECT t.id AS ticket_id, NULL::uuid AS chat_session_id, t.customer_id, t.agent_id, t.category, t.department,
           (ARRAY[1, 2, 3, 4, 4, 5, 5, 5, 5, 3])[1 + floor(random() * 10)::int] AS rating,
           coalesce(t.resolved_at, t.created_at) + interval '3 hours' AS created_at
    FROM (SELECT * FROM support_tickets WHERE ticket_number LIKE 'BENCH-%' AND status IN ('resolved', 'closed')
          ORDER BY id LIMIT :on_tickets) AS t
    UNION ALL
    SELECT NULL, s.id, s.customer_id, s.agent_id, s.department, s.department,
           (ARRAY[1, 2, 3, 4, 4, 5, 5, 5, 5, 4])[1 + floor(random() * 10)::int],
           coalesce(s.ended_at, s.started_at) + interval '1 minute'
    FROM (SELECT * FROM chat_sessions WHERE session_id LIKE 'bench-%' AND status = 'ended'
          ORDER BY id LIMIT :on_chats) AS s
) AS f;

-- name: counts()^
SELECT (SELECT count(*) FROM support_tickets) AS tickets, (SELECT count(*) FROM ticket_escalations) AS escalations,
       (SELECT count(*) FROM chat_sessions) AS chat_sessions, (SELECT count(*) FROM chat_messages) AS chat_messages,
       (SELECT count(*) FROM kb_articles) AS articles, (SELECT count(*) FROM feedback) AS feedback;

-- name: has_bench_data()$
SELECT EXISTS (SELECT 1 FROM support_tickets WHERE ticket_number LIKE 'BENCH-%');

-- name: vacuum_analyze()!
VACUUM (ANALYZE);
