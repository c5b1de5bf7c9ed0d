-- Queue alerts (supervision): a department whose longest chat wait passes its threshold is
-- flagged until its queue is back under it. The threshold is per department (NULL: the
-- configured QUEUE_ALERT_MINUTES; 0: never), the flag is the time it was raised.
ALTER TABLE departments
    ADD COLUMN queue_alert_minutes  INTEGER CHECK (queue_alert_minutes BETWEEN 0 AND 1440),
    ADD COLUMN queue_alert_raised_at TIMESTAMPTZ;
