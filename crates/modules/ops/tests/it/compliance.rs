//! compliance tests.
