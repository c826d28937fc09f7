//! SaaS connectors against local fixtures of their APIs: GitHub, Confluence,
//! Jira and Microsoft Graph. Each fixture is a small axum server with the
//! documented response shapes, paging and error codes, state a test changes
//! between syncs, a log of every request, and faults a test injects (429
//! with `Retry-After`, 5xx, a body that is not JSON, a route that hangs). It
//! checks the `Authorization` header and answers 401 to a wrong one. The
//! client is the server crate's real one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use plexus_core::http::{HttpClient, RetryPolicy};
use plexus_knowledge::connector::{Connector, Cursor, SyncError, SyncReport};
use plexus_knowledge::federated::{self, Live, LiveSource, Status};
use plexus_knowledge::saas::confluence::Confluence;
use plexus_knowledge::saas::github::GitHub;
use plexus_knowledge::saas::graph::Graph;
use plexus_knowledge::saas::jira::Jira;
use plexus_knowledge::saas::{Api, Credential, encode};
use plexus_knowledge::{Document, Filters, Index, Reader, Results};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The fixture server.

#[derive(Debug, Clone, Copy)]
enum Fault {
    Status(u16, Option<&'static str>),
    Garbage,
    Hang,
}

struct Req {
    path: String,
    query: Vec<(String, String)>,
    base: String,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Json(Value),
    /// JSON with a `Link` header (GitHub paging).
    Linked(Value, String),
    Redirect(String),
    Text(String),
    Status(u16, Value),
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(v) => axum::Json(v).into_response(),
            Reply::Linked(v, link) => ([("link", link)], axum::Json(v)).into_response(),
            Reply::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
            Reply::Text(t) => t.into_response(),
            Reply::Status(s, v) => (StatusCode::from_u16(s).unwrap(), axum::Json(v)).into_response(),
        }
    }
}

fn not_found() -> Reply {
    Reply::Status(404, json!({"message": "Not Found"}))
}

#[derive(Default)]
struct Ctl {
    log: Vec<String>,
    faults: Vec<(String, Fault)>,
}

struct Fixture<M> {
    base: String,
    model: Arc<Mutex<M>>,
    ctl: Arc<Mutex<Ctl>>,
}

/// Percent-decoding (the fixtures read what the connectors encoded).
fn pct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<M: Send + 'static> Fixture<M> {
    /// Serve `route` over `model` on 127.0.0.1; requests must carry
    /// `Authorization: <auth>` (except `/download/…`, pre-authenticated
    /// URLs like Graph's).
    async fn start(model: M, auth: &str, route: fn(&mut M, &Req) -> Reply) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let model = Arc::new(Mutex::new(model));
        let ctl = Arc::new(Mutex::new(Ctl::default()));
        let (m, c, b, auth) = (Arc::clone(&model), Arc::clone(&ctl), base.clone(), auth.to_owned());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let (m, c, b, auth) = (Arc::clone(&m), Arc::clone(&c), b.clone(), auth.clone());
            async move {
                let path = pct(uri.path());
                let raw = uri.query().unwrap_or("");
                let line = if raw.is_empty() { path.clone() } else { format!("{path}?{}", pct(raw)) };
                let fault = {
                    let mut c = c.lock().unwrap();
                    c.log.push(line.clone());
                    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if !path.starts_with("/download/") && given != Some(auth.as_str()) {
                        return Reply::Status(401, json!({"message": "Bad credentials"})).into_response();
                    }
                    let at = c.faults.iter().position(|(p, _)| line.starts_with(p.as_str()));
                    at.map(|i| c.faults.remove(i).1)
                };
                match fault {
                    Some(Fault::Status(s, retry_after)) => {
                        let mut r = Reply::Status(s, json!({"message": "injected"})).into_response();
                        if let Some(ra) = retry_after {
                            r.headers_mut().insert("retry-after", ra.parse().unwrap());
                        }
                        return r;
                    }
                    Some(Fault::Garbage) => return "<html><body>502 upstream proxy</body></html>".into_response(),
                    Some(Fault::Hang) => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return Reply::Json(json!({})).into_response();
                    }
                    None => {}
                }
                let query = raw
                    .split('&')
                    .filter(|s| !s.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (pct(k), pct(v))
                    })
                    .collect();
                let req = Req { path, query, base: b };
                let reply = route(&mut m.lock().unwrap(), &req);
                reply.into_response()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, model, ctl }
    }

    /// Answer the next `times` requests starting with `prefix` (path and
    /// decoded query) with `fault`.
    fn fault(&self, prefix: &str, fault: Fault, times: usize) {
        let mut c = self.ctl.lock().unwrap();
        for _ in 0..times {
            c.faults.push((prefix.to_owned(), fault));
        }
    }

    /// The requests so far, and forget them.
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.ctl.lock().unwrap().log)
    }

    fn with<R>(&self, f: impl FnOnce(&mut M) -> R) -> R {
        f(&mut self.model.lock().unwrap())
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn api(base: &str, credential: Credential) -> Arc<Api> {
    let http: Arc<dyn HttpClient> = Arc::new(plexus_server::outbound::ReqwestClient::new().unwrap());
    let policy = RetryPolicy { attempts: 4, base: Duration::from_millis(10), max_wait: Duration::from_secs(2) };
    Arc::new(Api::new(http, base, credential).with_policy(policy))
}

const ATLASSIAN_USER: &str = "bot@example.com";
const ATLASSIAN_TOKEN: &str = "atl-token";

fn atlassian() -> Credential {
    Credential::Basic { user: ATLASSIAN_USER.into(), token: ATLASSIAN_TOKEN.into() }
}

fn basic_header() -> String {
    let raw = format!("{ATLASSIAN_USER}:{ATLASSIAN_TOKEN}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Sync the way the syncer does: on a blocking thread of the runtime.
async fn sync<C: Connector + 'static>(
    c: &Arc<C>,
    index: &Arc<Index>,
    cursor: Option<&Cursor>,
) -> Result<(SyncReport, Cursor), SyncError> {
    let (c, index, cursor) = (Arc::clone(c), Arc::clone(index), cursor.cloned());
    tokio::task::spawn_blocking(move || c.sync(&index, "acme", cursor.as_ref(), &|_, _| {})).await.unwrap()
}

fn reader(principals: &[&str]) -> Reader {
    Reader { tenant: "acme".into(), principals: principals.iter().map(|s| (*s).to_owned()).collect() }
}

fn search(index: &Index, r: &Reader, q: &str) -> Results {
    index.search(r, q, &Filters::default(), 50, 0).unwrap()
}

fn titles(index: &Index, r: &Reader, q: &str) -> Vec<String> {
    let mut t: Vec<String> = search(index, r, q).hits.into_iter().map(|h| h.title).collect();
    t.sort();
    t
}

fn get(index: &Index, r: &Reader, id: &str) -> Option<Document> {
    index.get(r, id).unwrap()
}

fn secs(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp()
}

/// The text between `start` and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// `"A","B"` or `A, B` as a list.
fn items(list: &str) -> Vec<String> {
    list.split(',').map(|s| s.trim().trim_matches('"').to_owned()).filter(|s| !s.is_empty()).collect()
}

/// A CQL/JQL date (`yyyy/MM/dd HH:mm`, read as UTC here).
fn query_date(s: &str) -> i64 {
    let f = time::macros::format_description!("[year]/[month]/[day] [hour]:[minute]");
    time::PrimitiveDateTime::parse(s, &f).unwrap().assume_utc().unix_timestamp()
}

fn assert_invisible(index: &Index, r: &Reader, id: &str, source: &str, q: &str) {
    let res = search(index, r, q);
    assert!(res.hits.iter().all(|h| h.id != id), "{id} in hits for {:?}", r.principals);
    assert!(get(index, r, id).is_none(), "get {id} as {:?}", r.principals);
    let all = search(index, r, "");
    assert!(all.hits.iter().all(|h| h.id != id));
    assert_eq!(all.total, all.hits.len(), "total counts only readable documents");
    assert_eq!(
        all.facets.get(source).copied().unwrap_or(0) as usize,
        all.hits.len(),
        "facets count only readable ones"
    );
}

// ---------------------------------------------------------------------------
// GitHub.

#[derive(Default)]
struct Gh {
    /// `None`: the answer has no `private` key.
    private: Option<bool>,
    issues: Vec<Value>,
    comments: HashMap<u64, Vec<Value>>,
    /// path → (blob sha, content, commit author, commit date)
    files: BTreeMap<String, (String, String, String, String)>,
}

const GH_REPO: &str = "/repos/acme/handbook";

fn gh_route(m: &mut Gh, r: &Req) -> Reply {
    let Some(rest) = r.path.strip_prefix(GH_REPO) else { return not_found() };
    match rest {
        "" => {
            let mut v = json!({"full_name": "acme/handbook", "default_branch": "main"});
            if let Some(p) = m.private {
                v["private"] = json!(p);
            }
            Reply::Json(v)
        }
        "/issues" => {
            let since = r.q("since").map(secs);
            let mut list: Vec<&Value> = m
                .issues
                .iter()
                .filter(|i| since.is_none_or(|s| secs(i["updated_at"].as_str().unwrap()) >= s))
                .collect();
            list.sort_by_key(|i| i["updated_at"].as_str().unwrap().to_owned());
            let page: usize = r.q("page").map_or(1, |p| p.parse().unwrap());
            let per = 2;
            let chunk: Vec<Value> = list.iter().skip((page - 1) * per).take(per).map(|v| (*v).clone()).collect();
            if page * per < list.len() {
                let mut q: Vec<String> =
                    r.query.iter().filter(|(k, _)| k != "page").map(|(k, v)| format!("{k}={}", encode(v))).collect();
                q.push(format!("page={}", page + 1));
                let next = format!("{}{}?{}", r.base, r.path, q.join("&"));
                Reply::Linked(json!(chunk), format!("<{next}>; rel=\"next\", <{next}>; rel=\"last\""))
            } else {
                Reply::Json(json!(chunk))
            }
        }
        "/git/trees/main" => {
            let tree: Vec<Value> = m
                .files
                .iter()
                .map(|(p, (sha, c, _, _))| json!({"path": p, "mode": "100644", "type": "blob", "sha": sha, "size": c.len()}))
                .chain([json!({"path": "docs", "mode": "040000", "type": "tree", "sha": "d0"})])
                .collect();
            Reply::Json(json!({"sha": "t1", "tree": tree, "truncated": false}))
        }
        "/commits" => {
            let path = r.q("path").unwrap_or_default();
            match m.files.get(path) {
                Some((_, _, who, when)) => {
                    Reply::Json(json!([{"sha": "c1", "commit": {"author": {"name": who, "date": when}}}]))
                }
                None => Reply::Json(json!([])),
            }
        }
        rest => {
            if let Some(sha) = rest.strip_prefix("/git/blobs/") {
                return match m.files.values().find(|f| f.0 == sha) {
                    Some((_, content, _, _)) => {
                        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
                        // GitHub wraps base64 at 60 columns.
                        let wrapped: Vec<String> =
                            b64.as_bytes().chunks(60).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                        Reply::Json(json!({"sha": sha, "encoding": "base64", "content": wrapped.join("\n")}))
                    }
                    None => not_found(),
                };
            }
            if let Some(n) = rest.strip_prefix("/issues/").and_then(|s| s.strip_suffix("/comments")) {
                let n: u64 = n.parse().unwrap();
                return Reply::Json(json!(m.comments.get(&n).cloned().unwrap_or_default()));
            }
            not_found()
        }
    }
}

fn gh_issue(n: u64, title: &str, body: &str, who: &str, updated: &str, comments: usize, pr: bool) -> Value {
    let mut v = json!({
        "number": n, "title": title, "body": body, "user": {"login": who}, "state": "open",
        "updated_at": updated, "html_url": format!("https://github.com/acme/handbook/issues/{n}"),
        "comments": comments, "labels": [{"name": "ops"}],
    });
    if pr {
        v["pull_request"] = json!({"url": "x"});
    }
    v
}

fn gh_model() -> Gh {
    let file = |sha: &str, content: &str, who: &str, when: &str| {
        (sha.to_owned(), content.to_owned(), who.to_owned(), when.to_owned())
    };
    Gh {
        private: Some(true),
        issues: vec![
            gh_issue(
                1,
                "Payment API outage",
                "Card payments failed for ten minutes.",
                "sato",
                "2026-11-01T09:00:00Z",
                2,
                false,
            ),
            gh_issue(2, "Add CSV export", "Finance wants a spreadsheet.", "kim", "2026-11-02T09:00:00Z", 0, true),
            gh_issue(3, "Flaky login test", "Fails on CI sometimes.", "lee", "2026-11-03T09:00:00Z", 0, false),
        ],
        comments: [(
            1,
            vec![
                json!({"user": {"login": "carol"}, "body": "Root cause: an expired certificate."}),
                json!({"user": {"login": "dave"}, "body": "Rotated and monitored."}),
            ],
        )]
        .into(),
        files: [
            (
                "docs/経費精算.md".to_owned(),
                file("s1", "# 経費精算の手順\n\n領収書は30日以内に提出する。", "Tanaka", "2026-10-01T00:00:00Z"),
            ),
            ("README.md".to_owned(), file("s2", "# Handbook\n\nStart here.", "Lee", "2026-10-02T00:00:00Z")),
        ]
        .into(),
    }
}

fn github(fx: &Fixture<Gh>, name: &str, token: &str, readers: &[&str]) -> Arc<GitHub> {
    Arc::new(GitHub {
        name: name.into(),
        api: api(&fx.base, Credential::Bearer(token.into())),
        repo: "acme/handbook".into(),
        git_ref: None,
        readers: readers.iter().map(|s| (*s).to_owned()).collect(),
        private: Default::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_full_and_incremental_sync_with_permissions() {
    let fx = Fixture::start(gh_model(), "Bearer gh-token", gh_route).await;
    let gh = github(&fx, "gh", "gh-token", &["group:eng"]);
    let index = Arc::new(Index::in_memory().unwrap());
    let alice = reader(&["user:alice", "group:eng", "everyone"]);
    let bob = reader(&["user:bob", "group:hr", "everyone"]);

    let (report, cursor) = sync(&gh, &index, None).await.unwrap();
    assert_eq!(
        (report.files, report.indexed, report.skipped, report.deleted, report.retries),
        (5, 5, 0, 0, 0),
        "{report:?}"
    );
    assert!(report.problems.is_empty(), "{report:?}");
    let log = fx.take_log();
    assert!(log.iter().any(|l| l.starts_with("/repos/acme/handbook/issues?") && l.contains("page=2")), "{log:?}");
    assert_eq!(titles(&index, &alice, "経費"), ["経費精算の手順"]);
    let issue = get(&index, &alice, "gh:issue/1").unwrap();
    assert_eq!(issue.title, "Payment API outage");
    assert!(issue.body.contains("carol: Root cause: an expired certificate."), "{}", issue.body);
    assert!(issue.body.contains("dave: Rotated and monitored."), "{}", issue.body);
    assert_eq!((issue.author.as_str(), issue.kind.as_str()), ("sato", "issue"));
    assert_eq!(issue.updated, Some(secs("2026-11-01T09:00:00Z")));
    assert_eq!(issue.url, "https://github.com/acme/handbook/issues/1");
    assert_eq!(get(&index, &alice, "gh:issue/2").unwrap().kind, "pull_request");
    let md = get(&index, &alice, "gh:blob/docs/経費精算.md").unwrap();
    assert_eq!((md.author.as_str(), md.updated), ("Tanaka", Some(secs("2026-10-01T00:00:00Z"))));
    assert_eq!(md.url, "https://github.com/acme/handbook/blob/main/docs/経費精算.md");

    // A private repository is readable by its readers only.
    let all = search(&index, &alice, "");
    assert_eq!((all.total, all.facets.get("gh").copied()), (5, Some(5)));
    assert_invisible(&index, &bob, "gh:issue/1", "gh", "payment");
    assert_eq!(search(&index, &bob, "").total, 0);

    // Edit an issue, delete a file: only the changes are read.
    fx.with(|m| {
        m.issues[1]["title"] = json!("Add CSV and XLSX export");
        m.issues[1]["updated_at"] = json!("2026-11-04T09:00:00Z");
        m.files.remove("README.md");
    });
    let (report, next) = sync(&gh, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    assert!(log.iter().any(|l| l.contains("/issues?") && l.contains("since=2026-11-03T09:00:00Z")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("/git/blobs/")), "unchanged blobs are not read again: {log:?}");
    // #3 sits on the `since` boundary and is read again; the file is unchanged.
    assert_eq!((report.files, report.indexed, report.unchanged, report.deleted), (3, 2, 1, 1), "{report:?}");
    assert!(next.modified_ns > cursor.modified_ns);
    assert_eq!(titles(&index, &alice, "XLSX"), ["Add CSV and XLSX export"]);
    assert!(get(&index, &alice, "gh:blob/README.md").is_none());

    // Unknown visibility is private: no readers, nobody.
    fx.with(|m| m.private = None);
    let nobody = github(&fx, "gh2", "gh-token", &[]);
    let (report, cursor2) = sync(&nobody, &index, None).await.unwrap();
    assert_eq!(report.indexed, 4);
    assert!(get(&index, &alice, "gh2:issue/1").is_none());
    assert_eq!(search(&index, &alice, "").facets.get("gh2"), None);
    // Made public, everything is read again for everyone.
    fx.with(|m| m.private = Some(false));
    let (report, _) = sync(&nobody, &index, Some(&cursor2)).await.unwrap();
    assert_eq!(report.indexed, 4, "{report:?}");
    assert_eq!(get(&index, &bob, "gh2:issue/1").unwrap().acl, ["everyone"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_faults_are_retried_reported_or_fail_the_source() {
    let fx = Fixture::start(gh_model(), "Bearer gh-token", gh_route).await;
    let index = Arc::new(Index::in_memory().unwrap());
    let alice = reader(&["group:eng"]);

    // A 401 fails the source, naming it and the status.
    let wrong = github(&fx, "gh", "stolen", &["group:eng"]);
    let e = sync(&wrong, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("gh") && e.contains("401"), "{e}");

    // 429 (Retry-After: 1) and two 503s are retried; garbage on one blob is
    // a problem, the rest syncs.
    let gh = github(&fx, "gh", "gh-token", &["group:eng"]);
    fx.fault("/repos/acme/handbook/issues?", Fault::Status(429, Some("1")), 1);
    fx.fault("/repos/acme/handbook/git/trees/", Fault::Status(503, None), 2);
    fx.fault("/repos/acme/handbook/git/blobs/s2", Fault::Garbage, 1);
    let (report, cursor) = sync(&gh, &index, None).await.unwrap();
    assert_eq!(report.retries, 3, "{report:?}");
    assert_eq!((report.files, report.indexed), (5, 4), "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("README.md") && report.problems[0].contains("not JSON"), "{report:?}");
    assert_eq!(titles(&index, &alice, "経費"), ["経費精算の手順"]);
    // The failed blob is read again next time.
    let (report, _) = sync(&gh, &index, Some(&cursor)).await.unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(titles(&index, &alice, "start"), ["Handbook"]);

    // Garbage on the listing fails this source; the index keeps what it had.
    let before = index.count("acme").unwrap();
    fx.fault("/repos/acme/handbook/issues?", Fault::Garbage, 1);
    let e = sync(&gh, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("source gh") && e.contains("not JSON"), "{e}");
    assert_eq!(index.count("acme").unwrap(), before);
}

// ---------------------------------------------------------------------------
// Confluence.

#[derive(Clone)]
struct CPage {
    id: &'static str,
    space: &'static str,
    title: String,
    html: String,
    when: String,
    author: &'static str,
    users: Vec<&'static str>,
    groups: Vec<&'static str>,
    parent: Option<&'static str>,
}

#[derive(Default)]
struct Conf {
    pages: Vec<CPage>,
}

fn cpage(id: &'static str, space: &'static str, title: &str, html: &str, when: &str, author: &'static str) -> CPage {
    CPage {
        id,
        space,
        title: title.into(),
        html: html.into(),
        when: when.into(),
        author,
        users: vec![],
        groups: vec![],
        parent: None,
    }
}

fn restrictions_json(users: &[&str], groups: &[&str]) -> Value {
    json!({
        "user": {"results": users.iter().map(|u| json!({"type": "known", "accountId": u})).collect::<Vec<_>>(), "start": 0, "limit": 100, "size": users.len()},
        "group": {"results": groups.iter().map(|g| json!({"type": "group", "name": g, "id": format!("gid-{g}")})).collect::<Vec<_>>(), "start": 0, "limit": 100, "size": groups.len()},
    })
}

fn cql_matches(cql: &str, p: &CPage) -> bool {
    if !cql.contains("type=page") {
        return false;
    }
    if let Some(list) = between(cql, "space in (", ")")
        && !items(list).iter().any(|s| s == p.space)
    {
        return false;
    }
    if let Some(t) = between(cql, "lastmodified >= \"", "\"") {
        let retried = between(cql, "id in (", ")").is_some_and(|l| items(l).iter().any(|i| i == p.id));
        if secs(&p.when) < query_date(t) && !retried {
            return false;
        }
    }
    if let Some(q) = between(cql, "text ~ \"", "\"") {
        return p.title.contains(q) || p.html.contains(q);
    }
    true
}

fn conf_page_json(m: &Conf, p: &CPage, expand: &str) -> Value {
    let mut v = json!({
        "id": p.id, "type": "page", "status": "current", "title": p.title,
        "_links": {"webui": format!("/spaces/{}/pages/{}", p.space, p.id), "self": format!("/rest/api/content/{}", p.id)},
    });
    if expand.contains("body.storage") {
        v["body"] = json!({"storage": {"value": p.html, "representation": "storage"}});
    }
    if expand.contains("version") {
        v["version"] = json!({"number": 3, "when": p.when, "by": {"displayName": "Editor Bot", "accountId": "bot"}});
    }
    if expand.contains("space") {
        v["space"] = json!({"key": p.space, "name": format!("{} space", p.space)});
    }
    if expand.contains("history") {
        v["history"] =
            json!({"latest": true, "createdBy": {"displayName": p.author}, "createdDate": "2026-01-01T00:00:00.000Z"});
    }
    if expand.contains("ancestors") {
        let mut chain = Vec::new();
        let mut up = p.parent;
        while let Some(id) = up {
            let a = m.pages.iter().find(|x| x.id == id).unwrap();
            chain.insert(0, json!({"id": a.id, "type": "page", "title": a.title}));
            up = a.parent;
        }
        v["ancestors"] = json!(chain);
    }
    if expand.contains("restrictions.read.restrictions.user") {
        v["restrictions"] =
            json!({"read": {"operation": "read", "restrictions": restrictions_json(&p.users, &p.groups)}});
    }
    v
}

fn conf_route(m: &mut Conf, r: &Req) -> Reply {
    if r.path == "/wiki/rest/api/content/search" {
        let cql = r.q("cql").unwrap_or_default();
        let expand = r.q("expand").unwrap_or_default();
        let asked: usize = r.q("limit").map_or(25, |l| l.parse().unwrap());
        let limit = asked.min(2);
        let start: usize = r.q("cursor").map_or(0, |c| c.parse().unwrap());
        let mut hits: Vec<&CPage> = m.pages.iter().filter(|p| cql_matches(cql, p)).collect();
        hits.sort_by_key(|p| p.id);
        let results: Vec<Value> = hits.iter().skip(start).take(limit).map(|p| conf_page_json(m, p, expand)).collect();
        let mut links = json!({"base": format!("{}/wiki", r.base), "context": "/wiki", "self": format!("{}/wiki/rest/api/content/search", r.base)});
        if start + limit < hits.len() {
            let mut next = format!("/rest/api/content/search?next=true&cql={}&limit={asked}", encode(cql));
            if !expand.is_empty() {
                next.push_str(&format!("&expand={}", encode(expand)));
            }
            next.push_str(&format!("&cursor={}", start + limit));
            links["next"] = json!(next);
        }
        return Reply::Json(
            json!({"results": results, "start": start, "limit": limit, "size": results.len(), "_links": links}),
        );
    }
    if let Some(id) =
        r.path.strip_prefix("/wiki/rest/api/content/").and_then(|s| s.strip_suffix("/restriction/byOperation/read"))
    {
        return match m.pages.iter().find(|p| p.id == id) {
            Some(p) => {
                Reply::Json(json!({"operation": "read", "restrictions": restrictions_json(&p.users, &p.groups)}))
            }
            None => not_found(),
        };
    }
    not_found()
}

fn conf_model() -> Conf {
    let mut salary = cpage(
        "103",
        "HR",
        "Salary bands",
        "<p>Confidential compensation table.</p>",
        "2026-11-03T09:00:00.000Z",
        "Ito",
    );
    salary.groups = vec!["hr-managers"];
    let mut bonus =
        cpage("104", "HR", "Bonus policy", "<p>Bonus rules for managers.</p>", "2026-11-03T09:00:00.000Z", "Ito");
    bonus.parent = Some("103");
    let mut draft = cpage(
        "105",
        "ENG",
        "Postmortem draft",
        "<p>Draft of the outage postmortem.</p>",
        "2026-11-03T09:00:00.000Z",
        "Alice",
    );
    draft.users = vec!["acct-alice"];
    Conf {
        pages: vec![
            cpage(
                "101",
                "ENG",
                "Deploy checklist",
                "<h2>Steps</h2><p>Run the canary first.</p><ac:structured-macro ac:name=\"info\"><ac:rich-text-body><p>Ask in #ops.</p></ac:rich-text-body></ac:structured-macro>",
                "2026-11-01T09:00:00.000Z",
                "Sato",
            ),
            cpage(
                "102",
                "HR",
                "経費精算の手順",
                "<p>領収書は30日以内に提出する。</p>",
                "2026-11-02T09:00:00.000Z",
                "Tanaka",
            ),
            salary,
            bonus,
            draft,
            cpage("201", "OPS", "Ops runbook", "<p>Not in a configured space.</p>", "2026-11-01T09:00:00.000Z", "Ops"),
        ],
    }
}

fn confluence(fx: &Fixture<Conf>, credential: Credential) -> Arc<Confluence> {
    Arc::new(Confluence {
        name: "conf".into(),
        api: api(&fx.base, credential),
        spaces: vec!["ENG".into(), "HR".into()],
        cql: None,
        readers: vec!["group:staff".into()],
        space_readers: [("HR".to_owned(), vec!["group:hr".to_owned()])].into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_full_and_incremental_sync_with_restrictions() {
    let fx = Fixture::start(conf_model(), &basic_header(), conf_route).await;
    let conf = confluence(&fx, atlassian());
    let index = Arc::new(Index::in_memory().unwrap());
    let alice = reader(&["user:acct-alice", "group:eng", "group:staff", "everyone"]);
    let bob = reader(&["user:bob", "group:hr", "group:staff", "everyone"]);
    let carol = reader(&["user:carol", "group:hr", "group:hr-managers", "group:staff", "everyone"]);

    let (report, cursor) = sync(&conf, &index, None).await.unwrap();
    assert_eq!((report.files, report.indexed, report.skipped, report.deleted), (5, 5, 0, 0), "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    let log = fx.take_log();
    let searches: Vec<&String> = log.iter().filter(|l| l.starts_with("/wiki/rest/api/content/search")).collect();
    assert_eq!(searches.len(), 3, "5 pages, 2 per page: {log:?}");
    assert!(searches[0].contains(r#"cql=type=page AND space in ("ENG","HR")&limit=50&expand=body.storage"#), "{log:?}");
    assert!(searches[2].contains("cursor=4"), "{log:?}");
    // The ancestor's own restrictions are read once.
    assert_eq!(log.iter().filter(|l| l.contains("/content/103/restriction/byOperation/read")).count(), 1, "{log:?}");

    // Space readers, read restrictions, inherited restrictions.
    assert_eq!(titles(&index, &bob, "経費"), ["経費精算の手順"]);
    assert_invisible(&index, &alice, "conf:page/102", "conf", "経費");
    let expense = get(&index, &bob, "conf:page/102").unwrap();
    assert_eq!((expense.author.as_str(), expense.space.as_str(), expense.kind.as_str()), ("Tanaka", "HR", "page"));
    assert_eq!(expense.updated, Some(secs("2026-11-02T09:00:00Z")));
    assert_eq!(expense.url, format!("{}/wiki/spaces/HR/pages/102", fx.base));
    assert_eq!(expense.body, "領収書は30日以内に提出する。");
    let deploy = get(&index, &alice, "conf:page/101").unwrap();
    assert_eq!(deploy.headings, ["Steps"]);
    assert!(deploy.body.contains("Run the canary first.") && deploy.body.contains("Ask in #ops."), "{}", deploy.body);
    assert_eq!(get(&index, &carol, "conf:page/104").unwrap().acl, ["group:hr-managers"]);
    assert_eq!(get(&index, &carol, "conf:page/104").unwrap().path, "Salary bands / Bonus policy");
    assert_invisible(&index, &bob, "conf:page/104", "conf", "bonus");
    assert_invisible(&index, &bob, "conf:page/103", "conf", "salary");
    assert_invisible(&index, &carol, "conf:page/105", "conf", "postmortem");
    assert_eq!(titles(&index, &alice, "postmortem"), ["Postmortem draft"]);
    let count = |r: &Reader| {
        let all = search(&index, r, "");
        (all.total, all.facets.get("conf").copied().unwrap_or(0))
    };
    assert_eq!(count(&alice), (2, 2));
    assert_eq!(count(&bob), (2, 2));
    assert_eq!(count(&carol), (4, 4));

    // Edit one page, delete one, add one.
    fx.with(|m| {
        let p = m.pages.iter_mut().find(|p| p.id == "101").unwrap();
        p.title = "Deploy checklist v2".into();
        p.html = "<p>Run the canary first, then wait ten minutes.</p>".into();
        p.when = "2026-11-05T09:00:00.000Z".into();
        m.pages.retain(|p| p.id != "102");
        m.pages.push(cpage(
            "106",
            "ENG",
            "Rollback guide",
            "<p>How to roll back.</p>",
            "2026-11-05T10:00:00.000Z",
            "Kim",
        ));
    });
    let (report, next) = sync(&conf, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    // The window starts 14 hours before the newest page (2026-11-03 09:00).
    assert!(
        log.iter().any(|l| l.contains(r#"AND lastmodified >= "2026/11/02 19:00""#) && l.contains("expand=")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("limit=200") && !l.contains("expand=")), "deletion listing: {log:?}");
    assert!(!log.iter().any(|l| l.contains("/restriction/")), "unchanged pages are not read again: {log:?}");
    // 103, 104 and 105 are in the window but unchanged.
    assert_eq!((report.files, report.indexed, report.unchanged, report.deleted), (5, 2, 3, 1), "{report:?}");
    assert_eq!(next.secs(), secs("2026-11-05T10:00:00Z"));
    assert_eq!(titles(&index, &alice, "wait"), ["Deploy checklist v2"]);
    assert_eq!(titles(&index, &alice, "roll"), ["Rollback guide"]);
    assert!(get(&index, &bob, "conf:page/102").is_none());
    assert_eq!(count(&carol), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_faults_are_retried_reported_or_fail_the_source() {
    let fx = Fixture::start(conf_model(), &basic_header(), conf_route).await;
    let index = Arc::new(Index::in_memory().unwrap());
    let carol = reader(&["group:hr", "group:hr-managers"]);

    let wrong = confluence(&fx, Credential::Basic { user: ATLASSIAN_USER.into(), token: "expired".into() });
    let e = sync(&wrong, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("conf") && e.contains("401"), "{e}");

    let conf = confluence(&fx, atlassian());
    fx.fault("/wiki/rest/api/content/search", Fault::Status(429, Some("0")), 1);
    fx.fault("/wiki/rest/api/content/search", Fault::Status(503, None), 1);
    fx.fault("/wiki/rest/api/content/103/restriction", Fault::Garbage, 1);
    let (report, cursor) = sync(&conf, &index, None).await.unwrap();
    assert_eq!(report.retries, 2, "{report:?}");
    assert_eq!(report.indexed, 5, "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("restrictions of page 103"), "{report:?}");
    // Unknown permissions: the page under 103 is private for now.
    assert!(get(&index, &carol, "conf:page/104").is_none());
    assert!(get(&index, &carol, "conf:page/103").is_some());

    // The next sync reads it again by id and finds its readers.
    fx.take_log();
    let (report, _) = sync(&conf, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    assert!(log.iter().any(|l| l.contains("OR id in (104))")), "{log:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(get(&index, &carol, "conf:page/104").unwrap().acl, ["group:hr-managers"]);

    let before = index.count("acme").unwrap();
    fx.fault("/wiki/rest/api/content/search", Fault::Garbage, 1);
    let e = sync(&conf, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("source conf") && e.contains("content search") && e.contains("not JSON"), "{e}");
    assert_eq!(index.count("acme").unwrap(), before);
}

// ---------------------------------------------------------------------------
// Jira.

#[derive(Clone)]
struct JIssue {
    key: &'static str,
    summary: String,
    description: String,
    comments: Vec<(&'static str, &'static str)>,
    updated: String,
    reporter: &'static str,
    security: Option<&'static str>,
    kind: &'static str,
}

#[derive(Default)]
struct Jr {
    issues: Vec<JIssue>,
}

/// A description as ADF: a paragraph per line, `@name` as a mention.
fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .lines()
        .map(|line| {
            let mut nodes: Vec<Value> = Vec::new();
            for w in line.split_inclusive(' ') {
                match w.strip_prefix('@') {
                    Some(name) => {
                        nodes.push(
                            json!({"type": "mention", "attrs": {"id": "acc", "text": format!("@{}", name.trim())}}),
                        );
                        if name.ends_with(' ') {
                            nodes.push(json!({"type": "text", "text": " "}));
                        }
                    }
                    None => nodes.push(json!({"type": "text", "text": w})),
                }
            }
            json!({"type": "paragraph", "content": nodes})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

fn jira_time_of(i: &JIssue) -> i64 {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    time::OffsetDateTime::parse(&i.updated, &f).unwrap().unix_timestamp()
}

fn jql_matches(jql: &str, i: &JIssue) -> bool {
    let project = i.key.split('-').next().unwrap();
    if let Some(list) = between(jql, "project in (", ")")
        && !items(list).iter().any(|p| p == project)
    {
        return false;
    }
    if let Some(t) = between(jql, "updated >= \"", "\"") {
        let retried = between(jql, "key in (", ")").is_some_and(|l| items(l).iter().any(|k| k == i.key));
        if jira_time_of(i) < query_date(t) && !retried {
            return false;
        }
    }
    if let Some(q) = between(jql, "text ~ \"", "\"") {
        let q = q.to_lowercase();
        return i.summary.to_lowercase().contains(&q) || i.description.to_lowercase().contains(&q);
    }
    true
}

fn comment_json(c: &(&str, &str)) -> Value {
    let mut v = json!({"author": {"displayName": c.0, "accountId": "acc"}, "body": adf(c.1), "created": "2026-11-01T10:00:00.000+0000"});
    if c.1.starts_with("Internal:") {
        v["visibility"] = json!({"type": "role", "value": "Administrators", "identifier": "10002"});
    }
    v
}

fn jira_route(m: &mut Jr, r: &Req) -> Reply {
    if r.path == "/rest/api/3/search/jql" {
        let jql = r.q("jql").unwrap_or_default();
        let fields = r.q("fields").unwrap_or_default();
        let asked: usize = r.q("maxResults").map_or(50, |n| n.parse().unwrap());
        let per = asked.min(2);
        let start: usize = r.q("nextPageToken").map_or(0, |t| t.trim_start_matches("tok").parse().unwrap());
        let mut hits: Vec<&JIssue> = m.issues.iter().filter(|i| jql_matches(jql, i)).collect();
        if jql.contains("ORDER BY updated ASC") {
            hits.sort_by_key(|i| jira_time_of(i));
        }
        let issues: Vec<Value> = hits
            .iter()
            .skip(start)
            .take(per)
            .map(|i| {
                let mut v = json!({"id": format!("1{}", i.key.len()), "key": i.key, "self": format!("{}/rest/api/3/issue/{}", r.base, i.key)});
                if fields != "id" {
                    let project = i.key.split('-').next().unwrap();
                    v["fields"] = json!({
                        "summary": i.summary,
                        "description": if i.description.is_empty() { Value::Null } else { adf(&i.description) },
                        // The search returns the first comment inline.
                        "comment": {"comments": i.comments.iter().take(1).map(comment_json).collect::<Vec<_>>(), "maxResults": 1, "total": i.comments.len(), "startAt": 0},
                        "updated": i.updated,
                        "project": {"key": project, "name": format!("{project} project")},
                        "reporter": {"displayName": i.reporter},
                        "security": i.security.map(|s| json!({"id": "10001", "name": s})),
                        "issuetype": {"name": i.kind},
                    });
                }
                v
            })
            .collect();
        let last = start + per >= hits.len();
        let mut v = json!({"issues": issues, "isLast": last});
        if !last {
            v["nextPageToken"] = json!(format!("tok{}", start + per));
        }
        return Reply::Json(v);
    }
    if let Some(key) = r.path.strip_prefix("/rest/api/3/issue/").and_then(|s| s.strip_suffix("/comment")) {
        let Some(i) = m.issues.iter().find(|i| i.key == key) else { return not_found() };
        let start: usize = r.q("startAt").map_or(0, |n| n.parse().unwrap());
        let max: usize = r.q("maxResults").map_or(50, |n| n.parse().unwrap());
        let page: Vec<Value> = i.comments.iter().skip(start).take(max).map(comment_json).collect();
        return Reply::Json(json!({"comments": page, "startAt": start, "maxResults": max, "total": i.comments.len()}));
    }
    not_found()
}

fn jissue(
    key: &'static str,
    summary: &str,
    description: &str,
    updated: &str,
    reporter: &'static str,
    kind: &'static str,
) -> JIssue {
    JIssue {
        key,
        summary: summary.into(),
        description: description.into(),
        comments: vec![],
        updated: updated.into(),
        reporter,
        security: None,
        kind,
    }
}

fn jira_model() -> Jr {
    let mut login = jissue(
        "ENG-1",
        "Login fails with SSO",
        "Users see error 500 after the redirect.\nAsk @Sato for logs.",
        "2026-11-01T09:00:00.000+0000",
        "Sato",
        "Bug",
    );
    login.comments = vec![
        ("Sato", "Reproduced on staging."),
        ("Ito", "Internal: the admin password was in the log."),
        ("Kim", "Fixed by rotating the key."),
    ];
    let mut payroll = jissue(
        "HR-1",
        "Payroll export",
        "Monthly export for the payroll office.",
        "2026-11-03T09:00:00.000+0000",
        "Ito",
        "Task",
    );
    payroll.security = Some("Payroll");
    Jr {
        issues: vec![
            login,
            // 18:00 in Tokyo is 09:00 UTC.
            jissue(
                "ENG-2",
                "経費精算の自動化",
                "領収書の読み取りを自動化する。",
                "2026-11-02T18:00:00.000+0900",
                "Tanaka",
                "Story",
            ),
            jissue(
                "ENG-3",
                "CSV export for finance",
                "Finance needs a CSV export.",
                "2026-11-02T08:00:00.000+0000",
                "Kim",
                "Story",
            ),
            payroll,
            jissue("HR-2", "Office move", "We move in December.", "2026-11-03T09:00:00.000+0000", "Ito", ""),
            jissue("OPS-1", "Disk alert", "Not a configured project.", "2026-11-03T09:00:00.000+0000", "Ops", "Task"),
        ],
    }
}

fn jira(fx: &Fixture<Jr>, credential: Credential) -> Arc<Jira> {
    Arc::new(Jira {
        name: "jira".into(),
        api: api(&fx.base, credential),
        projects: vec!["ENG".into(), "HR".into()],
        jql: None,
        readers: vec!["group:staff".into()],
        space_readers: [
            ("HR".to_owned(), vec!["group:hr".to_owned()]),
            ("HR/Payroll".to_owned(), vec!["group:payroll".to_owned()]),
        ]
        .into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_full_and_incremental_sync_with_security_levels() {
    let fx = Fixture::start(jira_model(), &basic_header(), jira_route).await;
    let j = jira(&fx, atlassian());
    let index = Arc::new(Index::in_memory().unwrap());
    let alice = reader(&["user:alice", "group:staff", "everyone"]);
    let bob = reader(&["user:bob", "group:hr", "everyone"]);
    let dave = reader(&["user:dave", "group:payroll", "everyone"]);

    let (report, cursor) = sync(&j, &index, None).await.unwrap();
    assert_eq!((report.files, report.indexed, report.skipped, report.deleted), (5, 5, 0, 0), "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    let log = fx.take_log();
    assert!(
        log.iter().any(|l| l.contains(
            r#"jql=project in ("ENG","HR") ORDER BY updated ASC&maxResults=100&fields=summary,description,comment"#
        )),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("nextPageToken=tok4")), "three pages of two: {log:?}");
    assert!(log.iter().any(|l| l.starts_with("/rest/api/3/issue/ENG-1/comment?startAt=1")), "{log:?}");

    let login = get(&index, &alice, "jira:issue/ENG-1").unwrap();
    assert_eq!(login.title, "ENG-1 Login fails with SSO");
    assert_eq!(
        login.body,
        "Users see error 500 after the redirect.\nAsk @Sato for logs.\n\nSato: Reproduced on staging.\n\nKim: Fixed by rotating the key."
    );
    assert!(titles(&index, &alice, "password").is_empty(), "a comment restricted to a role is left out");
    assert_eq!((login.kind.as_str(), login.author.as_str(), login.space.as_str()), ("bug", "Sato", "ENG"));
    assert_eq!(login.updated, Some(secs("2026-11-01T09:00:00Z")));
    assert_eq!(login.url, format!("{}/browse/ENG-1", fx.base));
    assert_eq!(titles(&index, &alice, "経費"), ["ENG-2 経費精算の自動化"]);
    assert_eq!(get(&index, &alice, "jira:issue/ENG-2").unwrap().updated, Some(secs("2026-11-02T09:00:00Z")));
    assert_eq!(get(&index, &bob, "jira:issue/HR-2").unwrap().kind, "issue", "no issue type");

    // Project readers, and a security level readable only by its own readers.
    assert_invisible(&index, &alice, "jira:issue/HR-1", "jira", "payroll");
    assert_invisible(&index, &bob, "jira:issue/HR-1", "jira", "payroll");
    assert_eq!(titles(&index, &dave, "payroll"), ["HR-1 Payroll export"]);
    assert_invisible(&index, &alice, "jira:issue/HR-2", "jira", "office");
    let count = |r: &Reader| {
        let all = search(&index, r, "");
        (all.total, all.facets.get("jira").copied().unwrap_or(0))
    };
    assert_eq!((count(&alice), count(&bob), count(&dave)), ((3, 3), (1, 1), (1, 1)));

    fx.with(|m| {
        m.issues[0].summary = "Login fails with SSO (Okta)".into();
        m.issues[0].updated = "2026-11-05T09:00:00.000+0000".into();
        m.issues.retain(|i| i.key != "HR-2");
    });
    let (report, next) = sync(&j, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    assert!(log.iter().any(|l| l.contains(r#"AND updated >= "2026/11/02 19:00" ORDER BY updated ASC"#)), "{log:?}");
    assert!(log.iter().any(|l| l.contains("maxResults=1000&fields=id")), "key listing: {log:?}");
    // HR-1 is in the window but unchanged; ENG-2 and ENG-3 are before it.
    assert_eq!((report.files, report.indexed, report.unchanged, report.deleted), (2, 1, 1, 1), "{report:?}");
    assert_eq!(next.secs(), secs("2026-11-05T09:00:00Z"));
    assert_eq!(titles(&index, &alice, "okta"), ["ENG-1 Login fails with SSO (Okta)"]);
    assert!(get(&index, &bob, "jira:issue/HR-2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_faults_are_retried_reported_or_fail_the_source() {
    let fx = Fixture::start(jira_model(), &basic_header(), jira_route).await;
    let index = Arc::new(Index::in_memory().unwrap());
    let alice = reader(&["group:staff"]);

    let wrong = jira(&fx, Credential::Basic { user: "intruder@example.com".into(), token: ATLASSIAN_TOKEN.into() });
    let e = sync(&wrong, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("jira") && e.contains("401"), "{e}");

    let j = jira(&fx, atlassian());
    fx.fault("/rest/api/3/search/jql", Fault::Status(429, Some("0")), 1);
    fx.fault("/rest/api/3/search/jql", Fault::Status(503, None), 1);
    fx.fault("/rest/api/3/issue/ENG-1/comment", Fault::Garbage, 1);
    let (report, cursor) = sync(&j, &index, None).await.unwrap();
    assert_eq!((report.retries, report.indexed), (2, 5), "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("comments of ENG-1"), "{report:?}");
    let login = get(&index, &alice, "jira:issue/ENG-1").unwrap();
    assert!(login.body.contains("Sato: Reproduced") && !login.body.contains("Kim:"), "{}", login.body);

    // Read again by key next time, with every comment.
    fx.take_log();
    let (report, _) = sync(&j, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    assert!(log.iter().any(|l| l.contains(r#"OR key in ("ENG-1"))"#)), "{log:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(get(&index, &alice, "jira:issue/ENG-1").unwrap().body.contains("Kim: Fixed by rotating the key."));

    let before = index.count("acme").unwrap();
    fx.fault("/rest/api/3/search/jql", Fault::Garbage, 1);
    let e = sync(&j, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("source jira") && e.contains("issue search") && e.contains("not JSON"), "{e}");
    assert_eq!(index.count("acme").unwrap(), before);
}

// ---------------------------------------------------------------------------
// Microsoft Graph.

#[derive(Clone)]
struct GItem {
    name: &'static str,
    folder: bool,
    content: String,
    modified: String,
    author: &'static str,
    perms: Vec<Value>,
    /// The change generation that last touched it.
    generation: u64,
    deleted: bool,
}

#[derive(Clone)]
struct SitePage {
    id: &'static str,
    title: &'static str,
    html: &'static str,
    modified: &'static str,
}

#[derive(Default)]
struct Gr {
    items: BTreeMap<&'static str, GItem>,
    generation: u64,
    /// Delta tokens older than this answer 410 Gone.
    oldest_token: u64,
    pages: Vec<SitePage>,
}

impl Gr {
    fn touch(&mut self, id: &str, f: impl FnOnce(&mut GItem)) {
        self.generation += 1;
        let g = self.generation;
        let item = self.items.get_mut(id).unwrap();
        f(item);
        item.generation = g;
    }
}

fn gitem(name: &'static str, content: &str, modified: &str, author: &'static str, perms: Vec<Value>) -> GItem {
    GItem {
        name,
        folder: false,
        content: content.into(),
        modified: modified.into(),
        author,
        perms,
        generation: 0,
        deleted: false,
    }
}

fn gitem_json(id: &str, i: &GItem) -> Value {
    if i.deleted {
        return json!({"id": id, "deleted": {"state": "deleted"}, "parentReference": {"driveId": "d1"}});
    }
    let mut v = json!({
        "id": id, "name": i.name, "size": i.content.len(),
        "lastModifiedDateTime": i.modified,
        "createdBy": {"user": {"displayName": i.author, "id": "u-author"}},
        "lastModifiedBy": {"user": {"displayName": "Editor"}},
        "webUrl": format!("https://contoso.sharepoint.com/Shared%20Documents/Docs/{}", i.name),
        "parentReference": {"driveId": "d1", "driveType": "documentLibrary", "id": "f1", "path": "/drive/root:/Docs"},
    });
    if i.folder {
        v["folder"] = json!({"childCount": 3});
    } else {
        v["file"] = json!({"mimeType": "text/plain"});
    }
    v
}

fn graph_route(m: &mut Gr, r: &Req) -> Reply {
    let page_size = 2;
    if r.path == "/drives/d1/root/delta" {
        let token: Option<u64> = r.q("token").map(|t| t.parse().unwrap());
        if token.is_some_and(|t| t < m.oldest_token) {
            return Reply::Status(
                410,
                json!({"error": {"code": "resyncRequired", "message": "Resync required. Replace any local items with the server's version."}}),
            );
        }
        let changed: Vec<Value> = m
            .items
            .iter()
            .filter(|(_, i)| match token {
                Some(t) => i.generation > t,
                None => !i.deleted,
            })
            .map(|(id, i)| gitem_json(id, i))
            .collect();
        let skip: usize = r.q("skip").map_or(0, |s| s.parse().unwrap());
        let page: Vec<Value> = changed.iter().skip(skip).take(page_size).cloned().collect();
        let mut v = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)", "value": page});
        if skip + page_size < changed.len() {
            let mut next = format!("{}/drives/d1/root/delta?", r.base);
            if let Some(t) = token {
                next.push_str(&format!("token={t}&"));
            }
            next.push_str(&format!("skip={}", skip + page_size));
            v["@odata.nextLink"] = json!(next);
        } else {
            v["@odata.deltaLink"] = json!(format!("{}/drives/d1/root/delta?token={}", r.base, m.generation));
        }
        return Reply::Json(v);
    }
    if let Some(q) = r.path.strip_prefix("/drives/d1/root/search(q='").and_then(|s| s.strip_suffix("')")) {
        let q = q.replace("''", "'").to_lowercase();
        let hits: Vec<Value> = m
            .items
            .iter()
            .filter(|(_, i)| {
                !i.deleted && (i.name.to_lowercase().contains(&q) || i.content.to_lowercase().contains(&q))
            })
            .map(|(id, i)| gitem_json(id, i))
            .collect();
        return Reply::Json(json!({"value": hits}));
    }
    if let Some(id) = r.path.strip_prefix("/download/") {
        return match m.items.get(id) {
            Some(i) => Reply::Text(i.content.clone()),
            None => not_found(),
        };
    }
    if let Some(rest) = r.path.strip_prefix("/drives/d1/items/") {
        let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(item) = m.items.get(id).filter(|i| !i.deleted) else { return not_found() };
        return match what {
            "" => Reply::Json(gitem_json(id, item)),
            // The real API redirects to a pre-authenticated download URL.
            "content" => Reply::Redirect(format!("{}/download/{id}", r.base)),
            "permissions" => Reply::Json(json!({"value": item.perms})),
            _ => not_found(),
        };
    }
    if r.path == "/sites/s1" {
        return Reply::Json(json!({"id": "s1", "name": "hr", "webUrl": "https://contoso.sharepoint.com/sites/hr"}));
    }
    if r.path == "/sites/s1/pages/microsoft.graph.sitePage" {
        assert_eq!(r.q("$expand"), Some("canvasLayout"));
        let skip: usize = r.q("$skiptoken").map_or(0, |s| s.parse().unwrap());
        let page: Vec<Value> = m
            .pages
            .iter()
            .skip(skip)
            .take(1)
            .map(|p| {
                json!({
                    "@odata.type": "#microsoft.graph.sitePage",
                    "id": p.id, "name": format!("{}.aspx", p.id), "title": p.title,
                    "webUrl": format!("SitePages/{}.aspx", p.id),
                    "lastModifiedDateTime": p.modified,
                    "createdBy": {"user": {"displayName": "HR Team"}},
                    "canvasLayout": {"horizontalSections": [{"layout": "oneColumn", "id": "1", "columns": [{"id": "1", "width": 12, "webparts": [
                        {"@odata.type": "#microsoft.graph.textWebPart", "id": "w1", "innerHtml": p.html},
                        {"@odata.type": "#microsoft.graph.standardWebPart", "id": "w2", "webPartType": "image", "data": {"title": "banner"}}
                    ]}]}]},
                })
            })
            .collect();
        let mut v = json!({"value": page});
        if skip + 1 < m.pages.len() {
            v["@odata.nextLink"] = json!(format!(
                "{}/sites/s1/pages/microsoft.graph.sitePage?$expand=canvasLayout&$skiptoken={}",
                r.base,
                skip + 1
            ));
        }
        return Reply::Json(v);
    }
    not_found()
}

fn graph_model() -> Gr {
    let group = |name: &str| json!({"id": "p1", "roles": ["read"], "grantedToV2": {"group": {"id": "g1", "displayName": name}}});
    let mut root = gitem("root", "", "2026-11-01T00:00:00Z", "System", vec![]);
    root.folder = true;
    let mut docs = gitem("Docs", "", "2026-11-01T00:00:00Z", "System", vec![]);
    docs.folder = true;
    Gr {
        items: [
            ("root", root),
            ("f1", docs),
            (
                "i1",
                gitem("経費精算.md", "# 経費精算の手順\n\n領収書は30日以内に提出する。", "2026-11-01T09:00:00Z", "Tanaka", vec![group("HR")]),
            ),
            (
                "i2",
                gitem(
                    "deploy.txt",
                    "Deploy guide\nRun the canary first.",
                    "2026-11-02T09:00:00Z",
                    "Sato",
                    vec![json!({"id": "p2", "roles": ["read"], "link": {"scope": "organization", "type": "view", "webUrl": "https://x"}})],
                ),
            ),
            (
                "i3",
                gitem(
                    "plan.html",
                    "<html><head><title>Roadmap 2027</title></head><body><main><h1>Roadmap</h1><p>Secret roadmap items.</p></main></body></html>",
                    "2026-11-03T09:00:00Z",
                    "Alice",
                    vec![
                        json!({"id": "p3", "roles": ["write"], "grantedToV2": {"user": {"id": "u-alice", "displayName": "Alice"}}}),
                        json!({"id": "p4", "roles": ["read"], "link": {"scope": "users", "type": "view"}, "grantedToIdentitiesV2": [{"siteGroup": {"id": "7", "displayName": "Leads"}}]}),
                    ],
                ),
            ),
            ("i4", gitem("photo.png", "\u{89}PNG", "2026-11-01T09:00:00Z", "Sato", vec![group("HR")])),
        ]
        .into(),
        generation: 1,
        oldest_token: 0,
        pages: vec![
            SitePage { id: "p1", title: "Welcome to HR", html: "<h2>福利厚生</h2><p>Benefits overview.</p>", modified: "2026-11-02T09:00:00Z" },
            SitePage { id: "p2", title: "Holiday calendar", html: "<p>Public holidays for 2027.</p>", modified: "2026-11-01T09:00:00Z" },
        ],
    }
}

fn graph(fx: &Fixture<Gr>, token: &str) -> Arc<Graph> {
    Arc::new(Graph {
        name: "graph".into(),
        api: api(&fx.base, Credential::Bearer(token.into())),
        drive: "d1".into(),
        site: Some("s1".into()),
        readers: vec!["role:kb-admin".into()],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_delta_sync_with_item_permissions_pages_and_resync() {
    let fx = Fixture::start(graph_model(), "Bearer graph-token", graph_route).await;
    let g = graph(&fx, "graph-token");
    let index = Arc::new(Index::in_memory().unwrap());
    let alice = reader(&["user:u-alice", "group:Eng", "everyone"]);
    let bob = reader(&["user:u-bob", "group:HR", "everyone"]);
    let admin = reader(&["role:kb-admin"]);

    let (report, cursor) = sync(&g, &index, None).await.unwrap();
    // Four files (one not text) and two pages.
    assert_eq!((report.files, report.indexed, report.skipped, report.deleted), (6, 5, 1, 0), "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    let log = fx.take_log();
    assert!(log.iter().any(|l| l == "/drives/d1/root/delta?skip=4"), "delta paging: {log:?}");
    assert!(
        log.iter().any(|l| l == "/drives/d1/items/i1/content") && log.iter().any(|l| l == "/download/i1"),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("i4/content")), "non-text files are not downloaded: {log:?}");
    assert!(log.iter().any(|l| l.contains("$skiptoken=1")), "page paging: {log:?}");
    assert!(cursor.token.as_deref().unwrap().contains("/drives/d1/root/delta?token=1"), "{cursor:?}");

    assert_eq!(titles(&index, &bob, "経費"), ["経費精算の手順"]);
    let expense = get(&index, &bob, "graph:item/i1").unwrap();
    assert_eq!(
        (expense.author.as_str(), expense.path.as_str(), expense.kind.as_str()),
        ("Tanaka", "Docs/経費精算.md", "file")
    );
    assert_eq!(expense.updated, Some(secs("2026-11-01T09:00:00Z")));
    assert_eq!(expense.url, "https://contoso.sharepoint.com/Shared%20Documents/Docs/経費精算.md");
    assert_eq!(expense.acl, ["group:HR", "role:kb-admin"]);
    assert_eq!(get(&index, &alice, "graph:item/i3").unwrap().acl, ["group:Leads", "role:kb-admin", "user:u-alice"]);
    assert_eq!(titles(&index, &alice, "roadmap"), ["Roadmap 2027"]);
    assert_invisible(&index, &bob, "graph:item/i3", "graph", "roadmap");
    assert_invisible(&index, &alice, "graph:item/i1", "graph", "経費");
    assert_eq!(titles(&index, &bob, "canary"), ["Deploy guide"], "an organization link is everyone");
    let page = get(&index, &admin, "graph:page/p1").unwrap();
    assert_eq!(page.url, "https://contoso.sharepoint.com/sites/hr/SitePages/p1.aspx");
    assert_eq!((page.title.as_str(), page.body.as_str()), ("Welcome to HR", "福利厚生\nBenefits overview."));
    assert_invisible(&index, &bob, "graph:page/p1", "graph", "benefits");
    assert_eq!(search(&index, &admin, "").facets.get("graph"), Some(&5));

    // Edit a file, delete one, delete a page: the delta link reads only those.
    fx.with(|m| {
        m.touch("i2", |i| {
            i.content = "Deploy guide\nRun the canary first, then watch the error rate.".into();
            i.modified = "2026-11-04T09:00:00Z".into();
        });
        m.touch("i3", |i| i.deleted = true);
        m.pages.retain(|p| p.id != "p1");
    });
    let (report, cursor2) = sync(&g, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    assert_eq!(log[0], "/drives/d1/root/delta?token=1", "{log:?}");
    assert!(!log.iter().any(|l| l.contains("/download/i1")), "unchanged files are not read: {log:?}");
    // i2 changed; p2 listed and unchanged; i3 and p1 deleted.
    assert_eq!((report.files, report.indexed, report.unchanged, report.deleted), (2, 1, 1, 2), "{report:?}");
    assert_eq!(titles(&index, &bob, "error rate"), ["Deploy guide"]);
    assert!(get(&index, &alice, "graph:item/i3").is_none());
    assert!(get(&index, &admin, "graph:page/p1").is_none());

    // The delta link expired: 410 Gone, read everything again; a file gone
    // meanwhile without a trace is deleted too.
    fx.with(|m| {
        m.oldest_token = m.generation + 1;
        m.items.remove("i1");
    });
    let (report, _) = sync(&g, &index, Some(&cursor2)).await.unwrap();
    let log = fx.take_log();
    assert!(log[0].starts_with("/drives/d1/root/delta?token=") && log[1] == "/drives/d1/root/delta", "{log:?}");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert!(get(&index, &bob, "graph:item/i1").is_none());
    assert_eq!(titles(&index, &bob, "canary"), ["Deploy guide"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_faults_are_retried_reported_or_fail_the_source() {
    let fx = Fixture::start(graph_model(), "Bearer graph-token", graph_route).await;
    let index = Arc::new(Index::in_memory().unwrap());
    let bob = reader(&["user:u-bob", "group:HR", "everyone"]);

    let e = sync(&graph(&fx, "expired"), &index, None).await.unwrap_err().to_string();
    assert!(e.contains("graph") && e.contains("401"), "{e}");

    let g = graph(&fx, "graph-token");
    fx.fault("/drives/d1/root/delta", Fault::Status(429, Some("0")), 1);
    fx.fault("/drives/d1/items/i1/content", Fault::Status(503, None), 1);
    fx.fault("/drives/d1/items/i2/permissions", Fault::Garbage, 1);
    let (report, cursor) = sync(&g, &index, None).await.unwrap();
    assert_eq!((report.retries, report.indexed), (2, 5), "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("permissions of deploy.txt"), "{report:?}");
    // Permissions unknown: private, even to everyone and to the source's
    // own readers.
    assert!(get(&index, &bob, "graph:item/i2").is_none());
    assert!(get(&index, &reader(&["role:kb-admin"]), "graph:item/i2").is_none());
    assert!(get(&index, &bob, "graph:item/i1").is_some());

    // The next sync reads it again and finds its permissions.
    fx.take_log();
    let (report, _) = sync(&g, &index, Some(&cursor)).await.unwrap();
    let log = fx.take_log();
    assert!(log.iter().any(|l| l == "/drives/d1/items/i2"), "{log:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(get(&index, &bob, "graph:item/i2").unwrap().acl, ["everyone", "role:kb-admin"]);

    let before = index.count("acme").unwrap();
    fx.fault("/drives/d1/root/delta", Fault::Garbage, 1);
    let e = sync(&g, &index, None).await.unwrap_err().to_string();
    assert!(e.contains("source graph") && e.contains("delta") && e.contains("not JSON"), "{e}");
    assert_eq!(index.count("acme").unwrap(), before);
}

// ---------------------------------------------------------------------------
// Federated search.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_search_answers_times_out_and_fails_per_source() {
    let jira_fx = Fixture::start(jira_model(), &basic_header(), jira_route).await;
    let conf_fx = Fixture::start(conf_model(), &basic_header(), conf_route).await;
    let gh_fx = Fixture::start(gh_model(), "Bearer gh-token", gh_route).await;
    let graph_fx = Fixture::start(graph_model(), "Bearer graph-token", graph_route).await;
    conf_fx.fault("/wiki/rest/api/content/search", Fault::Hang, 1);
    gh_fx.fault("/repos/acme/handbook", Fault::Status(500, None), 4);

    let j = jira(&jira_fx, atlassian());
    let index = Arc::new(Index::in_memory().unwrap());
    sync(&j, &index, None).await.unwrap();
    let deadline = Duration::from_millis(300);
    let live = |source: Arc<dyn LiveSource>| Live { tenant: "acme".into(), source, deadline };
    let sources = vec![
        live(j.clone()),
        live(confluence(&conf_fx, atlassian())),
        live(github(&gh_fx, "gh", "gh-token", &["group:eng"])),
        live(graph(&graph_fx, "graph-token")),
    ];
    // Bob reads the staff's issues but not the payroll office's.
    let bob = reader(&["user:u-bob", "group:staff", "group:HR", "everyone"]);

    let started = std::time::Instant::now();
    let answers = federated::ask(&sources, &bob, "export", &Filters::default(), 10).await;
    assert!(started.elapsed() < Duration::from_secs(5), "did not wait for the hanging source: {:?}", started.elapsed());
    let by: HashMap<&str, _> = answers.iter().map(|(s, h)| (s.source.as_str(), (s, h))).collect();

    let (jira_status, jira_hits) = by["jira"];
    assert_eq!(jira_status.status, Status::Answered);
    // HR-1 matches too but has a security level bob is not cleared for.
    assert_eq!(jira_hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["jira:issue/ENG-3"]);
    assert_eq!(jira_status.hits, 1);
    assert!(jira_hits[0].snippet.contains("<mark>export</mark>"), "{}", jira_hits[0].snippet);
    let log = jira_fx.take_log();
    assert!(log.iter().any(|l| l.contains(r#"jql=text ~ "export" AND project in ("ENG","HR")"#)), "{log:?}");

    let (conf_status, conf_hits) = by["conf"];
    assert_eq!((conf_status.status.clone(), conf_hits.len()), (Status::TimedOut, 0));
    assert!(conf_status.elapsed_ms >= 250 && conf_status.elapsed_ms < 5_000, "{conf_status:?}");

    let (gh_status, _) = by["gh"];
    assert_eq!(gh_status.status, Status::Failed);
    assert!(gh_status.error.as_deref().unwrap().contains("500"), "{gh_status:?}");

    // Graph answers with the permissions of each hit: bob is not cleared
    // for anything matching "export" there, "deploy" is shared org-wide.
    let (graph_status, graph_hits) = by["graph"];
    assert_eq!((graph_status.status.clone(), graph_hits.len()), (Status::Answered, 0));
    let deploy = federated::ask(&sources[3..], &bob, "deploy", &Filters::default(), 10).await;
    assert_eq!(deploy[0].1.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["graph:item/i2"]);
    let roadmap = federated::ask(&sources[3..], &bob, "roadmap", &Filters::default(), 10).await;
    assert_eq!((roadmap[0].0.status.clone(), roadmap[0].1.len()), (Status::Answered, 0), "i3 is not bob's to see");

    // The index has ENG-3 too: fused, it appears once.
    let from_index = index.search(&bob, "export", &Filters::default(), 10, 0).unwrap();
    assert_eq!(from_index.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["jira:issue/ENG-3"]);
    let merged = federated::merge(from_index, answers.into_iter().map(|(_, h)| h).collect(), 0, 10);
    assert_eq!(merged.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["jira:issue/ENG-3"]);
    assert_eq!((merged.total, merged.facets.get("jira").copied()), (1, Some(1)));
}
