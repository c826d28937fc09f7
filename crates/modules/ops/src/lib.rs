//! The operations hub several teams' systems share.
//!
//! Engines (plain Rust, no MCP types):
//! - [`flags`]: a feature-flag evaluation engine compatible with Unleash,
//!   checked against the Unleash client specification suite;
//! - [`registry`]: the shared config registry, a watched directory of
//!   versioned, schema-validated documents;
//! - [`experiments`]: exposures, conversions and their statistics;
//! - [`compliance`]: Markdown checklists parsed into tasks per team;
//! - [`incidents`]: the incident lifecycle and webhook notifications.

pub mod access;
pub mod alerts;
pub mod compliance;
pub mod demo;
pub mod experiments;
pub mod flags;
pub mod hub;
pub mod incidents;
pub mod ofrep;
pub mod ops_reports;
pub mod registry;
pub mod reports;
pub mod tools;
mod workflows;

pub use hub::{Hub, OpsConfig, OpsError};
pub use tools::Ops;
