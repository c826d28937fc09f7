//! The filesystem connector: Markdown, plain text, HTML and PDF files under
//! a directory.
//!
//! A sync lists every file (cheap), parses and indexes only those changed
//! since the last sync's cursor (the newest modification time seen), and
//! deletes from the index the documents whose files are gone. Parsing runs
//! on every core; unreadable and binary files are skipped and counted,
//! never fatal. The cursor is saved only after the index commit, so a sync
//! cut short (crash, kill) is simply run again: upserts replace, nothing is
//! duplicated.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use crate::connector::{Connector, Cursor, Progress, SyncError, SyncReport};
use crate::extract;
use crate::index::{Document, Index, SearchError};
use parking_lot::Mutex;

/// File types indexed, by extension.
const EXTENSIONS: &[&str] = &["md", "markdown", "txt", "text", "html", "htm", "pdf"];
/// Largest file read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Documents handed to the index at a time.
const BATCH: usize = 256;

/// A configured directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsSource {
    /// The source's name (document ids start with it).
    pub name: String,
    pub root: PathBuf,
    /// Readers of every document (a filesystem has no per-file ACL we read).
    pub readers: Vec<String>,
    /// `url` of a document: this prefix and the relative path (else `file://`).
    pub url_prefix: Option<String>,
}

fn modified_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// Every candidate file under `root` (hidden entries and symlinks skipped),
/// with its size and modification time, in path order.
fn list(root: &Path) -> std::io::Result<Vec<(PathBuf, u64, i128)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let mut first = true;
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if first => return Err(e),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "directory skipped");
                continue;
            }
        };
        first = false;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && indexed(&name.to_string_lossy())
                && let Ok(meta) = entry.metadata()
            {
                out.push((path, meta.len(), modified_ns(&meta)));
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Connector for FsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync(
        &self,
        index: &Index,
        tenant: &str,
        cursor: Option<&Cursor>,
        progress: Progress<'_>,
    ) -> Result<(SyncReport, Cursor), SyncError> {
        sync(index, tenant, self, cursor, progress)
    }
}

/// The path of `path` under the source's root, with `/` separators.
fn relative(source: &FsSource, path: &Path) -> String {
    path.strip_prefix(&source.root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// The text of a file's bytes by its extension: the extraction and the
/// document kind, or `None` to skip it (binary, not UTF-8, a redirect page).
pub(crate) fn parse(bytes: Vec<u8>, file_name: &str) -> Option<(extract::Extracted, &'static str)> {
    let ext = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    if ext == "pdf" {
        return extract::pdf(&bytes, file_name).map(|e| (e, "pdf"));
    }
    if bytes.contains(&0) {
        return None; // binary
    }
    let text = String::from_utf8(bytes).ok()?;
    let (e, kind) = match ext.as_str() {
        "html" | "htm" => (extract::html(&text), "page"),
        "md" | "markdown" => (extract::markdown(&text, file_name), "markdown"),
        _ => (extract::plain(&text, file_name), "text"),
    };
    (!e.redirect).then_some((e, kind))
}

/// Whether a file name has an indexed extension.
pub(crate) fn indexed(file_name: &str) -> bool {
    file_name.rsplit_once('.').is_some_and(|(_, e)| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The document of one file, or `None` to skip it.
fn read(source: &FsSource, path: &Path, size: u64, modified: i128) -> Option<Document> {
    if size > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let rel = relative(source, path);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (e, kind) = parse(bytes, &file_name)?;
    let url = match &source.url_prefix {
        Some(prefix) => format!("{}/{rel}", prefix.trim_end_matches('/')),
        None => format!("file://{}", path.display()),
    };
    let space = rel.split('/').next().filter(|s| *s != rel).unwrap_or_default().to_owned();
    Some(Document {
        id: format!("{}:{rel}", source.name),
        source: source.name.clone(),
        title: if e.title.is_empty() { file_name } else { e.title },
        headings: e.headings,
        body: e.body,
        path: if e.path.is_empty() { rel.clone() } else { e.path },
        space,
        kind: kind.to_owned(),
        author: String::new(),
        updated: i64::try_from(modified / 1_000_000_000).ok(),
        url,
        acl: source.readers.clone(),
    })
}

/// Sync `source` into `index` for `tenant`, from `cursor` (`None`: a full
/// sync). Returns the report and the cursor to save once it returns.
/// `progress(done, total)` is called as files are processed.
pub fn sync(
    index: &Index,
    tenant: &str,
    source: &FsSource,
    cursor: Option<&Cursor>,
    progress: Progress<'_>,
) -> Result<(SyncReport, Cursor), SyncError> {
    let files = list(&source.root).map_err(|error| SyncError::Root {
        source_name: source.name.clone(),
        path: source.root.display().to_string(),
        error,
    })?;
    let since = cursor.map_or(i128::MIN, |c| c.modified_ns);
    // `>=`: file times are coarse (a kernel tick), so a file written just
    // after the last sync can carry the cursor's own time; re-indexing the
    // files at the boundary is harmless, missing one is not.
    let changed: Vec<&(PathBuf, u64, i128)> = files.iter().filter(|(_, _, m)| *m >= since).collect();
    let mut report = SyncReport { source: source.name.clone(), files: files.len(), ..SyncReport::default() };
    report.unchanged = files.len() - changed.len();

    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let indexed = AtomicUsize::new(0);
    let skipped = AtomicUsize::new(0);
    let failure: Mutex<Option<SearchError>> = Mutex::new(None);
    let ids: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, size, modified)) = changed.get(i).copied() else { break };
                    match read(source, path, *size, *modified) {
                        Some(doc) => batch.push(doc),
                        None => {
                            skipped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if batch.len() == BATCH {
                        flush(index, tenant, &mut batch, &indexed, &failure, &ids);
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_multiple_of(500) {
                        progress(n, changed.len());
                    }
                }
                flush(index, tenant, &mut batch, &indexed, &failure, &ids);
            });
        }
    });
    if let Some(e) = failure.into_inner() {
        return Err(e.into());
    }
    report.indexed = indexed.into_inner();
    report.skipped = skipped.into_inner();
    progress(changed.len(), changed.len());

    // Deleted files: indexed ids of this source that no file has any more.
    let present: std::collections::HashSet<String> =
        files.iter().map(|(p, _, _)| format!("{}:{}", source.name, relative(source, p))).collect();
    let gone: Vec<String> =
        index.ids_of_source(tenant, &source.name)?.into_iter().filter(|id| !present.contains(id)).collect();
    report.deleted = gone.len();
    report.changed = ids.into_inner();
    report.changed.extend(gone.iter().cloned());
    index.delete(tenant, &gone);
    index.commit()?;
    let newest = files.iter().map(|(_, _, m)| *m).max().unwrap_or(since.max(0));
    Ok((report, Cursor { modified_ns: newest.max(cursor.map_or(0, |c| c.modified_ns)), token: None }))
}

fn flush(
    index: &Index,
    tenant: &str,
    batch: &mut Vec<Document>,
    indexed: &AtomicUsize,
    failure: &Mutex<Option<SearchError>>,
    ids: &Mutex<Vec<String>>,
) {
    if batch.is_empty() {
        return;
    }
    match index.upsert(tenant, batch) {
        Ok(()) => {
            indexed.fetch_add(batch.len(), Ordering::Relaxed);
            ids.lock().extend(batch.iter().map(|d| d.id.clone()));
        }
        Err(e) => {
            failure.lock().get_or_insert(e);
        }
    }
    batch.clear();
}
