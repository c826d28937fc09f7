//! plexus-ops integration tests.

mod alerts;
mod compliance;
mod experiments;
mod flags;
mod hub;
mod incidents;
mod registry;
mod reports;
mod unleash;
