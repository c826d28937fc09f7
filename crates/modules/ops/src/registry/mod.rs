//! The shared config registry: a watched directory of versioned documents.
//!
//! Several teams' systems share one directory (by default `<data>/shared`)
//! laid out as `config/`, `alerts/`, `reports/`, `experiments/`, `audit/`,
//! `compliance/`, `incidents/`, `security/` and `schemas/`. It holds JSON,
//! YAML, Markdown and CSV documents. [`SharedRegistry`] serves the last good
//! version of each, takes changes through its API or from disk (with
//! [`SharedRegistry::watch`]), validates them, records them in a history and
//! tells subscribers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), plexus_ops::registry::RegistryError> {
//! use plexus_ops::registry::{RegistryOptions, SharedRegistry};
//!
//! let registry = SharedRegistry::open("/var/lib/plexus/shared", RegistryOptions::default()).await?;
//! let _watcher = registry.watch().await?; // disk edits are picked up while this lives
//! let mut events = registry.subscribe();
//! registry.put("config/limits.yaml", "max: 3\n", "alice", None).await?;
//! let live = registry.get("config/limits.yaml")?;
//! assert_eq!(live.version, 1);
//! # let _ = events.recv().await;
//! # Ok(()) }
//! ```
//!
//! # Names
//!
//! A document is named by its path relative to the root with `/` separators,
//! such as `config/interview-types.json`. Absolute paths, `..`, `.` and
//! hidden (dot) components, empty components, backslashes and control
//! characters are refused, as are directory components ending with a
//! document extension (they would collide with the history layout). The
//! extension decides the [`Format`]: `.json`, `.yaml`/`.yml`, `.md`, `.csv`.
//! Any Unicode is fine otherwise (`config/面談.json`).
//!
//! # Checks, in order
//!
//! 1. size: [`RegistryOptions::max_size`] for edits (API and disk),
//!    [`RegistryOptions::max_generated_size`] for documents the system writes
//!    ([`SharedRegistry::put_generated`], and disk content of a document whose
//!    latest version was generated);
//! 2. text: UTF-8 without NUL bytes, else [`RegistryError::Binary`];
//! 3. syntax (JSON, YAML): [`RegistryError::Parse`] with line and column;
//! 4. JSON Schema (JSON, YAML): the schema of `<dir>/<stem>.<ext>` is the
//!    live `schemas/<dir>/<stem>.schema.json` if there is one, else
//!    `schemas/<stem>.schema.json`; documents under `schemas/` have none.
//!    Violations are listed with the JSON pointer of the offending value
//!    ([`RegistryError::Schema`]);
//! 5. validators added with [`SharedRegistry::add_validator`]
//!    ([`RegistryError::Rejected`]).
//!
//! A schema document (`schemas/**/<stem>.schema.json`) must itself compile
//! ([`RegistryError::InvalidSchema`]). When a schema changes, the documents
//! it governs stay live; those the new schema refuses are listed by
//! [`SharedRegistry::problems`] as [`ProblemKind::Stale`], and those whose
//! file on disk was refused are checked again.
//!
//! # History
//!
//! `<root>/.history/<name>/<version>.<ext>` holds each version's content and
//! `<root>/.history/<name>/log.jsonl` one line per version (version, author,
//! time, SHA-256, size, source, deletion). Both are written and synced
//! before the live file is replaced (temporary file and rename in the same
//! directory) and before the in-memory state swaps. On [`SharedRegistry::open`]
//! the directory is reconciled with the history: a file that differs from its
//! last version becomes a new version (source `disk`) if it passes the checks;
//! if not, the last good version stays live and a [`Problem`] is listed. A
//! file deleted while the server was down is recorded as a deletion.
//!
//! # Watching
//!
//! The watcher (inotify on Linux) watches the root and each visible top-level
//! directory (not `.history`). Events are debounced per path
//! ([`RegistryOptions::debounce`], trailing, at most eight times that in
//! total under a stream of writes). A live document whose file is missing or
//! empty is looked at once more after four debounce periods before that is
//! taken as a deletion or as new content (editors replace files by deleting
//! and renaming, or truncate before writing). Hidden files and editor
//! temporary files (`*~`, `*.swp`, `4913`, `#*#`) are ignored; content equal
//! to the live version (such as the registry's own writes) changes nothing.
//! When the kernel reports lost events, everything is scanned again. Changes
//! from disk and from the API are serialized by one lock, so versions of a
//! document strictly increase.
//!
//! Symbolic links are not followed, neither for files nor for directories
//! on the way to a document: they are listed as problems.

pub mod cluster;
mod engine;
mod error;
mod name;
mod store;
mod validate;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use error::RegistryError;
pub use name::Format;
pub use watch::Watcher;

use engine::{Held, Inner};
use name::DocName;

/// The top-level directories [`SharedRegistry::open`] creates.
pub const SUBDIRECTORIES: [&str; 9] =
    ["config", "alerts", "reports", "experiments", "audit", "compliance", "incidents", "security", "schemas"];

/// Limits and timings of a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Largest document accepted from an edit (API or disk), in bytes.
    pub max_size: usize,
    /// Largest document the system itself writes (reports, audit exports).
    pub max_generated_size: usize,
    /// How long a path must be quiet before a disk change is read.
    pub debounce: Duration,
    /// How many events a slow subscriber may fall behind before it lags.
    pub event_capacity: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            max_size: 1 << 20,
            max_generated_size: 32 << 20,
            debounce: Duration::from_millis(25),
            event_capacity: 1024,
        }
    }
}

/// An extra check for one document: given the parsed value (for Markdown and
/// CSV, the text as a JSON string), the reasons to refuse it, if any. Runs
/// after the schema; must not block for long.
pub type Validator = Arc<dyn Fn(&serde_json::Value) -> Result<(), Vec<String>> + Send + Sync>;

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// A file edited in the watched directory (or found at startup).
    Disk,
    /// [`SharedRegistry::put`] or [`SharedRegistry::delete`].
    Api,
    /// [`SharedRegistry::rollback`].
    Rollback,
    /// [`SharedRegistry::put_generated`]: written by the system itself.
    System,
}

impl Source {
    /// `disk`, `api`, `rollback` or `system`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Disk => "disk",
            Source::Api => "api",
            Source::Rollback => "rollback",
            Source::System => "system",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Source> {
        match s {
            "disk" => Some(Source::Disk),
            "api" => Some(Source::Api),
            "rollback" => Some(Source::Rollback),
            "system" => Some(Source::System),
            _ => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live (last good) version of a document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document name (`config/interview-types.json`).
    pub name: String,
    /// Its version number (1 for the first).
    pub version: u64,
    /// Its format, from the extension.
    pub format: Format,
    /// The content.
    pub text: Arc<str>,
    /// The parsed content of JSON and YAML documents.
    pub value: Option<Arc<serde_json::Value>>,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// When this version was recorded (RFC 3339, UTC).
    pub updated_at: String,
    /// Who made this version (`disk` for disk edits, `plexus` for generated documents).
    pub author: String,
    /// Where this version came from.
    pub source: Source,
}

/// A line of [`SharedRegistry::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    /// The document name.
    pub name: String,
    /// The live version.
    pub version: u64,
    /// Its format.
    pub format: Format,
    /// Its size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// When the live version was recorded (RFC 3339).
    pub updated_at: String,
    /// Who made the live version.
    pub author: String,
}

/// One entry of a document's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version number.
    pub version: u64,
    /// Who made it.
    pub author: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Hex SHA-256 of the content (of the empty string for a deletion).
    pub sha256: String,
    /// Size in bytes (0 for a deletion).
    pub size: u64,
    /// Where it came from.
    pub source: Source,
    /// Whether this version records the document's deletion.
    pub deleted: bool,
}

/// The result of a change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The document name.
    pub name: String,
    /// The version now current: the new one, or the live one when the
    /// content was already live (`recorded` is false then).
    pub version: VersionInfo,
    /// The version that was live before, if any.
    pub previous: Option<u64>,
    /// Whether a new version was recorded.
    pub recorded: bool,
    /// Unified diff from the previous live content (empty if none) to the
    /// new (empty for a deletion); `None` if nothing was recorded, if either
    /// side is larger than [`RegistryOptions::max_size`], or if both have
    /// more than 10,000 lines together (use [`SharedRegistry::diff`]).
    pub diff: Option<String>,
}

/// Why a document is listed by [`SharedRegistry::problems`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file on disk is refused; the last good version (if any) stays live.
    Rejected,
    /// The live version no longer passes the current schema or validators.
    Stale,
}

/// A document that needs attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The document name (or the path, for a file with an unusable name).
    pub name: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The specific errors.
    pub errors: Vec<String>,
    /// When it was first seen (RFC 3339, UTC).
    pub detected_at: String,
    /// The live version meanwhile, if any.
    pub live_version: Option<u64>,
}

/// What subscribers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryEvent {
    /// A new version is live.
    Changed {
        /// The document name.
        name: String,
        /// The new live version.
        version: u64,
        /// The version live before, if any.
        previous: Option<u64>,
        /// Where the change came from.
        source: Source,
        /// Who made it.
        author: String,
        /// Hex SHA-256 of the new content.
        sha256: String,
    },
    /// A file on disk was refused (changes through the API are refused to
    /// their caller instead); the last good version stays live.
    Rejected {
        /// The document name or path.
        name: String,
        /// The specific errors.
        errors: Vec<String>,
    },
    /// The document was deleted; its history remains.
    Removed {
        /// The document name.
        name: String,
        /// The version recording the deletion.
        version: u64,
        /// Where the deletion came from.
        source: Source,
    },
}

/// The registry. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct SharedRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegistry").field("root", &self.inner.root).finish_non_exhaustive()
    }
}

impl SharedRegistry {
    /// Open (creating if needed) the directory `root` with its
    /// [`SUBDIRECTORIES`], load the history and reconcile it with the files.
    pub async fn open(root: impl Into<PathBuf>, options: RegistryOptions) -> Result<Self, RegistryError> {
        let root = root.into();
        let inner = tokio::task::spawn_blocking(move || Inner::open(root, options)).await.map_err(join_error)??;
        Ok(SharedRegistry { inner: Arc::new(inner) })
    }

    /// Cluster mode: keep this registry's versions the same as every other
    /// node's, through the PostgreSQL database at `url` ([`cluster`]).
    /// Call once, before serving.
    ///
    /// # Errors
    /// The database cannot be reached or refuses the table.
    pub async fn join(&self, url: &str, node: &str) -> Result<(), RegistryError> {
        cluster::join(&self.inner, url, node).await
    }

    /// The root directory (canonical).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Add a semantic check for the document `name`, run after its schema on
    /// every later change. The live version is not re-checked: call
    /// [`SharedRegistry::revalidate`] for that.
    pub fn add_validator(&self, name: &str, validator: Validator) -> Result<(), RegistryError> {
        let name = DocName::parse(name)?;
        self.inner.validators.write().entry(name.as_str().to_owned()).or_default().push(validator);
        Ok(())
    }

    /// Start watching the directory; dropping the handle stops it. Changes
    /// made between [`SharedRegistry::open`] and this call are picked up.
    pub async fn watch(&self) -> Result<Watcher, RegistryError> {
        watch::start(Arc::clone(&self.inner)).await
    }

    /// Every live document, sorted by name.
    pub fn list(&self) -> Vec<DocumentInfo> {
        self.inner.list()
    }

    /// The live version of `name`.
    pub fn get(&self, name: &str) -> Result<Document, RegistryError> {
        let name = DocName::parse(name)?;
        self.inner.live(&name).ok_or_else(|| RegistryError::NotFound(name.to_string()))
    }

    /// Check `content`, record it as a new version by `author`, write the
    /// file atomically and make it live. With `expected_version`, fail with
    /// [`RegistryError::Conflict`] unless it is the latest version in the
    /// history (0: the document has never existed). Content equal to the
    /// live version records nothing (`Change::recorded` is false) but
    /// restores the file if the one on disk was refused.
    pub async fn put(
        &self,
        name: &str,
        content: &str,
        author: &str,
        expected_version: Option<u64>,
    ) -> Result<Change, RegistryError> {
        let limit = self.inner.options.max_size;
        self.write(name, content, author, Source::Api, expected_version, limit).await
    }

    /// [`SharedRegistry::put`] for documents the system writes (reports,
    /// audit exports): author `plexus`, source `system`, size limit
    /// [`RegistryOptions::max_generated_size`].
    pub async fn put_generated(&self, name: &str, content: &str) -> Result<Change, RegistryError> {
        let limit = self.inner.options.max_generated_size;
        self.write(name, content, "plexus", Source::System, None, limit).await
    }

    async fn write(
        &self,
        name: &str,
        content: &str,
        author: &str,
        source: Source,
        expected: Option<u64>,
        limit: usize,
    ) -> Result<Change, RegistryError> {
        let name = DocName::parse(name)?;
        let author = engine::check_author(author)?;
        if content.len() > limit {
            return Err(RegistryError::TooLarge {
                name: name.to_string(),
                size: content.len() as u64,
                limit: limit as u64,
            });
        }
        // In a cluster, another node may have made the next version first:
        // a change that did not name the version it expects is made again
        // on top of it, once this node has adopted it (within a tick).
        let mut tries = 0;
        loop {
            let (n, c, a) = (name.clone(), content.to_owned(), author.clone());
            match self.locked(move |inner, held| inner.put(held, &n, c, &a, source, expected, limit)).await {
                Err(RegistryError::Conflict { .. }) if expected.is_none() && self.inner.clustered() && tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(cluster::TICK + Duration::from_millis(20)).await;
                }
                done => return done,
            }
        }
    }

    /// Make a new version whose content is that of `version` (checked
    /// against the current schema and validators like any change).
    pub async fn rollback(&self, name: &str, version: u64, author: &str) -> Result<Change, RegistryError> {
        let name = DocName::parse(name)?;
        let author = engine::check_author(author)?;
        self.locked(move |inner, held| inner.rollback(held, &name, version, &author)).await
    }

    /// Delete the live document: the file is removed and the deletion
    /// recorded as a version, so [`SharedRegistry::rollback`] can restore it.
    pub async fn delete(&self, name: &str, author: &str) -> Result<Change, RegistryError> {
        let name = DocName::parse(name)?;
        let author = engine::check_author(author)?;
        self.locked(move |inner, held| inner.delete(held, &name, &author, Source::Api)).await
    }

    /// Check `name` again: read its file if it differs from the live version
    /// (taking it if it now passes), then check the live version against the
    /// current schema and validators. Returns the document's problems
    /// afterwards (empty when all is well).
    pub async fn revalidate(&self, name: &str) -> Result<Vec<Problem>, RegistryError> {
        let name = DocName::parse(name)?;
        self.locked(move |inner, held| inner.revalidate(held, &name)).await
    }

    /// The history of `name`, oldest first (also for a deleted document).
    pub fn history(&self, name: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        let name = DocName::parse(name)?;
        self.inner.history(&name).ok_or_else(|| RegistryError::NotFound(name.to_string()))
    }

    /// A unified diff between two versions of `name` (a deletion counts as
    /// empty content; version 0 is the empty document before the first).
    pub async fn diff(&self, name: &str, from: u64, to: u64) -> Result<String, RegistryError> {
        let name = DocName::parse(name)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.diff(&name, from, to)).await.map_err(join_error)?
    }

    /// The content of one version of `name`.
    pub async fn version(&self, name: &str, version: u64) -> Result<Arc<str>, RegistryError> {
        let name = DocName::parse(name)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.version_text(&name, version)).await.map_err(join_error)?
    }

    /// Documents that need attention, sorted by name then kind.
    pub fn problems(&self) -> Vec<Problem> {
        self.inner.problems()
    }

    /// Receive every later change, rejection and removal.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.inner.events.subscribe()
    }

    /// Run `f` under the mutation lock on a blocking thread. The lock guard
    /// moves into the thread, so a cancelled caller cannot release the lock
    /// while a change is half done.
    async fn locked<T, F>(&self, f: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Held) -> Result<T, RegistryError> + Send + 'static,
    {
        let held = self.inner.lock().await;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner, &held)).await.map_err(join_error)?
    }
}

fn join_error(e: tokio::task::JoinError) -> RegistryError {
    RegistryError::Internal(format!("a registry task failed: {e}"))
}
