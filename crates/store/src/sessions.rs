//! Legacy-era MCP sessions in the database ([`SessionRecords`]): begun by
//! one node (or process), carried on by any after it is gone.

use plexus_core::ports::{SessionRecord, SessionRecords};

use crate::db::{Store, on_db};
use crate::error::StoreError;

/// Sessions untouched (begun or updated) for this long are purged.
pub const SESSION_RETENTION_SECS: i64 = 24 * 3600;

/// At most this many subscriptions are kept per session.
pub const MAX_SESSION_SUBSCRIPTIONS: usize = 10_000;

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn id_ok(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(StoreError::invalid("session id", "must be 1 to 256 bytes without control characters"));
    }
    Ok(())
}

impl Store {
    /// A session by id, unless unknown or past retention.
    pub async fn load_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        id_ok(id)?;
        let oldest = unix_now() - SESSION_RETENTION_SECS;
        let row = on_db!(&self.db, pool => {
            sqlx::query_as::<_, (String, String, Option<String>, Option<String>)>(
                "SELECT handshake, subscriptions, log_level, owner FROM mcp_sessions WHERE id = $1 AND touched_at >= $2",
            )
            .bind(id)
            .bind(oldest)
            .fetch_optional(pool)
            .await?
        });
        let Some((handshake, subscriptions, log_level, owner)) = row else { return Ok(None) };
        let subscriptions = serde_json::from_str(&subscriptions).map_err(|e| {
            StoreError::invalid("session subscriptions", format!("are not a JSON array of strings: {e}"))
        })?;
        Ok(Some(SessionRecord { handshake, subscriptions, log_level, owner }))
    }

    /// Keep a new session (replacing any of the same id), and purge those
    /// past retention.
    pub async fn begin_session(&self, id: &str, handshake: &str) -> Result<(), StoreError> {
        id_ok(id)?;
        let now = unix_now();
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM mcp_sessions WHERE touched_at < $1")
                .bind(now - SESSION_RETENTION_SECS)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO mcp_sessions (id, handshake, subscriptions, log_level, owner, touched_at) VALUES ($1, $2, '[]', NULL, NULL, $3) \
                 ON CONFLICT (id) DO UPDATE SET handshake = excluded.handshake, subscriptions = '[]', log_level = NULL, \
                 owner = NULL, touched_at = excluded.touched_at",
            )
            .bind(id)
            .bind(handshake)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Bind a session to its owner unless it has one: the owner in force
    /// afterwards, `None` for an unknown session.
    pub async fn bind_session(&self, id: &str, owner: &str) -> Result<Option<String>, StoreError> {
        id_ok(id)?;
        if owner.is_empty() || owner.len() > 256 {
            return Err(StoreError::invalid("session owner", "must be 1 to 256 bytes"));
        }
        let row = on_db!(&self.db, pool => {
            sqlx::query("UPDATE mcp_sessions SET owner = $1 WHERE id = $2 AND owner IS NULL")
                .bind(owner)
                .bind(id)
                .execute(pool)
                .await?;
            sqlx::query_as::<_, (Option<String>,)>("SELECT owner FROM mcp_sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(o,)| o))
    }

    /// Record what a known session asks for now. Returns whether it was known.
    pub async fn update_session(
        &self,
        id: &str,
        subscriptions: &[String],
        log_level: Option<&str>,
    ) -> Result<bool, StoreError> {
        id_ok(id)?;
        if subscriptions.len() > MAX_SESSION_SUBSCRIPTIONS {
            return Err(StoreError::invalid(
                "session subscriptions",
                format!("at most {MAX_SESSION_SUBSCRIPTIONS} are kept"),
            ));
        }
        let subs = serde_json::to_string(subscriptions)
            .map_err(|e| StoreError::invalid("session subscriptions", e.to_string()))?;
        let n = on_db!(&self.db, pool => {
            sqlx::query("UPDATE mcp_sessions SET subscriptions = $1, log_level = $2, touched_at = $3 WHERE id = $4")
                .bind(&subs)
                .bind(log_level)
                .bind(unix_now())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Forget a session (the client ended it).
    pub async fn end_session(&self, id: &str) -> Result<(), StoreError> {
        id_ok(id)?;
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM mcp_sessions WHERE id = $1").bind(id).execute(pool).await?;
        });
        Ok(())
    }
}

#[async_trait::async_trait]
impl SessionRecords for Store {
    async fn load(&self, id: &str) -> Result<Option<SessionRecord>, String> {
        self.load_session(id).await.map_err(|e| e.to_string())
    }

    async fn begin(&self, id: &str, handshake: &str) -> Result<(), String> {
        self.begin_session(id, handshake).await.map_err(|e| e.to_string())
    }

    async fn bind(&self, id: &str, owner: &str) -> Result<Option<String>, String> {
        self.bind_session(id, owner).await.map_err(|e| e.to_string())
    }

    async fn update(&self, id: &str, subscriptions: &[String], log_level: Option<&str>) -> Result<(), String> {
        self.update_session(id, subscriptions, log_level).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn end(&self, id: &str) -> Result<(), String> {
        self.end_session(id).await.map_err(|e| e.to_string())
    }
}
