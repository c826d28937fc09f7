//! plexus-trading integration tests.

mod analytics;
mod engine;
mod feeds;
mod journal;
mod oms;
mod pretrade;
mod surveillance;
mod types;
