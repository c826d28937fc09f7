//! The web console at `/console`: server-rendered pages (maud, every splice
//! escaped), a little plain JavaScript for live updates over Server-Sent
//! Events, everything embedded in the binary.
//!
//! The console holds no privileges of its own. A user signs in with an API
//! key; each page then calls tools through the same pipeline as MCP clients
//! (authenticate, tenant, rate limit, authorize, validate, audit) with that
//! key, so the user's role decides what a page shows and allows, and every
//! change made here is audited like any tool call. What the role lacks is
//! reported as not permitted, never worked around.

mod chart;
mod i18n;
pub(crate) mod oidc;
mod pages;
mod session;

pub use oidc::ConsoleOidc;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Form, Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use plexus_core::pipeline::{Call, ListKind, Operation, Reply};
use plexus_core::{CallContext, Credential, Era, ToolError};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::handler::Shared;
use crate::metrics::Metrics;
use crate::peer::{self, RmcpPeer};
use i18n::Lang;
use session::{NoSession, Session, Sessions};

/// The console's state.
pub(crate) struct Console {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    sessions: Sessions,
    oidc: Option<oidc::Oidc>,
}

type St = State<Arc<Console>>;

/// The console's routes (merged into the HTTP router).
pub(crate) fn router(shared: Arc<Shared>, metrics: Arc<Metrics>, oidc: Option<ConsoleOidc>) -> axum::Router {
    let oidc = oidc.and_then(|config| match crate::outbound::ReqwestClient::new() {
        Ok(http) => Some(oidc::Oidc::new(config, Arc::new(http))),
        Err(e) => {
            tracing::error!(error = %e, "console: OpenID Connect sign-in is off: no HTTP client");
            None
        }
    });
    let console = Arc::new(Console { shared, metrics, sessions: Sessions::default(), oidc });
    axum::Router::new()
        .route("/console", get(root))
        .route("/console/", get(root))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/oidc/start", get(oidc_start))
        .route("/console/oidc/callback", get(oidc_callback))
        .route("/console/lang/{lang}", get(set_lang))
        .route("/console/overview", get(overview))
        .route("/console/incidents", get(incidents).post(create_incident))
        .route("/console/incidents/{id}", post(update_incident))
        .route("/console/fragments/banner", get(banner_fragment))
        .route("/console/fragments/open-incidents", get(open_incidents_fragment))
        .route("/console/fragments/figures", get(figures_fragment))
        .route("/console/fragments/incidents", get(incidents_fragment))
        .route("/console/flags", get(ops::flags))
        .route("/console/flags/{flag}", post(ops::change_flag))
        .route("/console/flags-test", post(ops::test_flag))
        .route("/console/fragments/flags", get(ops::flags_fragment))
        .route("/console/config", get(ops::config))
        .route("/console/config/view", get(ops::config_view))
        .route("/console/fragments/config", get(ops::config_fragment))
        .route("/console/fragments/config-doc", get(ops::config_doc_fragment))
        .route("/console/config/rollback", post(ops::config_rollback))
        .route("/console/audit", get(ops::audit))
        .route("/console/audit/export", post(ops::audit_export))
        .route("/console/audit/verify", post(ops::audit_verify))
        .route("/console/tenants", get(ops::tenants))
        .route("/console/modules/knowledge", get(modules::knowledge))
        .route("/console/modules/knowledge/sync", post(modules::knowledge_sync))
        .route("/console/modules/health", get(modules::health))
        .route("/console/modules/trading", get(modules::trading))
        .route("/console/modules/learning", get(modules::learning))
        .route("/console/events", get(events))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .layer(axum::middleware::map_response(harden))
        .with_state(console)
}

/// Every console response: no framing, no sniffing, no caching of pages,
/// and a CSP that allows only the console's own files (no inline script).
async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Whether the browser reached us over TLS (a proxy in front says so).
fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A state-changing request must come from the console's own pages: a
/// browser says where a request comes from (`Sec-Fetch-Site`, `Origin`).
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let host = host.to_str().unwrap_or("");
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

fn client_addr(ext: &Extensions) -> Option<SocketAddr> {
    ext.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Where a page without a session goes: the sign-in page (back here after),
/// or a 401 for the page's scripts.
fn no_session(why: NoSession, back: &str, fragment: bool) -> Response {
    if fragment {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    }
    let expired = if why == NoSession::Expired { "expired=1&" } else { "" };
    redirect(&format!("/console/login?{expired}next={back}"))
}

/// Only the console's own pages are places to go back to.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console/") && !n.starts_with("//") && !n.contains(['\\', '\r', '\n']) => n,
        _ => "/console/overview",
    }
}

/// How a call the console made ended.
#[derive(Debug)]
enum Failure {
    /// The role may not use the tool (or the module is not served).
    NotPermitted,
    /// The key is no longer accepted: the session ends.
    SignedOut,
    /// The tool refused, with its reason (shown to the user).
    Refused(String),
}

impl Failure {
    /// The status of a page shown again with this failure: 403 for a role
    /// without the right, else 200 (the page explains; a 4xx page would be
    /// a browser console error for what is an ordinary answer).
    fn status(&self) -> StatusCode {
        if matches!(self, Failure::NotPermitted) { StatusCode::FORBIDDEN } else { StatusCode::OK }
    }
}

impl Console {
    fn oidc_label(&self) -> Option<&str> {
        self.oidc.as_ref().map(|o| o.config.label.as_str())
    }

    async fn run(&self, s: &Session, addr: Option<SocketAddr>, op: Operation) -> Result<Reply, ToolError> {
        let rpeer = RmcpPeer::stateless(peer::capabilities(None), self.shared.bus.clone());
        let mut cx =
            CallContext::new(format!("console-{}", uuid::Uuid::new_v4().simple()), Era::Stateless, Arc::new(rpeer));
        cx.credential = s.credential.clone();
        cx.client_addr = addr;
        let _in_flight = self.shared.in_flight_guard();
        self.shared.pipeline.clone().oneshot(Call { cx, op }).await
    }

    /// Call `tool` as the session's user: its structured result.
    async fn call(&self, s: &Session, addr: Option<SocketAddr>, tool: &str, args: Value) -> Result<Value, Failure> {
        let op = Operation::CallTool { name: tool.to_owned(), args };
        match self.run(s, addr, op).await {
            Ok(Reply::Tool(out)) if out.is_error => Err(Failure::Refused(
                out.content.iter().find_map(|c| c.as_text().map(str::to_owned)).unwrap_or_else(|| "refused".into()),
            )),
            Ok(Reply::Tool(out)) => Ok(out.into_structured().unwrap_or(Value::Null)),
            Ok(_) => Err(Failure::Refused("unexpected answer".into())),
            Err(ToolError::NotFound { kind: "tool", .. }) => Err(Failure::NotPermitted),
            Err(ToolError::Unauthenticated { .. }) => {
                self.sessions.remove(&s.id);
                Err(Failure::SignedOut)
            }
            Err(e) => Err(Failure::Refused(e.to_string())),
        }
    }

    /// The tools the session's user may call (`tools/list` through the pipeline).
    async fn tools(&self, s: &Session, addr: Option<SocketAddr>) -> Result<BTreeSet<String>, Failure> {
        let mut out = BTreeSet::new();
        let mut cursor = None;
        loop {
            match self.run(s, addr, Operation::List { kind: ListKind::Tools, cursor: cursor.take() }).await {
                Ok(Reply::Tools(page)) => {
                    out.extend(page.items.iter().map(|t| t.name.to_string()));
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => return Ok(out),
                    }
                }
                Ok(_) => return Err(Failure::Refused("unexpected answer".into())),
                Err(ToolError::Unauthenticated { .. }) => {
                    self.sessions.remove(&s.id);
                    return Err(Failure::SignedOut);
                }
                Err(e) => return Err(Failure::Refused(e.to_string())),
            }
        }
    }

    /// What every page shows: who, the open incidents (for the banner).
    async fn frame(&self, s: &Session, addr: Option<SocketAddr>) -> Result<pages::Frame, Failure> {
        let tools = self.tools(s, addr).await?;
        let incidents = if tools.contains("list_incidents") {
            match self.call(s, addr, "list_incidents", json!({"open": true})).await {
                Ok(v) => v["incidents"].as_array().cloned().unwrap_or_default(),
                Err(Failure::SignedOut) => return Err(Failure::SignedOut),
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        Ok(pages::Frame {
            subject: s.subject.clone(),
            tenant: s.tenant.clone(),
            roles: s.roles.clone(),
            csrf: s.csrf.clone(),
            tools,
            incidents,
        })
    }

    fn figures(&self) -> pages::Figures {
        let gauges = self.metrics.gauges();
        let now = SystemTime::now();
        let series = self.metrics.telemetry().map(|t| t.series(now)).unwrap_or_default();
        let now_unix = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        pages::Figures { gauges, series, now_unix }
    }
}

/// A session or the way to sign in.
macro_rules! session {
    ($console:expr, $headers:expr, $back:expr, $fragment:expr) => {
        match $console.sessions.get(&$headers) {
            Ok(s) => s,
            Err(why) => return no_session(why, $back, $fragment),
        }
    };
}

/// A frame or the way to sign in again.
macro_rules! frame {
    ($console:expr, $s:expr, $addr:expr, $back:expr) => {
        match $console.frame(&$s, $addr).await {
            Ok(f) => f,
            Err(Failure::SignedOut) => return no_session(NoSession::Expired, $back, false),
            Err(Failure::NotPermitted | Failure::Refused(_)) => $crate::console::pages::Frame::bare(&$s),
        }
    };
}

// After the macros, which they use.
mod modules;
mod ops;

async fn root() -> Response {
    redirect("/console/overview")
}

#[derive(Deserialize)]
struct LoginQuery {
    expired: Option<u8>,
    next: Option<String>,
}

async fn login_page(State(c): St, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    if c.sessions.get(&headers).is_ok() {
        return redirect(safe_next(q.next.as_deref()));
    }
    let lang = Lang::of(&headers);
    let t = lang.text();
    let message = q.expired.map(|_| t.session_expired);
    html(StatusCode::OK, pages::login(lang, message, safe_next(q.next.as_deref()), c.oidc_label()))
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

async fn login(State(c): St, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let lang = Lang::of(&headers);
    let t = lang.text();
    let next = safe_next(f.next.as_deref()).to_owned();
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-in refused").into_response();
    }
    let key = f.key.trim();
    if key.is_empty() {
        return html(StatusCode::OK, pages::login(lang, Some(t.sign_in_missing), &next, c.oidc_label()));
    }
    match c.shared.authenticator.authenticate(&Credential::ApiKey(key.to_owned())).await {
        Ok(p) if p.method == "api_key" => {
            let s = c.sessions.create(
                Credential::ApiKey(key.to_owned()),
                None,
                p.subject.clone(),
                p.tenant.to_string(),
                p.roles.clone(),
            );
            tracing::info!(subject = %p.subject, tenant = %p.tenant, "console sign-in");
            let mut resp = redirect(&next);
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&s.id, secure(&headers))) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        _ => {
            tracing::info!("console sign-in refused");
            // 200, like any form shown again with its error (a 4xx page is a
            // browser console error, and the message says what happened).
            html(StatusCode::OK, pages::login(lang, Some(t.sign_in_invalid), &next, c.oidc_label()))
        }
    }
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

/// Send the browser to the provider, with `state` in a cookie of this browser.
async fn oidc_start(State(c): St, headers: HeaderMap, Query(q): Query<StartQuery>) -> Response {
    let lang = Lang::of(&headers);
    let next = safe_next(q.next.as_deref());
    let Some(oidc) = &c.oidc else {
        return (StatusCode::NOT_FOUND, "OpenID Connect sign-in is not configured").into_response();
    };
    match oidc.start(next).await {
        Ok((url, state)) => {
            let mut resp = redirect(&url);
            // Lax, not Strict: it must come back on the provider's redirect (a top-level GET).
            let secure = if secure(&headers) { "; Secure" } else { "" };
            let cookie = format!(
                "{}={state}; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
                oidc::STATE_COOKIE
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => html(StatusCode::OK, pages::login(lang, Some(&e.0), next, c.oidc_label())),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider sends the browser back: redeem the code, check the token
/// through the pipeline's authenticator, open a session.
async fn oidc_callback(State(c): St, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let lang = Lang::of(&headers);
    let Some(oidc) = &c.oidc else {
        return (StatusCode::NOT_FOUND, "OpenID Connect sign-in is not configured").into_response();
    };
    let refuse =
        |message: String| html(StatusCode::OK, pages::login(lang, Some(&message), "/console/overview", c.oidc_label()));
    if let Some(e) = q.error {
        let more = q.error_description.map(|d| format!(": {d}")).unwrap_or_default();
        return refuse(format!("the sign-in provider refused ({e}{more})"));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refuse("the sign-in provider sent neither a code nor an error".into());
    };
    let (token, lifetime, next) = match oidc.finish(&code, &state, session::cookie(&headers, oidc::STATE_COOKIE)).await
    {
        Ok(t) => t,
        Err(e) => return refuse(e.0),
    };
    let credential = Credential::Bearer(token);
    match c.shared.authenticator.authenticate(&credential).await {
        Ok(p) if p.method == "jwt" => {
            let s = c.sessions.create(credential, lifetime, p.subject.clone(), p.tenant.to_string(), p.roles.clone());
            tracing::info!(subject = %p.subject, tenant = %p.tenant, "console sign-in (OpenID Connect)");
            let mut resp = redirect(&next);
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&s.id, secure(&headers))) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            let clear = format!("{}=; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=0", oidc::STATE_COOKIE);
            if let Ok(v) = HeaderValue::from_str(&clear) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(_) => refuse("the provider's token is not a bearer token this server accepts".into()),
        Err(e) => refuse(format!("this server does not accept the provider's access token ({e})")),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Whether a form post carries the session's CSRF token and comes from our pages.
fn csrf_ok(s: &Session, headers: &HeaderMap, token: &str) -> bool {
    same_origin(headers) && session::same(token, &s.csrf)
}

fn csrf_refused() -> Response {
    (StatusCode::FORBIDDEN, "refused: the form's CSRF token is missing or wrong; reload the page").into_response()
}

async fn logout(State(c): St, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let s = session!(c, headers, "/console/overview", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    c.sessions.remove(&s.id);
    let mut resp = redirect("/console/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(secure(&headers))) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct Back {
    back: Option<String>,
}

/// Switch the language (a preference, not a change of state: a GET is fine).
async fn set_lang(Path(lang): Path<String>, Query(q): Query<Back>) -> Response {
    let Some(lang) = Lang::parse(&lang) else {
        return (StatusCode::NOT_FOUND, "unknown language").into_response();
    };
    let mut resp = redirect(safe_next(q.back.as_deref()));
    let cookie = format!("{}={}; Path=/console; SameSite=Strict; Max-Age=31536000", session::LANG_COOKIE, lang.code());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn overview(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/overview", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/overview");
    let lang = Lang::of(&headers);
    let ops = if frame.tools.contains("get_ops_metrics") {
        c.call(&s, addr, "get_ops_metrics", json!({})).await.ok()
    } else {
        None
    };
    let figures = frame.tools.contains("get_ops_metrics").then(|| c.figures());
    html(StatusCode::OK, pages::overview(lang, &frame, figures.as_ref(), ops.as_ref()))
}

async fn figures_fragment(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/overview", true);
    let addr = client_addr(&ext);
    match c.tools(&s, addr).await {
        Ok(tools) if tools.contains("get_ops_metrics") => {
            html(StatusCode::OK, pages::figures(Lang::of(&headers), &c.figures()))
        }
        Ok(_) => (StatusCode::FORBIDDEN, "not permitted").into_response(),
        Err(_) => (StatusCode::UNAUTHORIZED, "sign in again").into_response(),
    }
}

async fn banner_fragment(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/overview", true);
    match c.frame(&s, client_addr(&ext)).await {
        Ok(frame) => html(StatusCode::OK, pages::banner(Lang::of(&headers), &frame.incidents)),
        Err(_) => (StatusCode::UNAUTHORIZED, "sign in again").into_response(),
    }
}

async fn open_incidents_fragment(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/overview", true);
    match c.frame(&s, client_addr(&ext)).await {
        Ok(frame) => html(StatusCode::OK, pages::open_incidents(Lang::of(&headers), &frame.incidents)),
        Err(_) => (StatusCode::UNAUTHORIZED, "sign in again").into_response(),
    }
}

/// What the incidents page shows below its forms.
async fn incident_list(c: &Console, s: &Session, addr: Option<SocketAddr>) -> Result<Vec<Value>, Failure> {
    let v = c.call(s, addr, "list_incidents", json!({})).await?;
    Ok(v["incidents"].as_array().cloned().unwrap_or_default())
}

async fn incidents(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/incidents", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/incidents");
    let lang = Lang::of(&headers);
    let list = incident_list(&c, &s, addr).await;
    html(StatusCode::OK, pages::incidents(lang, &frame, &list, None, &pages::NewIncident::default()))
}

async fn incidents_fragment(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/incidents", true);
    let addr = client_addr(&ext);
    let Ok(tools) = c.tools(&s, addr).await else {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    };
    let list = incident_list(&c, &s, addr).await;
    html(StatusCode::OK, pages::incident_list(Lang::of(&headers), &tools, &s.csrf, &list))
}

async fn create_incident(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Form(f): Form<pages::NewIncident>,
) -> Response {
    let s = session!(c, headers, "/console/incidents", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    let teams: Vec<&str> = f.teams.split([',', '、']).map(str::trim).filter(|t| !t.is_empty()).collect();
    let mut args = json!({"severity": f.severity, "title": f.title, "teams": teams});
    if !f.note.trim().is_empty() {
        args["note"] = json!(f.note);
    }
    match c.call(&s, addr, "create_incident", args).await {
        Ok(_) => redirect("/console/incidents"),
        Err(Failure::SignedOut) => no_session(NoSession::Expired, "/console/incidents", false),
        Err(e) => {
            // The page again, with the form as typed and the reason.
            let frame = frame!(c, s, addr, "/console/incidents");
            let list = incident_list(&c, &s, addr).await;
            html(e.status(), pages::incidents(Lang::of(&headers), &frame, &list, Some(&e), &f))
        }
    }
}

#[derive(Deserialize)]
struct IncidentUpdate {
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    note: String,
}

async fn update_incident(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Path(id): Path<String>,
    Form(f): Form<IncidentUpdate>,
) -> Response {
    let s = session!(c, headers, "/console/incidents", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    let mut args = json!({"id": id, "note": f.note});
    if !f.status.is_empty() {
        args["status"] = json!(f.status);
    }
    let outcome = c.call(&s, addr, "update_incident", args).await;
    if matches!(outcome, Err(Failure::SignedOut)) {
        return no_session(NoSession::Expired, "/console/incidents", false);
    }
    match outcome {
        Ok(_) => redirect("/console/incidents"),
        Err(e) => {
            let frame = frame!(c, s, addr, "/console/incidents");
            let list = incident_list(&c, &s, addr).await;
            html(
                e.status(),
                pages::incidents(Lang::of(&headers), &frame, &list, Some(&e), &pages::NewIncident::default()),
            )
        }
    }
}

/// Server-Sent Events: `incidents`, `flags` or `config` (any other shared
/// document) when the shared registry changes (the page then fetches what it shows through the
/// pipeline, as the user), a comment every 15 s to keep proxies from
/// closing the stream. The events name a kind of change, never content.
async fn events(State(c): St, headers: HeaderMap) -> Response {
    let _s = session!(c, headers, "/console/overview", true);
    let mut rx = c.shared.bus.subscribe();
    let stream = async_stream(move |tx| async move {
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        loop {
            let event = tokio::select! {
                r = rx.recv() => match r {
                    Ok(plexus_core::context::Notification::ResourceUpdated(uri)) => match kind_of(&uri) {
                        Some(kind) => format!("event: {kind}\ndata: {kind}\n\n"),
                        None => continue,
                    },
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        "event: incidents\ndata: incidents\n\nevent: flags\ndata: flags\n\nevent: config\ndata: config\n\n".to_owned()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = keepalive.tick() => ": keepalive\n\n".to_owned(),
            };
            if tx.send(Ok::<_, std::convert::Infallible>(bytes::Bytes::from(event))).await.is_err() {
                break;
            }
        }
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// The console event a changed resource is.
fn kind_of(uri: &str) -> Option<&'static str> {
    let name = uri.strip_prefix("shared://")?;
    if name.starts_with("incidents/") || name.starts_with("alerts/") {
        Some("incidents")
    } else if name == "config/feature-flags.json" {
        Some("flags")
    } else {
        // Every other shared document is on the config registry's page.
        Some("config")
    }
}

/// A stream fed by a task through a small channel (ends when the task does
/// or the client goes).
fn async_stream<F, Fut, T>(f: F) -> tokio_stream_like::Receiver<T>
where
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream_like::Receiver(rx)
}

mod tokio_stream_like {
    /// An mpsc receiver as a `Stream`.
    pub(crate) struct Receiver<T>(pub(crate) tokio::sync::mpsc::Receiver<T>);

    impl<T> futures::Stream for Receiver<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], CSS).into_response()
}

async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], JS)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_places_to_go_back_to() {
        assert_eq!(safe_next(Some("/console/incidents")), "/console/incidents");
        for bad in ["https://evil.example/", "//evil.example/console/", "/mcp", "/console/\r\nx", "/console\\..", ""] {
            assert_eq!(safe_next(Some(bad)), "/console/overview", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/overview");
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site"), ("origin", "http://127.0.0.1:1")])));
        assert!(same_origin(&h(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")])));
        assert!(!same_origin(&h(&[("origin", "http://evil.example"), ("host", "127.0.0.1:8080")])));
        assert!(same_origin(&h(&[("host", "127.0.0.1:8080")])), "no Origin: not a browser's cross-site form");
    }

    #[test]
    fn registry_changes_map_to_console_events() {
        assert_eq!(kind_of("shared://incidents/INC-0001.json"), Some("incidents"));
        assert_eq!(kind_of("shared://config/feature-flags.json"), Some("flags"));
        assert_eq!(kind_of("shared://config/interview-types.json"), Some("config"));
        assert_eq!(kind_of("kb://documents/x"), None);
        assert_eq!(kind_of("shared://reports/x.md"), Some("config"));
    }
}
