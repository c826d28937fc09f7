//! GitHub: a repository's issues and pull requests (with their comments)
//! and its Markdown files, over the REST API (`api.github.com` or a GitHub
//! Enterprise Server `/api/v3`).
//!
//! - Issues: `GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&per_page=100[&since=…]`,
//!   paged by the `Link: rel="next"` header; an item with a `pull_request`
//!   key is a pull request. Comments: `GET /repos/{o}/{r}/issues/{n}/comments`.
//!   The cursor is the newest `updated_at` seen; `since` makes an
//!   incremental sync read only what changed. An issue deleted on GitHub is
//!   noticed by a full sync (`sync --full`), which lists every issue.
//! - Markdown: `GET /repos/{o}/{r}/git/trees/{ref}?recursive=1` lists every
//!   file with its blob sha; only blobs whose sha changed are read
//!   (`GET /repos/{o}/{r}/git/blobs/{sha}`, base64), with the last commit
//!   touching the file (`GET /repos/{o}/{r}/commits?path=…&per_page=1`) as
//!   author and time. Files gone from the tree are deleted every sync.
//! - Permissions: a public repository is readable by `everyone`; a private
//!   one by the source's configured `readers` (GitHub's own collaborators
//!   are GitHub logins, not this server's principals), nobody if none.
//! - Live search: `GET /search/issues?q=<query>+repo:{o}/{r}`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::{Api, encode, next_link, problem, rfc3339, text, to_rfc3339};
use crate::connector::{self, Connector, Cursor, Fetched, Progress, SyncError, SyncReport};
use crate::extract;
use crate::federated::LiveSource;
use crate::index::{Document, Index};

/// A configured repository.
#[derive(Debug)]
pub struct GitHub {
    pub name: String,
    pub api: Arc<Api>,
    /// `owner/name`.
    pub repo: String,
    /// Branch, tag or commit for Markdown files (default: the default branch).
    pub git_ref: Option<String>,
    /// Readers of a private repository's documents.
    pub readers: Vec<String>,
    /// Whether the repository is private, as last seen (live search).
    pub private: parking_lot::Mutex<Option<bool>>,
}

/// The part of the cursor token that remembers Markdown blobs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Blobs {
    /// path → blob sha.
    #[serde(default)]
    blobs: BTreeMap<String, String>,
    /// The ACL the documents were indexed with: when it changes (the
    /// repository became private), everything is read again.
    #[serde(default)]
    acl: Vec<String>,
}

const MARKDOWN: &[&str] = &[".md", ".markdown"];
const MAX_BLOB_BYTES: u64 = 4 * 1024 * 1024;

impl GitHub {
    fn acl(&self, private: bool) -> Vec<String> {
        if private { self.readers.clone() } else { vec!["everyone".into()] }
    }

    fn issue_doc(&self, item: &Value, comments: &[Value], acl: &[String]) -> Option<Document> {
        let number = item.get("number")?.as_u64()?;
        let title = item.get("title")?.as_str()?.to_owned();
        let is_pr = item.get("pull_request").is_some();
        let mut body = text(item, "/body");
        for c in comments {
            let who = text(c, "/user/login");
            let said = text(c, "/body");
            if !said.is_empty() {
                body.push_str(&format!("\n\n{who}: {said}"));
            }
        }
        let labels: Vec<String> = item
            .get("labels")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|x| x.get("name").and_then(Value::as_str)).map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Document {
            id: format!("{}:issue/{number}", self.name),
            source: self.name.clone(),
            title,
            headings: labels,
            body,
            path: format!("{}#{number}", self.repo),
            space: self.repo.clone(),
            kind: if is_pr { "pull_request" } else { "issue" }.into(),
            author: text(item, "/user/login"),
            updated: item.get("updated_at").and_then(rfc3339),
            url: text(item, "/html_url"),
            acl: acl.to_vec(),
        })
    }

    async fn issues(&self, since: Option<i64>, acl: &[String], out: &mut Fetched) -> Result<i64, SyncError> {
        let mut url = format!("repos/{}/issues?state=all&sort=updated&direction=asc&per_page=100", self.repo);
        if let Some(s) = since {
            url.push_str(&format!("&since={}", encode(&to_rfc3339(s))));
        }
        let mut newest = since.unwrap_or(0);
        let mut next = Some(url);
        while let Some(page) = next.take() {
            let (v, r) = self.api.get_json(&page).await.map_err(|e| SyncError::source(&self.name, e))?;
            let Some(items) = v.as_array() else {
                return Err(SyncError::source(&self.name, "issues: the answer is not a list"));
            };
            for item in items {
                out.seen += 1;
                let comments = match item.get("comments").and_then(Value::as_u64) {
                    Some(n) if n > 0 => {
                        let number = item.get("number").and_then(Value::as_u64).unwrap_or_default();
                        match self
                            .all_pages(&format!("repos/{}/issues/{number}/comments?per_page=100", self.repo))
                            .await
                        {
                            Ok(c) => c,
                            Err(e) => {
                                out.problems.push(problem(format!("comments of #{number}"), &e));
                                Vec::new()
                            }
                        }
                    }
                    _ => Vec::new(),
                };
                match self.issue_doc(item, &comments, acl) {
                    Some(d) => {
                        newest = newest.max(d.updated.unwrap_or(0));
                        out.changed.push(d);
                    }
                    None => out.skipped += 1,
                }
            }
            next = next_link(r.header("link"));
        }
        Ok(newest)
    }

    async fn all_pages(&self, first: &str) -> Result<Vec<Value>, plexus_core::http::HttpError> {
        let mut all = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(page) = next.take() {
            let (v, r) = self.api.get_json(&page).await?;
            match v {
                Value::Array(items) => all.extend(items),
                _ => return Err(plexus_core::http::HttpError::Garbage("expected a list".into())),
            }
            next = next_link(r.header("link"));
        }
        Ok(all)
    }

    /// Markdown files at the ref; returns the blob map to remember.
    async fn markdown(
        &self,
        git_ref: &str,
        known: &Blobs,
        acl: &[String],
        out: &mut Fetched,
        present: &mut HashSet<String>,
    ) -> Result<Blobs, SyncError> {
        let (tree, _) = self
            .api
            .get_json(&format!("repos/{}/git/trees/{}?recursive=1", self.repo, encode(git_ref)))
            .await
            .map_err(|e| SyncError::source(&self.name, format!("tree of {git_ref}: {e}")))?;
        if tree.get("truncated").and_then(Value::as_bool) == Some(true) {
            out.problems.push(format!("the tree of {git_ref} is too large for one listing: some files were not seen"));
        }
        let entries = tree
            .get("tree")
            .and_then(Value::as_array)
            .ok_or_else(|| SyncError::source(&self.name, "tree: no `tree` list in the answer"))?;
        let mut now = Blobs::default();
        for e in entries {
            let (path, sha) = (text(e, "/path"), text(e, "/sha"));
            let lower = path.to_ascii_lowercase();
            if text(e, "/type") != "blob" || !MARKDOWN.iter().any(|m| lower.ends_with(m)) || sha.is_empty() {
                continue;
            }
            out.seen += 1;
            let id = format!("{}:blob/{path}", self.name);
            present.insert(id.clone());
            now.blobs.insert(path.clone(), sha.clone());
            if known.blobs.get(&path) == Some(&sha) {
                continue;
            }
            if e.get("size").and_then(Value::as_u64).is_some_and(|s| s > MAX_BLOB_BYTES) {
                out.skipped += 1;
                continue;
            }
            match self.blob(&path, &sha, git_ref, acl).await {
                Ok(Some(doc)) => out.changed.push(doc),
                Ok(None) => out.skipped += 1,
                Err(e) => {
                    // Not remembered: the next sync tries it again.
                    now.blobs.remove(&path);
                    out.problems.push(problem(&path, &e));
                }
            }
        }
        Ok(now)
    }

    async fn blob(
        &self,
        path: &str,
        sha: &str,
        git_ref: &str,
        acl: &[String],
    ) -> Result<Option<Document>, plexus_core::http::HttpError> {
        use base64::Engine as _;
        let (blob, _) = self.api.get_json(&format!("repos/{}/git/blobs/{sha}", self.repo)).await?;
        let content = text(&blob, "/content").replace(['\n', '\r'], "");
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(content) else { return Ok(None) };
        if bytes.contains(&0) {
            return Ok(None);
        }
        let Ok(body) = String::from_utf8(bytes) else { return Ok(None) };
        let (commits, _) = self
            .api
            .get_json(&format!("repos/{}/commits?path={}&sha={}&per_page=1", self.repo, encode(path), encode(git_ref)))
            .await?;
        let last = commits.get(0).cloned().unwrap_or(Value::Null);
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let e = extract::markdown(&body, file_name);
        Ok(Some(Document {
            id: format!("{}:blob/{path}", self.name),
            source: self.name.clone(),
            title: if e.title.is_empty() { file_name.to_owned() } else { e.title },
            headings: e.headings,
            body: e.body,
            path: path.to_owned(),
            space: self.repo.clone(),
            kind: "markdown".into(),
            author: text(&last, "/commit/author/name"),
            updated: last.pointer("/commit/author/date").and_then(rfc3339),
            url: format!("https://github.com/{}/blob/{git_ref}/{path}", self.repo),
            acl: acl.to_vec(),
        }))
    }

    async fn fetch(&self, cursor: Option<&Cursor>) -> Result<Fetched, SyncError> {
        let (repo, _) =
            self.api.get_json(&format!("repos/{}", self.repo)).await.map_err(|e| SyncError::source(&self.name, e))?;
        let private = repo.get("private").and_then(Value::as_bool).unwrap_or(true);
        *self.private.lock() = Some(private);
        let acl = self.acl(private);
        let known: Blobs =
            cursor.and_then(|c| c.token.as_deref()).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        // Visibility changes apply to every document, not only changed
        // ones: with another ACL, everything is read again.
        let (cursor, known) =
            if cursor.is_some() && known.acl != acl { (None, Blobs::default()) } else { (cursor, known) };
        let git_ref = self.git_ref.clone().unwrap_or_else(|| {
            Some(text(&repo, "/default_branch")).filter(|b| !b.is_empty()).unwrap_or_else(|| "main".into())
        });
        let mut out = Fetched::default();
        let since = cursor.filter(|c| c.modified_ns > 0).map(Cursor::secs);
        let newest = self.issues(since, &acl, &mut out).await?;
        let mut present = HashSet::new();
        let mut blobs = self.markdown(&git_ref, &known, &acl, &mut out, &mut present).await?;
        blobs.acl = acl;
        // Deletion: every Markdown file is listed each sync; issues only on
        // a full sync (no cursor), when every issue was listed.
        if since.is_none() {
            present.extend(out.changed.iter().filter(|d| d.kind != "markdown").map(|d| d.id.clone()));
            out.present = Some(present);
        } else {
            out.present_scope = Some(format!("{}:blob/", self.name));
            out.present = Some(present);
        }
        out.retries = self.api.take_retries();
        out.cursor =
            Cursor { modified_ns: i128::from(newest) * 1_000_000_000, token: serde_json::to_string(&blobs).ok() };
        Ok(out)
    }
}

impl Connector for GitHub {
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
        connector::fetch_and_apply(index, tenant, &self.name, self.fetch(cursor))
    }
}

#[async_trait::async_trait]
impl LiveSource for GitHub {
    fn name(&self) -> &str {
        &self.name
    }

    async fn search(
        &self,
        query: &str,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Document>, plexus_core::http::HttpError> {
        let cached = *self.private.lock();
        let private = match cached {
            Some(p) => p,
            None => {
                let repo = self.api.get_json_by(&format!("repos/{}", self.repo), deadline).await?;
                let p = repo.get("private").and_then(Value::as_bool).unwrap_or(true);
                *self.private.lock() = Some(p);
                p
            }
        };
        let acl = self.acl(private);
        let q = encode(&format!("{query} repo:{}", self.repo));
        let v =
            self.api.get_json_by(&format!("search/issues?q={q}&per_page={}", limit.clamp(1, 100)), deadline).await?;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| plexus_core::http::HttpError::Garbage("search: no `items`".into()))?;
        Ok(items.iter().filter_map(|i| self.issue_doc(i, &[], &acl)).collect())
    }
}
