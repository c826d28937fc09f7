//! Microsoft Graph v1.0: the files of a SharePoint or OneDrive drive, and
//! optionally the pages of a SharePoint site.
//!
//! - Files: `GET /drives/{drive}/root/delta`, following `@odata.nextLink`
//!   until `@odata.deltaLink`, which the cursor keeps; the next sync GETs
//!   the delta link and sees only what changed (with `Prefer:
//!   deltashowremovedasdeleted, deltatraversepermissiongaps,
//!   deltashowsharingchanges`, so a change of sharing alone also reports the
//!   item). An item may appear more than once in a delta; the last one
//!   counts. Items with a `deleted` facet are deleted; folders are passed
//!   over; files named `.md`, `.txt`, `.html`, `.htm`, `.csv` or `.json`
//!   (up to 4 MiB, UTF-8) are read from
//!   `GET /drives/{drive}/items/{id}/content` (which answers 302 to a
//!   download URL; the client follows it), other files are counted skipped.
//!   A 410 Gone on the delta link (the service's `resyncRequired`) starts
//!   over with a full delta. A full delta (first sync or resync) also
//!   deletes indexed files it did not list.
//! - Permissions: `GET /drives/{drive}/items/{id}/permissions`, every
//!   page: `grantedToV2.user.id` → `user:<id>`, `grantedToV2.group` or
//!   `siteGroup` display name → `group:<name>`, the same for each of
//!   `grantedToIdentitiesV2`, and a sharing link of scope `organization` or
//!   `anonymous` → `everyone`; plus the source's `readers`. When the call
//!   fails the file is indexed private (readable by nobody), the failure is
//!   reported, and the file is read again next sync (by
//!   `GET /drives/{drive}/items/{id}`); so is a file whose content could not
//!   be read.
//! - Site pages (with `site`):
//!   `GET /sites/{site}/pages/microsoft.graph.sitePage?$expand=canvasLayout`,
//!   paged by `@odata.nextLink`, listed in full every sync (so deleted pages
//!   are noticed); the body is the text of every web part's `innerHtml`. A
//!   page is read again when it changed since the cursor's time or is not
//!   indexed. Pages inherit the site's permissions, which are not a
//!   per-page list: they are readable by the source's `readers`. A relative
//!   `webUrl` is resolved against the site's (`GET /sites/{site}`).
//! - Live search: `GET /drives/{drive}/root/search(q='<query>')`. Search
//!   hits carry no permissions, and listing them to the configured
//!   readers would show every reader the names of files shared with only a
//!   few, so each hit's permissions are read (concurrently, by the same
//!   deadline) and a hit whose permissions are not read in time stays
//!   private. The body of a live hit is its name (the search returns no
//!   content).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use plexus_core::http::{HttpError, HttpRequest};
use serde_json::Value;

use super::{Api, encode, problem, rfc3339, text};
use crate::connector::{self, Connector, Cursor, Fetched, Progress, SyncError, SyncReport};
use crate::extract;
use crate::extract::html as html_text;
use crate::federated::LiveSource;
use crate::index::{Document, Index};

/// A configured drive (and optionally the site whose pages to read).
#[derive(Debug)]
pub struct Graph {
    pub name: String,
    pub api: Arc<Api>,
    /// Drive id (`/drives/{drive}`).
    pub drive: String,
    /// Site id whose pages to read too (`/sites/{site}/pages`).
    pub site: Option<String>,
    /// Readers added to every item's own permissions.
    pub readers: Vec<String>,
}

const TEXT: &[&str] = &[".md", ".txt", ".html", ".htm", ".csv", ".json"];
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const PREFER: &str = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges";

/// What the cursor token keeps.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// The delta link to read changes from.
    #[serde(default)]
    delta: Option<String>,
    /// Items to read again: part of them could not be read.
    #[serde(default)]
    retry: BTreeSet<String>,
}

/// Follow a next link unless it was followed already.
fn advance(visited: &mut HashSet<String>, link: &str) -> Result<String, HttpError> {
    if visited.insert(link.to_owned()) {
        Ok(link.to_owned())
    } else {
        Err(HttpError::Garbage("the next page is one already read".into()))
    }
}

/// The principals one permission grants.
fn grants(p: &Value, acl: &mut BTreeSet<String>) {
    let identities = p
        .get("grantedToV2")
        .into_iter()
        .chain(p.get("grantedToIdentitiesV2").and_then(Value::as_array).map(|l| l.iter()).into_iter().flatten());
    for i in identities {
        if let Some(id) = i.pointer("/user/id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            acl.insert(format!("user:{id}"));
        }
        for g in ["/group/displayName", "/siteGroup/displayName"] {
            if let Some(name) = i.pointer(g).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                acl.insert(format!("group:{name}"));
            }
        }
    }
    if matches!(p.pointer("/link/scope").and_then(Value::as_str), Some("organization" | "anonymous")) {
        acl.insert("everyone".into());
    }
}

/// Every `innerHtml` under a page's canvas, in order.
fn inner_html(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("innerHtml", Value::String(s)) => {
                        out.push_str(s);
                        out.push('\n');
                    }
                    _ => inner_html(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| inner_html(x, out)),
        _ => {}
    }
}

fn extension_ok(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    TEXT.iter().any(|e| lower.ends_with(e))
}

fn author(v: &Value) -> String {
    Some(text(v, "/createdBy/user/displayName"))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| text(v, "/lastModifiedBy/user/displayName"))
}

impl Graph {
    fn item_id(&self, id: &str) -> String {
        format!("{}:item/{id}", self.name)
    }

    async fn get(&self, path: &str, deadline: Option<tokio::time::Instant>) -> Result<Value, HttpError> {
        match deadline {
            Some(d) => self.api.get_json_by(path, d).await,
            None => self.api.get_json(path).await.map(|(v, _)| v),
        }
    }

    /// Read a delta from `link` to its end: the items by id (the last
    /// occurrence of each) and the next delta link.
    async fn delta(&self, link: &str) -> Result<(BTreeMap<String, Value>, String), HttpError> {
        let mut items = BTreeMap::new();
        let mut visited = HashSet::new();
        let mut next = advance(&mut visited, link)?;
        loop {
            let req = HttpRequest::get(self.api.url(&next)).header("prefer", PREFER);
            let v = self.api.send(req, None).await?.json()?;
            let page = v
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| HttpError::Garbage("delta: no `value` list".into()))?;
            for item in page {
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    items.insert(id.to_owned(), item.clone());
                }
            }
            if let Some(n) = v.get("@odata.nextLink").and_then(Value::as_str) {
                next = advance(&mut visited, n)?;
                continue;
            }
            let Some(delta) = v.get("@odata.deltaLink").and_then(Value::as_str) else {
                return Err(HttpError::Garbage("delta: neither a next link nor a delta link".into()));
            };
            return Ok((items, delta.to_owned()));
        }
    }

    /// Who may read item `id`: its permissions and the source's readers.
    async fn permissions(&self, id: &str, deadline: Option<tokio::time::Instant>) -> Result<Vec<String>, HttpError> {
        let mut acl: BTreeSet<String> = self.readers.iter().cloned().collect();
        let mut visited = HashSet::new();
        let first = format!("drives/{}/items/{}/permissions", encode(&self.drive), encode(id));
        let mut next = Some(advance(&mut visited, &first)?);
        while let Some(path) = next.take() {
            let v = self.get(&path, deadline).await?;
            let list = v
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| HttpError::Garbage("permissions: no `value` list".into()))?;
            for p in list {
                grants(p, &mut acl);
            }
            if let Some(n) = v.get("@odata.nextLink").and_then(Value::as_str) {
                next = Some(advance(&mut visited, n)?);
            }
        }
        Ok(acl.into_iter().collect())
    }

    /// The text of file `id`, or `None` when it is not UTF-8 text.
    async fn content(&self, id: &str) -> Result<Option<String>, HttpError> {
        let path = format!("drives/{}/items/{}/content", encode(&self.drive), encode(id));
        let r = self.api.send(HttpRequest::get(self.api.url(&path)), None).await?;
        if r.status != 200 {
            return Err(HttpError::Garbage(format!("content answered {} (redirect not followed)", r.status)));
        }
        let bytes = r.body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&r.body);
        if bytes.contains(&0) {
            return Ok(None);
        }
        Ok(String::from_utf8(bytes.to_vec()).ok())
    }

    fn file_doc(&self, item: &Value, content: &str, acl: Vec<String>) -> Option<Document> {
        let id = item.get("id")?.as_str()?;
        let name = item.get("name")?.as_str()?;
        let lower = name.to_ascii_lowercase();
        let e = if lower.ends_with(".html") || lower.ends_with(".htm") {
            html_text(content)
        } else if lower.ends_with(".md") {
            extract::markdown(content, name)
        } else if lower.ends_with(".txt") {
            extract::plain(content, name)
        } else {
            extract::Extracted { title: name.to_owned(), body: content.to_owned(), ..extract::Extracted::default() }
        };
        let folder = text(item, "/parentReference/path");
        let folder = folder.split_once("root:").map_or("", |(_, p)| p).trim_matches('/');
        Some(Document {
            id: self.item_id(id),
            source: self.name.clone(),
            title: if e.title.is_empty() { name.to_owned() } else { e.title },
            headings: e.headings,
            body: e.body,
            path: if folder.is_empty() { name.to_owned() } else { format!("{folder}/{name}") },
            space: self.drive.clone(),
            kind: "file".into(),
            author: author(item),
            updated: item.get("lastModifiedDateTime").and_then(rfc3339),
            url: text(item, "/webUrl"),
            acl,
        })
    }

    /// Read one changed file into `out`; returns whether to read it again
    /// next sync.
    async fn file(&self, id: &str, item: &Value, known: &HashSet<String>, out: &mut Fetched) -> bool {
        let name = text(item, "/name");
        let size = item.get("size").and_then(Value::as_u64).unwrap_or(0);
        if !extension_ok(&name) || size > MAX_FILE_BYTES {
            out.skipped += 1;
            // Renamed away from text, or grown too large: no longer indexed.
            if known.contains(&self.item_id(id)) {
                out.deleted.push(self.item_id(id));
            }
            return false;
        }
        let content = match self.content(id).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                out.skipped += 1;
                return false;
            }
            Err(e) => {
                out.problems.push(problem(format!("content of {name}"), &e));
                return true;
            }
        };
        let (acl, again) = match self.permissions(id, None).await {
            Ok(acl) => (acl, false),
            Err(e) => {
                out.problems.push(problem(format!("permissions of {name} (indexed private)"), &e));
                (Vec::new(), true)
            }
        };
        match self.file_doc(item, &content, acl) {
            Some(d) => out.changed.push(d),
            None => out.skipped += 1,
        }
        again
    }

    /// The site's web URL, for pages whose `webUrl` is relative.
    async fn site_url(&self, site: &str) -> Result<String, HttpError> {
        let v = self.get(&format!("sites/{}", encode(site)), None).await?;
        Ok(text(&v, "/webUrl"))
    }

    /// Every site page: changed ones (since `since`, or not indexed) into
    /// `out`; returns the ids listed and the newest change.
    async fn pages(
        &self,
        site: &str,
        since: Option<i64>,
        known: &HashSet<String>,
        out: &mut Fetched,
    ) -> Result<(HashSet<String>, i64), HttpError> {
        let mut listed = HashSet::new();
        let mut newest = since.unwrap_or(0);
        let mut site_url: Option<String> = None;
        let mut visited = HashSet::new();
        let first = format!("sites/{}/pages/microsoft.graph.sitePage?$expand=canvasLayout", encode(site));
        let mut next = Some(advance(&mut visited, &first)?);
        while let Some(path) = next.take() {
            let v = self.get(&path, None).await?;
            let pages = v
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| HttpError::Garbage("pages: no `value` list".into()))?;
            for p in pages {
                out.seen += 1;
                let Some(id) = p.get("id").and_then(Value::as_str) else {
                    out.skipped += 1;
                    continue;
                };
                let doc_id = format!("{}:page/{id}", self.name);
                listed.insert(doc_id.clone());
                let updated = p.get("lastModifiedDateTime").and_then(rfc3339);
                newest = newest.max(updated.unwrap_or(0));
                let fresh = match (since, updated) {
                    (Some(s), Some(u)) => u >= s,
                    _ => true,
                };
                if !fresh && known.contains(&doc_id) {
                    continue;
                }
                let mut url = text(p, "/webUrl");
                if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
                    if site_url.is_none() {
                        site_url = Some(self.site_url(site).await.unwrap_or_else(|e| {
                            out.problems.push(problem("the site's web URL", &e));
                            String::new()
                        }));
                    }
                    if let Some(base) = site_url.as_deref().filter(|b| !b.is_empty()) {
                        url = format!("{}/{}", base.trim_end_matches('/'), url.trim_start_matches('/'));
                    }
                }
                let mut html = String::new();
                inner_html(p.get("canvasLayout").unwrap_or(&Value::Null), &mut html);
                let e = html_text(&html);
                let title = Some(text(p, "/title")).filter(|t| !t.is_empty()).unwrap_or_else(|| text(p, "/name"));
                out.changed.push(Document {
                    id: doc_id,
                    source: self.name.clone(),
                    title,
                    headings: e.headings,
                    body: e.body,
                    path: text(p, "/name"),
                    space: site.to_owned(),
                    kind: "page".into(),
                    author: author(p),
                    updated,
                    url,
                    acl: self.readers.clone(),
                });
            }
            if let Some(n) = v.get("@odata.nextLink").and_then(Value::as_str) {
                next = Some(advance(&mut visited, n)?);
            }
        }
        Ok((listed, newest))
    }

    async fn fetch(&self, cursor: Option<&Cursor>, known: &HashSet<String>) -> Result<Fetched, SyncError> {
        let state: State =
            cursor.and_then(|c| c.token.as_deref()).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let root = format!("drives/{}/root/delta", encode(&self.drive));
        let fail = |what: &str, e: HttpError| SyncError::source(&self.name, format!("{what}: {e}"));
        let (mut items, delta, full) = match state.delta.as_deref() {
            Some(link) => match self.delta(link).await {
                Err(HttpError::Refused { status: 410, .. }) => {
                    tracing::info!(source = %self.name, "delta link expired (410 Gone): reading the whole drive again");
                    let (items, delta) = self.delta(&root).await.map_err(|e| fail("delta", e))?;
                    (items, delta, true)
                }
                r => {
                    let (items, delta) = r.map_err(|e| fail("delta", e))?;
                    (items, delta, false)
                }
            },
            None => {
                let (items, delta) = self.delta(&root).await.map_err(|e| fail("delta", e))?;
                (items, delta, true)
            }
        };
        let mut out = Fetched::default();
        let mut retry = BTreeSet::new();
        if !full {
            let again: Vec<&String> = state.retry.iter().filter(|id| !items.contains_key(*id)).collect();
            for id in again {
                match self.get(&format!("drives/{}/items/{}", encode(&self.drive), encode(id)), None).await {
                    Ok(item) => {
                        items.insert(id.clone(), item);
                    }
                    Err(HttpError::NotFound(_)) => out.deleted.push(self.item_id(id)),
                    Err(e) => {
                        out.problems.push(problem(format!("item {id}"), &e));
                        retry.insert(id.clone());
                    }
                }
            }
        }
        let mut listed = HashSet::new();
        for (id, item) in &items {
            if item.get("deleted").is_some() {
                if known.contains(&self.item_id(id)) {
                    out.deleted.push(self.item_id(id));
                }
                continue;
            }
            if item.get("file").is_none() {
                continue;
            }
            out.seen += 1;
            listed.insert(self.item_id(id));
            if self.file(id, item, known, &mut out).await {
                retry.insert(id.clone());
            }
        }
        if full {
            let prefix = format!("{}:item/", self.name);
            out.deleted.extend(known.iter().filter(|k| k.starts_with(&prefix) && !listed.contains(*k)).cloned());
        }
        let mut newest = cursor.map_or(0, Cursor::secs);
        if let Some(site) = self.site.as_deref() {
            let since = cursor.filter(|c| c.modified_ns > 0).map(Cursor::secs);
            let (pages, latest) = self.pages(site, since, known, &mut out).await.map_err(|e| fail("site pages", e))?;
            out.present = Some(pages);
            out.present_scope = Some(format!("{}:page/", self.name));
            newest = newest.max(latest);
        }
        out.retries = self.api.take_retries();
        let state = State { delta: Some(delta), retry };
        out.cursor =
            Cursor { modified_ns: i128::from(newest) * 1_000_000_000, token: serde_json::to_string(&state).ok() };
        Ok(out)
    }
}

impl Connector for Graph {
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
        let known: HashSet<String> = index.ids_of_source(tenant, &self.name)?.into_iter().collect();
        connector::fetch_and_apply(index, tenant, &self.name, self.fetch(cursor, &known))
    }
}

#[async_trait::async_trait]
impl LiveSource for Graph {
    fn name(&self) -> &str {
        &self.name
    }

    async fn search(
        &self,
        query: &str,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Document>, HttpError> {
        let q = encode(&query.replace('\'', "''"));
        let path = format!("drives/{}/root/search(q='{q}')?$top={}", encode(&self.drive), limit.clamp(1, 200));
        let v = self.api.get_json_by(&path, deadline).await?;
        let items = v
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| HttpError::Garbage("search: no `value` list".into()))?;
        let files: Vec<&Value> = items.iter().filter(|i| i.get("file").is_some()).take(limit).collect();
        let acls = futures::future::join_all(files.iter().map(|i| async move {
            match i.get("id").and_then(Value::as_str) {
                // Not read in time, or not at all: private.
                Some(id) => self.permissions(id, Some(deadline)).await.unwrap_or_default(),
                None => Vec::new(),
            }
        }))
        .await;
        Ok(files.into_iter().zip(acls).filter_map(|(i, acl)| self.file_doc(i, &text(i, "/name"), acl)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn permissions_grant_users_groups_and_organization_links() {
        let mut acl = BTreeSet::new();
        grants(&json!({"roles": ["read"], "grantedToV2": {"user": {"id": "u1", "displayName": "Sato"}}}), &mut acl);
        grants(
            &json!({"grantedToIdentitiesV2": [{"group": {"displayName": "HR"}}, {"siteGroup": {"displayName": "Owners"}}]}),
            &mut acl,
        );
        grants(&json!({"link": {"scope": "users", "type": "view"}}), &mut acl);
        assert_eq!(acl.iter().map(String::as_str).collect::<Vec<_>>(), ["group:HR", "group:Owners", "user:u1"]);
        grants(&json!({"link": {"scope": "organization", "type": "view"}}), &mut acl);
        assert!(acl.contains("everyone"));
    }

    #[test]
    fn canvas_text_comes_from_every_web_part() {
        let canvas = json!({"horizontalSections": [{"columns": [{"webparts": [
            {"@odata.type": "#microsoft.graph.textWebPart", "innerHtml": "<h2>経費</h2><p>精算</p>"},
            {"@odata.type": "#microsoft.graph.standardWebPart", "data": {}}]}]}],
            "verticalSection": {"webparts": [{"innerHtml": "<p>side</p>"}]}});
        let mut html = String::new();
        inner_html(&canvas, &mut html);
        assert_eq!(html_text(&html).body, "経費\n精算\nside");
    }
}
