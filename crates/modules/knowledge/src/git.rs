//! The git connector: the Markdown, text, HTML and PDF files of a local
//! repository at a ref, read from the object database with gitoxide (pure
//! Rust; the working tree is never looked at, so a bare mirror works).
//!
//! - Each file's author and time are those of the last commit that changed
//!   it, found by walking first-parent history from the ref and diffing
//!   trees (only subtrees whose ids differ are descended into, so a walk
//!   costs what changed, not the size of the repository). The walk stops at
//!   [`MAX_WALK`] commits; files older than that carry the oldest commit
//!   walked.
//! - The cursor token is the commit synced. An incremental sync diffs that
//!   commit's tree against the new one and reads only the files whose blob
//!   changed; files gone from the tree are deleted every sync. A ref that
//!   moved to unrelated history (a force push) is simply diffed the same
//!   way; a cursor commit that no longer exists means a full read.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use gix::ObjectId;

use crate::connector::{self, Connector, Cursor, Fetched, Progress, SyncError, SyncReport};
use crate::fs;
use crate::index::{Document, Index};

/// Commits walked at most to date files.
pub const MAX_WALK: usize = 20_000;
/// Largest blob read.
const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;

/// A configured repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    pub name: String,
    /// The repository (a work tree's root or a bare repository).
    pub repo: PathBuf,
    /// Branch, tag, full ref name or commit id (default: HEAD).
    pub git_ref: Option<String>,
    pub readers: Vec<String>,
    /// `url` of a document: this prefix and the path (else `git://…`).
    pub url_prefix: Option<String>,
}

type GitError = Box<dyn std::error::Error + Send + Sync>;

/// path → (blob id, is a tree) of a tree's direct entries.
fn entries(repo: &gix::Repository, tree: ObjectId) -> Result<BTreeMap<Vec<u8>, (ObjectId, bool)>, GitError> {
    let tree = repo.find_tree(tree)?;
    let mut out = BTreeMap::new();
    for e in tree.iter() {
        let e = e?;
        let mode = e.mode();
        if mode.is_tree() {
            out.insert(e.filename().to_vec(), (e.object_id(), true));
        } else if mode.is_blob() {
            out.insert(e.filename().to_vec(), (e.object_id(), false));
        }
    }
    Ok(out)
}

/// Paths of files that differ between tree `a` and tree `b` (`None`: an
/// empty tree), restricted to `wanted` when given, under `prefix`.
fn diff(
    repo: &gix::Repository,
    a: Option<ObjectId>,
    b: Option<ObjectId>,
    prefix: &str,
    wanted: Option<&HashSet<String>>,
    out: &mut HashSet<String>,
) -> Result<(), GitError> {
    if a == b {
        return Ok(());
    }
    if let Some(w) = wanted
        && !prefix.is_empty()
        && !w.iter().any(|p| p.starts_with(prefix))
    {
        return Ok(());
    }
    let ea = a.map(|t| entries(repo, t)).transpose()?.unwrap_or_default();
    let eb = b.map(|t| entries(repo, t)).transpose()?.unwrap_or_default();
    let names: std::collections::BTreeSet<&Vec<u8>> = ea.keys().chain(eb.keys()).collect();
    for name in names {
        let (x, y) = (ea.get(name), eb.get(name));
        if x == y {
            continue;
        }
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        let tree_of = |e: Option<&(ObjectId, bool)>| e.filter(|(_, t)| *t).map(|(id, _)| *id);
        let (ta, tb) = (tree_of(x), tree_of(y));
        if ta.is_some() || tb.is_some() {
            diff(repo, ta, tb, &format!("{path}/"), wanted, out)?;
        }
        let blob = |e: Option<&(ObjectId, bool)>| e.filter(|(_, t)| !*t).map(|(id, _)| *id);
        if blob(x) != blob(y) && wanted.is_none_or(|w| w.contains(&path)) {
            out.insert(path);
        }
    }
    Ok(())
}

/// Who last changed each of `paths`, walking first-parent history from
/// `head`: path → (author name, time in Unix seconds).
fn last_changes(
    repo: &gix::Repository,
    head: ObjectId,
    paths: &HashSet<String>,
) -> Result<BTreeMap<String, (String, i64)>, GitError> {
    let mut open: HashSet<String> = paths.clone();
    let mut out = BTreeMap::new();
    let mut at = head;
    let mut oldest = (String::new(), 0);
    for _ in 0..MAX_WALK {
        if open.is_empty() {
            break;
        }
        let commit = repo.find_commit(at)?;
        let who = commit.author()?;
        let stamp = (who.name.to_string(), commit.time()?.seconds);
        let tree = commit.tree_id()?.detach();
        let parent = commit.parent_ids().next().map(|p| p.detach());
        let parent_tree = match parent {
            Some(p) => Some(repo.find_commit(p)?.tree_id()?.detach()),
            None => None,
        };
        let mut changed = HashSet::new();
        diff(repo, Some(tree), parent_tree, "", Some(&open), &mut changed)?;
        for p in changed {
            open.remove(&p);
            out.insert(p, stamp.clone());
        }
        oldest = stamp;
        match parent {
            Some(p) => at = p,
            None => break,
        }
    }
    for p in open {
        out.insert(p, oldest.clone());
    }
    Ok(out)
}

impl GitSource {
    fn resolve(&self, repo: &gix::Repository) -> Result<ObjectId, GitError> {
        let Some(r) = self.git_ref.as_deref() else {
            return Ok(repo.head_commit()?.id);
        };
        if let Ok(mut reference) = repo.find_reference(r) {
            return Ok(reference.peel_to_commit()?.id);
        }
        if let Ok(id) = ObjectId::from_hex(r.as_bytes())
            && let Ok(c) = repo.find_commit(id)
        {
            return Ok(c.id);
        }
        Err(format!("ref `{r}` names no branch, tag or commit").into())
    }

    fn fetch(&self, cursor: Option<&Cursor>) -> Result<Fetched, GitError> {
        let repo = gix::open(&self.repo)?;
        let head = self.resolve(&repo)?;
        let head_tree = repo.find_commit(head)?.tree_id()?.detach();
        let files: Vec<(String, ObjectId)> = repo
            .find_tree(head_tree)?
            .traverse()
            .breadthfirst
            .files()?
            .into_iter()
            .filter(|e| e.mode.is_blob())
            .map(|e| (e.filepath.to_string(), e.oid))
            .filter(|(p, _)| fs::indexed(p) && !p.split('/').any(|part| part.starts_with('.')))
            .collect();
        let mut out = Fetched { seen: files.len(), ..Fetched::default() };
        let all: HashSet<String> = files.iter().map(|(p, _)| p.clone()).collect();
        let previous = cursor
            .and_then(|c| c.token.as_deref())
            .and_then(|t| ObjectId::from_hex(t.as_bytes()).ok())
            .and_then(|id| repo.find_commit(id).ok())
            .and_then(|c| c.tree_id().ok().map(gix::Id::detach));
        let changed: HashSet<String> = match previous {
            Some(old) => {
                let mut changed = HashSet::new();
                diff(&repo, Some(head_tree), Some(old), "", Some(&all), &mut changed)?;
                changed
            }
            None => all.clone(),
        };
        let stamps = last_changes(&repo, head, &changed)?;
        for (path, oid) in &files {
            if !changed.contains(path) {
                continue;
            }
            let blob = match repo.find_blob(*oid) {
                Ok(b) if b.data.len() <= MAX_BLOB_BYTES => b.data.clone(),
                Ok(_) => {
                    out.skipped += 1;
                    continue;
                }
                Err(e) => {
                    out.problems.push(format!("{path}: {e}"));
                    continue;
                }
            };
            let file_name = path.rsplit('/').next().unwrap_or(path);
            let Some((e, kind)) = fs::parse(blob, file_name) else {
                out.skipped += 1;
                continue;
            };
            let (author, time) = stamps.get(path).cloned().unwrap_or_default();
            let url = match &self.url_prefix {
                Some(p) => format!("{}/{path}", p.trim_end_matches('/')),
                None => format!("git://{}#{}:{path}", self.repo.display(), head.to_hex()),
            };
            out.changed.push(Document {
                id: format!("{}:{path}", self.name),
                source: self.name.clone(),
                title: if e.title.is_empty() { file_name.to_owned() } else { e.title },
                headings: e.headings,
                body: e.body,
                path: path.clone(),
                space: path.split('/').next().filter(|s| *s != path).unwrap_or_default().to_owned(),
                kind: kind.to_owned(),
                author,
                updated: Some(time),
                url,
                acl: self.readers.clone(),
            });
        }
        out.present = Some(all.iter().map(|p| format!("{}:{p}", self.name)).collect());
        let newest = out.changed.iter().filter_map(|d| d.updated).max().unwrap_or(0);
        out.cursor = Cursor {
            modified_ns: i128::from(newest.max(cursor.map_or(0, Cursor::secs))) * 1_000_000_000,
            token: Some(head.to_hex().to_string()),
        };
        Ok(out)
    }
}

impl Connector for GitSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync(
        &self,
        index: &Index,
        tenant: &str,
        cursor: Option<&Cursor>,
        _progress: Progress<'_>,
    ) -> Result<(SyncReport, Cursor), SyncError> {
        let fetched = self.fetch(cursor).map_err(|e| SyncError::source(&self.name, e))?;
        connector::apply(index, tenant, &self.name, fetched)
    }
}
