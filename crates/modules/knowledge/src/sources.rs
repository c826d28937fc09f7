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

use plexus_core::http::HttpClient;

use crate::connector::{Connector, Cursor, SyncReport};
use crate::federated::{Live, LiveSource};
use crate::fs::FsSource;
use crate::index::Index;
use crate::saas::{self, Api, Credential};

/// Connector kinds this build has.
pub const KINDS: &[&str] = &["filesystem", "git", "sql", "github", "confluence", "jira", "sharepoint"];
/// Kinds that call a SaaS API over HTTP; all of them can be searched live.
pub const HTTP_KINDS: &[&str] = &["github", "confluence", "jira", "sharepoint"];
/// A live source's deadline unless configured.
pub const DEFAULT_DEADLINE_MS: u64 = 1_500;

/// One `[[knowledge.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique per tenant; letters, digits, `-` and `_`.
    pub name: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// The directory (filesystem) or repository (git).
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
    /// Document URLs: this prefix plus the relative path (filesystem, git).
    pub url_prefix: Option<String>,
    /// The API's base URL: `https://api.github.com` (default for github),
    /// `https://<site>.atlassian.net` (confluence, jira),
    /// `https://graph.microsoft.com/v1.0` (default for sharepoint).
    pub base_url: Option<String>,
    /// The environment variable holding the credential.
    pub token_env: Option<String>,
    /// A file holding the credential (relative: to the data directory).
    pub token_file: Option<PathBuf>,
    /// The credential is `user:api-token` sent as HTTP Basic (Atlassian
    /// Cloud); otherwise it is a bearer token.
    #[serde(default)]
    pub basic_auth: bool,
    /// `owner/name` (github).
    pub repo: Option<String>,
    /// Branch, tag or commit (git, github; default: HEAD / default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Space keys (confluence).
    #[serde(default)]
    pub spaces: Vec<String>,
    /// An extra CQL condition (confluence).
    pub cql: Option<String>,
    /// Project keys (jira).
    #[serde(default)]
    pub projects: Vec<String>,
    /// An extra JQL condition (jira).
    pub jql: Option<String>,
    /// Drive id (sharepoint).
    pub drive: Option<String>,
    /// Site id whose pages are read too (sharepoint).
    pub site: Option<String>,
    /// Readers per space or project (confluence, jira; jira also
    /// `PROJECT/<security level>`), for documents without their own
    /// restrictions.
    #[serde(default)]
    pub space_readers: BTreeMap<String, Vec<String>>,
    /// Also ask the source at search time (federated search).
    #[serde(default)]
    pub live: bool,
    /// The live search deadline, milliseconds (default 1,500).
    pub deadline_ms: Option<u64>,
}

fn default_tenant() -> String {
    "default".into()
}

fn check_reader(source: &str, r: &str) -> Result<(), String> {
    let ok = r == "everyone"
        || ["role:", "group:", "user:"].iter().any(|p| r.strip_prefix(p).is_some_and(|v| !v.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "knowledge source `{source}`: reader `{r}` must be everyone, role:<r>, group:<g> or user:<subject>"
        ))
    }
}

impl SourceConfig {
    /// Check a source list: names, kinds, what each kind needs, duplicates.
    pub fn validate_all(sources: &[SourceConfig]) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for s in sources {
            let n = &s.name;
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("knowledge source name `{n}` must be letters, digits, `-` or `_`"));
            }
            if !seen.insert((s.tenant.clone(), n.clone())) {
                return Err(format!("knowledge source `{n}` appears twice for tenant `{}`", s.tenant));
            }
            let need = |ok: bool, what: &str| {
                if ok { Ok(()) } else { Err(format!("knowledge source `{n}`: a {} source needs {what}", s.kind)) }
            };
            match s.kind.as_str() {
                "filesystem" | "git" => need(s.path.is_some(), "`path`")?,
                "sql" => need(
                    s.url.is_some() && s.query.as_deref().is_some_and(|q| !q.trim().is_empty()),
                    "`url` and `query`",
                )?,
                "github" => need(
                    s.repo.as_deref().is_some_and(|r| r.split('/').count() == 2 && r.split('/').all(|p| !p.is_empty())),
                    "`repo` as owner/name",
                )?,
                "confluence" => need(
                    s.base_url.is_some() && (!s.spaces.is_empty() || s.cql.is_some()),
                    "`base_url` and `spaces` or `cql`",
                )?,
                "jira" => need(
                    s.base_url.is_some() && (!s.projects.is_empty() || s.jql.is_some()),
                    "`base_url` and `projects` or `jql`",
                )?,
                "sharepoint" => need(s.drive.is_some(), "`drive`")?,
                other => {
                    return Err(format!(
                        "knowledge source `{n}`: kind `{other}` is not supported (supported: {})",
                        KINDS.join(", ")
                    ));
                }
            }
            if s.live && !HTTP_KINDS.contains(&s.kind.as_str()) {
                return Err(format!("knowledge source `{n}`: a {} source cannot be searched live", s.kind));
            }
            if s.deadline_ms.is_some_and(|d| d == 0 || d > 30_000) {
                return Err(format!("knowledge source `{n}`: deadline_ms must be 1 to 30000"));
            }
            if s.token_env.is_some() && s.token_file.is_some() {
                return Err(format!("knowledge source `{n}`: give token_env or token_file, not both"));
            }
            for r in s.readers.iter().chain(s.space_readers.values().flatten()) {
                check_reader(n, r)?;
            }
        }
        Ok(())
    }

    fn base(&self, default: &str) -> String {
        self.base_url.clone().unwrap_or_else(|| default.to_owned())
    }

    /// The connector of this source, and its live side when `live`.
    /// `secret` is the resolved credential; SaaS kinds need `http`.
    pub fn build(&self, http: Option<&Arc<dyn HttpClient>>, secret: Option<&str>) -> Result<Built, String> {
        let name = self.name.clone();
        let readers = self.readers.clone();
        let api = |default: &str| -> Result<Arc<Api>, String> {
            let http = http.ok_or_else(|| format!("knowledge source `{name}`: no HTTP client in this process"))?;
            let credential = Credential::from_secret(secret, self.basic_auth)
                .map_err(|e| format!("knowledge source `{name}`: {e}"))?;
            Ok(Arc::new(Api::new(Arc::clone(http), &self.base(default), credential)))
        };
        let both = |c: Arc<dyn Connector>, l: Arc<dyn LiveSource>, live: bool| (c, live.then_some(l));
        Ok(match self.kind.as_str() {
            "filesystem" => (
                Arc::new(FsSource {
                    name,
                    root: self.path.clone().unwrap_or_default(),
                    readers,
                    url_prefix: self.url_prefix.clone(),
                }),
                None,
            ),
            "git" => (
                Arc::new(crate::git::GitSource {
                    name,
                    repo: self.path.clone().unwrap_or_default(),
                    git_ref: self.git_ref.clone(),
                    readers,
                    url_prefix: self.url_prefix.clone(),
                }),
                None,
            ),
            "sql" => (
                Arc::new(crate::sql::SqlSource {
                    name,
                    url: self.url.clone().unwrap_or_default(),
                    query: self.query.clone().unwrap_or_default(),
                    readers,
                }),
                None,
            ),
            "github" => {
                let g = Arc::new(saas::github::GitHub {
                    api: api("https://api.github.com")?,
                    name,
                    repo: self.repo.clone().unwrap_or_default(),
                    git_ref: self.git_ref.clone(),
                    readers,
                    private: Default::default(),
                });
                both(g.clone(), g, self.live)
            }
            "confluence" => {
                let c = Arc::new(saas::confluence::Confluence {
                    api: api("")?,
                    name,
                    spaces: self.spaces.clone(),
                    cql: self.cql.clone(),
                    readers,
                    space_readers: self.space_readers.clone(),
                });
                both(c.clone(), c, self.live)
            }
            "jira" => {
                let j = Arc::new(saas::jira::Jira {
                    api: api("")?,
                    name,
                    projects: self.projects.clone(),
                    jql: self.jql.clone(),
                    readers,
                    space_readers: self.space_readers.clone(),
                });
                both(j.clone(), j, self.live)
            }
            "sharepoint" => {
                let g = Arc::new(saas::graph::Graph {
                    api: api("https://graph.microsoft.com/v1.0")?,
                    name,
                    drive: self.drive.clone().unwrap_or_default(),
                    site: self.site.clone(),
                    readers,
                });
                both(g.clone(), g, self.live)
            }
            other => return Err(format!("knowledge source `{name}`: kind `{other}` is not supported")),
        })
    }
}

/// A source's connector, and its live side when it is searched live.
pub type Built = (Arc<dyn Connector>, Option<Arc<dyn LiveSource>>);

/// What the syncer needs from the process: an HTTP client for SaaS
/// sources and their resolved credentials (`tenant/source` → secret).
#[derive(Default, Clone)]
pub struct Wiring {
    pub http: Option<Arc<dyn HttpClient>>,
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring").field("secrets", &self.secrets.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// Runs sources into the index and remembers where each got to.
pub struct Syncer {
    index: Arc<Index>,
    sources: Vec<SourceConfig>,
    connectors: Vec<Arc<dyn Connector>>,
    live: Vec<Live>,
    state_path: PathBuf,
    /// `tenant/source` → cursor.
    state: Mutex<BTreeMap<String, Cursor>>,
    /// One sync at a time.
    running: Mutex<()>,
    /// Where changed documents are announced (resource subscriptions).
    bus: std::sync::OnceLock<plexus_core::bus::Bus>,
    /// `tenant/source` → when it last synced (RFC 3339) and how that went.
    last: Mutex<BTreeMap<String, (String, SourceOutcome)>>,
}

/// A source as `list_knowledge_sources` shows it: what, and how its last sync went.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    /// Searched live at query time instead of indexed.
    pub live: bool,
    /// A sync cursor is kept: the next sync fetches only what changed.
    pub has_cursor: bool,
    /// When this server last synced it (RFC 3339), and the outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<SourceOutcome>,
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
    /// Fails when a source cannot be built (a SaaS source without an HTTP
    /// client, a malformed credential).
    pub fn new(
        index: Arc<Index>,
        sources: Vec<SourceConfig>,
        state_path: PathBuf,
        wiring: &Wiring,
    ) -> Result<Self, String> {
        let state = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Cursor>>(&b).ok())
            .unwrap_or_default();
        let mut connectors = Vec::with_capacity(sources.len());
        let mut live = Vec::new();
        for s in &sources {
            let secret = wiring.secrets.get(&format!("{}/{}", s.tenant, s.name)).map(String::as_str);
            let (c, l) = s.build(wiring.http.as_ref(), secret)?;
            connectors.push(c);
            if let Some(l) = l {
                let deadline = std::time::Duration::from_millis(s.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS));
                live.push(Live { tenant: s.tenant.clone(), source: l, deadline });
            }
        }
        Ok(Self {
            index,
            sources,
            connectors,
            live,
            state_path,
            state: Mutex::new(state),
            running: Mutex::new(()),
            last: Mutex::new(BTreeMap::new()),
            bus: std::sync::OnceLock::new(),
        })
    }

    /// Announce every document a sync indexes or deletes on `bus`, as a
    /// change of its `kb://documents/{id}` resource (first call wins).
    pub fn notify_on(&self, bus: plexus_core::bus::Bus) {
        let _ = self.bus.set(bus);
    }

    /// The live sources (federated search).
    pub fn live(&self) -> &[Live] {
        &self.live
    }

    /// The index it syncs into.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
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
    /// The sources of `tenant` with their sync state.
    pub fn status(&self, tenant: &str) -> Vec<SourceStatus> {
        let state = self.state.lock();
        let last = self.last.lock();
        self.sources_of(tenant)
            .into_iter()
            .map(|s| {
                let key = format!("{}/{}", s.tenant, s.name);
                let l = last.get(&key);
                SourceStatus {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    live: s.live,
                    has_cursor: state.contains_key(&key),
                    last_sync: l.map(|(t, _)| t.clone()),
                    last_outcome: l.map(|(_, o)| o.clone()),
                }
            })
            .collect()
    }

    pub fn sync(
        &self,
        tenant: Option<&str>,
        only: Option<&str>,
        full: bool,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Vec<SourceOutcome> {
        let _one = self.running.lock();
        let mut out = Vec::new();
        for (s, connector) in self.sources.iter().zip(&self.connectors) {
            if tenant.is_some_and(|t| t != s.tenant) || only.is_some_and(|o| o != s.name) {
                continue;
            }
            let key = format!("{}/{}", s.tenant, s.name);
            let cursor = if full { None } else { self.state.lock().get(&key).cloned() };
            let each = |done: usize, total: usize| progress(&s.name, done, total);
            let result = connector.sync(&self.index, &s.tenant, cursor.as_ref(), &each);
            let before = out.len();
            match result {
                Ok((mut report, next)) => {
                    self.state.lock().insert(key.clone(), next);
                    if let Some(bus) = self.bus.get() {
                        for id in &report.changed {
                            bus.publish(plexus_core::context::Notification::ResourceUpdated(crate::document_uri(id)));
                        }
                    }
                    report.changed = Vec::new();
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
            if let Some(o) = out.get(before) {
                let at = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                self.last.lock().insert(key, (at, o.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_like: serde_json::Value) -> SourceConfig {
        serde_json::from_value(toml_like).unwrap()
    }

    #[test]
    fn each_kind_says_what_it_needs() {
        let cases = [
            (serde_json::json!({"name": "a", "kind": "git"}), "a git source needs `path`"),
            (serde_json::json!({"name": "a", "kind": "github", "repo": "nope"}), "needs `repo` as owner/name"),
            (serde_json::json!({"name": "a", "kind": "confluence", "spaces": ["ENG"]}), "needs `base_url`"),
            (serde_json::json!({"name": "a", "kind": "jira", "base_url": "https://x"}), "`projects` or `jql`"),
            (serde_json::json!({"name": "a", "kind": "sharepoint"}), "needs `drive`"),
            (
                serde_json::json!({"name": "a", "kind": "filesystem", "path": "/x", "live": true}),
                "cannot be searched live",
            ),
            (
                serde_json::json!({"name": "a", "kind": "jira", "base_url": "https://x", "jql": "x", "deadline_ms": 0}),
                "deadline_ms must be 1 to 30000",
            ),
            (
                serde_json::json!({"name": "a", "kind": "github", "repo": "o/r", "token_env": "A", "token_file": "f"}),
                "not both",
            ),
            (
                serde_json::json!({"name": "a", "kind": "jira", "base_url": "https://x", "jql": "x",
                                   "space_readers": {"OPS": ["team:ops"]}}),
                "reader `team:ops`",
            ),
            (serde_json::json!({"name": "a", "kind": "svn", "path": "/x"}), "kind `svn` is not supported"),
        ];
        for (config, expect) in cases {
            let e = SourceConfig::validate_all(&[parse(config.clone())]).unwrap_err();
            assert!(e.contains(expect), "{config}: {e}");
        }
        let good =
            parse(serde_json::json!({"name": "wiki", "kind": "confluence", "base_url": "https://acme.atlassian.net",
                                            "spaces": ["ENG"], "live": true, "basic_auth": true}));
        SourceConfig::validate_all(std::slice::from_ref(&good)).unwrap();
    }

    #[test]
    fn saas_sources_need_an_http_client_and_a_well_formed_credential() {
        let s =
            parse(serde_json::json!({"name": "wiki", "kind": "confluence", "base_url": "https://acme.atlassian.net",
                                         "spaces": ["ENG"], "live": true, "basic_auth": true}));
        let e = s.build(None, Some("me@acme.example:tok")).err().unwrap();
        assert!(e.contains("no HTTP client"), "{e}");
        struct Never;
        #[async_trait::async_trait]
        impl HttpClient for Never {
            async fn send(
                &self,
                _: plexus_core::http::HttpRequest,
            ) -> Result<plexus_core::http::HttpResponse, plexus_core::http::TransportError> {
                Err(plexus_core::http::TransportError("offline".into()))
            }
        }
        let http: Arc<dyn HttpClient> = Arc::new(Never);
        let e = s.build(Some(&http), Some("just-a-token")).err().unwrap();
        assert!(e.contains("user:token"), "{e}");
        let (_, live) = s.build(Some(&http), Some("me@acme.example:tok")).unwrap();
        assert_eq!(live.unwrap().name(), "wiki");
        let fs = parse(serde_json::json!({"name": "h", "kind": "filesystem", "path": "/srv/h"}));
        assert!(fs.build(None, None).unwrap().1.is_none());
    }
}
