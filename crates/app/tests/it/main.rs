//! The app's one integration-test binary.
#![allow(clippy::unwrap_used)]

mod cluster;
mod pipeline;
mod tidy;
