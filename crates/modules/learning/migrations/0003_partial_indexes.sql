-- Only statements that point at another statement (voiding statements and
-- StatementRef objects) have a `ref_target`, and only some have a
-- registration: each index holds the statements that have its column, so
-- a statement without them (an assessment answer has no `ref_target`)
-- costs one index write fewer. The filters that use these indexes
-- (`registration = ?`, `ref_target = ?`, `ref_target IN (...)`) imply the
-- column is not null, so both databases still choose them.
DROP INDEX learning_xapi_statements_by_registration;
DROP INDEX learning_xapi_statements_by_ref;
CREATE INDEX learning_xapi_statements_by_registration ON learning_xapi_statements (tenant_id, registration)
    WHERE registration IS NOT NULL;
CREATE INDEX learning_xapi_statements_by_ref ON learning_xapi_statements (tenant_id, ref_target)
    WHERE ref_target IS NOT NULL;
