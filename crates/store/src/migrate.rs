//! Versioned schema migrations, per owner.
//!
//! Each owner (`core`, later each module with its own tables) has a list of
//! [`Migration`]s, numbered from 1, with one SQL script per backend where
//! the dialects differ. [`Store::migrate`] applies the ones not yet recorded
//! in `schema_migrations` (owner, version, name, checksum, applied_at), all in
//! one transaction, and is idempotent. A script edited after it was applied
//! is refused (its checksum no longer matches), and so is a database that a
//! newer build has migrated further than this one knows.

use sha2::{Digest, Sha256};
use sqlx::Row;
use time::OffsetDateTime;

use crate::db::{Backend, Store};
use crate::error::StoreError;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Position in the owner's sequence, from 1, without gaps.
    pub version: i64,
    /// Short description (`init`, `add_quota_columns`).
    pub name: &'static str,
    /// The script for SQLite (may hold several statements).
    pub sqlite: &'static str,
    /// The script for PostgreSQL (may hold several statements).
    pub postgres: &'static str,
}

/// An owner's migrations, in order.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Who owns the tables (`core`, a module's name).
    pub owner: &'static str,
    /// The migrations, versions 1, 2, ... in order.
    pub steps: &'static [Migration],
}

/// The core tables: tenants, API keys, the audit log, data keys.
pub const CORE_MIGRATIONS: Migrations = Migrations {
    owner: "core",
    steps: &[
        Migration {
            version: 1,
            name: "init",
            sqlite: include_str!("../migrations/core/0001_init.sqlite.sql"),
            postgres: include_str!("../migrations/core/0001_init.postgres.sql"),
        },
        Migration {
            version: 2,
            name: "data_keys",
            sqlite: include_str!("../migrations/core/0002_data_keys.sqlite.sql"),
            postgres: include_str!("../migrations/core/0002_data_keys.postgres.sql"),
        },
        Migration {
            version: 3,
            name: "mcp_sessions",
            sqlite: include_str!("../migrations/core/0003_mcp_sessions.sqlite.sql"),
            postgres: include_str!("../migrations/core/0003_mcp_sessions.postgres.sql"),
        },
    ],
};

const SQLITE_BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    owner      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (owner, version)
) STRICT";

const POSTGRES_BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    owner      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, version)
)";

/// Serializes migrations of concurrent processes on one PostgreSQL database.
const POSTGRES_LOCK: &str = "SELECT pg_advisory_xact_lock(7210442718443165001)";

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

fn check_order(set: &Migrations) -> Result<(), StoreError> {
    for (i, m) in set.steps.iter().enumerate() {
        let expected = i as i64 + 1;
        if m.version != expected {
            return Err(StoreError::Migration {
                owner: set.owner.into(),
                version: m.version,
                reason: format!("is out of order: expected version {expected}"),
            });
        }
    }
    Ok(())
}

impl Store {
    /// Apply `set`'s migrations not applied yet; returns how many were.
    /// Safe to call at every start and from several processes at once.
    pub async fn migrate(&self, set: &Migrations) -> Result<usize, StoreError> {
        check_order(set)?;
        let backend = self.backend();
        let applied = crate::db::in_write_tx!(&self.db, conn => {
            match backend {
                Backend::Sqlite => {
                    sqlx::raw_sql(SQLITE_BOOKKEEPING).execute(&mut *conn).await?;
                }
                Backend::Postgres => {
                    sqlx::raw_sql(POSTGRES_LOCK).execute(&mut *conn).await?;
                    sqlx::raw_sql(POSTGRES_BOOKKEEPING).execute(&mut *conn).await?;
                }
            }
            let rows = sqlx::query("SELECT version, checksum FROM schema_migrations WHERE owner = $1 ORDER BY version")
                .bind(set.owner)
                .fetch_all(&mut *conn)
                .await?;
            let mut done = Vec::with_capacity(rows.len());
            for row in rows {
                let version: i64 = row.try_get("version")?;
                let sum: String = row.try_get("checksum")?;
                done.push((version, sum));
            }
            let known = set.steps.len() as i64;
            if let Some((newest, _)) = done.iter().find(|(v, _)| *v > known) {
                return Err(StoreError::Migration {
                    owner: set.owner.into(),
                    version: *newest,
                    reason: format!("is applied but this build knows only up to version {known}: a newer plexus migrated this database"),
                });
            }
            let mut applied = 0usize;
            for m in set.steps {
                let sql = match backend {
                    Backend::Sqlite => m.sqlite,
                    Backend::Postgres => m.postgres,
                };
                let sum = checksum(sql);
                if let Some((_, recorded)) = done.iter().find(|(v, _)| *v == m.version) {
                    if *recorded != sum {
                        return Err(StoreError::Migration {
                            owner: set.owner.into(),
                            version: m.version,
                            reason: "was changed after it was applied (checksum mismatch)".into(),
                        });
                    }
                    continue;
                }
                sqlx::raw_sql(sql).execute(&mut *conn).await.map_err(|e| StoreError::Migration {
                    owner: set.owner.into(),
                    version: m.version,
                    reason: format!("failed: {e}"),
                })?;
                sqlx::query(
                    "INSERT INTO schema_migrations (owner, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(set.owner)
                .bind(m.version)
                .bind(m.name)
                .bind(&sum)
                .bind(OffsetDateTime::now_utc())
                .execute(&mut *conn)
                .await?;
                tracing::info!(owner = set.owner, version = m.version, name = m.name, backend = backend.as_str(), "migration applied");
                applied += 1;
            }
            applied
        });
        Ok(applied)
    }

    /// The versions of `owner` recorded as applied, in order.
    pub async fn applied_migrations(&self, owner: &str) -> Result<Vec<i64>, StoreError> {
        let versions = crate::db::on_db!(&self.db, pool => {
            sqlx::query_scalar::<_, i64>("SELECT version FROM schema_migrations WHERE owner = $1 ORDER BY version")
                .bind(owner)
                .fetch_all(pool)
                .await?
        });
        Ok(versions)
    }
}
