//! The rmcp `ServerHandler`: every MCP request becomes a [`Call`] through the
//! pipeline; the answer is mapped back to the wire once, here.
#![allow(deprecated)] // subscribe, logging and sampling are deprecated by SEP-2577 but still served

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use plexus_core::ToolError;
use plexus_core::bus::Bus;
use plexus_core::context::{CallContext, Credential, Era, LogLevel, Notification};
use plexus_core::module::CompletionRef;
use plexus_core::pipeline::{Call, ListKind, Operation, Pipeline, Reply};
use plexus_core::registry::Registry;
use rmcp::model as m;
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::SessionRestoreMarker;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use tower::ServiceExt;

use crate::convert;
use crate::mrtr::{self, Round, StateCodec};
use crate::peer::{self, RmcpPeer};

/// What every handler instance shares.
pub(crate) struct Shared {
    pub(crate) registry: Arc<Registry>,
    pub(crate) pipeline: Pipeline,
    pub(crate) info: m::ServerConfig,
    pub(crate) codec: StateCodec,
    pub(crate) bus: Bus,
    /// The pipeline's authenticator, also used at the HTTP edge.
    pub(crate) authenticator: Arc<dyn plexus_core::ports::Authenticator>,
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) access: Option<Arc<plexus_core::access::AccessList>>,
    /// Where legacy HTTP sessions are kept for other nodes (and restarts).
    pub(crate) sessions: Option<Arc<dyn plexus_core::ports::SessionRecords>>,
    /// This server process among the cluster's (random, per start): the
    /// `by` of the sessions it takes.
    pub(crate) process: Arc<str>,
}

impl Shared {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Count a call in flight until the guard drops.
    pub(crate) fn in_flight_guard(&self) -> impl Drop + use<> {
        InFlight::new(&self.in_flight)
    }
}

/// Counts a call in flight for as long as it lives (graceful shutdown waits for zero).
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn new(c: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(Arc::clone(c))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Per legacy session: log level and resource subscriptions.
#[derive(Default)]
struct Session {
    log_level: Mutex<Option<LogLevel>>,
    subscriptions: Mutex<HashSet<String>>,
    /// Held while the session's state is written to the session store, so
    /// the last write carries the latest state.
    keeping: tokio::sync::Mutex<()>,
    /// Set once the session's events are forwarded: a session carried on
    /// from the store may see `initialized` twice (the replayed one, and the
    /// client's own when it was the first message to reach this node).
    forwarding: std::sync::atomic::AtomicBool,
}

/// One handler per session (legacy) or per request (stateless).
#[derive(Clone)]
pub(crate) struct PlexusHandler {
    shared: Arc<Shared>,
    session: Arc<Session>,
    /// The credential of a transport without per-request credentials (stdio).
    transport_credential: Credential,
}

impl PlexusHandler {
    pub(crate) fn new(shared: Arc<Shared>, transport_credential: Credential) -> Self {
        Self { shared, session: Arc::default(), transport_credential }
    }
}

fn era(cx: &RequestContext<RoleServer>) -> Era {
    match cx.protocol_version() {
        Some(v) if !v.has_initialize() => Era::Stateless,
        _ => Era::Legacy,
    }
}

/// Fill in what an HTTP request tells about the caller.
pub(crate) fn apply_http(cx: &mut CallContext, parts: &http::request::Parts) {
    cx.credential = parts.extensions.get::<Credential>().cloned().unwrap_or_default();
    cx.client_addr = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0);
    cx.session = parts.headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(Arc::from);
    cx.traceparent = parts.headers.get("traceparent").and_then(|v| v.to_str().ok()).map(Arc::from);
}

pub(crate) fn request_id(id: &m::RequestId) -> String {
    match id {
        m::NumberOrString::Number(n) => n.to_string(),
        m::NumberOrString::String(s) => s.to_string(),
    }
}

/// The result of running a call: the reply, or the error and the round of
/// answers (for an input-required result).
struct Ran {
    result: Result<Reply, ToolError>,
    round: Option<Round>,
}

impl PlexusHandler {
    fn context(&self, rcx: &RequestContext<RoleServer>, era: Era) -> CallContext {
        let (caps, log_threshold) = match era {
            Era::Stateless => (
                peer::capabilities(rcx.meta.client_capabilities().as_ref()),
                rcx.meta.log_level().as_ref().map(convert::core_log_level),
            ),
            Era::Legacy => (
                peer::capabilities(rcx.peer.peer_info().as_ref().map(|i| &i.capabilities)),
                Some(self.session.log_level.lock().unwrap_or(LogLevel::Info)),
            ),
        };
        let rpeer = RmcpPeer {
            peer: Some(rcx.peer.clone()),
            era,
            progress_token: rcx.meta.get_progress_token(),
            log_threshold,
            capabilities: caps,
            bus: self.shared.bus.clone(),
        };
        let mut cx = CallContext::new(request_id(&rcx.id), era, Arc::new(rpeer));
        cx.cancel = rcx.ct.clone();
        match rcx.extensions.get::<http::request::Parts>() {
            Some(parts) => apply_http(&mut cx, parts),
            None => cx.credential = self.transport_credential.clone(),
        }
        cx
    }

    async fn run(
        &self,
        op: Operation,
        rcx: &RequestContext<RoleServer>,
        mrtr: Option<MrtrParams<'_>>,
    ) -> Result<Ran, ErrorData> {
        let _in_flight = InFlight::new(&self.shared.in_flight);
        let era = era(rcx);
        let mut cx = self.context(rcx, era);
        let round = match (era, mrtr) {
            (Era::Stateless, Some(p)) => {
                let round = self
                    .shared
                    .codec
                    .open(p.binding, p.request_state, p.responses)
                    .map_err(|e| convert::error_data(&e))?;
                cx = cx.with_inputs(round.inputs.clone());
                Some(round)
            }
            _ => None,
        };
        let result = self.shared.pipeline.clone().oneshot(Call { cx, op }).await;
        Ok(Ran { result, round })
    }

    fn input_required(
        &self,
        round: Option<Round>,
        requests: Vec<plexus_core::context::InputRequest>,
    ) -> Result<m::InputRequiredResult, ErrorData> {
        let round = round.ok_or_else(|| convert::error_data(&ToolError::InputRequired(Vec::new())))?;
        self.shared.codec.input_required(round, requests).map_err(|e| convert::error_data(&e))
    }

    /// Write what this session asks for (subscriptions, log level) to the
    /// session store, if there is one and the request names its session.
    /// A failure is logged: the session goes on here, and another node
    /// carrying it on would miss only what was not written.
    async fn keep(&self, rcx: &RequestContext<RoleServer>) {
        let Some(store) = &self.shared.sessions else { return };
        let Some(id) = rcx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let _turn = self.session.keeping.lock().await;
        let mut subscriptions: Vec<String> = self.session.subscriptions.lock().iter().cloned().collect();
        subscriptions.sort();
        let level = self.session.log_level.lock().map(crate::sessions::level_name);
        if let Err(e) = store.update(id, &subscriptions, level).await {
            tracing::warn!(error = %e, "a session's state was not kept for other nodes");
        }
    }

    /// A session carried on from the store (begun on another node, or
    /// before a restart): take up its subscriptions and log level.
    async fn recall(&self, id: &str) {
        let Some(store) = &self.shared.sessions else { return };
        match store.load(id).await {
            Ok(Some(record)) => {
                *self.session.subscriptions.lock() = record.subscriptions.into_iter().collect();
                *self.session.log_level.lock() = record.log_level.as_deref().and_then(crate::sessions::level_named);
                tracing::info!("a session was carried on from the session store");
                // Any other copy (at the node that began it, say) is now stale.
                self.shared.bus.publish(Notification::SessionTaken {
                    session: id.to_owned(),
                    by: self.shared.process.to_string(),
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "a carried-on session's subscriptions could not be read"),
        }
    }

    /// Forward bus events to a legacy session until its transport closes.
    fn start_forwarder(&self, peer: rmcp::Peer<RoleServer>) {
        if self.session.forwarding.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let mut rx = self.shared.bus.subscribe();
        let session = Arc::clone(&self.session);
        tokio::spawn(async move {
            loop {
                let n = match rx.recv().await {
                    Ok(n) => n,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                        tracing::warn!(skipped = k, "session fell behind the event bus");
                        continue;
                    }
                    Err(_) => return,
                };
                if peer.is_transport_closed() {
                    return;
                }
                let sent = match n {
                    Notification::ResourceUpdated(uri) => {
                        if !session.subscriptions.lock().contains(&uri) {
                            continue;
                        }
                        peer.notify_resource_updated(m::ResourceUpdatedNotificationParam::new(uri)).await
                    }
                    Notification::ResourceListChanged => peer.notify_resource_list_changed().await,
                    Notification::ToolListChanged => peer.notify_tool_list_changed().await,
                    Notification::PromptListChanged => peer.notify_prompt_list_changed().await,
                    Notification::SessionTaken { .. } | Notification::CacheInvalidated { .. } => continue,
                };
                if sent.is_err() && peer.is_transport_closed() {
                    return;
                }
            }
        });
    }
}

/// The one mapping of a tool call's outcome to the wire, for the rmcp
/// handler and the stateless fast path alike.
pub(crate) fn tool_response(
    shared: &Shared,
    result: Result<Reply, ToolError>,
    round: Option<Round>,
) -> Result<m::CallToolResponse, ErrorData> {
    match result {
        Ok(Reply::Tool(out)) => Ok(convert::tool_result(out).into()),
        Ok(_) => Err(unexpected()),
        Err(ToolError::InputRequired(reqs)) if round.is_some() => {
            let round = round.ok_or_else(unexpected)?;
            Ok(shared.codec.input_required(round, reqs).map_err(|e| convert::error_data(&e))?.into())
        }
        Err(e) => match convert::tool_error_result(&e) {
            Some(r) => Ok(r.into()),
            None => Err(convert::error_data(&e)),
        },
    }
}

struct MrtrParams<'a> {
    binding: Vec<u8>,
    request_state: Option<&'a str>,
    responses: Option<&'a m::InputResponses>,
}

fn unexpected() -> ErrorData {
    ErrorData::internal_error("internal error", None)
}

fn args_value(a: Option<&m::JsonObject>) -> Value {
    a.map(|o| Value::Object(o.clone())).unwrap_or_else(|| Value::Object(Default::default()))
}

impl ServerHandler for PlexusHandler {
    fn get_info(&self) -> m::ServerConfig {
        self.shared.info.clone()
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Some(marker) = context.extensions.get::<SessionRestoreMarker>() {
            self.recall(&marker.id).await;
        }
        self.start_forwarder(context.peer);
    }

    async fn set_level(
        &self,
        request: m::SetLevelRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self.session.log_level.lock() = Some(convert::core_log_level(&request.level));
        self.keep(&cx).await;
        Ok(())
    }

    async fn call_tool(
        &self,
        req: m::CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::CallToolResponse, ErrorData> {
        let args = args_value(req.arguments.as_ref());
        let mrtr = MrtrParams {
            binding: mrtr::binding("tools/call", &req.name, &args),
            request_state: req.request_state.as_deref(),
            responses: req.input_responses.as_ref(),
        };
        let ran = self.run(Operation::CallTool { name: req.name.to_string(), args }, &cx, Some(mrtr)).await?;
        tool_response(&self.shared, ran.result, ran.round)
    }

    async fn read_resource(
        &self,
        req: m::ReadResourceRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::ReadResourceResponse, ErrorData> {
        let mrtr = MrtrParams {
            binding: mrtr::binding("resources/read", &req.uri, &Value::Null),
            request_state: req.request_state.as_deref(),
            responses: req.input_responses.as_ref(),
        };
        let ran = self.run(Operation::ReadResource { uri: req.uri.clone() }, &cx, Some(mrtr)).await?;
        match ran.result {
            Ok(Reply::Resource(r)) => Ok(convert::read_result(r).into()),
            Ok(_) => Err(unexpected()),
            Err(ToolError::InputRequired(reqs)) if ran.round.is_some() => {
                Ok(self.input_required(ran.round, reqs)?.into())
            }
            Err(e) => Err(convert::error_data(&e)),
        }
    }

    async fn get_prompt(
        &self,
        req: m::GetPromptRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::GetPromptResponse, ErrorData> {
        let mut args = BTreeMap::new();
        for (k, v) in req.arguments.iter().flatten() {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            args.insert(k.clone(), s);
        }
        let mrtr = MrtrParams {
            binding: mrtr::binding("prompts/get", &req.name, &args_value(req.arguments.as_ref())),
            request_state: req.request_state.as_deref(),
            responses: req.input_responses.as_ref(),
        };
        let ran = self.run(Operation::GetPrompt { name: req.name.clone(), args }, &cx, Some(mrtr)).await?;
        match ran.result {
            Ok(Reply::Prompt(p)) => Ok(convert::prompt_result(p).into()),
            Ok(_) => Err(unexpected()),
            Err(ToolError::InputRequired(reqs)) if ran.round.is_some() => {
                Ok(self.input_required(ran.round, reqs)?.into())
            }
            Err(e) => Err(convert::error_data(&e)),
        }
    }

    async fn complete(
        &self,
        req: m::CompleteRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::CompleteResult, ErrorData> {
        let reference = match &req.r#ref {
            m::Reference::Prompt(p) => CompletionRef::Prompt(p.name.clone()),
            m::Reference::Resource(r) => CompletionRef::Resource(r.uri.clone()),
            _ => return Err(ErrorData::invalid_params("unsupported completion reference", None)),
        };
        let context = req.context.as_ref().and_then(|c| c.arguments.clone()).unwrap_or_default().into_iter().collect();
        let op = Operation::Complete {
            reference,
            argument: req.argument.name.clone(),
            value: req.argument.value.clone(),
            context,
        };
        match self.run(op, &cx, None).await?.result {
            Ok(Reply::Completion(c)) => Ok(convert::completion(c)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(convert::error_data(&e)),
        }
    }

    async fn list_tools(
        &self,
        req: Option<m::PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::ListToolsResult, ErrorData> {
        match self.list(ListKind::Tools, req, &cx).await? {
            Reply::Tools(p) => {
                let mut r = m::ListToolsResult::with_all_items(p.items.iter().map(|s| convert::tool(s)).collect());
                r.next_cursor = p.next_cursor;
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn list_resources(
        &self,
        req: Option<m::PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::ListResourcesResult, ErrorData> {
        match self.list(ListKind::Resources, req, &cx).await? {
            Reply::Resources(p) => {
                let mut r =
                    m::ListResourcesResult::with_all_items(p.items.iter().map(|s| convert::resource(s)).collect());
                r.next_cursor = p.next_cursor;
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn list_resource_templates(
        &self,
        req: Option<m::PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::ListResourceTemplatesResult, ErrorData> {
        match self.list(ListKind::ResourceTemplates, req, &cx).await? {
            Reply::ResourceTemplates(p) => {
                let mut r = m::ListResourceTemplatesResult::with_all_items(
                    p.items.iter().map(|s| convert::resource_template(s)).collect(),
                );
                r.next_cursor = p.next_cursor;
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn list_prompts(
        &self,
        req: Option<m::PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<m::ListPromptsResult, ErrorData> {
        match self.list(ListKind::Prompts, req, &cx).await? {
            Reply::Prompts(p) => {
                let mut r = m::ListPromptsResult::with_all_items(p.items.iter().map(|s| convert::prompt(s)).collect());
                r.next_cursor = p.next_cursor;
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn subscribe(&self, req: m::SubscribeRequestParams, cx: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        match self.run(Operation::Subscribe { uri: req.uri.clone() }, &cx, None).await?.result {
            Ok(_) => {
                self.session.subscriptions.lock().insert(req.uri);
                self.keep(&cx).await;
                Ok(())
            }
            Err(e) => Err(convert::error_data(&e)),
        }
    }

    async fn unsubscribe(
        &self,
        req: m::UnsubscribeRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if self.session.subscriptions.lock().remove(&req.uri) {
            self.keep(&cx).await;
        }
        Ok(())
    }

    fn accepted_subscription_filter(&self, requested: &m::SubscriptionFilter) -> Option<m::SubscriptionFilter> {
        Some(requested.supported_by(&self.shared.info.capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut rx = self.shared.bus.subscribe();
        let accepted = context.accepted().clone();
        let uris: HashSet<String> = accepted.resource_subscriptions.clone().unwrap_or_default().into_iter().collect();
        loop {
            let n = tokio::select! {
                () = context.cancelled() => return Ok(()),
                n = rx.recv() => match n {
                    Ok(n) => n,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return Ok(()),
                },
            };
            let sink = context.sink();
            let sent = match n {
                Notification::ToolListChanged if accepted.tools_list_changed == Some(true) => {
                    sink.notify_tool_list_changed().await
                }
                Notification::PromptListChanged if accepted.prompts_list_changed == Some(true) => {
                    sink.notify_prompt_list_changed().await
                }
                Notification::ResourceListChanged if accepted.resources_list_changed == Some(true) => {
                    sink.notify_resource_list_changed().await
                }
                Notification::ResourceUpdated(uri) if uris.contains(&uri) => sink.notify_resource_updated(uri).await,
                _ => continue,
            };
            if let Err(rmcp::service::SubscriptionSendError::SubscriptionClosed) = sent {
                return Ok(());
            }
        }
    }
}

impl PlexusHandler {
    async fn list(
        &self,
        kind: ListKind,
        req: Option<m::PaginatedRequestParams>,
        cx: &RequestContext<RoleServer>,
    ) -> Result<Reply, ErrorData> {
        let cursor = req.and_then(|r| r.cursor);
        self.run(Operation::List { kind, cursor }, cx, None).await?.result.map_err(|e| convert::error_data(&e))
    }
}
