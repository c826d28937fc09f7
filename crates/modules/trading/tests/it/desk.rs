//! The desk: orders through risk, compliance and the venue, journaled,
//! answered, and recovered by replay.

use std::path::Path;

use plexus_trading::desk::{
    AccountSpec, Desk, DeskConfig, DeskError, ListedInstrument, OrderRef, OrderRequest, Status,
};
use plexus_trading::journal::{Journal, OpenOptions, Sync};
use plexus_trading::pretrade::{LimitOverrides, PreTradeConfig, RiskLimits};
use plexus_trading::surveillance::SurveillanceConfig;
use plexus_trading::types::{Instrument, OrderType, Side, TimeInForce};

/// Every desk test runs in both durability modes: [`Sync::Always`] has a
/// writer thread, [`Sync::Os`] lets callers take turns as the writer.
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod fsync_thread {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Sync::Always).await;
                }
            )*
        }
        mod os_combining {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Sync::Os).await;
                }
            )*
        }
    };
}

in_both_modes!(
    orders_fill_positions_and_pnl_then_a_restart_rebuilds_everything,
    refusals_carry_reason_codes_and_the_compliance_report_keeps_them_across_a_restart,
    client_order_ids_make_orders_idempotent_across_a_restart_and_cancels_are_scoped,
    the_same_owner_never_trades_with_itself_and_concurrent_callers_share_journal_writes,
    compliance_refuses_orders_over_the_order_to_trade_ratio,
    l2_deltas_applied_to_a_snapshot_follow_the_book_and_survive_a_restart,
    many_callers_at_once_lose_nothing_and_replay_to_the_same_state,
    closing_under_load_answers_every_caller_and_keeps_every_acknowledged_order
);

pub(crate) fn config(journal: &Path) -> DeskConfig {
    config_in(journal, Sync::Always)
}

pub(crate) fn config_in(journal: &Path, sync: Sync) -> DeskConfig {
    let account = |name: &str, owner: &str, role: &str| AccountSpec {
        name: name.into(),
        owner: owner.into(),
        role: role.into(),
        overrides: LimitOverrides::default(),
    };
    let trader = RiskLimits { max_order_qty: 10_000, collar_bps: 1_000, ..RiskLimits::UNLIMITED };
    DeskConfig {
        journal: journal.to_path_buf(),
        sync,
        instruments: vec![ListedInstrument {
            instrument: Instrument { symbol: "7203.T".into(), price_decimals: 1, qty_decimals: 0, tick: 5, lot: 100 },
            reference: Some(30_000),
        }],
        accounts: vec![
            account("alpha", "fund-a", "trader"),
            account("beta", "fund-b", "trader"),
            account("alpha-2", "fund-a", "trader"),
            account("gamma", "fund-c", "trader"),
        ],
        roles: vec![("trader".into(), trader)],
        restricted: vec![],
        pretrade: PreTradeConfig { duplicate_window_ns: 0 },
        // The order-to-trade limit has its own test; here it must not get in the way.
        surveillance: SurveillanceConfig { otr_limit: 1e9, ..SurveillanceConfig::default() },
        max_batch: 64,
    }
}

pub(crate) fn limit(account: &str, side: Side, price: f64, qty: f64) -> OrderRequest {
    OrderRequest {
        account: account.into(),
        client_order_id: None,
        symbol: "7203.T".into(),
        side,
        order_type: OrderType::Limit,
        tif: TimeInForce::Gtc,
        price: Some(price),
        qty,
        post_only: false,
    }
}

fn records(journal: &Path) -> usize {
    Journal::open(journal, Sync::Os).unwrap().1.records.len()
}

async fn orders_fill_positions_and_pnl_then_a_restart_rebuilds_everything(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    let sell = desk.place(limit("beta", Side::Sell, 3000.0, 300.0)).await.unwrap();
    assert_eq!((sell.status, sell.order_id.is_some()), (Status::New, true), "{sell:?}");
    let risk = sell.risk.as_ref().unwrap();
    assert!((risk.notional - 900_000.0).abs() < 1e-6 && risk.collar == Some((2700.0, 3300.0)), "{risk:?}");
    let buy = desk.place(limit("alpha", Side::Buy, 3005.0, 300.0)).await.unwrap();
    assert_eq!(buy.status, Status::Filled);
    assert_eq!((buy.executed_qty, buy.avg_price), (300.0, Some(3000.0)));
    assert_eq!(buy.fills.len(), 1);
    assert_eq!(buy.fills[0].liquidity, "taker");
    // alpha sells 100 back into a new bid at 3010: realized (3010 - 3000) × 100.
    desk.place(limit("gamma", Side::Buy, 3010.0, 100.0)).await.unwrap();
    let out = desk.place(limit("alpha", Side::Sell, 3010.0, 100.0)).await.unwrap();
    assert_eq!(out.status, Status::Filled);
    let alpha = desk.positions("alpha").unwrap();
    assert_eq!(alpha.len(), 1);
    let p = &alpha[0];
    assert_eq!((p.qty, p.avg_price, p.mark), (200.0, 3000.0, Some(3010.0)));
    assert!((p.realized_pnl - 1_000.0).abs() < 1e-9 && (p.unrealized_pnl - 2_000.0).abs() < 1e-9, "{p:?}");
    let beta = desk.positions("beta").unwrap();
    assert_eq!(beta[0].qty, -300.0);
    assert_eq!(desk.positions("gamma").unwrap()[0].qty, 100.0);
    let md = desk.market("7203.T", 5, 10).unwrap();
    assert_eq!((md.bid, md.ask), (None, None));
    assert_eq!((md.last, md.trades.len(), md.volume), (Some(3010.0), 2, 400.0));
    assert_eq!(md.trades[0].price, 3010.0, "most recent first");
    desk.place(limit("beta", Side::Sell, 3050.0, 200.0)).await.unwrap();
    let before = (desk.positions("alpha").unwrap(), desk.positions("beta").unwrap(), desk.open_orders("beta").unwrap());
    assert_eq!(before.2.len(), 1);
    desk.close();
    assert!(matches!(desk.place(limit("alpha", Side::Buy, 3000.0, 100.0)).await, Err(DeskError::Stopped)));

    // After a restart the journal rebuilds the same state.
    let again = Desk::open(config_in(&path, sync)).unwrap();
    let mut after =
        (again.positions("alpha").unwrap(), again.positions("beta").unwrap(), again.open_orders("beta").unwrap());
    // The risk figures an order was placed with are in its placement's answer, not in the journal.
    assert!(after.2[0].risk.is_none());
    after.2[0].risk = before.2[0].risk.clone();
    assert_eq!(before, after);
    let md = again.market("7203.T", 5, 10).unwrap();
    assert_eq!((md.trades.len(), md.ask, md.last), (2, Some((3050.0, 200.0)), Some(3010.0)));
    again.close();
}

async fn refusals_carry_reason_codes_and_the_compliance_report_keeps_them_across_a_restart(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    let cases = [
        (limit("alpha", Side::Buy, 3000.3, 100.0), "off_tick"),
        (limit("alpha", Side::Buy, 3000.0, 150.0), "off_lot"),
        (limit("alpha", Side::Buy, 3000.0, 0.0), "invalid_quantity"),
        (limit("alpha", Side::Buy, f64::NAN, 100.0), "not_a_number"),
        (limit("alpha", Side::Buy, 3000.0, 20_000.0), "max_order_qty"),
        (limit("alpha", Side::Buy, 3500.0, 100.0), "price_collar"),
        (limit("nobody", Side::Buy, 3000.0, 100.0), "unknown_account"),
        (OrderRequest { symbol: "NOPE".into(), ..limit("alpha", Side::Buy, 3000.0, 100.0) }, "unknown_symbol"),
        (OrderRequest { price: None, ..limit("alpha", Side::Buy, 3000.0, 100.0) }, "missing_price"),
    ];
    for (req, code) in cases {
        let r = desk.place(req).await.unwrap();
        assert_eq!(r.status, Status::Rejected);
        assert_eq!(r.reason.as_ref().map(|(c, _)| c.as_str()), Some(code), "{r:?}");
        assert!(r.order_id.is_none());
    }
    // Post-only that would cross: the venue refuses it.
    desk.place(limit("beta", Side::Sell, 3000.0, 100.0)).await.unwrap();
    let po = desk.place(OrderRequest { post_only: true, ..limit("alpha", Side::Buy, 3000.0, 100.0) }).await.unwrap();
    assert_eq!(po.reason.as_ref().map(|(c, _)| c.as_str()), Some("post_only_would_cross"));
    desk.place(limit("alpha", Side::Buy, 2990.0, 100.0)).await.unwrap();
    desk.kill_switch(Some("alpha"), true).unwrap();
    let killed = desk.place(limit("alpha", Side::Buy, 2990.0, 100.0)).await.unwrap();
    assert_eq!(killed.reason.as_ref().map(|(c, _)| c.as_str()), Some("account_kill_switch"));
    let (report, _) = desk.compliance(0, u64::MAX);
    assert_eq!(report.rejections_by_reason.get("off_tick"), Some(&1), "{:?}", report.rejections_by_reason);
    // Unknown accounts and symbols have no account or symbol to report under.
    assert_eq!(report.rejections, 9, "{:?}", report.rejections_by_reason);
    let book = desk.market("7203.T", 5, 10).unwrap();
    desk.close();
    // One instrument listing, two accepted orders and the nine refusals
    // that name an account and a symbol (notes the books ignore).
    assert_eq!(records(&path), 12);
    let again = Desk::open(config_in(&path, sync)).unwrap();
    let (after, _) = again.compliance(0, u64::MAX);
    assert_eq!(after.rejections, report.rejections);
    assert_eq!(after.rejections_by_reason, report.rejections_by_reason);
    let replayed = again.market("7203.T", 5, 10).unwrap();
    assert_eq!((replayed.bid, replayed.ask, replayed.last), (book.bid, book.ask, book.last));
    assert_eq!(again.open_orders("alpha").unwrap().len(), 1);
    again.close();
}

async fn client_order_ids_make_orders_idempotent_across_a_restart_and_cancels_are_scoped(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    let req = OrderRequest { client_order_id: Some("注文-0001".into()), ..limit("alpha", Side::Buy, 2990.0, 100.0) };
    let first = desk.place(req.clone()).await.unwrap();
    let second = desk.place(req.clone()).await.unwrap();
    assert_eq!(first.order_id, second.order_id);
    assert!(!first.repeated && second.repeated);
    // Another account cannot see or cancel it: exactly like a missing order.
    let theirs = desk.cancel("beta", OrderRef::Client("注文-0001".into())).await.unwrap_err();
    let missing = desk.cancel("beta", OrderRef::Id(999)).await.unwrap_err();
    assert!(
        matches!(theirs, DeskError::Unknown { what: "order", .. })
            && matches!(missing, DeskError::Unknown { what: "order", .. })
    );
    desk.close();
    let again = Desk::open(config_in(&path, sync)).unwrap();
    let third = again.place(req).await.unwrap();
    assert_eq!((third.order_id, third.repeated), (first.order_id, true));
    let canceled = again.cancel("alpha", OrderRef::Client("注文-0001".into())).await.unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    // Canceling again answers the same, and journals nothing more.
    let n = {
        again.close();
        records(&path)
    };
    let last = Desk::open(config_in(&path, sync)).unwrap();
    assert_eq!(last.cancel("alpha", OrderRef::Id(first.order_id.unwrap())).await.unwrap().status, Status::Canceled);
    last.close();
    assert_eq!(records(&path), n);
}

async fn the_same_owner_never_trades_with_itself_and_concurrent_callers_share_journal_writes(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    desk.place(limit("alpha", Side::Sell, 3000.0, 100.0)).await.unwrap();
    // alpha-2 has the same beneficial owner: self-trade prevention cancels the newest.
    let own = desk.place(limit("alpha-2", Side::Buy, 3000.0, 100.0)).await.unwrap();
    assert_eq!((own.status, own.executed_qty), (Status::Canceled, 0.0));
    assert_eq!(own.reason.as_ref().map(|(c, _)| c.as_str()), Some("self_trade_prevented"));

    let mut tasks = Vec::new();
    for t in 0..8 {
        let d = desk.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let price = 2900.0 - f64::from((t * 25 + i) % 20) * 5.0;
                let r = d.place(limit("beta", Side::Buy, price, 100.0)).await.unwrap();
                assert_eq!(r.status, Status::New, "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(desk.open_orders("beta").unwrap().len(), 200);
    desk.close();
    // The listing, alpha's order, alpha-2's order and 200 bids.
    assert_eq!(records(&path), 203);
    let opened = Journal::open(&path, OpenOptions::new(Sync::Os).sync).unwrap().1;
    assert_eq!(opened.truncated_bytes, 0);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plexus-desk-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

async fn compliance_refuses_orders_over_the_order_to_trade_ratio(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let mut cfg = config_in(&path, sync);
    cfg.surveillance = SurveillanceConfig::default();
    let limit_ratio = cfg.surveillance.otr_limit;
    let desk = Desk::open(cfg).unwrap();
    let mut refused = None;
    for i in 0..40 {
        let r = desk.place(limit("gamma", Side::Buy, 2900.0 - f64::from(i) * 5.0, 100.0)).await.unwrap();
        if r.status == Status::Rejected {
            refused = Some((i, r));
            break;
        }
    }
    let (i, r) = refused.expect("the ratio limit refuses an order");
    assert_eq!(r.reason.as_ref().map(|(c, _)| c.as_str()), Some("order_to_trade_ratio"));
    assert!(f64::from(i) >= limit_ratio, "{i} orders went through before the refusal");
    let (report, _) = desk.compliance(0, u64::MAX);
    assert_eq!(report.rejections_by_reason.get("order_to_trade_ratio"), Some(&1));
    // Refused before the book, the account never entered breach: no alert, the refusal is the record.
    assert!(report.alerts.is_empty(), "{:?}", report.alerts);
    desk.close();
}

/// A book as price (in tenths) → (qty, orders), bids then asks.
type Levels = [std::collections::BTreeMap<i64, (f64, u32)>; 2];

/// Applies `deltas` (those after `from`) to a book.
fn apply_deltas(book: &mut Levels, deltas: &plexus_trading::desk::BookDeltas, from: u64) {
    for d in deltas.deltas.iter().filter(|d| d.sequence > from) {
        let side = &mut book[usize::from(d.side == Side::Sell)];
        #[allow(clippy::cast_possible_truncation)]
        let key = (d.price * 10.0).round() as i64;
        if d.qty == 0.0 {
            assert!(side.remove(&key).is_some(), "a removal of a level that is not there: {d:?}");
        } else {
            side.insert(key, (d.qty, d.orders));
        }
    }
}

fn snapshot_book(desk: &Desk) -> (Levels, u64) {
    let m = desk.market("7203.T", 1_000, 0).unwrap();
    #[allow(clippy::cast_possible_truncation)]
    let side = |levels: &[(f64, f64, u32)]| levels.iter().map(|l| ((l.0 * 10.0).round() as i64, (l.1, l.2))).collect();
    ([side(&m.bids), side(&m.asks)], m.book_sequence)
}

async fn l2_deltas_applied_to_a_snapshot_follow_the_book_and_survive_a_restart(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    let empty = desk.book_deltas("7203.T", 0).unwrap();
    assert_eq!((empty.sequence, empty.deltas.len(), empty.complete), (0, 0, true));
    assert!(desk.book_deltas("NOPE", 0).is_none());
    // Seeded flow: resting orders on both sides, crossing orders and cancels.
    let mut seed = 42u64;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut resting = Vec::new();
    let mut mid_snapshot = None;
    for i in 0..300 {
        let (account, side) = if next(2) == 0 { ("alpha", Side::Buy) } else { ("beta", Side::Sell) };
        #[allow(clippy::cast_precision_loss)]
        let price = 2950.0 + 5.0 * next(21) as f64;
        #[allow(clippy::cast_precision_loss)]
        let qty = 100.0 * (1 + next(5)) as f64;
        let r = desk.place(limit(account, side, price, qty)).await.unwrap();
        if r.status == Status::New {
            resting.push((account, r.order_id.unwrap()));
        }
        if next(4) == 0 && !resting.is_empty() {
            let (account, id) = resting.swap_remove(usize::try_from(next(resting.len() as u64)).unwrap());
            let _ = desk.cancel(account, OrderRef::Id(id)).await;
        }
        if i == 150 {
            mid_snapshot = Some(snapshot_book(&desk));
        }
    }
    let (mut book, from) = mid_snapshot.unwrap();
    let deltas = desk.book_deltas("7203.T", from).unwrap();
    assert!(deltas.complete && deltas.sequence > from, "{} after {from}", deltas.sequence);
    assert_eq!(deltas.deltas.first().map(|d| d.sequence), Some(from + 1));
    apply_deltas(&mut book, &deltas, from);
    let (now, sequence) = snapshot_book(&desk);
    assert_eq!(sequence, deltas.sequence);
    assert_eq!(book, now, "snapshot at {from} plus deltas != the book at {sequence}");
    assert!(!now[0].is_empty() && !now[1].is_empty(), "the flow left both sides empty: {now:?}");
    // The ring keeps the last 1,000: asking from 0 after more changes than that is incomplete.
    if sequence > 1_000 {
        assert!(!desk.book_deltas("7203.T", 0).unwrap().complete);
    }
    let all = desk.book_deltas("7203.T", 0).unwrap();
    desk.close();
    // Replay rebuilds the same sequence and the same changes.
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    assert_eq!(desk.book_deltas("7203.T", 0).unwrap(), all);
    assert_eq!(snapshot_book(&desk), (now, sequence));
    desk.close();
}

/// The books of record as callers see them (risk figures are in a
/// placement's answer only, not in the journal: left out).
fn books_of_record(desk: &Desk, cids: &[(&'static str, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for account in ["alpha", "beta", "gamma"] {
        out.push(format!("{account} positions {:?}", desk.positions(account).unwrap()));
    }
    for (account, cid) in cids {
        let mut o = desk.order(account, &OrderRef::Client(cid.clone())).unwrap();
        o.risk = None;
        o.repeated = false;
        out.push(format!("{o:?}"));
    }
    out.push(format!("{:?}", desk.market("7203.T", 1_000, 1_000).unwrap()));
    out
}

async fn many_callers_at_once_lose_nothing_and_replay_to_the_same_state(sync: Sync) {
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    // Eight callers, 200 orders each, on three accounts of different
    // owners, buying and selling around one price: they cross and fill.
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let d = desk.clone();
        tasks.push(tokio::spawn(async move {
            let account = ["alpha", "beta", "gamma"][t as usize % 3];
            let mut mine = Vec::new();
            for i in 0..200u32 {
                let side = if (t + i) % 2 == 0 { Side::Buy } else { Side::Sell };
                let price = 2990.0 + f64::from((t * 7 + i * 3) % 5) * 5.0;
                let cid = format!("c{t}-{i}");
                let req = OrderRequest { client_order_id: Some(cid.clone()), ..limit(account, side, price, 100.0) };
                let r = d.place(req).await.unwrap();
                assert!(r.order_id.is_some() && !r.repeated, "{r:?}");
                mine.push((account, cid, r.order_id.unwrap()));
            }
            mine
        }));
    }
    let mut placed = Vec::new();
    for t in tasks {
        placed.extend(t.await.unwrap());
    }
    let mut ids: Vec<_> = placed.iter().map(|p| p.2).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_600, "every order got its own id");
    let cids: Vec<(&'static str, String)> = placed.into_iter().map(|(a, c, _)| (a, c)).collect();
    let live = books_of_record(&desk, &cids);
    // Fills are matched: what was bought was sold.
    let net: f64 = ["alpha", "beta", "gamma"].iter().flat_map(|a| desk.positions(a).unwrap()).map(|p| p.qty).sum();
    assert!(net.abs() < 1e-9, "positions net to {net}");
    assert!(desk.market("7203.T", 1, 1).unwrap().volume > 0.0, "the flow traded");
    desk.close();
    let again = Desk::open(config_in(&path, sync)).unwrap();
    let replayed = books_of_record(&again, &cids);
    assert_eq!(live.len(), replayed.len());
    for (l, r) in live.iter().zip(&replayed) {
        assert_eq!(l, r, "live and replayed differ");
    }
    again.close();
}

async fn closing_under_load_answers_every_caller_and_keeps_every_acknowledged_order(sync: Sync) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempdir();
    let path = dir.join("trading.journal");
    let desk = Desk::open(config_in(&path, sync)).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let (d, acked) = (desk.clone(), Arc::clone(&acked));
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0.. {
                let cid = format!("k{t}-{i}");
                let price = 2900.0 - f64::from(i % 20) * 5.0;
                let req = OrderRequest { client_order_id: Some(cid.clone()), ..limit("beta", Side::Buy, price, 100.0) };
                match d.place(req).await {
                    Ok(r) => {
                        assert_eq!(r.status, Status::New, "{r:?}");
                        mine.push(cid);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(DeskError::Stopped) => return mine,
                    Err(e) => panic!("an order failed with {e}"),
                }
            }
            mine
        }));
    }
    while acked.load(Ordering::Relaxed) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let d = desk.clone();
    tokio::task::spawn_blocking(move || d.close()).await.unwrap();
    let mut kept = Vec::new();
    for t in tasks {
        // A caller left waiting would hang here: the bound only turns a hang into a failure.
        let mine = tokio::time::timeout(std::time::Duration::from_secs(30), t).await.expect("a caller hangs").unwrap();
        kept.extend(mine);
    }
    assert!(kept.len() >= 300, "{}", kept.len());
    assert!(matches!(desk.place(limit("beta", Side::Buy, 2900.0, 100.0)).await, Err(DeskError::Stopped)));
    // Every acknowledged order is in the journal, and nothing else is.
    let again = Desk::open(config_in(&path, sync)).unwrap();
    assert_eq!(again.open_orders("beta").unwrap().len(), kept.len());
    for cid in &kept {
        let o = again.order("beta", &OrderRef::Client(cid.clone())).unwrap();
        assert_eq!(o.status, Status::New);
    }
    again.close();
}
