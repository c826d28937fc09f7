//! The operations hub several teams' systems share.
//!
//! Built so far: [`flags`], a feature-flag evaluation engine compatible with
//! Unleash (plain Rust, no MCP types), checked against the Unleash client
//! specification suite.

pub mod flags;
