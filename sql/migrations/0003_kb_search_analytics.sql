-- Knowledge-base search (PostgreSQL full text: weighted, stemmed, accents folded, prefixes, and
-- typo tolerance through a vocabulary searched with pg_trgm), the department of each feedback
-- row, and the indexes the analytics reports read through.
-- Runs on PostgreSQL 15 and 18 with core and trusted contrib extensions only (no pgcrypto).

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- English with accents folded: "cancellation" and "cancelled" index as "cancel", "café" as "cafe".
CREATE TEXT SEARCH CONFIGURATION kb_english (COPY = english);
ALTER TEXT SEARCH CONFIGURATION kb_english
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;

-- The indexed document of an article: title (weight A) > tags (B) > content (C).
-- SET search_path FROM CURRENT pins the configuration's schema, so a session with another
-- search_path (a restore, a tool) computes the same vector.
CREATE FUNCTION kb_search_document(title TEXT, tags TEXT[], body TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
    SELECT setweight(to_tsvector('kb_english', coalesce(title, '')), 'A')
        || setweight(to_tsvector('kb_english', coalesce(array_to_string(tags, ' '), '')), 'B')
        || setweight(to_tsvector('kb_english', coalesce(body, '')), 'C')
$$;

CREATE FUNCTION kb_title_document(title TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
    SELECT to_tsvector('kb_english', coalesce(title, ''))
$$;

-- content_text is the article as plain text (HTML tags and Markdown marks removed on write):
-- what full text indexes and what snippets are cut from.
ALTER TABLE kb_articles ADD COLUMN content_text TEXT;
UPDATE kb_articles SET content_text = regexp_replace(content, '<[^>]*>', ' ', 'g');
ALTER TABLE kb_articles ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (kb_search_document(title, tags, coalesce(content_text, content))) STORED;
ALTER TABLE kb_articles ADD COLUMN title_vector tsvector
    GENERATED ALWAYS AS (kb_title_document(title)) STORED;
CREATE INDEX kb_articles_search_idx ON kb_articles USING gin (search_vector);
CREATE INDEX kb_articles_title_search_idx ON kb_articles USING gin (title_vector);
CREATE INDEX kb_articles_published_idx ON kb_articles (is_published, updated_at DESC);
CREATE INDEX kb_votes_user_idx ON kb_votes (user_id);

-- Every word the articles have used (lower case, accents folded) with its lexeme: what a
-- half-typed word is completed from and what a misspelt one is corrected to (pg_trgm). It only
-- grows; a word of a deleted article just widens a query to a lexeme nothing has.
CREATE TABLE kb_words (
    word TEXT COLLATE "C" PRIMARY KEY,   -- byte order: a prefix is a range scan
    stem TEXT NOT NULL
);
CREATE INDEX kb_words_trgm_idx ON kb_words USING gin (word gin_trgm_ops);

CREATE FUNCTION kb_words_of(doc TEXT) RETURNS TABLE (word TEXT, stem TEXT)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
    SELECT w.word, w.stem
    FROM (SELECT DISTINCT lower(unaccent(t.token)) AS word,
                 (tsvector_to_array(to_tsvector('kb_english', t.token)))[1] AS stem
          FROM ts_parse('default', doc) AS t
          WHERE t.tokid IN (1, 2, 10, 11)   -- asciiword, word, hword_part, hword_asciipart
            AND length(t.token) BETWEEN 2 AND 40) AS w
    WHERE w.stem IS NOT NULL                -- stop words have no lexeme
$$;

CREATE FUNCTION kb_articles_learn_words() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO kb_words (word, stem)
    SELECT w.word, w.stem
    FROM kb_words_of(concat_ws(' ', NEW.title, array_to_string(NEW.tags, ' '), coalesce(NEW.content_text, NEW.content))) AS w
    ON CONFLICT (word) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER kb_articles_learn_words AFTER INSERT OR UPDATE OF title, tags, content, content_text ON kb_articles
    FOR EACH ROW EXECUTE FUNCTION kb_articles_learn_words();
INSERT INTO kb_words (word, stem)
SELECT w.word, w.stem
FROM kb_articles AS a,
     LATERAL kb_words_of(concat_ws(' ', a.title, array_to_string(a.tags, ' '), coalesce(a.content_text, a.content))) AS w
ON CONFLICT (word) DO NOTHING;

-- A user's words as a tsquery, every word required (&). Each word may match:
--   its lexeme as a prefix ("refun" -> refund, refunds, refunded),
--   the lexemes of known words it begins ("reservat" -> "reservation" -> reserv, a lexeme
--   shorter than what was typed), and
--   when no known word begins with it, the lexemes of the closest known words by trigram
--   similarity (a typo: "reservaton" -> reserv).
-- `weights` ('A' = titles) restricts every lexeme. NULL when nothing searchable is left. Lexemes
-- are quoted for the tsquery parser (quotes doubled, backslashes dropped): no input can inject
-- query syntax or make the cast fail.
CREATE FUNCTION kb_search_query(q TEXT, weights TEXT DEFAULT '') RETURNS tsquery
LANGUAGE sql STABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
    WITH tokens AS (
        SELECT n, lower(unaccent(t.token)) AS word,
               (tsvector_to_array(to_tsvector('kb_english', t.token)))[1] AS stem
        FROM ts_parse('default', left(q, 200)) WITH ORDINALITY AS t(tokid, token, n)
        WHERE t.tokid NOT IN (12, 13, 15, 16, 17, 23)   -- blanks, tags, entities, whole hyphenated words
    ), terms AS (
        SELECT w.n,
               (SELECT string_agg(DISTINCT '''' || replace(replace(x.lexeme, '\', ''), '''', '''''') || ''''
                                  || x.mark || weights, ' | ')
                FROM (SELECT w.stem AS lexeme, ':*' AS mark
                      UNION ALL
                      (SELECT k.stem, '' FROM kb_words k
                       WHERE k.word >= w.word AND k.word < w.word || chr(1114111)
                         AND NOT starts_with(k.stem, w.stem)
                       LIMIT 8)
                      UNION ALL
                      (SELECT k.stem, '' FROM kb_words k
                       WHERE length(w.word) >= 4 AND k.word % w.word
                         AND NOT EXISTS (SELECT 1 FROM kb_words p
                                         WHERE p.word >= w.word AND p.word < w.word || chr(1114111))
                       ORDER BY similarity(k.word, w.word) DESC, k.word
                       LIMIT 3)) AS x
                WHERE replace(x.lexeme, '\', '') <> '') AS term
        FROM tokens w
        WHERE w.stem IS NOT NULL AND replace(w.stem, '\', '') <> ''
    )
    SELECT string_agg('(' || term || ')', ' & ' ORDER BY n)::tsquery FROM terms WHERE term IS NOT NULL
$$;

-- Feedback carries the department of its ticket or chat, so reports filter one table. The
-- trigger fills it whichever code path inserts the row.
ALTER TABLE feedback ADD COLUMN department VARCHAR(100);
CREATE FUNCTION feedback_set_department() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.department IS NULL THEN
        IF NEW.ticket_id IS NOT NULL THEN
            SELECT department INTO NEW.department FROM support_tickets WHERE id = NEW.ticket_id;
        ELSE
            SELECT department INTO NEW.department FROM chat_sessions WHERE id = NEW.chat_session_id;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER feedback_set_department BEFORE INSERT ON feedback
    FOR EACH ROW EXECUTE FUNCTION feedback_set_department();
UPDATE feedback f SET department = coalesce(
    (SELECT department FROM support_tickets t WHERE t.id = f.ticket_id),
    (SELECT department FROM chat_sessions s WHERE s.id = f.chat_session_id));

-- Analytics: every report reads a time window, optionally narrowed to a department or an agent.
-- The window indexes carry the columns the reports read, so a year of rows is an index-only
-- scan of narrow tuples rather than a pass over the wide rows.
CREATE INDEX support_tickets_created_cover_idx ON support_tickets (created_at)
    INCLUDE (status, priority, category, reopened_count, first_response_at, department, agent_id);
CREATE INDEX support_tickets_resolved_cover_idx ON support_tickets (resolved_at)
    INCLUDE (created_at, department, agent_id) WHERE resolved_at IS NOT NULL;
CREATE INDEX support_tickets_department_created_idx ON support_tickets (department, created_at);
CREATE INDEX support_tickets_agent_resolved_idx ON support_tickets (agent_id, resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX chat_sessions_started_cover_idx ON chat_sessions (started_at)
    INCLUDE (status, assigned_at, first_response_at, duration_seconds, department, agent_id);
CREATE INDEX chat_sessions_department_started_idx ON chat_sessions (department, started_at);
CREATE INDEX chat_sessions_agent_started_idx ON chat_sessions (agent_id, started_at);
-- Peak concurrency merges starts and ends, each read in order from its index.
CREATE INDEX chat_sessions_ended_cover_idx ON chat_sessions (ended_at)
    INCLUDE (started_at, department, agent_id) WHERE ended_at IS NOT NULL;
CREATE INDEX feedback_created_cover_idx ON feedback (created_at)
    INCLUDE (rating, agent_id, category, sentiment_score, department);
CREATE INDEX feedback_department_created_idx ON feedback (department, created_at);
CREATE INDEX ticket_escalations_created_idx ON ticket_escalations (created_at) INCLUDE (ticket_id);
-- The backlog when a window ends: tickets still open (few), and those closed after it ended.
CREATE INDEX support_tickets_open_created_idx ON support_tickets (created_at)
    WHERE status IN ('open', 'in_progress', 'pending');
CREATE INDEX support_tickets_done_idx ON support_tickets ((coalesce(resolved_at, closed_at)))
    WHERE status NOT IN ('open', 'in_progress', 'pending');

-- The series buckets of a report window: the start of every hour, day or week (Monday) in the
-- caller's time zone that begins before `until`, as instants. Spring-forward gaps collapse into
-- one bucket, so the same instants come out as date_trunc(granularity, ts, tz) gives for rows.
CREATE FUNCTION analytics_buckets(since TIMESTAMPTZ, until TIMESTAMPTZ, granularity TEXT, tz TEXT)
RETURNS TABLE (bucket TIMESTAMPTZ) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT DISTINCT date_trunc(granularity, local AT TIME ZONE tz, tz)
    FROM generate_series(date_trunc(granularity, since AT TIME ZONE tz), until AT TIME ZONE tz,
                         ('1 ' || granularity)::interval) AS local
    WHERE local AT TIME ZONE tz < until
    ORDER BY 1
$$;
