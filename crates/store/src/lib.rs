//! plexus-store: adapters for plexus-core's ports.
//!
//! - [`Store`]: the database, SQLite (one WAL file, the default) or
//!   PostgreSQL, opened from a URL, with per-owner [`Migrations`] run at
//!   open. Tenants live in its directory ([`Store::create_tenant`], and it
//!   is a [`TenantDirectory`](plexus_core::ports::TenantDirectory));
//!   tenant-owned rows (API keys, later module tables) are reached only
//!   through a [`TenantScope`] from [`Store::tenant`], backed on PostgreSQL
//!   by row-level security.
//! - [`AuditStore`]: the audit log in the database, one hash chain per node,
//!   group commit.
//! - [`JsonlAuditLog`]: the audit log as a JSON Lines file, group commit.
//! - Legacy-era MCP sessions ([`SessionRecords`](plexus_core::ports::SessionRecords)
//!   on [`Store`]), so that any node can carry a session on.
//! - Encryption at rest: a [`Keyring`] of [`MasterKey`]s wraps per-tenant
//!   data keys; modules seal the columns they mark [`SensitiveField`]s with
//!   [`TenantScope::seal`] and open them with [`TenantScope::open`].

#![warn(missing_docs)]

mod audit_store;
mod crypto;
mod db;
mod error;
mod group;
mod jsonl_audit;
mod keys;
mod migrate;
mod scope;
mod sessions;
pub mod shared;
mod tenants;

pub use audit_store::{AuditHead, AuditStore, MAX_BATCH};
pub use crypto::{DataKeyInfo, KEY_BYTES, Keyring, MasterKey, MasterRotation, SEALED_PREFIX, SensitiveField};
pub use db::{Backend, Commit, Store};
pub use error::StoreError;
pub use group::{Member, WriteCounters};
pub use jsonl_audit::{Durability, JsonlAuditLog, read_records};
pub use keys::{ApiKey, ApiKeySecret, KEY_PREFIX, KeyPrincipal, NewApiKey, key_digest};
pub use migrate::{CORE_MIGRATIONS, Migration, Migrations};
pub use scope::TenantScope;
pub use sessions::{MAX_SESSION_SUBSCRIPTIONS, SESSION_RETENTION_SECS};
pub use tenants::{NewTenant, Tenant};

/// What [`tenant_tx`] expands to; not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::db::Db;
    pub use crate::group::{Member, WriteGate};
    pub use crate::scope::PG_SET_TENANT;
    pub use sqlx;
}
