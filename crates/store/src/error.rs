//! The one error type of the store.

/// Why a storage operation failed. Messages are lowercase, without a
/// trailing period, and never contain a secret (API keys, passwords).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage URL could not be understood.
    #[error("invalid storage url: {0}")]
    InvalidUrl(String),
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Preparing the database file or directory failed.
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A migration failed or does not match what was applied before.
    #[error("migration {owner}/{version} {reason}")]
    Migration {
        /// Who owns the migration set (`core`, a module name).
        owner: String,
        /// The migration's version.
        version: i64,
        /// What went wrong.
        reason: String,
    },
    /// A row with this identity already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// The tenant is not in the tenant directory.
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    /// No such row (in the caller's tenant, for tenant-owned rows).
    #[error("{0} not found")]
    NotFound(String),
    /// An argument was refused before it reached the database.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument refused.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored value could not be read back as what it should be.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The audit writer task has stopped (the store was closed).
    #[error("audit writer stopped")]
    WriterStopped,
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Whether a database error is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}
