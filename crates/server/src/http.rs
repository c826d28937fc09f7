//! Streamable HTTP: the front door (credentials, body limit, JSON-RPC shape
//! checks), rmcp's Streamable HTTP service for both eras, health endpoints
//! and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use http_body_util::{BodyExt, Limited};
use plexus_core::context::Credential;
use plexus_core::ports::{AuthError, Authenticator};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::handler::{PlexusHandler, Shared};
use crate::metrics::Metrics;

/// How the HTTP transport behaves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Hosts accepted in `Host` (DNS-rebinding protection). Empty allows any.
    pub allowed_hosts: Vec<String>,
    /// Origins accepted in `Origin` (scheme://host[:port|:*]). A request
    /// without `Origin` (not a browser) passes.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Serve without credentials (local development, conformance, benchmarks).
    pub allow_anonymous: bool,
    /// Cancelled to stop: the server stops accepting, drains in-flight calls
    /// and closes streams.
    pub shutdown: CancellationToken,
    /// Longest time to wait for in-flight calls on shutdown.
    pub drain_timeout: Duration,
    /// On shutdown, how long to go on serving with `/readyz` answering 503
    /// before no longer accepting: the time a balancer needs to notice.
    pub drain_delay: Duration,
    /// Serve plain stateless `tools/call` requests without rmcp's
    /// per-request session machinery (see `fast.rs`).
    pub fast_path: bool,
    /// Serve the web console at `/console`.
    pub console: bool,
    /// OpenID Connect sign-in for the console (beside API keys).
    pub console_oidc: Option<crate::ConsoleOidc>,
    /// OAuth 2.1 Protected Resource Metadata (RFC 9728), served at
    /// `/.well-known/oauth-protected-resource` (and with the resource's
    /// path appended) and named in every 401's `WWW-Authenticate`.
    pub protected_resource: Option<ProtectedResource>,
}

/// This server as an OAuth protected resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The resource identifier: the MCP endpoint's URL (`https://mcp.example.com/mcp`);
    /// tokens must name it as their audience.
    pub resource: String,
    /// Issuers whose tokens this server accepts.
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

impl ProtectedResource {
    /// The metadata document.
    fn document(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "Plexus MCP server",
        })
    }

    /// Where the metadata lives: the resource's origin, the well-known
    /// prefix, then the resource's path (RFC 9728 §3.1).
    pub fn metadata_url(&self) -> String {
        let (origin, path) = match self.resource.find("://").map(|i| i + 3) {
            Some(start) => match self.resource[start..].find('/') {
                Some(slash) => self.resource.split_at(start + slash),
                None => (self.resource.as_str(), ""),
            },
            None => (self.resource.as_str(), ""),
        };
        format!("{origin}/.well-known/oauth-protected-resource{}", path.trim_end_matches('/'))
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into(), "http://[::1]:*".into()],
            max_body_bytes: 4 * 1024 * 1024,
            allow_anonymous: false,
            shutdown: CancellationToken::new(),
            drain_timeout: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            fast_path: true,
            console: true,
            console_oidc: None,
            protected_resource: None,
        }
    }
}

struct Front {
    /// `resource_metadata="..."` for challenges, when configured.
    metadata_param: String,
    authenticator: Arc<dyn Authenticator>,
    max_body: usize,
    allow_anonymous: bool,
    fast_path: bool,
    allowed_hosts: Vec<String>,
    shared: Arc<Shared>,
    /// Whose each legacy session is (with a session store).
    owners: Option<crate::sessions::Owners>,
}

/// The credential a request presents. `X-API-Key` wins; a bearer token that
/// looks like a Plexus key (`pk_`) is treated as one; HTTP Basic (what xAPI
/// activity providers send) carries an API key as its password, the user
/// name being only a label.
pub(crate) fn credential(headers: &HeaderMap) -> Credential {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Credential::ApiKey(k.trim().to_owned());
    }
    let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Credential::None;
    };
    match auth.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.starts_with("pk_") {
                Credential::ApiKey(token.to_owned())
            } else {
                Credential::Bearer(token.to_owned())
            }
        }
        Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok();
            match decoded.as_deref().and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| d.split_once(':')) {
                Some((_, key)) if !key.is_empty() => Credential::ApiKey(key.to_owned()),
                // A malformed Basic header is a credential that fails, not none.
                _ => Credential::ApiKey(String::new()),
            }
        }
        _ => Credential::None,
    }
}

fn rpc_error(status: StatusCode, id: Option<&RawValue>, code: i32, message: &str) -> Response {
    let id = id.map_or("null", RawValue::get);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{}}}}}"#,
        serde_json::Value::String(message.to_owned())
    );
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// A field that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// An id MCP accepts: a string, or an integer that fits in 64 bits.
fn valid_id(raw: &RawValue) -> bool {
    let s = raw.get();
    s.starts_with('"') || s.parse::<i64>().is_ok()
}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct NamedParams<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    uri: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Check that a body is one well-formed JSON-RPC 2.0 message, answering the
/// error the JSON-RPC specification names when it is not.
#[allow(clippy::result_large_err)]
pub(crate) fn check_jsonrpc(body: &[u8]) -> Result<(), Response> {
    let bad = |id, code, msg: &str| Err(rpc_error(StatusCode::BAD_REQUEST, id, code, msg));
    let raw: &RawValue = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(None, -32700, &format!("Parse error: {e}")),
    };
    match raw.get().as_bytes().first() {
        Some(b'{') => {}
        Some(b'[') => return bad(None, -32600, "Invalid Request: batch requests are not supported"),
        _ => return bad(None, -32600, "Invalid Request: a JSON-RPC message must be an object"),
    }
    let env: Envelope<'_> = match serde_json::from_str(raw.get()) {
        Ok(e) => e,
        Err(e) => return bad(None, -32600, &format!("Invalid Request: {e}")),
    };
    let id = env.id.filter(|i| valid_id(i));
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return bad(id, -32600, "Invalid Request: `jsonrpc` must be \"2.0\"");
    }
    if env.id.is_some() && id.is_none() {
        return bad(None, -32600, "Invalid Request: `id` must be a string or an integer (not null)");
    }
    let Some(method) = env.method else {
        return if id.is_some() && (env.result.is_some() != env.error.is_some()) {
            Ok(())
        } else {
            bad(id, -32600, "Invalid Request: missing `method`")
        };
    };
    let method: &str = match serde_json::from_str::<&str>(method.get()) {
        Ok(m) => m,
        Err(_) => return bad(id, -32600, "Invalid Request: `method` must be a string"),
    };
    if env.params.is_some_and(|p| !p.get().starts_with('{')) {
        return bad(id, -32602, "Invalid params: `params` must be an object");
    }
    let required = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = required {
        let params = env.params.and_then(|p| serde_json::from_str::<NamedParams<'_>>(p.get()).ok());
        let value = params.as_ref().and_then(|p| if field == "name" { p.name } else { p.uri });
        if !value.is_some_and(|v| v.get().starts_with('"')) {
            return bad(id, -32602, &format!("Invalid params: `{method}` needs a string `{field}`"));
        }
        let arguments = params.and_then(|p| p.arguments).map(RawValue::get);
        if arguments.is_some_and(|a| !a.starts_with('{') && a != "null") {
            return bad(id, -32602, &format!("Invalid params: `{method}` needs `arguments` to be an object"));
        }
    }
    Ok(())
}

/// Decode the whole message as rmcp will; answer a JSON-RPC error (never
/// rmcp's 415) when a well-formed JSON-RPC envelope holds something the MCP
/// schema does not allow (a `_meta` that is not an object, a lone surrogate,
/// nesting deeper than the parser allows, ...).
#[allow(clippy::result_large_err)]
pub(crate) fn check_decodes(body: &[u8]) -> Result<(), Response> {
    let Err(e) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(body) else {
        return Ok(());
    };
    let env = serde_json::from_slice::<Envelope<'_>>(body).ok();
    let id = env.as_ref().and_then(|e| e.id).filter(|i| valid_id(i));
    let (code, what) = match e.classify() {
        // Text the parser cannot take (a lone surrogate, nesting past its limit).
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            (-32700, "Parse error")
        }
        serde_json::error::Category::Data if env.as_ref().is_some_and(|e| e.method.is_some()) => {
            (-32602, "Invalid params")
        }
        serde_json::error::Category::Data => (-32600, "Invalid Request"),
    };
    Err(rpc_error(StatusCode::BAD_REQUEST, id, code, &format!("{what}: {e}")))
}

fn unauthorized(challenge: &str, message: &str) -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, message.to_owned()).into_response();
    let value = HeaderValue::from_str(challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    resp
}

/// How much of a refused request's body the front door reads before it
/// answers. hyper keeps a connection alive only when the request body was
/// read to its end; refusing without reading it makes hyper close the
/// connection after the answer, without a `Connection: close` header, and a
/// client that already sent its next request on it sees "server disconnected
/// without a response". So a small body is drained (the connection stays
/// usable) and a larger or slow one is refused with `Connection: close`.
const REFUSED_BODY_DRAIN: usize = 64 * 1024;
const REFUSED_BODY_WAIT: Duration = Duration::from_secs(2);

/// Answer `resp` to a request the front door refuses before reading it.
async fn refuse(req: Request, mut resp: Response) -> Response {
    let drained = tokio::time::timeout(REFUSED_BODY_WAIT, Limited::new(req.into_body(), REFUSED_BODY_DRAIN).collect())
        .await
        .is_ok_and(|r| r.is_ok());
    if !drained {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Authenticate `req` by its credential headers, as the edge does for every
/// route behind it: the principal travels on as a [`Credential::Verified`]
/// extension. `Err` is the answer to a request that may not pass.
async fn authenticated(front: &Front, mut req: Request) -> Result<Request, Response> {
    let cred = match credential(req.headers()) {
        Credential::None if front.allow_anonymous => Credential::None,
        Credential::None => {
            let challenge = format!("Bearer{}", front.metadata_param.replacen(',', "", 1));
            let resp =
                unauthorized(&challenge, "authentication required: send an API key (X-API-Key) or a bearer token");
            return Err(refuse(req, resp).await);
        }
        presented => match front.authenticator.authenticate(&presented).await {
            Ok(p) => Credential::Verified(Box::new(p)),
            Err(AuthError::InsufficientScope(scope)) => {
                let challenge =
                    format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"{}", front.metadata_param);
                let mut resp = (StatusCode::FORBIDDEN, format!("insufficient scope: {scope}")).into_response();
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                return Err(refuse(req, resp).await);
            }
            Err(e) => {
                let challenge =
                    format!("Bearer error=\"invalid_token\", error_description=\"{e}\"{}", front.metadata_param);
                return Err(refuse(req, unauthorized(&challenge, &format!("authentication failed: {e}"))).await);
            }
        },
    };
    req.extensions_mut().insert(cred);
    Ok(req)
}

/// Refuse a client whose address is on the blocked list, before reading
/// anything it sent (every route, `/mcp` included).
async fn ip_guard(State(access): State<Arc<plexus_core::access::AccessList>>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if ip.is_some_and(|ip| access.ip_blocked(ip)) {
        let resp = (StatusCode::FORBIDDEN, "this client address is blocked by the access-control list").into_response();
        return closing(resp);
    }
    next.run(req).await
}

/// The edge of modules' REST routes: authentication only (each route reads
/// and caps its own body).
async fn rest_door(State(front): State<Arc<Front>>, req: Request, next: Next) -> Response {
    match authenticated(&front, req).await {
        Ok(req) => next.run(req).await,
        Err(resp) => resp,
    }
}

async fn front_door(State(front): State<Arc<Front>>, req: Request, next: Next) -> Response {
    let req = match authenticated(&front, req).await {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    if let Some(owners) = &front.owners {
        return with_owner(&front, owners, req, next).await;
    }
    admitted(&front, req, next).await
}

/// A legacy session is its owner's: a request naming another's session is
/// answered exactly like one naming an unknown session; a session begun is
/// bound to its principal before the client learns its id.
async fn with_owner(front: &Front, owners: &crate::sessions::Owners, req: Request, next: Next) -> Response {
    // Computed only for requests that concern a session (a stateless one
    // neither names nor begins one).
    let named = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let beginning = named.is_none() && req.method() == Method::POST;
    let owner = (named.is_some() || beginning)
        .then(|| crate::sessions::Owners::owner_of(req.extensions().get::<Credential>().unwrap_or(&Credential::None)));
    if let (Some(id), Some(owner)) = (&named, &owner)
        && !owners.permits(id, owner).await
    {
        return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
    }
    let deleting = req.method() == Method::DELETE;
    let resp = admitted(front, req, next).await;
    match named {
        None => {
            let begun = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            if let (Some(id), Some(owner)) = (begun, &owner) {
                owners.bind(&id, owner).await;
            }
        }
        Some(id) if deleting && resp.status().is_success() => owners.forget(&id),
        Some(_) => {}
    }
    resp
}

/// Past authentication (and the session's owner): body limits, JSON-RPC
/// checks, the stateless fast path, then rmcp.
async fn admitted(front: &Front, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > front.max_body) {
        return closing(payload_too_large(front.max_body));
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, front.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return closing(payload_too_large(front.max_body));
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "could not read the request body").into_response(),
    };
    if let Err(resp) = check_jsonrpc(&bytes) {
        return resp;
    }
    let fast = front.fast_path && crate::fast::eligible(&parts.headers, &front.allowed_hosts);
    if let Some(resp) = if fast { crate::fast::serve(&front.shared, &parts, &bytes).await } else { None } {
        return resp;
    }
    if let Err(resp) = check_decodes(&bytes) {
        return resp;
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The body was not read to its end: say the connection closes after this.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn payload_too_large(limit: usize) -> Response {
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        -32600,
        &format!("Invalid Request: the body exceeds the limit of {limit} bytes"),
    )
}

/// Drop this process's copy of a legacy session another process took (it
/// carried the session on from the session store): a session lives in one
/// place at a time, so its subscriptions and event stream cannot diverge.
fn drop_taken_sessions(shared: &Shared, sessions: Arc<LocalSessionManager>, stop: CancellationToken) {
    use rmcp::transport::streamable_http_server::SessionManager;
    let mut rx = shared.bus.subscribe();
    let me = Arc::clone(&shared.process);
    tokio::spawn(async move {
        loop {
            let n = tokio::select! {
                () = stop.cancelled() => return,
                n = rx.recv() => n,
            };
            match n {
                Ok(plexus_core::context::Notification::SessionTaken { session, by }) if *by != *me => {
                    let id: rmcp::transport::streamable_http_server::SessionId = Arc::from(session);
                    if sessions.has_session(&id).await.unwrap_or(false) {
                        match sessions.close_session(&id).await {
                            Ok(()) => tracing::info!("a session taken by another node was dropped here"),
                            Err(e) => {
                                tracing::warn!(error = %e, "a session taken by another node could not be dropped")
                            }
                        }
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Serve MCP over Streamable HTTP at `/mcp` until `opts.shutdown` is cancelled.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    opts: HttpOptions,
) -> std::io::Result<()> {
    // Shutdown in steps: `/readyz` turns 503 at once; after the drain delay
    // (a balancer has seen it) the listener closes and in-flight calls
    // drain; only then do sessions and their streams end (`streams` is not
    // a child of `shutdown`: a child would end them at the first step).
    let stopping = CancellationToken::new();
    let streams = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_legacy_session_mode(true)
        .with_max_request_body_bytes(opts.max_body_bytes)
        .with_cancellation_token(streams.clone());
    config = if opts.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(opts.allowed_hosts.clone())
    };
    if !opts.allowed_origins.is_empty() {
        config = config.with_allowed_origins(opts.allowed_origins.clone()).enforce_origin_validation();
    }
    config.session_store = shared.sessions.as_ref().map(|s| {
        Arc::new(crate::sessions::KeptSessions(Arc::clone(s)))
            as Arc<dyn rmcp::transport::streamable_http_server::session::SessionStore>
    });
    let sessions = Arc::new(LocalSessionManager::default());
    if shared.sessions.is_some() {
        drop_taken_sessions(&shared, Arc::clone(&sessions), streams.clone());
    }
    let factory_shared = Arc::clone(&shared);
    let mcp = StreamableHttpService::new(
        move || Ok(PlexusHandler::new(Arc::clone(&factory_shared), Credential::None)),
        sessions,
        config,
    );
    let metadata_param = match &opts.protected_resource {
        Some(pr) => format!(", resource_metadata=\"{}\"", pr.metadata_url()),
        None => String::new(),
    };
    let front = Arc::new(Front {
        metadata_param,
        authenticator: Arc::clone(&shared.authenticator),
        max_body: opts.max_body_bytes,
        allow_anonymous: opts.allow_anonymous,
        fast_path: opts.fast_path,
        allowed_hosts: opts.allowed_hosts.clone(),
        shared: Arc::clone(&shared),
        owners: shared.sessions.as_ref().map(|s| crate::sessions::Owners::new(Arc::clone(s))),
    });
    let rest = crate::rest::router(&shared, opts.max_body_bytes)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&front), rest_door));
    let prm_doc = opts.protected_resource.as_ref().map(ProtectedResource::document);
    let prm = axum::routing::get(move || {
        let doc = prm_doc.clone();
        async move {
            match doc {
                Some(d) => axum::Json(d).into_response(),
                None => (StatusCode::NOT_FOUND, "no protected resource metadata is configured").into_response(),
            }
        }
    });
    let console_metrics = Arc::clone(&metrics);
    let ready = Arc::new(AtomicBool::new(true));
    let ready_probe = Arc::clone(&ready);
    let app =
        axum::Router::new()
            .route_service("/mcp", mcp)
            .layer(axum::middleware::from_fn_with_state(front, front_door))
            .merge(rest)
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/.well-known/oauth-protected-resource", prm.clone())
            .route("/.well-known/oauth-protected-resource/{*path}", prm)
            // Outside the front door: no MCP credential, always on (see `metrics`).
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let text = metrics.render();
                    async move { ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text) }
                }),
            )
            .route(
                "/readyz",
                axum::routing::get(move || {
                    let ready = ready_probe.load(Ordering::Relaxed);
                    async move {
                        if ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "draining") }
                    }
                }),
            );
    let app = if opts.console {
        app.merge(crate::console::router(Arc::clone(&shared), console_metrics, opts.console_oidc.clone()))
    } else {
        app
    };
    let app = match shared.access.clone() {
        Some(access) => app.layer(axum::middleware::from_fn_with_state(access, ip_guard)),
        None => app,
    };
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });

    // Shutdown: stop accepting, let in-flight calls finish (up to the drain
    // timeout), then end the long-lived SSE streams so connections close.
    let drain = {
        let (shutdown, stopping, streams) = (opts.shutdown.clone(), stopping.clone(), streams.clone());
        let shared = Arc::clone(&shared);
        let (timeout, delay) = (opts.drain_timeout, opts.drain_delay);
        tokio::spawn(async move {
            shutdown.cancelled().await;
            ready.store(false, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "not ready; serving on until the balancer has seen it"
                );
                tokio::time::sleep(delay).await;
            }
            stopping.cancel();
            let deadline = tokio::time::Instant::now() + timeout;
            while shared.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let left = shared.in_flight();
            if left > 0 {
                tracing::warn!(calls = left, "drain timeout reached; closing with calls in flight");
            }
            streams.cancel();
        })
    };
    let graceful = stopping.clone();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { graceful.cancelled().await });
    let hard_stop = async {
        stopping.cancelled().await;
        tokio::time::sleep(opts.drain_timeout + Duration::from_secs(2)).await;
    };
    tokio::select! {
        r = server => r?,
        () = hard_stop => tracing::warn!("connections still open after the drain timeout; stopping"),
    }
    drain.abort();
    streams.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn code(body: &str) -> Option<(StatusCode, i64)> {
        let resp = check_jsonrpc(body.as_bytes()).err()?;
        let status = resp.status();
        let bytes = futures::executor::block_on(resp.into_body().collect()).ok()?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some((status, v["error"]["code"].as_i64()?))
    }

    #[test]
    fn malformed_messages_get_the_jsonrpc_error() {
        let bad = StatusCode::BAD_REQUEST;
        assert_eq!(code("{not json"), Some((bad, -32700)));
        assert_eq!(code(""), Some((bad, -32700)));
        assert_eq!(code("[]"), Some((bad, -32600)));
        assert_eq!(code("42"), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#), Some((bad, -32602)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#), Some((bad, -32602)));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":5}}"#),
            Some((bad, -32602))
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), Some((bad, -32600)));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}"#), Some((bad, -32600)));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":"x"}}"#),
            Some((bad, -32602))
        );
        // well-formed messages pass
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#), None);
    }

    fn decode_code(body: &str) -> Option<i64> {
        let resp = check_decodes(body.as_bytes()).err()?;
        let bytes = futures::executor::block_on(resp.into_body().collect()).ok()?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["error"]["code"].as_i64()
    }

    #[test]
    fn messages_rmcp_cannot_decode_get_jsonrpc_errors() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"x":{}{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(decode_code(&deep), Some(-32700));
        let surrogate = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"\ud800"}}"#;
        assert_eq!(decode_code(surrogate), Some(-32700));
        assert_eq!(
            decode_code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":"x"}}"#),
            Some(-32602)
        );
        assert_eq!(decode_code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#), None);
    }

    #[test]
    fn errors_echo_the_request_id() {
        let resp = check_jsonrpc(br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call"}"#).err().unwrap();
        let bytes = futures::executor::block_on(resp.into_body().collect()).unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["id"], "abc");
    }

    #[test]
    fn protected_resource_metadata_url() {
        let pr =
            |r: &str| ProtectedResource { resource: r.into(), authorization_servers: vec![], scopes_supported: vec![] };
        assert_eq!(
            pr("https://mcp.example.com/mcp").metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            pr("http://127.0.0.1:8080").metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
        assert_eq!(pr("https://a.example/").metadata_url(), "https://a.example/.well-known/oauth-protected-resource");
    }

    #[test]
    fn credentials_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), Credential::None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer eyJhbGc"));
        assert_eq!(credential(&h), Credential::Bearer("eyJhbGc".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer pk_abc"));
        assert_eq!(credential(&h), Credential::ApiKey("pk_abc".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic bHJzOnBrX2FiYw=="));
        assert_eq!(credential(&h), Credential::ApiKey("pk_abc".into()), "basic: the password is the key");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(credential(&h), Credential::ApiKey(String::new()), "malformed basic fails as a key");
        h.insert("x-api-key", HeaderValue::from_static("pk_xyz"));
        assert_eq!(credential(&h), Credential::ApiKey("pk_xyz".into()));
    }

    // The request-decoding path must never panic, whatever the body. These
    // are the stable-toolchain companion of `fuzz/fuzz_targets/decode_request.rs`.

    const METHODS: &[&str] = &[
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/subscribe",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
    ];

    const KEYS: &[&str] = &[
        "name",
        "uri",
        "arguments",
        "_meta",
        "cursor",
        "text",
        "protocolVersion",
        "capabilities",
        "clientInfo",
        "requestId",
        "requestState",
        "inputResponses",
        "io.modelcontextprotocol/protocolVersion",
        "io.modelcontextprotocol/clientCapabilities",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(METHODS).prop_map(Value::from),
            Just(Value::from("2026-07-28")),
            Just(Value::from("2025-11-25")),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "[a-zA-Z_/]{0,8}"];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects shaped like JSON-RPC messages, most members plausible, some not.
    fn jsonrpc_ish() -> impl Strategy<Value = Vec<u8>> {
        let version = prop_oneof![4 => Just(Value::from("2.0")), 1 => json_value()];
        let id = prop_oneof![any::<i64>().prop_map(Value::from), "[a-z0-9-]{0,12}".prop_map(Value::from), json_value()];
        let method = prop_oneof![4 => prop::sample::select(METHODS).prop_map(Value::from), 1 => json_value()];
        (
            proptest::option::weighted(0.9, version),
            proptest::option::of(id),
            proptest::option::weighted(0.8, method),
            proptest::option::of(json_value()),
            proptest::option::weighted(0.1, json_value()),
            proptest::option::weighted(0.1, json_value()),
        )
            .prop_map(|(jsonrpc, id, method, params, result, error)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("jsonrpc", jsonrpc),
                    ("id", id),
                    ("method", method),
                    ("params", params),
                    ("result", result),
                    ("error", error),
                ] {
                    if let Some(v) = v {
                        m.insert(k.to_owned(), v);
                    }
                }
                serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            crate::fuzzing::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_json_ish_text(text in r#"[\[\]{}":,0-9a-z_/.+\-\\ ]{0,256}"#) {
            crate::fuzzing::decode(text.as_bytes());
        }

        #[test]
        fn decode_never_panics_on_jsonrpc_ish_messages(msg in jsonrpc_ish()) {
            crate::fuzzing::decode(&msg);
        }

        #[test]
        fn decode_never_panics_on_damaged_messages(
            msg in jsonrpc_ish(),
            cut in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            how in 0u8..3,
        ) {
            let mut msg = msg;
            let i = cut.index(msg.len() + 1);
            match how {
                0 => msg.truncate(i),
                1 => msg.insert(i, byte),
                _ => if i < msg.len() { msg[i] = byte },
            }
            crate::fuzzing::decode(&msg);
        }

        /// Whatever the front door rejects, it answers 400 with a JSON-RPC
        /// error object carrying one of the codes JSON-RPC names for it.
        #[test]
        fn front_door_rejections_are_jsonrpc_errors(msg in prop_oneof![
            jsonrpc_ish(),
            prop::collection::vec(any::<u8>(), 0..128),
        ]) {
            if let Err(resp) = check_jsonrpc(&msg) {
                prop_assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
                let body = futures::executor::block_on(resp.into_body().collect()).map(|b| b.to_bytes());
                prop_assert!(body.is_ok());
                let v: Value = serde_json::from_slice(&body.unwrap_or_default()).unwrap_or_default();
                prop_assert_eq!(&v["jsonrpc"], "2.0");
                prop_assert!(v.get("id").is_some_and(|id| id.is_null() || id.is_string() || id.is_number()), "{v}");
                let code = v["error"]["code"].as_i64();
                prop_assert!(matches!(code, Some(-32700 | -32600 | -32602)), "{v}");
                prop_assert!(v["error"]["message"].is_string(), "{v}");
            }
        }
    }
}
