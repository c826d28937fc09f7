//! Positions with average price, realized and unrealized P&L.
//!
//! Conventions (average-cost accounting, the usual one for a trading desk's
//! intraday P&L):
//! - a position is a signed quantity (long > 0, short < 0) in quantity units
//!   and an average entry price in price units;
//! - a fill in the direction of the position (or from flat) moves the
//!   average: `avg = (|q|·avg + fill_qty·price) / (|q| + fill_qty)`;
//! - a fill against the position closes `min(|q|, fill_qty)` at
//!   `(price − avg)·closed` for a long (`(avg − price)·closed` for a short),
//!   added to realized P&L; what is left of the fill opens a new position
//!   at the fill's price, so the average of a position that flips is the
//!   flipping fill's price;
//! - unrealized P&L is `q·(mark − avg)`.
//!
//! P&L is kept in *value units* (price units × quantity units); an
//! [`Instrument`] converts them to the quote currency.

use crate::types::{Instrument, Price, Qty, Side};

/// One account's position in one instrument.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Position {
    /// Signed quantity in quantity units: long > 0, short < 0.
    pub qty: i64,
    /// Average entry price in price units (0 when flat).
    pub avg_price: f64,
    /// Realized P&L in value units.
    pub realized: f64,
    /// Quantity bought and sold so far (quantity units).
    pub bought: u64,
    pub sold: u64,
}

impl Position {
    /// Apply a fill of `qty` at `price` on `side`.
    pub fn apply_fill(&mut self, side: Side, qty: Qty, price: Price) {
        if qty == 0 {
            return;
        }
        let signed = i64::try_from(qty).unwrap_or(i64::MAX) * side.sign();
        #[allow(clippy::cast_precision_loss)]
        let (q, fill, px) = (self.qty as f64, qty as f64, price as f64);
        match side {
            Side::Buy => self.bought = self.bought.saturating_add(qty),
            Side::Sell => self.sold = self.sold.saturating_add(qty),
        }
        if self.qty == 0 || self.qty.signum() == signed.signum() {
            self.avg_price = (q.abs() * self.avg_price + fill * px) / (q.abs() + fill);
            self.qty = self.qty.saturating_add(signed);
            return;
        }
        let closed = self.qty.unsigned_abs().min(qty);
        #[allow(clippy::cast_precision_loss)]
        let closed_f = closed as f64;
        let per_unit = if self.qty > 0 { px - self.avg_price } else { self.avg_price - px };
        self.realized += per_unit * closed_f;
        self.qty = self.qty.saturating_add(signed);
        if self.qty == 0 {
            self.avg_price = 0.0;
        } else if self.qty.signum() == signed.signum() {
            // Flipped: the rest of the fill opened a new position.
            self.avg_price = px;
        }
    }

    /// Unrealized P&L in value units at `mark` (price units).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn unrealized(&self, mark: Price) -> f64 {
        self.qty as f64 * (mark as f64 - self.avg_price)
    }
}

impl Instrument {
    /// Value units (price units × quantity units) to the quote currency.
    #[must_use]
    pub fn value_to_currency(&self, value: f64) -> f64 {
        value / 10f64.powi(i32::from(self.price_decimals) + i32::from(self.qty_decimals))
    }

    /// The notional of `qty` at `price`, in the quote currency.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn notional(&self, qty: Qty, price: Price) -> f64 {
        self.value_to_currency(qty as f64 * price as f64)
    }

    /// A signed quantity in quantity units to a decimal.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn signed_qty_to_decimal(&self, qty: i64) -> f64 {
        qty as f64 / 10f64.powi(i32::from(self.qty_decimals))
    }
}
