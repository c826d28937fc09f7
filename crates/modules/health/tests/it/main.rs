//! plexus-health integration tests: the engine against real outside data.
#![allow(clippy::unwrap_used)]

mod synthea;
