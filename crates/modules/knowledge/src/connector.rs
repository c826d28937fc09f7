//! The one trait every connector implements, the types a sync reports in,
//! and the shared second half of every non-filesystem sync ([`apply`]):
//! upsert what changed, delete what is gone, commit.
//!
//! A connector reads its source from a [`Cursor`] (`None`: from scratch)
//! and returns the next cursor; the [`crate::sources::Syncer`] saves it
//! only after the index committed, so a sync cut short by a crash is run
//! again from the last good cursor: upserts replace by id, nothing is
//! duplicated.
//!
//! Deleted documents are found one of two ways: a connector that can list
//! every id cheaply returns them all ([`Fetched::present`]) and whatever the
//! index holds beyond them is deleted; a connector over a delta API
//! (Microsoft Graph) returns the ids the source reported deleted
//! ([`Fetched::deleted`]).

use std::collections::HashSet;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::index::{Document, Index, SearchError};

/// Where the last sync of a source got to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Newest modification time indexed, nanoseconds since the epoch.
    pub modified_ns: i128,
    /// A source's own position (a commit id, a delta link), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Cursor {
    /// A cursor at `secs` (Unix seconds) with no token.
    pub fn at_secs(secs: i64) -> Self {
        Self { modified_ns: i128::from(secs) * 1_000_000_000, token: None }
    }

    /// The cursor's time in Unix seconds.
    pub fn secs(&self) -> i64 {
        i64::try_from(self.modified_ns / 1_000_000_000).unwrap_or(i64::MAX)
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SyncReport {
    pub source: String,
    /// Items seen (files, rows, pages, issues).
    pub files: usize,
    /// Documents (re)indexed.
    pub indexed: usize,
    /// Items unchanged since the last sync.
    pub unchanged: usize,
    /// Documents removed because the source no longer has them.
    pub deleted: usize,
    /// Items skipped: unreadable, binary, too large, redirect pages, or
    /// answers that did not have the documented shape.
    pub skipped: usize,
    /// Requests retried (429, 5xx, connection errors) before they succeeded
    /// or were given up.
    #[serde(default)]
    pub retries: usize,
    /// Parts of the source that could not be read; the rest was synced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Ids of the documents indexed or deleted (subscribers are told).
    #[serde(skip)]
    #[schemars(skip)]
    pub changed: Vec<String>,
}

/// Why a sync failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("source {source_name}: cannot read {path}: {error}")]
    Root { source_name: String, path: String, error: std::io::Error },
    #[error("source {source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error(transparent)]
    Index(#[from] SearchError),
}

impl SyncError {
    /// A source-level failure.
    pub fn source(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::Source { source_name: name.to_owned(), reason: reason.to_string() }
    }
}

/// `progress(done, total)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// A source of documents. Blocking: the syncer runs it off the async
/// workers (connectors over async clients use [`block_on`]).
pub trait Connector: Send + Sync {
    /// The configured source's name (document ids start with it).
    fn name(&self) -> &str;

    /// Sync into `index` for `tenant` from `cursor`; returns the report and
    /// the cursor to save once the index has committed.
    fn sync(
        &self,
        index: &Index,
        tenant: &str,
        cursor: Option<&Cursor>,
        progress: Progress<'_>,
    ) -> Result<(SyncReport, Cursor), SyncError>;
}

/// What a fetching connector read from its source.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Documents new or changed since the cursor.
    pub changed: Vec<Document>,
    /// Every id the source has now, when it listed them all (or, with
    /// `present_scope`, every id starting with that prefix).
    pub present: Option<HashSet<String>>,
    /// Only ids starting with this prefix are checked against `present`.
    pub present_scope: Option<String>,
    /// Ids the source reported deleted.
    pub deleted: Vec<String>,
    /// Items seen in all.
    pub seen: usize,
    pub skipped: usize,
    pub retries: usize,
    pub problems: Vec<String>,
    /// The cursor after this sync.
    pub cursor: Cursor,
}

/// Write `fetched` into the index for `tenant` and commit.
pub fn apply(index: &Index, tenant: &str, source: &str, fetched: Fetched) -> Result<(SyncReport, Cursor), SyncError> {
    let mut gone = fetched.deleted;
    if let Some(present) = &fetched.present {
        let scope = fetched.present_scope.as_deref().unwrap_or("");
        gone.extend(
            index
                .ids_of_source(tenant, source)?
                .into_iter()
                .filter(|id| id.starts_with(scope) && !present.contains(id)),
        );
    }
    gone.sort();
    gone.dedup();
    // A document both changed and reported deleted (a delta page that saw it
    // come and go) ends deleted only if it is not among the changed ones.
    let changed_ids: HashSet<&str> = fetched.changed.iter().map(|d| d.id.as_str()).collect();
    gone.retain(|id| !changed_ids.contains(id.as_str()));
    index.upsert(tenant, &fetched.changed)?;
    index.delete(tenant, &gone);
    index.commit()?;
    let changed = fetched.changed.iter().map(|d| d.id.clone()).chain(gone.iter().cloned()).collect();
    let report = SyncReport {
        changed,
        source: source.to_owned(),
        files: fetched.seen,
        indexed: fetched.changed.len(),
        unchanged: fetched.seen.saturating_sub(fetched.changed.len() + fetched.skipped),
        deleted: gone.len(),
        skipped: fetched.skipped,
        retries: fetched.retries,
        problems: fetched.problems,
    };
    Ok((report, fetched.cursor))
}

/// The sync of a connector over an async API: run its fetch to completion
/// (see [`block_on`]) and [`apply`] what it read.
pub fn fetch_and_apply<F>(
    index: &Index,
    tenant: &str,
    source: &str,
    fetch: F,
) -> Result<(SyncReport, Cursor), SyncError>
where
    F: Future<Output = Result<Fetched, SyncError>>,
{
    let fetched = block_on(fetch).map_err(|e| SyncError::source(source, e))??;
    apply(index, tenant, source, fetched)
}

/// Run `f` to completion from blocking code: on the current runtime when
/// there is one (the syncer runs in `spawn_blocking`), else on a small one
/// of its own (the CLI, tests).
pub fn block_on<F: Future>(f: F) -> Result<F::Output, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .map(|rt| rt.block_on(f)),
    }
}
