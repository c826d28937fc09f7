//! plexus-ops integration tests.

mod flags;
mod unleash;
