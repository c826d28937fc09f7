//! experiments tests.
