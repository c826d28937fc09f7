//! The shared config registry: a watched directory of versioned documents.
