-- One NOTIFY per statement that appends to the event log, not one per row: a batch of chat
-- messages is one statement, and every replica's follower wakes once for it instead of once
-- per message. The payload is the highest position the statement wrote (followers read from
-- their own cursor; the position is only a hint of how far there is to read).
DROP TRIGGER support_events_notify ON support_events;
DROP FUNCTION support_events_notify();

CREATE FUNCTION support_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    highest BIGINT;
BEGIN
    SELECT max(position) INTO highest FROM appended;
    IF highest IS NOT NULL THEN
        PERFORM pg_notify('support_events', highest::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER support_events_notify AFTER INSERT ON support_events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION support_events_notify();
