//! plexus-knowledge integration tests: the index through its public API.
#![allow(clippy::unwrap_used)]

mod fs;
mod git;
mod index;
mod saas;
mod sql;
