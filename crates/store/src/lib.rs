//! plexus-store: adapters for plexus-core's ports.
//!
//! Today: the JSON Lines audit log with group commit. The SQLite and
//! PostgreSQL adapters arrive with the trust layer.

mod jsonl_audit;

pub use jsonl_audit::{Durability, JsonlAuditLog, read_records};
