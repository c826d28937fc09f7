//! A FHIR R4 REST client for outside FHIR servers (hospitals' EHRs), from
//! which the module fetches a patient's data.
//!
//! - [`FhirClient`]: `read` and `search` of one server through core's
//!   [`HttpClient`] port. Every resource type, id and search parameter is
//!   checked before a URL is built and every value is percent-encoded;
//!   searches follow `Bundle.link[next]` (same origin as the base URL only:
//!   credentials never go elsewhere) up to a page limit; 429/5xx/connection
//!   errors are retried per the server's [`RetryPolicy`]; an
//!   `OperationOutcome` in an error body becomes the error's text; a call
//!   never outlives its deadline ([`FhirError::Deadline`]).
//! - [`Auth`]: none, a static bearer token, or SMART Backend Services
//!   (client credentials with a signed JWT assertion, RS384 or ES384): the
//!   token is cached until shortly before it expires, refreshed by one
//!   caller at a time, and dropped and fetched again once when the FHIR
//!   server answers 401.
//! - [`Router`]: which servers hold patients of an identifier system, and
//!   [`Router::patient_everything`], one patient's resources of several
//!   types from one server, type by type.
//! - [`ServerSettings`]: the `[[health.servers]]` configuration, resolved to
//!   a [`ServerConfig`] (key file read, token taken from the environment).
//!
//! Secrets (tokens, keys) never appear in `Debug` output or errors; error
//! messages name the server and the resource type, not search values
//! (patient identifiers are PHI).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plexus_core::http::{self, HttpClient, HttpError, HttpRequest, HttpResponse, Method, RetryPolicy, TransportError};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::fhir;

/// The media type asked for and sent.
pub const FHIR_JSON: &str = "application/fhir+json";

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest a client assertion is valid (SMART: at most five minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------
// Errors.

/// Why a call to a FHIR server failed. Messages name the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FhirError {
    /// An argument refused before anything was sent.
    #[error("invalid {0}")]
    Invalid(String),
    /// Configuration that cannot work (bad URL, unreadable key, missing
    /// environment variable).
    #[error("FHIR server `{server}`: configuration: {message}")]
    Config { server: String, message: String },
    /// 404 or 410.
    #[error("FHIR server `{server}`: {what} not found{}", tail(.detail))]
    NotFound { server: String, what: String, detail: Option<String> },
    /// 401, after a fresh token when the server uses SMART.
    #[error("FHIR server `{server}`: unauthorized (401): the credential was refused{}", tail(.detail))]
    Unauthorized { server: String, detail: Option<String> },
    /// 403.
    #[error("FHIR server `{server}`: forbidden (403): the credential may not read {what}{}", tail(.detail))]
    Forbidden { server: String, what: String, detail: Option<String> },
    /// Another HTTP failure, after any retries.
    #[error("FHIR server `{server}`: {what}: {source}{}", tail(.detail))]
    Http { server: String, what: String, source: HttpError, detail: Option<String> },
    /// The call's deadline passed.
    #[error("FHIR server `{server}`: no answer before the deadline")]
    Deadline { server: String },
    /// A response without the shape FHIR R4 gives it.
    #[error("FHIR server `{server}`: unexpected response: {what}")]
    Garbage { server: String, what: String },
    /// The SMART token endpoint refused or failed.
    #[error("FHIR server `{server}`: SMART token request failed: {message}")]
    Token { server: String, message: String },
    /// A next-page link to another origin than the server's: not followed.
    #[error("FHIR server `{server}`: refused to follow a link to another origin ({origin}) than the server's")]
    OffOrigin { server: String, origin: String },
    /// An identifier that should name one patient names several.
    #[error("FHIR server `{server}`: {count} patients have the identifier; expected one")]
    Ambiguous { server: String, count: usize },
}

fn tail(detail: &Option<String>) -> String {
    detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
}

impl FhirError {
    /// The server the error came from (`None` for [`FhirError::Invalid`]).
    pub fn server(&self) -> Option<&str> {
        match self {
            Self::Invalid(_) => None,
            Self::Config { server, .. }
            | Self::NotFound { server, .. }
            | Self::Unauthorized { server, .. }
            | Self::Forbidden { server, .. }
            | Self::Http { server, .. }
            | Self::Deadline { server }
            | Self::Garbage { server, .. }
            | Self::Token { server, .. }
            | Self::OffOrigin { server, .. }
            | Self::Ambiguous { server, .. } => Some(server),
        }
    }
}

// ---------------------------------------------------------------------------
// Configuration.

/// How requests to a server authenticate.
#[derive(Clone)]
pub enum Auth {
    /// None (open test servers).
    None,
    /// A static `Authorization: Bearer <token>`.
    Bearer(String),
    /// SMART Backend Services: tokens from the server's token endpoint.
    Smart(SmartConfig),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Smart(s) => f.debug_tuple("Smart").field(s).finish(),
        }
    }
}

/// The signature algorithm of client assertions (the two SMART requires
/// servers to support).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SigningAlg {
    #[default]
    #[serde(rename = "RS384")]
    Rs384,
    #[serde(rename = "ES384")]
    Es384,
}

impl SigningAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::Rs384 => Algorithm::RS384,
            Self::Es384 => Algorithm::ES384,
        }
    }

    /// `RS384` or `ES384`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs384 => "RS384",
            Self::Es384 => "ES384",
        }
    }
}

/// A SMART Backend Services client registration.
#[derive(Clone)]
pub struct SmartConfig {
    /// The server's token endpoint (also the assertion's `aud`).
    pub token_url: String,
    /// The registered client id (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The id of the registered public key (the assertion header's `kid`).
    pub kid: String,
    /// The scope asked for, e.g. `system/*.rs`.
    pub scope: String,
    alg: SigningAlg,
    key: EncodingKey,
}

impl std::fmt::Debug for SmartConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartConfig")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .field("alg", &self.alg.as_str())
            .field("scope", &self.scope)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(serde::Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    jti: String,
}

impl SmartConfig {
    /// A registration signing with the private key `key_pem` (PKCS#8 or,
    /// for RSA, PKCS#1 PEM). The key is tried at once: a key that cannot
    /// sign with `alg` is refused here, not at the first request.
    pub fn new(
        token_url: &str,
        client_id: &str,
        alg: SigningAlg,
        key_pem: &[u8],
        kid: &str,
        scope: &str,
    ) -> Result<Self, String> {
        let key = match alg {
            SigningAlg::Rs384 => EncodingKey::from_rsa_pem(key_pem),
            SigningAlg::Es384 => EncodingKey::from_ec_pem(key_pem),
        }
        .map_err(|e| format!("the private key is not a PEM {} key: {e}", alg.as_str()))?;
        if client_id.trim().is_empty() || kid.trim().is_empty() || scope.trim().is_empty() {
            return Err("client_id, kid and scope must not be empty".into());
        }
        let s = Self {
            token_url: token_url.trim().to_owned(),
            client_id: client_id.to_owned(),
            kid: kid.to_owned(),
            scope: scope.to_owned(),
            alg,
            key,
        };
        s.assertion().map_err(|e| format!("the private key cannot sign {}: {e}", alg.as_str()))?;
        Ok(s)
    }

    /// The signature algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// A fresh client assertion: `iss` = `sub` = client id, `aud` = token
    /// URL, `exp` four minutes ahead, a random `jti`; header `alg`, `kid`,
    /// `typ: JWT`.
    fn assertion(&self) -> Result<String, String> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| format!("no randomness for the jti: {e}"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| format!("clock before 1970: {e}"))?;
        let claims = Assertion {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.token_url,
            exp: (now + ASSERTION_LIFETIME).as_secs(),
            jti: hex::encode(jti),
        };
        let mut header = Header::new(self.alg.algorithm());
        header.typ = Some("JWT".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

/// One outside FHIR server.
#[derive(Clone)]
pub struct ServerConfig {
    /// A short name, used in errors and logs (`north-general`).
    pub name: String,
    /// The FHIR base URL (`https://ehr.example/fhir/r4`), no query.
    pub base_url: String,
    pub auth: Auth,
    /// The longest one HTTP exchange may take.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// `_count` added to searches that do not give one.
    pub page_size: u32,
    /// The most pages one search follows.
    pub max_pages: u32,
    /// Patient identifier systems whose patients this server holds
    /// (`*`: any).
    pub systems: Vec<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .field("systems", &self.systems)
            .finish()
    }
}

impl ServerConfig {
    /// A server with no authentication and the defaults of
    /// [`ServerSettings`].
    pub fn new(name: &str, base_url: &str) -> Self {
        Self {
            name: name.to_owned(),
            base_url: base_url.to_owned(),
            auth: Auth::None,
            timeout: Duration::from_millis(default_timeout_ms()),
            retry: RetryPolicy {
                attempts: default_retry_attempts(),
                base: Duration::from_millis(default_retry_base_ms()),
                max_wait: Duration::from_millis(default_retry_max_wait_ms()),
            },
            page_size: default_count(),
            max_pages: default_max_pages(),
            systems: Vec::new(),
        }
    }
}

/// One `[[health.servers]]` table:
///
/// ```toml
/// [[health.servers]]
/// name = "north"
/// base_url = "https://fhir.north.example/r4"
/// systems = ["urn:oid:2.16.840.1.113883.4.1"]
/// timeout_ms = 30000      # one exchange
/// count = 100             # _count
/// max_pages = 50
/// retry_attempts = 4
/// retry_base_ms = 500
/// retry_max_wait_ms = 10000
/// # either a static token from the environment ...
/// # bearer_env = "NORTH_FHIR_TOKEN"
/// # ... or SMART Backend Services
/// [health.servers.smart]
/// token_url = "https://auth.north.example/token"
/// client_id = "plexus"
/// key_file = "keys/north.pem"   # relative to the config file
/// alg = "RS384"                 # or "ES384"
/// kid = "plexus-2026"
/// scope = "system/*.rs"         # the default
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub name: String,
    pub base_url: String,
    #[serde(default)]
    pub systems: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_count")]
    pub count: u32,
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_retry_max_wait_ms")]
    pub retry_max_wait_ms: u64,
    /// The environment variable holding a static bearer token.
    #[serde(default)]
    pub bearer_env: Option<String>,
    #[serde(default)]
    pub smart: Option<SmartSettings>,
}

/// `[health.servers.smart]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartSettings {
    pub token_url: String,
    pub client_id: String,
    /// The PEM private key (relative paths: to the configuration's
    /// directory).
    pub key_file: PathBuf,
    #[serde(default)]
    pub alg: SigningAlg,
    pub kid: String,
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_timeout_ms() -> u64 {
    30_000
}
fn default_count() -> u32 {
    100
}
fn default_max_pages() -> u32 {
    50
}
fn default_retry_attempts() -> u32 {
    4
}
fn default_retry_base_ms() -> u64 {
    500
}
fn default_retry_max_wait_ms() -> u64 {
    10_000
}
fn default_scope() -> String {
    "system/*.rs".into()
}

impl ServerSettings {
    /// The configuration this table describes: the key file read (relative
    /// to `dir`), a `bearer_env` token looked up with `env`. Checked as
    /// [`FhirClient::new`] checks it.
    pub fn resolve(&self, dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<ServerConfig, FhirError> {
        let fail = |message: String| FhirError::Config { server: self.name.clone(), message };
        let auth = match (&self.bearer_env, &self.smart) {
            (Some(_), Some(_)) => return Err(fail("give either `bearer_env` or `[smart]`, not both".into())),
            (Some(var), None) => {
                let token = env(var)
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| fail(format!("environment variable `{var}` (bearer_env) is not set")))?;
                Auth::Bearer(token)
            }
            (None, Some(s)) => {
                let path = if s.key_file.is_absolute() { s.key_file.clone() } else { dir.join(&s.key_file) };
                let pem = std::fs::read(&path)
                    .map_err(|e| fail(format!("cannot read the SMART key file {}: {e}", path.display())))?;
                let smart = SmartConfig::new(&s.token_url, &s.client_id, s.alg, &pem, &s.kid, &s.scope)
                    .map_err(|e| fail(format!("SMART key file {}: {e}", path.display())))?;
                Auth::Smart(smart)
            }
            (None, None) => Auth::None,
        };
        let config = ServerConfig {
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            auth,
            timeout: Duration::from_millis(self.timeout_ms),
            retry: RetryPolicy {
                attempts: self.retry_attempts,
                base: Duration::from_millis(self.retry_base_ms),
                max_wait: Duration::from_millis(self.retry_max_wait_ms),
            },
            page_size: self.count,
            max_pages: self.max_pages,
            systems: self.systems.clone(),
        };
        check(&config)?;
        Ok(config)
    }
}

/// What [`FhirClient::new`] refuses.
fn check(c: &ServerConfig) -> Result<Origin, FhirError> {
    let fail = |message: String| FhirError::Config { server: c.name.clone(), message };
    if c.name.trim().is_empty() || c.name.chars().any(char::is_control) {
        return Err(FhirError::Config { server: c.name.clone(), message: "the server needs a name".into() });
    }
    let origin = web_origin(&c.base_url).ok_or_else(|| fail("base_url must be an http(s) URL".into()))?;
    if c.base_url.contains(['?', '#']) || c.base_url.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(fail("base_url must not have a query, a fragment or spaces".into()));
    }
    if origin.scheme != "https" && !origin.loopback() {
        return Err(fail("base_url must use https (plain http only to this machine)".into()));
    }
    if !(1..=1000).contains(&c.page_size) {
        return Err(fail("count must be 1 to 1000".into()));
    }
    if c.max_pages == 0 || c.retry.attempts == 0 || c.timeout.is_zero() {
        return Err(fail("max_pages, retry_attempts and timeout_ms must be positive".into()));
    }
    match &c.auth {
        Auth::None => {}
        Auth::Bearer(t) => {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(fail("the bearer token must be printable ASCII without spaces".into()));
            }
        }
        Auth::Smart(s) => {
            let o = web_origin(&s.token_url).ok_or_else(|| fail("token_url must be an http(s) URL".into()))?;
            if o.scheme != "https" && !o.loopback() {
                return Err(fail("token_url must use https (plain http only to this machine)".into()));
            }
        }
    }
    Ok(origin)
}

// ---------------------------------------------------------------------------
// URLs.

/// Scheme, host and port of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn loopback(&self) -> bool {
        self.host == "localhost" || self.host == "[::1]" || self.host.starts_with("127.")
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

fn web_origin(url: &str) -> Option<Origin> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() || authority.contains('@') || authority.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        let port = if after.is_empty() { default } else { after.strip_prefix(':')?.parse().ok()? };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin { scheme, host: host.to_ascii_lowercase(), port })
}

/// Percent-encode a query component: everything but RFC 3986 unreserved
/// characters, so `&`, `=`, `#`, `+`, `|`, `,` and spaces never reach the
/// URL unescaped.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A FHIR search token's `system|value` with the characters FHIR search
/// gives meaning to (`\ | , $`) escaped.
pub fn token(system: &str, value: &str) -> String {
    fn esc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, '\\' | '|' | ',' | '$') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
    format!("{}|{}", esc(system), esc(value))
}

/// Whether `name` may be a search parameter name (with modifier or chain):
/// `[A-Za-z0-9_:.-]+`.
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:.-".contains(&b))
}

fn check_kind(kind: &str) -> Result<(), FhirError> {
    if fhir::R4_TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(FhirError::Invalid(format!("resource type `{}`: not an R4 resource type", clip(kind, 64))))
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).filter(|c| !c.is_control()).collect()
}

// ---------------------------------------------------------------------------
// Error bodies.

/// The text of an `OperationOutcome` body: each issue's `severity (code):
/// diagnostics` (or `details.text`), joined.
pub fn outcome_text(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return None;
    }
    let issues: Vec<String> = v
        .get("issue")?
        .as_array()?
        .iter()
        .filter_map(|i| {
            let text = i
                .get("diagnostics")
                .and_then(Value::as_str)
                .or_else(|| i.pointer("/details/text").and_then(Value::as_str))?;
            let severity = i.get("severity").and_then(Value::as_str).unwrap_or("error");
            let code = i.get("code").and_then(Value::as_str).unwrap_or("unknown");
            Some(format!("{severity} ({code}): {}", clip(text, 300)))
        })
        .collect();
    (!issues.is_empty()).then(|| issues.join("; "))
}

/// The OAuth 2.0 error of a token endpoint's body: `error: description`.
fn oauth_error(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?.as_str()?;
    Some(match v.get("error_description").and_then(Value::as_str) {
        Some(d) => format!("{}: {}", clip(error, 64), clip(d, 300)),
        None => clip(error, 64),
    })
}

// ---------------------------------------------------------------------------
// The exchange.

/// Wraps the app's client for one call: keeps the last error response (for
/// its OperationOutcome or OAuth error, which `http::send` does not return)
/// and can give each retry a new body (a fresh client assertion, so a
/// retried token request never replays a `jti`).
struct Exchange {
    inner: Arc<dyn HttpClient>,
    failed: parking_lot::Mutex<Option<HttpResponse>>,
    fresh_body: Option<Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>>,
    sent: AtomicU64,
}

impl Exchange {
    fn new(inner: &Arc<dyn HttpClient>) -> Self {
        Self {
            inner: Arc::clone(inner),
            failed: parking_lot::Mutex::new(None),
            fresh_body: None,
            sent: AtomicU64::new(0),
        }
    }

    fn failed_body(&self) -> Option<Vec<u8>> {
        self.failed.lock().take().map(|r| r.body)
    }
}

#[async_trait::async_trait]
impl HttpClient for Exchange {
    async fn send(&self, mut req: HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.sent.fetch_add(1, Ordering::Relaxed) > 0
            && let Some(body) = self.fresh_body.as_ref().and_then(|f| f())
        {
            req.body = Some(body);
        }
        let r = self.inner.send(req).await?;
        if r.status >= 400 {
            *self.failed.lock() = Some(r.clone());
        }
        Ok(r)
    }
}

/// The token request's `application/x-www-form-urlencoded` body.
fn token_form(scope: &str, assertion: &str) -> Vec<u8> {
    let pairs = [
        ("grant_type", "client_credentials"),
        ("scope", scope),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&").into_bytes()
}

// ---------------------------------------------------------------------------
// The client.

/// The resources a search found, over every page followed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchSet {
    /// `search.mode` `match` (or none).
    pub matches: Vec<Value>,
    /// `search.mode` `include` (`_include`d), each resource once.
    pub included: Vec<Value>,
    /// `search.mode` `outcome`: the server's warnings.
    pub outcomes: Vec<Value>,
    /// Pages read.
    pub pages: u32,
    /// `Bundle.total` of the first page, when the server gives one.
    pub total: Option<u64>,
    /// More pages were left unread (`max_pages`).
    pub truncated: bool,
}

struct Token {
    access: String,
    refresh_at: Instant,
}

/// One FHIR server.
pub struct FhirClient {
    config: ServerConfig,
    base: String,
    origin: Origin,
    http: Arc<dyn HttpClient>,
    /// The SMART token; the lock is held while one is fetched, so
    /// concurrent calls wait for that one instead of fetching their own.
    token: tokio::sync::Mutex<Option<Token>>,
    retries: AtomicU64,
    tokens: AtomicU64,
}

impl std::fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The outcome of one GET, before it is mapped to a [`FhirError`].
enum Got {
    Ok(HttpResponse),
    Unauthorized(Option<String>),
    Err(FhirError),
}

impl FhirClient {
    /// A client of the server `config` describes, sending through `http`.
    /// Refuses a config that cannot work: no name, a base URL that is not
    /// http(s) or has a query, plain http to another machine, a zero page
    /// size or timeout.
    pub fn new(config: ServerConfig, http: Arc<dyn HttpClient>) -> Result<Self, FhirError> {
        let origin = check(&config)?;
        let base = config.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            config,
            base,
            origin,
            http,
            token: tokio::sync::Mutex::new(None),
            retries: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether this server holds patients of identifier system `system`.
    pub fn serves(&self, system: &str) -> bool {
        self.config.systems.iter().any(|s| s == system || s == "*")
    }

    /// Retries (429, 5xx, connection errors) so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// SMART token requests made so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// `GET [base]/{kind}/{id}`: the resource, checked to be that one.
    pub async fn read(&self, kind: &str, id: &str, deadline: Instant) -> Result<Value, FhirError> {
        check_kind(kind)?;
        if !fhir::is_id(id) {
            return Err(FhirError::Invalid(format!("id `{}`: not a FHIR id", clip(id, 64))));
        }
        let what = format!("{kind}/{id}");
        let url = format!("{}/{what}", self.base);
        let v = self.within(deadline, self.get_json(&url, &what, deadline)).await?;
        let (got_kind, got_id) = (v.get("resourceType").and_then(Value::as_str), v.get("id").and_then(Value::as_str));
        if got_kind != Some(kind) || got_id != Some(id) {
            return Err(self.garbage(format!(
                "asked for {what}, got {}/{}",
                clip(got_kind.unwrap_or("?"), 64),
                clip(got_id.unwrap_or("?"), 64)
            )));
        }
        Ok(v)
    }

    /// `GET [base]/{kind}?{params}` (with `_count` unless given), following
    /// next links on the server's origin up to `max_pages`.
    pub async fn search(
        &self,
        kind: &str,
        params: &[(String, String)],
        deadline: Instant,
    ) -> Result<SearchSet, FhirError> {
        check_kind(kind)?;
        for (name, _) in params {
            if !is_param_name(name) {
                return Err(FhirError::Invalid(format!("search parameter name `{}`", clip(name, 64))));
            }
        }
        let mut query: Vec<String> = params.iter().map(|(n, v)| format!("{n}={}", encode(v))).collect();
        if !params.iter().any(|(n, _)| n == "_count") {
            query.push(format!("_count={}", self.config.page_size));
        }
        let url = format!("{}/{kind}?{}", self.base, query.join("&"));
        self.within(deadline, self.pages(kind, url, deadline)).await
    }

    async fn pages(&self, kind: &str, first: String, deadline: Instant) -> Result<SearchSet, FhirError> {
        let what = format!("{kind} search");
        let mut set = SearchSet::default();
        let mut seen = HashSet::new();
        let mut visited = HashSet::new();
        let mut url = first;
        loop {
            visited.insert(url.clone());
            let bundle = self.get_json(&url, &what, deadline).await?;
            set.pages += 1;
            self.absorb(&bundle, &mut set, &mut seen)?;
            let Some(next) = next_link(&bundle) else { break };
            if set.pages >= self.config.max_pages {
                set.truncated = true;
                break;
            }
            let next = self.follow(next)?;
            if visited.contains(&next) {
                return Err(self.garbage(format!("{what}: the next link points back to a page already read")));
            }
            url = next;
        }
        Ok(set)
    }

    /// Add a searchset page's entries to `set`.
    fn absorb(
        &self,
        bundle: &Value,
        set: &mut SearchSet,
        seen: &mut HashSet<(String, String)>,
    ) -> Result<(), FhirError> {
        match bundle.get("resourceType").and_then(Value::as_str) {
            Some("Bundle") => {}
            Some("OperationOutcome") => {
                let text = outcome_text(bundle.to_string().as_bytes()).unwrap_or_default();
                return Err(self.garbage(format!("an OperationOutcome instead of a Bundle: {text}")));
            }
            other => return Err(self.garbage(format!("a {} instead of a Bundle", clip(other.unwrap_or("?"), 64)))),
        }
        let kind = bundle.get("type").and_then(Value::as_str);
        if kind != Some("searchset") {
            return Err(self.garbage(format!("a {} Bundle instead of a searchset", clip(kind.unwrap_or("?"), 64))));
        }
        if set.pages == 1 {
            set.total = bundle.get("total").and_then(Value::as_u64);
        }
        let entries = match bundle.get("entry") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(self.garbage("Bundle.entry is not an array".into())),
        };
        for e in entries {
            let resource = e.get("resource").filter(|r| r.get("resourceType").and_then(Value::as_str).is_some());
            let Some(resource) = resource else {
                return Err(self.garbage("a searchset entry without a resource".into()));
            };
            match e.pointer("/search/mode").and_then(Value::as_str) {
                None | Some("match") => set.matches.push(resource.clone()),
                Some("include") => {
                    let key = (
                        resource["resourceType"].as_str().unwrap_or_default().to_owned(),
                        resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    );
                    if key.1.is_empty() || seen.insert(key) {
                        set.included.push(resource.clone());
                    }
                }
                Some("outcome") => set.outcomes.push(resource.clone()),
                Some(m) => return Err(self.garbage(format!("search.mode `{}`", clip(m, 32)))),
            }
        }
        Ok(())
    }

    /// A next link, made absolute, if it stays on the server's origin.
    fn follow(&self, link: &str) -> Result<String, FhirError> {
        if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.garbage("a next link with spaces or control characters".into()));
        }
        let url = if link.starts_with('/') && !link.starts_with("//") {
            let o = &self.origin;
            format!("{}://{}:{}{link}", o.scheme, o.host, o.port)
        } else {
            link.to_owned()
        };
        match web_origin(&url) {
            Some(o) if o == self.origin => Ok(url),
            Some(o) => {
                tracing::warn!(server = %self.config.name, origin = %o, "next link to another origin refused");
                Err(FhirError::OffOrigin { server: self.config.name.clone(), origin: o.to_string() })
            }
            None => Err(self.garbage("a next link that is not an http(s) URL".into())),
        }
    }

    /// Run `f` by `deadline`.
    async fn within<T>(
        &self,
        deadline: Instant,
        f: impl std::future::Future<Output = Result<T, FhirError>>,
    ) -> Result<T, FhirError> {
        tokio::time::timeout_at(deadline, f).await.unwrap_or_else(|_| Err(self.deadline()))
    }

    fn deadline(&self) -> FhirError {
        FhirError::Deadline { server: self.config.name.clone() }
    }

    fn garbage(&self, what: String) -> FhirError {
        FhirError::Garbage { server: self.config.name.clone(), what }
    }

    /// The timeout of one exchange: the server's, or what is left.
    fn exchange_timeout(&self, deadline: Instant) -> Result<Duration, FhirError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.deadline());
        }
        Ok(left.min(self.config.timeout))
    }

    /// GET `url` as JSON, authenticated; with SMART, a 401 drops the token
    /// and the request is tried once more with a fresh one.
    async fn get_json(&self, url: &str, what: &str, deadline: Instant) -> Result<Value, FhirError> {
        let mut fresh = false;
        let r = loop {
            let token = self.access_token(deadline).await?;
            match self.get(url, what, token.as_deref(), deadline).await {
                Got::Ok(r) => break r,
                Got::Unauthorized(_) if !fresh && matches!(self.config.auth, Auth::Smart(_)) => {
                    tracing::info!(server = %self.config.name, "401: fetching a new token");
                    if let Some(t) = &token {
                        self.forget(t).await;
                    }
                    fresh = true;
                }
                Got::Unauthorized(detail) => {
                    return Err(FhirError::Unauthorized { server: self.config.name.clone(), detail });
                }
                Got::Err(e) => return Err(e),
            }
        };
        if r.status >= 300 {
            return Err(self.garbage(format!("{what}: status {} (redirects are not followed)", r.status)));
        }
        serde_json::from_slice(&r.body)
            .map_err(|e| self.garbage(format!("{what}: the body is not JSON ({})", clip(&e.to_string(), 120))))
    }

    async fn get(&self, url: &str, what: &str, token: Option<&str>, deadline: Instant) -> Got {
        let timeout = match self.exchange_timeout(deadline) {
            Ok(t) => t,
            Err(e) => return Got::Err(e),
        };
        let mut req = HttpRequest::get(url).header("accept", FHIR_JSON).timeout(timeout);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let ex = Exchange::new(&self.http);
        let result = http::send(&ex, req, self.config.retry, Some(deadline), &|n, wait, why| {
            self.retried(what, n, wait, why);
        })
        .await;
        let e = match result {
            Ok(r) => return Got::Ok(r),
            Err(e) => e,
        };
        let detail = ex.failed_body().and_then(|b| outcome_text(&b));
        let server = self.config.name.clone();
        let what = what.to_owned();
        Got::Err(match e {
            HttpError::Unauthorized => return Got::Unauthorized(detail),
            HttpError::Forbidden(_) => FhirError::Forbidden { server, what, detail },
            HttpError::NotFound(_) | HttpError::Refused { status: 410, .. } => {
                FhirError::NotFound { server, what, detail }
            }
            HttpError::Deadline => FhirError::Deadline { server },
            HttpError::Transport { .. } if Instant::now() + Duration::from_millis(20) >= deadline => {
                FhirError::Deadline { server }
            }
            HttpError::Refused { status, message } => match detail {
                Some(d) => {
                    FhirError::Http { server, what, source: HttpError::Refused { status, message: d }, detail: None }
                }
                None => FhirError::Http { server, what, source: HttpError::Refused { status, message }, detail: None },
            },
            source => FhirError::Http { server, what, source, detail },
        })
    }

    fn retried(&self, what: &str, attempt: u32, wait: Duration, why: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            server = %self.config.name,
            what,
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            reason = why,
            "retrying"
        );
    }

    /// The access token to send, fetching one when none is cached or the
    /// cached one is about to expire.
    async fn access_token(&self, deadline: Instant) -> Result<Option<String>, FhirError> {
        let smart = match &self.config.auth {
            Auth::None => return Ok(None),
            Auth::Bearer(t) => return Ok(Some(t.clone())),
            Auth::Smart(s) => s,
        };
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(Some(t.access.clone()));
        }
        let t = self.fetch_token(smart, deadline).await?;
        let access = t.access.clone();
        *slot = Some(t);
        Ok(Some(access))
    }

    /// Drop the cached token if it is still `used` (a concurrent caller
    /// may already have replaced it).
    async fn forget(&self, used: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.access == used) {
            *slot = None;
        }
    }

    /// SMART Backend Services: the client-credentials grant with a signed
    /// JWT assertion.
    async fn fetch_token(&self, s: &SmartConfig, deadline: Instant) -> Result<Token, FhirError> {
        let server = self.config.name.clone();
        let fail = |message: String| FhirError::Token { server: server.clone(), message };
        let assertion = s.assertion().map_err(|e| fail(format!("cannot sign the client assertion: {e}")))?;
        let req = HttpRequest {
            method: Method::Post,
            url: s.token_url.clone(),
            headers: vec![
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: Some(token_form(&s.scope, &assertion)),
            timeout: self.exchange_timeout(deadline)?,
        };
        let mut ex = Exchange::new(&self.http);
        let again = s.clone();
        ex.fresh_body = Some(Box::new(move || Some(token_form(&again.scope, &again.assertion().ok()?))));
        let asked = Instant::now();
        self.tokens.fetch_add(1, Ordering::Relaxed);
        let result = http::send(&ex, req, self.config.retry, Some(deadline), &|n, wait, why| {
            self.retried("token request", n, wait, why);
        })
        .await;
        let r = match result {
            Ok(r) => r,
            Err(HttpError::Deadline) => return Err(self.deadline()),
            Err(e) => {
                let oauth = ex.failed_body().and_then(|b| oauth_error(&b));
                let message = match (oauth, e) {
                    (Some(o), _) => format!("{} refused the client `{}`: {o}", s.token_url, s.client_id),
                    (None, HttpError::Refused { status, message }) => {
                        format!("{} answered {status}: {}", s.token_url, clip(&message, 200))
                    }
                    (None, e) => format!("{}: {e}", s.token_url),
                };
                return Err(fail(message));
            }
        };
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|_| fail(format!("{} answered {} with a body that is not JSON", s.token_url, r.status)))?;
        let access = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| fail(format!("{} gave no usable access_token", s.token_url)))?;
        let kind = v.get("token_type").and_then(Value::as_str).unwrap_or_default();
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(fail(format!("{} gave a `{}` token, not a bearer token", s.token_url, clip(kind, 32))));
        }
        // SMART requires expires_in; a server that leaves it out gets its
        // token used for a minute.
        let lifetime = Duration::from_secs(v.get("expires_in").and_then(Value::as_u64).unwrap_or(60));
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        let scope = v.get("scope").and_then(Value::as_str).unwrap_or_default();
        tracing::debug!(server = %self.config.name, scope, expires_in = lifetime.as_secs(), "SMART token");
        Ok(Token { access: access.to_owned(), refresh_at: asked + lifetime - margin })
    }
}

fn next_link(bundle: &Value) -> Option<&str> {
    bundle.get("link")?.as_array()?.iter().find_map(|l| {
        (l.get("relation").and_then(Value::as_str) == Some("next")).then(|| l.get("url").and_then(Value::as_str))?
    })
}

// ---------------------------------------------------------------------------
// Several servers.

/// One patient's resources on one server.
#[derive(Debug)]
pub struct PatientRecords {
    /// The server's name.
    pub server: String,
    /// The server's id of the patient.
    pub patient_id: String,
    /// The server's Patient resource.
    pub patient: Value,
    /// Per requested type, in the order asked: what the search found, or
    /// why it failed (one failing type does not fail the others).
    pub results: Vec<(String, Result<SearchSet, FhirError>)>,
}

/// The configured servers, and which hold whose patients.
#[derive(Debug, Default)]
pub struct Router {
    clients: Vec<FhirClient>,
}

impl Router {
    /// Route among `clients` (names must be unique).
    pub fn new(clients: Vec<FhirClient>) -> Result<Self, FhirError> {
        let mut names = HashSet::new();
        for c in &clients {
            if !names.insert(c.name().to_owned()) {
                return Err(FhirError::Config {
                    server: c.name().to_owned(),
                    message: "two servers have this name".into(),
                });
            }
        }
        Ok(Self { clients })
    }

    pub fn clients(&self) -> &[FhirClient] {
        &self.clients
    }

    /// The server named `name`.
    pub fn get(&self, name: &str) -> Option<&FhirClient> {
        self.clients.iter().find(|c| c.name() == name)
    }

    /// The servers holding patients of identifier system `system` (listed
    /// in their `systems`, or `*`), in configuration order.
    pub fn for_system(&self, system: &str) -> Vec<&FhirClient> {
        self.clients.iter().filter(|c| c.serves(system)).collect()
    }

    /// Find the patient with `identifier` (`system`, `value`) on `client`
    /// (`Patient?identifier=system|value`: exactly one must match), then
    /// search each of `types` with `patient=<that id>` (`Patient` itself
    /// with `_id`), concurrently, all by `deadline`.
    pub async fn patient_everything(
        &self,
        client: &FhirClient,
        identifier: (&str, &str),
        types: &[&str],
        deadline: Instant,
    ) -> Result<PatientRecords, FhirError> {
        let (system, value) = identifier;
        if system.is_empty() || value.is_empty() {
            return Err(FhirError::Invalid("identifier: system and value must not be empty".into()));
        }
        let found = client.search("Patient", &[("identifier".into(), token(system, value))], deadline).await?;
        let patients: Vec<&Value> =
            found.matches.iter().filter(|p| p.get("resourceType").and_then(Value::as_str) == Some("Patient")).collect();
        let patient = match patients.as_slice() {
            [] => {
                return Err(FhirError::NotFound {
                    server: client.name().to_owned(),
                    what: "a Patient with the identifier".into(),
                    detail: None,
                });
            }
            [one] => (*one).clone(),
            many => return Err(FhirError::Ambiguous { server: client.name().to_owned(), count: many.len() }),
        };
        let patient_id = patient
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| fhir::is_id(id))
            .ok_or_else(|| client.garbage("the matching Patient has no valid id".into()))?
            .to_owned();
        let searches = types.iter().map(|kind| {
            let param = if *kind == "Patient" { "_id" } else { "patient" };
            let params = [(param.to_owned(), patient_id.clone())];
            async move { ((*kind).to_owned(), client.search(kind, &params, deadline).await) }
        });
        let results = futures::future::join_all(searches).await;
        Ok(PatientRecords { server: client.name().to_owned(), patient_id, patient, results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = web_origin("https://EHR.example/fhir/r4").unwrap();
        assert_eq!(a, web_origin("https://ehr.example:443/other?x=1").unwrap());
        assert_ne!(a, web_origin("http://ehr.example/fhir/r4").unwrap());
        assert_ne!(a, web_origin("https://ehr.example:8443/fhir/r4").unwrap());
        assert_ne!(a, web_origin("https://ehr.example.evil/fhir").unwrap());
        assert_eq!(web_origin("https://user@ehr.example/"), None);
        assert_eq!(web_origin("ftp://ehr.example/"), None);
        assert_eq!(web_origin("http://[::1]:8080/x").unwrap().port, 8080);
        assert!(web_origin("http://127.0.0.1:9/").unwrap().loopback());
    }

    #[test]
    fn values_and_tokens_are_escaped() {
        assert_eq!(encode("a b&c=d|e,ü"), "a%20b%26c%3Dd%7Ce%2C%C3%BC");
        assert_eq!(token("urn:x", "1|2,3\\"), "urn:x|1\\|2\\,3\\\\");
        assert!(is_param_name("code:text"));
        assert!(is_param_name("subject.name"));
        assert!(!is_param_name("a b"));
        assert!(!is_param_name("a&b"));
        assert!(!is_param_name(""));
    }

    #[test]
    fn outcomes_and_oauth_errors_are_read() {
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad param"},{"code":"x","details":{"text":"second"}}]}"#;
        assert_eq!(outcome_text(oo).unwrap(), "error (invalid): bad param; error (x): second");
        assert_eq!(outcome_text(b"<html>"), None);
        let oauth = br#"{"error":"invalid_client","error_description":"bad signature"}"#;
        assert_eq!(oauth_error(oauth).unwrap(), "invalid_client: bad signature");
    }
}
