-- Which SQLite file holds each tenant's learning rows (0: the main file;
-- k >= 1: `<main>-learning-<k>.db` beside it). Kept in the main file.
CREATE TABLE learning_shards (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    shard     INTEGER NOT NULL CHECK (shard >= 0)
);

-- Tenants that have learning rows from before there were shards stay in
-- the main file, where those rows are.
INSERT INTO learning_shards (tenant_id, shard)
SELECT tenant_id, 0 FROM learning_config
UNION SELECT tenant_id, 0 FROM learning_catalog
UNION SELECT tenant_id, 0 FROM learning_learners
UNION SELECT tenant_id, 0 FROM learning_usage
UNION SELECT tenant_id, 0 FROM learning_bkt_params
UNION SELECT tenant_id, 0 FROM learning_xapi_statements;
