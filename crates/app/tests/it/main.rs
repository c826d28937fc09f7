//! The app's one integration-test binary.
#![allow(clippy::unwrap_used)]

mod pipeline;
mod tidy;
