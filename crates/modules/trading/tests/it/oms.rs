//! Tests of `plexus_trading::oms`.

use plexus_trading::oms::Position;
use plexus_trading::types::{Instrument, Side};

fn aapl() -> Instrument {
    Instrument { symbol: "AAPL".into(), price_decimals: 2, qty_decimals: 0, tick: 1, lot: 1 }
}

#[test]
fn average_price_realized_and_unrealized_pnl_through_a_flip() {
    let i = aapl();
    let mut p = Position::default();
    p.apply_fill(Side::Buy, 100, 1000);
    p.apply_fill(Side::Buy, 100, 1200);
    assert_eq!((p.qty, p.avg_price), (200, 1100.0));
    p.apply_fill(Side::Sell, 150, 1300);
    assert_eq!((p.qty, p.avg_price), (50, 1100.0));
    assert!((i.value_to_currency(p.realized) - 300.0).abs() < 1e-9, "{}", p.realized);
    // Sell 100 at 9.00: closes 50 at a 2.00 loss each, opens 50 short at 9.00.
    p.apply_fill(Side::Sell, 100, 900);
    assert_eq!((p.qty, p.avg_price), (-50, 900.0));
    assert!((i.value_to_currency(p.realized) - 200.0).abs() < 1e-9);
    assert!((i.value_to_currency(p.unrealized(1000)) + 50.0).abs() < 1e-9);
    // Buying 50 back flattens it: the average resets.
    p.apply_fill(Side::Buy, 50, 950);
    assert_eq!((p.qty, p.avg_price), (0, 0.0));
    assert!((i.value_to_currency(p.realized) - 175.0).abs() < 1e-9);
    assert_eq!((p.bought, p.sold), (250, 250));
    assert!((i.notional(100, 18_733) - 18_733.0).abs() < 1e-9);
}
