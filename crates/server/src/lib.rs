//! plexus-server: the only crate that knows rmcp, axum, HTTP and JSON-RPC.
//!
//! It serves a built pipeline ([`plexus_core::pipeline::Pipeline`]) and a
//! registry over stdio and Streamable HTTP, in both protocol eras:
//! 2025-11-25 (initialize, sessions, server-to-client requests, SSE
//! resumability, subscriptions) and 2026-07-28 (stateless requests,
//! `server/discover`, `subscriptions/listen`, input-required results with
//! sealed request state). Errors are mapped to the wire once, in `convert`.
//!
//! Architecture invariant: this crate depends on no module and not on
//! plexus-store; the app hands it the pipeline and the ports.

mod console;
mod convert;
mod fast;
mod handler;
mod http;
mod metrics;
mod mrtr;
pub mod outbound;
pub use console::ConsoleOidc;
mod peer;
mod rest;
mod sessions;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use plexus_core::bus::Bus;
use plexus_core::context::Credential;
use plexus_core::pipeline::Pipeline;
use plexus_core::ports::AuditSink;
use plexus_core::registry::Registry;
use plexus_core::telemetry::Telemetry;
use rmcp::ServiceExt;
use rmcp::model as m;

use crate::handler::{PlexusHandler, Shared};
pub use crate::http::{HttpOptions, ProtectedResource};

/// Entry points for fuzzing and property tests; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decode one HTTP request body the way the server does: the front
    /// door's JSON-RPC checks, then (if they pass) rmcp's message type.
    /// Whatever the bytes, this must return without panicking.
    pub fn decode(bytes: &[u8]) {
        if crate::http::check_jsonrpc(bytes).is_ok() {
            let _ = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(bytes);
        }
    }
}

/// Everything the server needs, built by the app.
pub struct ServerParts {
    pub registry: Arc<Registry>,
    pub pipeline: Pipeline,
    pub bus: Bus,
    /// The authenticator of the pipeline: the HTTP edge uses it too, so a
    /// bad credential gets 401 (or 403 for a missing scope) at the HTTP level.
    pub authenticator: Arc<dyn plexus_core::ports::Authenticator>,
    /// Name and version announced to clients.
    pub name: String,
    pub version: String,
    pub instructions: Option<String>,
    /// Key that seals input-required request state (32 random bytes; the
    /// same on every node of a cluster).
    pub state_key: [u8; 32],
    /// The telemetry the pipeline records into, for `/metrics` (call counts,
    /// errors, latency, rate-limit refusals). `None` leaves those out.
    pub telemetry: Option<Arc<Telemetry>>,
    /// The audit sink, for `plexus_audit_queue_depth` on `/metrics`. `None`
    /// leaves it out.
    pub audit: Option<Arc<dyn AuditSink>>,
    /// Live access lists: requests from a blocked address are refused at
    /// the HTTP edge with 403, before any other work.
    pub access: Option<Arc<plexus_core::access::AccessList>>,
    /// Where legacy-era HTTP sessions are kept, so that a session carries on
    /// at another node (or after a restart). `None` keeps them in memory.
    pub sessions: Option<Arc<dyn plexus_core::ports::SessionRecords>>,
}

/// The MCP server.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    metrics: Arc<metrics::Metrics>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("registry", &self.shared.registry).finish_non_exhaustive()
    }
}

impl Server {
    #[allow(deprecated)] // logging is deprecated by SEP-2577 but legacy clients still use it
    pub fn new(parts: ServerParts) -> Self {
        let capabilities = m::ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut info = m::ServerConfig::new(capabilities)
            .with_server_info(m::Implementation::new(parts.name, parts.version))
            .with_protocol_version(m::ProtocolVersion::LATEST_WITH_INITIALIZE);
        if let Some(i) = parts.instructions {
            info = info.with_instructions(i);
        }
        let in_flight = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(metrics::Metrics::new(parts.telemetry, parts.audit, Arc::clone(&in_flight)));
        let shared = Shared {
            registry: parts.registry,
            pipeline: parts.pipeline,
            info,
            codec: mrtr::StateCodec::new(parts.state_key),
            bus: parts.bus,
            authenticator: parts.authenticator,
            in_flight,
            access: parts.access,
            sessions: parts.sessions,
            process: Arc::from(uuid::Uuid::new_v4().to_string()),
        };
        Self { shared: Arc::new(shared), metrics }
    }

    /// Serve one client over stdin/stdout as `credential` until stdin closes.
    pub async fn serve_stdio(&self, credential: Credential) -> std::io::Result<()> {
        let handler = PlexusHandler::new(Arc::clone(&self.shared), credential);
        let running = handler
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| std::io::Error::other(format!("stdio session failed to start: {e}")))?;
        running.waiting().await.map_err(std::io::Error::other)?;
        Ok(())
    }

    /// Serve Streamable HTTP at `/mcp` (plus `/healthz`, `/readyz` and the
    /// Prometheus `/metrics`, none of which needs a credential) until
    /// `opts.shutdown` is cancelled; in-flight calls are drained first.
    pub async fn serve_http(&self, listener: tokio::net::TcpListener, opts: HttpOptions) -> std::io::Result<()> {
        http::serve(Arc::clone(&self.shared), Arc::clone(&self.metrics), listener, opts).await
    }

    /// The current metrics in the Prometheus text exposition format (what
    /// `/metrics` serves).
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Calls currently running.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}
