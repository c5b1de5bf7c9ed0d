-- Support analytics: every figure is computed here, over a window [since, until), narrowed to a
-- department and/or an agent (NULL = all). Durations are seconds.
-- Series: `buckets` is the window's list of bucket starts (report_buckets: hours, days or weeks
-- in the caller's time zone, from analytics_buckets() of migration 0003); a row's bucket is its
-- 1-based position in that list, width_bucket(ts, buckets) — a binary search, far cheaper per
-- row than date_trunc in a time zone. Counts and averages group by hashing (grouping sets give
-- totals and breakdowns in one pass); percentiles sort once, over the whole window.

-- name: analytics_work_mem()!
-- Percentiles and the concurrency sweep sort their inputs: sort in memory, for this
-- transaction only.
SET LOCAL work_mem = '32MB';

-- name: report_buckets(since, until, granularity, tz)
SELECT bucket FROM analytics_buckets(:since, :until, :granularity, :tz);

-- name: ticket_breakdown(since, until, buckets, department, agent_id)
-- Tickets created in the window, in one pass: by status, priority, category and bucket; the
-- 'total' row holds the totals (created, and how many of them were ever reopened).
SELECT CASE WHEN GROUPING(t.status) = 0 THEN 'status'
            WHEN GROUPING(t.priority) = 0 THEN 'priority'
            WHEN GROUPING(t.category) = 0 THEN 'category'
            WHEN GROUPING(width_bucket(t.created_at, :buckets::timestamptz[])) = 0 THEN 'bucket'
            ELSE 'total' END AS dimension,
       coalesce(t.status, t.priority, t.category) AS name,
       width_bucket(t.created_at, :buckets::timestamptz[]) AS bucket,
       count(*) AS tickets,
       count(*) FILTER (WHERE t.reopened_count > 0) AS reopened
FROM support_tickets t
WHERE t.created_at >= :since AND t.created_at < :until
  AND (:department::text IS NULL OR t.department = :department)
  AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)
GROUP BY GROUPING SETS ((t.status), (t.priority), (t.category), (width_bucket(t.created_at, :buckets::timestamptz[])), ());

-- name: tickets_resolved(since, until, buckets, department, agent_id)
-- Tickets resolved in the window, per bucket and in total (bucket NULL).
SELECT width_bucket(t.resolved_at, :buckets::timestamptz[]) AS bucket, count(*) AS resolved
FROM support_tickets t
WHERE t.resolved_at >= :since AND t.resolved_at < :until
  AND (:department::text IS NULL OR t.department = :department)
  AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)
GROUP BY GROUPING SETS ((width_bucket(t.resolved_at, :buckets::timestamptz[])), ());

-- name: ticket_counts(since, until, department, agent_id)^
-- Escalations in the window, tickets created in the window that breached their SLA, and the
-- backlog when the window ends: created before its end and neither resolved nor closed by then
-- (still open now, or done only after the end).
SELECT
    (SELECT count(*) FROM support_tickets t
     WHERE t.sla_breached AND t.created_at >= :since AND t.created_at < :until
       AND (:department::text IS NULL OR t.department = :department)
       AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)) AS sla_breached,
    (SELECT count(*) FROM ticket_escalations e JOIN support_tickets t ON t.id = e.ticket_id
     WHERE e.created_at >= :since AND e.created_at < :until
       AND (:department::text IS NULL OR t.department = :department)
       AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)) AS escalated,
    (SELECT count(*) FROM support_tickets t
     WHERE t.status IN ('open', 'in_progress', 'pending') AND t.created_at < :until
       AND (:department::text IS NULL OR t.department = :department)
       AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id))
    + (SELECT count(*) FROM support_tickets t
       WHERE t.status NOT IN ('open', 'in_progress', 'pending') AND coalesce(t.resolved_at, t.closed_at) >= :until
         AND t.created_at < :until
         AND (:department::text IS NULL OR t.department = :department)
         AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)) AS backlog;

-- name: chat_totals(since, until, department, agent_id)^
-- Sessions started in the window: how many, answered (an agent joined), timed out in the
-- queue, abandoned by the customer; waits (started -> agent joined) and durations.
SELECT count(*) AS sessions,
       count(*) FILTER (WHERE s.assigned_at IS NOT NULL) AS answered,
       count(*) FILTER (WHERE s.status = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE s.status = 'abandoned') AS abandoned,
       avg(extract(epoch FROM s.assigned_at - s.started_at)) AS wait_avg,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM s.assigned_at - s.started_at)) AS wait_pct,
       count(s.assigned_at) AS wait_count,
       avg(s.duration_seconds) AS duration_avg,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY s.duration_seconds) AS duration_pct,
       count(s.duration_seconds) AS duration_count
FROM chat_sessions s
WHERE s.started_at >= :since AND s.started_at < :until
  AND (:department::text IS NULL OR s.department = :department)
  AND (:agent_id::uuid IS NULL OR s.agent_id = :agent_id);

-- name: chat_series(since, until, buckets, department, agent_id)
-- Per bucket: sessions started, answered, and the average chat first response (agent joined,
-- else started -> first agent message).
SELECT width_bucket(s.started_at, :buckets::timestamptz[]) AS bucket, count(*) AS sessions,
       count(*) FILTER (WHERE s.assigned_at IS NOT NULL) AS answered,
       avg(extract(epoch FROM s.first_response_at - coalesce(s.assigned_at, s.started_at))) AS first_response_avg
FROM chat_sessions s
WHERE s.started_at >= :since AND s.started_at < :until
  AND (:department::text IS NULL OR s.department = :department)
  AND (:agent_id::uuid IS NULL OR s.agent_id = :agent_id)
GROUP BY 1;

-- name: chat_peak_concurrent(since, until, department, agent_id)$
-- The most sessions open (started, not yet ended) at one instant of the window: a running sum
-- over starts (+1) and ends (-1), each read in time order from its index and merged, ends
-- first at equal times; a 0 event at `since` carries the sessions already open then. Chats end
-- after CHAT_INACTIVITY_TIMEOUT_MINUTES idle, so sessions started more than two days before the
-- window are not looked at.
WITH changes AS (
    SELECT :since::timestamptz AS at, 0 AS delta
    UNION ALL
    (SELECT s.started_at, 1 FROM chat_sessions s
     WHERE s.started_at >= :since::timestamptz - interval '2 days' AND s.started_at < :until
       AND (:department::text IS NULL OR s.department = :department)
       AND (:agent_id::uuid IS NULL OR s.agent_id = :agent_id)
     ORDER BY s.started_at)
    UNION ALL
    (SELECT s.ended_at, -1 FROM chat_sessions s
     WHERE s.ended_at IS NOT NULL AND s.ended_at >= :since::timestamptz - interval '2 days' AND s.ended_at < :until
       AND s.started_at >= :since::timestamptz - interval '2 days'
       AND (:department::text IS NULL OR s.department = :department)
       AND (:agent_id::uuid IS NULL OR s.agent_id = :agent_id)
     ORDER BY s.ended_at)
)
SELECT coalesce(max(running) FILTER (WHERE at >= :since), 0)
FROM (SELECT at, sum(delta) OVER (ORDER BY at, delta ROWS UNBOUNDED PRECEDING) AS running FROM changes) AS sweep;

-- name: ticket_first_response(since, until, department, agent_id)^
-- Ticket first response (created -> first public agent reply) of tickets created in the window.
SELECT avg(seconds) AS avg, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY seconds) AS pct, count(*) AS count
FROM (SELECT extract(epoch FROM t.first_response_at - t.created_at) AS seconds
      FROM support_tickets t
      WHERE t.created_at >= :since AND t.created_at < :until AND t.first_response_at IS NOT NULL
        AND (:department::text IS NULL OR t.department = :department)
        AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)) AS x;

-- name: ticket_resolution(since, until, department, agent_id)^
-- Ticket resolution (created -> resolved) of tickets resolved in the window.
SELECT avg(seconds) AS avg, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY seconds) AS pct, count(*) AS count
FROM (SELECT extract(epoch FROM t.resolved_at - t.created_at) AS seconds
      FROM support_tickets t
      WHERE t.resolved_at >= :since AND t.resolved_at < :until
        AND (:department::text IS NULL OR t.department = :department)
        AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)) AS x;

-- name: chat_first_response(since, until, department, agent_id)^
-- Chat first response (agent joined, else started -> first agent message) of sessions started
-- in the window.
SELECT avg(seconds) AS avg, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY seconds) AS pct, count(*) AS count
FROM (SELECT extract(epoch FROM s.first_response_at - coalesce(s.assigned_at, s.started_at)) AS seconds
      FROM chat_sessions s
      WHERE s.started_at >= :since AND s.started_at < :until AND s.first_response_at IS NOT NULL
        AND (:department::text IS NULL OR s.department = :department)
        AND (:agent_id::uuid IS NULL OR s.agent_id = :agent_id)) AS x;

-- name: ticket_time_series(since, until, buckets, department, agent_id)
-- Average ticket first response per creation bucket ('created') and average resolution per
-- resolution bucket ('resolved').
SELECT 'created' AS dimension, width_bucket(t.created_at, :buckets::timestamptz[]) AS bucket,
       avg(extract(epoch FROM t.first_response_at - t.created_at)) AS seconds
FROM support_tickets t
WHERE t.created_at >= :since AND t.created_at < :until AND t.first_response_at IS NOT NULL
  AND (:department::text IS NULL OR t.department = :department)
  AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)
GROUP BY 2
UNION ALL
SELECT 'resolved', width_bucket(t.resolved_at, :buckets::timestamptz[]),
       avg(extract(epoch FROM t.resolved_at - t.created_at))
FROM support_tickets t
WHERE t.resolved_at >= :since AND t.resolved_at < :until
  AND (:department::text IS NULL OR t.department = :department)
  AND (:agent_id::uuid IS NULL OR t.agent_id = :agent_id)
GROUP BY 2;

-- name: feedback_breakdown(since, until, buckets, department, agent_id, category)
-- Feedback given in the window in one pass: the 'total' row (count, average rating, CSAT
-- share of 4-5, average sentiment), one row per rating, per agent, per category and per bucket.
SELECT CASE WHEN GROUPING(f.rating) = 0 THEN 'rating'
            WHEN GROUPING(f.agent_id) = 0 THEN 'agent'
            WHEN GROUPING(f.category) = 0 THEN 'category'
            WHEN GROUPING(width_bucket(f.created_at, :buckets::timestamptz[])) = 0 THEN 'bucket'
            ELSE 'total' END AS dimension,
       f.rating, f.agent_id, f.category, width_bucket(f.created_at, :buckets::timestamptz[]) AS bucket,
       count(*) AS count,
       avg(f.rating) AS average_rating,
       avg(CASE WHEN f.rating >= 4 THEN 1.0 ELSE 0.0 END) AS csat,
       avg(f.sentiment_score) AS average_sentiment
FROM feedback f
WHERE f.created_at >= :since AND f.created_at < :until
  AND (:department::text IS NULL OR f.department = :department)
  AND (:agent_id::uuid IS NULL OR f.agent_id = :agent_id)
  AND (:category::text IS NULL OR f.category = :category)
GROUP BY GROUPING SETS ((f.rating), (f.agent_id), (f.category), (width_bucket(f.created_at, :buckets::timestamptz[])), ());
