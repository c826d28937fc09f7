//! Jira Cloud: the issues of configured projects, with their comments,
//! over REST API v3.
//!
//! - Issues: the enhanced JQL search
//!   `GET /rest/api/3/search/jql?jql=<JQL>&maxResults=100&fields=summary,description,comment,updated,project,reporter,security,issuetype[&nextPageToken=…]`,
//!   paged by `nextPageToken` until `isLast`. The JQL is
//!   `project in ("A","B")`, plus `AND (<jql>)` when configured, then
//!   `ORDER BY updated ASC`.
//! - Text: descriptions and comments are Atlassian Document Format; a small
//!   walker keeps text, mentions (their `@name`), emoji, card URLs, and a
//!   line per paragraph, heading, list item, table cell or hard break. The
//!   body is the description, then each comment as `Name: text`, except
//!   comments restricted to a role or group (`visibility`). Comments
//!   beyond those the search returns inline are read from
//!   `GET /rest/api/3/issue/{key}/comment?startAt=…&maxResults=100`; when
//!   that fails the issue is indexed with what it has, the failure is
//!   reported, and the issue is read again next sync.
//! - Incremental: the cursor is the newest `updated` indexed; the next sync
//!   adds `AND updated >= "yyyy/MM/dd HH:mm"`, starting early enough for
//!   any profile time zone (see the Confluence connector's window: issues
//!   read again at the same update time count as unchanged).
//! - Deletions: every sync lists every issue key (same JQL, `fields=id`,
//!   `maxResults=1000`); indexed issues beyond them are deleted. A full sync
//!   reads that list from its own pages.
//! - Permissions: Jira's own (project roles, permission schemes) are Jira
//!   accounts, not this server's principals, so an issue is readable by
//!   `space_readers[project key]`, else the source's `readers`. An issue
//!   with an issue security level is private unless `space_readers` has
//!   `"<PROJECT>/<level name>"`.
//! - Times: Jira writes `2026-11-20T10:15:30.000+0000` (no colon in the
//!   offset), which is not RFC 3339; both forms are read.
//! - Live search: `text ~ "<query>"` and the projects, by the deadline.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use plexus_core::http::HttpError;
use serde_json::Value;

use super::confluence::{Window, quote};
use super::{Api, encode, problem, rfc3339, text};
use crate::connector::{self, Connector, Cursor, Fetched, Progress, SyncError, SyncReport};
use crate::federated::LiveSource;
use crate::index::{Document, Index};

/// A configured Jira site.
#[derive(Debug)]
pub struct Jira {
    pub name: String,
    pub api: Arc<Api>,
    /// Project keys to read (with `jql`, an extra JQL condition).
    pub projects: Vec<String>,
    pub jql: Option<String>,
    /// Readers of an issue, unless its project has its own in `space_readers`.
    pub readers: Vec<String>,
    pub space_readers: BTreeMap<String, Vec<String>>,
}

const FIELDS: &str = "summary,description,comment,updated,project,reporter,security,issuetype";
const PAGE: usize = 100;
const LIST_PAGE: usize = 1000;

/// ADF nodes that end a line.
const BLOCKS: &[&str] = &[
    "paragraph",
    "heading",
    "listItem",
    "codeBlock",
    "blockquote",
    "panel",
    "rule",
    "tableCell",
    "tableHeader",
    "tableRow",
    "taskItem",
    "decisionItem",
    "mediaSingle",
    "expand",
];

fn walk(node: &Value, out: &mut String) {
    let kind = node.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "text" => out.push_str(node.get("text").and_then(Value::as_str).unwrap_or_default()),
        "hardBreak" => out.push('\n'),
        "mention" | "emoji" | "status" => out.push_str(&text(node, "/attrs/text")),
        "inlineCard" | "blockCard" | "embedCard" => out.push_str(&text(node, "/attrs/url")),
        _ => {}
    }
    if let Some(children) = node.get("content").and_then(Value::as_array) {
        for c in children {
            walk(c, out);
        }
    }
    if BLOCKS.contains(&kind) && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Plain text of an Atlassian Document Format value (a string is kept as it
/// is; anything else is empty).
pub fn adf_text(doc: &Value) -> String {
    let mut out = String::new();
    match doc {
        Value::String(s) => out.push_str(s),
        Value::Object(_) => walk(doc, &mut out),
        _ => {}
    }
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

/// A Jira time (`2026-11-20T10:15:30.000+0000`) or an RFC 3339 one, as
/// Unix seconds.
pub fn jira_time(v: &Value) -> Option<i64> {
    use time::macros::format_description;
    rfc3339(v).or_else(|| {
        let s = v.as_str()?;
        let with_ms = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
        );
        let plain = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
        );
        time::OffsetDateTime::parse(s, &with_ms)
            .or_else(|_| time::OffsetDateTime::parse(s, &plain))
            .ok()
            .map(|t| t.unix_timestamp())
    })
}

/// One page of a JQL search.
struct Page {
    issues: Vec<Value>,
    next: Option<String>,
}

impl Jira {
    /// The projects and the extra JQL.
    fn scope(&self) -> String {
        let mut parts = Vec::new();
        if !self.projects.is_empty() {
            let keys: Vec<String> = self.projects.iter().map(|p| quote(p)).collect();
            parts.push(format!("project in ({})", keys.join(",")));
        }
        if let Some(extra) = self.jql.as_deref().map(str::trim).filter(|j| !j.is_empty()) {
            parts.push(format!("({extra})"));
        }
        if parts.is_empty() {
            // The enhanced search refuses unbounded queries.
            parts.push("created >= \"1970/01/01\"".into());
        }
        parts.join(" AND ")
    }

    async fn search_page(
        &self,
        jql: &str,
        fields: &str,
        max: usize,
        token: Option<&str>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Page, HttpError> {
        let mut path = format!("rest/api/3/search/jql?jql={}&maxResults={max}&fields={}", encode(jql), encode(fields));
        if let Some(t) = token {
            path.push_str(&format!("&nextPageToken={}", encode(t)));
        }
        let v = match deadline {
            Some(d) => self.api.get_json_by(&path, d).await?,
            None => self.api.get_json(&path).await?.0,
        };
        let issues = v
            .get("issues")
            .and_then(Value::as_array)
            .ok_or_else(|| HttpError::Garbage("issue search: no `issues` list".into()))?
            .clone();
        let last = v.get("isLast").and_then(Value::as_bool).unwrap_or(false);
        let next = v.get("nextPageToken").and_then(Value::as_str).filter(|t| !last && !t.is_empty()).map(str::to_owned);
        Ok(Page { issues, next })
    }

    /// Who may read an issue of `project` with security level `security`.
    fn acl(&self, project: &str, security: Option<&Value>) -> Vec<String> {
        match security.filter(|s| !s.is_null()) {
            Some(level) => {
                let level = text(level, "/name");
                self.space_readers.get(&format!("{project}/{level}")).cloned().unwrap_or_default()
            }
            None => self.space_readers.get(project).unwrap_or(&self.readers).clone(),
        }
    }

    fn issue_doc(&self, issue: &Value, comments: &[Value]) -> Option<Document> {
        let key = issue.get("key")?.as_str()?;
        let f = issue.get("fields")?;
        let summary = f.get("summary")?.as_str()?;
        let mut body = adf_text(f.get("description").unwrap_or(&Value::Null));
        // A comment restricted to a role or group (`visibility`) is not
        // for every reader of the issue: left out.
        for c in comments.iter().filter(|c| c.get("visibility").is_none_or(Value::is_null)) {
            let said = adf_text(c.get("body").unwrap_or(&Value::Null));
            if !said.is_empty() {
                body.push_str(&format!("\n\n{}: {said}", text(c, "/author/displayName")));
            }
        }
        let project = text(f, "/project/key");
        let kind =
            Some(text(f, "/issuetype/name").to_lowercase()).filter(|k| !k.is_empty()).unwrap_or_else(|| "issue".into());
        Some(Document {
            id: format!("{}:issue/{key}", self.name),
            source: self.name.clone(),
            title: format!("{key} {summary}"),
            headings: Vec::new(),
            body: body.trim_start().to_owned(),
            path: key.to_owned(),
            acl: self.acl(&project, f.get("security")),
            space: project,
            kind,
            author: text(f, "/reporter/displayName"),
            updated: f.get("updated").and_then(jira_time),
            url: format!("{}/browse/{key}", self.api.base()),
        })
    }

    /// The comments the search returned inline.
    fn inline_comments(issue: &Value) -> (Vec<Value>, usize) {
        let c = issue.pointer("/fields/comment");
        let list = c.and_then(|c| c.get("comments")).and_then(Value::as_array).cloned().unwrap_or_default();
        let total = c.and_then(|c| c.get("total")).and_then(Value::as_u64).map_or(list.len(), |t| t as usize);
        (list, total)
    }

    /// Comments `from..total` of issue `key`.
    async fn more_comments(&self, key: &str, from: usize, total: usize) -> Result<Vec<Value>, HttpError> {
        let mut all = Vec::new();
        let mut at = from;
        while at < total {
            let (v, _) = self
                .api
                .get_json(&format!("rest/api/3/issue/{}/comment?startAt={at}&maxResults=100", encode(key)))
                .await?;
            let page = v
                .get("comments")
                .and_then(Value::as_array)
                .ok_or_else(|| HttpError::Garbage("comments: no `comments` list".into()))?;
            if page.is_empty() {
                break;
            }
            at += page.len();
            all.extend(page.iter().cloned());
        }
        Ok(all)
    }

    /// Every issue key in scope (deletion detection).
    async fn ids(&self, scope: &str) -> Result<HashSet<String>, HttpError> {
        let mut ids = HashSet::new();
        let mut tokens = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.search_page(scope, "id", LIST_PAGE, token.as_deref(), None).await?;
            for i in &page.issues {
                let key = i
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| HttpError::Garbage("an issue without a key".into()))?;
                ids.insert(format!("{}:issue/{key}", self.name));
            }
            match page.next {
                Some(t) if tokens.insert(t.clone()) => token = Some(t),
                Some(_) => return Err(HttpError::Garbage("issue search: the next page is one already read".into())),
                None => return Ok(ids),
            }
        }
    }

    async fn fetch(&self, cursor: Option<&Cursor>) -> Result<Fetched, SyncError> {
        let (since, window) = Window::resume(cursor);
        let scope = self.scope();
        let jql = match since {
            Some(s) => {
                let mut changed = format!("updated >= {}", quote(&Window::from_date(s)));
                let keys: Vec<String> = window.retry().iter().map(|k| quote(k)).collect();
                if !keys.is_empty() {
                    changed = format!("({changed} OR key in ({}))", keys.join(","));
                }
                format!("{scope} AND {changed} ORDER BY updated ASC")
            }
            None => format!("{scope} ORDER BY updated ASC"),
        };
        let fail = |what: &str, e: HttpError| SyncError::source(&self.name, format!("{what}: {e}"));
        let mut out = Fetched::default();
        let mut newest = since.unwrap_or(0);
        let mut listed = HashSet::new();
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut tokens = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .search_page(&jql, FIELDS, PAGE, token.as_deref(), None)
                .await
                .map_err(|e| fail("issue search", e))?;
            for issue in &page.issues {
                out.seen += 1;
                let Some(key) = issue.get("key").and_then(Value::as_str) else {
                    out.skipped += 1;
                    continue;
                };
                let doc_id = format!("{}:issue/{key}", self.name);
                listed.insert(doc_id.clone());
                let updated = issue.pointer("/fields/updated").and_then(jira_time);
                if window.unchanged(&doc_id, updated) && !window.retry().contains(key) {
                    continue;
                }
                let (mut comments, total) = Self::inline_comments(issue);
                if total > comments.len() {
                    match self.more_comments(key, comments.len(), total).await {
                        Ok(more) => comments.extend(more),
                        Err(e) => {
                            out.problems.push(problem(format!("comments of {key}"), &e));
                            failed.insert(doc_id.clone(), key.to_owned());
                        }
                    }
                }
                match self.issue_doc(issue, &comments) {
                    Some(d) => {
                        newest = newest.max(d.updated.unwrap_or(0));
                        out.changed.push(d);
                    }
                    None => out.skipped += 1,
                }
            }
            match page.next {
                Some(t) if tokens.insert(t.clone()) => token = Some(t),
                Some(_) => {
                    return Err(SyncError::source(&self.name, "issue search: the next page is one already read"));
                }
                None => break,
            }
        }
        let present = match since {
            None => listed,
            Some(_) => self.ids(&scope).await.map_err(|e| fail("listing issue keys", e))?,
        };
        out.present = Some(present);
        out.retries = self.api.take_retries();
        out.cursor = window.cursor(newest, &out.changed, &failed);
        Ok(out)
    }
}

impl Connector for Jira {
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
impl LiveSource for Jira {
    fn name(&self) -> &str {
        &self.name
    }

    async fn search(
        &self,
        query: &str,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Document>, HttpError> {
        let jql = format!("text ~ {} AND {}", quote(query), self.scope());
        let page = self.search_page(&jql, FIELDS, limit.clamp(1, PAGE), None, Some(deadline)).await?;
        Ok(page.issues.iter().filter_map(|i| self.issue_doc(i, &Self::inline_comments(i).0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adf_becomes_lines_with_mentions_and_breaks() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "手順"}]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Ask "}, {"type": "mention", "attrs": {"id": "a1", "text": "@Sato"}},
                {"type": "text", "text": " first"}, {"type": "hardBreak"}, {"type": "text", "text": "then deploy"}]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "two"}]}]}]}
        ]});
        assert_eq!(adf_text(&doc), "手順\nAsk @Sato first\nthen deploy\none\ntwo");
        assert_eq!(adf_text(&Value::Null), "");
        assert_eq!(adf_text(&json!("wiki text")), "wiki text");
    }

    #[test]
    fn jira_times_with_and_without_colon() {
        assert_eq!(jira_time(&json!("2026-11-21T12:34:56.000+0000")), Some(1_795_264_496));
        assert_eq!(jira_time(&json!("2026-11-21T21:34:56.000+0900")), Some(1_795_264_496));
        assert_eq!(jira_time(&json!("2026-11-21T12:34:56Z")), Some(1_795_264_496));
        assert_eq!(jira_time(&json!("yesterday")), None);
    }
}
