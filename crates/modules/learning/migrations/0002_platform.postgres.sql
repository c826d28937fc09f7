-- The learning platform's tenant-owned state beside the xAPI statements:
-- configuration, the course and item bank, learners and their mastery,
-- the activity events the analytics and BKT read, assessment sessions,
-- fitted BKT parameters and usage counters. Times are UTC text of fixed
-- width (text order is time order).

-- A tenant's configuration (JSON, camelCase), when its administrators
-- changed it; absent: the defaults of `[learning.defaults]`.
CREATE TABLE learning_config (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id),
    config     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

-- A tenant's course (graph JSON), item bank (JSON, or NULL) and item
-- content (stems, options, keys: JSON by item id), replaced whole by each
-- import. `version` counts imports.
CREATE TABLE learning_catalog (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id),
    course       TEXT NOT NULL,
    bank         TEXT,
    item_content TEXT NOT NULL,
    version      BIGINT NOT NULL,
    source       TEXT NOT NULL,
    imported_at  TEXT NOT NULL,
    imported_by  TEXT NOT NULL
);

-- Learners, created on first use (counted against the tier's limit), with
-- the ability estimate of their last finished assessment.
CREATE TABLE learning_learners (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL,
    theta      DOUBLE PRECISION,
    theta_se   DOUBLE PRECISION,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- BKT state per learner and skill.
CREATE TABLE learning_mastery (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    skill_id   TEXT NOT NULL,
    p_known    DOUBLE PRECISION NOT NULL,
    attempts   BIGINT NOT NULL,
    correct    BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, skill_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES learning_learners (tenant_id, user_id)
);

-- What the learning engines read of stored statements: one row per
-- statement about a learner's answer or completion (the statement id
-- makes applying a statement idempotent).
CREATE TABLE learning_events (
    seq          BIGSERIAL PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    statement_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    item_id      TEXT,
    content_id   TEXT,
    skill_id     TEXT NOT NULL,
    correct      BOOLEAN,
    duration     DOUBLE PRECISION NOT NULL,
    at           TEXT COLLATE "C" NOT NULL,
    UNIQUE (tenant_id, statement_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES learning_learners (tenant_id, user_id)
);
CREATE INDEX learning_events_by_user ON learning_events (tenant_id, user_id, at);
CREATE INDEX learning_events_by_time ON learning_events (tenant_id, at);

-- Assessment sessions: the CAT record (replayed on each answer), the item
-- presented, and an optimistic version.
CREATE TABLE learning_sessions (
    tenant_id  TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    topic      TEXT NOT NULL,
    target     DOUBLE PRECISION,
    seed       BIGINT NOT NULL,
    catalog    BIGINT NOT NULL,
    record     TEXT NOT NULL,
    presented  TEXT,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, session_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES learning_learners (tenant_id, user_id)
);
CREATE INDEX learning_sessions_by_user ON learning_sessions (tenant_id, user_id, started_at);

-- BKT parameters per skill, fitted by EM from the tenant's answers.
CREATE TABLE learning_bkt_params (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    skill_id     TEXT NOT NULL,
    prior        DOUBLE PRECISION NOT NULL,
    learn        DOUBLE PRECISION NOT NULL,
    guess        DOUBLE PRECISION NOT NULL,
    slip         DOUBLE PRECISION NOT NULL,
    forget       DOUBLE PRECISION NOT NULL,
    fitted       BOOLEAN NOT NULL,
    observations BIGINT NOT NULL,
    fitted_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, skill_id)
);

-- Counters: stored statements (NULL until first counted, then kept by
-- every statement write), answers recorded, and answers at the last fit.
CREATE TABLE learning_usage (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
    statements     BIGINT,
    answers        BIGINT NOT NULL,
    answers_at_fit BIGINT NOT NULL
);

-- Row-level security: every table sees and writes its scope's tenant only.

ALTER TABLE learning_config ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_config FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_config_tenant ON learning_config
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_catalog ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_catalog FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_catalog_tenant ON learning_catalog
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_learners ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_learners FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_learners_tenant ON learning_learners
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_mastery ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_mastery FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_mastery_tenant ON learning_mastery
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_events FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_events_tenant ON learning_events
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_sessions_tenant ON learning_sessions
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_bkt_params ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_bkt_params FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_bkt_params_tenant ON learning_bkt_params
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE learning_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE learning_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY learning_usage_tenant ON learning_usage
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));
