//! The demo's market simulator: seeded random order flow around a random
//! walk, through the desk like any order (risk, compliance, journal). Every
//! answer that shows its prices says they are simulated.
//!
//! Each tick, per symbol: the mid takes a random-walk step; the market
//! maker account cancels its quotes and quotes a bid and an ask a few ticks
//! around the mid; now and then the flow account sends an immediate-or-cancel
//! order that takes one side.

use std::time::Duration;

use crate::desk::{Desk, OrderRef, OrderRequest, Status};
use crate::types::{OrderType, Side, TimeInForce};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub maker: String,
    pub taker: String,
    pub every: Duration,
    pub seed: u64,
    /// Probability per tick and symbol of a taking order.
    pub take_probability: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            maker: "sim-market-maker".into(),
            taker: "sim-flow".into(),
            every: Duration::from_millis(500),
            seed: 7,
            take_probability: 0.3,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    #[allow(clippy::cast_precision_loss)]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Start the simulator on the current tokio runtime; it stops when the desk stops.
pub fn spawn(desk: Desk, config: SimConfig) {
    tokio::spawn(async move {
        let mut rng = Rng(config.seed.max(1));
        let mut quotes: Vec<u64> = Vec::new();
        let mut mids: Vec<(String, f64, f64, f64)> = desk
            .symbols()
            .into_iter()
            .filter_map(|s| {
                let i = desk.instrument(&s)?;
                let tick = i.price_to_decimal(i.tick);
                let lot = i.qty_to_decimal(i.lot);
                let mid = desk.market(&s, 1, 0).and_then(|m| m.last.or(m.reference))?;
                Some((s, mid, tick, lot))
            })
            .collect();
        let mut interval = tokio::time::interval(config.every);
        loop {
            interval.tick().await;
            for id in quotes.drain(..) {
                if desk.cancel(&config.maker, OrderRef::Id(id)).await.is_err() {
                    // The desk stopped, or the quote is gone already.
                }
            }
            for (symbol, mid, tick, lot) in &mut mids {
                let step = (rng.unit() - 0.5) * 4.0;
                *mid = (*mid + step.round() * *tick).max(*tick * 10.0);
                let size = (1.0 + (rng.unit() * 5.0).floor()) * 10.0 * *lot;
                let half = (1.0 + (rng.unit() * 3.0).floor()) * *tick;
                let snap = |p: f64| (p / *tick).round() * *tick;
                for (side, price) in [(Side::Buy, snap(*mid - half)), (Side::Sell, snap(*mid + half))] {
                    let req = order(&config.maker, symbol, side, OrderType::Limit, TimeInForce::Gtc, Some(price), size);
                    match desk.place(req).await {
                        Ok(r) if r.status == Status::New || r.status == Status::PartiallyFilled => {
                            if let Some(id) = r.order_id {
                                quotes.push(id);
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
                if rng.unit() < config.take_probability {
                    let side = if rng.unit() < 0.5 { Side::Buy } else { Side::Sell };
                    let qty = (1.0 + (rng.unit() * 3.0).floor()) * 10.0 * *lot;
                    let price = match side {
                        Side::Buy => snap(*mid + half * 2.0),
                        Side::Sell => snap(*mid - half * 2.0),
                    };
                    let req = order(&config.taker, symbol, side, OrderType::Limit, TimeInForce::Ioc, Some(price), qty);
                    if desk.place(req).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn order(
    account: &str,
    symbol: &str,
    side: Side,
    order_type: OrderType,
    tif: TimeInForce,
    price: Option<f64>,
    qty: f64,
) -> OrderRequest {
    OrderRequest {
        account: account.into(),
        client_order_id: None,
        symbol: symbol.into(),
        side,
        order_type,
        tif,
        price,
        qty,
        post_only: false,
    }
}
