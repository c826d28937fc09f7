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
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
) STRICT;

-- A tenant's course (graph JSON), item bank (JSON, or NULL) and item
-- content (stems, options, keys: JSON by item id), replaced whole by each
-- import. `version` counts imports.
CREATE TABLE learning_catalog (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id),
    course       TEXT NOT NULL,
    bank         TEXT,
    item_content TEXT NOT NULL,
    version      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    imported_at  TEXT NOT NULL,
    imported_by  TEXT NOT NULL
) STRICT;

-- Learners, created on first use (counted against the tier's limit), with
-- the ability estimate of their last finished assessment.
CREATE TABLE learning_learners (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL,
    theta      REAL,
    theta_se   REAL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT;

-- BKT state per learner and skill.
CREATE TABLE learning_mastery (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    skill_id   TEXT NOT NULL,
    p_known    REAL NOT NULL,
    attempts   INTEGER NOT NULL,
    correct    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, skill_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES learning_learners (tenant_id, user_id)
) STRICT;

-- What the learning engines read of stored statements: one row per
-- statement about a learner's answer or completion (the statement id
-- makes applying a statement idempotent).
CREATE TABLE learning_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT NOT NULL,
    statement_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    item_id      TEXT,
    content_id   TEXT,
    skill_id     TEXT NOT NULL,
    correct      INTEGER,
    duration     REAL NOT NULL,
    at           TEXT NOT NULL,
    UNIQUE (tenant_id, statement_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES learning_learners (tenant_id, user_id)
) STRICT;
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
    target     REAL,
    seed       INTEGER NOT NULL,
    catalog    INTEGER NOT NULL,
    record     TEXT NOT NULL,
    presented  TEXT,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, session_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES learning_learners (tenant_id, user_id)
) STRICT;
CREATE INDEX learning_sessions_by_user ON learning_sessions (tenant_id, user_id, started_at);

-- BKT parameters per skill, fitted by EM from the tenant's answers.
CREATE TABLE learning_bkt_params (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    skill_id     TEXT NOT NULL,
    prior        REAL NOT NULL,
    learn        REAL NOT NULL,
    guess        REAL NOT NULL,
    slip         REAL NOT NULL,
    forget       REAL NOT NULL,
    fitted       INTEGER NOT NULL,
    observations INTEGER NOT NULL,
    fitted_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, skill_id)
) STRICT;

-- Counters: stored statements (NULL until first counted, then kept by
-- every statement write), answers recorded, and answers at the last fit.
CREATE TABLE learning_usage (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
    statements     INTEGER,
    answers        INTEGER NOT NULL,
    answers_at_fit INTEGER NOT NULL
) STRICT;
