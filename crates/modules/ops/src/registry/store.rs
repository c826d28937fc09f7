//! Everything the registry does with the file system: the history directory,
//! atomic writes, reading and scanning documents. All functions block; they
//! run on `spawn_blocking` threads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::name::{DocName, has_document_extension};
use super::validate::sha256_hex;
use super::{RegistryError, Source, VersionInfo};

/// The hidden directory inside the root that holds every document's history.
pub(crate) const HISTORY_DIR: &str = ".history";
/// The per-document log of versions, one JSON object per line.
const LOG_FILE: &str = "log.jsonl";
/// Prefix of the temporary files of atomic writes (hidden: the watcher and the
/// scan ignore them; leftovers of a crash are removed by the next scan).
const TMP_PREFIX: &str = ".plexus-tmp-";
/// Directories deeper than this below the root are not scanned.
const MAX_DEPTH: usize = 32;

/// One line of `log.jsonl`: the storage format of a [`VersionInfo`].
#[derive(Serialize, Deserialize)]
struct LogLine {
    version: u64,
    author: String,
    time: String,
    sha256: String,
    size: u64,
    source: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl LogLine {
    fn from_info(info: &VersionInfo) -> Self {
        LogLine {
            version: info.version,
            author: info.author.clone(),
            time: info.time.clone(),
            sha256: info.sha256.clone(),
            size: info.size,
            source: info.source.as_str().to_owned(),
            deleted: info.deleted,
        }
    }

    fn into_info(self) -> Option<VersionInfo> {
        Some(VersionInfo {
            version: self.version,
            author: self.author,
            time: self.time,
            sha256: self.sha256,
            size: self.size,
            source: Source::parse(&self.source)?,
            deleted: self.deleted,
        })
    }
}

/// `<root>/.history/<name>/`.
fn history_dir(root: &Path, name: &DocName) -> PathBuf {
    root.join(HISTORY_DIR).join(name.as_str())
}

/// `<root>/.history/<name>/<version>.<ext>`.
fn version_path(root: &Path, name: &DocName, version: u64) -> PathBuf {
    history_dir(root, name).join(format!("{version}.{}", name.ext()))
}

/// Record a version durably: its content (temporary file, fsync, rename)
/// then its log line (append, fsync), then the directory entry.
pub(crate) fn record(root: &Path, name: &DocName, info: &VersionInfo, content: Option<&[u8]>) -> io::Result<()> {
    let dir = history_dir(root, name);
    fs::create_dir_all(&dir)?;
    if let Some(bytes) = content {
        write_atomic(&version_path(root, name, info.version), bytes)?;
    }
    let mut line = serde_json::to_string(&LogLine::from_info(info)).map_err(io::Error::other)?;
    line.push('\n');
    let mut log = OpenOptions::new().create(true).append(true).open(dir.join(LOG_FILE))?;
    log.write_all(line.as_bytes())?;
    log.sync_data()?;
    sync_dir(&dir)
}

/// The content of a recorded version, checked against its digest.
pub(crate) fn read_version(root: &Path, name: &DocName, info: &VersionInfo) -> Result<String, RegistryError> {
    let corrupt =
        |reason: String| RegistryError::CorruptHistory { name: name.to_string(), version: info.version, reason };
    let path = version_path(root, name, info.version);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(corrupt("the stored content is missing".into())),
        Err(e) => return Err(RegistryError::io(format!("cannot read `{}`", path.display()), e)),
    };
    if sha256_hex(&bytes) != info.sha256 {
        return Err(corrupt("the stored content does not match its recorded SHA-256".into()));
    }
    String::from_utf8(bytes).map_err(|_| corrupt("the stored content is not UTF-8".into()))
}

/// What loading the history found.
#[derive(Default)]
pub(crate) struct Loaded {
    /// Every document with a log, and its versions in order.
    pub(crate) docs: Vec<(DocName, Vec<VersionInfo>)>,
    /// Damage found and worked around (logged, not fatal).
    pub(crate) warnings: Vec<String>,
}

/// Read every `log.jsonl` under `<root>/.history`. A torn last line (a crash
/// during an append) is cut off so later appends start on a fresh line.
pub(crate) fn load(root: &Path) -> io::Result<Loaded> {
    let base = root.join(HISTORY_DIR);
    fs::create_dir_all(&base)?;
    let mut out = Loaded::default();
    let mut stack = vec![(base.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                out.warnings.push(format!("cannot read `{}`: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if kind.is_file() && entry.file_name().to_str().is_some_and(|n| n.starts_with(TMP_PREFIX)) {
                // Left by a crash during an atomic write.
                let _ = fs::remove_file(&path);
            } else if kind.is_file() && entry.file_name() == LOG_FILE {
                let rel = dir.strip_prefix(&base).ok().and_then(relative_name);
                let Some(name) = rel.and_then(|r| DocName::parse(&r).ok()) else {
                    out.warnings.push(format!("ignoring `{}`: not a document's history", path.display()));
                    continue;
                };
                match read_log(&path) {
                    Ok((versions, problem)) => {
                        if let Some(p) = problem {
                            out.warnings.push(format!("history of `{name}`: {p}"));
                        }
                        if !versions.is_empty() {
                            out.docs.push((name, versions));
                        }
                    }
                    Err(e) => out.warnings.push(format!("cannot read `{}`: {e}", path.display())),
                }
            }
        }
    }
    out.docs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(out)
}

/// The versions of one log; stops at the first line that does not parse or
/// does not increase the version, and rewrites the log without the rest.
fn read_log(path: &Path) -> io::Result<(Vec<VersionInfo>, Option<String>)> {
    let text = fs::read_to_string(path)?;
    let mut versions: Vec<VersionInfo> = Vec::new();
    let mut good_len = 0usize;
    let mut problem = None;
    for line in text.split_inclusive('\n') {
        let parsed = line
            .strip_suffix('\n')
            .and_then(|l| serde_json::from_str::<LogLine>(l).ok())
            .and_then(LogLine::into_info)
            .filter(|info| versions.last().is_none_or(|last| info.version > last.version));
        match parsed {
            Some(info) => {
                versions.push(info);
                good_len += line.len();
            }
            None => {
                problem =
                    Some(format!("log damaged after version {}; the rest is dropped", good_len_version(&versions)));
                break;
            }
        }
    }
    if good_len < text.len() {
        write_atomic(path, &text.as_bytes()[..good_len])?;
    }
    Ok((versions, problem))
}

fn good_len_version(versions: &[VersionInfo]) -> u64 {
    versions.last().map_or(0, |v| v.version)
}

/// A relative path as a `/`-separated name, if every component is UTF-8.
pub(crate) fn relative_name(rel: &Path) -> Option<String> {
    let mut out = String::new();
    for c in rel.components() {
        let std::path::Component::Normal(part) = c else { return None };
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(part.to_str()?);
    }
    (!out.is_empty()).then_some(out)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file written and synced next to its target, renamed over it
/// by [`Staged::publish`]; removed if dropped unpublished.
pub(crate) struct Staged {
    tmp: Option<PathBuf>,
    target: PathBuf,
}

/// Write `bytes` to a temporary file beside `target` (same directory, so the
/// rename is atomic), with the target's permissions if it exists.
pub(crate) fn stage(target: &Path, bytes: &[u8]) -> io::Result<Staged> {
    let dir = target.parent().ok_or_else(|| io::Error::other("the target has no parent directory"))?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
    let staged = Staged { tmp: Some(tmp.clone()), target: target.to_owned() };
    let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    if let Ok(meta) = fs::symlink_metadata(target)
        && meta.is_file()
    {
        file.set_permissions(meta.permissions())?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(staged)
}

impl Staged {
    /// Rename the temporary file over the target and sync the directory.
    pub(crate) fn publish(mut self) -> io::Result<()> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        if let Err(e) = fs::rename(&tmp, &self.target) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        match self.target.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Replace `target` atomically with `bytes`.
pub(crate) fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    stage(target, bytes)?.publish()
}

/// Flush a directory's entries (new names, renames) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directories on the way down to `dir` below `root`, outermost first:
/// each as a path and as its name relative to the root (`config`,
/// `config/teams`).
fn ancestors<'a>(root: &'a Path, dir: &'a str) -> impl Iterator<Item = (std::path::PathBuf, String)> + 'a {
    dir.split('/').scan(String::new(), move |so_far, part| {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        Some((root.join(so_far.as_str()), so_far.clone()))
    })
}

/// Create the directories of a document's path below the root, refusing to
/// go through symbolic links or files.
pub(crate) fn prepare_parent(root: &Path, name: &DocName) -> Result<(), RegistryError> {
    let Some(dir) = name.dir() else { return Ok(()) };
    for (path, so_far) in ancestors(root, dir) {
        let refuse = |reason: String| RegistryError::InvalidName { name: name.to_string(), reason };
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refuse(format!("`{so_far}` is a symbolic link, which the registry does not follow")));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(refuse(format!("`{so_far}` exists and is not a directory"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(RegistryError::io(format!("cannot create `{}`", path.display()), e)),
            },
            Err(e) => return Err(RegistryError::io(format!("cannot inspect `{}`", path.display()), e)),
        }
    }
    Ok(())
}

/// The first directory on the way to `name` below the root that is a
/// symbolic link, if any (the registry does not follow them).
pub(crate) fn symlinked_ancestor(root: &Path, name: &DocName) -> Option<String> {
    let dir = name.dir()?;
    for (path, so_far) in ancestors(root, dir) {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Some(so_far),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// A document path as found on disk.
pub(crate) enum OnDisk {
    /// Nothing there.
    Missing,
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A regular file over the hard cap (not read), with its size.
    TooLarge(u64),
    /// A symbolic link (not followed).
    Symlink,
    /// A directory.
    Directory,
    /// A socket, FIFO or device.
    Special,
}

/// Read a document path without following a final symbolic link, reading at
/// most `cap + 1` bytes.
pub(crate) fn read_disk(path: &Path, cap: u64) -> io::Result<OnDisk> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OnDisk::Missing),
        Err(e) => return Err(e),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Ok(OnDisk::Symlink);
    }
    if kind.is_dir() {
        return Ok(OnDisk::Directory);
    }
    if !kind.is_file() {
        return Ok(OnDisk::Special);
    }
    if meta.len() > cap {
        return Ok(OnDisk::TooLarge(meta.len()));
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OnDisk::Missing),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).min(1 << 20));
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Ok(OnDisk::TooLarge(bytes.len() as u64));
    }
    Ok(OnDisk::File(bytes))
}

/// What a scan of (part of) the root found.
#[derive(Default)]
pub(crate) struct Scan {
    /// Files with acceptable names.
    pub(crate) docs: Vec<DocName>,
    /// Files that look like documents but cannot be: the path and why.
    pub(crate) refused: Vec<(String, RegistryError)>,
}

/// Walk `root/prefix` (the whole root if `prefix` is `None`), skipping hidden
/// entries (the history among them) and removing leftover temporary files.
pub(crate) fn scan(root: &Path, prefix: Option<&str>) -> Scan {
    let mut out = Scan::default();
    let start = match prefix {
        Some(p) => root.join(p),
        None => root.to_owned(),
    };
    let mut stack = vec![(start, prefix.map(str::to_owned), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Ok(kind) = entry.file_type() else { continue };
            let Some(part) = file_name.to_str() else {
                let lossy = file_name.to_string_lossy().into_owned();
                if has_document_extension(&lossy) {
                    let shown = join(rel.as_deref(), &lossy);
                    let reason = "the file name is not valid UTF-8".to_owned();
                    out.refused.push((shown.clone(), RegistryError::InvalidName { name: shown, reason }));
                }
                continue;
            };
            if part.starts_with('.') {
                if part.starts_with(TMP_PREFIX) && kind.is_file() {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let name = join(rel.as_deref(), part);
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((entry.path(), Some(name), depth + 1));
                }
            } else if has_document_extension(part) {
                if kind.is_symlink() {
                    let reason = "symbolic links are not followed".to_owned();
                    out.refused.push((name.clone(), RegistryError::InvalidName { name, reason }));
                    continue;
                }
                if !kind.is_file() {
                    continue;
                }
                match DocName::parse(&name) {
                    Ok(doc) => out.docs.push(doc),
                    Err(e) => out.refused.push((name, e)),
                }
            }
        }
    }
    out.docs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out
}

fn join(prefix: Option<&str>, part: &str) -> String {
    match prefix {
        Some(p) => format!("{p}/{part}"),
        None => part.to_owned(),
    }
}
