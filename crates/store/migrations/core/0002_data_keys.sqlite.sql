-- core 2: per-tenant data keys for encryption at rest (SQLite).
-- Each row is a 256-bit AES-GCM data key, wrapped (encrypted) by the master
-- key named in master_key_id; the plaintext key never touches the database.
-- A tenant has at most one active key (retired_at IS NULL), which seals new
-- values; retired keys stay to open what they sealed.
CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    master_key_id TEXT NOT NULL,
    -- base64 of nonce (12 bytes) || ciphertext || tag, bound to tenant and id
    wrapped       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    retired_at    TEXT
) STRICT;

CREATE INDEX data_keys_tenant ON data_keys (tenant_id);
CREATE UNIQUE INDEX data_keys_active ON data_keys (tenant_id) WHERE retired_at IS NULL;
