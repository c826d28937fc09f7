-- xAPI statements: the normalized statement JSON plus the columns the
-- GET Statements filters use. `seq` orders statements stored in the same
-- microsecond; `stored` is UTC text of fixed width, so text order is time
-- order. `digest` is the SHA-256 of the statement's comparison form (what
-- the specification's statement comparison looks at), for idempotent
-- re-posts.
CREATE TABLE learning_xapi_statements (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    statement_id TEXT NOT NULL,
    actor_key    TEXT,
    verb_id      TEXT NOT NULL,
    activity_id  TEXT,
    registration TEXT,
    ref_target   TEXT,
    is_voiding   INTEGER NOT NULL,
    voided       INTEGER NOT NULL,
    stored       TEXT NOT NULL,
    occurred     TEXT NOT NULL,
    ts_given     INTEGER NOT NULL,
    digest       TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (tenant_id, statement_id)
) STRICT;
CREATE INDEX learning_xapi_statements_by_stored ON learning_xapi_statements (tenant_id, voided, stored, seq);
CREATE INDEX learning_xapi_statements_by_verb ON learning_xapi_statements (tenant_id, verb_id, stored);
CREATE INDEX learning_xapi_statements_by_activity ON learning_xapi_statements (tenant_id, activity_id, stored);
CREATE INDEX learning_xapi_statements_by_actor ON learning_xapi_statements (tenant_id, actor_key, stored);
CREATE INDEX learning_xapi_statements_by_registration ON learning_xapi_statements (tenant_id, registration);
CREATE INDEX learning_xapi_statements_by_ref ON learning_xapi_statements (tenant_id, ref_target);

-- The agents (inverse functional identifier keys) and activity ids a
-- statement mentions, for the agent filter and related_agents /
-- related_activities. `direct`: actor or object (and their group
-- members) for agents, the object for activities.
CREATE TABLE learning_xapi_related (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    statement_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    item         TEXT NOT NULL,
    direct       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, statement_id, kind, item),
    FOREIGN KEY (tenant_id, statement_id) REFERENCES learning_xapi_statements (tenant_id, statement_id)
) STRICT;
CREATE INDEX learning_xapi_related_by_item ON learning_xapi_related (tenant_id, kind, item, statement_id);
