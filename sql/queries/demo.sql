-- name: upsert_department(name, description, categories, offline_message)!
-- Demo departments (dev mode); kept as they are when they already exist.
INSERT INTO departments (name, description, categories, offline_message)
VALUES (:name, :description, :categories, :offline_message)
ON CONFLICT (name) DO NOTHING;

-- name: demo_loaded()$
SELECT EXISTS (SELECT 1 FROM support_agents WHERE user_id = '00000000-0000-4000-8000-00000000a001');
