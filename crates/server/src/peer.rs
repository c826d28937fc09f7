//! The way back to the client for one call, over an rmcp peer.
#![allow(deprecated)] // logging types are deprecated by SEP-2577 but still on the wire

use plexus_core::ToolError;
use plexus_core::bus::Bus;
use plexus_core::context::{
    ClientCapabilities, ClientPeer, ClientRequest, ClientResponse, Era, LogLevel, Notification,
};
use rmcp::model as m;
use serde_json::Value;

use crate::convert;

pub(crate) struct RmcpPeer {
    /// `None` on the stateless fast path, which sends no notifications.
    pub(crate) peer: Option<rmcp::Peer<rmcp::RoleServer>>,
    pub(crate) era: Era,
    pub(crate) progress_token: Option<m::ProgressToken>,
    /// Lowest level sent; `None` sends no log messages.
    pub(crate) log_threshold: Option<LogLevel>,
    pub(crate) capabilities: ClientCapabilities,
    pub(crate) bus: Bus,
}

pub(crate) fn capabilities(c: Option<&m::ClientCapabilities>) -> ClientCapabilities {
    c.map(|c| ClientCapabilities {
        sampling: c.sampling.is_some(),
        elicitation: c.elicitation.is_some(),
        roots: c.roots.is_some(),
    })
    .unwrap_or_default()
}

impl RmcpPeer {
    /// The peer of a stateless call with no MCP session behind it (the fast
    /// path, REST routes, the console): no progress or log messages, no
    /// server-to-client requests; notifications still reach the bus.
    pub(crate) fn stateless(capabilities: ClientCapabilities, bus: Bus) -> Self {
        Self { peer: None, era: Era::Stateless, progress_token: None, log_threshold: None, capabilities, bus }
    }
}

#[async_trait::async_trait]
impl ClientPeer for RmcpPeer {
    fn capabilities(&self) -> ClientCapabilities {
        self.capabilities
    }

    async fn progress(&self, done: f64, total: Option<f64>, message: Option<String>) {
        let (Some(token), Some(peer)) = (&self.progress_token, &self.peer) else { return };
        let mut p = m::ProgressNotificationParam::new(token.clone(), done);
        if let Some(t) = total {
            p = p.with_total(t);
        }
        if let Some(msg) = message {
            p = p.with_message(msg);
        }
        if let Err(e) = peer.notify_progress(p).await {
            tracing::debug!(error = %e, "progress notification not delivered");
        }
    }

    async fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        let (Some(threshold), Some(peer)) = (self.log_threshold, &self.peer) else { return };
        if level < threshold {
            return;
        }
        let mut p = m::LoggingMessageNotificationParam::new(convert::log_level(level), data);
        if let Some(l) = logger {
            p = p.with_logger(l.to_owned());
        }
        if let Err(e) = peer.notify_logging_message(p).await {
            tracing::debug!(error = %e, "log notification not delivered");
        }
    }

    async fn request(&self, request: ClientRequest) -> Result<ClientResponse, ToolError> {
        match (self.era, &self.peer) {
            (Era::Legacy, Some(peer)) => convert::send_request(peer, request).await,
            // The core never sends requests in this era: it returns input-required.
            _ => Err(ToolError::InputRequired(Vec::new())),
        }
    }

    fn notify(&self, n: Notification) {
        self.bus.publish(n);
    }
}
