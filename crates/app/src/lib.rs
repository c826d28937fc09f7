//! The `plexus` application: command line, configuration and wiring. This is
//! the only composition root: it alone knows every crate.

pub mod cli;
pub mod cluster;
mod commands;
pub mod config;
pub mod jwks;
mod logging;
pub mod otlp;
pub mod trust;
pub mod wiring;

pub use commands::run;
