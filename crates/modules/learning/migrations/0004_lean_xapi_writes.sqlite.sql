-- Fewer B-tree writes per stored statement (an assessment answer is one):
--
-- * No index on `actor_key`: no query reads it (the agent filter goes
--   through `learning_xapi_related`).
-- * No index on `activity_id`: the activity filter without
--   `related_activities` reads `learning_xapi_related` too, where the
--   statement's own object is the activity row with `direct` set (the same
--   statements, through that table's key).
-- * `learning_xapi_related` without a rowid, keyed in the order the filters
--   read it (tenant, kind, item, statement): one B-tree per row instead of
--   three (a rowid table, the index of its key and the index by item).
--   Nothing reads it by statement: a statement is never deleted and its key
--   never changes, so the foreign key needs no index of its own. SQLite
--   cannot change a table's key in place: the rows move to a new table.
DROP INDEX learning_xapi_statements_by_actor;
DROP INDEX learning_xapi_statements_by_activity;
CREATE TABLE learning_xapi_related_lean (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    statement_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    item         TEXT NOT NULL,
    direct       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, item, statement_id),
    FOREIGN KEY (tenant_id, statement_id) REFERENCES learning_xapi_statements (tenant_id, statement_id)
) STRICT, WITHOUT ROWID;
INSERT INTO learning_xapi_related_lean (tenant_id, statement_id, kind, item, direct)
    SELECT tenant_id, statement_id, kind, item, direct FROM learning_xapi_related;
DROP TABLE learning_xapi_related;
ALTER TABLE learning_xapi_related_lean RENAME TO learning_xapi_related;
