//! The connection loop every venue style shares: connect (ws:// or wss://),
//! subscribe, read frames into the venue's protocol, watch staleness and
//! liveness, ping, and on any loss reconnect with backoff and jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::backoff::Backoff;
use super::parse::MessageError;
use super::snapshot::{DepthSnapshot, SnapshotError};
use super::state::{FeedEvent, FeedStatus, Shared, bump};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A snapshot fetch's outcome, for the symbol at an index.
pub(crate) type SnapshotResult = (usize, Result<DepthSnapshot, SnapshotError>);

/// What a protocol asks of the connection while it handles a message.
pub(crate) struct Io<'a> {
    pub(crate) shared: &'a Shared,
    outgoing: Vec<String>,
    fetches: Vec<BoxFuture<'static, SnapshotResult>>,
}

impl<'a> Io<'a> {
    fn new(shared: &'a Shared) -> Self {
        Self { shared, outgoing: Vec::new(), fetches: Vec::new() }
    }

    /// Queues a text message to the venue (sent after the handler returns).
    pub(crate) fn send(&mut self, text: String) {
        self.outgoing.push(text);
    }

    /// Starts a snapshot fetch on its own task; its result comes back
    /// through [`Protocol::on_snapshot`] unless the connection is lost first.
    pub(crate) fn fetch_snapshot(&mut self, fetch: BoxFuture<'static, SnapshotResult>) {
        self.fetches.push(fetch);
    }
}

/// A venue's message handling, driven by the connection loop.
pub(crate) trait Protocol: Send + 'static {
    /// A new connection: reset per-connection state and queue the subscription.
    fn on_connect(&mut self, io: &mut Io<'_>);

    /// A text message (binary frames that are UTF-8 arrive here too).
    fn on_text(&mut self, text: &str, io: &mut Io<'_>) -> Result<(), MessageError>;

    /// A snapshot fetch finished.
    fn on_snapshot(&mut self, index: usize, result: Result<DepthSnapshot, SnapshotError>, io: &mut Io<'_>) {
        let _ = (index, result, io);
    }
}

/// Timings of the connection loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) stale_after: Duration,
    pub(crate) dead_after: Duration,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) connect_timeout: Duration,
}

/// Everything the feed task owns.
pub(crate) struct Runner<P> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) protocol: P,
    pub(crate) url: String,
    pub(crate) timing: Timing,
    pub(crate) backoff: Backoff,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// How a connection ended.
enum End {
    Shutdown,
    Lost { error: String, healthy: bool },
}

/// Resolves when shutdown is asked for, or when the handle is gone.
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl<P: Protocol> Runner<P> {
    /// Runs until shutdown.
    pub(crate) async fn run(mut self) {
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            self.shared.set_conn_status(FeedStatus::Connecting);
            let end = match self.connect().await {
                Ok(Some(ws)) => self.session(ws).await,
                Ok(None) => End::Shutdown,
                Err(error) => End::Lost { error, healthy: false },
            };
            let End::Lost { error, healthy } = end else { break };
            if healthy {
                self.backoff.reset();
            }
            let next = self.backoff.next_delay();
            bump(&self.shared.counters.reconnects);
            let down = FeedStatus::Disconnected { error: error.clone() };
            self.shared.set_conn_status(down.clone());
            self.shared.set_all_symbols(&down);
            tracing::warn!(
                feed = %self.shared.name, %error, attempt = next.attempt, delay_ms = next.delay.as_millis(),
                "market-data feed disconnected, reconnecting"
            );
            self.shared.publish(FeedEvent::Reconnecting {
                attempt: next.attempt,
                ceiling: next.ceiling,
                delay: next.delay,
                error,
            });
            tokio::select! {
                () = tokio::time::sleep(next.delay) => {}
                () = shutdown_requested(&mut self.shutdown) => break,
            }
        }
        self.shared.set_conn_status(FeedStatus::Stopped);
        self.shared.set_all_symbols(&FeedStatus::Stopped);
    }

    /// Connects within the timeout; `Ok(None)` when shut down meanwhile.
    async fn connect(&mut self) -> Result<Option<Ws>, String> {
        let connector = if self.url.starts_with("wss://") {
            match &self.tls {
                Some(config) => Connector::Rustls(config.clone()),
                None => return Err("wss without a tls configuration".to_owned()),
            }
        } else {
            Connector::Plain
        };
        let config = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(16 << 20));
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(self.url.as_str(), Some(config), true, Some(connector));
        tokio::select! {
            result = tokio::time::timeout(self.timing.connect_timeout, connect) => match result {
                Ok(Ok((ws, _response))) => Ok(Some(ws)),
                Ok(Err(e)) => Err(format!("connect failed: {e}")),
                Err(_) => Err(format!("connect timed out after {:?}", self.timing.connect_timeout)),
            },
            () = shutdown_requested(&mut self.shutdown) => Ok(None),
        }
    }

    /// One connection, until it is lost or the feed shuts down.
    async fn session(&mut self, mut ws: Ws) -> End {
        let connected_at = Instant::now();
        let shared = Arc::clone(&self.shared);
        bump(&shared.counters.connects);
        shared.set_conn_status(FeedStatus::Live);
        tracing::info!(feed = %shared.name, url = %self.url, "market-data feed connected");
        let healthy_after = self.backoff.config().healthy_after;
        let lost = |error: String| End::Lost { error, healthy: connected_at.elapsed() >= healthy_after };

        let mut fetches: JoinSet<SnapshotResult> = JoinSet::new();
        let mut io = Io::new(&shared);
        self.protocol.on_connect(&mut io);
        if let Err(error) = flush(&mut ws, &mut io, &mut fetches, self.timing.connect_timeout).await {
            return lost(error);
        }

        let timing = self.timing;
        let tick =
            (timing.stale_after.min(timing.dead_after) / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ping = Instant::now();

        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(&mut self.shutdown) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    return End::Shutdown;
                }
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => Ok(text),
                        Some(Ok(Message::Binary(bytes))) => Utf8Bytes::try_from(bytes).map_err(|_| MessageError::Binary),
                        Some(Ok(Message::Ping(_))) => {
                            shared.conn_frame();
                            // tungstenite queued the pong: push it out now.
                            match tokio::time::timeout(timing.connect_timeout, ws.flush()).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => return lost(format!("answering a ping failed: {e}")),
                                Err(_) => return lost("answering a ping timed out".to_owned()),
                            }
                            continue;
                        }
                        Some(Ok(Message::Pong(_) | Message::Frame(_))) => {
                            shared.conn_frame();
                            continue;
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map_or_else(String::new, |f| format!(": {} {}", f.code, f.reason));
                            return lost(format!("closed by the venue{why}"));
                        }
                        Some(Err(e)) => return lost(format!("read failed: {e}")),
                        None => return lost("connection ended".to_owned()),
                    };
                    bump(&shared.counters.messages);
                    shared.conn_message();
                    let mut io = Io::new(&shared);
                    if let Err(error) = text.and_then(|t| self.protocol.on_text(t.as_str(), &mut io)) {
                        malformed(&shared, &error);
                    }
                    if let Err(error) = flush(&mut ws, &mut io, &mut fetches, timing.connect_timeout).await {
                        return lost(error);
                    }
                }
                Some(joined) = fetches.join_next(), if !fetches.is_empty() => {
                    let Ok((index, result)) = joined else { continue };
                    let mut io = Io::new(&shared);
                    self.protocol.on_snapshot(index, result, &mut io);
                    if let Err(error) = flush(&mut ws, &mut io, &mut fetches, timing.connect_timeout).await {
                        return lost(error);
                    }
                }
                _ = ticker.tick() => {
                    let now = Instant::now();
                    if let Some(age) = shared.frame_age(now) && age >= timing.dead_after {
                        bump(&shared.counters.dead_connections);
                        return lost(format!("nothing received for {} ms, the connection is dead", age.as_millis()));
                    }
                    shared.check_stale(now);
                    if let Some(every) = timing.ping_interval && now.duration_since(last_ping) >= every {
                        last_ping = now;
                        bump(&shared.counters.pings_sent);
                        let ping = ws.send(Message::Ping(Vec::new().into()));
                        match tokio::time::timeout(timing.connect_timeout, ping).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return lost(format!("ping failed: {e}")),
                            Err(_) => return lost("ping timed out".to_owned()),
                        }
                    }
                }
            }
        }
    }
}

/// Counts and logs a skipped message (logging thins out in a burst).
fn malformed(shared: &Shared, error: &MessageError) {
    let n = shared.counters.malformed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n <= 10 || n.is_power_of_two() {
        tracing::warn!(feed = %shared.name, %error, skipped = n, "market-data message skipped");
    }
}

/// Sends what the protocol queued and starts its snapshot fetches.
async fn flush(
    ws: &mut Ws,
    io: &mut Io<'_>,
    fetches: &mut JoinSet<SnapshotResult>,
    timeout: Duration,
) -> Result<(), String> {
    for fetch in io.fetches.drain(..) {
        fetches.spawn(fetch);
    }
    for text in io.outgoing.drain(..) {
        match tokio::time::timeout(timeout, ws.send(Message::text(text))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("send failed: {e}")),
            Err(_) => return Err("send timed out".to_owned()),
        }
    }
    Ok(())
}
