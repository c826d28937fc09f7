//! The vocabulary every trading engine shares: instruments, integer prices
//! and quantities, sides, order types and times in force.
//!
//! Engines work on integers: a price is a whole number of *price units*
//! (`10^-price_decimals` of the quote currency) and a quantity a whole number
//! of *quantity units* (`10^-qty_decimals` of the instrument). Decimals from
//! the outside world are converted once, at the edge, by [`Instrument`],
//! which refuses NaN, infinities, negative or zero values, values off the
//! tick or lot, and values too large to represent.

use std::fmt;

/// A price in price units of its instrument (see [`Instrument::price_decimals`]).
pub type Price = i64;
/// A quantity in quantity units of its instrument (see [`Instrument::qty_decimals`]).
pub type Qty = u64;
/// An order id assigned by the venue; unique and increasing per venue.
pub type OrderId = u64;
/// An account (a trading book of a beneficial owner), interned by the OMS.
pub type AccountId = u32;
/// A symbol, interned by the venue.
pub type SymbolId = u32;

/// The largest quantity any order may carry, in quantity units (absurd sizes are refused).
pub const MAX_QTY: Qty = 1 << 53;
/// The largest price any order may carry, in price units.
pub const MAX_PRICE: Price = 1 << 53;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Bids: the buyer's side.
    Buy,
    /// Asks: the seller's side.
    Sell,
}

impl Side {
    /// The other side.
    #[must_use]
    pub const fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }

    /// +1 for a buy, -1 for a sell: the sign of a fill's effect on a position.
    #[must_use]
    pub const fn sign(self) -> i64 {
        match self {
            Self::Buy => 1,
            Self::Sell => -1,
        }
    }

    /// `"buy"` or `"sell"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limit or market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Trades at the limit price or better; the rest rests (unless IOC/FOK).
    Limit,
    /// Trades at any price against what rests; never rests.
    Market,
}

/// How long an order lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till canceled: the unfilled rest of a limit order rests on the book.
    Gtc,
    /// Immediate or cancel: trades what it can now, the rest is canceled.
    Ioc,
    /// Fill or kill: trades its whole quantity now or nothing at all.
    Fok,
}

/// Why a decimal from outside could not become a price or quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// NaN or an infinity.
    #[error("{what} is not a finite number")]
    NotFinite {
        /// "price" or "quantity".
        what: &'static str,
    },
    /// Zero or negative.
    #[error("{what} must be positive, got {value}")]
    NotPositive {
        /// "price" or "quantity".
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Too large to represent or absurd.
    #[error("{what} {value} is larger than the maximum {max}")]
    TooLarge {
        /// "price" or "quantity".
        what: &'static str,
        /// The value given.
        value: String,
        /// The largest value allowed, as a decimal.
        max: String,
    },
    /// Not a multiple of the tick (prices) or lot (quantities).
    #[error("{what} {value} is not a multiple of the {unit} {step}")]
    OffGrid {
        /// "price" or "quantity".
        what: &'static str,
        /// "tick size" or "lot size".
        unit: &'static str,
        /// The value given.
        value: String,
        /// The tick or lot, as a decimal.
        step: String,
    },
}

/// A tradable instrument and its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// The symbol, e.g. `"AAPL"` or `"BTC-USD"`.
    pub symbol: String,
    /// Decimals of a price unit: 2 means a price unit is 0.01.
    pub price_decimals: u8,
    /// Decimals of a quantity unit: 0 for shares, 8 for bitcoin.
    pub qty_decimals: u8,
    /// The tick size, in price units (prices must be multiples of it).
    pub tick: Price,
    /// The lot size, in quantity units (quantities must be multiples of it).
    pub lot: Qty,
}

impl Instrument {
    /// A decimal price to price units, refusing NaN, infinities, non-positive
    /// values, values off the tick and absurdly large values.
    ///
    /// # Errors
    /// A [`UnitError`] naming what is wrong with the value.
    pub fn price_from_decimal(&self, value: f64) -> Result<Price, UnitError> {
        let units = to_units("price", value, self.price_decimals, MAX_PRICE as f64)?;
        #[allow(clippy::cast_possible_truncation)]
        let units = units as Price;
        if self.tick > 0 && units % self.tick != 0 {
            return Err(UnitError::OffGrid {
                what: "price",
                unit: "tick size",
                value: value.to_string(),
                step: self.price_to_decimal(self.tick).to_string(),
            });
        }
        Ok(units)
    }

    /// A decimal quantity to quantity units (same checks as prices, against the lot).
    ///
    /// # Errors
    /// A [`UnitError`] naming what is wrong with the value.
    pub fn qty_from_decimal(&self, value: f64) -> Result<Qty, UnitError> {
        let units = to_units("quantity", value, self.qty_decimals, MAX_QTY as f64)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let units = units as Qty;
        if self.lot > 0 && !units.is_multiple_of(self.lot) {
            return Err(UnitError::OffGrid {
                what: "quantity",
                unit: "lot size",
                value: value.to_string(),
                step: self.qty_to_decimal(self.lot).to_string(),
            });
        }
        Ok(units)
    }

    /// Price units back to a decimal.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn price_to_decimal(&self, price: Price) -> f64 {
        price as f64 / 10f64.powi(i32::from(self.price_decimals))
    }

    /// Quantity units back to a decimal.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn qty_to_decimal(&self, qty: Qty) -> f64 {
        qty as f64 / 10f64.powi(i32::from(self.qty_decimals))
    }
}

/// `value * 10^decimals` as a whole number, or why not. A value that is not
/// a whole number of units (more decimals than the instrument has) is off
/// the grid of the smallest unit and refused as such.
fn to_units(what: &'static str, value: f64, decimals: u8, max_units: f64) -> Result<f64, UnitError> {
    if !value.is_finite() {
        return Err(UnitError::NotFinite { what });
    }
    if value <= 0.0 {
        return Err(UnitError::NotPositive { what, value: value.to_string() });
    }
    let scale = 10f64.powi(i32::from(decimals));
    let scaled = value * scale;
    if scaled > max_units {
        return Err(UnitError::TooLarge { what, value: value.to_string(), max: (max_units / scale).to_string() });
    }
    let rounded = scaled.round();
    // Decimal inputs like 0.1 are not exact in binary; accept them when they
    // are within rounding error (relative 1e-9) of a whole number of units.
    if (scaled - rounded).abs() > 1e-9 * rounded.max(1.0) || rounded < 1.0 {
        return Err(UnitError::OffGrid {
            what,
            unit: if what == "price" { "tick size" } else { "lot size" },
            value: value.to_string(),
            step: (1.0 / scale).to_string(),
        });
    }
    Ok(rounded)
}
