//! plexus-learning integration tests.

mod bkt;
mod cat;
mod common;
mod irt;
