//! What a feed knows, shared between its task (the only writer) and any
//! number of readers: statuses, books, the latest quote and trade, counters.
//! Readers take a short read lock per symbol (never held across an await,
//! never held while the feed does I/O) or read atomics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::RwLock;
use tokio::sync::{broadcast, watch};

use super::book::{BookLevel, L2Book};
use crate::types::Side;

/// The state of a feed or of one of its symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStatus {
    /// Connecting, or connected and waiting for the first snapshot.
    Connecting,
    /// Connected and up to date.
    Live,
    /// Connected, but nothing arrived within `stale_after`: the data is still
    /// readable, flagged stale with its age.
    Stale,
    /// (Symbols only) a sequence gap was found: the book is being rebuilt from
    /// a fresh snapshot and must not be trusted until it is live again.
    Resyncing,
    /// The connection is down; the feed is waiting to reconnect.
    Disconnected {
        /// Why the connection was lost (or could not be made).
        error: String,
    },
    /// The feed was shut down.
    Stopped,
}

impl FeedStatus {
    /// `"connecting"`, `"live"`, `"stale"`, `"resyncing"`, `"disconnected"` or `"stopped"`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Stale => "stale",
            Self::Resyncing => "resyncing",
            Self::Disconnected { .. } => "disconnected",
            Self::Stopped => "stopped",
        }
    }

    /// Live: data current and trustworthy.
    #[must_use]
    pub const fn is_live(&self) -> bool {
        matches!(self, Self::Live)
    }
}

impl fmt::Display for FeedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected { error } => write!(f, "disconnected: {error}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// The best bid and ask of a symbol with their sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// The symbol as configured (Binance symbols upper-cased).
    pub symbol: String,
    /// The best bid, if the bid side is not empty.
    pub bid: Option<BookLevel>,
    /// The best ask, if the ask side is not empty.
    pub ask: Option<BookLevel>,
    /// The venue's book update id (Binance `u`; Coinbase: a local counter of
    /// applied book messages, since `l2update` carries no sequence).
    pub update_id: u64,
    /// The venue's time of the update, milliseconds since the Unix epoch, when given.
    pub venue_time_ms: Option<i64>,
}

/// A trade on the venue.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    /// The symbol as configured.
    pub symbol: String,
    /// The price.
    pub price: f64,
    /// The quantity.
    pub qty: f64,
    /// The side of the aggressor (taker): `Buy` lifted an offer, `Sell` hit a bid.
    pub aggressor: Side,
    /// The venue's trade id.
    pub trade_id: u64,
    /// The venue's trade time, milliseconds since the Unix epoch, when given.
    pub venue_time_ms: Option<i64>,
}

/// What a feed publishes on its broadcast channel ([`super::FeedReader::subscribe`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FeedEvent {
    /// The feed's connection status changed.
    Status(FeedStatus),
    /// A symbol's status changed (live, stale, resyncing...).
    SymbolStatus {
        /// The symbol.
        symbol: String,
        /// Its new status.
        status: FeedStatus,
    },
    /// A symbol's best bid or ask (price or size) changed.
    Quote(Quote),
    /// A symbol's book changed (any level); read it with [`super::FeedReader::symbol`].
    Book {
        /// The symbol.
        symbol: String,
        /// Its book's update id after the change.
        update_id: u64,
    },
    /// A trade.
    Trade(Trade),
    /// The connection was lost (or not made) and the feed waits before retrying.
    Reconnecting {
        /// The retry this wait precedes: 1 for the first retry since the last healthy connection.
        attempt: u32,
        /// The upper bound the delay was drawn from (doubles per attempt up to the cap).
        ceiling: Duration,
        /// The delay drawn.
        delay: Duration,
        /// Why the connection was lost.
        error: String,
    },
}

/// Counters since the feed started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Text or binary messages received.
    pub messages: u64,
    /// Messages skipped as malformed (bad JSON, wrong types, NaN or negative
    /// prices, unknown types or symbols).
    pub malformed: u64,
    /// Sequence gaps found (each starts a resync).
    pub gaps: u64,
    /// Resyncs completed: books rebuilt from a fresh snapshot after a gap.
    pub resyncs: u64,
    /// Snapshots received (REST for Binance, `snapshot` messages for Coinbase).
    pub snapshots: u64,
    /// Binance snapshots discarded because they were older than the buffered
    /// stream (`lastUpdateId + 1 < U` of the first event) and fetched again.
    pub snapshot_refetches: u64,
    /// Snapshot fetches that failed (retried).
    pub snapshot_errors: u64,
    /// Book events dropped because a snapshot already covered them (`u <= lastUpdateId`),
    /// or because they arrived while the book waited for a snapshot (Coinbase).
    pub stale_events_dropped: u64,
    /// Buffered events dropped because the buffer was full while waiting for a snapshot.
    pub buffer_overflows: u64,
    /// Book events applied.
    pub book_updates: u64,
    /// Trades published.
    pub trades: u64,
    /// Matches that arrived behind the ones already seen (after the gap they caused).
    pub out_of_order: u64,
    /// Successful connections (WebSocket handshakes).
    pub connects: u64,
    /// Reconnects scheduled after a lost or failed connection.
    pub reconnects: u64,
    /// Times the feed or a symbol went stale.
    pub stale_transitions: u64,
    /// Connections dropped because nothing arrived within `dead_after`.
    pub dead_connections: u64,
    /// WebSocket pings sent.
    pub pings_sent: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) snapshot_refetches: AtomicU64,
    pub(crate) snapshot_errors: AtomicU64,
    pub(crate) stale_events_dropped: AtomicU64,
    pub(crate) buffer_overflows: AtomicU64,
    pub(crate) book_updates: AtomicU64,
    pub(crate) trades: AtomicU64,
    pub(crate) out_of_order: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) stale_transitions: AtomicU64,
    pub(crate) dead_connections: AtomicU64,
    pub(crate) pings_sent: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> FeedCounters {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FeedCounters {
            messages: r(&self.messages),
            malformed: r(&self.malformed),
            gaps: r(&self.gaps),
            resyncs: r(&self.resyncs),
            snapshots: r(&self.snapshots),
            snapshot_refetches: r(&self.snapshot_refetches),
            snapshot_errors: r(&self.snapshot_errors),
            stale_events_dropped: r(&self.stale_events_dropped),
            buffer_overflows: r(&self.buffer_overflows),
            book_updates: r(&self.book_updates),
            trades: r(&self.trades),
            out_of_order: r(&self.out_of_order),
            connects: r(&self.connects),
            reconnects: r(&self.reconnects),
            stale_transitions: r(&self.stale_transitions),
            dead_connections: r(&self.dead_connections),
            pings_sent: r(&self.pings_sent),
        }
    }
}

/// Everything known about one symbol at the moment it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolView {
    /// The symbol as configured (Binance symbols upper-cased).
    pub symbol: String,
    /// Its status; `Stale` when nothing arrived for it within `stale_after`.
    pub status: FeedStatus,
    /// The best bid and ask (`None` before the first snapshot).
    pub quote: Option<Quote>,
    /// The last trade seen.
    pub last_trade: Option<Trade>,
    /// The book's update id (see [`Quote::update_id`]).
    pub update_id: u64,
    /// The best bids, best first, at most the depth asked for.
    pub bids: Vec<BookLevel>,
    /// The best asks, best first, at most the depth asked for.
    pub asks: Vec<BookLevel>,
    /// Levels per side in the whole book: (bids, asks).
    pub levels: (usize, usize),
    /// Time since the last message about this symbol (`None`: nothing yet).
    pub age: Option<Duration>,
    /// When that message arrived, by the local clock.
    pub updated_at: Option<SystemTime>,
    /// The last error that concerned this symbol (a failed snapshot fetch, a lost connection).
    pub last_error: Option<String>,
}

/// Everything known about a feed at the moment it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedView {
    /// The feed's name.
    pub name: String,
    /// The connection's status; `Stale` when nothing arrived within `stale_after`.
    pub status: FeedStatus,
    /// The last connection error.
    pub last_error: Option<String>,
    /// Time since the last text or binary message (`None`: not connected yet).
    pub age: Option<Duration>,
    /// When that message arrived, by the local clock.
    pub updated_at: Option<SystemTime>,
    /// The counters.
    pub counters: FeedCounters,
    /// Each symbol, in the configured order.
    pub symbols: Vec<SymbolView>,
}

/// One symbol's state (behind its own lock).
#[derive(Debug)]
pub(crate) struct SymbolState {
    pub(crate) status: FeedStatus,
    pub(crate) book: L2Book,
    pub(crate) update_id: u64,
    pub(crate) venue_time_ms: Option<i64>,
    pub(crate) has_book: bool,
    pub(crate) last_trade: Option<Trade>,
    pub(crate) last_message: Option<Instant>,
    pub(crate) last_error: Option<String>,
    /// A stale transition was published and not yet undone.
    pub(crate) stale_reported: bool,
}

#[derive(Debug)]
struct ConnState {
    status: FeedStatus,
    last_error: Option<String>,
    /// The last text or binary message: staleness.
    last_message: Option<Instant>,
    /// The last frame of any kind, pongs included: liveness.
    last_frame: Option<Instant>,
    stale_reported: bool,
}

/// The state shared by a feed's task and its readers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) stale_after: Duration,
    pub(crate) counters: Counters,
    symbol_names: Vec<String>,
    index: HashMap<String, usize>,
    symbols: Vec<RwLock<SymbolState>>,
    conn: RwLock<ConnState>,
    events: broadcast::Sender<FeedEvent>,
    status_tx: watch::Sender<FeedStatus>,
}

/// A status as readers see it: a live one turns stale with age.
fn effective(status: &FeedStatus, last: Option<Instant>, now: Instant, stale_after: Duration) -> FeedStatus {
    match (status, last) {
        (FeedStatus::Live, Some(t)) if now.saturating_duration_since(t) >= stale_after => FeedStatus::Stale,
        _ => status.clone(),
    }
}

impl Shared {
    pub(crate) fn new(name: String, symbols: Vec<String>, stale_after: Duration, capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        let (status_tx, _) = watch::channel(FeedStatus::Connecting);
        let index = symbols.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect();
        let states = symbols
            .iter()
            .map(|_| {
                RwLock::new(SymbolState {
                    status: FeedStatus::Connecting,
                    book: L2Book::default(),
                    update_id: 0,
                    venue_time_ms: None,
                    has_book: false,
                    last_trade: None,
                    last_message: None,
                    last_error: None,
                    stale_reported: false,
                })
            })
            .collect();
        Self {
            name,
            stale_after,
            counters: Counters::default(),
            symbol_names: symbols,
            index,
            symbols: states,
            conn: RwLock::new(ConnState {
                status: FeedStatus::Connecting,
                last_error: None,
                last_message: None,
                last_frame: None,
                stale_reported: false,
            }),
            events,
            status_tx,
        }
    }

    pub(crate) fn symbol_names(&self) -> &[String] {
        &self.symbol_names
    }

    pub(crate) fn index_of(&self, symbol: &str) -> Option<usize> {
        self.index.get(symbol).copied()
    }

    pub(crate) fn publish(&self, event: FeedEvent) {
        // No receiver is fine: nobody listens yet.
        let _ = self.events.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.events.subscribe()
    }

    pub(crate) fn watch_status(&self) -> watch::Receiver<FeedStatus> {
        self.status_tx.subscribe()
    }

    pub(crate) fn counters(&self) -> FeedCounters {
        self.counters.snapshot()
    }

    // ---- connection level (written by the feed task) ----

    pub(crate) fn set_conn_status(&self, status: FeedStatus) {
        let changed = {
            let mut conn = self.conn.write();
            if let FeedStatus::Disconnected { error } = &status {
                conn.last_error = Some(error.clone());
            }
            if status == FeedStatus::Live {
                let now = Instant::now();
                conn.last_message = Some(now);
                conn.last_frame = Some(now);
            }
            conn.stale_reported = false;
            let changed = conn.status != status;
            conn.status = status.clone();
            changed
        };
        if changed {
            self.status_tx.send_replace(status.clone());
            self.publish(FeedEvent::Status(status));
        }
    }

    /// A frame arrived: the connection is alive.
    pub(crate) fn conn_frame(&self) {
        self.conn.write().last_frame = Some(Instant::now());
    }

    /// A message arrived: the connection is alive and fresh (and live again if it was stale).
    pub(crate) fn conn_message(&self) {
        let recovered = {
            let mut conn = self.conn.write();
            let now = Instant::now();
            conn.last_message = Some(now);
            conn.last_frame = Some(now);
            std::mem::take(&mut conn.stale_reported)
        };
        if recovered {
            self.status_tx.send_replace(FeedStatus::Live);
            self.publish(FeedEvent::Status(FeedStatus::Live));
        }
    }

    /// Time since the last frame of any kind.
    pub(crate) fn frame_age(&self, now: Instant) -> Option<Duration> {
        self.conn.read().last_frame.map(|t| now.saturating_duration_since(t))
    }

    /// Publishes stale transitions of the connection and of symbols whose age
    /// passed `stale_after`.
    pub(crate) fn check_stale(&self, now: Instant) {
        let went_stale = {
            let mut conn = self.conn.write();
            let stale = effective(&conn.status, conn.last_message, now, self.stale_after) == FeedStatus::Stale;
            if stale && !conn.stale_reported {
                conn.stale_reported = true;
                true
            } else {
                false
            }
        };
        if went_stale {
            bump(&self.counters.stale_transitions);
            self.status_tx.send_replace(FeedStatus::Stale);
            self.publish(FeedEvent::Status(FeedStatus::Stale));
        }
        for (i, lock) in self.symbols.iter().enumerate() {
            let went_stale = {
                let mut s = lock.write();
                let stale = effective(&s.status, s.last_message, now, self.stale_after) == FeedStatus::Stale;
                if stale && !s.stale_reported {
                    s.stale_reported = true;
                    true
                } else {
                    false
                }
            };
            if went_stale {
                bump(&self.counters.stale_transitions);
                self.publish(FeedEvent::SymbolStatus {
                    symbol: self.symbol_names[i].clone(),
                    status: FeedStatus::Stale,
                });
            }
        }
    }

    // ---- symbol level (written by the feed task) ----

    /// Runs `f` on a symbol's state under its write lock (kept short: no I/O in `f`).
    pub(crate) fn with_symbol<R>(&self, index: usize, f: impl FnOnce(&mut SymbolState) -> R) -> Option<R> {
        self.symbols.get(index).map(|lock| f(&mut lock.write()))
    }

    /// Sets a symbol's status and publishes the change.
    pub(crate) fn set_symbol_status(&self, index: usize, status: FeedStatus) {
        let changed = self.with_symbol(index, |s| {
            if let FeedStatus::Disconnected { error } = &status {
                s.last_error = Some(error.clone());
            }
            if status == FeedStatus::Live && s.last_message.is_none() {
                s.last_message = Some(Instant::now());
            }
            let was_stale = std::mem::take(&mut s.stale_reported);
            let changed = s.status != status || (was_stale && status == FeedStatus::Live);
            s.status = status.clone();
            changed
        });
        if changed == Some(true) {
            self.publish(FeedEvent::SymbolStatus { symbol: self.symbol_names[index].clone(), status });
        }
    }

    /// Every symbol gets `status` (on connect, disconnect, shutdown).
    pub(crate) fn set_all_symbols(&self, status: &FeedStatus) {
        for i in 0..self.symbols.len() {
            self.set_symbol_status(i, status.clone());
        }
    }

    /// Records an error about a symbol (readable in its view).
    pub(crate) fn symbol_error(&self, index: usize, error: String) {
        self.with_symbol(index, |s| s.last_error = Some(error));
    }

    /// A message about a symbol arrived: it is fresh (and live again if it was stale).
    pub(crate) fn symbol_message(&self, index: usize) {
        let recovered = self.with_symbol(index, |s| {
            s.last_message = Some(Instant::now());
            std::mem::take(&mut s.stale_reported) && s.status == FeedStatus::Live
        });
        if recovered == Some(true) {
            self.publish(FeedEvent::SymbolStatus {
                symbol: self.symbol_names[index].clone(),
                status: FeedStatus::Live,
            });
        }
    }

    /// Applies a change to a symbol's book and publishes `Book` (and `Quote`
    /// when the best bid or ask changed).
    pub(crate) fn update_book(
        &self,
        index: usize,
        update_id: u64,
        venue_time_ms: Option<i64>,
        change: impl FnOnce(&mut L2Book),
    ) {
        let quote = self.with_symbol(index, |s| {
            let before = (s.book.best_bid(), s.book.best_ask());
            change(&mut s.book);
            s.update_id = update_id;
            s.has_book = true;
            if venue_time_ms.is_some() {
                s.venue_time_ms = venue_time_ms;
            }
            let after = (s.book.best_bid(), s.book.best_ask());
            (before != after).then(|| Quote {
                symbol: self.symbol_names[index].clone(),
                bid: after.0,
                ask: after.1,
                update_id,
                venue_time_ms: s.venue_time_ms,
            })
        });
        let Some(quote) = quote else { return };
        bump(&self.counters.book_updates);
        self.publish(FeedEvent::Book { symbol: self.symbol_names[index].clone(), update_id });
        if let Some(quote) = quote {
            self.publish(FeedEvent::Quote(quote));
        }
    }

    /// Records and publishes a trade.
    pub(crate) fn trade(&self, index: usize, trade: Trade, publish: bool) {
        self.with_symbol(index, |s| s.last_trade = Some(trade.clone()));
        if publish {
            bump(&self.counters.trades);
            self.publish(FeedEvent::Trade(trade));
        }
    }

    // ---- readers ----

    pub(crate) fn status(&self) -> FeedStatus {
        let conn = self.conn.read();
        effective(&conn.status, conn.last_message, Instant::now(), self.stale_after)
    }

    pub(crate) fn symbol_view(&self, index: usize, depth: usize) -> Option<SymbolView> {
        let now = Instant::now();
        let lock = self.symbols.get(index)?;
        let s = lock.read();
        let symbol = self.symbol_names[index].clone();
        let quote = s.has_book.then(|| Quote {
            symbol: symbol.clone(),
            bid: s.book.best_bid(),
            ask: s.book.best_ask(),
            update_id: s.update_id,
            venue_time_ms: s.venue_time_ms,
        });
        let age = s.last_message.map(|t| now.saturating_duration_since(t));
        Some(SymbolView {
            status: effective(&s.status, s.last_message, now, self.stale_after),
            quote,
            last_trade: s.last_trade.clone(),
            update_id: s.update_id,
            bids: s.book.top_bids(depth),
            asks: s.book.top_asks(depth),
            levels: s.book.len(),
            age,
            updated_at: age.and_then(|a| SystemTime::now().checked_sub(a)),
            last_error: s.last_error.clone(),
            symbol,
        })
    }

    pub(crate) fn view(&self, depth: usize) -> FeedView {
        let now = Instant::now();
        let (status, last_error, age) = {
            let conn = self.conn.read();
            (
                effective(&conn.status, conn.last_message, now, self.stale_after),
                conn.last_error.clone(),
                conn.last_message.map(|t| now.saturating_duration_since(t)),
            )
        };
        FeedView {
            name: self.name.clone(),
            status,
            last_error,
            age,
            updated_at: age.and_then(|a| SystemTime::now().checked_sub(a)),
            counters: self.counters(),
            symbols: (0..self.symbols.len()).filter_map(|i| self.symbol_view(i, depth)).collect(),
        }
    }
}
