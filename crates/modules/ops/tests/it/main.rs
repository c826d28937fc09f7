//! plexus-ops integration tests.

mod compliance;
mod experiments;
mod flags;
mod incidents;
mod registry;
mod unleash;
