//! Tests of `plexus_trading::surveillance`.

use plexus_trading::surveillance::{
    AlertKind, ComplianceReport, Event, Evidence, LargeBasis, OrderCanceled, OrderPlaced, OrderRef, OrderRejected,
    REPORT_CSV_HEADER, Surveillance, SurveillanceConfig, Trade, TradeRef,
};
use plexus_trading::types::{Price, Qty, Side};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const SYM: u32 = 1;
/// Account 1 of owner 10; account 2 of owner 20; account 3 also of owner 10.
const A: u32 = 1;
const B: u32 = 2;
const A2: u32 = 3;

fn owner(account: u32) -> u32 {
    match account {
        A | A2 => 10,
        other => other * 10,
    }
}

fn placed(ts_ns: u64, order_id: u64, account: u32, side: Side, qty: Qty, price: Price) -> Event {
    Event::Placed(OrderPlaced { ts_ns, order_id, account, symbol: SYM, side, qty, price: Some(price) })
}

fn canceled(ts_ns: u64, order_id: u64, account: u32, canceled_qty: Qty) -> Event {
    Event::Canceled(OrderCanceled { ts_ns, order_id, account, symbol: SYM, canceled_qty })
}

fn trade(ts_ns: u64, (buy_order, buy_account): (u64, u32), (sell_order, sell_account): (u64, u32), qty: Qty) -> Event {
    Event::Trade(Trade {
        ts_ns,
        symbol: SYM,
        price: 10_000,
        qty,
        buy_order,
        sell_order,
        buy_account,
        sell_account,
        buy_owner: owner(buy_account),
        sell_owner: owner(sell_account),
    })
}

fn rejected(ts_ns: u64, account: u32, reason: &str) -> Event {
    Event::Rejected(OrderRejected {
        ts_ns,
        order_id: None,
        account,
        symbol: SYM,
        side: Side::Buy,
        qty: 10,
        price: Some(20_000),
        reason: reason.to_owned(),
    })
}

fn feed(events: impl IntoIterator<Item = Event>) -> Surveillance {
    feed_with(SurveillanceConfig::default(), events)
}

fn feed_with(config: SurveillanceConfig, events: impl IntoIterator<Item = Event>) -> Surveillance {
    let mut s = Surveillance::new(config);
    for e in events {
        s.record(e);
    }
    s
}

/// Account 1's five ordinary buys of 100 at 1..5 s (its median size is 100).
fn history() -> Vec<Event> {
    (1..=5).map(|i| placed(i * S, i, A, Side::Buy, 100, 10_000)).collect()
}

/// Account 1 places a sell of 1 000 (10× its median) at 10 s, buys 100 at
/// 10.5 s through its resting order 1 against account 2, and cancels the sell at 11 s.
fn spoofing_events() -> Vec<Event> {
    let mut e = history();
    e.extend([
        placed(10 * S, 6, A, Side::Sell, 1_000, 10_100),
        placed(10 * S + 500 * MS, 7, B, Side::Sell, 100, 10_000),
        trade(10 * S + 500 * MS, (1, A), (7, B), 100),
        canceled(11 * S, 6, A, 1_000),
    ]);
    e
}

#[test]
fn wash_trades_between_accounts_of_one_owner() {
    let s = feed([
        placed(S, 1, A, Side::Buy, 100, 10_000),
        placed(S, 2, A2, Side::Sell, 100, 10_000),
        trade(S, (1, A), (2, A2), 100),
        // Different owners: not a wash.
        placed(2 * S, 3, B, Side::Sell, 50, 10_000),
        placed(2 * S, 4, A, Side::Buy, 50, 10_000),
        trade(2 * S, (4, A), (3, B), 50),
        // An account trading with itself is a wash too.
        placed(3 * S, 5, B, Side::Buy, 10, 10_000),
        placed(3 * S, 6, B, Side::Sell, 10, 10_000),
        trade(3 * S, (5, B), (6, B), 10),
    ]);
    let alerts = s.alerts(0, 10 * S);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.kind, AlertKind::WashTrade);
    assert_eq!((a.ts_ns, a.accounts.as_slice(), a.symbol), (S, &[A, A2][..], Some(SYM)));
    assert_eq!(a.order_ids, vec![1, 2]);
    assert_eq!(
        a.evidence,
        Evidence::WashTrade {
            owner: 10,
            buy_account: A,
            sell_account: A2,
            buy_order: 1,
            sell_order: 2,
            price: 10_000,
            qty: 100
        }
    );
    assert_eq!(
        a.summary,
        "trade of 100 at 10000 in symbol 1 between buyer account 1 (order 1) and seller account 3 (order 2), both of \
         beneficial owner 10"
    );
    assert_eq!(alerts[1].accounts, vec![B]);
    assert_eq!(alerts[1].order_ids, vec![5, 6]);
    // Outside the range: nothing.
    assert!(s.alerts(4 * S, 10 * S).is_empty());
}

#[test]
fn spoofing_large_order_canceled_while_trading_the_other_side() {
    let s = feed(spoofing_events());
    let alerts = s.alerts(0, 60 * S);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.kind, AlertKind::Spoofing);
    assert_eq!((a.ts_ns, a.accounts.as_slice(), a.symbol), (11 * S, &[A][..], Some(SYM)));
    assert_eq!(a.order_ids, vec![6, 1]);
    assert_eq!(
        a.evidence,
        Evidence::Spoofing {
            side: Side::Sell,
            order: OrderRef {
                order_id: 6,
                price: 10_100,
                qty: 1_000,
                filled_qty: 0,
                placed_ns: 10 * S,
                canceled_ns: 11 * S
            },
            lifetime_ns: S,
            large: LargeBasis::Median { qty: 1_000, median: 100.0, sample: 5, multiple: 10.0, min_multiple: 5.0 },
            opposite_trades: vec![TradeRef {
                ts_ns: 10 * S + 500 * MS,
                order_id: 1,
                side: Side::Buy,
                price: 10_000,
                qty: 100
            }],
        }
    );
    assert_eq!(
        a.summary,
        "account 1 placed sell order 6 for 1000 at 10100 in symbol 1 (10.00x the median order size 100 of the \
         account's 5 earlier orders), canceled it 1000000000 ns later with 0 filled, and made 1 trade(s) for 100 on \
         the other side (order 1 buy 100 at 10000 at 10500000000 ns) within 5000000000 ns"
    );
    // The alert belongs to the range holding the cancel.
    assert!(s.alerts(0, 11 * S).is_empty());
    assert_eq!(s.alerts(11 * S, 11 * S + 1).len(), 1);
}

#[test]
fn spoofing_needs_every_ingredient() {
    // Canceled after 2.5 s: not a quick cancel (the limit is 2 s, inclusive).
    let mut slow = spoofing_events();
    slow[8] = canceled(12 * S + 500 * MS, 6, A, 1_000);
    assert!(feed(slow).alerts(0, 60 * S).is_empty());
    let mut edge = spoofing_events();
    edge[8] = canceled(12 * S, 6, A, 1_000);
    assert_eq!(feed(edge).alerts(0, 60 * S).len(), 1, "a cancel exactly 2 s later is quick");

    // No trade on the other side (account 2 trades with someone else).
    let mut no_trade = spoofing_events();
    no_trade[7] = trade(10 * S + 500 * MS, (8, 4), (7, B), 100);
    assert!(feed(no_trade).alerts(0, 60 * S).is_empty());

    // A trade on the same side does not count.
    let mut same_side = spoofing_events();
    same_side[7] = trade(10 * S + 500 * MS, (9, B), (6, A), 100);
    assert!(feed(same_side).alerts(0, 60 * S).is_empty());

    // 499 is 4.99× the median: not large.
    let mut small = spoofing_events();
    small[5] = placed(10 * S, 6, A, Side::Sell, 499, 10_100);
    assert!(feed(small).alerts(0, 60 * S).is_empty());
    let mut large = spoofing_events();
    large[5] = placed(10 * S, 6, A, Side::Sell, 500, 10_100);
    assert_eq!(feed(large).alerts(0, 60 * S).len(), 1, "5× the median is large");

    // Four earlier orders are too few for a median...
    let few: Vec<Event> = spoofing_events().into_iter().skip(1).collect();
    assert!(feed(few.clone()).alerts(0, 60 * S).is_empty());
    // ...but an absolute threshold still catches it.
    let config = SurveillanceConfig { large_order_qty: Some(1_000), ..SurveillanceConfig::default() };
    let alerts = feed_with(config, few).alerts(0, 60 * S);
    assert_eq!(alerts.len(), 1);
    match &alerts[0].evidence {
        Evidence::Spoofing { large, .. } => assert_eq!(*large, LargeBasis::Threshold { qty: 1_000, threshold: 1_000 }),
        other => panic!("{other:?}"),
    }

    // A trade up to 5 s after the cancel counts; 5 s and 1 ns does not.
    let mut late = spoofing_events();
    late.truncate(7);
    late.push(canceled(11 * S, 6, A, 1_000));
    late.push(trade(16 * S, (1, A), (7, B), 100));
    assert_eq!(feed(late.clone()).alerts(0, 60 * S).len(), 1);
    late.pop();
    late.push(trade(16 * S + 1, (1, A), (7, B), 100));
    assert!(feed(late).alerts(0, 60 * S).is_empty());
}

/// Account 1 layers three sells at 101, 102 and 103 (200, 200 and `third`),
/// buys at 20.3 s and cancels them all by 20.7 s.
fn layering_events(third_qty: Qty, third_price: Price) -> Vec<Event> {
    let mut e = history();
    e.extend([
        placed(20 * S, 10, A, Side::Sell, 200, 10_100),
        placed(20 * S + 100 * MS, 11, A, Side::Sell, 200, 10_200),
        placed(20 * S + 200 * MS, 12, A, Side::Sell, third_qty, third_price),
        placed(20 * S + 300 * MS, 13, B, Side::Sell, 100, 10_000),
        trade(20 * S + 300 * MS, (1, A), (13, B), 100),
        canceled(20 * S + 500 * MS, 10, A, 200),
        canceled(20 * S + 600 * MS, 11, A, 200),
        canceled(20 * S + 700 * MS, 12, A, third_qty),
    ]);
    e
}

#[test]
fn layering_several_levels_canceled_together() {
    let s = feed(layering_events(600, 10_300));
    let alerts = s.alerts(0, 60 * S);
    // One layering alert; order 12 (6× the median on its own) raises no separate spoofing alert.
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.kind, AlertKind::Layering);
    assert_eq!(a.ts_ns, 20 * S + 700 * MS);
    assert_eq!(a.order_ids, vec![10, 11, 12, 1]);
    let Evidence::Layering { side, orders, levels, total_qty, large, opposite_trades } = &a.evidence else {
        panic!("{:?}", a.evidence)
    };
    assert_eq!(*side, Side::Sell);
    assert_eq!(orders.iter().map(|o| o.order_id).collect::<Vec<_>>(), vec![10, 11, 12]);
    assert_eq!(levels, &vec![10_100, 10_200, 10_300]);
    assert_eq!(*total_qty, 1_000);
    assert_eq!(*large, LargeBasis::Median { qty: 1_000, median: 100.0, sample: 5, multiple: 10.0, min_multiple: 5.0 });
    assert_eq!(opposite_trades.len(), 1);
    assert_eq!(
        a.summary,
        "account 1 placed 3 sell orders in symbol 1 at 3 price levels (10100;10200;10300) totalling 1000 (10.00x the \
         median order size 100 of the account's 5 earlier orders), canceled each within 500000000 ns, and made 1 \
         trade(s) for 100 on the other side (order 1 buy 100 at 10000 at 20300000000 ns)"
    );

    // Two levels are not layering, but the large order alone is still spoofing.
    let alerts = feed(layering_events(600, 10_200)).alerts(0, 60 * S);
    assert_eq!(alerts.iter().map(|a| a.kind).collect::<Vec<_>>(), vec![AlertKind::Spoofing]);
    assert_eq!(alerts[0].order_ids, vec![12, 1]);

    // Three levels of ordinary size in total (500 = 5×, the limit, is large; 499 is not).
    assert_eq!(feed(layering_events(100, 10_300)).alerts(0, 60 * S).len(), 1);
    assert!(feed(layering_events(99, 10_300)).alerts(0, 60 * S).is_empty());
}

fn otr_config(limit: f64) -> SurveillanceConfig {
    SurveillanceConfig { otr_window_ns: 10 * S, otr_limit: limit, otr_min_orders: 10, ..SurveillanceConfig::default() }
}

/// Account 5: order 99 at 100.2 s trades at 100.5 s, then orders at 101..=112 s.
fn otr_events() -> Vec<Event> {
    const T: u64 = 100 * S;
    let mut e = vec![
        placed(T + 200 * MS, 99, 5, Side::Buy, 10, 10_000),
        placed(T + 500 * MS, 98, 6, Side::Sell, 10, 10_000),
        trade(T + 500 * MS, (99, 5), (98, 6), 10),
    ];
    e.extend((1..=12).map(|k| placed(T + k * S, 100 + k, 5, Side::Buy, 10, 9_000 + k as Price)));
    e
}

#[test]
fn order_to_trade_ratio_above_the_limit() {
    const T: u64 = 100 * S;
    let s = feed_with(otr_config(5.0), otr_events());
    let alerts = s.alerts(0, 200 * S);
    // At 109 s the window (99 s, 109 s] holds 10 orders and 1 trade: 10 > 5.
    // The breach lasts through 112 s: one alert.
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        (a.kind, a.ts_ns, a.accounts.as_slice(), a.symbol),
        (AlertKind::OrderToTradeRatio, T + 9 * S, &[5][..], None)
    );
    assert_eq!(a.order_ids, vec![109]);
    assert_eq!(
        a.evidence,
        Evidence::OrderToTradeRatio {
            orders: 10,
            trades: 1,
            ratio: 10.0,
            limit: 5.0,
            window_start_ns: T - S,
            window_end_ns: T + 9 * S
        }
    );
    assert_eq!(
        a.summary,
        "account 5 placed 10 orders against 1 trades in the 10000000000 ns up to 109000000000: an order-to-trade ratio \
         of 10.00, above the limit 5"
    );
    // Account 6 (one order, one trade) is fine.
    assert!(!s.order_to_trade(6, T + S).exceeds);

    // A ratio equal to the limit is not above it: with a limit of 10 the breach starts at 110 s (11 / 1).
    let alerts = feed_with(otr_config(10.0), otr_events()).alerts(0, 200 * S);
    assert_eq!(alerts.iter().map(|a| a.ts_ns).collect::<Vec<_>>(), vec![T + 10 * S]);

    // The report range does not change when a breach starts.
    assert!(s.alerts(T + 10 * S, 200 * S).is_empty());
}

#[test]
fn order_to_trade_ratio_before_an_order() {
    const T: u64 = 100 * S;
    // Everything up to the order at 108 s.
    let events: Vec<Event> = otr_events().into_iter().take(3 + 8).collect();
    let s = feed_with(otr_config(5.0), events);
    // One more order at 109 s would make 10 orders against 1 trade.
    let c = s.check_order_to_trade(5, T + 9 * S);
    assert_eq!((c.orders, c.trades, c.ratio, c.limit, c.exceeds), (10, 1, 10.0, 5.0, true));
    // At 108.5 s (the 10th order in the window, still 1 trade) as well; at the 9th it is too early to judge.
    let now = s.order_to_trade(5, T + 8 * S);
    assert_eq!((now.orders, now.exceeds), (9, false));
    // Far later, the window is empty: one order, no trade, not enough to judge.
    let later = s.check_order_to_trade(5, T + 60 * S);
    assert_eq!((later.orders, later.trades, later.exceeds), (1, 0, false));
    assert!(!s.check_order_to_trade(42, T).exceeds);
}

/// Two accounts of different owners quoting and trading normally: orders
/// rest for a while, some trade, some are canceled after 30 s.
fn clean_events() -> Vec<Event> {
    let mut e = Vec::new();
    for i in 0..10u64 {
        let t = i * 10 * S;
        e.push(placed(t, 100 + i, A, Side::Buy, 100, 9_990));
        e.push(placed(t + S, 200 + i, B, Side::Sell, 100, 10_010));
        if i % 2 == 0 {
            e.push(placed(t + 2 * S, 300 + i, B, Side::Sell, 100, 9_990));
            e.push(trade(t + 2 * S, (100 + i, A), (300 + i, B), 100));
            e.push(canceled(t + 8 * S, 200 + i, B, 100));
        } else {
            e.push(canceled(t + 9 * S, 100 + i, A, 100));
            e.push(canceled(t + 9 * S, 200 + i, B, 100));
        }
    }
    e
}

#[test]
fn clean_history_raises_no_alert() {
    let s = feed(clean_events());
    assert!(s.alerts(0, u64::MAX).is_empty());
    let r = s.report(0, 100 * S);
    assert_eq!((r.orders, r.cancels, r.trades, r.fills, r.rejections), (25, 15, 5, 10, 0));
    assert!(r.alerts.is_empty());
    assert!(r.alerts_by_kind.is_empty());
}

#[test]
fn out_of_order_arrival_finds_the_same_alerts() {
    let events = spoofing_events();
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(feed(reversed).alerts(0, 60 * S), feed(events).alerts(0, 60 * S));
}

fn report_events() -> Vec<Event> {
    let mut e = spoofing_events();
    e.extend([
        placed(30 * S, 20, A, Side::Buy, 10, 10_000),
        placed(30 * S, 21, A2, Side::Sell, 10, 10_000),
        trade(30 * S, (20, A), (21, A2), 10),
        rejected(31 * S, A, "price_collar"),
        rejected(32 * S, B, "price_collar"),
        rejected(33 * S, B, "credit_limit"),
        rejected(70 * S, B, "kill_switch"),
        placed(70 * S, 30, B, Side::Buy, 1, 10_000),
    ]);
    e
}

#[test]
fn report_counts_and_alerts() {
    let s = feed(report_events());
    let r: ComplianceReport = s.report(0, 60 * S);
    assert_eq!((r.from_ns, r.to_ns), (0, 60 * S));
    assert_eq!((r.orders, r.cancels, r.trades, r.fills, r.rejections), (9, 1, 2, 4, 3));
    assert_eq!(
        r.rejections_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        vec![("credit_limit", 1), ("price_collar", 2)]
    );
    assert_eq!(r.alerts.iter().map(|a| a.kind).collect::<Vec<_>>(), vec![AlertKind::Spoofing, AlertKind::WashTrade]);
    assert_eq!(
        r.alerts_by_kind.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        vec![("spoofing", 1), ("wash_trade", 1)]
    );
    // The later range sees only what is in it.
    let later = s.report(60 * S, 120 * S);
    assert_eq!((later.orders, later.rejections, later.alerts.len()), (1, 1, 0));
    assert_eq!(later.rejections_by_reason.get("kill_switch"), Some(&1));

    // The structured form.
    let json = serde_json::to_value(&r).expect("serialize");
    assert_eq!(json["rejections_by_reason"]["price_collar"], 2);
    assert_eq!(json["alerts"][0]["kind"], "spoofing");
    assert_eq!(json["alerts"][0]["evidence"]["rule"], "spoofing");
    assert_eq!(json["alerts"][0]["evidence"]["side"], "sell");
    assert_eq!(json["alerts"][0]["evidence"]["large"]["basis"], "median");
    assert_eq!(json["alerts"][0]["evidence"]["opposite_trades"][0]["order_id"], 1);
    assert_eq!(json["alerts"][1]["evidence"]["owner"], 10);
}

/// RFC 4180 records (CRLF line ends, quoted fields with doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "the text ends with a line end");
    rows
}

#[test]
fn report_csv() {
    let mut events = report_events();
    // A reason code with a comma and a quote must survive the round trip.
    events.push(rejected(34 * S, A, "venue said \"no\", twice"));
    let r = feed(events).report(0, 60 * S);
    let csv = r.to_csv();
    assert!(csv.starts_with("record,kind,ts_ns,accounts,symbol,order_ids,count,details\r\n"), "{csv}");
    assert!(csv.contains("\r\nsummary,orders,,,,,9,\r\n"));
    assert!(csv.contains("\r\nrejection,price_collar,,,,,2,\r\n"));
    assert!(csv.contains("\r\nrejection,\"venue said \"\"no\"\", twice\",,,,,1,\r\n"));
    assert!(csv.contains(
        "\r\nalert,wash_trade,30000000000,1;3,1,20;21,,\"trade of 10 at 10000 in symbol 1 between buyer account 1 \
         (order 20) and seller account 3 (order 21), both of beneficial owner 10\"\r\n"
    ));

    let rows = parse_csv(&csv);
    assert_eq!(rows[0], REPORT_CSV_HEADER.to_vec());
    assert!(rows.iter().all(|r| r.len() == REPORT_CSV_HEADER.len()));
    let summary: Vec<(&str, &str)> =
        rows.iter().filter(|r| r[0] == "summary").map(|r| (r[1].as_str(), r[6].as_str())).collect();
    assert_eq!(
        summary,
        vec![
            ("from_ns", "0"),
            ("to_ns", "60000000000"),
            ("orders", "9"),
            ("cancels", "1"),
            ("trades", "2"),
            ("fills", "4"),
            ("rejections", "4"),
            ("alerts", "2"),
        ]
    );
    let rejections: Vec<(&str, &str)> =
        rows.iter().filter(|r| r[0] == "rejection").map(|r| (r[1].as_str(), r[6].as_str())).collect();
    assert_eq!(rejections, vec![("credit_limit", "1"), ("price_collar", "2"), ("venue said \"no\", twice", "1")]);
    let alerts: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "alert").collect();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0][1..6], ["spoofing", "11000000000", "1", "1", "6;1"]);
    assert_eq!(alerts[0][7], r.alerts[0].summary);

    // An empty report is the header and the summary.
    let empty = Surveillance::new(SurveillanceConfig::default()).report(5, 5);
    assert_eq!(parse_csv(&empty.to_csv()).len(), 1 + 8);
}

#[test]
fn prune_forgets_the_past() {
    let mut s = feed(report_events());
    assert_eq!(s.len(), 17);
    s.prune_before(30 * S);
    assert_eq!(s.report(0, 60 * S).orders, 2);
    assert!(s.alerts(0, 30 * S).is_empty());
    assert_eq!(s.alerts(30 * S, 60 * S).len(), 1);
    assert!(!s.is_empty());
}
