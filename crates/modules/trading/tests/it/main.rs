//! plexus-trading integration tests.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod analytics;
mod desk;
mod engine;
mod feeds;
mod journal;
mod oms;
mod pretrade;
mod shared;
mod surveillance;
mod types;
