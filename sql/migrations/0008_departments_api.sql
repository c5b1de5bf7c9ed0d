-- Departments become configurable over the API (/api/v1/departments): a display name, whether
-- customers see it, and the queue settings that were process-wide (queue timeout, greeting),
-- each null meaning "the configured default".
ALTER TABLE departments
    ADD COLUMN display_name          VARCHAR(255),
    ADD COLUMN is_public             BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN queue_timeout_minutes INTEGER CHECK (queue_timeout_minutes BETWEEN 1 AND 1440),
    ADD COLUMN greeting              TEXT;

-- Every department some agent, chat or ticket already names gets its row (created on first use
-- from now on), so they all agree on where work goes.
INSERT INTO departments (name)
SELECT department FROM support_agents
UNION SELECT department FROM chat_sessions
UNION SELECT department FROM support_tickets WHERE department IS NOT NULL
ON CONFLICT (name) DO NOTHING;

-- "billing-de" reads "Billing De" until an admin names it (as app.services.departments'
-- default_display_name does), whoever inserts the row.
CREATE FUNCTION departments_default_display_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.display_name := coalesce(NEW.display_name, initcap(replace(replace(NEW.name, '-', ' '), '_', ' ')));
    RETURN NEW;
END $$;
CREATE TRIGGER departments_default_display_name BEFORE INSERT ON departments
    FOR EACH ROW EXECUTE FUNCTION departments_default_display_name();
UPDATE departments SET display_name = initcap(replace(replace(name, '-', ' '), '_', ' '))
WHERE display_name IS NULL;
ALTER TABLE departments ALTER COLUMN display_name SET NOT NULL;

-- Which department serves a category is looked up on every ticket write.
CREATE INDEX departments_categories_idx ON departments USING gin (categories);
