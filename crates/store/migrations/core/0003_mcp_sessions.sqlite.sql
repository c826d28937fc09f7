-- core 3: legacy-era MCP sessions (SQLite), so that a session outlives the
-- process (and, on PostgreSQL, the node) that began it. Not tenant-owned:
-- a session belongs to the transport; every call in it is still
-- authenticated and scoped on its own. touched_at is Unix seconds; rows
-- untouched for the retention period are purged.
CREATE TABLE mcp_sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    -- the client's initialize parameters, in the transport's JSON
    handshake     TEXT NOT NULL,
    -- JSON array of subscribed resource URIs
    subscriptions TEXT NOT NULL,
    log_level     TEXT,
    -- SHA-256 of the principal (tenant, subject) that began the session
    owner         TEXT,
    touched_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX mcp_sessions_touched ON mcp_sessions (touched_at);
