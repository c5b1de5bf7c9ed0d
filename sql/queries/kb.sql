-- Knowledge base: articles, votes, buffered view counts and the PostgreSQL search backend.
-- Article rows are selected without search_vector (the index's business, and large).

-- name: insert_article(title, content, content_text, content_format, category, tags, author_id, is_published, now)^
INSERT INTO kb_articles (title, content, content_text, content_format, category, tags, author_id,
                         is_published, published_at, created_at, updated_at)
VALUES (:title, :content, :content_text, :content_format, :category, :tags, :author_id,
        :is_published, CASE WHEN :is_published::boolean THEN :now::timestamptz END, :now, :now)
RETURNING id, title, content, content_format, category, tags, author_id, is_published, published_at,
          view_count, helpful_count, not_helpful_count, created_at, updated_at;

-- name: get_article(id)^
SELECT id, title, content, content_format, category, tags, author_id, is_published, published_at,
       view_count, helpful_count, not_helpful_count, created_at, updated_at
FROM kb_articles WHERE id = :id;

-- name: lock_article(id)^
-- The article, locked for a read-modify-write (updates, votes) in the caller's transaction.
SELECT id, title, content, content_format, category, tags, author_id, is_published, published_at,
       view_count, helpful_count, not_helpful_count, created_at, updated_at
FROM kb_articles WHERE id = :id FOR UPDATE;

-- name: update_article(id, title, content, content_text, content_format, category, tags, is_published, published_at, now)^
UPDATE kb_articles
SET title = :title, content = :content, content_text = :content_text, content_format = :content_format,
    category = :category, tags = :tags, is_published = :is_published, published_at = :published_at,
    updated_at = :now
WHERE id = :id
RETURNING id, title, content, content_format, category, tags, author_id, is_published, published_at,
          view_count, helpful_count, not_helpful_count, created_at, updated_at;

-- name: delete_article(id)!
DELETE FROM kb_articles WHERE id = :id;

-- name: list_articles(published_only, is_published, category, tag, author_id, q, sort, limit, offset)
-- A page of articles with the total on every row. published_only hides drafts (customers and
-- anonymous callers); q matches as in search (every word, prefixes, typos).
WITH query AS (SELECT kb_search_query(:q::text) AS words)
SELECT a.id, a.title, a.content, a.content_format, a.category, a.tags, a.author_id, a.is_published,
       a.published_at, a.view_count, a.helpful_count, a.not_helpful_count, a.created_at, a.updated_at,
       count(*) OVER () AS total
FROM kb_articles a, query
WHERE (NOT :published_only::boolean OR a.is_published)
  AND (:is_published::boolean IS NULL OR a.is_published = :is_published)
  AND (:category::text IS NULL OR a.category = :category)
  AND (:tag::text IS NULL OR a.tags @> ARRAY[:tag::text])
  AND (:author_id::uuid IS NULL OR a.author_id = :author_id)
  AND (:q::text IS NULL OR a.search_vector @@ query.words)
ORDER BY
  CASE WHEN :sort = 'created_at' THEN a.created_at END ASC,
  CASE WHEN :sort = '-created_at' THEN a.created_at END DESC,
  CASE WHEN :sort = 'updated_at' THEN a.updated_at END ASC,
  CASE WHEN :sort = '-updated_at' THEN a.updated_at END DESC,
  CASE WHEN :sort = 'published_at' THEN a.published_at END ASC,
  CASE WHEN :sort = '-published_at' THEN a.published_at END DESC,
  CASE WHEN :sort = 'title' THEN a.title END ASC,
  CASE WHEN :sort = '-title' THEN a.title END DESC,
  CASE WHEN :sort = 'view_count' THEN a.view_count END ASC,
  CASE WHEN :sort = '-view_count' THEN a.view_count END DESC,
  CASE WHEN :sort = 'helpful_count' THEN a.helpful_count END ASC,
  CASE WHEN :sort = '-helpful_count' THEN a.helpful_count END DESC,
  a.updated_at DESC, a.id
LIMIT :limit OFFSET :offset;

-- name: get_vote(article_id, user_id)^
SELECT helpful FROM kb_votes WHERE article_id = :article_id AND user_id = :user_id;

-- name: upsert_vote(article_id, user_id, helpful, now)!
INSERT INTO kb_votes (article_id, user_id, helpful, created_at, updated_at)
VALUES (:article_id, :user_id, :helpful, :now, :now)
ON CONFLICT (article_id, user_id) DO UPDATE SET helpful = EXCLUDED.helpful, updated_at = EXCLUDED.updated_at;

-- name: adjust_vote_counts(id, helpful_delta, not_helpful_delta)^
-- Counts move with the votes; the article row is locked by the caller (lock_article).
UPDATE kb_articles
SET helpful_count = helpful_count + :helpful_delta, not_helpful_count = not_helpful_count + :not_helpful_delta
WHERE id = :id
RETURNING id, helpful_count, not_helpful_count;

-- name: add_view_counts(ids, counts)
-- Buffered views (Redis) added in one statement; returns the ids that still exist.
UPDATE kb_articles a SET view_count = a.view_count + v.n
FROM unnest(:ids::uuid[], :counts::integer[]) AS v(id, n)
WHERE a.id = v.id
RETURNING a.id;

-- name: search_articles(q, category, tags, limit, offset)
-- The PostgreSQL search backend. Matches: every word of q (kb_search_query: lexeme prefixes,
-- completions and typo corrections from kb_words), found through the GIN index alone. Rank:
-- ts_rank over the weighted title (A) > tags (B) > content (C). Snippets are cut only for the
-- page, from the plain text, with matches between U+E000 and U+E001 (the service escapes the
-- text and turns those into <mark>).
WITH query AS (SELECT kb_search_query(:q::text) AS words),
hits AS (
    SELECT a.id, ts_rank(a.search_vector, query.words) AS score, count(*) OVER () AS total
    FROM kb_articles a, query
    WHERE a.search_vector @@ query.words AND a.is_published
      AND (:category::text IS NULL OR a.category = :category)
      AND (:tags::text[] IS NULL OR a.tags @> :tags::text[])
    ORDER BY score DESC, a.id
    LIMIT :limit OFFSET :offset
)
SELECT a.id, a.title, a.category, a.tags, h.score, h.total,
       coalesce(ts_headline('kb_english', coalesce(a.content_text, a.content), query.words,
                            'StartSel=' || chr(57344) || ', StopSel=' || chr(57345)
                            || ', MaxFragments=2, MaxWords=30, MinWords=12, FragmentDelimiter=" … "'),
                left(coalesce(a.content_text, a.content), 200)) AS snippet
FROM hits h JOIN kb_articles a ON a.id = h.id, query
ORDER BY h.score DESC, h.id;

-- name: suggest_articles(q, limit, offset)
-- Title suggestions while the customer types: every word in the title (prefixes, completions,
-- typo corrections as in search), best title match first, then the most read; `total` counts
-- every match.
WITH query AS (SELECT kb_search_query(:q::text) AS words)
SELECT a.id, a.title, a.category, count(*) OVER () AS total
FROM kb_articles a, query
WHERE a.title_vector @@ query.words AND a.is_published
ORDER BY ts_rank(a.title_vector, query.words) DESC, a.view_count DESC, a.id
LIMIT :limit OFFSET :offset;

-- name: count_published_articles()$
SELECT count(*) FROM kb_articles WHERE is_published;

-- name: published_articles_after(after, limit)
-- Published articles in id order from a key (Elasticsearch rebuilds), as the index holds them.
SELECT id, title, coalesce(content_text, content) AS content, category, tags, is_published,
       published_at, updated_at
FROM kb_articles
WHERE is_published AND id > :after
ORDER BY id
LIMIT :limit;

-- name: article_for_index(id)^
SELECT id, title, coalesce(content_text, content) AS content, category, tags, is_published,
       published_at, updated_at
FROM kb_articles WHERE id = :id;

