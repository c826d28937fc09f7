//! Configured sources and their sync state.
//!
//! Sources come from `plexus.toml` (`[[knowledge.sources]]`); each belongs to
//! a tenant and names its readers. The [`Syncer`] runs their connectors
//! into the index and keeps each source's cursor in a small JSON file next
//! to the index, written (atomically: temporary file, fsync, rename) only
//! after the index committed, so an interrupted sync resumes from the last
//! good cursor and never duplicates documents.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::fs::{Cursor, FsSource, SyncReport};
use crate::index::Index;

/// One `[[knowledge.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique per tenant; letters, digits, `-` and `_`.
    pub name: String,
    /// `filesystem` or `sql` (the other connectors arrive with their fixtures).
    pub kind: String,
    /// The directory (filesystem).
    pub path: Option<PathBuf>,
    /// The database (sql): `postgres://…`, `sqlite:///…` or a SQLite file path.
    pub url: Option<String>,
    /// The query (sql): columns id, title, body; optional author, updated,
    /// url, space, kind, readers.
    pub query: Option<String>,
    /// The tenant that owns the documents.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Who may read every document of the source, unless the source says
    /// per document: `everyone`, `role:<r>`, `group:<g>`, `user:<subject>`.
    /// Empty: nobody (private).
    #[serde(default)]
    pub readers: Vec<String>,
    /// Document URLs: this prefix plus the relative path.
    pub url_prefix: Option<String>,
}

fn default_tenant() -> String {
    "default".into()
}

impl SourceConfig {
    /// Check a source list: names, kinds, paths, duplicates.
    pub fn validate_all(sources: &[SourceConfig]) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for s in sources {
            if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("knowledge source name `{}` must be letters, digits, `-` or `_`", s.name));
            }
            if !seen.insert((s.tenant.clone(), s.name.clone())) {
                return Err(format!("knowledge source `{}` appears twice for tenant `{}`", s.name, s.tenant));
            }
            match s.kind.as_str() {
                "filesystem" if s.path.is_none() => {
                    return Err(format!("knowledge source `{}`: a filesystem source needs `path`", s.name));
                }
                "filesystem" => {}
                "sql" if s.url.is_none() || s.query.as_deref().is_none_or(|q| q.trim().is_empty()) => {
                    return Err(format!("knowledge source `{}`: a sql source needs `url` and `query`", s.name));
                }
                "sql" => {}
                other => {
                    return Err(format!(
                        "knowledge source `{}`: kind `{other}` is not supported by this build (supported: filesystem, sql)",
                        s.name
                    ));
                }
            }
            for r in &s.readers {
                let ok = r == "everyone"
                    || ["role:", "group:", "user:"].iter().any(|p| r.strip_prefix(p).is_some_and(|v| !v.is_empty()));
                if !ok {
                    return Err(format!(
                        "knowledge source `{}`: reader `{r}` must be everyone, role:<r>, group:<g> or user:<subject>",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Runs sources into the index and remembers where each got to.
pub struct Syncer {
    index: Arc<Index>,
    sources: Vec<SourceConfig>,
    state_path: PathBuf,
    /// `tenant/source` → cursor.
    state: Mutex<BTreeMap<String, Cursor>>,
    /// One sync at a time.
    running: Mutex<()>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("sources", &self.sources.len()).finish_non_exhaustive()
    }
}

/// The outcome of one source's sync.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SourceOutcome {
    pub tenant: String,
    pub source: String,
    /// The report, when the sync succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<SyncReport>,
    /// Why it failed, when it did (the other sources still ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Syncer {
    /// A syncer for `sources`, keeping cursors in `state_path`.
    pub fn new(index: Arc<Index>, sources: Vec<SourceConfig>, state_path: PathBuf) -> Self {
        let state = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Cursor>>(&b).ok())
            .unwrap_or_default();
        Self { index, sources, state_path, state: Mutex::new(state), running: Mutex::new(()) }
    }

    /// The configured sources.
    pub fn sources(&self) -> &[SourceConfig] {
        &self.sources
    }

    /// The sources of `tenant`.
    pub fn sources_of(&self, tenant: &str) -> Vec<&SourceConfig> {
        self.sources.iter().filter(|s| s.tenant == tenant).collect()
    }

    /// Sync every source (of `tenant` if given; only `only` if given), from
    /// its cursor or from scratch with `full`. Blocking: run it off the
    /// async workers. `progress(source, done, total)`.
    pub fn sync(
        &self,
        tenant: Option<&str>,
        only: Option<&str>,
        full: bool,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Vec<SourceOutcome> {
        let _one = self.running.lock();
        let mut out = Vec::new();
        for s in &self.sources {
            if tenant.is_some_and(|t| t != s.tenant) || only.is_some_and(|o| o != s.name) {
                continue;
            }
            let key = format!("{}/{}", s.tenant, s.name);
            let cursor = if full { None } else { self.state.lock().get(&key).copied() };
            let each = |done: usize, total: usize| progress(&s.name, done, total);
            let result = if s.kind == "sql" {
                let source = crate::sql::SqlSource {
                    name: s.name.clone(),
                    url: s.url.clone().unwrap_or_default(),
                    query: s.query.clone().unwrap_or_default(),
                    readers: s.readers.clone(),
                };
                crate::sql::sync(&self.index, &s.tenant, &source, cursor)
            } else {
                let fs = FsSource {
                    name: s.name.clone(),
                    root: s.path.clone().unwrap_or_default(),
                    readers: s.readers.clone(),
                    url_prefix: s.url_prefix.clone(),
                };
                crate::fs::sync(&self.index, &s.tenant, &fs, cursor, &each)
            };
            match result {
                Ok((report, next)) => {
                    self.state.lock().insert(key, next);
                    if let Err(e) = self.save() {
                        tracing::warn!(error = %e, "knowledge sync state not saved; the next sync starts over");
                    }
                    out.push(SourceOutcome {
                        tenant: s.tenant.clone(),
                        source: s.name.clone(),
                        report: Some(report),
                        error: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(source = %s.name, tenant = %s.tenant, error = %e, "knowledge sync failed");
                    out.push(SourceOutcome {
                        tenant: s.tenant.clone(),
                        source: s.name.clone(),
                        report: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        out
    }

    fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        let bytes = serde_json::to_vec_pretty(&*self.state.lock()).map_err(std::io::Error::other)?;
        let tmp = self.state_path.with_extension("tmp");
        if let Some(dir) = self.state_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.state_path)
    }
}
