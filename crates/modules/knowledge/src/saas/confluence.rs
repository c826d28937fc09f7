//! Confluence Cloud: the pages of configured spaces, over REST API v1.
//!
//! - Pages: `GET /wiki/rest/api/content/search?cql=<CQL>&limit=50&expand=body.storage,version,space,history,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group`,
//!   paged by `_links.next` (a path under `_links.base`, which ends in the
//!   `/wiki` context; resolved against the configured site, so the
//!   credential never goes to another host). The CQL is
//!   `type=page AND space in ("ENG","HR")`, plus `AND (<cql>)` when
//!   configured. The storage format (XHTML) becomes text through
//!   [`crate::extract::html`].
//! - Incremental: the cursor is the newest `version.when` indexed; the next
//!   sync adds `AND lastmodified >= "yyyy/MM/dd HH:mm"`. CQL compares to the
//!   minute and in the time zone of the API user's profile, which the
//!   connector cannot know, so the query starts 14 hours (the widest UTC
//!   offset) before the cursor; pages in that overlap that were indexed at
//!   the same version time (remembered in the cursor token) count as
//!   unchanged, so the window only costs reading, never re-indexing.
//!   Pages whose permissions could not be read are named in the token and
//!   read again next time (`OR id in (…)`).
//! - Deletions: every sync lists every page id (same CQL, no expansions,
//!   `limit=200`); indexed pages beyond them are deleted. A full sync reads
//!   that list from its own pages.
//! - Permissions: a page readable by everyone who can see its space has
//!   `space_readers[space key]`, else the source's `readers` (empty:
//!   nobody). Read restrictions (users → `user:<accountId>`, groups →
//!   `group:<name>`) replace that, and are inherited: an ancestor's own
//!   restrictions are read once per sync from
//!   `GET /wiki/rest/api/content/{id}/restriction/byOperation/read`, and a
//!   page restricted at several levels is readable only by the principals
//!   every level names. Permissions that cannot be read (a failing
//!   request, an answer without the restriction lists) make the page
//!   private, and the failure is reported. A change of restrictions alone
//!   does not change a page's version: it is picked up when the page is
//!   next edited or by a full sync.
//! - Live search: the same expansions with `text ~ "<query>"` and the
//!   spaces condition, by the caller's deadline; ancestors' restrictions
//!   are read concurrently under the same deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use plexus_core::http::HttpError;
use serde_json::Value;

use super::{Api, encode, problem, rfc3339, text};
use crate::connector::{self, Connector, Cursor, Fetched, Progress, SyncError, SyncReport};
use crate::extract;
use crate::federated::LiveSource;
use crate::index::{Document, Index};

/// A configured Confluence site.
#[derive(Debug)]
pub struct Confluence {
    pub name: String,
    pub api: Arc<Api>,
    /// Space keys to read (with `cql`, an extra CQL condition).
    pub spaces: Vec<String>,
    pub cql: Option<String>,
    /// Readers of a page with no read restrictions, unless its space has
    /// its own in `space_readers`.
    pub readers: Vec<String>,
    pub space_readers: BTreeMap<String, Vec<String>>,
}

const EXPAND: &str = "body.storage,version,space,history,ancestors,\
                      restrictions.read.restrictions.user,restrictions.read.restrictions.group";
const PAGE: usize = 50;
const LIST_PAGE: usize = 200;

/// How far before the cursor an incremental CQL or JQL query starts: their
/// dates are read in the API user's own time zone, at most 14 hours from UTC.
const MARGIN_SECS: i64 = 14 * 3600;
/// How long an indexed version is remembered: past any window's reach.
const KEEP_SECS: i64 = 4 * MARGIN_SECS;
/// At most this many documents are read again by key; the rest wait for
/// their next change or a full sync.
const RETRY_MAX: usize = 100;

/// The incremental window of the Atlassian connectors (Confluence, Jira),
/// kept in the cursor token.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Window {
    /// Document id → the update time it was indexed at, for documents
    /// recent enough to be read again by the next window.
    #[serde(default)]
    recent: BTreeMap<String, i64>,
    /// Source keys (content ids, issue keys) to read again: part of them
    /// could not be read last time.
    #[serde(default)]
    retry: BTreeSet<String>,
}

impl Window {
    /// The window a cursor left and the time it reached (`None`: a full
    /// sync).
    pub(super) fn resume(cursor: Option<&Cursor>) -> (Option<i64>, Self) {
        match cursor.filter(|c| c.modified_ns > 0) {
            Some(c) => {
                (Some(c.secs()), c.token.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default())
            }
            None => (None, Self::default()),
        }
    }

    /// The keys to read again.
    pub(super) fn retry(&self) -> &BTreeSet<String> {
        &self.retry
    }

    /// `yyyy/MM/dd HH:mm` (the date format of CQL and JQL) a margin before
    /// `since`, rounded down to the minute.
    pub(super) fn from_date(since: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp(since.saturating_sub(MARGIN_SECS))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        format!("{:04}/{:02}/{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
    }

    /// Whether document `id` was indexed at `updated` already.
    pub(super) fn unchanged(&self, id: &str, updated: Option<i64>) -> bool {
        updated.is_some() && self.recent.get(id).copied() == updated
    }

    /// The cursor after a sync that reached `newest` and indexed `changed`,
    /// of which the documents `failed` (id, key) are to be read again.
    pub(super) fn cursor(mut self, newest: i64, changed: &[Document], failed: &BTreeMap<String, String>) -> Cursor {
        for d in changed {
            match (d.updated, failed.contains_key(&d.id)) {
                (Some(u), false) => {
                    self.recent.insert(d.id.clone(), u);
                }
                _ => {
                    self.recent.remove(&d.id);
                }
            }
        }
        let keep = newest.saturating_sub(KEEP_SECS);
        self.recent.retain(|_, u| *u >= keep);
        self.retry = failed.values().take(RETRY_MAX).cloned().collect();
        Cursor { modified_ns: i128::from(newest) * 1_000_000_000, token: serde_json::to_string(&self).ok() }
    }
}

/// A CQL or JQL string literal.
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Read restrictions of one content item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Restriction {
    /// Not restricted.
    Open,
    /// Readable only by these principals.
    To(BTreeSet<String>),
    /// Could not be read: private.
    Unknown,
}

/// The restrictions under a `restrictions` object (`{user: {results},
/// group: {results}}`).
fn restriction(r: Option<&Value>) -> Restriction {
    let list = |kind: &str| r.and_then(|r| r.get(kind)).and_then(|k| k.get("results")).and_then(Value::as_array);
    let (Some(users), Some(groups)) = (list("user"), list("group")) else { return Restriction::Unknown };
    if users.is_empty() && groups.is_empty() {
        return Restriction::Open;
    }
    let users = users.iter().filter_map(|u| u.get("accountId").and_then(Value::as_str)).map(|id| format!("user:{id}"));
    let groups = groups.iter().filter_map(|g| g.get("name").and_then(Value::as_str)).map(|n| format!("group:{n}"));
    // Entries without a usable name restrict to nobody we can name.
    Restriction::To(users.chain(groups).collect())
}

/// Where `_links.next` points, as a path under the site.
fn next_page(v: &Value) -> Option<String> {
    let next = v.pointer("/_links/next")?.as_str()?;
    if next.starts_with("http://") || next.starts_with("https://") {
        return Some(next.to_owned());
    }
    let context = v.pointer("/_links/context").and_then(Value::as_str).unwrap_or("/wiki");
    if context.is_empty() || next.starts_with(&format!("{context}/")) {
        Some(next.to_owned())
    } else {
        Some(format!("{context}{next}"))
    }
}

/// A page of content search results.
struct Results {
    results: Vec<Value>,
    /// What `_links.webui` is relative to.
    base: String,
    next: Option<String>,
}

impl Confluence {
    /// The pages to read: `type=page`, the spaces, the extra CQL.
    fn scope(&self) -> String {
        let mut cql = "type=page".to_owned();
        if !self.spaces.is_empty() {
            let keys: Vec<String> = self.spaces.iter().map(|s| quote(s)).collect();
            cql.push_str(&format!(" AND space in ({})", keys.join(",")));
        }
        if let Some(extra) = self.cql.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            cql.push_str(&format!(" AND ({extra})"));
        }
        cql
    }

    fn search_path(&self, cql: &str, limit: usize, expand: Option<&str>) -> String {
        let mut path = format!("wiki/rest/api/content/search?cql={}&limit={limit}", encode(cql));
        if let Some(e) = expand {
            path.push_str(&format!("&expand={}", encode(e)));
        }
        path
    }

    async fn get(&self, path: &str, deadline: Option<tokio::time::Instant>) -> Result<Value, HttpError> {
        match deadline {
            Some(d) => self.api.get_json_by(path, d).await,
            None => self.api.get_json(path).await.map(|(v, _)| v),
        }
    }

    async fn results(&self, path: &str, deadline: Option<tokio::time::Instant>) -> Result<Results, HttpError> {
        let v = self.get(path, deadline).await?;
        let Some(results) = v.get("results").and_then(Value::as_array) else {
            return Err(HttpError::Garbage("content search: no `results` list".into()));
        };
        let base = v.pointer("/_links/base").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| {
            let context = v.pointer("/_links/context").and_then(Value::as_str).unwrap_or("/wiki");
            format!("{}{context}", self.api.base())
        });
        Ok(Results { results: results.clone(), base, next: next_page(&v) })
    }

    /// The own read restrictions of each of `ids`, by `deadline`, into
    /// `known`; returns the ids that could not be read, with why.
    async fn ancestors(
        &self,
        ids: &[String],
        known: &mut HashMap<String, Restriction>,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<(String, String)> {
        let wanted: Vec<&String> =
            ids.iter().filter(|id| !known.contains_key(*id)).collect::<BTreeSet<_>>().into_iter().collect();
        let reads = wanted.iter().map(|id| async move {
            let path = format!(
                "wiki/rest/api/content/{}/restriction/byOperation/read?expand=restrictions.user,restrictions.group",
                encode(id)
            );
            (*id, self.get(&path, deadline).await)
        });
        let mut problems = Vec::new();
        for (id, answer) in futures::future::join_all(reads).await {
            let r = match answer {
                Ok(v) => restriction(v.get("restrictions")),
                Err(e) => {
                    problems.push((id.clone(), problem(format!("restrictions of page {id}"), &e)));
                    Restriction::Unknown
                }
            };
            known.insert(id.clone(), r);
        }
        problems
    }

    /// The ancestors' ids of a page, root first (`None`: not in the answer).
    fn ancestor_ids(page: &Value) -> Option<Vec<String>> {
        let list = page.get("ancestors")?.as_array()?;
        Some(list.iter().filter_map(|a| a.get("id").and_then(Value::as_str)).map(str::to_owned).collect())
    }

    /// Who may read `page`, its ancestors' restrictions in `known`.
    fn acl(&self, page: &Value, space: &str, known: &HashMap<String, Restriction>) -> Vec<String> {
        let Some(ancestors) = Self::ancestor_ids(page) else { return Vec::new() };
        let mut levels: Vec<BTreeSet<String>> = Vec::new();
        let own = restriction(page.pointer("/restrictions/read/restrictions"));
        for r in ancestors.iter().map(|a| known.get(a).unwrap_or(&Restriction::Unknown)).chain([&own]) {
            match r {
                Restriction::Open => {}
                Restriction::To(p) => levels.push(p.clone()),
                Restriction::Unknown => return Vec::new(),
            }
        }
        let Some(first) = levels.first() else {
            return self.space_readers.get(space).unwrap_or(&self.readers).clone();
        };
        first.iter().filter(|p| levels.iter().all(|l| l.contains(*p))).cloned().collect()
    }

    fn page_doc(&self, page: &Value, base: &str, acl: Vec<String>) -> Option<Document> {
        let id = page.get("id")?.as_str()?;
        let title = page.get("title")?.as_str()?.to_owned();
        let storage = page.pointer("/body/storage/value")?.as_str()?;
        let e = extract::html(storage);
        let space = text(page, "/space/key");
        let author = Some(text(page, "/history/createdBy/displayName"))
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| text(page, "/version/by/displayName"));
        let webui = text(page, "/_links/webui");
        let url = if webui.is_empty() { String::new() } else { format!("{}{webui}", base.trim_end_matches('/')) };
        let mut path: Vec<String> = page
            .get("ancestors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.get("title").and_then(Value::as_str)).map(str::to_owned).collect())
            .unwrap_or_default();
        path.push(title.clone());
        Some(Document {
            id: format!("{}:page/{id}", self.name),
            source: self.name.clone(),
            title,
            headings: e.headings,
            body: e.body,
            path: path.join(" / "),
            space,
            kind: "page".into(),
            author,
            updated: page.pointer("/version/when").and_then(rfc3339),
            url,
            acl,
        })
    }

    /// Every page id in scope (deletion detection).
    async fn ids(&self, scope: &str) -> Result<HashSet<String>, HttpError> {
        let mut ids = HashSet::new();
        let mut visited = HashSet::new();
        let mut next = Some(self.search_path(scope, LIST_PAGE, None));
        while let Some(path) = next.take() {
            if !visited.insert(path.clone()) {
                return Err(HttpError::Garbage("content search: the next page is one already read".into()));
            }
            let page = self.results(&path, None).await?;
            for r in &page.results {
                let id = r
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| HttpError::Garbage("a page without an id".into()))?;
                ids.insert(format!("{}:page/{id}", self.name));
            }
            next = page.next;
        }
        Ok(ids)
    }

    async fn fetch(&self, cursor: Option<&Cursor>) -> Result<Fetched, SyncError> {
        let (since, window) = Window::resume(cursor);
        let scope = self.scope();
        let cql = match since {
            Some(s) => {
                let mut changed = format!("lastmodified >= {}", quote(&Window::from_date(s)));
                let ids: Vec<&str> = window
                    .retry()
                    .iter()
                    .map(String::as_str)
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .collect();
                if !ids.is_empty() {
                    changed = format!("({changed} OR id in ({}))", ids.join(","));
                }
                format!("{scope} AND {changed}")
            }
            None => scope.clone(),
        };
        let fail = |what: &str, e: HttpError| SyncError::source(&self.name, format!("{what}: {e}"));
        let mut out = Fetched::default();
        let mut newest = since.unwrap_or(0);
        let mut listed = HashSet::new();
        let mut restrictions: HashMap<String, Restriction> = HashMap::new();
        let mut unreadable: HashSet<String> = HashSet::new();
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut visited = HashSet::new();
        let mut next = Some(self.search_path(&cql, PAGE, Some(EXPAND)));
        while let Some(path) = next.take() {
            if !visited.insert(path.clone()) {
                return Err(SyncError::source(&self.name, "content search: the next page is one already read"));
            }
            let page = self.results(&path, None).await.map_err(|e| fail("content search", e))?;
            for r in &page.results {
                out.seen += 1;
                let Some(id) = r.get("id").and_then(Value::as_str) else {
                    out.skipped += 1;
                    continue;
                };
                let doc_id = format!("{}:page/{id}", self.name);
                listed.insert(doc_id.clone());
                let updated = r.pointer("/version/when").and_then(rfc3339);
                if window.unchanged(&doc_id, updated) && !window.retry().contains(id) {
                    continue;
                }
                let ancestors = Self::ancestor_ids(r).unwrap_or_default();
                for (ancestor, p) in self.ancestors(&ancestors, &mut restrictions, None).await {
                    unreadable.insert(ancestor);
                    out.problems.push(p);
                }
                let space = text(r, "/space/key");
                let acl = self.acl(r, &space, &restrictions);
                match self.page_doc(r, &page.base, acl) {
                    Some(d) => {
                        // Private for now; read again next sync.
                        if ancestors.iter().any(|a| unreadable.contains(a)) {
                            failed.insert(d.id.clone(), id.to_owned());
                        }
                        newest = newest.max(d.updated.unwrap_or(0));
                        out.changed.push(d);
                    }
                    None => out.skipped += 1,
                }
            }
            next = page.next;
        }
        // Deletion: a full sync listed every page already.
        let present = match since {
            None => listed,
            Some(_) => self.ids(&scope).await.map_err(|e| fail("listing page ids", e))?,
        };
        out.present = Some(present);
        out.retries = self.api.take_retries();
        out.cursor = window.cursor(newest, &out.changed, &failed);
        Ok(out)
    }
}

impl Connector for Confluence {
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
impl LiveSource for Confluence {
    fn name(&self) -> &str {
        &self.name
    }

    async fn search(
        &self,
        query: &str,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Document>, HttpError> {
        let cql = format!("text ~ {} AND {}", quote(query), self.scope());
        let page = self.results(&self.search_path(&cql, limit.clamp(1, PAGE), Some(EXPAND)), Some(deadline)).await?;
        let ancestors: Vec<String> = page.results.iter().filter_map(Self::ancestor_ids).flatten().collect();
        let mut restrictions = HashMap::new();
        for (_, p) in self.ancestors(&ancestors, &mut restrictions, Some(deadline)).await {
            tracing::debug!(source = %self.name, problem = %p, "live search: page kept private");
        }
        Ok(page
            .results
            .iter()
            .filter_map(|r| self.page_doc(r, &page.base, self.acl(r, &text(r, "/space/key"), &restrictions)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn window_dates_start_a_margin_early_to_the_minute() {
        // 2026-11-21T12:34:56Z
        assert_eq!(Window::from_date(1_795_264_496), "2026/11/20 22:34");
    }

    #[test]
    fn next_links_resolve_under_the_context() {
        let v = json!({"_links": {"context": "/wiki", "next": "/rest/api/content/search?cursor=a"}});
        assert_eq!(next_page(&v).as_deref(), Some("/wiki/rest/api/content/search?cursor=a"));
        let v = json!({"_links": {"context": "/wiki", "next": "/wiki/rest/api/content/search?cursor=a"}});
        assert_eq!(next_page(&v).as_deref(), Some("/wiki/rest/api/content/search?cursor=a"));
        assert_eq!(next_page(&json!({"_links": {}})), None);
    }

    #[test]
    fn restrictions_read_users_groups_and_unknowns() {
        let r = json!({"user": {"results": [{"accountId": "a1"}]}, "group": {"results": [{"name": "hr"}]}});
        assert_eq!(restriction(Some(&r)), Restriction::To(["group:hr".to_owned(), "user:a1".to_owned()].into()));
        let open = json!({"user": {"results": []}, "group": {"results": []}});
        assert_eq!(restriction(Some(&open)), Restriction::Open);
        assert_eq!(restriction(Some(&json!({"user": {"_expandable": {}}}))), Restriction::Unknown);
        assert_eq!(restriction(None), Restriction::Unknown);
    }
}
