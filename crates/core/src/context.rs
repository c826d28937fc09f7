//! Everything a tool may touch of the outside world: who calls, until when,
//! and the way back to the client (progress, logs, sampling, elicitation,
//! resource-change notifications).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::content::{Content, Role};
use crate::error::ToolError;

/// The protocol era of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 and earlier: sessions, server-to-client requests.
    Legacy,
    /// 2026-07-28: stateless, input-required results instead of requests.
    Stateless,
}

/// A tenant identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub Arc<str>);

impl TenantId {
    pub fn new(s: &str) -> Self {
        Self(Arc::from(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant of single-tenant deployments.
    pub fn default_tenant() -> Self {
        Self::new("default")
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable subject (user id, key name, `local`).
    pub subject: String,
    pub tenant: TenantId,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Groups the principal belongs to (a JWT's `groups` claim), used by
    /// modules whose data names readers by group.
    pub groups: Vec<String>,
    /// How the principal was established: `api_key`, `jwt`, `local`, `anonymous`.
    pub method: &'static str,
}

impl Principal {
    /// The caller before authentication.
    pub fn unauthenticated() -> Self {
        Self {
            subject: "unauthenticated".into(),
            tenant: TenantId::default_tenant(),
            roles: Vec::new(),
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "none",
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The credential a transport presented. Its `Debug` never shows a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credential {
    /// No credential (HTTP without a header).
    #[default]
    None,
    /// The local process (stdio): trusted as the configured principal.
    Local,
    /// `Authorization: Bearer ...`.
    Bearer(String),
    /// An API key (`X-API-Key`, or a bearer token that is a Plexus key).
    ApiKey(String),
    /// A credential the transport already verified with the same
    /// [`Authenticator`](crate::ports::Authenticator) the pipeline uses (the
    /// HTTP edge does, to answer 401/403 at the HTTP level); the authenticate
    /// layer takes the principal as it is.
    Verified(Box<Principal>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Local => f.write_str("Local"),
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Verified(p) => write!(f, "Verified({})", p.subject),
        }
    }
}

/// Severity of a log message sent to the client (RFC 5424 levels, as MCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

/// One message in a sampling request or result.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingMessage {
    pub role: Role,
    pub content: Content,
}

/// Ask the client's model for a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRequest {
    pub messages: Vec<SamplingMessage>,
    pub system_prompt: Option<String>,
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    pub stop_sequences: Vec<String>,
}

impl SamplingRequest {
    /// A single user message.
    pub fn prompt(text: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            messages: vec![SamplingMessage { role: Role::User, content: Content::text(text) }],
            system_prompt: None,
            max_tokens,
            temperature: None,
            stop_sequences: Vec::new(),
        }
    }
}

/// The client's completion.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingResult {
    pub role: Role,
    pub content: Content,
    pub model: String,
    pub stop_reason: Option<String>,
}

/// Ask the user, through the client, to fill in a form.
#[derive(Debug, Clone, PartialEq)]
pub struct ElicitRequest {
    pub message: String,
    /// A restricted JSON Schema object (flat properties of primitive types).
    pub requested_schema: Map<String, Value>,
}

/// What the user did with the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElicitAction {
    Accept,
    Decline,
    Cancel,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ElicitResult {
    pub action: ElicitAction,
    pub content: Option<Map<String, Value>>,
}

/// A request from server to client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    Sampling(SamplingRequest),
    Elicitation(ElicitRequest),
    /// `roots/list`.
    ListRoots,
}

/// The client's answer to a [`ClientRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientResponse {
    Sampling(SamplingResult),
    Elicitation(ElicitResult),
    Roots(Vec<(String, Option<String>)>),
}

/// A request the tool could not get answered within this execution
/// (stateless era): the server returns it as an input-required result.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    /// Stable key of this request within the call (`sampling-0`, ...).
    pub key: String,
    pub request: ClientRequest,
}

/// What the client can do, as it declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCapabilities {
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
}

/// A change the server should tell subscribers about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    ResourceUpdated(String),
    ResourceListChanged,
    ToolListChanged,
    PromptListChanged,
    /// Between servers, never sent to a client: the legacy session
    /// `session` now lives at the server process `by`, which carried it on
    /// from the session store; any other process holding a copy drops it,
    /// so a session lives in one place at a time.
    SessionTaken {
        session: String,
        by: String,
    },
    /// Between servers, never sent to a client: what `cache` holds under
    /// `key` changed in the shared store (a tenant's configuration, say);
    /// every node drops its cached copy and reads it again when next needed.
    CacheInvalidated {
        cache: String,
        key: String,
    },
}

/// The way back to the client, implemented by the server per era.
#[async_trait::async_trait]
pub trait ClientPeer: Send + Sync + 'static {
    fn capabilities(&self) -> ClientCapabilities;
    /// Report progress, when the client asked for it; a no-op otherwise.
    async fn progress(&self, done: f64, total: Option<f64>, message: Option<String>);
    /// Send a log message (filtered by the client's level).
    async fn log(&self, level: LogLevel, logger: Option<&str>, data: Value);
    /// Send a request to the client and await the answer (legacy era).
    async fn request(&self, request: ClientRequest) -> Result<ClientResponse, ToolError>;
    /// Tell subscribers about a change.
    fn notify(&self, notification: Notification);
}

/// A peer that cannot reach any client: used offline, in tests and in benchmarks.
#[derive(Debug, Default)]
pub struct DetachedPeer;

#[async_trait::async_trait]
impl ClientPeer for DetachedPeer {
    fn capabilities(&self) -> ClientCapabilities {
        ClientCapabilities::default()
    }
    async fn progress(&self, _: f64, _: Option<f64>, _: Option<String>) {}
    async fn log(&self, _: LogLevel, _: Option<&str>, _: Value) {}
    async fn request(&self, _: ClientRequest) -> Result<ClientResponse, ToolError> {
        Err(ToolError::ClientCapability("server-to-client requests"))
    }
    fn notify(&self, _: Notification) {}
}

/// What the pipeline learns about a call while it passes through; the audit
/// and telemetry layers (outermost) read it after the inner layers ran.
#[derive(Debug, Default)]
pub struct CallTrace {
    pub principal: OnceLock<Principal>,
    /// Set by the authorize layer when it denies (a denial looks like
    /// "not found" to the caller but is audited as a denial).
    pub denied: OnceLock<String>,
}

/// The context of one call.
#[derive(Clone)]
pub struct CallContext {
    pub request_id: Arc<str>,
    pub session: Option<Arc<str>>,
    pub client_addr: Option<SocketAddr>,
    pub credential: Credential,
    pub principal: Arc<Principal>,
    pub era: Era,
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
    /// Answers to earlier input requests (stateless era retries).
    pub inputs: Arc<HashMap<String, ClientResponse>>,
    pub trace: Arc<CallTrace>,
    /// Free-form request `_meta` values a module may read.
    pub meta: Arc<BTreeMap<String, Value>>,
    /// The caller's W3C `traceparent` header, if it sent one (spans join its trace).
    pub traceparent: Option<Arc<str>>,
    peer: Arc<dyn ClientPeer>,
    asked: Arc<AtomicU32>,
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("request_id", &self.request_id)
            .field("session", &self.session)
            .field("principal", &self.principal.subject)
            .field("tenant", &self.principal.tenant)
            .field("era", &self.era)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    pub fn new(request_id: impl Into<Arc<str>>, era: Era, peer: Arc<dyn ClientPeer>) -> Self {
        Self {
            request_id: request_id.into(),
            session: None,
            client_addr: None,
            credential: Credential::None,
            principal: Arc::new(Principal::unauthenticated()),
            era,
            deadline: None,
            cancel: CancellationToken::new(),
            inputs: Arc::new(HashMap::new()),
            trace: Arc::new(CallTrace::default()),
            meta: Arc::new(BTreeMap::new()),
            traceparent: None,
            peer,
            asked: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A context with no client behind it.
    pub fn detached(request_id: impl Into<Arc<str>>) -> Self {
        Self::new(request_id, Era::Stateless, Arc::new(DetachedPeer))
    }

    pub fn tenant(&self) -> &TenantId {
        &self.principal.tenant
    }

    pub fn with_inputs(mut self, inputs: HashMap<String, ClientResponse>) -> Self {
        self.inputs = Arc::new(inputs);
        self
    }

    /// Report progress to the client (if it asked for progress).
    pub async fn progress(&self, done: f64, total: Option<f64>, message: Option<&str>) {
        self.peer.progress(done, total, message.map(str::to_owned)).await;
    }

    /// Send a log message to the client.
    pub async fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.peer.log(level, None, Value::String(message.into())).await;
    }

    /// Send a structured log message to the client under a logger name.
    pub async fn log_data(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        self.peer.log(level, logger, data).await;
    }

    /// Tell subscribers that something changed.
    pub fn notify(&self, n: Notification) {
        self.peer.notify(n);
    }

    /// The client: sampling and elicitation, one API for both eras.
    pub fn client(&self) -> ClientHandle<'_> {
        ClientHandle { cx: self }
    }

    /// Has the call been cancelled or run out of time?
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Requests to the client, made the same way in both eras.
///
/// In the legacy era the server sends a real server-to-client request and
/// awaits it. In the stateless era the first execution stops with
/// [`ToolError::InputRequired`]; the server returns an input-required result,
/// the client answers, and the retried call re-executes the tool, which then
/// finds the answers here, in the same order it asked. Tools therefore stay
/// deterministic up to the point where they ask.
pub struct ClientHandle<'a> {
    cx: &'a CallContext,
}

impl ClientHandle<'_> {
    pub fn capabilities(&self) -> ClientCapabilities {
        self.cx.peer.capabilities()
    }

    fn check_capability(&self, request: &ClientRequest) -> Result<(), ToolError> {
        let caps = self.capabilities();
        match request {
            ClientRequest::Sampling(_) if !caps.sampling => Err(ToolError::ClientCapability("sampling")),
            ClientRequest::Elicitation(_) if !caps.elicitation => Err(ToolError::ClientCapability("elicitation")),
            ClientRequest::ListRoots if !caps.roots => Err(ToolError::ClientCapability("roots")),
            _ => Ok(()),
        }
    }

    /// Ask several things at once, each under a key stable across retries.
    /// Answers come back in the order asked. In the stateless era every
    /// request not yet answered is returned together in one input-required
    /// result.
    pub async fn ask_all(&self, requests: Vec<(String, ClientRequest)>) -> Result<Vec<ClientResponse>, ToolError> {
        for (_, r) in &requests {
            self.check_capability(r)?;
        }
        match self.cx.era {
            Era::Legacy => {
                let mut answers = Vec::with_capacity(requests.len());
                for (_, r) in requests {
                    answers.push(self.cx.peer.request(r).await?);
                }
                Ok(answers)
            }
            Era::Stateless => {
                let missing: Vec<InputRequest> = requests
                    .iter()
                    .filter(|(k, _)| !self.cx.inputs.contains_key(k))
                    .map(|(key, request)| InputRequest { key: key.clone(), request: request.clone() })
                    .collect();
                if !missing.is_empty() {
                    return Err(ToolError::InputRequired(missing));
                }
                Ok(requests.iter().filter_map(|(k, _)| self.cx.inputs.get(k).cloned()).collect())
            }
        }
    }

    /// Ask one thing under an explicit key.
    pub async fn ask(&self, key: impl Into<String>, request: ClientRequest) -> Result<ClientResponse, ToolError> {
        let mut answers = self.ask_all(vec![(key.into(), request)]).await?;
        answers.pop().ok_or_else(|| ToolError::InvalidRequest("client gave no answer".into()))
    }

    fn next_key(&self, kind: &str) -> String {
        let n = self.cx.asked.fetch_add(1, Ordering::Relaxed);
        format!("{kind}-{n}")
    }

    /// Ask the client's model for a completion.
    pub async fn sample(&self, request: SamplingRequest) -> Result<SamplingResult, ToolError> {
        let key = self.next_key("sampling");
        expect_sampling(self.ask(key, ClientRequest::Sampling(request)).await?)
    }

    /// Ask the user for input through a form.
    pub async fn elicit(&self, request: ElicitRequest) -> Result<ElicitResult, ToolError> {
        let key = self.next_key("elicitation");
        expect_elicitation(self.ask(key, ClientRequest::Elicitation(request)).await?)
    }

    /// Ask the client for its roots.
    pub async fn roots(&self) -> Result<Vec<(String, Option<String>)>, ToolError> {
        let key = self.next_key("roots");
        expect_roots(self.ask(key, ClientRequest::ListRoots).await?)
    }
}

fn wrong_kind(expected: &str) -> ToolError {
    ToolError::InvalidRequest(format!("client answered a {expected} request with another kind of result"))
}

/// The sampling result of an answer.
pub fn expect_sampling(r: ClientResponse) -> Result<SamplingResult, ToolError> {
    match r {
        ClientResponse::Sampling(r) => Ok(r),
        _ => Err(wrong_kind("sampling")),
    }
}

/// The elicitation result of an answer.
pub fn expect_elicitation(r: ClientResponse) -> Result<ElicitResult, ToolError> {
    match r {
        ClientResponse::Elicitation(r) => Ok(r),
        _ => Err(wrong_kind("elicitation")),
    }
}

/// The roots of an answer.
pub fn expect_roots(r: ClientResponse) -> Result<Vec<(String, Option<String>)>, ToolError> {
    match r {
        ClientResponse::Roots(r) => Ok(r),
        _ => Err(wrong_kind("roots")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Capable;

    #[async_trait::async_trait]
    impl ClientPeer for Capable {
        fn capabilities(&self) -> ClientCapabilities {
            ClientCapabilities { sampling: true, elicitation: true, roots: true }
        }
        async fn progress(&self, _: f64, _: Option<f64>, _: Option<String>) {}
        async fn log(&self, _: LogLevel, _: Option<&str>, _: Value) {}
        async fn request(&self, _: ClientRequest) -> Result<ClientResponse, ToolError> {
            Err(ToolError::ClientCapability("legacy"))
        }
        fn notify(&self, _: Notification) {}
    }

    fn capable(inputs: HashMap<String, ClientResponse>) -> CallContext {
        CallContext::new("r1", Era::Stateless, Arc::new(Capable)).with_inputs(inputs)
    }

    #[tokio::test]
    async fn missing_capability_is_refused_before_asking() {
        let cx = CallContext::detached("r1");
        let err = cx.client().sample(SamplingRequest::prompt("hi", 10)).await.unwrap_err();
        assert!(matches!(err, ToolError::ClientCapability("sampling")), "{err:?}");
    }

    #[tokio::test]
    async fn stateless_asks_stop_then_replay_in_order() {
        let cx = capable(HashMap::new());
        let err = cx.client().sample(SamplingRequest::prompt("hi", 10)).await.unwrap_err();
        let ToolError::InputRequired(reqs) = err else { panic!("expected input required") };
        assert_eq!(reqs[0].key, "sampling-0");

        let answer = SamplingResult {
            role: Role::Assistant,
            content: Content::text("hello"),
            model: "m".into(),
            stop_reason: None,
        };
        let mut inputs = HashMap::new();
        inputs.insert("sampling-0".to_string(), ClientResponse::Sampling(answer.clone()));
        let cx = capable(inputs);
        assert_eq!(cx.client().sample(SamplingRequest::prompt("hi", 10)).await.unwrap(), answer);
        // the second ask in the same execution is a new key
        let err = cx.client().elicit(ElicitRequest { message: "m".into(), requested_schema: Map::new() }).await;
        match err {
            Err(ToolError::InputRequired(r)) => assert_eq!(r[0].key, "elicitation-1"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn credentials_never_print_secrets() {
        let c = Credential::Bearer("secret-token".into());
        assert!(!format!("{c:?}").contains("secret"));
        let c = Credential::ApiKey("pk_123".into());
        assert!(!format!("{c:?}").contains("pk_123"));
    }
}
