//! plexus-knowledge integration tests: the index through its public API.
#![allow(clippy::unwrap_used)]

mod fs;
mod index;
mod sql;
