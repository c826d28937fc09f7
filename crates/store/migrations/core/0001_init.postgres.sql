-- core 1: tenants, API keys, the audit log (PostgreSQL).
-- Tenant-owned rows carry tenant_id and are guarded by row-level security
-- keyed on the transaction-local setting plexus.tenant, which the store sets
-- (set_config(..., true), i.e. SET LOCAL) at the start of every scoped
-- transaction. FORCE makes the policies bind the table owner too; only
-- superusers and BYPASSRLS roles are exempt, so run plexus as neither.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    tier       TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    -- JSON array of role names
    roles        TEXT NOT NULL,
    -- hex SHA-256 of the key; the key itself is never stored
    key_sha256   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (tenant_id, name) WHERE revoked_at IS NULL;

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;

-- A tenant's transaction sees and writes its own keys only.
CREATE POLICY api_keys_tenant ON api_keys
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

-- Authentication does not know the tenant yet: it may read the one row
-- whose hash it presents (plexus.key_lookup), and nothing else.
CREATE POLICY api_keys_lookup ON api_keys FOR SELECT
    USING (key_sha256 = current_setting('plexus.key_lookup', true));

-- One hash chain per node. Not tenant-owned: a node's chain interleaves
-- every tenant's calls; `tenant` records whose call it was.
CREATE TABLE audit_log (
    node_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL CHECK (seq >= 0),
    time        TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    session     TEXT,
    principal   TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    operation   TEXT NOT NULL,
    target      TEXT NOT NULL,
    args_digest TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    latency_us  BIGINT NOT NULL,
    client_addr TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (node_id, seq)
);

CREATE INDEX audit_log_time ON audit_log (time);

-- Append-only: the store has no update or delete, and a trigger refuses
-- UPDATE, DELETE and TRUNCATE for every role (the table owner could drop the
-- trigger; the hash chain still shows any edit).
CREATE FUNCTION plexus_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION plexus_audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION plexus_audit_log_append_only();
