//! plexus-learning integration tests.

mod analytics;
mod bkt;
mod cat;
mod common;
mod demo;
mod graph;
mod irt;
mod module;
mod xapi;
