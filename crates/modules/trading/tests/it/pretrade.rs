//! Tests of `plexus_trading::pretrade`.

use plexus_trading::pretrade::{
    LimitOverrides, NOTIONAL_ONE, OrderIntent, PreTradeConfig, PreTradeError, PreTradeRisk, RejectReason, Rejection,
    RiskLimits, Scope, notional_from_whole,
};
use plexus_trading::types::{Instrument, Price, Qty, Side};
use proptest::prelude::*;

const AAPL: u32 = 1;
const BTC: u32 = 2;
const TRADER: u32 = 7;
const OVERRIDDEN: u32 = 8;
const DESK: u32 = 9;
const SECOND: u64 = 1_000_000_000;

fn instrument(symbol: &str, price_decimals: u8, qty_decimals: u8) -> Instrument {
    Instrument { symbol: symbol.to_owned(), price_decimals, qty_decimals, tick: 1, lot: 1 }
}

fn trader_limits() -> RiskLimits {
    RiskLimits {
        max_order_qty: 1_000,
        max_order_notional: notional_from_whole(100_000),
        collar_bps: 500,
        credit_limit: notional_from_whole(500_000),
        max_position: 2_000,
    }
}

/// AAPL (cents, whole shares) with a reference of 100.00; BTC (cents, satoshis)
/// without one; a "trader" role for accounts 7 and 8 (8 with a smaller
/// order size) and a "desk" role for 9.
fn risk() -> PreTradeRisk {
    let mut r = PreTradeRisk::new(PreTradeConfig::default());
    r.add_instrument(AAPL, &instrument("AAPL", 2, 0));
    r.add_instrument(BTC, &instrument("BTC-USD", 2, 8));
    r.set_reference_price(AAPL, Some(10_000)).expect("reference");
    r.set_role_limits("trader", trader_limits());
    r.set_role_limits("desk", RiskLimits { collar_bps: 1_000, ..RiskLimits::UNLIMITED });
    r.set_account_role(TRADER, "trader").expect("role");
    r.set_account_role(OVERRIDDEN, "trader").expect("role");
    r.set_account_role(DESK, "desk").expect("role");
    r.set_account_overrides(OVERRIDDEN, LimitOverrides { max_order_qty: Some(50), ..LimitOverrides::default() })
        .expect("overrides");
    r
}

fn order(account: u32, side: Side, qty: Qty, price: Option<Price>, ts_ns: u64) -> OrderIntent {
    OrderIntent { account, symbol: AAPL, side, qty, limit_price: price, ts_ns }
}

fn buy(qty: Qty, price: Price, ts_ns: u64) -> OrderIntent {
    order(TRADER, Side::Buy, qty, Some(price), ts_ns)
}

fn reject(r: &PreTradeRisk, o: &OrderIntent) -> Rejection {
    match r.check(o) {
        Ok(m) => panic!("expected a rejection of {o:?}, got {m:?}"),
        Err(e) => e,
    }
}

fn code(r: &PreTradeRisk, o: &OrderIntent) -> &'static str {
    reject(r, o).reason.as_str()
}

#[test]
fn reason_codes_are_stable() {
    let codes: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        codes,
        [
            "global_kill_switch",
            "unknown_account",
            "account_kill_switch",
            "unknown_instrument",
            "invalid_order",
            "restricted_symbol",
            "max_order_qty",
            "no_reference_price",
            "price_collar",
            "max_order_notional",
            "duplicate_order",
            "position_limit",
            "credit_limit",
        ]
    );
    assert_eq!(RejectReason::PriceCollar.to_string(), "price_collar");
}

#[test]
fn max_order_qty_at_and_above_the_limit() {
    let r = risk();
    // 1 000 × 96.00 = 96 000: under the notional limit too.
    assert!(r.check(&buy(1_000, 9_600, 0)).is_ok());
    let e = reject(&r, &buy(1_001, 9_600, 0));
    assert_eq!(e.reason, RejectReason::MaxOrderQty);
    assert_eq!(e.message, "order quantity 1001 is above the maximum order quantity 1000");
    assert_eq!(e.to_string(), "max_order_qty: order quantity 1001 is above the maximum order quantity 1000");
}

#[test]
fn max_order_notional_at_and_above_the_limit() {
    let r = risk();
    // 1 000 × 100.00 = 100 000 exactly: allowed.
    let m = r.check(&buy(1_000, 10_000, 0)).expect("at the limit");
    assert_eq!(m.notional, notional_from_whole(100_000));
    // 1 000 × 100.01 = 100 010.
    let e = reject(&r, &buy(1_000, 10_001, 0));
    assert_eq!(e.reason, RejectReason::MaxOrderNotional);
    assert_eq!(e.message, "order notional 100010 (1000 at 100.01) is above the maximum order notional 100000");
}

#[test]
fn price_collar_band_edges() {
    let r = risk();
    // Reference 100.00, 500 bps: [95.00, 105.00], edges included.
    for p in [9_500, 10_500, 10_000] {
        let m = r.check(&buy(10, p, 0)).expect("inside the band");
        assert_eq!(m.collar, Some((9_500, 10_500)));
        assert_eq!(m.reference_price, Some(10_000));
    }
    let e = reject(&r, &buy(10, 10_501, 0));
    assert_eq!(e.reason, RejectReason::PriceCollar);
    assert_eq!(
        e.message,
        "limit price 105.01 is 501 bps from the reference price 100.00, outside the collar of 500 bps [95.00, 105.00]"
    );
    assert_eq!(code(&r, &order(TRADER, Side::Sell, 10, Some(9_499), 0)), "price_collar");
    // A fat finger: 1 000.00 for a 100.00 stock.
    let e = reject(&r, &buy(1, 100_000, 0));
    assert!(e.message.starts_with("limit price 1000.00 is 90000 bps from the reference price 100.00"), "{e}");
    // The desk's collar is 10 %.
    assert!(r.check(&order(DESK, Side::Buy, 10, Some(11_000), 0)).is_ok());
    assert_eq!(code(&r, &order(DESK, Side::Buy, 10, Some(11_001), 0)), "price_collar");
}

#[test]
fn market_orders_need_a_reference_price() {
    let mut r = risk();
    // Valued at the reference: 1 000 × 100.00 = 100 000, at the notional limit.
    let m = r.check(&order(TRADER, Side::Buy, 1_000, None, 0)).expect("market order");
    assert_eq!(m.price_used, 10_000);
    assert_eq!(m.notional, notional_from_whole(100_000));
    assert_eq!(m.collar, None);
    r.set_reference_price(AAPL, Some(10_001)).expect("reference");
    let e = reject(&r, &order(TRADER, Side::Buy, 1_000, None, 0));
    assert_eq!(e.reason, RejectReason::MaxOrderNotional);
    assert_eq!(
        e.message,
        "order notional 100010 (1000 at 100.01, the reference price) is above the maximum order notional 100000"
    );
    r.set_reference_price(AAPL, None).expect("clear");
    let e = reject(&r, &order(TRADER, Side::Sell, 1, None, 0));
    assert_eq!(e.reason, RejectReason::NoReferencePrice);
    assert_eq!(e.message, "a market order needs a reference price and symbol 1 has none");
    // A limit order without a reference cannot be collared: refused while a collar is configured...
    assert_eq!(
        reject(&r, &buy(1, 10_000, 0)).message,
        "the price collar of 500 bps needs a reference price and symbol 1 has none"
    );
    // ...and accepted where the collar is off.
    r.set_account_overrides(TRADER, LimitOverrides { collar_bps: Some(RiskLimits::NO_COLLAR), ..Default::default() })
        .expect("overrides");
    let m = r.check(&buy(1, 10_000, 0)).expect("no collar");
    assert_eq!(m.collar, None);
    assert_eq!(r.set_reference_price(AAPL, Some(0)), Err(PreTradeError::Invalid { what: "reference price", value: 0 }));
    assert_eq!(r.set_reference_price(99, Some(1)), Err(PreTradeError::UnknownInstrument(99)));
}

#[test]
fn notional_uses_the_instruments_decimals() {
    let mut r = risk();
    r.set_account_overrides(TRADER, LimitOverrides { max_order_qty: Some(Qty::MAX), ..Default::default() })
        .expect("overrides");
    // 0.5 BTC at 60 000.00 = 30 000; BTC has no reference and the trader has a collar: refused...
    let o = OrderIntent {
        account: TRADER,
        symbol: BTC,
        side: Side::Buy,
        qty: 50_000_000,
        limit_price: Some(6_000_000),
        ts_ns: 0,
    };
    assert_eq!(code(&r, &o), "no_reference_price");
    r.set_reference_price(BTC, Some(6_000_000)).expect("reference");
    r.set_position_limit(TRADER, BTC, Some(100_000_000)).expect("limit");
    let m = r.check(&o).expect("half a bitcoin");
    assert_eq!(m.notional, notional_from_whole(30_000));
    // 2 BTC = 120 000 > 100 000; quantities print with 8 decimals.
    let e = reject(&r, &OrderIntent { qty: 200_000_000, ..o });
    assert_eq!(e.message, "order notional 120000 (2.00000000 at 60000.00) is above the maximum order notional 100000");
}

#[test]
fn position_limit_per_side_counts_open_orders() {
    let mut r = risk();
    r.set_position(TRADER, AAPL, 1_500, 10_000).expect("position");
    // 1 500 + 500 = 2 000: at the limit.
    let m = r.check(&buy(500, 10_000, 0)).expect("at the limit");
    assert_eq!((m.position, m.projected_position, m.position_limit), (1_500, 2_000, 2_000));
    let e = reject(&r, &buy(501, 10_000, 0));
    assert_eq!(e.reason, RejectReason::PositionLimit);
    assert_eq!(
        e.message,
        "buy would take the position in symbol 1 to 2001 (position 1500 + open buys 0 + this order 501), \
         beyond the position limit of 2000 per side"
    );
    // An open buy counts: 1 500 + 300 open + 201 = 2 001.
    r.submit(1, &buy(300, 10_000, 0)).expect("open buy");
    assert_eq!(code(&r, &buy(201, 10_000, SECOND)), "position_limit");
    assert!(r.check(&buy(200, 10_000, SECOND)).is_ok());
    // Sells are checked against the short side: 1 500 − 1 000 − 1 000 − 1 000 = −1 500 …
    let sell = |qty, ts| order(TRADER, Side::Sell, qty, Some(10_000), ts);
    r.submit(2, &sell(1_000, 0)).expect("sell");
    r.submit(3, &sell(1_000, SECOND)).expect("sell");
    let m = r.submit(4, &sell(1_000, 2 * SECOND)).expect("sell");
    assert_eq!(m.projected_position, -1_500);
    // … − 500 = −2 000 is at the short limit, − 501 beyond it.
    assert!(r.check(&sell(500, 3 * SECOND)).is_ok());
    let e = reject(&r, &sell(501, 3 * SECOND));
    assert_eq!(
        e.message,
        "sell would take the position in symbol 1 to -2001 (position 1500 - open sells 3000 - this order 501), \
         beyond the position limit of 2000 per side"
    );
    // A per-symbol limit for the account replaces the role's.
    r.set_position_limit(TRADER, AAPL, Some(1_700)).expect("limit");
    assert_eq!(code(&r, &buy(1, 10_000, 5 * SECOND)), "position_limit");
    r.set_position_limit(TRADER, AAPL, None).expect("limit");
    assert!(r.check(&buy(1, 10_000, 5 * SECOND)).is_ok());
}

#[test]
fn credit_limit_counts_open_orders_and_long_exposure_for_buys() {
    let mut r = risk();
    r.set_account_overrides(TRADER, LimitOverrides { max_position: Some(Qty::MAX), ..Default::default() })
        .expect("overrides");
    // Four open buys of 1 000 × 100.00: 400 000 of the 500 000.
    for (id, ts) in [(1, 0), (2, SECOND), (3, 2 * SECOND), (4, 3 * SECOND)] {
        r.submit(id, &buy(1_000, 10_000, ts)).expect("buy");
    }
    let m = r.submit(5, &buy(1_000, 10_000, 4 * SECOND)).expect("exactly at the limit");
    assert_eq!(m.open_notional, notional_from_whole(400_000));
    assert_eq!(m.credit_used, notional_from_whole(500_000));
    assert_eq!(m.credit_limit, notional_from_whole(500_000));
    let e = reject(&r, &buy(1, 10_000, 5 * SECOND));
    assert_eq!(e.reason, RejectReason::CreditLimit);
    assert_eq!(
        e.message,
        "credit used would be 500100 (open orders 500000 + this order 100 + long positions 0), above the credit \
         limit 500000"
    );
    // Order 1 fills at 99.00: its reserved 100 000 is released and the
    // 1 000 long is marked at the reference 100.00; a buy still sees 500 000 used.
    r.on_fill(1, 1_000, 9_900).expect("fill");
    let x = r.exposure(TRADER).expect("exposure");
    assert_eq!((x.open_notional, x.long_exposure), (notional_from_whole(400_000), notional_from_whole(100_000)));
    assert_eq!(
        reject(&r, &buy(1, 10_000, 5 * SECOND)).message,
        "credit used would be 500100 (open orders 400000 + this order 100 + long positions 100000), above the \
         credit limit 500000"
    );
    // A sell does not add the long exposure: 400 000 open + 100 000 = 500 000, at the limit.
    let m = r.check(&order(TRADER, Side::Sell, 1_000, Some(10_000), 5 * SECOND)).expect("a sell at the limit");
    assert_eq!((m.long_exposure, m.credit_used), (0, notional_from_whole(500_000)));
    // A higher reference price marks the long position up.
    r.set_reference_price(AAPL, Some(10_400)).expect("reference");
    assert_eq!(r.exposure(TRADER).expect("exposure").long_exposure, notional_from_whole(104_000));
    // Cancels release the rest.
    for id in [2, 3, 4, 5] {
        assert_eq!(r.on_cancel(id), Ok(1_000));
    }
    let x = r.exposure(TRADER).expect("exposure");
    assert_eq!((x.open_notional, x.credit_limit), (0, notional_from_whole(500_000)));
    assert!(r.check(&buy(1_000, 10_000, 5 * SECOND)).is_ok());
}

#[test]
fn duplicate_window_and_its_expiry() {
    let mut r = risk();
    r.submit(1, &buy(10, 10_000, 5 * SECOND)).expect("first");
    // Same account, symbol, side, quantity and price, 0.999999999 s later: a duplicate.
    let e = reject(&r, &buy(10, 10_000, 6 * SECOND - 1));
    assert_eq!(e.reason, RejectReason::DuplicateOrder);
    assert_eq!(
        e.message,
        "duplicate of an order accepted 999999999 ns earlier with the same symbol, side, quantity and price \
         (duplicate window 1000000000 ns)"
    );
    // Exactly one window later it is not.
    assert!(r.check(&buy(10, 10_000, 6 * SECOND)).is_ok());
    // Anything different is not a duplicate.
    assert!(r.check(&buy(11, 10_000, 5 * SECOND)).is_ok());
    assert!(r.check(&buy(10, 10_001, 5 * SECOND)).is_ok());
    assert!(r.check(&order(TRADER, Side::Sell, 10, Some(10_000), 5 * SECOND)).is_ok());
    assert!(r.check(&order(OVERRIDDEN, Side::Buy, 10, Some(10_000), 5 * SECOND)).is_ok());
    assert!(r.check(&order(TRADER, Side::Buy, 10, None, 5 * SECOND)).is_ok());
    // A rejected check is not remembered: a duplicate is still a duplicate of the first.
    assert!(r.check(&buy(10, 10_000, 5 * SECOND + 10)).is_err());
    // Canceling does not make a resend less of a duplicate.
    r.on_cancel(1).expect("cancel");
    assert_eq!(code(&r, &buy(10, 10_000, 5 * SECOND + 1)), "duplicate_order");
    // Turned off.
    let mut off = PreTradeRisk::new(PreTradeConfig { duplicate_window_ns: 0 });
    off.add_instrument(AAPL, &instrument("AAPL", 2, 0));
    off.set_role_limits("any", RiskLimits::UNLIMITED);
    off.set_account_role(TRADER, "any").expect("role");
    off.submit(1, &buy(10, 10_000, 0)).expect("first");
    off.submit(2, &buy(10, 10_000, 0)).expect("identical, no window");
}

#[test]
fn restricted_lists_global_and_per_account() {
    let mut r = risk();
    r.set_restricted(Scope::Account(TRADER), AAPL, true).expect("restrict");
    let e = reject(&r, &buy(1, 10_000, 0));
    assert_eq!(e.reason, RejectReason::RestrictedSymbol);
    assert_eq!(e.message, "symbol 1 is on the restricted list of account 7");
    assert!(r.check(&order(DESK, Side::Buy, 1, Some(10_000), 0)).is_ok());
    r.set_restricted(Scope::Global, AAPL, true).expect("restrict");
    assert_eq!(
        reject(&r, &order(DESK, Side::Sell, 1, None, 0)).message,
        "symbol 1 is on the restricted list for all accounts"
    );
    r.set_restricted(Scope::Global, AAPL, false).expect("lift");
    r.set_restricted(Scope::Account(TRADER), AAPL, false).expect("lift");
    assert!(r.check(&buy(1, 10_000, 0)).is_ok());
    assert_eq!(r.set_restricted(Scope::Account(404), AAPL, true), Err(PreTradeError::UnknownAccount(404)));
}

#[test]
fn kill_switches() {
    let mut r = risk();
    r.set_kill_switch(Scope::Account(TRADER), true).expect("kill");
    assert!(r.kill_switch(Scope::Account(TRADER)));
    let e = reject(&r, &buy(1, 10_000, 0));
    assert_eq!(e.reason, RejectReason::AccountKillSwitch);
    assert_eq!(e.message, "trading is halted for account 7 by its kill switch");
    assert!(r.check(&order(DESK, Side::Buy, 1, Some(10_000), 0)).is_ok());
    r.set_kill_switch(Scope::Global, true).expect("kill all");
    assert_eq!(code(&r, &order(DESK, Side::Buy, 1, Some(10_000), 0)), "global_kill_switch");
    // The global switch is checked first, even for unknown accounts.
    assert_eq!(code(&r, &order(404, Side::Buy, 1, Some(10_000), 0)), "global_kill_switch");
    r.set_kill_switch(Scope::Global, false).expect("resume");
    assert!(r.check(&order(DESK, Side::Buy, 1, Some(10_000), 0)).is_ok());
    assert_eq!(code(&r, &buy(1, 10_000, 0)), "account_kill_switch");
    r.set_kill_switch(Scope::Account(TRADER), false).expect("resume");
    assert!(r.check(&buy(1, 10_000, 0)).is_ok());
    assert_eq!(r.set_kill_switch(Scope::Account(404), true), Err(PreTradeError::UnknownAccount(404)));
}

#[test]
fn role_defaults_and_account_overrides() {
    let mut r = risk();
    // Account 8 has the trader role with max_order_qty overridden to 50.
    assert_eq!(r.effective_limits(OVERRIDDEN).map(|l| l.max_order_qty), Some(50));
    assert_eq!(r.effective_limits(OVERRIDDEN).map(|l| l.collar_bps), Some(500));
    assert!(r.check(&order(OVERRIDDEN, Side::Buy, 50, Some(10_000), 0)).is_ok());
    assert_eq!(
        reject(&r, &order(OVERRIDDEN, Side::Buy, 51, Some(10_000), 0)).message,
        "order quantity 51 is above the maximum order quantity 50"
    );
    assert!(r.check(&buy(51, 10_000, 0)).is_ok());
    // Changing the role's defaults reaches every account with the role, overrides kept.
    r.set_role_limits("trader", RiskLimits { max_order_qty: 40, collar_bps: 100, ..trader_limits() });
    assert_eq!(code(&r, &buy(41, 10_000, 0)), "max_order_qty");
    assert_eq!(r.effective_limits(OVERRIDDEN).map(|l| (l.max_order_qty, l.collar_bps)), Some((50, 100)));
    // Moving an account to another role.
    r.set_account_role(TRADER, "desk").expect("role");
    assert!(r.check(&buy(5_000, 10_000, 0)).is_ok());
    assert_eq!(r.set_account_role(TRADER, "nobody"), Err(PreTradeError::UnknownRole("nobody".to_owned())));
    assert_eq!(r.set_account_overrides(404, LimitOverrides::default()), Err(PreTradeError::UnknownAccount(404)));
}

#[test]
fn unknown_and_invalid_orders() {
    let r = risk();
    let e = reject(&r, &order(404, Side::Buy, 1, Some(10_000), 0));
    assert_eq!(
        (e.reason, e.message.as_str()),
        (RejectReason::UnknownAccount, "account 404 has no risk limits configured")
    );
    let o = OrderIntent { symbol: 99, ..buy(1, 10_000, 0) };
    assert_eq!(reject(&r, &o).message, "symbol 99 is not configured for pre-trade risk");
    assert_eq!(reject(&r, &buy(0, 10_000, 0)).reason, RejectReason::InvalidOrder);
    assert_eq!(
        reject(&r, &buy(1, 0, 0)).message,
        "limit price 0.00 is not between one unit and the maximum 90071992547409.92"
    );
    assert_eq!(reject(&r, &buy(1, -5, 0)).reason, RejectReason::InvalidOrder);
    assert_eq!(reject(&r, &buy(Qty::MAX, 10_000, 0)).reason, RejectReason::InvalidOrder);
}

#[test]
fn metrics_of_an_accepted_order() {
    let mut r = risk();
    r.set_position(TRADER, AAPL, 200, 9_000).expect("position");
    r.submit(1, &order(TRADER, Side::Sell, 50, Some(10_100), 0)).expect("sell");
    let m = r.check(&buy(100, 10_200, 0)).expect("buy");
    assert_eq!(m.limits, trader_limits());
    assert_eq!(m.price_used, 10_200);
    assert_eq!(m.reference_price, Some(10_000));
    assert_eq!(m.collar, Some((9_500, 10_500)));
    assert_eq!(m.notional, notional_from_whole(10_200));
    assert_eq!((m.position, m.projected_position, m.position_limit), (200, 300, 2_000));
    assert_eq!(m.open_notional, notional_from_whole(5_050));
    // The 200 long marked at the reference 100.00.
    assert_eq!(m.long_exposure, notional_from_whole(20_000));
    assert_eq!(m.credit_used, notional_from_whole(5_050 + 10_200 + 20_000));
    assert_eq!(m.credit_limit, notional_from_whole(500_000));
}

#[test]
fn fills_and_cancels_update_state() {
    let mut r = risk();
    r.submit(1, &buy(100, 10_000, 0)).expect("buy");
    assert_eq!(r.open_qty(TRADER, AAPL, Side::Buy), 100);
    assert_eq!(r.exposure(TRADER).map(|x| x.open_notional), Some(notional_from_whole(10_000)));
    assert_eq!(r.open_orders(), 1);
    // A partial fill at 99.00.
    r.on_fill(1, 40, 9_900).expect("fill");
    assert_eq!(r.position(TRADER, AAPL), 40);
    assert_eq!(r.open_qty(TRADER, AAPL, Side::Buy), 60);
    assert_eq!(r.exposure(TRADER).map(|x| x.open_notional), Some(notional_from_whole(6_000)));
    assert_eq!(r.on_fill(1, 61, 9_900), Err(PreTradeError::Overfill { order_id: 1, open: 60, fill: 61 }));
    assert_eq!(r.on_fill(1, 0, 9_900), Err(PreTradeError::Invalid { what: "fill quantity", value: 0 }));
    assert_eq!(r.on_fill(1, 1, 0), Err(PreTradeError::Invalid { what: "fill price", value: 0 }));
    // The rest canceled.
    assert_eq!(r.on_cancel(1), Ok(60));
    assert_eq!(r.open_qty(TRADER, AAPL, Side::Buy), 0);
    assert_eq!(r.exposure(TRADER).map(|x| x.open_notional), Some(0));
    assert_eq!(r.position(TRADER, AAPL), 40);
    assert_eq!(r.open_orders(), 0);
    assert_eq!(r.on_cancel(1), Err(PreTradeError::UnknownOrder(1)));
    assert_eq!(r.on_fill(1, 1, 9_900), Err(PreTradeError::UnknownOrder(1)));

    // A sell fills completely and closes; the position goes short.
    r.submit(2, &order(TRADER, Side::Sell, 100, Some(10_000), 0)).expect("sell");
    r.on_fill(2, 100, 10_050).expect("fill");
    assert_eq!(r.position(TRADER, AAPL), -60);
    assert_eq!(r.open_orders(), 0);
    assert_eq!(r.open_qty(TRADER, AAPL, Side::Sell), 0);

    // A market order reserves at the reference price; the venue's acceptance path.
    let mkt = order(TRADER, Side::Buy, 10, None, 0);
    let m = r.check(&mkt).expect("market");
    r.on_accepted(3, &mkt, &m).expect("accepted");
    assert_eq!(r.on_accepted(3, &mkt, &m), Err(PreTradeError::DuplicateOrderId(3)));
    assert_eq!(r.exposure(TRADER).map(|x| x.open_notional), Some(notional_from_whole(1_000)));
    r.on_fill(3, 4, 10_100).expect("fill");
    assert_eq!(r.exposure(TRADER).map(|x| x.open_notional), Some(notional_from_whole(600)));
    assert_eq!(r.on_cancel(3), Ok(6));
    assert_eq!(r.position(TRADER, AAPL), -56);
    // The same id twice through submit is refused without a state change.
    r.submit(4, &buy(1, 10_000, 10 * SECOND)).expect("buy");
    let before = r.clone();
    assert_eq!(r.submit(4, &buy(2, 10_000, 10 * SECOND)).map_err(|e| e.reason), Err(RejectReason::InvalidOrder));
    assert_eq!(r, before);
}

#[derive(Debug, Clone)]
enum Op {
    Submit { account: u32, sell: bool, qty: Qty, price: Option<Price>, dt: u64 },
    Fill { pick: usize, qty: Qty, price: Price },
    Cancel { pick: usize },
    Reference(Price),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop_oneof![Just(TRADER), Just(OVERRIDDEN), Just(DESK), Just(404)], any::<bool>(), 0..1_500u64,
              prop_oneof![Just(None), (9_000..11_200i64).prop_map(Some)], 0..2 * SECOND)
            .prop_map(|(account, sell, qty, price, dt)| Op::Submit { account, sell, qty, price, dt }),
        2 => (any::<usize>(), 1..200u64, 9_000..11_000i64).prop_map(|(pick, qty, price)| Op::Fill { pick, qty, price }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (9_500..10_500i64).prop_map(Op::Reference),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A rejected submission changes no state; accepted ones, fills and
    /// cancels keep open quantities and notional consistent, so canceling
    /// everything brings them back to zero.
    #[test]
    fn rejections_change_nothing(ops in prop::collection::vec(op(), 1..80)) {
        let mut r = risk();
        let mut open: Vec<(u64, Qty)> = Vec::new();
        let mut next_id = 1;
        let mut ts = 0;
        for op in ops {
            match op {
                Op::Submit { account, sell, qty, price, dt } => {
                    ts += dt;
                    let side = if sell { Side::Sell } else { Side::Buy };
                    let o = order(account, side, qty, price, ts);
                    let before = r.clone();
                    match r.submit(next_id, &o) {
                        Ok(m) => {
                            prop_assert!(m.credit_used <= m.credit_limit);
                            prop_assert!(m.notional <= m.limits.max_order_notional);
                            open.push((next_id, qty));
                            next_id += 1;
                        }
                        Err(e) => {
                            prop_assert_eq!(&r, &before, "rejected with {} but the state changed", e);
                            prop_assert!(!e.message.is_empty());
                        }
                    }
                }
                Op::Fill { pick, qty, price } => {
                    if open.is_empty() { continue; }
                    let i = pick % open.len();
                    let (id, left) = open[i];
                    let q = qty.min(left);
                    r.on_fill(id, q, price).expect("fill within the open quantity");
                    if q == left { open.swap_remove(i); } else { open[i].1 -= q; }
                }
                Op::Cancel { pick } => {
                    if open.is_empty() { continue; }
                    let (id, left) = open.swap_remove(pick % open.len());
                    prop_assert_eq!(r.on_cancel(id), Ok(left));
                }
                Op::Reference(p) => r.set_reference_price(AAPL, Some(p)).expect("reference"),
            }
        }
        prop_assert_eq!(r.open_orders(), open.len());
        for (id, _) in open.drain(..) {
            r.on_cancel(id).expect("cancel");
        }
        for account in [TRADER, OVERRIDDEN, DESK] {
            prop_assert_eq!(r.exposure(account).map(|x| x.open_notional), Some(0));
            prop_assert_eq!(r.open_qty(account, AAPL, Side::Buy), 0);
            prop_assert_eq!(r.open_qty(account, AAPL, Side::Sell), 0);
        }
    }
}

#[test]
fn notional_helpers() {
    assert_eq!(NOTIONAL_ONE, 100_000_000);
    assert_eq!(notional_from_whole(3), 300_000_000);
}
