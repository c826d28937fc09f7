//! Tests of `plexus_trading::feeds` against local WebSocket (and HTTP
//! snapshot) servers that replay recorded-style Binance and Coinbase
//! messages and drop, delay, reorder and garble them.

mod support;

use std::sync::Arc;
use std::time::Duration;

use plexus_trading::feeds::{
    Backoff, BackoffConfig, BookLevel, FeedConfig, FeedError, FeedEvent, FeedHandle, FeedStatus, HttpSnapshotSource,
    SnapshotError, Trade, Venue,
};
use plexus_trading::types::Side;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use self::support::{
    BinanceVenue, CbStep, CoinbaseVenue, PRODUCT, Recording, RefBook, SnapshotReply, Step, eventually, feed_book,
    free_addr, synced_at, ws_listener,
};

const SYMBOL: &str = "BTCUSDT";
const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn backoff() -> BackoffConfig {
    BackoffConfig { base: ms(20), cap: ms(80), healthy_after: Duration::from_secs(10), seed: 7 }
}

fn binance_config(ws_url: &str, http_url: &str) -> FeedConfig {
    let source = HttpSnapshotSource::new(http_url).expect("snapshot url").with_timeout(Duration::from_secs(2));
    // Lower case on purpose: Binance symbols are kept upper-case.
    let mut config = FeedConfig::binance("binance-test", ws_url, ["btcusdt"], Arc::new(source));
    config.stale_after = Duration::from_secs(2);
    config.dead_after = Duration::from_secs(5);
    config.ping_interval = None;
    config.connect_timeout = Duration::from_secs(1);
    config.backoff = backoff();
    if let Venue::Binance(binance) = &mut config.venue {
        binance.snapshot_retry_delay = ms(10);
    }
    config
}

fn coinbase_config(ws_url: &str) -> FeedConfig {
    let mut config = FeedConfig::coinbase("coinbase-test", ws_url, [PRODUCT]);
    config.stale_after = Duration::from_secs(2);
    config.dead_after = Duration::from_secs(5);
    config.ping_interval = None;
    config.connect_timeout = Duration::from_secs(1);
    config.backoff = backoff();
    config
}

/// Every event received so far.
fn drain(events: &mut broadcast::Receiver<FeedEvent>) -> Vec<FeedEvent> {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => out.push(event),
            Err(broadcast::error::TryRecvError::Lagged(n)) => panic!("receiver lagged by {n}"),
            Err(_) => return out,
        }
    }
}

fn trades(events: &[FeedEvent]) -> Vec<Trade> {
    events.iter().filter_map(|e| if let FeedEvent::Trade(t) = e { Some(t.clone()) } else { None }).collect()
}

/// Book update ids in publication order never go back: nothing is applied out of order.
fn assert_book_ids_monotonic(events: &[FeedEvent]) {
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| if let FeedEvent::Book { update_id, .. } = e { Some(*update_id) } else { None })
        .collect();
    assert!(!ids.is_empty());
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "book ids went back: {ids:?}");
}

fn symbol_statuses(events: &[FeedEvent]) -> Vec<FeedStatus> {
    events
        .iter()
        .filter_map(|e| if let FeedEvent::SymbolStatus { status, .. } = e { Some(status.clone()) } else { None })
        .collect()
}

fn feed_statuses(events: &[FeedEvent]) -> Vec<FeedStatus> {
    events.iter().filter_map(|e| if let FeedEvent::Status(status) = e { Some(status.clone()) } else { None }).collect()
}

// ---------------------------------------------------------------- Binance

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_in_order_stream_builds_the_book_and_normalizes_trades() {
    let rec = Recording::generate(60, 1);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    // The snapshot is taken once diff 8 happened: the buffered diffs it covers must be dropped.
    venue.replies.lock().push_back(SnapshotReply::WaitUntil(rec.diffs[8].last));
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(
        listener,
        vec![vec![
            Step::Raw(r#"{"result":null,"id":1}"#.to_owned()),
            Step::Diffs(0..30, MS),
            Step::Trade { id: 1, price: 10_005, qty: 250, buyer_is_maker: true },
            Step::Trade { id: 2, price: 9_995, qty: 1_000, buyer_is_maker: false },
            Step::Diffs(30..60, MS),
        ]],
    );
    let (feed, mut events) = FeedHandle::start_with_receiver(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    let expected = rec.book_at(rec.final_id());
    assert_eq!(feed_book(&feed, SYMBOL), expected.levels());
    // The far levels added and removed again are gone (old diffs were not replayed over the snapshot).
    assert!(feed_book(&feed, SYMBOL).0.iter().all(|l| l.price >= 99.0));

    let counters = feed.counters();
    assert_eq!((counters.gaps, counters.resyncs, counters.malformed), (0, 0, 0));
    assert_eq!(counters.snapshots, 1);
    assert!(counters.stale_events_dropped >= 1, "{counters:?}");
    assert_eq!(counters.trades, 2);
    assert_eq!(counters.connects, 1);

    let quote = feed.quote("btcusdt").expect("quote");
    let (bids, asks) = expected.levels();
    assert_eq!((quote.bid, quote.ask), (bids.first().copied(), asks.first().copied()));
    assert_eq!(quote.update_id, rec.final_id());

    let events = drain(&mut events);
    assert_book_ids_monotonic(&events);
    let trades = trades(&events);
    assert_eq!(
        trades,
        vec![
            // m: true, the buyer was the maker: the seller hit the bid.
            Trade {
                symbol: SYMBOL.to_owned(),
                price: 100.05,
                qty: 0.25,
                aggressor: Side::Sell,
                trade_id: 1,
                venue_time_ms: Some(1_700_000_000_001),
            },
            Trade {
                symbol: SYMBOL.to_owned(),
                price: 99.95,
                qty: 1.0,
                aggressor: Side::Buy,
                trade_id: 2,
                venue_time_ms: Some(1_700_000_000_002),
            },
        ]
    );
    assert_eq!(feed.symbol(SYMBOL, 0).expect("view").last_trade, trades.last().cloned());
    assert!(events.iter().any(|e| matches!(e, FeedEvent::Quote(q) if q.symbol == SYMBOL)));

    eventually("the subscription", || !venue.client_messages.lock().is_empty()).await;
    let subscription: Value = serde_json::from_str(&venue.client_messages.lock()[0]).expect("json");
    assert_eq!(
        subscription,
        json!({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "btcusdt@trade"], "id": 1})
    );

    let view = feed.view(3);
    assert_eq!(view.status, FeedStatus::Live);
    assert_eq!(view.symbols.len(), 1);
    assert_eq!(view.symbols[0].bids.len(), 3);
    assert_eq!(view.symbols[0].levels, (expected.bids.len(), expected.asks.len()));

    feed.shutdown_and_wait().await;
    assert_eq!(feed.status(), FeedStatus::Stopped);
    assert_eq!(feed.symbol(SYMBOL, 0).expect("view").status, FeedStatus::Stopped);
    // Still readable after shutdown.
    assert_eq!(feed_book(&feed, SYMBOL), expected.levels());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_old_or_failed_snapshots_are_fetched_again() {
    let rec = Recording::generate(40, 2);
    let venue = BinanceVenue::new(rec.clone());
    // The client joins late: diffs 0..10 happened before it connected.
    venue.venue_id.store(rec.diffs[9].last, std::sync::atomic::Ordering::SeqCst);
    let http = venue.serve_http().await;
    // First a server error, then a snapshot older than the first streamed diff, then the current one.
    venue.replies.lock().extend([SnapshotReply::Fail(500), SnapshotReply::At(rec.diffs[2].last)]);
    let (listener, ws) = ws_listener().await;
    venue.combined.store(true, std::sync::atomic::Ordering::SeqCst);
    venue.serve_ws(listener, vec![vec![Step::Diffs(10..40, ms(2))]]);
    let feed = FeedHandle::start(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!(counters.snapshot_errors, 1, "{counters:?}");
    assert_eq!(counters.snapshot_refetches, 1, "{counters:?}");
    assert_eq!(counters.snapshots, 2, "{counters:?}");
    assert_eq!(venue.snapshot_requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!((counters.gaps, counters.malformed), (0, 0));
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_dropped_diff_is_a_gap_and_the_book_resyncs() {
    let rec = Recording::generate(60, 3);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(listener, vec![vec![Step::Diffs(0..20, MS), Step::Drop(20), Step::Diffs(21..60, ms(2))]]);
    let (feed, mut events) = FeedHandle::start_with_receiver(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!((counters.gaps, counters.resyncs), (1, 1), "{counters:?}");
    assert_eq!(counters.snapshots, 2);

    let events = drain(&mut events);
    assert_book_ids_monotonic(&events);
    let statuses = symbol_statuses(&events);
    let resyncing = statuses.iter().position(|s| *s == FeedStatus::Resyncing).expect("resyncing");
    assert!(statuses[resyncing..].contains(&FeedStatus::Live), "{statuses:?}");
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_reordered_diffs_are_a_gap_never_applied_out_of_order() {
    let rec = Recording::generate(50, 4);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(
        listener,
        vec![vec![Step::Diffs(0..25, MS), Step::Diff(26), Step::Diff(25), Step::Diffs(27..50, ms(2))]],
    );
    let (feed, mut events) = FeedHandle::start_with_receiver(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!((counters.gaps, counters.resyncs), (1, 1), "{counters:?}");
    assert_book_ids_monotonic(&drain(&mut events));
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_delayed_stream_goes_stale_then_live_again() {
    let rec = Recording::generate(20, 5);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(listener, vec![vec![Step::Diffs(0..10, MS), Step::Sleep(ms(400)), Step::Diffs(10..20, MS)]]);
    let mut config = binance_config(&ws, &http);
    config.stale_after = ms(60);
    config.dead_after = Duration::from_secs(3);
    let (feed, mut events) = FeedHandle::start_with_receiver(config).expect("start");
    let mut status = feed.watch_status();

    eventually("the first ten diffs", || synced_at(&feed, SYMBOL, rec.diffs[9].last)).await;
    eventually("a stale feed and symbol", || {
        feed.status() == FeedStatus::Stale && feed.symbol(SYMBOL, 0).is_some_and(|v| v.status == FeedStatus::Stale)
    })
    .await;
    // Stale data is still there, with its age.
    let view = feed.symbol(SYMBOL, 5).expect("view");
    assert_eq!(view.update_id, rec.diffs[9].last);
    assert!(view.quote.is_some());
    assert!(view.age.expect("age") >= ms(60));
    eventually("the watch to see it", || *status.borrow_and_update() == FeedStatus::Stale).await;

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed.status(), FeedStatus::Live);
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert!(counters.stale_transitions >= 2, "{counters:?}");
    assert_eq!((counters.reconnects, counters.dead_connections, counters.gaps), (0, 0, 0));

    let events = drain(&mut events);
    let feed_seen = feed_statuses(&events);
    let stale = feed_seen.iter().position(|s| *s == FeedStatus::Stale).expect("stale published");
    assert!(feed_seen[stale..].contains(&FeedStatus::Live), "{feed_seen:?}");
    let symbol_seen = symbol_statuses(&events);
    let stale = symbol_seen.iter().position(|s| *s == FeedStatus::Stale).expect("symbol stale published");
    assert!(symbol_seen[stale..].contains(&FeedStatus::Live), "{symbol_seen:?}");
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_reconnects_after_close_and_abort() {
    let rec = Recording::generate(45, 6);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(
        listener,
        vec![
            vec![Step::Diffs(0..15, MS), Step::Close],
            vec![Step::Diffs(15..30, MS), Step::Abort],
            vec![Step::Diffs(30..45, MS)],
        ],
    );
    let (feed, mut events) = FeedHandle::start_with_receiver(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!((counters.connects, counters.reconnects), (3, 2), "{counters:?}");
    assert_eq!(counters.gaps, 0, "a reconnect is a fresh sync, not a gap");

    let events = drain(&mut events);
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| if let FeedEvent::Reconnecting { attempt, .. } = e { Some(*attempt) } else { None })
        .collect();
    assert_eq!(attempts, [1, 2]);
    assert!(feed_statuses(&events).iter().any(|s| matches!(s, FeedStatus::Disconnected { .. })));
    assert!(symbol_statuses(&events).iter().any(|s| matches!(s, FeedStatus::Disconnected { .. })));
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_server_down_backs_off_with_capped_jittered_delays_and_reads_never_wait() {
    let rec = Recording::generate(20, 7);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let addr = free_addr().await;
    let config = binance_config(&format!("ws://{addr}/ws"), &http);
    let backoff_config = config.backoff.clone();
    let (feed, mut events) = FeedHandle::start_with_receiver(config).expect("start");
    let reader = feed.reader();

    let mut delays = Vec::new();
    let mut reads = 0;
    while delays.len() < 6 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event").expect("open");
        if let FeedEvent::Reconnecting { attempt, ceiling, delay, error } = event {
            assert!(error.contains("connect failed"), "{error}");
            delays.push((attempt, ceiling, delay));
            // While the venue is down the state is readable and a read never waits on the feed.
            for _ in 0..200 {
                let view = reader.view(10);
                assert!(matches!(view.status, FeedStatus::Connecting | FeedStatus::Disconnected { .. }), "{view:?}");
                assert!(matches!(reader.status(), FeedStatus::Connecting | FeedStatus::Disconnected { .. }));
                let symbol = reader.symbol(SYMBOL, 10).expect("symbol");
                assert!(symbol.quote.is_none() && symbol.bids.is_empty());
                reads += 1;
            }
        }
    }
    assert!(reads >= 1_000);

    // The delays are the seeded backoff's: ceilings double from the base up to the cap, delays drawn below them.
    let mut expected = Backoff::new(backoff_config);
    for (i, (attempt, ceiling, delay)) in delays.iter().enumerate() {
        let want = expected.next_delay();
        assert_eq!(*attempt as usize, i + 1);
        assert_eq!((*ceiling, *delay), (want.ceiling, want.delay));
        assert!(delay <= ceiling);
    }
    let ceilings: Vec<Duration> = delays.iter().map(|d| d.1).collect();
    assert_eq!(ceilings, [ms(20), ms(40), ms(80), ms(80), ms(80), ms(80)]);
    assert!(delays.windows(2).any(|w| w[0].2 != w[1].2), "jittered");
    assert!(feed.counters().reconnects >= 6);
    assert_eq!(feed.counters().connects, 0);

    // The venue comes back on the same port.
    let listener = TcpListener::bind(addr).await.expect("rebind");
    venue.serve_ws(listener, vec![vec![Step::Diffs(0..20, MS)]]);
    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    assert_eq!(feed.counters().connects, 1);
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_backoff_resets_after_a_healthy_connection() {
    let rec = Recording::generate(10, 8);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(
        listener,
        vec![
            vec![Step::Close],
            vec![Step::Diffs(0..5, MS), Step::Sleep(ms(150)), Step::Close],
            vec![Step::Close],
            vec![Step::Diffs(5..10, MS)],
        ],
    );
    let mut config = binance_config(&ws, &http);
    config.backoff.healthy_after = ms(80);
    let (feed, mut events) = FeedHandle::start_with_receiver(config).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    let attempts: Vec<u32> = drain(&mut events)
        .iter()
        .filter_map(|e| if let FeedEvent::Reconnecting { attempt, .. } = e { Some(*attempt) } else { None })
        .collect();
    // After the healthy second connection the count starts again.
    assert_eq!(attempts, [1, 1, 2]);
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_dead_connection_is_dropped_and_reopened() {
    let rec = Recording::generate(15, 9);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(
        listener,
        vec![vec![Step::Diffs(0..5, MS), Step::Sleep(Duration::from_secs(3))], vec![Step::Diffs(5..15, MS)]],
    );
    let mut config = binance_config(&ws, &http);
    config.stale_after = ms(40);
    config.dead_after = ms(150);
    let (feed, mut events) = FeedHandle::start_with_receiver(config).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!((counters.dead_connections, counters.reconnects, counters.connects), (1, 1, 2), "{counters:?}");
    let statuses = feed_statuses(&drain(&mut events));
    let stale = statuses.iter().position(|s| *s == FeedStatus::Stale).expect("stale first");
    let down = statuses.iter().position(|s| matches!(s, FeedStatus::Disconnected { .. })).expect("then dropped");
    assert!(stale < down, "{statuses:?}");
    assert!(matches!(&statuses[down], FeedStatus::Disconnected { error } if error.contains("dead")));
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_keep_a_quiet_connection_alive() {
    let rec = Recording::generate(10, 10);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(listener, vec![vec![Step::Diffs(0..5, MS), Step::Sleep(ms(400)), Step::Diffs(5..10, MS)]]);
    let mut config = binance_config(&ws, &http);
    config.stale_after = ms(40);
    config.dead_after = ms(200);
    config.ping_interval = Some(ms(20));
    let feed = FeedHandle::start(config).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    let counters = feed.counters();
    assert!(counters.pings_sent >= 5, "{counters:?}");
    assert!(counters.stale_transitions >= 1, "quiet means stale: {counters:?}");
    assert_eq!((counters.dead_connections, counters.reconnects), (0, 0), "{counters:?}");
    feed.shutdown_and_wait().await;
}

/// Garbage of every kind the handler must count and skip.
fn binance_garbage() -> Vec<Step> {
    let texts = [
        "not json",
        "{",
        "[1,2,3]",
        "42",
        "{}",
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":"abc","u":5,"b":[],"a":[]}"#,
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1e99,"u":5,"b":[],"a":[]}"#,
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":"x","a":[]}"#,
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":9,"u":2,"b":[],"a":[]}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"-5","q":"1","m":true,"T":1}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"NaN","q":"1","m":true,"T":1}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"inf","q":"1","m":true,"T":1}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","m":"yes","T":1}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":-1,"p":"1","q":"1","m":true,"T":1}"#,
        r#"{"e":"trade","s":"ETHUSDT","t":1,"p":"1","q":"1","m":true,"T":1}"#,
        r#"{"e":"kline","s":"BTCUSDT"}"#,
        r#"{"e":7}"#,
        r#"{"stream":"btcusdt@trade","data":5}"#,
        r#"{"result":null,"id":2,"error":{"code":2,"msg":"Invalid request"}}"#,
    ];
    let mut steps: Vec<Step> = texts.iter().map(|t| Step::Raw((*t).to_owned())).collect();
    steps.push(Step::Binary(vec![0xff, 0xfe, 0x00]));
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_garbage_is_counted_and_skipped() {
    let rec = Recording::generate(40, 11);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    let garbage = binance_garbage();
    let bursts = 25;
    let mut script = vec![Step::Diffs(0..20, MS)];
    for _ in 0..bursts {
        script.extend(garbage.iter().cloned());
    }
    script.push(Step::Trade { id: 9, price: 10_000, qty: 5, buyer_is_maker: false });
    script.push(Step::Diffs(20..40, MS));
    venue.serve_ws(listener, vec![script]);
    let feed = FeedHandle::start(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!(counters.malformed, (garbage.len() * bursts) as u64, "{counters:?}");
    assert_eq!((counters.gaps, counters.reconnects, counters.trades), (0, 0, 1), "{counters:?}");
    assert_eq!(feed.status(), FeedStatus::Live);
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_corrupt_diff_is_skipped_whole_and_its_gap_resyncs() {
    let rec = Recording::generate(40, 12);
    let venue = BinanceVenue::new(rec.clone());
    let http = venue.serve_http().await;
    let (listener, ws) = ws_listener().await;
    venue.serve_ws(listener, vec![vec![Step::Diffs(0..20, MS), Step::Corrupt(20), Step::Diffs(21..40, ms(2))]]);
    let feed = FeedHandle::start(binance_config(&ws, &http)).expect("start");

    eventually("the book in step with the last diff", || synced_at(&feed, SYMBOL, rec.final_id())).await;
    assert_eq!(feed_book(&feed, SYMBOL), rec.book_at(rec.final_id()).levels());
    let counters = feed.counters();
    assert_eq!((counters.malformed, counters.gaps, counters.resyncs), (1, 1, 1), "{counters:?}");
    feed.shutdown_and_wait().await;
}

// ---------------------------------------------------------------- Coinbase

fn coinbase_initial() -> RefBook {
    let mut book = RefBook::default();
    for k in 1..=5 {
        book.set(Side::Buy, 50_000 - k * 10, 100 * k);
        book.set(Side::Sell, 50_000 + k * 10, 200 * k);
    }
    book
}

fn l2(n: u64) -> CbStep {
    let side = if n.is_multiple_of(2) { Side::Buy } else { Side::Sell };
    let price = if side == Side::Buy { 50_000 - (n % 7 + 1) * 10 } else { 50_000 + (n % 5 + 1) * 10 };
    let size = if n.is_multiple_of(3) { 0 } else { 1 + n * 37 % 900 };
    CbStep::L2 { changes: vec![(side, price, size), (Side::Buy, 49_000 + n, 10 + n)], lost: false }
}

fn lost(step: CbStep) -> CbStep {
    match step {
        CbStep::L2 { changes, .. } => CbStep::L2 { changes, lost: true },
        CbStep::Match { trade_id, sequence, maker, price, size, .. } => {
            CbStep::Match { trade_id, sequence, maker, price, size, lost: true }
        }
        other => other,
    }
}

fn matched(trade_id: u64, sequence: u64, maker: Side) -> CbStep {
    CbStep::Match { trade_id, sequence, maker, price: 50_005, size: 125, lost: false }
}

fn last_match(trade_id: u64, sequence: u64) -> CbStep {
    CbStep::Raw(
        json!({"type": "last_match", "trade_id": trade_id, "sequence": sequence, "maker_order_id": "m",
               "taker_order_id": "t", "time": "2024-05-01T11:59:59.000000Z", "product_id": PRODUCT,
               "size": "0.5", "price": "499.90", "side": "buy"})
        .to_string(),
    )
}

fn coinbase_synced(feed: &FeedHandle, venue: &CoinbaseVenue) -> bool {
    let expected = venue.book.lock().levels();
    feed.symbol(PRODUCT, usize::MAX).is_some_and(|v| v.status == FeedStatus::Live && (v.bids, v.asks) == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_snapshot_and_updates_build_the_book_and_trades() {
    let venue = CoinbaseVenue::new(coinbase_initial());
    let mut script = vec![last_match(10, 100)];
    script.extend((0..20).map(l2));
    script.push(matched(11, 105, Side::Sell));
    script.push(matched(12, 109, Side::Buy));
    script.push(CbStep::Heartbeat { sequence: 112, last_trade_id: 12 });
    for garbage in [
        "nope",
        r#"{"type":"ticker","product_id":"BTC-USD"}"#,
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[["hold","1.0","2"]]}"#,
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","-1.0","2"]]}"#,
        r#"{"type":"match","product_id":"BTC-USD","trade_id":13,"sequence":113,"side":"buy","price":"NaN","size":"1"}"#,
        r#"{"type":"snapshot","product_id":"ETH-USD","bids":[],"asks":[]}"#,
        r#"{"type":"error","message":"Failed to subscribe","reason":"bad product"}"#,
    ] {
        script.push(CbStep::Raw(garbage.to_owned()));
    }
    script.extend((20..30).map(l2));
    let url = venue.serve(script).await;
    let (feed, mut events) = FeedHandle::start_with_receiver(coinbase_config(&url)).expect("start");

    eventually("the book and the trades", || coinbase_synced(&feed, &venue) && feed.counters().trades == 2).await;
    let counters = feed.counters();
    assert_eq!((counters.gaps, counters.resyncs, counters.snapshots), (0, 0, 1), "{counters:?}");
    assert_eq!(counters.malformed, 7, "{counters:?}");
    assert!(counters.book_updates > 20);

    let trades = trades(&drain(&mut events));
    assert_eq!(trades.len(), 2);
    // `side` is the maker's: a sell maker was lifted by a buyer.
    assert_eq!((trades[0].trade_id, trades[0].aggressor), (11, Side::Buy));
    assert_eq!((trades[1].trade_id, trades[1].aggressor), (12, Side::Sell));
    assert_eq!((trades[0].price, trades[0].qty), (500.05, 0.125));
    assert_eq!(trades[0].venue_time_ms, Some(1_714_564_801_500));
    let view = feed.symbol(PRODUCT, 1).expect("view");
    assert_eq!(view.quote.expect("quote").venue_time_ms, Some(1_714_564_800_123));

    let subscription = venue.client_messages.lock()[0].clone();
    assert_eq!(
        subscription,
        json!({"type": "subscribe", "product_ids": [PRODUCT], "channels": ["level2_batch", "matches", "heartbeat"]})
    );
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_missed_match_resyncs_by_resubscribing() {
    let venue = CoinbaseVenue::new(coinbase_initial());
    let mut script = vec![last_match(10, 100)];
    script.extend((0..5).map(l2));
    script.extend([
        matched(11, 101, Side::Buy),
        l2(5),
        matched(12, 102, Side::Sell),
        lost(l2(6)),
        lost(matched(13, 103, Side::Sell)),
        l2(7),
        matched(14, 104, Side::Buy),
        CbStep::AwaitResubscribe,
    ]);
    script.extend((8..14).map(l2));
    script.push(CbStep::Heartbeat { sequence: 110, last_trade_id: 14 });
    let url = venue.serve(script).await;
    let (feed, mut events) = FeedHandle::start_with_receiver(coinbase_config(&url)).expect("start");

    eventually("the book in step after the resync", || {
        coinbase_synced(&feed, &venue) && feed.counters().resyncs == 1 && feed.counters().trades == 3
    })
    .await;
    let counters = feed.counters();
    assert_eq!((counters.gaps, counters.resyncs, counters.snapshots), (1, 1, 2), "{counters:?}");
    let messages = venue.client_messages.lock().clone();
    assert!(messages.contains(&json!({"type": "unsubscribe", "product_ids": [PRODUCT], "channels": ["level2_batch"]})));
    assert!(messages.contains(&json!({"type": "subscribe", "product_ids": [PRODUCT], "channels": ["level2_batch"]})));
    let statuses = symbol_statuses(&drain(&mut events));
    let resyncing = statuses.iter().position(|s| *s == FeedStatus::Resyncing).expect("resyncing");
    assert!(statuses[resyncing..].contains(&FeedStatus::Live));
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_reordered_matches_and_a_heartbeat_ahead_are_gaps() {
    let venue = CoinbaseVenue::new(coinbase_initial());
    let script = vec![
        last_match(10, 100),
        matched(11, 101, Side::Buy),
        matched(13, 103, Side::Buy),
        matched(12, 102, Side::Buy),
        CbStep::AwaitResubscribe,
        CbStep::Heartbeat { sequence: 103, last_trade_id: 13 },
        CbStep::Heartbeat { sequence: 110, last_trade_id: 15 },
        CbStep::AwaitResubscribe,
        l2(1),
    ];
    let url = venue.serve(script).await;
    let feed = FeedHandle::start(coinbase_config(&url)).expect("start");

    eventually("two resyncs", || coinbase_synced(&feed, &venue) && feed.counters().resyncs == 2).await;
    let counters = feed.counters();
    assert_eq!((counters.gaps, counters.out_of_order, counters.trades), (2, 1, 2), "{counters:?}");
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_contiguous_sequence_mode_finds_sequence_jumps() {
    let venue = CoinbaseVenue::new(coinbase_initial());
    let script = vec![last_match(10, 100), matched(11, 101, Side::Buy), matched(12, 103, Side::Buy), l2(1)];
    let url = venue.serve(script).await;
    let mut config = coinbase_config(&url);
    if let Venue::Coinbase(coinbase) = &mut config.venue {
        coinbase.contiguous_sequence = true;
    }
    let feed = FeedHandle::start(config).expect("start");
    eventually("a resync", || coinbase_synced(&feed, &venue) && feed.counters().resyncs == 1).await;
    assert_eq!(feed.counters().gaps, 1);
    feed.shutdown_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_heartbeats_keep_the_feed_live_and_silence_makes_it_stale() {
    let venue = CoinbaseVenue::new(coinbase_initial());
    let mut script = vec![last_match(5, 50)];
    for _ in 0..60 {
        script.push(CbStep::Heartbeat { sequence: 50, last_trade_id: 5 });
        script.push(CbStep::Sleep(ms(10)));
    }
    let url = venue.serve(script).await;
    let mut config = coinbase_config(&url);
    config.stale_after = ms(250);
    let feed = FeedHandle::start(config).expect("start");

    eventually("live", || coinbase_synced(&feed, &venue)).await;
    // Heartbeats only (no book or trade news) for a while: still live.
    for _ in 0..50 {
        assert_eq!(feed.status(), FeedStatus::Live);
        assert_eq!(feed.symbol(PRODUCT, 0).expect("view").status, FeedStatus::Live);
        tokio::time::sleep(ms(4)).await;
    }
    // Then nothing at all: stale, the book still readable.
    eventually("stale", || feed.symbol(PRODUCT, 0).is_some_and(|v| v.status == FeedStatus::Stale)).await;
    eventually("the feed stale too", || feed.status() == FeedStatus::Stale).await;
    assert_eq!(feed_book(&feed, PRODUCT), venue.book.lock().levels());
    assert_eq!(feed.counters().gaps, 0);
    feed.shutdown_and_wait().await;
}

// ---------------------------------------------------------------- configuration and parts

#[test]
fn start_refuses_bad_configurations_and_needs_a_runtime() {
    let source = Arc::new(HttpSnapshotSource::new("http://127.0.0.1:1").expect("url"));
    let good = FeedConfig::binance("b", "ws://127.0.0.1:1/ws", ["BTCUSDT"], source.clone());
    assert_eq!(FeedHandle::start(good.clone()).err(), Some(FeedError::NoRuntime));

    let mut bad = good.clone();
    bad.url = "http://127.0.0.1:1".to_owned();
    assert!(matches!(FeedHandle::start(bad).err(), Some(FeedError::InvalidConfig(_))));
    let empty: [&str; 0] = [];
    let bad = FeedConfig::binance("b", "ws://x", empty, source.clone());
    assert!(matches!(FeedHandle::start(bad).err(), Some(FeedError::InvalidConfig(_))));
    let bad = FeedConfig::binance("b", "ws://x", ["btcusdt", "BTCUSDT"], source);
    assert!(matches!(FeedHandle::start(bad).err(), Some(FeedError::InvalidConfig(m)) if m.contains("twice")));
    let mut bad = good.clone();
    bad.dead_after = ms(10);
    bad.stale_after = ms(20);
    assert!(matches!(FeedHandle::start(bad).err(), Some(FeedError::InvalidConfig(_))));
    let mut bad = good;
    bad.backoff.cap = ms(1);
    assert!(matches!(FeedHandle::start(bad).err(), Some(FeedError::InvalidConfig(_))));

    assert!(matches!(HttpSnapshotSource::new("https://api.binance.com"), Err(SnapshotError::UnsupportedScheme(_))));
}

#[test]
fn backoff_is_seeded_exponential_capped_and_resets() {
    let config = BackoffConfig { base: ms(100), cap: Duration::from_secs(1), healthy_after: ms(1), seed: 42 };
    let mut a = Backoff::new(config.clone());
    let mut b = Backoff::new(config);
    let draws: Vec<_> = (0..8).map(|_| a.next_delay()).collect();
    assert_eq!(draws, (0..8).map(|_| b.next_delay()).collect::<Vec<_>>());
    let ceilings: Vec<u128> = draws.iter().map(|d| d.ceiling.as_millis()).collect();
    assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    assert!(draws.iter().all(|d| d.delay <= d.ceiling));
    a.reset();
    assert_eq!(a.next_delay().attempt, 1);
    // Thousands of attempts neither overflow nor pass the cap.
    for _ in 0..5_000 {
        let d = a.next_delay();
        assert!(d.delay <= Duration::from_secs(1) && d.ceiling == Duration::from_secs(1) || d.attempt < 5);
    }
}

#[test]
fn book_levels_compare_exactly() {
    // The reference book's levels parse the venue's strings exactly as the feed does.
    let mut book = RefBook::default();
    book.set(Side::Buy, 10_005, 1);
    assert_eq!(book.levels().0, vec![BookLevel { price: 100.05, qty: 0.001 }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_uses_the_injected_tls_configuration_and_a_failed_handshake_is_a_reconnect() {
    // A plain TCP server that is not TLS: the handshake fails, nothing panics
    // (no process-wide crypto provider is needed), and the feed retries.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut config = coinbase_config(&format!("wss://localhost:{}", addr.port()));
    config.tls = Some(Arc::new(tls));
    let (feed, mut events) = FeedHandle::start_with_receiver(config).expect("start");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event").expect("open");
        if let FeedEvent::Reconnecting { attempt, error, .. } = event {
            assert_eq!(attempt, 1);
            assert!(error.contains("connect failed"), "{error}");
            break;
        }
    }
    assert_eq!(feed.counters().connects, 0);
    feed.shutdown_and_wait().await;
    assert_eq!(feed.status(), FeedStatus::Stopped);
}

/// `[[trading.feeds]]` as a user writes it, started and shown by the module.
fn module_with_feed(url: &str) -> (plexus_trading::Trading, Arc<FeedHandle>, std::path::PathBuf) {
    use plexus_trading::settings::TradingSettings;
    let settings: TradingSettings = serde_json::from_value(json!({"feeds": [{
        "name": "cb", "style": "coinbase", "url": url, "symbols": [PRODUCT],
        "stale_after_ms": 2000, "dead_after_ms": 5000,
    }]}))
    .expect("settings");
    let checked = settings.check().expect("checked");
    let mut feed = checked.feeds[0].clone();
    feed.ping_interval = None;
    feed.backoff = backoff();
    let feed = Arc::new(FeedHandle::start(feed).expect("start"));
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("plexus-trading-feed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join(format!("journal-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let desk = plexus_trading::desk::Desk::open(plexus_trading::desk::DeskConfig {
        journal: journal.clone(),
        sync: checked.sync,
        instruments: checked.instruments,
        accounts: checked.accounts,
        roles: checked.roles,
        restricted: Vec::new(),
        pretrade: checked.pretrade,
        surveillance: plexus_trading::surveillance::SurveillanceConfig::default(),
        max_batch: 64,
    })
    .expect("desk");
    let module = plexus_trading::Trading::new(plexus_trading::tools::Ctx {
        desk,
        traders: checked.traders,
        history: plexus_trading::history::History::simulated(&checked.volatility),
        sectors: checked.sectors,
        simulated: false,
        feeds: vec![Arc::clone(&feed)],
    });
    (module, feed, journal)
}

async fn market_data(module: &plexus_trading::Trading, args: Value) -> Result<Value, plexus_core::ToolError> {
    use plexus_core::Module;
    let out = module.call(&plexus_core::CallContext::detached("t"), "get_market_data", args).await?;
    Ok(out.structured.expect("structured"))
}

async fn read(module: &plexus_trading::Trading, uri: &str) -> Result<Value, plexus_core::ToolError> {
    use plexus_core::Module;
    let contents = module.read(&plexus_core::CallContext::detached("t"), uri).await?;
    match &contents.contents[0] {
        plexus_core::content::ResourceContent::Text { text, .. } => Ok(serde_json::from_str(text).unwrap()),
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_feed_shows_beside_the_internal_venue_with_its_status() {
    let venue = CoinbaseVenue::new(coinbase_initial());
    let mut script = vec![last_match(10, 100)];
    script.extend((0..6).map(l2));
    script.push(matched(11, 105, Side::Sell));
    script.push(CbStep::Heartbeat { sequence: 106, last_trade_id: 11 });
    script.push(CbStep::Sleep(Duration::from_secs(30)));
    let url = venue.serve(script).await;
    let (module, feed, journal) = module_with_feed(&url);
    eventually("the feed's book", || coinbase_synced(&feed, &venue) && feed.counters().trades == 1).await;

    // BTC-USD is listed on the internal venue too: both answer, each naming its venue.
    let v = market_data(&module, json!({"symbols": [PRODUCT], "dataTypes": ["quotes", "orderbook", "trades"]}))
        .await
        .unwrap();
    let entries = v["symbols"].as_array().unwrap();
    assert_eq!(entries.iter().map(|e| e["venue"].as_str().unwrap()).collect::<Vec<_>>(), ["internal", "cb"], "{v}");
    let cb = &entries[1];
    let (bids, asks) = venue.book.lock().levels();
    assert_eq!(cb["feed"]["status"], "live");
    assert_eq!(cb["feed"]["style"], "coinbase");
    assert_eq!(cb["quote"]["bid"].as_f64(), Some(bids[0].price), "{cb}");
    assert_eq!(cb["quote"]["ask"].as_f64(), Some(asks[0].price), "{cb}");
    assert_eq!(cb["quote"]["bidSize"].as_f64(), Some(bids[0].qty));
    assert_eq!(cb["quote"]["last"].as_f64(), Some(500.05));
    let book_bids: Vec<f64> =
        cb["orderbook"]["bids"].as_array().unwrap().iter().map(|l| l["price"].as_f64().unwrap()).collect();
    assert_eq!(book_bids, bids.iter().take(10).map(|l| l.price).collect::<Vec<_>>());
    assert_eq!(cb["trades"][0]["tradeId"], 11);
    assert_eq!(cb["trades"][0]["aggressor"], "buy", "the maker sold: the taker bought");
    assert_eq!(v["feeds"][0]["name"], "cb");

    // Resources: `@feed` names the feed; the plain URI is the internal venue's.
    let book = read(&module, &format!("market://{PRODUCT}@cb/book")).await.unwrap();
    assert_eq!(
        (book["venue"].as_str(), book["orderbook"]["asks"][0]["price"].as_f64()),
        (Some("cb"), Some(asks[0].price))
    );
    let internal = read(&module, &format!("market://{PRODUCT}/book")).await.unwrap();
    assert_eq!(internal["venue"], "internal");
    assert_eq!(internal["sequence"], 0, "nothing traded on the internal venue yet: {internal}");
    for bad in
        [format!("market://{PRODUCT}@nope/quote"), format!("market://{PRODUCT}@cb/deltas"), "market://@cb/quote".into()]
    {
        let e = read(&module, &bad).await.unwrap_err();
        assert_eq!(e.code(), plexus_core::ToolError::unknown_resource(&bad).code(), "{bad}: {e}");
    }
    // A symbol only a feed could carry, and one nobody carries.
    let e = market_data(&module, json!({"symbols": ["ETH-USD"]})).await.unwrap_err();
    assert!(e.to_string().contains("BTC-USD@cb"), "{e}");

    // The feed stops: its data stays readable, labelled as not live.
    feed.shutdown_and_wait().await;
    let v = market_data(&module, json!({"symbols": [PRODUCT]})).await.unwrap();
    assert_eq!(
        (v["symbols"][1]["feed"]["status"].as_str(), v["symbols"][1]["feed"]["live"].as_bool()),
        (Some("stopped"), Some(false)),
        "{v}"
    );
    assert_eq!(v["symbols"][1]["quote"]["bid"].as_f64(), Some(bids[0].price));
    let _ = std::fs::remove_file(journal);
}

#[test]
fn feed_settings_are_checked_naming_the_feed() {
    use plexus_trading::settings::TradingSettings;
    let check = |feed: Value| {
        let settings: TradingSettings = serde_json::from_value(json!({"feeds": [feed]})).expect("settings");
        settings.check().map(|_| ()).unwrap_err()
    };
    let base = json!({"name": "b", "style": "binance", "url": "ws://127.0.0.1:1/ws", "symbols": ["BTCUSDT"]});
    assert!(check(base.clone()).contains("feeds `b`: a binance-style feed needs snapshot_url"));
    let mut f = base.clone();
    f["snapshot_url"] = json!("https://api.binance.com");
    assert!(check(f.clone()).contains("snapshot_url"), "{}", check(f));
    f["snapshot_url"] = json!("http://127.0.0.1:2");
    f["style"] = json!("kraken");
    assert!(check(f.clone()).contains("style must be `binance` or `coinbase`, not `kraken`"));
    f["style"] = json!("binance");
    f["url"] = json!("http://127.0.0.1:1");
    assert!(check(f.clone()).contains("ws:// or wss://"), "{}", check(f.clone()));
    f["url"] = json!("ws://127.0.0.1:1");
    f["symbols"] = json!([]);
    assert!(check(f.clone()).contains("no symbols"));
    f["symbols"] = json!(["X"]);
    f["stale_after_ms"] = json!(10_000);
    f["dead_after_ms"] = json!(1_000);
    assert!(check(f.clone()).contains("dead_after must not be shorter than stale_after"));
    f["name"] = json!("internal");
    f["dead_after_ms"] = json!(20_000);
    assert!(check(f).contains("the name `internal` is taken"));
    let two: TradingSettings = serde_json::from_value(json!({"feeds": [
        {"name": "c", "style": "coinbase", "url": "ws://127.0.0.1:1", "symbols": ["BTC-USD"]},
        {"name": "c", "style": "coinbase", "url": "ws://127.0.0.1:2", "symbols": ["ETH-USD"]},
    ]}))
    .unwrap();
    assert!(two.check().map(|_| ()).unwrap_err().contains("the name `c` is taken"));
    let unknown = serde_json::from_value::<TradingSettings>(
        json!({"feeds": [{"name": "c", "style": "coinbase", "url": "ws://x", "symbols": [], "colour": 1}]}),
    );
    assert!(unknown.unwrap_err().to_string().contains("unknown field `colour`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_portfolios_shows_only_the_callers_portfolios_and_every_market() {
    use plexus_core::Module;
    let (module, feed, journal) = module_with_feed("ws://127.0.0.1:9/never");
    let call = |roles: &[&str]| {
        let mut cx = plexus_core::CallContext::detached("t");
        cx.principal = Arc::new(plexus_core::Principal {
            subject: "someone".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..plexus_core::Principal::unauthenticated()
        });
        let module = &module;
        async move { module.call(&cx, "list_portfolios", json!({})).await.unwrap().structured.unwrap() }
    };
    let trader = call(&["trader"]).await;
    assert_eq!(trader["portfolios"], json!(["fund-a-tokyo", "fund-b-global"]), "the demo desk's traders' accounts");
    assert_eq!(trader["symbols"], json!(["7203.T", "6758.T", "AAPL", "BTC-USD"]));
    assert_eq!(trader["feeds"][0]["name"], "cb");
    assert_eq!(trader["feeds"][0]["symbols"], json!([PRODUCT]));
    assert_eq!(call(&["viewer"]).await["portfolios"], json!([]), "no account names a viewer");
    let admin = call(&["admin"]).await["portfolios"].as_array().unwrap().len();
    assert_eq!(admin, 4, "admins may use the simulator's accounts too");
    feed.shutdown_and_wait().await;
    let _ = std::fs::remove_file(journal);
}
