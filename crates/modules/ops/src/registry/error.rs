//! The registry's error type.

use std::io;

use super::Format;

/// Why a registry operation failed. Every rejection of a change says exactly
/// what is wrong; the last good version of the document stays live.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The document name is not an acceptable relative path.
    #[error("invalid document name `{name}`: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// No live document (or no history) of that name.
    #[error("no document `{0}`")]
    NotFound(String),
    /// The content is over the size limit.
    #[error("document `{name}` is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The document name.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// The limit that applies to it.
        limit: u64,
    },
    /// The content is not UTF-8 text, or contains NUL bytes.
    #[error("document `{name}` is not text: {reason}")]
    Binary {
        /// The document name.
        name: String,
        /// Where the first non-text byte is.
        reason: String,
    },
    /// The content is not valid JSON or YAML.
    #[error("document `{name}` is not valid {format}{}: {message}", position(*.line, *.column))]
    Parse {
        /// The document name.
        name: String,
        /// The format it was parsed as.
        format: Format,
        /// 1-based line of the error, when the parser reports one.
        line: Option<usize>,
        /// 1-based column of the error, when the parser reports one.
        column: Option<usize>,
        /// The parser's message without the position.
        message: String,
    },
    /// The content does not match the document's JSON Schema.
    #[error("document `{name}` does not match schema `{schema}`: {}", errors.join("; "))]
    Schema {
        /// The document name.
        name: String,
        /// The name of the schema document.
        schema: String,
        /// One entry per violation: the JSON pointer of the offending value
        /// (`(root)` for the whole document), a colon, and the message.
        errors: Vec<String>,
    },
    /// A schema document does not compile as a JSON Schema.
    #[error("schema `{name}` is not a valid JSON Schema: {message}")]
    InvalidSchema {
        /// The schema document's name.
        name: String,
        /// What the compiler reported.
        message: String,
    },
    /// A semantic validator registered for the document refused it.
    #[error("document `{name}` was rejected: {}", errors.join("; "))]
    Rejected {
        /// The document name.
        name: String,
        /// The validator's messages.
        errors: Vec<String>,
    },
    /// Optimistic concurrency: the document moved on since the caller read it.
    #[error("version conflict on `{name}`: expected version {expected}, the latest is {actual}")]
    Conflict {
        /// The document name.
        name: String,
        /// The version the caller expected to be the latest (0: none).
        expected: u64,
        /// The latest version in the history (0: none).
        actual: u64,
    },
    /// The history has no such version.
    #[error("document `{name}` has no version {version}")]
    UnknownVersion {
        /// The document name.
        name: String,
        /// The version asked for.
        version: u64,
    },
    /// The version records a deletion, so it has no content to roll back to.
    #[error("version {version} of `{name}` records a deletion and has no content")]
    DeletedVersion {
        /// The document name.
        name: String,
        /// The version asked for.
        version: u64,
    },
    /// A stored version does not match its recorded digest, or is missing.
    #[error("history of `{name}` is damaged at version {version}: {reason}")]
    CorruptHistory {
        /// The document name.
        name: String,
        /// The damaged version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The author is empty or too long.
    #[error("invalid author: {0}")]
    InvalidAuthor(String),
    /// Reading or writing the directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The directory watcher could not be started.
    #[error("cannot watch `{path}`: {source}")]
    Watch {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: notify::Error,
    },
    /// A background task failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l} column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl RegistryError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        RegistryError::Io { context: context.into(), source }
    }

    /// The individual messages of a rejection: one per schema violation or
    /// validator message, otherwise the error's own message.
    pub fn messages(&self) -> Vec<String> {
        match self {
            RegistryError::Schema { errors, .. } | RegistryError::Rejected { errors, .. } => errors.clone(),
            other => vec![other.to_string()],
        }
    }

    /// Whether the error is about the content or name of a change (the
    /// caller's input) rather than the registry's state or environment.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            RegistryError::InvalidName { .. }
                | RegistryError::TooLarge { .. }
                | RegistryError::Binary { .. }
                | RegistryError::Parse { .. }
                | RegistryError::Schema { .. }
                | RegistryError::InvalidSchema { .. }
                | RegistryError::Rejected { .. }
                | RegistryError::InvalidAuthor(_)
        )
    }
}
