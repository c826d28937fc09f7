//! Decimals to integer units and back.

use plexus_trading::types::{Instrument, UnitError};

fn aapl() -> Instrument {
    Instrument { symbol: "AAPL".into(), price_decimals: 2, qty_decimals: 0, tick: 1, lot: 1 }
}

fn btc() -> Instrument {
    Instrument { symbol: "BTC-USD".into(), price_decimals: 2, qty_decimals: 8, tick: 50, lot: 1000 }
}

#[test]
fn decimals_become_units_on_the_grid() {
    assert_eq!(aapl().price_from_decimal(187.33), Ok(18_733));
    assert_eq!(aapl().qty_from_decimal(100.0), Ok(100));
    assert_eq!(btc().price_from_decimal(64_000.5), Ok(6_400_050));
    assert_eq!(btc().qty_from_decimal(0.00001), Ok(1000));
    assert!((btc().price_to_decimal(6_400_050) - 64_000.5).abs() < 1e-9);
    assert!((btc().qty_to_decimal(1000) - 0.00001).abs() < 1e-15);
}

#[test]
fn bad_numbers_are_refused_with_a_reason() {
    let a = aapl();
    assert_eq!(a.price_from_decimal(f64::NAN), Err(UnitError::NotFinite { what: "price" }));
    assert_eq!(a.qty_from_decimal(f64::INFINITY), Err(UnitError::NotFinite { what: "quantity" }));
    assert!(matches!(a.qty_from_decimal(0.0), Err(UnitError::NotPositive { .. })));
    assert!(matches!(a.qty_from_decimal(-5.0), Err(UnitError::NotPositive { .. })));
    assert!(matches!(a.qty_from_decimal(1e300), Err(UnitError::TooLarge { .. })));
    // A third of a cent is below the price unit; 0.25 BTC-USD dollars is off the 0.50 tick.
    assert!(matches!(a.price_from_decimal(10.001), Err(UnitError::OffGrid { unit: "tick size", .. })));
    let e = btc().price_from_decimal(64_000.25).unwrap_err();
    assert_eq!(e.to_string(), "price 64000.25 is not a multiple of the tick size 0.5");
    assert!(matches!(a.qty_from_decimal(1.5), Err(UnitError::OffGrid { unit: "lot size", .. })));
}
