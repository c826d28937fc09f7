-- core 1: tenants, API keys, the audit log (SQLite).
-- Tenant-owned rows carry tenant_id; the store reaches them only through
-- a tenant scope.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    tier       TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    -- JSON array of role names
    roles        TEXT NOT NULL,
    -- hex SHA-256 of the key; the key itself is never stored
    key_sha256   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
) STRICT;

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (tenant_id, name) WHERE revoked_at IS NULL;

-- One hash chain per node. Not tenant-owned: a node's chain interleaves
-- every tenant's calls; `tenant` records whose call it was.
CREATE TABLE audit_log (
    node_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    time        TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    session     TEXT,
    principal   TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    operation   TEXT NOT NULL,
    target      TEXT NOT NULL,
    args_digest TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    latency_us  INTEGER NOT NULL,
    client_addr TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (node_id, seq)
) STRICT;

CREATE INDEX audit_log_time ON audit_log (time);

-- Append-only: the store has no update or delete, and the database refuses them.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
