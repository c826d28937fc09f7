//! A local level-2 order book: price → quantity per side, levels with
//! quantity zero removed.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::types::Side;

/// One price level: the total quantity resting at a price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BookLevel {
    /// The price (finite, positive).
    pub price: f64,
    /// The quantity (finite, positive: levels with zero are removed).
    pub qty: f64,
}

/// A price as a map key: finite and positive by construction (the parsers
/// refuse anything else), ordered by `total_cmp`.
#[derive(Debug, Clone, Copy)]
struct PriceKey(f64);

impl PartialEq for PriceKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PriceKey {}

impl PartialOrd for PriceKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PriceKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Both sides of a symbol's book.
#[derive(Debug, Clone, Default)]
pub(crate) struct L2Book {
    bids: BTreeMap<PriceKey, f64>,
    asks: BTreeMap<PriceKey, f64>,
}

impl L2Book {
    /// Sets the quantity at a price: zero removes the level (removing a level
    /// that is not there is normal, say both venues' documentation).
    pub(crate) fn set(&mut self, side: Side, price: f64, qty: f64) {
        let map = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if qty == 0.0 {
            map.remove(&PriceKey(price));
        } else {
            map.insert(PriceKey(price), qty);
        }
    }

    /// Replaces the whole book (a snapshot).
    pub(crate) fn replace(&mut self, bids: &[BookLevel], asks: &[BookLevel]) {
        self.bids.clear();
        self.asks.clear();
        for level in bids {
            self.set(Side::Buy, level.price, level.qty);
        }
        for level in asks {
            self.set(Side::Sell, level.price, level.qty);
        }
    }

    /// The best bid: the highest price.
    pub(crate) fn best_bid(&self) -> Option<BookLevel> {
        self.bids.iter().next_back().map(|(p, q)| BookLevel { price: p.0, qty: *q })
    }

    /// The best ask: the lowest price.
    pub(crate) fn best_ask(&self) -> Option<BookLevel> {
        self.asks.iter().next().map(|(p, q)| BookLevel { price: p.0, qty: *q })
    }

    /// The best `depth` bids, best (highest) first.
    pub(crate) fn top_bids(&self, depth: usize) -> Vec<BookLevel> {
        self.bids.iter().rev().take(depth).map(|(p, q)| BookLevel { price: p.0, qty: *q }).collect()
    }

    /// The best `depth` asks, best (lowest) first.
    pub(crate) fn top_asks(&self, depth: usize) -> Vec<BookLevel> {
        self.asks.iter().take(depth).map(|(p, q)| BookLevel { price: p.0, qty: *q }).collect()
    }

    /// Levels per side: (bids, asks).
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }
}
