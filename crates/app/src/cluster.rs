//! Cluster mode's event bus: each node's events travel to the other nodes
//! over NATS (`[bus] url`), and theirs come back to this node's subscribers.
//!
//! The bus in core stays the only thing modules and transports see: a
//! [`Relay`] set on it queues the node's own events for a publisher task,
//! and a subscriber task hands other nodes' events to [`Bus::deliver`]
//! (never relayed again). A node always delivers its own events to its own
//! subscribers at once, NATS or not: an outage of NATS costs the other
//! nodes' view, never this node's. Core NATS (at-most-once, in order per
//! publisher) is the right tool: a notification says "look again", a lost
//! one is repaired by the next, and JetStream's persistence would replay
//! stale changes to nodes that start later.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use futures::StreamExt;
use plexus_core::bus::{Bus, Relay};
use plexus_core::context::Notification;
use serde::{Deserialize, Serialize};

use crate::config::BusConfig;

/// The header naming the node that published an event.
const NODE_HEADER: &str = "Plexus-Node";

/// Events queued for NATS at most; past it new ones are dropped (and
/// counted) rather than the publisher blocking.
const QUEUE: usize = 4096;

/// One event on the wire: a deliberate, versioned format (JSON).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Wire {
    ResourceUpdated { uri: String },
    ResourceListChanged,
    ToolListChanged,
    PromptListChanged,
    SessionTaken { session: String, by: String },
    CacheInvalidated { cache: String, key: String },
}

impl From<&Notification> for Wire {
    fn from(n: &Notification) -> Self {
        match n {
            Notification::ResourceUpdated(uri) => Wire::ResourceUpdated { uri: uri.clone() },
            Notification::ResourceListChanged => Wire::ResourceListChanged,
            Notification::ToolListChanged => Wire::ToolListChanged,
            Notification::PromptListChanged => Wire::PromptListChanged,
            Notification::SessionTaken { session, by } => {
                Wire::SessionTaken { session: session.clone(), by: by.clone() }
            }
            Notification::CacheInvalidated { cache, key } => {
                Wire::CacheInvalidated { cache: cache.clone(), key: key.clone() }
            }
        }
    }
}

impl From<Wire> for Notification {
    fn from(w: Wire) -> Self {
        match w {
            Wire::ResourceUpdated { uri } => Notification::ResourceUpdated(uri),
            Wire::ResourceListChanged => Notification::ResourceListChanged,
            Wire::ToolListChanged => Notification::ToolListChanged,
            Wire::PromptListChanged => Notification::PromptListChanged,
            Wire::SessionTaken { session, by } => Notification::SessionTaken { session, by },
            Wire::CacheInvalidated { cache, key } => Notification::CacheInvalidated { cache, key },
        }
    }
}

/// What the bridge has carried, for tests and logs.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Queue full or NATS refused the publish.
    pub dropped: AtomicU64,
    /// Messages on the subject that are not Plexus events.
    pub malformed: AtomicU64,
}

struct Outbox {
    tx: tokio::sync::mpsc::Sender<Notification>,
    stats: Arc<BridgeStats>,
}

impl Relay for Outbox {
    fn forward(&self, n: &Notification) {
        if self.tx.try_send(n.clone()).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connect `bus` to the other nodes: returns once subscribed (so no event
/// published after it returns is missed), or fails naming the server.
/// Later disconnections are retried by the client for as long as the
/// process runs; events published meanwhile are queued by it.
pub async fn bridge(bus: &Bus, config: &BusConfig, node_id: &str) -> anyhow::Result<Arc<BridgeStats>> {
    let client = connect(config, node_id).await?;
    bridge_with(bus, &client, config, node_id).await
}

/// This node's connection to the cluster bus.
pub async fn connect(config: &BusConfig, node_id: &str) -> anyhow::Result<async_nats::Client> {
    let servers = config.servers.join(",");
    async_nats::ConnectOptions::new()
        .name(format!("plexus {node_id}"))
        .connection_timeout(std::time::Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("cluster bus connected"),
                async_nats::Event::Disconnected => tracing::warn!("cluster bus disconnected; reconnecting"),
                other => tracing::debug!(event = %other, "cluster bus"),
            }
        })
        .connect(servers.as_str())
        .await
        .with_context(|| format!("cannot reach the cluster bus at {servers}"))
}

/// [`bridge`] over a connection of this node's.
pub async fn bridge_with(
    bus: &Bus,
    client: &async_nats::Client,
    config: &BusConfig,
    node_id: &str,
) -> anyhow::Result<Arc<BridgeStats>> {
    let servers = config.servers.join(",");
    let mut inbox = client
        .subscribe(config.subject.clone())
        .await
        .with_context(|| format!("cannot subscribe to {} on the cluster bus", config.subject))?;
    // `flush` only writes the socket. The server handles one connection's
    // operations in order, so a message of our own coming back through it
    // proves it holds the subscription (another node's event published from
    // now on reaches us).
    confirm(client)
        .await
        .with_context(|| format!("the cluster bus did not confirm the subscription to {}", config.subject))?;
    let stats = Arc::new(BridgeStats::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Notification>(QUEUE);
    if !bus.set_relay(Arc::new(Outbox { tx, stats: Arc::clone(&stats) })) {
        anyhow::bail!("this bus is already bridged");
    }

    let (publisher, subject, me, out) =
        (client.clone(), config.subject.clone(), node_id.to_owned(), Arc::clone(&stats));
    tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            let payload = match serde_json::to_vec(&Wire::from(&n)) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "a cluster event could not be encoded");
                    continue;
                }
            };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(NODE_HEADER, me.as_str());
            match publisher.publish_with_headers(subject.clone(), headers, payload.into()).await {
                Ok(()) => out.sent.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "a cluster event was not sent");
                    out.dropped.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    });

    let (local, me, seen) = (bus.clone(), node_id.to_owned(), Arc::clone(&stats));
    tokio::spawn(async move {
        while let Some(msg) = inbox.next().await {
            let from = msg.headers.as_ref().and_then(|h| h.get(NODE_HEADER)).map(|v| v.as_str().to_owned());
            if from.as_deref() == Some(me.as_str()) {
                continue; // our own, already delivered here
            }
            match serde_json::from_slice::<Wire>(&msg.payload) {
                Ok(w) if from.is_some() => {
                    seen.received.fetch_add(1, Ordering::Relaxed);
                    local.deliver(w.into());
                }
                _ => {
                    seen.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subject = %msg.subject, "a message on the cluster bus's subject is not a Plexus event; ignored");
                }
            }
        }
        tracing::warn!("the cluster bus subscription ended");
    });
    tracing::info!(servers = %servers, subject = %config.subject, node = %node_id, "events shared with the cluster over NATS");
    Ok(stats)
}

/// How long a forwarded order waits for the venue leader's answer.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The subject on which `node`'s desk takes forwarded orders.
fn desk_subject(config: &BusConfig, node: &str) -> String {
    format!("{}.trading.{node}", config.subject)
}

/// Order entry forwarded to the trading venue's leader over NATS
/// request-reply (the leader's own subject, so only it answers).
pub struct NatsForwarder {
    client: async_nats::Client,
    config: BusConfig,
}

impl NatsForwarder {
    pub fn new(client: async_nats::Client, config: &BusConfig) -> Self {
        Self { client, config: config.clone() }
    }
}

#[async_trait::async_trait]
impl plexus_trading::cluster::Forwarder for NatsForwarder {
    async fn send(&self, node: &str, body: Vec<u8>) -> Result<Vec<u8>, plexus_trading::cluster::ForwardError> {
        use async_nats::RequestErrorKind;
        use plexus_trading::cluster::ForwardError;
        let request = async_nats::Request::new().payload(body.into()).timeout(Some(FORWARD_TIMEOUT));
        match self.client.send_request(desk_subject(&self.config, node), request).await {
            Ok(msg) => Ok(msg.payload.to_vec()),
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Err(ForwardError::Unreached(node.to_owned())),
            Err(e) => Err(ForwardError::Unanswered(e.to_string())),
        }
    }
}

/// Answer orders other nodes forward to this node's desk. Returns once
/// subscribed.
pub async fn serve_desk(
    client: &async_nats::Client,
    config: &BusConfig,
    node_id: &str,
    desk: plexus_trading::desk::Desk,
) -> anyhow::Result<()> {
    let subject = desk_subject(config, node_id);
    let mut requests =
        client.subscribe(subject.clone()).await.with_context(|| format!("cannot subscribe to {subject}"))?;
    confirm(client).await.with_context(|| format!("the cluster bus did not confirm the subscription to {subject}"))?;
    let client = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let Some(reply) = msg.reply.clone() else { continue };
            let (desk, client) = (desk.clone(), client.clone());
            tokio::spawn(async move {
                let answer = desk.serve(&msg.payload).await;
                if let Err(e) = client.publish(reply, answer.into()).await {
                    tracing::warn!(error = %e, "a forwarded order's answer was not sent");
                }
            });
        }
        tracing::warn!("the trading desk's cluster subscription ended");
    });
    Ok(())
}

/// A round trip through the server on a private inbox of this connection.
async fn confirm(client: &async_nats::Client) -> anyhow::Result<()> {
    let probe = client.new_inbox();
    let mut echo = client.subscribe(probe.clone()).await?;
    client.publish(probe, "".into()).await?;
    tokio::time::timeout(std::time::Duration::from_secs(5), echo.next())
        .await
        .context("no answer within 5 s")?
        .context("the connection closed")?;
    echo.unsubscribe().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_stable() {
        let cases = [
            (
                Notification::ResourceUpdated("shared://config/設定.json".into()),
                r#"{"event":"resource_updated","uri":"shared://config/設定.json"}"#,
            ),
            (Notification::ResourceListChanged, r#"{"event":"resource_list_changed"}"#),
            (Notification::ToolListChanged, r#"{"event":"tool_list_changed"}"#),
            (Notification::PromptListChanged, r#"{"event":"prompt_list_changed"}"#),
            (
                Notification::SessionTaken { session: "0b6c-…".into(), by: "p-1".into() },
                r#"{"event":"session_taken","session":"0b6c-…","by":"p-1"}"#,
            ),
            (
                Notification::CacheInvalidated { cache: "learning".into(), key: "学校-1".into() },
                r#"{"event":"cache_invalidated","cache":"learning","key":"学校-1"}"#,
            ),
        ];
        for (n, text) in cases {
            assert_eq!(serde_json::to_string(&Wire::from(&n)).unwrap(), text);
            assert_eq!(Notification::from(serde_json::from_str::<Wire>(text).unwrap()), n);
        }
        assert!(serde_json::from_str::<Wire>(r#"{"event":"reboot"}"#).is_err());
    }
}
