//! External market-data feed handlers: Binance-style and Coinbase-style
//! JSON streams over WebSocket (`ws://` or `wss://`), normalized into quotes,
//! trades and a local level-2 book per symbol.
//!
//! A feed runs on its own tokio task (plus one short task per depth snapshot
//! fetch) and never blocks anything else: readers get its state from
//! [`FeedHandle`] at any time (a short per-symbol read lock, never held
//! across I/O), and changes are published on a `tokio::sync::broadcast`
//! channel ([`FeedReader::subscribe`]) and a `watch` of the connection status
//! ([`FeedReader::watch_status`]). Order entry on the internal venue does not
//! touch any of this.
//!
//! The handler:
//! - reconnects with exponential backoff and full jitter ([`Backoff`], seeded
//!   so tests are repeatable), reset after a connection stayed up for
//!   [`BackoffConfig::healthy_after`];
//! - marks the feed and each symbol `Stale` when no message arrived within
//!   [`FeedConfig::stale_after`] (the data stays readable, with its age), and
//!   drops and reopens the connection when no frame at all arrived within
//!   [`FeedConfig::dead_after`]; it answers the venue's pings (tungstenite
//!   queues the pongs) and sends its own every [`FeedConfig::ping_interval`];
//! - finds sequence gaps and rebuilds the book from a fresh snapshot
//!   (`Resyncing` meanwhile): Binance's local order book recipe with REST
//!   snapshots from a [`SnapshotSource`]; Coinbase's resubscription to the
//!   level-2 channel;
//! - counts and skips malformed messages (bad JSON, wrong types, NaN or
//!   negative prices, unknown types), never panicking on any input.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use plexus_trading::feeds::{FeedConfig, FeedHandle, HttpSnapshotSource};
//!
//! let snapshots = Arc::new(HttpSnapshotSource::new("http://127.0.0.1:8080")?);
//! let config = FeedConfig::binance("binance", "ws://127.0.0.1:9443/ws", ["BTCUSDT"], snapshots);
//! let feed = FeedHandle::start(config)?;
//! let mut events = feed.subscribe();
//! let view = feed.symbol("BTCUSDT", 10); // status, quote, top 10 levels, age
//! feed.shutdown();
//! # let _ = (view, events.try_recv());
//! # Ok(()) }
//! ```

mod backoff;
mod binance;
mod book;
mod coinbase;
mod conn;
mod parse;
mod snapshot;
mod state;
mod tls;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

pub use backoff::{Backoff, BackoffConfig, BackoffDelay, SplitMix64};
pub use binance::BinanceConfig;
pub use book::BookLevel;
pub use coinbase::CoinbaseConfig;
pub use snapshot::{DepthSnapshot, HttpSnapshotSource, SnapshotError, SnapshotSource, parse_depth_snapshot};
pub use state::{FeedCounters, FeedEvent, FeedStatus, FeedView, Quote, SymbolView, Trade};

use conn::{Runner, Timing};
use state::Shared;

/// Which venue protocol a feed speaks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Venue {
    /// Binance-style `depthUpdate` and `trade` streams with REST depth snapshots.
    Binance(BinanceConfig),
    /// Coinbase-style `level2`, `matches` and `heartbeat` channels.
    Coinbase(CoinbaseConfig),
}

/// A feed's configuration. Build it with [`FeedConfig::binance`] or
/// [`FeedConfig::coinbase`], then adjust the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FeedConfig {
    /// The feed's name (logs, views).
    pub name: String,
    /// The WebSocket URL, `ws://` or `wss://`.
    pub url: String,
    /// The venue's symbols: `BTCUSDT` (Binance; case does not matter, kept
    /// upper-case) or `BTC-USD` (Coinbase, as the venue spells it).
    pub symbols: Vec<String>,
    /// The venue protocol and its settings.
    pub venue: Venue,
    /// No message (text or binary) within this: the feed is `Stale`; no
    /// message about a symbol (Coinbase heartbeats count) within this: the
    /// symbol is `Stale`. The data stays readable.
    pub stale_after: Duration,
    /// Nothing at all received within this (pings and pongs count): the
    /// connection is dropped and reopened. Keep it above `ping_interval` so a
    /// quiet but healthy connection survives on pongs.
    pub dead_after: Duration,
    /// Send a WebSocket ping this often (`None`: only answer the venue's).
    pub ping_interval: Option<Duration>,
    /// The time limit of a connection attempt (TCP, TLS, WebSocket handshake) and of a send.
    pub connect_timeout: Duration,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Capacity of the broadcast channel; a receiver that falls further
    /// behind gets `RecvError::Lagged` and skips ahead (the feed never waits).
    pub event_capacity: usize,
    /// The TLS client configuration for `wss://`. `None`: ring and the
    /// system's root certificates (from `SSL_CERT_FILE` or the usual bundle paths).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl FeedConfig {
    fn with_venue(name: &str, url: &str, symbols: Vec<String>, venue: Venue) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            symbols,
            venue,
            stale_after: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
            ping_interval: Some(Duration::from_secs(15)),
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffConfig::default(),
            event_capacity: 4096,
            tls: None,
        }
    }

    /// A Binance-style feed with defaults: stale after 5 s, dead after 30 s,
    /// a ping every 15 s, 10 s connect timeout, backoff 250 ms doubling to 30 s.
    #[must_use]
    pub fn binance<S: Into<String>>(
        name: &str,
        url: &str,
        symbols: impl IntoIterator<Item = S>,
        snapshots: Arc<dyn SnapshotSource>,
    ) -> Self {
        let symbols = symbols.into_iter().map(|s| s.into().to_ascii_uppercase()).collect();
        Self::with_venue(name, url, symbols, Venue::Binance(BinanceConfig::new(snapshots)))
    }

    /// Check the configuration without starting anything.
    ///
    /// # Errors
    /// [`FeedError::InvalidConfig`] naming the setting.
    pub fn check(&self) -> Result<(), FeedError> {
        validate(self)
    }

    /// `"binance"` or `"coinbase"`.
    #[must_use]
    pub const fn style(&self) -> &'static str {
        match self.venue {
            Venue::Binance(_) => "binance",
            Venue::Coinbase(_) => "coinbase",
        }
    }

    /// A Coinbase-style feed with the same defaults (heartbeats arrive every
    /// second per product, so 5 s without one is stale).
    #[must_use]
    pub fn coinbase<S: Into<String>>(name: &str, url: &str, symbols: impl IntoIterator<Item = S>) -> Self {
        let symbols = symbols.into_iter().map(Into::into).collect();
        Self::with_venue(name, url, symbols, Venue::Coinbase(CoinbaseConfig::default()))
    }
}

/// Why a feed could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// A setting that cannot work (named in the message).
    #[error("invalid feed configuration: {0}")]
    InvalidConfig(String),
    /// `wss://` without an injected TLS configuration, and no system roots.
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// Called outside a tokio runtime.
    #[error("no tokio runtime to run the feed on")]
    NoRuntime,
}

fn validate(config: &FeedConfig) -> Result<(), FeedError> {
    let invalid = |what: &str| Err(FeedError::InvalidConfig(what.to_owned()));
    if !(config.url.starts_with("ws://") || config.url.starts_with("wss://")) {
        return invalid("the url must start with ws:// or wss://");
    }
    if config.symbols.is_empty() {
        return invalid("no symbols");
    }
    let mut seen = HashSet::new();
    if let Some(dup) = config.symbols.iter().find(|s| !seen.insert(s.as_str())) {
        return Err(FeedError::InvalidConfig(format!("symbol {dup:?} appears twice")));
    }
    if config.symbols.iter().any(|s| s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_whitespace())) {
        return invalid("a symbol is empty, too long or contains whitespace");
    }
    if config.stale_after.is_zero() || config.dead_after.is_zero() || config.connect_timeout.is_zero() {
        return invalid("stale_after, dead_after and connect_timeout must be positive");
    }
    if config.dead_after < config.stale_after {
        return invalid("dead_after must not be shorter than stale_after");
    }
    if config.ping_interval.is_some_and(|p| p.is_zero()) {
        return invalid("ping_interval must be positive");
    }
    if config.backoff.base.is_zero() || config.backoff.cap < config.backoff.base {
        return invalid("backoff base must be positive and not above the cap");
    }
    Ok(())
}

/// A running feed: read its state, subscribe to its updates, shut it down.
/// Dropping the handle shuts the feed down too.
#[derive(Debug)]
pub struct FeedHandle {
    reader: FeedReader,
    shutdown: watch::Sender<bool>,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A cheap, cloneable read-only view of a running feed, for readers on other
/// tasks (the same readers as [`FeedHandle`], without shutdown).
#[derive(Debug, Clone)]
pub struct FeedReader {
    shared: Arc<Shared>,
    style: &'static str,
}

impl FeedHandle {
    /// Validates the configuration and starts the feed on the current tokio
    /// runtime. Returns at once: the feed connects in the background.
    ///
    /// # Errors
    /// [`FeedError::InvalidConfig`], [`FeedError::Tls`] for `wss://` without
    /// usable roots, [`FeedError::NoRuntime`] outside a runtime.
    pub fn start(config: FeedConfig) -> Result<Self, FeedError> {
        Self::start_with_receiver(config).map(|(handle, _)| handle)
    }

    /// [`FeedHandle::start`], with a receiver subscribed before the feed's
    /// task exists: it sees every event from the first `Connecting` on.
    ///
    /// # Errors
    /// As [`FeedHandle::start`].
    pub fn start_with_receiver(config: FeedConfig) -> Result<(Self, broadcast::Receiver<FeedEvent>), FeedError> {
        validate(&config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FeedError::NoRuntime)?;
        let tls = match (&config.tls, config.url.starts_with("wss://")) {
            (Some(tls), _) => Some(Arc::clone(tls)),
            (None, true) => Some(tls::client_config().map_err(FeedError::Tls)?),
            (None, false) => None,
        };
        let shared = Arc::new(Shared::new(
            config.name.clone(),
            config.symbols.clone(),
            config.stale_after,
            config.event_capacity,
        ));
        let receiver = shared.subscribe();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let timing = Timing {
            stale_after: config.stale_after,
            dead_after: config.dead_after,
            ping_interval: config.ping_interval,
            connect_timeout: config.connect_timeout,
        };
        let backoff = Backoff::new(config.backoff.clone());
        let symbols = config.symbols.len();
        let style = config.style();
        let task = match config.venue {
            Venue::Binance(venue) => runtime.spawn(
                Runner {
                    shared: Arc::clone(&shared),
                    protocol: binance::BinanceProtocol::new(venue, symbols),
                    url: config.url,
                    timing,
                    backoff,
                    tls,
                    shutdown: shutdown_rx,
                }
                .run(),
            ),
            Venue::Coinbase(venue) => runtime.spawn(
                Runner {
                    shared: Arc::clone(&shared),
                    protocol: coinbase::CoinbaseProtocol::new(venue, symbols),
                    url: config.url,
                    timing,
                    backoff,
                    tls,
                    shutdown: shutdown_rx,
                }
                .run(),
            ),
        };
        Ok((
            Self { reader: FeedReader { shared, style }, shutdown, task: parking_lot::Mutex::new(Some(task)) },
            receiver,
        ))
    }

    /// A cloneable reader of this feed's state.
    #[must_use]
    pub fn reader(&self) -> FeedReader {
        self.reader.clone()
    }

    /// Asks the feed to stop (idempotent, returns at once): the connection is
    /// closed, pending snapshot fetches are abandoned and every status
    /// becomes `Stopped`. The state stays readable.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Asks the feed to stop and waits until its task has ended.
    pub async fn shutdown_and_wait(&self) {
        self.shutdown();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Every reader of the state ([`FeedReader`]'s methods) works on the handle too.
impl std::ops::Deref for FeedHandle {
    type Target = FeedReader;

    fn deref(&self) -> &FeedReader {
        &self.reader
    }
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl FeedReader {
    /// The feed's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// `"binance"` or `"coinbase"`.
    #[must_use]
    pub const fn style(&self) -> &'static str {
        self.style
    }

    /// Whether the feed carries `symbol` (Binance symbols in any case).
    #[must_use]
    pub fn carries(&self, symbol: &str) -> bool {
        self.shared.index_of(symbol).or_else(|| self.shared.index_of(&symbol.to_ascii_uppercase())).is_some()
    }

    /// The connection's status (`Stale` when nothing arrived within `stale_after`).
    #[must_use]
    pub fn status(&self) -> FeedStatus {
        self.shared.status()
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> FeedCounters {
        self.shared.counters()
    }

    /// One symbol's state with the best `depth` levels per side (`None` for a
    /// symbol the feed does not carry; Binance symbols are upper-case).
    #[must_use]
    pub fn symbol(&self, symbol: &str, depth: usize) -> Option<SymbolView> {
        let index = self.shared.index_of(symbol).or_else(|| self.shared.index_of(&symbol.to_ascii_uppercase()))?;
        self.shared.symbol_view(index, depth)
    }

    /// The best bid and ask of a symbol (`None` before its first snapshot).
    #[must_use]
    pub fn quote(&self, symbol: &str) -> Option<Quote> {
        self.symbol(symbol, 0).and_then(|view| view.quote)
    }

    /// Everything: status, counters and each symbol with `depth` levels per side.
    #[must_use]
    pub fn view(&self, depth: usize) -> FeedView {
        self.shared.view(depth)
    }

    /// A receiver of every later [`FeedEvent`].
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.shared.subscribe()
    }

    /// A `watch` of the connection status (as set by the feed; staleness is
    /// published when the feed notices it, within a quarter of `stale_after`).
    #[must_use]
    pub fn watch_status(&self) -> watch::Receiver<FeedStatus> {
        self.shared.watch_status()
    }
}
