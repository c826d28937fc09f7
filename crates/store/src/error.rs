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
    /// Encryption at rest was asked for, but the store has no master key.
    #[error(
        "no master key: encryption at rest needs one (set crypto.master_key_file in plexus.toml or PLEXUS_MASTER_KEY; \
         `plexus keys generate-master --out FILE` makes one)"
    )]
    NoMasterKey,
    /// A data key is wrapped by a master key the keyring does not have.
    #[error(
        "data key {data_key_id} of tenant {tenant} is wrapped by master key {master_key_id}, which is not configured \
         (add it to crypto.previous_master_key_files, or restore it)"
    )]
    UnknownMasterKey {
        /// The missing master key's id.
        master_key_id: String,
        /// The data key it wraps.
        data_key_id: String,
        /// The data key's tenant.
        tenant: String,
    },
    /// A sealed value or wrapped key did not decrypt (altered, or bound to
    /// another tenant or field), or encryption failed.
    #[error("encryption at rest: {0}")]
    Crypto(String),
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
