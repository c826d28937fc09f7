//! `plexus.toml`: a raw serde struct (`deny_unknown_fields`), then a
//! validated [`Config`]. Environment overrides are listed once, in [`ENV`],
//! and read through an injectable [`Env`] so tests never touch the process
//! environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Every environment variable Plexus reads, with what it overrides.
pub const ENV: &[(&str, &str)] = &[
    ("PLEXUS_CONFIG", "path of plexus.toml (as --config)"),
    ("PLEXUS_DATA_DIR", "data directory (data.dir)"),
    ("PLEXUS_STORAGE_URL", "database: sqlite path/URL or postgres:// URL (storage.url)"),
    ("PLEXUS_MODULES", "comma-separated modules to serve (modules.enabled)"),
    ("PLEXUS_API_KEY", "API key whose principal a stdio session runs as"),
    (
        "PLEXUS_OTLP_ENDPOINT",
        "OTLP/HTTP collector for call spans, e.g. http://127.0.0.1:4318 (telemetry.otlp_endpoint)",
    ),
    ("PLEXUS_BUS_URL", "NATS server carrying events between cluster nodes, e.g. nats://127.0.0.1:4222 (bus.url)"),
    ("PLEXUS_NODE_ID", "this node's name in a cluster and in the audit log (audit.node_id; as serve --node-id)"),
    ("PLEXUS_MASTER_KEY", "master key for encryption at rest: 64 hex characters (crypto.master_key_file)"),
    ("PLEXUS_LOG", "log filter, e.g. info or plexus=debug (log.level)"),
    ("PLEXUS_LOG_FORMAT", "text or json (log.format)"),
];

/// Where environment variables come from.
pub trait Env {
    /// A `PLEXUS_*` variable listed in [`ENV`].
    fn get(&self, key: &str) -> Option<String>;

    /// A variable the configuration names (`token_env`, `bearer_env`,
    /// `url_env`): secrets stay out of the file, under names the operator
    /// chooses, so they are not in [`ENV`].
    fn named(&self, key: &str) -> Option<String> {
        self.get(key)
    }
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        debug_assert!(ENV.iter().any(|(k, _)| *k == key), "{key} is not listed in ENV");
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }

    fn named(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<u32>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    modules: RawModules,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    roles: HashMap<String, RawRole>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    crypto: RawCrypto,
    #[serde(default)]
    telemetry: RawTelemetry,
    #[serde(default)]
    bus: RawBus,
    #[serde(default)]
    knowledge: RawKnowledge,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    ops: RawOps,
    #[serde(default)]
    console: RawConsole,
    /// `[trading]`: absent means the demo desk's defaults.
    #[serde(default)]
    trading: Option<plexus_trading::settings::TradingSettings>,
    /// `[learning]`: tiers' limits and tenants' default configuration.
    #[serde(default)]
    learning: Option<plexus_learning::settings::LearningSettings>,
}

/// The ops module.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOps {
    /// The shared registry's directory (default `shared` in the data directory).
    shared_dir: Option<PathBuf>,
    /// Where incident notifications go (`[[ops.webhooks]]`).
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

/// An incident notification receiver. Its URL is a secret (a Slack
/// incoming webhook's URL is its credential), so it is read from the
/// environment variable `url_env` names, never from this file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: String,
    /// `slack` (an incoming webhook: Slack's message format) or `webhook`
    /// (a JSON event to any receiver).
    kind: String,
    url_env: String,
    /// An environment variable holding a bearer token sent with each event
    /// (generic webhooks only).
    token_env: Option<String>,
}

/// A configured webhook, its secrets read.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub slack: bool,
    pub url: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("name", &self.name).field("slack", &self.slack).finish_non_exhaustive()
    }
}

/// The health module.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    /// Other FHIR servers patients' data also comes from (`[[health.servers]]`).
    #[serde(default)]
    servers: Vec<plexus_health::client::ServerSettings>,
}

/// The knowledge module.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnowledge {
    /// Where the index and sync state live (default `knowledge` in the data directory).
    dir: Option<PathBuf>,
    /// Sync every source this often while serving (0: only at start and when asked).
    sync_interval_seconds: Option<u64>,
    #[serde(default)]
    sources: Vec<plexus_knowledge::sources::SourceConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    /// OTLP/HTTP base URL of an OpenTelemetry collector; spans are sent to
    /// `{otlp_endpoint}/v1/traces`. Unset: no export.
    otlp_endpoint: Option<String>,
}

/// Events between the nodes of a cluster.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBus {
    /// `nats://host:port` (comma-separated for several servers of one NATS
    /// cluster). Unset: events stay in this process.
    url: Option<String>,
    /// The subject the nodes share (default `plexus.events`); clusters that
    /// share a NATS server need one each.
    subject: Option<String>,
}

/// The cluster bus, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// NATS server URLs.
    pub servers: Vec<String>,
    pub subject: String,
}

/// Encryption at rest. Relative paths are relative to the data directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrypto {
    /// The primary master key (64 hex characters in a file only the server
    /// can read); `PLEXUS_MASTER_KEY` overrides it.
    master_key_file: Option<PathBuf>,
    /// Keys being rotated away from: they still unwrap, never wrap.
    #[serde(default)]
    previous_master_key_files: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    /// `sqlite:///abs/path.db`, a plain path, or `postgres://user@host/db`.
    /// Default: `plexus.db` in the data directory.
    url: Option<String>,
    /// SQLite only: `fsync` (a commit is on disk before the answer, the
    /// default) or `os` (in the kernel; flushed at checkpoints).
    durability: Option<String>,
}

/// Token-bucket limits; a missing rate means unlimited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// Calls per second per principal, and the burst above it.
    principal_per_second: Option<f64>,
    principal_burst: Option<u32>,
    /// Calls per second per tenant (all its principals together).
    tenant_per_second: Option<f64>,
    tenant_burst: Option<u32>,
    /// Per-tier overrides (`[limits.tiers.free]`), chosen by the tenant's
    /// tier in the tenant directory.
    #[serde(default)]
    tiers: HashMap<String, RawTierLimits>,
}

/// One tier's limits; a missing rate means unlimited for that tier.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTierLimits {
    principal_per_second: Option<f64>,
    principal_burst: Option<u32>,
    tenant_per_second: Option<f64>,
    tenant_burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// `fsync` (flushed to disk before answering) or `os` (in the kernel
    /// before answering, flushed every `flush_interval_ms`).
    durability: Option<String>,
    flush_interval_ms: Option<u64>,
    /// `file` (JSON Lines in the data directory) or `database` (the
    /// storage database's append-only audit table).
    sink: Option<String>,
    /// This node's name in the audit log (one hash chain per node).
    node_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    /// `[console.oidc]`: sign in to the console through an OpenID Connect provider.
    oidc: Option<RawOidc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    /// The environment variable holding the client secret (confidential clients).
    client_secret_env: Option<String>,
    /// `https://HOST/console/oidc/callback`, as registered at the provider.
    redirect_url: String,
    scopes: Option<Vec<String>>,
    /// The resource the access token is for (default: `auth.jwt.audience`).
    resource: Option<String>,
    /// The provider's name on the sign-in button (default: the issuer's host).
    label: Option<String>,
}

impl RawOidc {
    fn validate(
        self,
        jwt: Option<&crate::jwks::JwtConfig>,
        env: &dyn Env,
    ) -> anyhow::Result<plexus_server::ConsoleOidc> {
        let Some(jwt) = jwt else {
            bail!("console.oidc needs [auth.jwt]: the provider's access tokens are verified like any bearer token");
        };
        crate::jwks::check_url(&self.issuer).map_err(|e| anyhow::anyhow!("console.oidc.issuer: {e}"))?;
        crate::jwks::check_url(&self.redirect_url).map_err(|e| anyhow::anyhow!("console.oidc.redirect_url: {e}"))?;
        if !self.redirect_url.trim_end_matches('/').ends_with("/console/oidc/callback") {
            bail!("console.oidc.redirect_url must end with /console/oidc/callback, not `{}`", self.redirect_url);
        }
        if self.client_id.trim().is_empty() {
            bail!("console.oidc.client_id must not be empty");
        }
        let client_secret = match &self.client_secret_env {
            Some(var) => Some(
                env.named(var)
                    .ok_or_else(|| anyhow::anyhow!("console.oidc.client_secret_env names `{var}`, which is not set"))?,
            ),
            None => None,
        };
        let scopes = self.scopes.unwrap_or_else(|| vec!["openid".into()]);
        if scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            bail!("console.oidc.scopes: a scope is one word");
        }
        let label = self.label.unwrap_or_else(|| {
            reqwest::Url::parse(&self.issuer).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
        });
        Ok(plexus_server::ConsoleOidc {
            issuer: self.issuer,
            client_id: self.client_id,
            client_secret,
            redirect_url: self.redirect_url,
            scopes,
            resource: Some(self.resource.unwrap_or_else(|| jwt.settings.audience.clone())),
            label,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Option<String>,
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    call_timeout_ms: Option<u64>,
    slow_call_ms: Option<u64>,
    page_size: Option<usize>,
    drain_timeout_ms: Option<u64>,
    /// On shutdown, serve on this long with /readyz at 503 (behind a
    /// balancer: at least its health check's fall × interval). Default 0.
    drain_delay_ms: Option<u64>,
    fast_path: Option<bool>,
    /// Serve the web console at `/console` (default true).
    console: Option<bool>,
    /// `false` drops authentication, tenancy, limits, policy and audit from
    /// the pipeline: only for measuring what they cost. Never in production.
    trust_layers: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModules {
    enabled: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    /// Principal of stdio sessions.
    local_subject: Option<String>,
    local_tenant: Option<String>,
    local_roles: Option<Vec<String>>,
    /// Roles of anonymous callers when served with --allow-anonymous.
    anonymous_roles: Option<Vec<String>>,
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
    /// This server's resource identifier (its MCP endpoint URL) for OAuth
    /// Protected Resource Metadata; tokens must name it as audience.
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    /// Bearer JWT access tokens from an OAuth 2.1 authorization server.
    jwt: Option<crate::jwks::RawJwt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    /// Hex SHA-256 of the key; the key itself is never stored.
    sha256: String,
    tenant: Option<String>,
    roles: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    prompts: Vec<String>,
    /// `mon-fri 08:00-18:00` (UTC); none means always.
    #[serde(default)]
    windows: Vec<String>,
    #[serde(default)]
    conditions: Vec<RawCondition>,
}

/// A condition on the arguments of the tools matching `tools`; exactly one
/// of `max`, `min`, `one_of`, `is_caller_tenant`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    tools: String,
    /// JSON pointer into the arguments, e.g. `/order/quantity`.
    argument: String,
    max: Option<f64>,
    min: Option<f64>,
    one_of: Option<Vec<serde_json::Value>>,
    is_caller_tenant: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

/// An API key entry.
#[derive(Debug, Clone)]
pub struct ApiKeyEntry {
    pub name: String,
    pub sha256: String,
    pub tenant: String,
    pub roles: Vec<String>,
}

/// Grants of one role, validated.
#[derive(Debug, Clone, Default)]
pub struct RoleConfig {
    pub tools: Vec<String>,
    pub resources: Vec<String>,
    pub prompts: Vec<String>,
    pub windows: Vec<plexus_core::policy::TimeWindow>,
    pub conditions: Vec<plexus_core::policy::Condition>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub call_timeout: Duration,
    pub slow_call: Duration,
    pub page_size: usize,
    pub drain_timeout: Duration,
    pub drain_delay: Duration,
    /// Serve plain stateless tool calls without rmcp's session machinery.
    pub fast_path: bool,
    /// Serve the web console at `/console`.
    pub console: bool,
    /// Authentication, tenancy, limits, policy and audit in the pipeline.
    pub trust_layers: bool,
    pub data_dir: PathBuf,
    pub modules: Vec<String>,
    pub local_subject: String,
    pub local_tenant: String,
    pub local_roles: Vec<String>,
    pub anonymous_roles: Vec<String>,
    pub api_keys: Vec<ApiKeyEntry>,
    pub roles: HashMap<String, RoleConfig>,
    pub stdio_api_key: Option<String>,
    pub log_level: String,
    pub log_json: bool,
    pub audit_durability: plexus_store::Durability,
    /// The file this configuration was read from, if any (reloads watch it).
    pub source: Option<PathBuf>,
    pub quotas: plexus_core::ratelimit::Quotas,
    /// Quotas by tenant tier, replacing `quotas` for tenants of that tier.
    pub tier_quotas: HashMap<String, plexus_core::ratelimit::Quotas>,
    /// `[auth.jwt]`: bearer JWTs verified against the authorization server's keys.
    pub jwt: Option<crate::jwks::JwtConfig>,
    /// OAuth Protected Resource Metadata, when `auth.resource` is set.
    pub protected_resource: Option<plexus_server::ProtectedResource>,
    /// `[console.oidc]`: OpenID Connect sign-in for the console.
    pub console_oidc: Option<plexus_server::ConsoleOidc>,
    /// Explicit database URL; `None` means `plexus.db` in the data directory.
    pub storage_url: Option<String>,
    /// `storage.durability`: when a SQLite commit counts as done.
    pub storage_durability: plexus_store::Commit,
    /// Audit records go to the database rather than the JSON Lines file.
    pub audit_in_database: bool,
    pub node_id: String,
    /// `PLEXUS_MASTER_KEY`, parsed (its `Debug` shows the key id only).
    pub master_key_env: Option<plexus_store::MasterKey>,
    /// `crypto.master_key_file` as written; relative paths are resolved
    /// against the data directory when read (after `--data-dir`).
    pub master_key_file: Option<PathBuf>,
    /// `crypto.previous_master_key_files`, likewise.
    pub previous_master_key_files: Vec<PathBuf>,
    /// Where call spans go (OTLP/HTTP JSON), if anywhere.
    pub otlp_traces_url: Option<String>,
    /// `[bus]`: events carried to and from the other nodes over NATS.
    pub bus: Option<BusConfig>,
    /// `ops.shared_dir` as written (see [`Config::shared_dir`]).
    pub shared_dir_setting: PathBuf,
    /// `[[ops.webhooks]]` with their URLs and tokens.
    pub ops_webhooks: Vec<Webhook>,
    /// `[trading]`, checked (the demo desk's defaults when absent).
    pub trading: plexus_trading::settings::TradingSettings,
    /// `[learning]`, validated (built-in tiers and defaults when absent).
    pub learning: plexus_learning::settings::LearningSettings,
    /// `knowledge.dir` as written (see [`Config::knowledge_dir`]).
    pub knowledge_dir_setting: PathBuf,
    pub knowledge_sync_interval: Duration,
    pub knowledge_sources: Vec<plexus_knowledge::sources::SourceConfig>,
    /// Credentials of knowledge sources read from the environment variables
    /// their `token_env` names (`tenant/source` → secret).
    pub knowledge_secrets: Secrets,
    /// `[[health.servers]]`: key files are read, relative to the
    /// configuration file's directory, when the module is built.
    pub health_servers: Vec<plexus_health::client::ServerSettings>,
    /// The bearer tokens of health servers read from the environment
    /// variables their `bearer_env` names (variable → token).
    pub health_secrets: Secrets,
}

/// Secrets by name; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(pub std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Config {
    /// The database to open.
    pub fn storage_url(&self) -> String {
        self.storage_url.clone().unwrap_or_else(|| self.data_dir.join("plexus.db").display().to_string())
    }

    /// The ops module's shared registry, in the data directory unless
    /// absolute.
    pub fn shared_dir(&self) -> PathBuf {
        self.data_dir.join(&self.shared_dir_setting)
    }

    /// The knowledge module's directory (index and sync state), in the data
    /// directory unless configured absolute.
    pub fn knowledge_dir(&self) -> PathBuf {
        self.data_dir.join(&self.knowledge_dir_setting)
    }

    /// Whether a primary master key is configured (file or environment).
    pub fn has_master_key(&self) -> bool {
        self.master_key_env.is_some() || self.master_key_file.is_some()
    }

    /// The master keys for encryption at rest, read now: the primary from
    /// `PLEXUS_MASTER_KEY` or `crypto.master_key_file`, then the previous
    /// ones. `None` when no primary is configured.
    pub fn keyring(&self) -> anyhow::Result<Option<plexus_store::Keyring>> {
        let primary = match (&self.master_key_env, &self.master_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(path)) => {
                plexus_store::MasterKey::read_file(&self.data_dir.join(path)).context("crypto.master_key_file")?
            }
            (None, None) => return Ok(None),
        };
        let mut previous = Vec::new();
        for path in &self.previous_master_key_files {
            previous.push(
                plexus_store::MasterKey::read_file(&self.data_dir.join(path))
                    .context("crypto.previous_master_key_files")?,
            );
        }
        Ok(Some(plexus_store::Keyring::new(primary, previous)))
    }
}

/// Modules this build can serve, in listing order.
pub const KNOWN_MODULES: &[&str] = &["system", "knowledge", "health", "ops", "trading", "learning", "conformance"];

/// Modules served when the configuration names none.
pub const DEFAULT_MODULES: &[&str] = &["system"];

/// `[bus]` checked: NATS URLs and a subject NATS accepts for publishing.
fn bus_config(url: Option<String>, subject: Option<String>) -> anyhow::Result<Option<BusConfig>> {
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        if subject.is_some() {
            bail!("bus.subject is set but bus.url is not: name the NATS server (bus.url = \"nats://127.0.0.1:4222\")");
        }
        return Ok(None);
    };
    let servers: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
    for server in &servers {
        let scheme = server.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("nats" | "tls")) {
            bail!("bus.url: `{server}` is not a NATS server URL (nats://host:port or tls://host:port)");
        }
    }
    let subject = subject.unwrap_or_else(|| "plexus.events".into());
    let token_ok = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !subject.split('.').all(token_ok) {
        bail!("bus.subject: `{subject}` must be dot-separated tokens of letters, digits, - and _ (e.g. plexus.events)");
    }
    Ok(Some(BusConfig { servers, subject }))
}

/// A node id names a hash chain and travels in NATS headers: letters,
/// digits, `.`, `-` and `_`, at most 64.
fn check_node_id(id: &str) -> anyhow::Result<()> {
    let ok =
        (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        bail!("the node id `{id}` must be 1 to 64 letters, digits, `.`, `-` or `_`");
    }
    Ok(())
}

fn condition(role: &str, c: RawCondition) -> anyhow::Result<plexus_core::policy::Condition> {
    use plexus_core::policy::{Check, Condition, Pattern};
    let tools = Pattern::parse(&c.tools)
        .ok_or_else(|| anyhow::anyhow!("roles.{role}.conditions: pattern `{}` is invalid", c.tools))?;
    if !c.argument.starts_with('/') {
        bail!("roles.{role}.conditions: argument `{}` must be a JSON pointer such as `/quantity`", c.argument);
    }
    let mut checks = Vec::new();
    if let Some(m) = c.max {
        checks.push(Check::Max(m));
    }
    if let Some(m) = c.min {
        checks.push(Check::Min(m));
    }
    if let Some(v) = c.one_of {
        checks.push(Check::OneOf(v));
    }
    if c.is_caller_tenant == Some(true) {
        checks.push(Check::IsCallerTenant);
    }
    match checks.len() {
        1 => Ok(Condition { tools, pointer: c.argument, check: checks.remove(0) }),
        n => bail!(
            "roles.{role}.conditions on `{}`: give exactly one of max, min, one_of, is_caller_tenant (got {n})",
            c.argument
        ),
    }
}

fn check_pattern(role: &str, p: &str) -> anyhow::Result<()> {
    if plexus_core::policy::Pattern::parse(p).is_none() {
        bail!("roles.{role}: pattern `{p}` is invalid (use a name, `*`, or one `*` wildcard)");
    }
    Ok(())
}

impl Config {
    /// Parse and validate a configuration text.
    /// Name this node (`serve --node-id`), checked like `audit.node_id`.
    pub fn set_node_id(&mut self, id: &str) -> anyhow::Result<()> {
        check_node_id(id)?;
        self.node_id = id.to_owned();
        Ok(())
    }

    pub fn parse(text: &str, env: &dyn Env) -> anyhow::Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        Self::validate(raw, env)
    }

    /// Load from a file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> anyhow::Result<Self> {
        let from_env = env.get("PLEXUS_CONFIG").map(PathBuf::from);
        match path.map(Path::to_path_buf).or(from_env) {
            Some(p) => {
                let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
                let mut c =
                    Self::parse(&text, env).with_context(|| format!("invalid configuration in {}", p.display()))?;
                c.source = Some(p);
                Ok(c)
            }
            None => Self::validate(RawConfig::default(), env),
        }
    }

    fn validate(raw: RawConfig, env: &dyn Env) -> anyhow::Result<Self> {
        if let Some(v) = raw.version.filter(|&v| v != 1) {
            bail!("version {v} is not supported (this build reads version 1)");
        }
        let mut modules: Vec<String> = match env.get("PLEXUS_MODULES") {
            Some(m) => m.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            None => raw.modules.enabled.unwrap_or_else(|| DEFAULT_MODULES.iter().map(|s| s.to_string()).collect()),
        };
        modules.dedup();
        for m in &modules {
            if !KNOWN_MODULES.contains(&m.as_str()) {
                bail!("modules.enabled: unknown module `{m}` (known: {})", KNOWN_MODULES.join(", "));
            }
        }
        let mut roles: HashMap<String, RoleConfig> = HashMap::new();
        for (name, r) in raw.roles {
            for p in r.tools.iter().chain(&r.resources).chain(&r.prompts) {
                check_pattern(&name, p)?;
            }
            let mut windows = Vec::new();
            for w in &r.windows {
                windows.push(plexus_core::policy::TimeWindow::parse(w).ok_or_else(|| {
                    anyhow::anyhow!("roles.{name}.windows: `{w}` is not like `mon-fri 08:00-18:00` (UTC)")
                })?);
            }
            let mut conditions = Vec::new();
            for c in r.conditions {
                conditions.push(condition(&name, c)?);
            }
            roles.insert(
                name,
                RoleConfig { tools: r.tools, resources: r.resources, prompts: r.prompts, windows, conditions },
            );
        }
        // The built-in admin role may use everything unless the file redefines it.
        roles.entry("admin".into()).or_insert_with(|| RoleConfig {
            tools: vec!["*".into()],
            resources: vec!["*".into()],
            prompts: vec!["*".into()],
            ..RoleConfig::default()
        });
        let mut api_keys = Vec::new();
        for k in raw.auth.api_keys {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("auth.api_keys `{}`: sha256 must be 64 hex digits", k.name);
            }
            api_keys.push(ApiKeyEntry {
                name: k.name,
                sha256: k.sha256.to_ascii_lowercase(),
                tenant: k.tenant.unwrap_or_else(|| "default".into()),
                roles: k.roles,
            });
        }
        let s = raw.server;
        let max_body_bytes = s.max_body_bytes.unwrap_or(4 * 1024 * 1024);
        if max_body_bytes < 1024 {
            bail!("server.max_body_bytes must be at least 1024");
        }
        let page_size = s.page_size.unwrap_or(plexus_core::registry::DEFAULT_PAGE_SIZE);
        if page_size == 0 {
            bail!("server.page_size must be at least 1");
        }
        let call_timeout_ms = s.call_timeout_ms.unwrap_or(30_000);
        if call_timeout_ms == 0 {
            bail!("server.call_timeout_ms must be at least 1");
        }
        let log_format = env.get("PLEXUS_LOG_FORMAT").or(raw.log.format).unwrap_or_else(|| "text".into());
        let log_json = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("log.format must be `text` or `json`, not `{other}`"),
        };
        let flush = Duration::from_millis(raw.audit.flush_interval_ms.unwrap_or(1000).max(1));
        let audit_durability = match raw.audit.durability.as_deref().unwrap_or("fsync") {
            "fsync" => plexus_store::Durability::Fsync,
            "os" => plexus_store::Durability::Os { flush_every: flush },
            other => bail!("audit.durability must be `fsync` or `os`, not `{other}`"),
        };
        let storage_durability = match raw.storage.durability.as_deref().unwrap_or("fsync") {
            "fsync" => plexus_store::Commit::Fsync,
            "os" => plexus_store::Commit::Os,
            other => bail!("storage.durability must be `fsync` or `os`, not `{other}`"),
        };
        let limit = |what: &str, rate: Option<f64>, burst: Option<u32>| -> anyhow::Result<_> {
            match rate {
                None => Ok(None),
                Some(r) => {
                    let burst = burst.unwrap_or_else(|| (r.ceil() as u32).max(1));
                    plexus_core::ratelimit::Limits::per_second(r, burst)
                        .map(Some)
                        .map_err(|e| anyhow::anyhow!("limits.{what}: {e}"))
                }
            }
        };
        let quotas = plexus_core::ratelimit::Quotas {
            principal: limit("principal_per_second", raw.limits.principal_per_second, raw.limits.principal_burst)?,
            tenant: limit("tenant_per_second", raw.limits.tenant_per_second, raw.limits.tenant_burst)?,
        };
        let mut tier_quotas = HashMap::new();
        for (tier, t) in raw.limits.tiers {
            if tier.trim().is_empty() {
                bail!("limits.tiers: a tier name is empty");
            }
            let q = plexus_core::ratelimit::Quotas {
                principal: limit(
                    &format!("tiers.{tier}.principal_per_second"),
                    t.principal_per_second,
                    t.principal_burst,
                )?,
                tenant: limit(&format!("tiers.{tier}.tenant_per_second"), t.tenant_per_second, t.tenant_burst)?,
            };
            tier_quotas.insert(tier, q);
        }
        let protected_resource = match raw.auth.resource {
            Some(r) if r.starts_with("http://") || r.starts_with("https://") => {
                Some(plexus_server::ProtectedResource {
                    resource: r,
                    authorization_servers: raw.auth.authorization_servers,
                    scopes_supported: raw.auth.scopes_supported,
                })
            }
            Some(r) => bail!("auth.resource `{r}` must be the MCP endpoint's http(s) URL"),
            None => None,
        };
        let jwt = raw.auth.jwt.map(crate::jwks::RawJwt::validate).transpose()?;
        let console_oidc = raw.console.oidc.map(|o| o.validate(jwt.as_ref(), env)).transpose()?;
        let audit_in_database = match raw.audit.sink.as_deref().unwrap_or("file") {
            "file" => false,
            "database" => true,
            other => bail!("audit.sink must be `file` or `database`, not `{other}`"),
        };
        let data_dir = env
            .get("PLEXUS_DATA_DIR")
            .map(PathBuf::from)
            .or(raw.data.dir)
            .unwrap_or_else(|| PathBuf::from("plexus-data"));
        let master_key_env = env
            .get("PLEXUS_MASTER_KEY")
            .map(|text| plexus_store::MasterKey::parse(&text))
            .transpose()
            .map_err(|e| anyhow::anyhow!("PLEXUS_MASTER_KEY: {e}"))?;
        let otlp_traces_url = env
            .get("PLEXUS_OTLP_ENDPOINT")
            .or(raw.telemetry.otlp_endpoint)
            .filter(|e| !e.trim().is_empty())
            .map(|e| crate::otlp::traces_url(&e))
            .transpose()?;
        let bus = bus_config(env.get("PLEXUS_BUS_URL").or(raw.bus.url), raw.bus.subject)?;
        let node_id = env.get("PLEXUS_NODE_ID").or(raw.audit.node_id).unwrap_or_else(|| "local".into());
        check_node_id(&node_id)?;
        plexus_knowledge::sources::SourceConfig::validate_all(&raw.knowledge.sources)
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut knowledge_secrets = Secrets::default();
        for s in &raw.knowledge.sources {
            if let Some(var) = &s.token_env {
                let value = env.named(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "knowledge source `{}`: environment variable {var} (its token_env) is not set",
                        s.name
                    )
                })?;
                knowledge_secrets.0.insert(format!("{}/{}", s.tenant, s.name), value);
            }
        }
        let mut health_names = std::collections::HashSet::new();
        let mut health_secrets = Secrets::default();
        for s in &raw.health.servers {
            if !health_names.insert(s.name.as_str()) {
                bail!("health.servers: two servers are named `{}`", s.name);
            }
            if let Some(var) = &s.bearer_env {
                let value = env.named(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "health server `{}`: environment variable {var} (its bearer_env) is not set",
                        s.name
                    )
                })?;
                health_secrets.0.insert(var.clone(), value);
            }
        }
        let mut ops_webhooks = Vec::new();
        for w in &raw.ops.webhooks {
            let slack = match w.kind.as_str() {
                "slack" => true,
                "webhook" => false,
                k => bail!("ops.webhooks `{}`: kind must be `slack` or `webhook`, not `{k}`", w.name),
            };
            if ops_webhooks.iter().any(|o: &Webhook| o.name == w.name) {
                bail!("ops.webhooks: two receivers are named `{}`", w.name);
            }
            let read = |var: &str, what: &str| {
                env.named(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                    anyhow::anyhow!("ops webhook `{}`: environment variable {var} (its {what}) is not set", w.name)
                })
            };
            let url = read(&w.url_env, "url_env")?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("ops webhook `{}`: the URL in {} is not an http(s) URL", w.name, w.url_env);
            }
            let token = w.token_env.as_deref().map(|v| read(v, "token_env")).transpose()?;
            if slack && token.is_some() {
                bail!("ops webhook `{}`: Slack incoming webhooks take no token (the URL is the credential)", w.name);
            }
            ops_webhooks.push(Webhook { name: w.name.clone(), slack, url, token });
        }
        let trading = raw.trading.unwrap_or_default();
        trading.check().map_err(|e| anyhow::anyhow!("trading: {e}"))?;
        let learning = raw.learning.unwrap_or_default();
        learning.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(Config {
            trading,
            learning,
            ops_webhooks,
            health_servers: raw.health.servers,
            health_secrets,
            knowledge_secrets,
            shared_dir_setting: raw.ops.shared_dir.unwrap_or_else(|| PathBuf::from("shared")),
            knowledge_dir_setting: raw.knowledge.dir.unwrap_or_else(|| PathBuf::from("knowledge")),
            knowledge_sync_interval: Duration::from_secs(raw.knowledge.sync_interval_seconds.unwrap_or(300)),
            knowledge_sources: raw.knowledge.sources,
            otlp_traces_url,
            bus,
            master_key_env,
            master_key_file: raw.crypto.master_key_file,
            previous_master_key_files: raw.crypto.previous_master_key_files,
            audit_in_database,
            node_id,
            jwt,
            storage_url: env.get("PLEXUS_STORAGE_URL").or(raw.storage.url),
            storage_durability,
            protected_resource,
            console_oidc,
            quotas,
            tier_quotas,
            source: None,
            audit_durability,
            name: s.name.unwrap_or_else(|| "plexus".into()),
            allowed_hosts: s
                .allowed_hosts
                .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]),
            allowed_origins: s.allowed_origins.unwrap_or_else(|| {
                vec!["http://localhost:*".into(), "http://127.0.0.1:*".into(), "http://[::1]:*".into()]
            }),
            max_body_bytes,
            call_timeout: Duration::from_millis(call_timeout_ms),
            slow_call: Duration::from_millis(s.slow_call_ms.unwrap_or(100)),
            page_size,
            drain_timeout: Duration::from_millis(s.drain_timeout_ms.unwrap_or(10_000)),
            drain_delay: Duration::from_millis(s.drain_delay_ms.unwrap_or(0)),
            fast_path: s.fast_path.unwrap_or(true),
            console: s.console.unwrap_or(true),
            trust_layers: s.trust_layers.unwrap_or(true),
            data_dir,
            modules,
            local_subject: raw.auth.local_subject.unwrap_or_else(|| "local".into()),
            local_tenant: raw.auth.local_tenant.unwrap_or_else(|| "default".into()),
            local_roles: raw.auth.local_roles.unwrap_or_else(|| vec!["admin".into()]),
            anonymous_roles: raw.auth.anonymous_roles.unwrap_or_else(|| vec!["admin".into()]),
            api_keys,
            roles,
            stdio_api_key: env.get("PLEXUS_API_KEY"),
            log_level: env.get("PLEXUS_LOG").or(raw.log.level).unwrap_or_else(|| "info,rmcp=warn".into()),
            log_json,
        })
    }

    /// Bind address check for `--http`.
    pub fn parse_addr(addr: &str) -> anyhow::Result<SocketAddr> {
        addr.parse().with_context(|| format!("`{addr}` is not an address such as 127.0.0.1:8080"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_sane() {
        let c = Config::parse("", &env(&[])).unwrap();
        assert_eq!(c.modules, vec!["system"]);
        assert_eq!(c.call_timeout, Duration::from_secs(30));
        assert!(c.roles.contains_key("admin"));
        assert!(!c.log_json);
        assert_eq!(c.audit_durability, plexus_store::Durability::Fsync);
        assert!(c.trust_layers && c.fast_path);
        let c = Config::parse("[audit]\ndurability = 'os'\nflush_interval_ms = 20\n", &env(&[])).unwrap();
        assert_eq!(c.audit_durability, plexus_store::Durability::Os { flush_every: Duration::from_millis(20) });
        let e = Config::parse("[audit]\ndurability = 'never'\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("audit.durability"), "{e}");
        assert_eq!(c.storage_durability, plexus_store::Commit::Fsync);
        let c = Config::parse("[storage]\ndurability = 'os'\n", &env(&[])).unwrap();
        assert_eq!(c.storage_durability, plexus_store::Commit::Os);
        let e = Config::parse("[storage]\ndurability = 'off'\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("storage.durability must be `fsync` or `os`, not `off`"), "{e}");
    }

    #[test]
    fn the_cluster_bus_and_the_node_id() {
        let c = Config::parse("", &env(&[])).unwrap();
        assert_eq!((c.bus, c.node_id.as_str()), (None, "local"));
        let c = Config::parse("[bus]\nurl = 'nats://10.0.0.1:4222, nats://10.0.0.2:4222'\n", &env(&[])).unwrap();
        let bus = c.bus.unwrap();
        assert_eq!(bus.servers, ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]);
        assert_eq!(bus.subject, "plexus.events");
        let c = Config::parse(
            "[audit]\nnode_id = 'n1'\n",
            &env(&[("PLEXUS_BUS_URL", "nats://127.0.0.1:4222"), ("PLEXUS_NODE_ID", "node-2")]),
        )
        .unwrap();
        assert_eq!((c.bus.unwrap().servers, c.node_id.as_str()), (vec!["nats://127.0.0.1:4222".to_owned()], "node-2"));
        for (text, expect) in [
            ("[bus]\nurl = 'http://x:4222'\n", "is not a NATS server URL"),
            ("[bus]\nurl = 'nats://x:4222'\nsubject = 'plexus.*'\n", "bus.subject: `plexus.*` must be"),
            ("[bus]\nurl = 'nats://x:4222'\nsubject = 'a..b'\n", "must be dot-separated tokens"),
            ("[bus]\nsubject = 'a.b'\n", "bus.subject is set but bus.url is not"),
            ("[audit]\nnode_id = 'node 1'\n", "the node id `node 1` must be"),
            ("[audit]\nnode_id = ''\n", "the node id `` must be"),
            ("[bus]\nurls = 'nats://x'\n", "unknown field `urls`"),
        ] {
            let e = Config::parse(text, &env(&[])).unwrap_err().to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
    }

    #[test]
    fn the_duplicate_order_window_is_configurable() {
        let window = |text: &str| Config::parse(text, &env(&[])).map(|c| c.trading.check().map(|t| t.pretrade));
        let default = window("").unwrap().unwrap();
        assert_eq!(default.duplicate_window_ns, 1_000_000_000);
        let off = window("[trading]\nduplicate_window_ms = 0\n").unwrap().unwrap();
        assert_eq!(off.duplicate_window_ns, 0);
        let e = window("[trading]\nduplicate_window_ms = 3600001\n").unwrap_err().to_string();
        assert!(e.contains("trading.duplicate_window_ms must be at most 3600000"), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_precise_errors() {
        let e = Config::parse("[server]\nmax_body = 3\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown field `max_body`"), "{e}");
        let e = Config::parse("[modules]\nenabled = [\"nope\"]\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown module `nope`"), "{e}");
        let e = Config::parse("version = 2\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("version 2"), "{e}");
        let e = Config::parse("[roles.x]\ntools = [\"a*b*\"]\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("roles.x"), "{e}");
        let e =
            Config::parse("[[auth.api_keys]]\nname='k'\nsha256='zz'\nroles=[]\n", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn roles_with_conditions_and_windows() {
        let text = r#"
[roles.trader]
tools = ["place_order"]
windows = ["mon-fri 08:00-18:00"]
[[roles.trader.conditions]]
tools = "place_order"
argument = "/quantity"
max = 1000
"#;
        let c = Config::parse(text, &env(&[])).unwrap();
        let r = &c.roles["trader"];
        assert_eq!(r.windows.len(), 1);
        assert_eq!(r.conditions[0].check, plexus_core::policy::Check::Max(1000.0));
        let bad = text.replace("max = 1000", "max = 1000\nmin = 1");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("exactly one of"), "{e}");
        let bad = text.replace("mon-fri 08:00-18:00", "weekdays 8-18");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("roles.trader.windows"), "{e}");
        let bad = text.replace("\"/quantity\"", "\"quantity\"");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("JSON pointer"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::parse(
            "[modules]\nenabled=[\"system\"]\n[data]\ndir='/a'\n",
            &env(&[
                ("PLEXUS_MODULES", "conformance, system"),
                ("PLEXUS_DATA_DIR", "/b"),
                ("PLEXUS_LOG_FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(c.modules, vec!["conformance", "system"]);
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert!(c.log_json);
    }

    #[test]
    fn master_keys_come_from_files_under_the_data_dir_or_the_environment() {
        let dir = std::env::temp_dir().join(format!("plexus-cfg-crypto-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let primary = plexus_store::MasterKey::generate_file(&dir.join("k1")).unwrap();
        let old = plexus_store::MasterKey::generate_file(&dir.join("k2")).unwrap();
        let text = format!(
            "[data]\ndir = '{}'\n[crypto]\nmaster_key_file = 'k1'\nprevious_master_key_files = ['k2']\n",
            dir.display()
        );
        let c = Config::parse(&text, &env(&[])).unwrap();
        let ring = c.keyring().unwrap().unwrap();
        assert_eq!(ring.ids(), [primary.id(), old.id()]);
        // the environment's key is the primary; the previous keys still unwrap
        let (env_key, env_text) = plexus_store::MasterKey::generate().unwrap();
        let c = Config::parse(&text, &env(&[("PLEXUS_MASTER_KEY", env_text.as_str())])).unwrap();
        assert_eq!(c.keyring().unwrap().unwrap().ids(), [env_key.id(), old.id()]);
        assert!(!format!("{c:?}").contains(env_text.as_str()), "Debug never shows the key");
        // none configured: no keyring; a missing file: a precise error
        assert!(Config::parse("", &env(&[])).unwrap().keyring().unwrap().is_none());
        let c = Config::parse("[crypto]\nmaster_key_file = '/nonexistent/k'\n", &env(&[])).unwrap();
        let e = format!("{:#}", c.keyring().unwrap_err());
        assert!(e.contains("crypto.master_key_file") && e.contains("/nonexistent/k"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_in_the_data_directory_follow_a_later_data_dir_override() {
        let mut c =
            Config::parse("[knowledge]\ndir = 'kb'\n[crypto]\nmaster_key_file = 'master.key'\n", &env(&[])).unwrap();
        c.data_dir = PathBuf::from("/srv/plexus");
        assert_eq!(c.knowledge_dir(), PathBuf::from("/srv/plexus/kb"));
        let e = format!("{:#}", c.keyring().unwrap_err());
        assert!(e.contains("/srv/plexus/master.key"), "{e}");
        let c = Config::parse("[knowledge]\ndir = '/var/lib/kb'\n", &env(&[])).unwrap();
        assert_eq!(c.knowledge_dir(), PathBuf::from("/var/lib/kb"), "absolute stays");
    }

    #[test]
    fn health_servers_are_read_with_their_tokens_from_the_environment() {
        let toml = "[[health.servers]]\nname = 'north'\nbase_url = 'https://north.example/fhir'\n\
                    systems = ['urn:oid:1.2.3']\nbearer_env = 'NORTH_TOKEN'\n";
        let c = Config::parse(toml, &env(&[("NORTH_TOKEN", "s3cret")])).unwrap();
        assert_eq!(c.health_servers.len(), 1);
        assert_eq!(c.health_servers[0].systems, ["urn:oid:1.2.3"]);
        assert_eq!(c.health_secrets.0["NORTH_TOKEN"], "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"), "secrets never printed");
        let e = Config::parse(toml, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("health server `north`") && e.contains("NORTH_TOKEN"), "{e}");
        let twice = format!("{toml}{}", toml.replace("bearer_env = 'NORTH_TOKEN'\n", ""));
        let e = Config::parse(&twice, &env(&[("NORTH_TOKEN", "x")])).unwrap_err().to_string();
        assert!(e.contains("two servers are named `north`"), "{e}");
        let e = Config::parse("[[health.servers]]\nname = 'x'\nbase_url = 'https://x'\nsytems = []\n", &env(&[]))
            .unwrap_err();
        assert!(format!("{e:#}").contains("sytems"), "{e:#}");
    }

    #[test]
    fn console_oidc_is_checked() {
        let jwt = "[auth.jwt]\nissuer = 'https://id.example'\naudience = 'https://mcp.example/mcp'\njwks_url = 'https://id.example/jwks'\n";
        let oidc = "[console.oidc]\nissuer = 'https://id.example'\nclient_id = 'console'\nredirect_url = 'https://mcp.example/console/oidc/callback'\n";
        let err = |text: &str, vars: &[(&str, &str)]| format!("{:#}", Config::parse(text, &env(vars)).unwrap_err());
        assert!(err(oidc, &[]).contains("console.oidc needs [auth.jwt]"));
        let ok = Config::parse(&format!("{jwt}{oidc}"), &env(&[])).unwrap().console_oidc.unwrap();
        assert_eq!(
            ok.resource.as_deref(),
            Some("https://mcp.example/mcp"),
            "the resource defaults to the JWT audience"
        );
        assert_eq!((ok.scopes, ok.label, ok.client_secret), (vec!["openid".to_owned()], "id.example".to_owned(), None));
        let secret = format!("{jwt}{oidc}client_secret_env = 'CONSOLE_SECRET'\n");
        assert!(err(&secret, &[]).contains("`CONSOLE_SECRET`, which is not set"));
        let with = Config::parse(&secret, &env(&[("CONSOLE_SECRET", "s")])).unwrap();
        assert_eq!(with.console_oidc.unwrap().client_secret.as_deref(), Some("s"));
        let wrong = format!("{jwt}{}", oidc.replace("/console/oidc/callback", "/callback"));
        assert!(err(&wrong, &[]).contains("must end with /console/oidc/callback"));
        let plain = format!("{jwt}{}", oidc.replace("issuer = 'https://id.example'", "issuer = 'http://id.example'"));
        assert!(err(&plain, &[]).contains("console.oidc.issuer"), "{}", err(&plain, &[]));
        assert!(err(&format!("{jwt}{oidc}colour = 1\n"), &[]).contains("colour"));
    }
}
