-- The whole data model: SEED.md's eight tables with DESIGN.md's deliberate changes, plus the
-- event log (outbox), the audit log and the tables later features configure at run time.
-- Users live in other services: their UUID columns stay, without foreign keys.
-- Free text marked "encrypted" holds AES-GCM ciphertext (app/security/encryption.py), never plain text.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE departments (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(100) UNIQUE NOT NULL,
    description     TEXT,
    time_zone       VARCHAR(64) NOT NULL DEFAULT 'UTC',
    -- {"mon": [["09:00", "17:00"]], ...}; null means always open
    business_hours  JSONB,
    offline_message TEXT,
    -- {"urgent": {"first_response_minutes": 30, "resolution_minutes": 240}, ...}; overrides sla_policies
    sla_policy      JSONB,
    -- ticket categories routed to this department besides its own name
    categories      TEXT[] NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE support_agents (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           UUID UNIQUE NOT NULL,
    display_name      VARCHAR(255) NOT NULL,
    role              VARCHAR(20) NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor')),
    department        VARCHAR(100) NOT NULL,
    skills            TEXT[] NOT NULL DEFAULT '{}',
    max_tickets       INTEGER NOT NULL DEFAULT 10 CHECK (max_tickets >= 0),
    current_tickets   INTEGER NOT NULL DEFAULT 0 CHECK (current_tickets >= 0),
    max_chats         INTEGER NOT NULL DEFAULT 3 CHECK (max_chats >= 0),
    active_chats      INTEGER NOT NULL DEFAULT 0 CHECK (active_chats >= 0),
    status            VARCHAR(20) NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'offline')),
    -- mirrors live socket presence (any socket on any replica) for routing queries
    is_online         BOOLEAN NOT NULL DEFAULT FALSE,
    is_available      BOOLEAN NOT NULL DEFAULT TRUE,
    performance_score DECIMAL(3,2),
    last_seen_at      TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX support_agents_department_idx ON support_agents (department);
CREATE INDEX support_agents_routing_idx ON support_agents (department, status, is_online, is_available);

CREATE SEQUENCE ticket_number_seq;

CREATE TABLE support_tickets (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_number         VARCHAR(20) UNIQUE NOT NULL,
    customer_id           UUID,
    agent_id              UUID,          -- the agent's user id
    category              VARCHAR(100) NOT NULL,
    subcategory           VARCHAR(100),
    department            VARCHAR(100),
    priority              VARCHAR(20) NOT NULL DEFAULT 'medium'
                          CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status                VARCHAR(20) NOT NULL DEFAULT 'open'
                          CHECK (status IN ('open', 'in_progress', 'pending', 'resolved', 'closed')),
    channel               VARCHAR(20) NOT NULL DEFAULT 'web' CHECK (channel IN ('web', 'chat', 'email', 'api')),
    subject               VARCHAR(255) NOT NULL,
    description           TEXT NOT NULL,  -- encrypted
    customer_email        TEXT,           -- encrypted
    customer_name         TEXT,           -- encrypted
    assigned_at           TIMESTAMPTZ,
    first_response_at     TIMESTAMPTZ,
    resolved_at           TIMESTAMPTZ,
    closed_at             TIMESTAMPTZ,
    reopened_count        INTEGER NOT NULL DEFAULT 0,
    escalation_level      INTEGER NOT NULL DEFAULT 0,
    escalated_at          TIMESTAMPTZ,
    first_response_due_at TIMESTAMPTZ,
    resolution_due_at     TIMESTAMPTZ,
    sla_breached          BOOLEAN NOT NULL DEFAULT FALSE,
    tags                  TEXT[] NOT NULL DEFAULT '{}',
    metadata              JSONB NOT NULL DEFAULT '{}',
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX support_tickets_customer_idx ON support_tickets (customer_id, created_at DESC);
CREATE INDEX support_tickets_agent_idx ON support_tickets (agent_id, created_at DESC);
CREATE INDEX support_tickets_status_idx ON support_tickets (status, created_at DESC);
CREATE INDEX support_tickets_priority_idx ON support_tickets (priority);
CREATE INDEX support_tickets_category_idx ON support_tickets (category);
CREATE INDEX support_tickets_department_idx ON support_tickets (department, status);
CREATE INDEX support_tickets_created_idx ON support_tickets (created_at);
CREATE INDEX support_tickets_tags_idx ON support_tickets USING gin (tags);
CREATE INDEX support_tickets_subject_trgm_idx ON support_tickets USING gin (subject gin_trgm_ops);

CREATE TABLE ticket_messages (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id    UUID NOT NULL REFERENCES support_tickets(id) ON DELETE CASCADE,
    sender_id    UUID,
    sender_type  VARCHAR(20) NOT NULL CHECK (sender_type IN ('customer', 'agent', 'system', 'bot')),
    message      TEXT NOT NULL,  -- encrypted
    message_type VARCHAR(20) NOT NULL DEFAULT 'text',
    attachments  JSONB,
    is_internal  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ticket_messages_ticket_idx ON ticket_messages (ticket_id, created_at);

CREATE TABLE ticket_escalations (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id     UUID NOT NULL REFERENCES support_tickets(id) ON DELETE CASCADE,
    rule_id       UUID,
    trigger       VARCHAR(20) NOT NULL CHECK (trigger IN ('manual', 'rule', 'sla')),
    from_level    INTEGER NOT NULL,
    to_level      INTEGER NOT NULL,
    from_priority VARCHAR(20) NOT NULL,
    to_priority   VARCHAR(20) NOT NULL,
    from_agent_id UUID,
    to_agent_id   UUID,
    reason        TEXT,
    actor_id      UUID,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ticket_escalations_ticket_idx ON ticket_escalations (ticket_id, created_at);
CREATE INDEX ticket_escalations_rule_idx ON ticket_escalations (rule_id);

CREATE TABLE chat_sessions (
    id                     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id             VARCHAR(50) UNIQUE NOT NULL,  -- public key, "session_key" in JSON
    customer_id            UUID NOT NULL,
    agent_id               UUID,                          -- the agent's user id
    ticket_id              UUID REFERENCES support_tickets(id) ON DELETE SET NULL,
    department             VARCHAR(100) NOT NULL DEFAULT 'general',
    status                 VARCHAR(20) NOT NULL DEFAULT 'queued'
                           CHECK (status IN ('queued', 'active', 'ended', 'timed_out', 'abandoned')),
    queue_position         INTEGER,
    subject                VARCHAR(255),
    metadata               JSONB NOT NULL DEFAULT '{}',
    started_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    queued_at              TIMESTAMPTZ,   -- last time it (re)entered the queue; orders the queue
    assigned_at            TIMESTAMPTZ,
    first_response_at      TIMESTAMPTZ,
    last_message_at        TIMESTAMPTZ,
    ended_at               TIMESTAMPTZ,
    end_reason             VARCHAR(20),
    duration_seconds       INTEGER,
    satisfaction_rating    INTEGER CHECK (satisfaction_rating BETWEEN 1 AND 5),
    last_seq               INTEGER NOT NULL DEFAULT 0,
    customer_last_read_seq INTEGER NOT NULL DEFAULT 0,
    agent_last_read_seq    INTEGER NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one open session per customer, enforced here rather than by check-then-insert.
CREATE UNIQUE INDEX chat_sessions_one_open_per_customer
    ON chat_sessions (customer_id) WHERE status IN ('queued', 'active');
CREATE INDEX chat_sessions_customer_idx ON chat_sessions (customer_id, started_at DESC);
CREATE INDEX chat_sessions_agent_idx ON chat_sessions (agent_id, status);
CREATE INDEX chat_sessions_ticket_idx ON chat_sessions (ticket_id);
CREATE INDEX chat_sessions_queue_idx ON chat_sessions (department, queued_at) WHERE status = 'queued';
CREATE INDEX chat_sessions_started_idx ON chat_sessions (started_at);

CREATE TABLE chat_messages (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id    UUID NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    client_msg_id VARCHAR(64),
    sender_id     UUID,
    sender_type   VARCHAR(20) NOT NULL CHECK (sender_type IN ('customer', 'agent', 'system', 'bot')),
    message       TEXT NOT NULL,  -- encrypted
    message_type  VARCHAR(20) NOT NULL DEFAULT 'text',
    attachments   JSONB,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (session_id, seq)
);
-- A resend with the same client_msg_id finds the first message instead of storing a second.
CREATE UNIQUE INDEX chat_messages_idempotency_idx
    ON chat_messages (session_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE INDEX chat_messages_created_idx ON chat_messages (created_at);

CREATE TABLE chat_notes (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id UUID NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    sender_id  UUID NOT NULL,
    message    TEXT NOT NULL,  -- encrypted
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chat_notes_session_idx ON chat_notes (session_id, created_at);

CREATE TABLE kb_articles (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    title             VARCHAR(255) NOT NULL,
    content           TEXT NOT NULL,
    content_format    VARCHAR(10) NOT NULL DEFAULT 'markdown' CHECK (content_format IN ('markdown', 'html')),
    category          VARCHAR(100) NOT NULL,
    tags              TEXT[] NOT NULL DEFAULT '{}',
    author_id         UUID,
    is_published      BOOLEAN NOT NULL DEFAULT FALSE,
    published_at      TIMESTAMPTZ,
    view_count        INTEGER NOT NULL DEFAULT 0,
    helpful_count     INTEGER NOT NULL DEFAULT 0,
    not_helpful_count INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX kb_articles_category_idx ON kb_articles (category, is_published);
CREATE INDEX kb_articles_tags_idx ON kb_articles USING gin (tags);
CREATE INDEX kb_articles_author_idx ON kb_articles (author_id);

CREATE TABLE kb_votes (
    article_id UUID NOT NULL REFERENCES kb_articles(id) ON DELETE CASCADE,
    user_id    UUID NOT NULL,
    helpful    BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (article_id, user_id)
);

CREATE TABLE feedback (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id       UUID REFERENCES support_tickets(id) ON DELETE CASCADE,
    chat_session_id UUID REFERENCES chat_sessions(id) ON DELETE CASCADE,
    customer_id     UUID NOT NULL,
    agent_id        UUID,  -- the agent who handled it, kept for per-agent figures
    rating          INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment         TEXT,  -- encrypted
    category        VARCHAR(100),
    sentiment_score DECIMAL(3,2) CHECK (sentiment_score BETWEEN -1 AND 1),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((ticket_id IS NULL) <> (chat_session_id IS NULL))
);
CREATE UNIQUE INDEX feedback_one_per_ticket ON feedback (ticket_id) WHERE ticket_id IS NOT NULL;
CREATE UNIQUE INDEX feedback_one_per_session ON feedback (chat_session_id) WHERE chat_session_id IS NOT NULL;
CREATE INDEX feedback_customer_idx ON feedback (customer_id);
CREATE INDEX feedback_agent_idx ON feedback (agent_id, created_at);
CREATE INDEX feedback_created_idx ON feedback (created_at);

CREATE TABLE escalation_rules (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    rule_name   VARCHAR(255) NOT NULL,
    description TEXT,
    conditions  JSONB NOT NULL,
    actions     JSONB NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    -- the default timeout rule: its hours follow TICKET_ESCALATION_TIMEOUT_HOURS
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX escalation_rules_active_idx ON escalation_rules (is_active, priority DESC);
INSERT INTO escalation_rules (rule_name, description, conditions, actions, priority, is_default)
VALUES ('Unresolved timeout',
        'Escalates tickets still unresolved after TICKET_ESCALATION_TIMEOUT_HOURS',
        '{"status": ["open", "in_progress", "pending"], "hours_since_created": 24, "escalation_level_below": 1}',
        '{"raise_priority": true, "increase_level": true, "reassign_to": {"role": "supervisor"}, "notify": ["supervisors"]}',
        0, TRUE);

-- Run-time rules for the ticket creation flow (automation).
CREATE TABLE categorization_rules (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    keywords   TEXT[] NOT NULL,
    category   VARCHAR(100) NOT NULL,
    priority   INTEGER NOT NULL DEFAULT 0,
    is_active  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE priority_rules (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conditions JSONB NOT NULL,   -- {"keywords_any": [...], "customer_tier": [...], "has_booking": true}
    set_priority VARCHAR(20) NOT NULL CHECK (set_priority IN ('low', 'medium', 'high', 'urgent')),
    priority   INTEGER NOT NULL DEFAULT 0,
    is_active  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sla_policies (
    priority               VARCHAR(20) PRIMARY KEY CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    first_response_minutes INTEGER NOT NULL CHECK (first_response_minutes > 0),
    resolution_minutes     INTEGER NOT NULL CHECK (resolution_minutes > 0),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO sla_policies (priority, first_response_minutes, resolution_minutes) VALUES
    ('urgent', 30, 240), ('high', 120, 1440), ('medium', 480, 4320), ('low', 1440, 10080);

CREATE TABLE canned_responses (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    shortcut   VARCHAR(50) UNIQUE NOT NULL,
    title      VARCHAR(255) NOT NULL,
    body       TEXT NOT NULL,
    department VARCHAR(100),
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX canned_responses_department_idx ON canned_responses (department);

-- The outbox and event log. Readers that resume read only rows whose writing transaction is
-- older than every transaction still running (txid < pg_snapshot_xmin(pg_current_snapshot())),
-- in position order, so a row committed late behind a higher position is never skipped.
CREATE TABLE support_events (
    position     BIGSERIAL PRIMARY KEY,
    event_id     UUID UNIQUE NOT NULL DEFAULT gen_random_uuid(),
    type         VARCHAR(64) NOT NULL,
    topic        VARCHAR(100) NOT NULL,
    entity_type  VARCHAR(32) NOT NULL,
    entity_id    VARCHAR(64) NOT NULL,
    source       VARCHAR(64) NOT NULL DEFAULT 'support-service',
    actor_id     UUID,
    payload      JSONB NOT NULL DEFAULT '{}',
    txid         XID8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX support_events_unpublished_idx ON support_events (position) WHERE published_at IS NULL;
CREATE INDEX support_events_entity_idx ON support_events (entity_type, entity_id, position);
CREATE INDEX support_events_type_idx ON support_events (type, position);
CREATE INDEX support_events_created_idx ON support_events (created_at);

CREATE FUNCTION support_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('support_events', NEW.position::text);
    RETURN NULL;
END $$;
CREATE TRIGGER support_events_notify AFTER INSERT ON support_events
    FOR EACH ROW EXECUTE FUNCTION support_events_notify();

-- E-mail notifications sent from the event log: one row per (event, template), so a retry
-- never sends twice.
CREATE TABLE email_notifications (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        UUID NOT NULL,
    template        VARCHAR(100) NOT NULL,
    recipient       TEXT NOT NULL,  -- encrypted
    data            JSONB NOT NULL DEFAULT '{}',
    status          VARCHAR(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    UNIQUE (event_id, template)
);
CREATE INDEX email_notifications_due_idx ON email_notifications (next_attempt_at) WHERE status = 'pending';

-- Append-only record of every state-changing command.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id    UUID,
    actor_role  VARCHAR(20),
    action      VARCHAR(64) NOT NULL,
    entity      VARCHAR(32) NOT NULL,
    entity_id   VARCHAR(64),
    request_id  VARCHAR(64),
    ip          VARCHAR(64),
    transport   VARCHAR(16),
    changes     JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, occurred_at);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, occurred_at);
CREATE INDEX audit_log_action_idx ON audit_log (action, occurred_at);
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

INSERT INTO departments (name, description) VALUES ('general', 'Everything not routed elsewhere');
