//! The registry's state and every change to it. All functions here block
//! (file I/O); the async API runs them on `spawn_blocking` threads while
//! holding the mutation lock (proved by a [`Held`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Mutex, OwnedMutexGuard, broadcast};

use super::name::{DocName, has_document_extension};
use super::store::{self, OnDisk};
use super::validate::{self, sha256_hex};
use super::{
    Change, Document, DocumentInfo, Problem, ProblemKind, RegistryError, RegistryEvent, RegistryOptions,
    SUBDIRECTORIES, Source, Validator, VersionInfo,
};

/// The author recorded for changes found on disk.
const DISK_AUTHOR: &str = "disk";
/// Longest accepted author, in bytes.
const MAX_AUTHOR_BYTES: usize = 256;

/// Proof that the mutation lock is held.
pub(crate) struct Held {
    _guard: OwnedMutexGuard<()>,
}

/// What reading one document from disk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Synced {
    /// The file equals the live version.
    Unchanged,
    /// A new version is live.
    Changed,
    /// The deletion is recorded.
    Removed,
    /// The file is refused; a problem is listed.
    Refused,
    /// The file of a live document is missing or empty, which may be an
    /// editor halfway through a save: look again later (only when the
    /// caller said the directory may not be settled).
    Unsettled,
    /// No file and no live version.
    Absent,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) options: RegistryOptions,
    state: RwLock<State>,
    pub(crate) validators: RwLock<HashMap<String, Vec<Validator>>>,
    pub(crate) events: broadcast::Sender<RegistryEvent>,
    lock: Arc<Mutex<()>>,
    /// Cluster mode: who decides that a version number is taken.
    claims: std::sync::OnceLock<super::cluster::Claims>,
}

#[derive(Default)]
struct State {
    docs: BTreeMap<String, Entry>,
    /// Each problem with the digest of what it is about (to tell a new
    /// rejection from the same one seen again).
    problems: BTreeMap<(String, ProblemKind), (Problem, Option<String>)>,
    /// Compiled live schemas, by schema document name.
    schemas: HashMap<String, Arc<jsonschema::Validator>>,
}

#[derive(Default)]
struct Entry {
    live: Option<Document>,
    versions: Vec<VersionInfo>,
}

impl Entry {
    fn latest(&self) -> u64 {
        self.versions.last().map_or(0, |v| v.version)
    }
}

/// Content that passed every check.
struct Checked {
    text: Arc<str>,
    value: Option<Arc<Value>>,
    sha256: String,
    /// The compiled schema, when the document is one.
    schema: Option<Arc<jsonschema::Validator>>,
}

pub(crate) fn check_author(author: &str) -> Result<String, RegistryError> {
    let author = author.trim();
    if author.is_empty() {
        return Err(RegistryError::InvalidAuthor("the author is empty".into()));
    }
    if author.len() > MAX_AUTHOR_BYTES {
        return Err(RegistryError::InvalidAuthor(format!("the author is longer than {MAX_AUTHOR_BYTES} bytes")));
    }
    if author.chars().any(char::is_control) {
        return Err(RegistryError::InvalidAuthor("the author contains control characters".into()));
    }
    Ok(author.to_owned())
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn in_prefix(name: &str, prefix: Option<&str>) -> bool {
    match prefix {
        None => true,
        Some(p) => name == p || name.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')),
    }
}

impl Inner {
    /// Create the directories, load the history, make each document's last
    /// good version live and reconcile with the files on disk.
    pub(crate) fn open(root: PathBuf, options: RegistryOptions) -> Result<Inner, RegistryError> {
        fs::create_dir_all(&root).map_err(|e| RegistryError::io(format!("cannot create `{}`", root.display()), e))?;
        let root = fs::canonicalize(&root)
            .map_err(|e| RegistryError::io(format!("cannot resolve `{}`", root.display()), e))?;
        for sub in SUBDIRECTORIES {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| RegistryError::io(format!("cannot create `{}`", dir.display()), e))?;
        }
        let loaded = store::load(&root)
            .map_err(|e| RegistryError::io(format!("cannot read the history in `{}`", root.display()), e))?;
        for warning in &loaded.warnings {
            tracing::warn!(root = %root.display(), %warning, "registry history damaged");
        }
        let (events, _) = broadcast::channel(options.event_capacity.max(1));
        let inner = Inner {
            root,
            options,
            state: RwLock::new(State::default()),
            validators: RwLock::new(HashMap::new()),
            events,
            lock: Arc::new(Mutex::new(())),
            claims: std::sync::OnceLock::new(),
        };
        let held = Held {
            _guard: Arc::clone(&inner.lock)
                .try_lock_owned()
                .map_err(|_| RegistryError::Internal("the new registry's lock is taken".into()))?,
        };
        for (name, versions) in loaded.docs {
            let live = inner.restore(&name, &versions);
            let mut state = inner.state.write();
            if let Some((doc, schema)) = live {
                if let Some(schema) = schema {
                    state.schemas.insert(name.to_string(), schema);
                }
                state.docs.insert(name.to_string(), Entry { live: Some(doc), versions });
            } else {
                state.docs.insert(name.to_string(), Entry { live: None, versions });
            }
        }
        inner.sync_all(&held, None, true);
        let live: Vec<String> =
            inner.state.read().docs.iter().filter(|(_, e)| e.live.is_some()).map(|(n, _)| n.clone()).collect();
        for name in live {
            if let Ok(name) = DocName::parse(&name) {
                let _ = inner.recheck_live(&name);
            }
        }
        Ok(inner)
    }

    /// The newest readable version of a document from its history (walking
    /// back over damaged ones), unless its latest version is a deletion.
    fn restore(
        &self,
        name: &DocName,
        versions: &[VersionInfo],
    ) -> Option<(Document, Option<Arc<jsonschema::Validator>>)> {
        for info in versions.iter().rev() {
            if info.deleted {
                return None;
            }
            let restored = store::read_version(&self.root, name, info).and_then(|text| {
                let value = validate::parse(name, &text)?;
                let schema = match (&value, name.is_schema()) {
                    (Some(v), true) => Some(Arc::new(validate::compile_schema(name, v)?)),
                    _ => None,
                };
                Ok((document(name, info, text.into(), value.map(Arc::new)), schema))
            });
            match restored {
                Ok(found) => return Some(found),
                Err(error) => {
                    tracing::warn!(name = %name, version = info.version, %error, "registry version unreadable");
                }
            }
        }
        None
    }

    pub(crate) async fn lock(&self) -> Held {
        Held { _guard: Arc::clone(&self.lock).lock_owned().await }
    }

    /// The lock, if nobody holds it.
    pub(crate) fn try_lock(&self) -> Option<Held> {
        Arc::clone(&self.lock).try_lock_owned().ok().map(|g| Held { _guard: g })
    }

    /// Cluster mode: claim every version here first ([`super::cluster`]).
    pub(crate) fn set_claims(&self, claims: super::cluster::Claims) -> Result<(), RegistryError> {
        self.claims
            .set(claims)
            .map_err(|_| RegistryError::Internal("the registry already takes part in a cluster".into()))
    }

    /// Whether the registry takes part in a cluster.
    pub(crate) fn clustered(&self) -> bool {
        self.claims.get().is_some()
    }

    /// The latest version of `name` in the history (0: none).
    pub(crate) fn latest_of(&self, name: &str) -> u64 {
        self.state.read().docs.get(name).map_or(0, Entry::latest)
    }

    /// Every document's latest version, with its content (`None`: a deletion).
    pub(crate) fn heads(&self) -> Vec<(String, VersionInfo, Option<String>)> {
        let state = self.state.read();
        state
            .docs
            .iter()
            .filter_map(|(name, e)| {
                let last = e.versions.last()?;
                if last.deleted {
                    return Some((name.clone(), last.clone(), None));
                }
                let live = e.live.as_ref().filter(|d| d.version == last.version)?;
                Some((name.clone(), last.clone(), Some(live.text.to_string())))
            })
            .collect()
    }

    /// Claim version `info` of `name` in the cluster (a no-op on one node).
    fn claim(&self, name: &DocName, info: &VersionInfo, content: Option<&str>) -> Result<(), RegistryError> {
        let Some(claims) = self.claims.get() else { return Ok(()) };
        if claims.claim(name.as_str(), info, content)? {
            Ok(())
        } else {
            Err(RegistryError::Conflict {
                name: name.to_string(),
                expected: info.version.saturating_sub(1),
                actual: info.version,
            })
        }
    }

    /// Cluster mode: take a version another node made, with its number,
    /// author, time and source, as a local change would be taken.
    pub(crate) fn adopt(&self, held: &Held, c: &super::cluster::Claimed) -> Result<(), RegistryError> {
        let name = DocName::parse(&c.name)?;
        let latest = self.latest(&name);
        if c.info.version <= latest {
            return Ok(());
        }
        if c.info.version != latest + 1 {
            return Err(RegistryError::Internal(format!(
                "version {} of `{name}` follows {latest}: versions are adopted in order",
                c.info.version
            )));
        }
        match &c.content {
            Some(text) => {
                let checked = self.check(&name, text.clone(), self.hard_limit())?;
                self.commit(held, &name, checked, &c.info.author, c.info.source, Some(&c.info)).map(|_| ())
            }
            None if self.live(&name).is_none() => Ok(()),
            None => self.commit_delete(held, &name, &c.info.author, c.info.source, true, Some(&c.info)).map(|_| ()),
        }
    }

    fn emit(&self, event: RegistryEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    pub(crate) fn live(&self, name: &DocName) -> Option<Document> {
        self.state.read().docs.get(name.as_str()).and_then(|e| e.live.clone())
    }

    fn latest(&self, name: &DocName) -> u64 {
        self.state.read().docs.get(name.as_str()).map_or(0, Entry::latest)
    }

    pub(crate) fn history(&self, name: &DocName) -> Option<Vec<VersionInfo>> {
        self.state.read().docs.get(name.as_str()).map(|e| e.versions.clone())
    }

    pub(crate) fn list(&self) -> Vec<DocumentInfo> {
        self.state
            .read()
            .docs
            .values()
            .filter_map(|e| e.live.as_ref())
            .map(|d| DocumentInfo {
                name: d.name.clone(),
                version: d.version,
                format: d.format,
                size: d.text.len() as u64,
                sha256: d.sha256.clone(),
                updated_at: d.updated_at.clone(),
                author: d.author.clone(),
            })
            .collect()
    }

    pub(crate) fn problems(&self) -> Vec<Problem> {
        self.state.read().problems.values().map(|(p, _)| p.clone()).collect()
    }

    fn problems_of(&self, name: &str) -> Vec<Problem> {
        self.state.read().problems.values().filter(|(p, _)| p.name == name).map(|(p, _)| p.clone()).collect()
    }

    fn has_problem(&self, name: &str, kind: ProblemKind) -> bool {
        self.state.read().problems.contains_key(&(name.to_owned(), kind))
    }

    /// List a problem; returns whether it is new (not the same errors about
    /// the same content as before).
    fn set_problem(&self, name: &str, kind: ProblemKind, errors: Vec<String>, digest: Option<String>) -> bool {
        let live_version = DocName::parse(name).ok().and_then(|n| self.live(&n)).map(|d| d.version);
        let mut state = self.state.write();
        let key = (name.to_owned(), kind);
        if let Some((old, old_digest)) = state.problems.get_mut(&key)
            && old.errors == errors
            && *old_digest == digest
        {
            old.live_version = live_version;
            return false;
        }
        let problem = Problem { name: name.to_owned(), kind, errors, detected_at: now(), live_version };
        state.problems.insert(key, (problem, digest));
        true
    }

    fn clear_problem(&self, name: &str, kind: ProblemKind) {
        self.state.write().problems.remove(&(name.to_owned(), kind));
    }

    /// Record that the file at `name` is refused, and tell subscribers if
    /// this is a new refusal.
    fn refuse(&self, name: &str, error: &RegistryError, digest: Option<String>) {
        let errors = error.messages();
        if self.set_problem(name, ProblemKind::Rejected, errors.clone(), digest) {
            tracing::warn!(name, %error, "registry refused a file on disk");
            self.emit(RegistryEvent::Rejected { name: name.to_owned(), errors });
        }
    }

    /// The schema governing a document: its name and compiled validator.
    fn schema_for(&self, name: &DocName) -> Option<(String, Arc<jsonschema::Validator>)> {
        let state = self.state.read();
        name.schema_candidates().into_iter().find_map(|c| state.schemas.get(&c).map(|s| (c, Arc::clone(s))))
    }

    /// The schema and validators on a parsed document.
    fn rules(&self, name: &DocName, value: Option<&Value>, text: &str) -> Result<(), RegistryError> {
        if let Some(value) = value
            && let Some((schema, validator)) = self.schema_for(name)
        {
            let errors = validate::schema_errors(&validator, value);
            if !errors.is_empty() {
                return Err(RegistryError::Schema { name: name.to_string(), schema, errors });
            }
        }
        let validators = self.validators.read().get(name.as_str()).cloned();
        if let Some(validators) = validators {
            let errors = match value {
                Some(v) => validate::run_validators(&validators, v),
                None => validate::run_validators(&validators, &Value::String(text.to_owned())),
            };
            if !errors.is_empty() {
                return Err(RegistryError::Rejected { name: name.to_string(), errors });
            }
        }
        Ok(())
    }

    /// Every check on new content, in order: size, text, syntax, schema
    /// (or, for a schema, that it compiles), validators.
    fn check(&self, name: &DocName, text: String, limit: usize) -> Result<Checked, RegistryError> {
        if text.len() > limit {
            return Err(RegistryError::TooLarge {
                name: name.to_string(),
                size: text.len() as u64,
                limit: limit as u64,
            });
        }
        validate::check_text(name, &text)?;
        let value = validate::parse(name, &text)?;
        let schema = match &value {
            Some(v) if name.is_schema() => Some(Arc::new(validate::compile_schema(name, v)?)),
            _ => None,
        };
        self.rules(name, value.as_ref(), &text)?;
        let sha256 = sha256_hex(text.as_bytes());
        Ok(Checked { text: text.into(), value: value.map(Arc::new), sha256, schema })
    }

    fn hard_limit(&self) -> usize {
        self.options.max_size.max(self.options.max_generated_size)
    }

    /// The size limit for disk content: the generated limit if the latest
    /// version was written by the system, the edit limit otherwise.
    fn disk_limit(&self, name: &DocName) -> usize {
        let generated = self
            .state
            .read()
            .docs
            .get(name.as_str())
            .and_then(|e| e.versions.last())
            .is_some_and(|v| v.source == Source::System);
        if generated { self.options.max_generated_size } else { self.options.max_size }
    }

    fn diff_of(&self, name: &DocName, from: u64, old: &str, to: u64, new: &str) -> Option<String> {
        let lines = |s: &str| s.bytes().filter(|b| *b == b'\n').count() + 1;
        let small = old.len() <= self.options.max_size
            && new.len() <= self.options.max_size
            && lines(old) + lines(new) <= validate::MAX_INLINE_DIFF_LINES;
        small.then(|| validate::unified_diff(name.as_str(), from, old, to, new))
    }

    /// Record checked content as a new version and make it live: stage the
    /// file (unless it came from disk), record the history durably, rename
    /// the file into place, swap the state, tell subscribers.
    fn commit(
        &self,
        held: &Held,
        name: &DocName,
        checked: Checked,
        author: &str,
        source: Source,
        adopted: Option<&VersionInfo>,
    ) -> Result<Change, RegistryError> {
        let (previous, version) = {
            let state = self.state.read();
            let entry = state.docs.get(name.as_str());
            (entry.and_then(|e| e.live.clone()), entry.map_or(0, Entry::latest) + 1)
        };
        let info = VersionInfo {
            version,
            author: author.to_owned(),
            time: adopted.map_or_else(now, |a| a.time.clone()),
            sha256: checked.sha256.clone(),
            size: checked.text.len() as u64,
            source,
            deleted: false,
        };
        if adopted.is_none() {
            self.claim(name, &info, Some(&checked.text))?;
        }
        let path = self.root.join(name.as_str());
        let staged = if source == Source::Disk {
            None
        } else {
            store::prepare_parent(&self.root, name)?;
            let staged = store::stage(&path, checked.text.as_bytes())
                .map_err(|e| RegistryError::io(format!("cannot write `{name}`"), e))?;
            Some(staged)
        };
        store::record(&self.root, name, &info, Some(checked.text.as_bytes()))
            .map_err(|e| RegistryError::io(format!("cannot record version {version} of `{name}`"), e))?;
        let published = staged.map_or(Ok(()), store::Staged::publish);
        let diff = self.diff_of(
            name,
            previous.as_ref().map_or(0, |d| d.version),
            previous.as_ref().map_or("", |d| &d.text),
            version,
            &checked.text,
        );
        {
            let mut state = self.state.write();
            let entry = state.docs.entry(name.to_string()).or_default();
            entry.versions.push(info.clone());
            if published.is_ok() {
                entry.live = Some(document(name, &info, checked.text, checked.value));
                if let Some(schema) = checked.schema {
                    state.schemas.insert(name.to_string(), schema);
                }
                state.problems.remove(&(name.to_string(), ProblemKind::Rejected));
                state.problems.remove(&(name.to_string(), ProblemKind::Stale));
            }
        }
        if let Err(e) = published {
            return Err(RegistryError::io(
                format!("version {version} of `{name}` is recorded but the file could not be replaced"),
                e,
            ));
        }
        tracing::info!(name = %name, version, %source, author, "registry document changed");
        self.emit(RegistryEvent::Changed {
            name: name.to_string(),
            version,
            previous: previous.as_ref().map(|d| d.version),
            source,
            author: author.to_owned(),
            sha256: info.sha256.clone(),
        });
        if name.is_schema() {
            self.recheck_governed(held, name);
        }
        Ok(Change {
            name: name.to_string(),
            version: info,
            previous: previous.map(|d| d.version),
            recorded: true,
            diff,
        })
    }

    /// Record the deletion of a live document and remove its file (unless it
    /// is already gone from disk).
    fn commit_delete(
        &self,
        held: &Held,
        name: &DocName,
        author: &str,
        source: Source,
        remove_file: bool,
        adopted: Option<&VersionInfo>,
    ) -> Result<Change, RegistryError> {
        let (previous, version) = {
            let state = self.state.read();
            let entry = state.docs.get(name.as_str());
            (entry.and_then(|e| e.live.clone()), entry.map_or(0, Entry::latest) + 1)
        };
        let Some(previous) = previous else { return Err(RegistryError::NotFound(name.to_string())) };
        let info = VersionInfo {
            version,
            author: author.to_owned(),
            time: adopted.map_or_else(now, |a| a.time.clone()),
            sha256: sha256_hex(b""),
            size: 0,
            source,
            deleted: true,
        };
        if adopted.is_none() {
            self.claim(name, &info, None)?;
        }
        store::record(&self.root, name, &info, None)
            .map_err(|e| RegistryError::io(format!("cannot record the deletion of `{name}`"), e))?;
        let removed = if remove_file {
            match fs::remove_file(self.root.join(name.as_str())) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            Ok(())
        };
        {
            let mut state = self.state.write();
            let entry = state.docs.entry(name.to_string()).or_default();
            entry.versions.push(info.clone());
            if removed.is_ok() {
                entry.live = None;
                state.schemas.remove(name.as_str());
                state.problems.remove(&(name.to_string(), ProblemKind::Rejected));
                state.problems.remove(&(name.to_string(), ProblemKind::Stale));
            }
        }
        if let Err(e) = removed {
            return Err(RegistryError::io(format!("the deletion of `{name}` is recorded but the file remains"), e));
        }
        tracing::info!(name = %name, version, %source, author, "registry document removed");
        self.emit(RegistryEvent::Removed { name: name.to_string(), version, source });
        if name.is_schema() {
            self.recheck_governed(held, name);
        }
        let diff = self.diff_of(name, previous.version, &previous.text, version, "");
        Ok(Change { name: name.to_string(), version: info, previous: Some(previous.version), recorded: true, diff })
    }

    /// Check and record new content from the API (or a rollback).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &self,
        held: &Held,
        name: &DocName,
        text: String,
        author: &str,
        source: Source,
        expected: Option<u64>,
        limit: usize,
    ) -> Result<Change, RegistryError> {
        if let Some(expected) = expected {
            let actual = self.latest(name);
            if expected != actual {
                return Err(RegistryError::Conflict { name: name.to_string(), expected, actual });
            }
        }
        let checked = self.check(name, text, limit)?;
        if let Some(live) = self.live(name).filter(|d| d.sha256 == checked.sha256) {
            self.restore_file(name, &live)?;
            let info = self
                .history(name)
                .and_then(|h| h.into_iter().rev().find(|v| v.version == live.version))
                .ok_or_else(|| RegistryError::Internal(format!("live version of `{name}` missing from its history")))?;
            return Ok(Change {
                name: name.to_string(),
                version: info,
                previous: Some(live.version),
                recorded: false,
                diff: None,
            });
        }
        self.commit(held, name, checked, author, source, None)
    }

    /// Put the live content back on disk if the file differs (it was refused).
    fn restore_file(&self, name: &DocName, live: &Document) -> Result<(), RegistryError> {
        let path = self.root.join(name.as_str());
        let same = matches!(store::read_disk(&path, self.hard_limit() as u64),
            Ok(OnDisk::File(bytes)) if sha256_hex(&bytes) == live.sha256);
        if !same {
            store::prepare_parent(&self.root, name)?;
            store::write_atomic(&path, live.text.as_bytes())
                .map_err(|e| RegistryError::io(format!("cannot write `{name}`"), e))?;
        }
        self.clear_problem(name.as_str(), ProblemKind::Rejected);
        Ok(())
    }

    pub(crate) fn rollback(
        &self,
        held: &Held,
        name: &DocName,
        version: u64,
        author: &str,
    ) -> Result<Change, RegistryError> {
        let info = self
            .history(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| RegistryError::UnknownVersion { name: name.to_string(), version })?;
        if info.deleted {
            return Err(RegistryError::DeletedVersion { name: name.to_string(), version });
        }
        let text = store::read_version(&self.root, name, &info)?;
        self.put(held, name, text, author, Source::Rollback, None, self.hard_limit())
    }

    pub(crate) fn delete(
        &self,
        held: &Held,
        name: &DocName,
        author: &str,
        source: Source,
    ) -> Result<Change, RegistryError> {
        self.commit_delete(held, name, author, source, true, None)
    }

    /// Bring one document in line with its file on disk. Never fails: a
    /// refused file becomes a problem. With `settled` false (the watcher's
    /// first look), a live document's missing or empty file is reported as
    /// [`Synced::Unsettled`] instead of being taken as a deletion or as new
    /// content.
    pub(crate) fn sync_doc(&self, held: &Held, name: &DocName, settled: bool) -> Synced {
        let path = self.root.join(name.as_str());
        let live = self.live(name);
        let refused = |error: RegistryError, digest: Option<String>| {
            self.refuse(name.as_str(), &error, digest);
            Synced::Refused
        };
        if let Some(link) = store::symlinked_ancestor(&self.root, name) {
            let reason = format!("`{link}` is a symbolic link, which the registry does not follow");
            return refused(RegistryError::InvalidName { name: name.to_string(), reason }, None);
        }
        match store::read_disk(&path, self.hard_limit() as u64) {
            Err(e) => refused(RegistryError::io(format!("cannot read `{name}`"), e), None),
            Ok(OnDisk::Missing | OnDisk::Directory) => {
                self.clear_problem(name.as_str(), ProblemKind::Rejected);
                match live {
                    None => Synced::Absent,
                    Some(_) if !settled => Synced::Unsettled,
                    Some(_) => match self.commit_delete(held, name, DISK_AUTHOR, Source::Disk, false, None) {
                        Ok(_) => Synced::Removed,
                        Err(error) => {
                            tracing::error!(name = %name, %error, "registry cannot record a deletion");
                            Synced::Unchanged
                        }
                    },
                }
            }
            Ok(OnDisk::Symlink) => {
                let reason = "symbolic links are not followed".to_owned();
                refused(RegistryError::InvalidName { name: name.to_string(), reason }, None)
            }
            Ok(OnDisk::Special) => {
                let reason = "not a regular file".to_owned();
                refused(RegistryError::InvalidName { name: name.to_string(), reason }, None)
            }
            Ok(OnDisk::TooLarge(size)) => {
                let limit = self.disk_limit(name) as u64;
                refused(RegistryError::TooLarge { name: name.to_string(), size, limit }, Some(format!("size:{size}")))
            }
            Ok(OnDisk::File(bytes)) => {
                let digest = sha256_hex(&bytes);
                if live.as_ref().is_some_and(|d| d.sha256 == digest) {
                    self.clear_problem(name.as_str(), ProblemKind::Rejected);
                    return Synced::Unchanged;
                }
                if bytes.is_empty() && !settled && live.as_ref().is_some_and(|d| !d.text.is_empty()) {
                    // Truncated for a rewrite that has not landed yet.
                    return Synced::Unsettled;
                }
                let limit = self.disk_limit(name);
                let checked = validate::decode(name, bytes).and_then(|text| self.check(name, text, limit));
                match checked.and_then(|c| self.commit(held, name, c, DISK_AUTHOR, Source::Disk, None)) {
                    Ok(_) => Synced::Changed,
                    Err(error) => refused(error, Some(digest)),
                }
            }
        }
    }

    /// Names under `prefix` that the registry knows: live documents and
    /// files with a listed refusal.
    fn known(&self, prefix: Option<&str>) -> Vec<String> {
        let state = self.state.read();
        let mut names: Vec<String> = state
            .docs
            .iter()
            .filter(|(n, e)| e.live.is_some() && in_prefix(n, prefix))
            .map(|(n, _)| n.clone())
            .collect();
        names.extend(
            state
                .problems
                .keys()
                .filter(|(n, k)| *k == ProblemKind::Rejected && in_prefix(n, prefix))
                .map(|(n, _)| n.clone()),
        );
        names.sort();
        names.dedup();
        names
    }

    /// Reconcile every document under `prefix` (everything if `None`) with
    /// the disk: schemas first, then the other files, then what disappeared.
    /// Returns the [`Synced::Unsettled`] documents (only when `settled` is
    /// false).
    pub(crate) fn sync_all(&self, held: &Held, prefix: Option<&str>, settled: bool) -> Vec<String> {
        let scan = store::scan(&self.root, prefix);
        let (schemas, others): (Vec<&DocName>, Vec<&DocName>) = scan.docs.iter().partition(|d| d.is_schema());
        let mut unsettled = Vec::new();
        for doc in schemas.into_iter().chain(others) {
            if self.sync_doc(held, doc, settled) == Synced::Unsettled {
                unsettled.push(doc.to_string());
            }
        }
        let mut seen: HashSet<&str> = scan.docs.iter().map(DocName::as_str).collect();
        for (path, error) in &scan.refused {
            self.refuse(path, error, None);
            seen.insert(path);
        }
        for name in self.known(prefix).into_iter().filter(|n| !seen.contains(n.as_str())) {
            self.resync_known(held, name, settled, &mut unsettled);
        }
        unsettled
    }

    /// Look again at a document the registry knows (live or with a
    /// problem); an [`Synced::Unsettled`] one is added to `later`.
    fn resync_known(&self, held: &Held, name: String, settled: bool, later: &mut Vec<String>) {
        match DocName::parse(&name) {
            Ok(doc) => {
                if self.sync_doc(held, &doc, settled) == Synced::Unsettled {
                    later.push(name);
                }
            }
            Err(_) => self.clear_problem(&name, ProblemKind::Rejected),
        }
    }

    /// Handle a changed path reported by the watcher (a file or a
    /// directory). Returns the [`Synced::Unsettled`] documents, to be
    /// looked at again later with `settled` true.
    pub(crate) fn sync_path(&self, held: &Held, rel: &str, settled: bool) -> Vec<String> {
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => self.sync_all(held, Some(rel), settled),
            Ok(_) => {
                match DocName::parse(rel) {
                    Ok(doc) => {
                        if self.sync_doc(held, &doc, settled) == Synced::Unsettled {
                            return vec![doc.to_string()];
                        }
                    }
                    Err(error) => {
                        let file = rel.rsplit('/').next().unwrap_or(rel);
                        if has_document_extension(file) {
                            self.refuse(rel, &error, None);
                        }
                    }
                }
                Vec::new()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut later = Vec::new();
                for name in self.known(Some(rel)) {
                    self.resync_known(held, name, settled, &mut later);
                }
                later
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "registry cannot inspect a changed path");
                Vec::new()
            }
        }
    }

    /// Check the live version against the current schema and validators,
    /// listing or clearing a [`ProblemKind::Stale`] problem.
    fn recheck_live(&self, name: &DocName) -> Result<(), RegistryError> {
        let Some(doc) = self.live(name) else {
            self.clear_problem(name.as_str(), ProblemKind::Stale);
            return Ok(());
        };
        match self.rules(name, doc.value.as_deref(), &doc.text) {
            Ok(()) => {
                self.clear_problem(name.as_str(), ProblemKind::Stale);
                Ok(())
            }
            Err(error) => {
                let errors = error.messages();
                if self.set_problem(name.as_str(), ProblemKind::Stale, errors, Some(doc.sha256.clone())) {
                    tracing::warn!(name = %name, version = doc.version, %error, "registry live version is stale");
                }
                Err(error)
            }
        }
    }

    /// After a schema changed: files it refused are read again, live
    /// documents it may govern are checked again.
    fn recheck_governed(&self, held: &Held, schema: &DocName) {
        let Some(stem) = schema.governed_stem() else { return };
        let names: Vec<DocName> = self
            .known(None)
            .iter()
            .filter_map(|n| DocName::parse(n).ok())
            .filter(|n| n.format().is_structured() && !n.in_schemas_dir() && n.stem() == stem)
            .collect();
        for name in names {
            if self.has_problem(name.as_str(), ProblemKind::Rejected) {
                self.sync_doc(held, &name, true);
            }
            let _ = self.recheck_live(&name);
        }
    }

    pub(crate) fn revalidate(&self, held: &Held, name: &DocName) -> Result<Vec<Problem>, RegistryError> {
        let synced = self.sync_doc(held, name, true);
        let _ = self.recheck_live(name);
        let problems = self.problems_of(name.as_str());
        if synced == Synced::Absent && problems.is_empty() && self.history(name).is_none() {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        Ok(problems)
    }

    /// The content of a version (empty for version 0 and deletions).
    fn text_at(&self, name: &DocName, version: u64) -> Result<Arc<str>, RegistryError> {
        if version == 0 {
            return Ok(Arc::from(""));
        }
        let info = self
            .history(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| RegistryError::UnknownVersion { name: name.to_string(), version })?;
        if info.deleted {
            return Ok(Arc::from(""));
        }
        if let Some(live) = self.live(name).filter(|d| d.version == version) {
            return Ok(live.text);
        }
        store::read_version(&self.root, name, &info).map(Arc::from)
    }

    pub(crate) fn version_text(&self, name: &DocName, version: u64) -> Result<Arc<str>, RegistryError> {
        let deleted = self.history(name).is_some_and(|h| h.iter().any(|v| v.version == version && v.deleted));
        if deleted {
            return Err(RegistryError::DeletedVersion { name: name.to_string(), version });
        }
        if version == 0 {
            return Err(RegistryError::UnknownVersion { name: name.to_string(), version });
        }
        self.text_at(name, version)
    }

    pub(crate) fn diff(&self, name: &DocName, from: u64, to: u64) -> Result<String, RegistryError> {
        let old = self.text_at(name, from)?;
        let new = self.text_at(name, to)?;
        Ok(validate::unified_diff(name.as_str(), from, &old, to, &new))
    }
}

fn document(name: &DocName, info: &VersionInfo, text: Arc<str>, value: Option<Arc<Value>>) -> Document {
    Document {
        name: name.to_string(),
        version: info.version,
        format: name.format(),
        text,
        value,
        sha256: info.sha256.clone(),
        updated_at: info.time.clone(),
        author: info.author.clone(),
        source: info.source,
    }
}
