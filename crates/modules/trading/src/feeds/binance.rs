//! Binance-style streams: `depthUpdate` diffs kept in step with REST depth
//! snapshots, and `trade` events.
//!
//! The book follows Binance's "how to manage a local order book correctly"
//! (spot): buffer the stream's events, fetch a snapshot once the first event
//! is in, drop buffered events with `u <= lastUpdateId`; if the first event
//! left has `U > lastUpdateId + 1` the snapshot is older than the stream and
//! is fetched again (after `snapshot_retry_delay`); otherwise the snapshot
//! becomes the book and the events left are applied in order. From then on an event with `u <=` the book's id is
//! ignored, an event with `U >` the book's id + 1 is a gap (the book is
//! rebuilt from a fresh snapshot), and anything else is applied: quantities
//! are absolute, zero removes the level. An event that cannot be parsed is
//! skipped, so the next one reveals the gap it leaves.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::book::BookLevel;
use super::conn::{Io, Protocol};
use super::parse::{self, Fields, MessageError};
use super::snapshot::{DepthSnapshot, SnapshotError, SnapshotSource};
use super::state::{FeedStatus, Trade, bump};
use crate::types::Side;

/// Binance-style settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BinanceConfig {
    /// Where depth snapshots come from (`GET /api/v3/depth`).
    pub snapshot_source: Arc<dyn SnapshotSource>,
    /// Levels per side asked of the snapshot (Binance allows up to 5000).
    pub snapshot_limit: u32,
    /// The time limit of one snapshot fetch.
    pub snapshot_timeout: Duration,
    /// The wait before fetching again after a too old snapshot, and after a
    /// failed fetch (doubling with each failure in a row, up to 64 times this).
    pub snapshot_retry_delay: Duration,
    /// The depth stream's name after `<symbol>@`: `depth@100ms` or `depth`.
    pub depth_stream: String,
    /// Send `{"method":"SUBSCRIBE",...}` for `<symbol>@<depth_stream>` and
    /// `<symbol>@trade` after connecting. Turn off when the URL already names
    /// the streams (`/stream?streams=...`).
    pub subscribe: bool,
    /// Events buffered per symbol while a snapshot is awaited (the oldest are dropped beyond).
    pub max_buffered_events: usize,
}

impl BinanceConfig {
    /// Defaults around a snapshot source: 1000 levels, 10 s timeout, 500 ms
    /// retry delay, `depth@100ms`, subscribe after connecting, 10,000 buffered events.
    #[must_use]
    pub fn new(snapshot_source: Arc<dyn SnapshotSource>) -> Self {
        Self {
            snapshot_source,
            snapshot_limit: 1000,
            snapshot_timeout: Duration::from_secs(10),
            snapshot_retry_delay: Duration::from_millis(500),
            depth_stream: "depth@100ms".to_owned(),
            subscribe: true,
            max_buffered_events: 10_000,
        }
    }
}

#[derive(Debug)]
struct DepthEvent {
    first: u64,
    last: u64,
    bids: Vec<BookLevel>,
    asks: Vec<BookLevel>,
    time: Option<i64>,
}

/// Where a symbol's book stands.
#[derive(Debug)]
enum Sync {
    /// Buffering events until a snapshot fits them.
    Waiting {
        buffer: VecDeque<DepthEvent>,
        /// A snapshot fetch is under way (or scheduled).
        fetching: bool,
        /// Waiting because of a gap (a completed sync counts as a resync).
        resync: bool,
    },
    /// In step: the book's update id.
    Synced { last: u64 },
}

impl Sync {
    const fn waiting(resync: bool) -> Self {
        Self::Waiting { buffer: VecDeque::new(), fetching: false, resync }
    }
}

pub(crate) struct BinanceProtocol {
    config: BinanceConfig,
    symbols: Vec<Sync>,
    /// Snapshot fetches failed in a row, per symbol (the retry delay doubles with each, up to 64 times).
    failures: Vec<u32>,
}

impl BinanceProtocol {
    pub(crate) fn new(config: BinanceConfig, symbols: usize) -> Self {
        Self { config, symbols: (0..symbols).map(|_| Sync::waiting(false)).collect(), failures: vec![0; symbols] }
    }

    /// Starts a snapshot fetch for a symbol after `delay`.
    fn request(&self, index: usize, delay: Duration, io: &mut Io<'_>) {
        let Some(symbol) = io.shared.symbol_names().get(index).cloned() else { return };
        let source = Arc::clone(&self.config.snapshot_source);
        let (limit, timeout) = (self.config.snapshot_limit, self.config.snapshot_timeout);
        io.fetch_snapshot(Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = match tokio::time::timeout(timeout, source.fetch(&symbol, limit)).await {
                Ok(result) => result,
                Err(_) => Err(SnapshotError::Timeout(timeout)),
            };
            (index, result)
        }));
    }

    fn index(fields: &Fields, io: &Io<'_>) -> Result<usize, MessageError> {
        let symbol = parse::str_field(fields, "s")?.to_ascii_uppercase();
        io.shared.index_of(&symbol).ok_or(MessageError::UnknownSymbol(symbol))
    }

    fn depth(&mut self, fields: &Fields, io: &mut Io<'_>) -> Result<(), MessageError> {
        let index = Self::index(fields, io)?;
        let first = parse::u64_field(fields, "U")?;
        let last = parse::u64_field(fields, "u")?;
        if first > last {
            return Err(MessageError::Field { field: "U", problem: "greater than u" });
        }
        let bids = parse::levels(parse::array_field(fields, "b")?, "b")?;
        let asks = parse::levels(parse::array_field(fields, "a")?, "a")?;
        let time = parse::opt_i64_field(fields, "E")?;
        io.shared.symbol_message(index);
        self.event(index, DepthEvent { first, last, bids, asks, time }, io);
        Ok(())
    }

    fn event(&mut self, index: usize, event: DepthEvent, io: &mut Io<'_>) {
        let Some(sync) = self.symbols.get_mut(index) else { return };
        match sync {
            Sync::Synced { last } => {
                let last = *last;
                if event.last <= last {
                    bump(&io.shared.counters.stale_events_dropped);
                } else if event.first > last.saturating_add(1) {
                    self.gap(index, last, VecDeque::from([event]), io);
                } else {
                    apply(index, &event, io);
                    *sync = Sync::Synced { last: event.last };
                }
            }
            Sync::Waiting { buffer, fetching, .. } => {
                if buffer.len() >= self.config.max_buffered_events.max(1) {
                    buffer.pop_front();
                    bump(&io.shared.counters.buffer_overflows);
                }
                buffer.push_back(event);
                if !*fetching {
                    *fetching = true;
                    self.request(index, Duration::ZERO, io);
                }
            }
        }
    }

    /// A gap after `last`: the book waits for a fresh snapshot, keeping the
    /// events from the one that revealed the gap on.
    fn gap(&mut self, index: usize, last: u64, buffer: VecDeque<DepthEvent>, io: &mut Io<'_>) {
        bump(&io.shared.counters.gaps);
        let got = buffer.front().map_or(0, |e| e.first);
        tracing::warn!(
            feed = %io.shared.name, symbol = %io.shared.symbol_names()[index],
            expected = last.saturating_add(1), got, "depth stream gap, resyncing from a snapshot"
        );
        io.shared.set_symbol_status(index, FeedStatus::Resyncing);
        self.symbols[index] = Sync::Waiting { buffer, fetching: true, resync: true };
        self.request(index, Duration::ZERO, io);
    }

    /// A snapshot arrived: drop the buffered events it covers; fetch again if
    /// it is older than the first event left; otherwise it becomes the book
    /// and the events left are applied in order. (When it covers every
    /// buffered event the book is in step at once: the next event must then
    /// start at `lastUpdateId + 1` or it is a gap.)
    fn try_sync(&mut self, index: usize, snap: DepthSnapshot, io: &mut Io<'_>) {
        let Some(Sync::Waiting { buffer, fetching, resync }) = self.symbols.get_mut(index) else { return };
        let snap_id = snap.last_update_id;
        while buffer.front().is_some_and(|e| e.last <= snap_id) {
            buffer.pop_front();
            bump(&io.shared.counters.stale_events_dropped);
        }
        if let Some(front) = buffer.front()
            && front.first > snap_id.saturating_add(1)
        {
            bump(&io.shared.counters.snapshot_refetches);
            tracing::debug!(
                feed = %io.shared.name, snapshot = snap_id, first = front.first,
                "depth snapshot older than the stream, fetching again"
            );
            *fetching = true;
            self.request(index, self.config.snapshot_retry_delay, io);
            return;
        }
        let was_resync = *resync;
        let events = std::mem::take(buffer);
        io.shared.update_book(index, snap_id, None, |book| book.replace(&snap.bids, &snap.asks));
        let mut last = snap_id;
        let mut events = events.into_iter();
        while let Some(event) = events.next() {
            if event.last <= last {
                bump(&io.shared.counters.stale_events_dropped);
            } else if event.first > last.saturating_add(1) {
                let mut rest = VecDeque::from([event]);
                rest.extend(events);
                self.gap(index, last, rest, io);
                return;
            } else {
                apply(index, &event, io);
                last = event.last;
            }
        }
        self.symbols[index] = Sync::Synced { last };
        if was_resync {
            bump(&io.shared.counters.resyncs);
        }
        io.shared.set_symbol_status(index, FeedStatus::Live);
    }

    fn trade(fields: &Fields, io: &mut Io<'_>) -> Result<(), MessageError> {
        let index = Self::index(fields, io)?;
        let trade_id = parse::u64_field(fields, "t")?;
        let price = parse::price_field(fields, "p")?;
        let qty = parse::qty_field(fields, "q")?;
        if qty == 0.0 {
            return Err(MessageError::Field { field: "q", problem: "trade quantity is zero" });
        }
        // `m`: the buyer is the maker, so the seller was the aggressor.
        let buyer_is_maker = parse::bool_field(fields, "m")?;
        let venue_time_ms = parse::opt_i64_field(fields, "T")?;
        let symbol = io.shared.symbol_names()[index].clone();
        io.shared.symbol_message(index);
        let aggressor = if buyer_is_maker { Side::Sell } else { Side::Buy };
        io.shared.trade(index, Trade { symbol, price, qty, aggressor, trade_id, venue_time_ms }, true);
        Ok(())
    }
}

fn apply(index: usize, event: &DepthEvent, io: &mut Io<'_>) {
    io.shared.update_book(index, event.last, event.time, |book| {
        for level in &event.bids {
            book.set(Side::Buy, level.price, level.qty);
        }
        for level in &event.asks {
            book.set(Side::Sell, level.price, level.qty);
        }
    });
}

impl Protocol for BinanceProtocol {
    fn on_connect(&mut self, io: &mut Io<'_>) {
        for sync in &mut self.symbols {
            *sync = Sync::waiting(false);
        }
        io.shared.set_all_symbols(&FeedStatus::Connecting);
        if self.config.subscribe {
            let params: Vec<String> = io
                .shared
                .symbol_names()
                .iter()
                .flat_map(|s| {
                    let s = s.to_ascii_lowercase();
                    [format!("{s}@{}", self.config.depth_stream), format!("{s}@trade")]
                })
                .collect();
            io.send(serde_json::json!({ "method": "SUBSCRIBE", "params": params, "id": 1 }).to_string());
        }
    }

    fn on_text(&mut self, text: &str, io: &mut Io<'_>) -> Result<(), MessageError> {
        let mut fields = parse::object(text)?;
        // Combined streams wrap each event: {"stream": "...", "data": {...}}.
        if fields.contains_key("stream") {
            match fields.remove("data") {
                Some(Value::Object(data)) => fields = data,
                _ => return Err(MessageError::Field { field: "data", problem: "not an object" }),
            }
        }
        if !fields.contains_key("e") && fields.contains_key("id") {
            // The answer to SUBSCRIBE: {"result": null, "id": 1}, or an error.
            if let Some(error) = fields.get("error") {
                return Err(MessageError::Venue(error.to_string()));
            }
            return Ok(());
        }
        match parse::str_field(&fields, "e")? {
            "depthUpdate" => self.depth(&fields, io),
            "trade" => Self::trade(&fields, io),
            other => Err(MessageError::UnknownType(other.to_owned())),
        }
    }

    fn on_snapshot(&mut self, index: usize, result: Result<DepthSnapshot, SnapshotError>, io: &mut Io<'_>) {
        let Some(Sync::Waiting { fetching, .. }) = self.symbols.get_mut(index) else { return };
        *fetching = false;
        match result {
            Ok(snap) => {
                bump(&io.shared.counters.snapshots);
                self.failures[index] = 0;
                self.try_sync(index, snap, io);
            }
            Err(error) => {
                bump(&io.shared.counters.snapshot_errors);
                tracing::warn!(
                    feed = %io.shared.name, symbol = %io.shared.symbol_names()[index], %error,
                    "depth snapshot failed, retrying"
                );
                io.shared.symbol_error(index, error.to_string());
                *fetching = true;
                let failures = self.failures[index].min(6);
                self.failures[index] = failures + 1;
                let delay = self.config.snapshot_retry_delay.saturating_mul(1 << failures);
                self.request(index, delay, io);
            }
        }
    }
}
