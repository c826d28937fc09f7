//! The one error type of the xAPI layer.

use plexus_store::StoreError;

/// Why an xAPI request was refused or failed. Messages are lowercase,
/// without a trailing period; a refused input names where the problem is
/// (a JSON path such as `statement[2].actor.mbox`, a query parameter or a
/// header) before the colon. [`XapiError::status`] is the HTTP status the
/// Statement Resource answers with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XapiError {
    /// The request is malformed: a statement, a query parameter or a header
    /// does not follow the specification (400).
    #[error("{path}: {reason}")]
    Invalid {
        /// Where: a JSON path into the body (`statement[2].actor.mbox`), a
        /// query parameter (`since`) or a header name.
        path: String,
        /// Why, in words.
        reason: String,
    },
    /// No such statement in the caller's tenant (404).
    #[error("{0}")]
    NotFound(String),
    /// A statement with this id exists with different content (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller's precondition for the write ([`Guard`](super::Guard))
    /// found its row changed by another writer first (409).
    #[error("{0}")]
    Overtaken(String),
    /// The caller may not do this, e.g. void statements (403).
    #[error("{0}")]
    Forbidden(String),
    /// The database failed (500). The message says no more; the source
    /// has the details for the log.
    #[error("storage error")]
    Store(#[source] StoreError),
}

impl XapiError {
    /// A refused input at `path`.
    pub fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), reason: reason.into() }
    }

    /// The HTTP status for this error: 400, 403, 404, 409 or 500.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) | Self::Overtaken(_) => 409,
            Self::Store(_) => 500,
        }
    }

    /// Where a refused input is wrong, for [`XapiError::Invalid`].
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl From<StoreError> for XapiError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::Error> for XapiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}
