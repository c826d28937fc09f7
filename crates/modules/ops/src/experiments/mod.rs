//! Experiments: exposures and conversions per variant, and their statistics.
