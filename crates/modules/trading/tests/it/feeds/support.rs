//! Local venues for the feed tests: a WebSocket server that replays
//! recorded-style messages (Binance- or Coinbase-shaped) and drops, delays,
//! reorders and garbles them on cue, and a tiny HTTP server for Binance
//! depth snapshots. The venue's own state moves on whether or not a message
//! reaches the client, like a real exchange whose messages get lost.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use plexus_trading::feeds::{BookLevel, FeedHandle, FeedStatus};
use plexus_trading::types::Side;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Prices in cents, quantities in thousandths: exact in the test, formatted
/// as the venues' decimal strings.
pub(crate) type Cents = u64;
pub(crate) type Milli = u64;

pub(crate) fn px(c: Cents) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

pub(crate) fn qty(m: Milli) -> String {
    format!("{}.{:03}", m / 1000, m % 1000)
}

/// A book computed independently of the feed: price → quantity per side.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RefBook {
    pub(crate) bids: BTreeMap<Cents, Milli>,
    pub(crate) asks: BTreeMap<Cents, Milli>,
}

impl RefBook {
    pub(crate) fn set(&mut self, side: Side, price: Cents, q: Milli) {
        let map = if side == Side::Buy { &mut self.bids } else { &mut self.asks };
        if q == 0 {
            map.remove(&price);
        } else {
            map.insert(price, q);
        }
    }

    /// Best first, as the feed reports levels, parsed from the same strings the venue sends.
    pub(crate) fn levels(&self) -> (Vec<BookLevel>, Vec<BookLevel>) {
        let level = |(p, q): (&Cents, &Milli)| BookLevel {
            price: px(*p).parse().expect("price"),
            qty: qty(*q).parse().expect("qty"),
        };
        (self.bids.iter().rev().map(level).collect(), self.asks.iter().map(level).collect())
    }

    fn json_levels(map: &BTreeMap<Cents, Milli>) -> Vec<Value> {
        map.iter().map(|(p, q)| json!([px(*p), qty(*q)])).collect()
    }
}

/// A tiny deterministic generator for the recordings.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One Binance diff: update ids `first..=last` and absolute quantities.
#[derive(Debug, Clone)]
pub(crate) struct Diff {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) changes: Vec<(Side, Cents, Milli)>,
}

impl Diff {
    pub(crate) fn json(&self, symbol: &str) -> String {
        let side = |s: Side| -> Vec<Value> {
            self.changes.iter().filter(|c| c.0 == s).map(|(_, p, q)| json!([px(*p), qty(*q)])).collect()
        };
        json!({
            "e": "depthUpdate", "E": 1_700_000_000_000u64 + self.last, "s": symbol,
            "U": self.first, "u": self.last, "b": side(Side::Buy), "a": side(Side::Sell),
        })
        .to_string()
    }
}

/// A recorded Binance depth stream: the book at `initial_id` and the diffs after it.
#[derive(Debug, Clone)]
pub(crate) struct Recording {
    pub(crate) initial_id: u64,
    pub(crate) initial: RefBook,
    pub(crate) diffs: Vec<Diff>,
}

impl Recording {
    /// `n` diffs, each covering one to three update ids; every fourth adds a
    /// far level that the diff three later removes (so replaying old diffs
    /// over a newer snapshot would leave levels that must not be there).
    pub(crate) fn generate(n: usize, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let mut initial = RefBook::default();
        for k in 1..=10 {
            initial.set(Side::Buy, 10_000 - k * 5, 1 + rng.next(5_000));
            initial.set(Side::Sell, 10_000 + k * 5, 1 + rng.next(5_000));
        }
        let initial_id = 100;
        let mut next_id = initial_id + 1;
        let mut diffs: Vec<Diff> = Vec::with_capacity(n);
        for i in 0..n {
            let first = next_id;
            let last = first + rng.next(3);
            next_id = last + 1;
            let mut changes = Vec::new();
            for _ in 0..1 + rng.next(4) {
                let side = if rng.next(2) == 0 { Side::Buy } else { Side::Sell };
                let offset = (1 + rng.next(15)) * 5;
                let price = if side == Side::Buy { 10_000 - offset } else { 10_000 + offset };
                let q = if rng.next(10) < 3 { 0 } else { 1 + rng.next(5_000) };
                changes.push((side, price, q));
            }
            if i % 4 == 0 {
                changes.push((Side::Buy, 9_000 - i as u64, 777));
            }
            if i >= 3 && (i - 3) % 4 == 0 {
                changes.push((Side::Buy, 9_000 - (i - 3) as u64, 0));
            }
            diffs.push(Diff { first, last, changes });
        }
        Self { initial_id, initial, diffs }
    }

    /// The book after every diff with `last <= id`.
    pub(crate) fn book_at(&self, id: u64) -> RefBook {
        let mut book = self.initial.clone();
        for diff in self.diffs.iter().take_while(|d| d.last <= id) {
            for (side, p, q) in &diff.changes {
                book.set(*side, *p, *q);
            }
        }
        book
    }

    pub(crate) fn final_id(&self) -> u64 {
        self.diffs.last().map_or(self.initial_id, |d| d.last)
    }
}

/// What the WebSocket server does, step by step, on one connection.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Sends diff `i` (the venue's book moves on).
    Diff(usize),
    /// Diff `i` happens at the venue but its message is lost.
    Drop(usize),
    /// Diff `i` happens but its message arrives with a NaN quantity.
    Corrupt(usize),
    /// Diffs `range` in order, with a pause after each.
    Diffs(std::ops::Range<usize>, Duration),
    /// A trade.
    Trade { id: u64, price: Cents, qty: Milli, buyer_is_maker: bool },
    /// Any text.
    Raw(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A pause.
    Sleep(Duration),
    /// A close frame, then the connection ends.
    Close,
    /// The TCP connection is dropped without a close frame.
    Abort,
}

/// How the snapshot server answers the next request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SnapshotReply {
    /// The book as of update id `id` (which may be old).
    At(u64),
    /// Waits until the venue reached `id`, then answers with its current book.
    WaitUntil(u64),
    /// Answers with this HTTP status and no snapshot.
    Fail(u16),
}

/// A Binance-style venue: the recording, the venue's current update id,
/// and what the servers saw.
#[derive(Debug)]
pub(crate) struct BinanceVenue {
    pub(crate) rec: Recording,
    pub(crate) symbol: String,
    /// The venue's update id: the last diff that happened (sent or lost).
    pub(crate) venue_id: AtomicU64,
    pub(crate) snapshot_requests: AtomicUsize,
    pub(crate) replies: Mutex<VecDeque<SnapshotReply>>,
    pub(crate) client_messages: Mutex<Vec<String>>,
    pub(crate) connections: AtomicUsize,
    /// Send diffs wrapped as combined-stream messages.
    pub(crate) combined: AtomicBool,
}

impl BinanceVenue {
    pub(crate) fn new(rec: Recording) -> Arc<Self> {
        Arc::new(Self {
            venue_id: AtomicU64::new(rec.initial_id),
            rec,
            symbol: "BTCUSDT".to_owned(),
            snapshot_requests: AtomicUsize::new(0),
            replies: Mutex::new(VecDeque::new()),
            client_messages: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            combined: AtomicBool::new(false),
        })
    }

    /// Serves `GET /api/v3/depth` on a fresh port; returns `http://127.0.0.1:port`.
    pub(crate) async fn serve_http(self: &Arc<Self>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let venue = Arc::clone(self);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let venue = Arc::clone(&venue);
                tokio::spawn(async move {
                    let _ = venue.answer_snapshot(stream).await;
                });
            }
        });
        url
    }

    async fn answer_snapshot(&self, stream: TcpStream) -> io::Result<()> {
        let request = read_request(&stream).await?;
        assert!(
            request.starts_with(&format!("GET /api/v3/depth?symbol={}&limit=", self.symbol)),
            "unexpected request {request:?}"
        );
        self.snapshot_requests.fetch_add(1, Ordering::SeqCst);
        let reply = self.replies.lock().pop_front();
        let id = match reply {
            Some(SnapshotReply::At(id)) => id,
            Some(SnapshotReply::Fail(status)) => {
                let response = format!("HTTP/1.1 {status} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return write_all(&stream, response.as_bytes()).await;
            }
            Some(SnapshotReply::WaitUntil(id)) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                while self.venue_id.load(Ordering::SeqCst) < id && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                self.venue_id.load(Ordering::SeqCst)
            }
            None => self.venue_id.load(Ordering::SeqCst),
        };
        let book = self.rec.book_at(id);
        let body = json!({
            "lastUpdateId": id,
            "bids": RefBook::json_levels(&book.bids),
            "asks": RefBook::json_levels(&book.asks),
        })
        .to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        write_all(&stream, response.as_bytes()).await
    }

    /// Serves WebSocket connections on `listener`: connection `n` runs
    /// `scripts[n]` (connections past the scripts run nothing), then stays
    /// open until the client leaves.
    pub(crate) fn serve_ws(self: &Arc<Self>, listener: TcpListener, scripts: Vec<Vec<Step>>) {
        let venue = Arc::clone(self);
        tokio::spawn(async move {
            let mut scripts = scripts.into_iter();
            while let Ok((stream, _)) = listener.accept().await {
                let script = scripts.next().unwrap_or_default();
                let venue = Arc::clone(&venue);
                venue.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(venue.run_ws(stream, script));
            }
        });
    }

    async fn run_ws(self: Arc<Self>, stream: TcpStream, script: Vec<Step>) {
        // Without it, Nagle's algorithm and delayed acks hold small messages back ~40 ms.
        let _ = stream.set_nodelay(true);
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
        let (mut tx, mut rx) = ws.split();
        let venue = Arc::clone(&self);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                if let Message::Text(text) = msg {
                    venue.client_messages.lock().push(text.as_str().to_owned());
                }
            }
        });
        let symbol = self.symbol.clone();
        let diff_text = |i: usize| {
            let text = self.rec.diffs[i].json(&symbol);
            if self.combined.load(Ordering::SeqCst) {
                format!(r#"{{"stream":"{}@depth@100ms","data":{text}}}"#, symbol.to_ascii_lowercase())
            } else {
                text
            }
        };
        let mut steps: VecDeque<Step> = script.into();
        while let Some(step) = steps.pop_front() {
            let sent = match step {
                Step::Diff(i) => {
                    self.venue_id.fetch_max(self.rec.diffs[i].last, Ordering::SeqCst);
                    tx.send(Message::text(diff_text(i))).await
                }
                Step::Drop(i) => {
                    self.venue_id.fetch_max(self.rec.diffs[i].last, Ordering::SeqCst);
                    Ok(())
                }
                Step::Corrupt(i) => {
                    self.venue_id.fetch_max(self.rec.diffs[i].last, Ordering::SeqCst);
                    let mut value: Value = serde_json::from_str(&self.rec.diffs[i].json(&symbol)).expect("json");
                    value["b"] = json!([["99.00", "NaN"]]);
                    tx.send(Message::text(value.to_string())).await
                }
                Step::Diffs(range, pause) => {
                    for i in range.rev() {
                        steps.push_front(Step::Sleep(pause));
                        steps.push_front(Step::Diff(i));
                    }
                    Ok(())
                }
                Step::Trade { id, price, qty: q, buyer_is_maker } => {
                    let text = json!({
                        "e": "trade", "E": 1_700_000_000_000u64 + id, "s": symbol, "t": id,
                        "p": px(price), "q": qty(q), "T": 1_700_000_000_000u64 + id,
                        "m": buyer_is_maker, "M": true,
                    });
                    tx.send(Message::text(text.to_string())).await
                }
                Step::Raw(text) => tx.send(Message::text(text)).await,
                Step::Binary(bytes) => tx.send(Message::binary(bytes)).await,
                Step::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Step::Close => {
                    let _ = tx.send(Message::Close(None)).await;
                    reader.abort();
                    return;
                }
                Step::Abort => {
                    reader.abort();
                    return;
                }
            };
            if sent.is_err() {
                reader.abort();
                return;
            }
        }
        // Stay open until the client leaves.
        let _ = reader.await;
    }
}

/// A Coinbase-style venue for product `BTC-USD`.
#[derive(Debug, Default)]
pub(crate) struct CoinbaseVenue {
    pub(crate) book: Mutex<RefBook>,
    pub(crate) client_messages: Mutex<Vec<Value>>,
    pub(crate) snapshots_sent: AtomicUsize,
}

/// What the Coinbase server does, step by step.
#[derive(Debug, Clone)]
pub(crate) enum CbStep {
    /// A level-2 change at the venue; sent unless `lost`.
    L2 { changes: Vec<(Side, Cents, Milli)>, lost: bool },
    /// A match (`maker` is the maker's side); sent unless `lost`.
    Match { trade_id: u64, sequence: u64, maker: Side, price: Cents, size: Milli, lost: bool },
    /// A heartbeat.
    Heartbeat { sequence: u64, last_trade_id: u64 },
    /// Any text.
    Raw(String),
    /// A pause (subscriptions are still answered meanwhile).
    Sleep(Duration),
    /// Waits (up to 2 s) for the client to subscribe again and answers.
    AwaitResubscribe,
}

pub(crate) const PRODUCT: &str = "BTC-USD";

impl CoinbaseVenue {
    pub(crate) fn new(initial: RefBook) -> Arc<Self> {
        Arc::new(Self { book: Mutex::new(initial), ..Self::default() })
    }

    /// Serves one connection running `script`, answering every level-2
    /// subscription with a snapshot of the venue's current book; returns the `ws://` URL.
    pub(crate) async fn serve(self: &Arc<Self>, script: Vec<CbStep>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let venue = Arc::clone(self);
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                venue.run(stream, script).await;
            }
        });
        url
    }

    fn snapshot_text(&self) -> String {
        self.snapshots_sent.fetch_add(1, Ordering::SeqCst);
        let book = self.book.lock();
        json!({
            "type": "snapshot", "product_id": PRODUCT,
            "bids": RefBook::json_levels(&book.bids), "asks": RefBook::json_levels(&book.asks),
        })
        .to_string()
    }

    async fn run(self: Arc<Self>, stream: TcpStream, script: Vec<CbStep>) {
        let _ = stream.set_nodelay(true);
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
        let (mut tx, mut rx) = ws.split();
        let (requests_tx, mut requests) = mpsc::unbounded_channel::<Value>();
        let venue = Arc::clone(&self);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                if let Message::Text(text) = msg
                    && let Ok(value) = serde_json::from_str::<Value>(text.as_str())
                {
                    venue.client_messages.lock().push(value.clone());
                    let _ = requests_tx.send(value);
                }
            }
        });
        // Answers pending (un)subscriptions; false when the client is gone.
        async fn answer(venue: &CoinbaseVenue, tx: &mut WsTx, request: &Value) -> bool {
            if request["type"] == "subscribe" {
                let subs = json!({"type": "subscriptions", "channels": request["channels"]}).to_string();
                if tx.send(Message::text(subs)).await.is_err() {
                    return false;
                }
                let level2 = request["channels"].as_array().is_some_and(|c| c.iter().any(|c| c == "level2_batch"));
                if level2 && tx.send(Message::text(venue.snapshot_text())).await.is_err() {
                    return false;
                }
            }
            true
        }
        // The client subscribes first; the script starts after the snapshot.
        match tokio::time::timeout(Duration::from_secs(2), requests.recv()).await {
            Ok(Some(request)) if answer(&self, &mut tx, &request).await => {}
            _ => return,
        }
        for step in script {
            while let Ok(request) = requests.try_recv() {
                if !answer(&self, &mut tx, &request).await {
                    return;
                }
            }
            let text = match step {
                CbStep::L2 { changes, lost } => {
                    let mut book = self.book.lock();
                    for (side, p, q) in &changes {
                        book.set(*side, *p, *q);
                    }
                    drop(book);
                    let changes: Vec<Value> = changes
                        .iter()
                        .map(|(s, p, q)| json!([if *s == Side::Buy { "buy" } else { "sell" }, px(*p), qty(*q)]))
                        .collect();
                    (!lost).then(|| {
                        json!({"type": "l2update", "product_id": PRODUCT, "time": "2024-05-01T12:00:00.123456Z",
                               "changes": changes})
                        .to_string()
                    })
                }
                CbStep::Match { trade_id, sequence, maker, price, size, lost } => (!lost).then(|| {
                    json!({"type": "match", "trade_id": trade_id, "sequence": sequence,
                           "maker_order_id": "m", "taker_order_id": "t", "time": "2024-05-01T12:00:01.5Z",
                           "product_id": PRODUCT, "size": qty(size), "price": px(price),
                           "side": if maker == Side::Buy { "buy" } else { "sell" }})
                    .to_string()
                }),
                CbStep::Heartbeat { sequence, last_trade_id } => Some(
                    json!({"type": "heartbeat", "sequence": sequence, "last_trade_id": last_trade_id,
                           "product_id": PRODUCT, "time": "2024-05-01T12:00:02.000000Z"})
                    .to_string(),
                ),
                CbStep::Raw(text) => Some(text),
                CbStep::AwaitResubscribe => {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                    while let Ok(Some(request)) = tokio::time::timeout_at(deadline, requests.recv()).await {
                        if !answer(&self, &mut tx, &request).await {
                            return;
                        }
                        if request["type"] == "subscribe" {
                            break;
                        }
                    }
                    None
                }
                CbStep::Sleep(d) => {
                    let deadline = tokio::time::Instant::now() + d;
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep_until(deadline) => break,
                            Some(request) = requests.recv() => {
                                if !answer(&self, &mut tx, &request).await {
                                    return;
                                }
                            }
                        }
                    }
                    None
                }
            };
            if let Some(text) = text
                && tx.send(Message::text(text)).await.is_err()
            {
                return;
            }
        }
        // Keep answering subscriptions until the client leaves.
        while let Some(request) = requests.recv().await {
            if !answer(&self, &mut tx, &request).await {
                break;
            }
        }
        reader.abort();
    }
}

type WsTx = futures::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, Message>;

/// Reads an HTTP request head (readiness + `try_read`).
async fn read_request(stream: &TcpStream) -> io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A listener on a fresh port, and its `ws://` URL.
pub(crate) async fn ws_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    (listener, url)
}

/// A port nothing listens on (yet).
pub(crate) async fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// Polls `check` every 2 ms until it holds; panics with `what` after 5 s.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The feed's whole book for `symbol`.
pub(crate) fn feed_book(feed: &FeedHandle, symbol: &str) -> (Vec<BookLevel>, Vec<BookLevel>) {
    let view = feed.symbol(symbol, usize::MAX).expect("symbol");
    (view.bids, view.asks)
}

/// The symbol is live with update id `id`.
pub(crate) fn synced_at(feed: &FeedHandle, symbol: &str, id: u64) -> bool {
    feed.symbol(symbol, 0).is_some_and(|v| v.update_id == id && v.status == FeedStatus::Live)
}
