//! incidents tests.
