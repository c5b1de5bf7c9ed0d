-- name: list_canned_responses(department, q_pattern, sort, limit, offset)
-- A page of canned responses (of the department and the shared ones; matching the pattern),
-- with the total matching count on every row.
SELECT *, count(*) OVER () AS total FROM canned_responses
WHERE (:department::text IS NULL OR department = :department OR department IS NULL)
  AND (:q_pattern::text IS NULL OR shortcut ILIKE :q_pattern OR title ILIKE :q_pattern OR body ILIKE :q_pattern)
ORDER BY
  CASE WHEN :sort = 'shortcut' THEN shortcut END ASC,
  CASE WHEN :sort = '-shortcut' THEN shortcut END DESC,
  CASE WHEN :sort = 'title' THEN title END ASC,
  CASE WHEN :sort = '-title' THEN title END DESC,
  CASE WHEN :sort = 'created_at' THEN created_at END ASC,
  CASE WHEN :sort = '-created_at' THEN created_at END DESC,
  id
LIMIT :limit OFFSET :offset;

-- name: get_canned_response(id)^
SELECT * FROM canned_responses WHERE id = :id;

-- name: lock_canned_response(id)^
SELECT * FROM canned_responses WHERE id = :id FOR UPDATE;

-- name: insert_canned_response(shortcut, title, body, department, created_by, now)^
INSERT INTO canned_responses (shortcut, title, body, department, created_by, created_at, updated_at)
VALUES (:shortcut, :title, :body, :department, :created_by, :now, :now)
RETURNING *;

-- name: update_canned_response(id, shortcut, title, body, department, now)^
-- Write back every mutable column of a response locked with lock_canned_response.
UPDATE canned_responses
SET shortcut = :shortcut, title = :title, body = :body, department = :department, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: delete_canned_response(id)^
DELETE FROM canned_responses WHERE id = :id RETURNING *;
