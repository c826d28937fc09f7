//! A deliberately naive reference book (a `Vec` of resting orders, scanned
//! in full for every match) and a generator of random command sequences,
//! shared by the engine's and the journal's property tests.

use plexus_trading::engine::{Cancel, Command, NewOrder, RejectReason, Replace, StpMode};
use plexus_trading::types::{Instrument, MAX_PRICE, MAX_QTY, OrderId, OrderType, Price, Qty, Side, TimeInForce};
use proptest::prelude::*;

/// The instrument every generated sequence lists first (symbol 0).
pub(crate) const TICK: Price = 5;
pub(crate) const LOT: Qty = 10;
pub(crate) const MID: Price = 1_000;

pub(crate) fn test_instrument() -> Instrument {
    Instrument { symbol: "TEST".into(), price_decimals: 2, qty_decimals: 0, tick: TICK, lot: LOT }
}

/// One random step; ids and prices are resolved by [`commands`].
#[derive(Debug, Clone)]
pub(crate) enum Op {
    New { sell: bool, kind: u8, off: i64, lots: u64, account: u32, stp: u8 },
    Cancel { pick: usize },
    Replace { pick: usize, off: i64, lots: u64 },
    Bad { which: u8, pick: usize },
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<bool>(), 0u8..10, -4i64..=4, 1u64..=6, 0u32..4, 0u8..4)
            .prop_map(|(sell, kind, off, lots, account, stp)| Op::New { sell, kind, off, lots, account, stp }),
        4 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        4 => (any::<usize>(), -4i64..=4, 1u64..=6).prop_map(|(pick, off, lots)| Op::Replace { pick, off, lots }),
        1 => (0u8..9, any::<usize>()).prop_map(|(which, pick)| Op::Bad { which, pick }),
    ]
}

/// Accounts 0 and 1 belong to owner 0, accounts 2 and 3 to owner 1, so
/// self-trade prevention meets orders of other accounts of the same owner.
pub(crate) const fn owner_of(account: u32) -> u32 {
    account / 2
}

/// The commands for a sequence of ops: an `AddInstrument` for symbol 0, then
/// one command per op. New orders get increasing ids; cancels and replaces
/// pick among every id handed out so far (live, done or refused).
pub(crate) fn commands(ops: &[Op]) -> Vec<Command> {
    let mut out = vec![Command::AddInstrument(test_instrument())];
    let mut next_id: OrderId = 1;
    let mut ids: Vec<OrderId> = Vec::new();
    let pick = |ids: &[OrderId], p: usize| if ids.is_empty() { 1 } else { ids[p % ids.len()] };
    for op in ops {
        let cmd = match *op {
            Op::New { sell, kind, off, lots, account, stp } => {
                let id = next_id;
                next_id += 1;
                ids.push(id);
                let side = if sell { Side::Sell } else { Side::Buy };
                let mut o = NewOrder::limit(id, 0, side, MID + off * TICK, lots * LOT)
                    .by(account, owner_of(account))
                    .stp(StpMode::ALL[usize::from(stp)]);
                match kind {
                    0..=3 => {}
                    4 => o = o.tif(TimeInForce::Ioc),
                    5 => o = o.tif(TimeInForce::Fok),
                    6 => o = NewOrder { order_type: OrderType::Market, price: 0, ..o }.tif(TimeInForce::Ioc),
                    7 => o = o.post_only(),
                    8 => o = NewOrder { order_type: OrderType::Market, price: 0, ..o }.tif(TimeInForce::Fok),
                    _ => o = o.post_only().tif(TimeInForce::Ioc), // refused: post-only IOC
                }
                Command::New(o)
            }
            Op::Cancel { pick: p } => Command::Cancel(Cancel { symbol: 0, id: pick(&ids, p) }),
            Op::Replace { pick: p, off, lots } => {
                Command::Replace(Replace { symbol: 0, id: pick(&ids, p), price: MID + off * TICK, qty: lots * LOT })
            }
            Op::Bad { which, pick: p } => {
                let id = next_id;
                next_id += 1;
                ids.push(id);
                let good = NewOrder::limit(id, 0, Side::Buy, MID, LOT);
                match which {
                    0 => Command::New(NewOrder { price: MID + 1, ..good }),
                    1 => Command::New(NewOrder { qty: LOT + 1, ..good }),
                    2 => Command::New(NewOrder { qty: 0, ..good }),
                    3 => Command::New(NewOrder { qty: (MAX_QTY / LOT + 1) * LOT, ..good }),
                    4 => Command::New(NewOrder { price: 0, ..good }),
                    5 => Command::New(NewOrder { symbol: 1, ..good }),
                    6 => Command::New(NewOrder { id: id.saturating_sub(1), ..good }),
                    7 => Command::Replace(Replace { symbol: 0, id: pick(&ids, p), price: MID + 2, qty: LOT }),
                    _ => Command::Cancel(Cancel { symbol: 3, id: pick(&ids, p) }),
                }
            }
        };
        out.push(cmd);
    }
    out
}

/// A resting order of the model.
#[derive(Debug, Clone)]
pub(crate) struct MOrder {
    pub(crate) id: OrderId,
    pub(crate) owner: u32,
    pub(crate) side: Side,
    pub(crate) price: Price,
    pub(crate) qty: Qty,
    pub(crate) filled: Qty,
    pub(crate) remaining: Qty,
    /// Time priority: smaller is earlier.
    pub(crate) prio: u64,
    pub(crate) post_only: bool,
    pub(crate) stp: StpMode,
}

/// A level as the model sees it: price, then (id, qty, filled, remaining) in priority order.
pub(crate) type MLevel = (Price, Vec<(OrderId, Qty, Qty, Qty)>);

/// A trade as the model sees it: (price, qty, maker, taker, aggressor).
pub(crate) type MTrade = (Price, Qty, OrderId, OrderId, Side);

struct MTaker {
    id: OrderId,
    owner: u32,
    side: Side,
    stp: StpMode,
    filled: Qty,
    remaining: Qty,
    killed: bool,
}

/// The reference book for symbol 0 (listed from the start).
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub(crate) resting: Vec<MOrder>,
    prio: u64,
    last_id: OrderId,
    /// Trades of the last command.
    pub(crate) trades: Vec<MTrade>,
}

impl Model {
    fn crosses(&self, side: Side, price: Price) -> bool {
        self.resting.iter().any(|o| match side {
            Side::Buy => o.side == Side::Sell && o.price <= price,
            Side::Sell => o.side == Side::Buy && o.price >= price,
        })
    }

    /// The best resting order a taker may trade with: best price, then earliest.
    fn best_maker(&self, side: Side, limit: Option<Price>) -> Option<usize> {
        self.resting
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.side != side
                    && limit.is_none_or(|l| match side {
                        Side::Buy => o.price <= l,
                        Side::Sell => o.price >= l,
                    })
            })
            .min_by_key(|(_, o)| (if side == Side::Buy { o.price } else { -o.price }, o.prio))
            .map(|(i, _)| i)
    }

    fn run(&mut self, t: &mut MTaker, limit: Option<Price>) {
        while t.remaining > 0 && !t.killed {
            let Some(i) = self.best_maker(t.side, limit) else { break };
            if self.resting[i].owner == t.owner {
                match t.stp {
                    StpMode::CancelNewest => t.killed = true,
                    StpMode::CancelOldest => {
                        self.resting.remove(i);
                    }
                    StpMode::CancelBoth => {
                        self.resting.remove(i);
                        t.killed = true;
                    }
                    StpMode::DecrementAndCancel => {
                        let by = self.resting[i].remaining.min(t.remaining);
                        self.resting[i].remaining -= by;
                        t.remaining -= by;
                        if self.resting[i].remaining == 0 {
                            self.resting.remove(i);
                        }
                    }
                }
                continue;
            }
            let m = &mut self.resting[i];
            let qty = m.remaining.min(t.remaining);
            m.remaining -= qty;
            m.filled += qty;
            t.remaining -= qty;
            t.filled += qty;
            self.trades.push((m.price, qty, m.id, t.id, t.side));
            if m.remaining == 0 {
                self.resting.remove(i);
            }
        }
    }

    fn check_qty(qty: Qty) -> Result<(), RejectReason> {
        if qty == 0 {
            Err(RejectReason::ZeroQuantity)
        } else if qty > MAX_QTY {
            Err(RejectReason::QuantityTooLarge)
        } else if !qty.is_multiple_of(LOT) {
            Err(RejectReason::OffLot)
        } else {
            Ok(())
        }
    }

    fn check_price(price: Price) -> Result<(), RejectReason> {
        if price <= 0 || price > MAX_PRICE {
            Err(RejectReason::PriceOutOfRange)
        } else if price % TICK != 0 {
            Err(RejectReason::OffTick)
        } else {
            Ok(())
        }
    }

    /// Applies a command after the initial `AddInstrument`.
    pub(crate) fn apply(&mut self, cmd: &Command) -> Result<(), RejectReason> {
        self.trades.clear();
        match cmd {
            Command::New(o) => self.new_order(o),
            Command::Cancel(c) => {
                if c.symbol != 0 {
                    return Err(RejectReason::UnknownSymbol);
                }
                let i = self.resting.iter().position(|o| o.id == c.id).ok_or(RejectReason::UnknownOrder)?;
                self.resting.remove(i);
                Ok(())
            }
            Command::Replace(r) => self.replace(r),
            Command::AddInstrument(i) if i.symbol == "TEST" => Err(RejectReason::DuplicateSymbol),
            _ => Ok(()),
        }
    }

    fn new_order(&mut self, o: &NewOrder) -> Result<(), RejectReason> {
        let market = o.order_type == OrderType::Market;
        if o.symbol != 0 {
            return Err(RejectReason::UnknownSymbol);
        }
        if o.id <= self.last_id {
            return Err(RejectReason::DuplicateOrderId);
        }
        if o.post_only && (market || o.tif != TimeInForce::Gtc) {
            return Err(RejectReason::PostOnlyRequiresGtcLimit);
        }
        Self::check_qty(o.qty)?;
        if !market {
            Self::check_price(o.price)?;
        }
        if o.post_only && self.crosses(o.side, o.price) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        let limit = if market { None } else { Some(o.price) };
        let taker = || MTaker {
            id: o.id,
            owner: o.owner,
            side: o.side,
            stp: o.stp,
            filled: 0,
            remaining: o.qty,
            killed: false,
        };
        if o.tif == TimeInForce::Fok {
            // Simulate on a copy: fillable means filled in full.
            let mut copy = self.clone();
            let mut t = taker();
            copy.run(&mut t, limit);
            if t.filled != o.qty {
                return Err(RejectReason::FokNotFillable);
            }
        }
        self.last_id = o.id;
        let mut t = taker();
        self.run(&mut t, limit);
        if !t.killed && t.remaining > 0 && !market && o.tif == TimeInForce::Gtc {
            self.prio += 1;
            self.resting.push(MOrder {
                id: o.id,
                owner: o.owner,
                side: o.side,
                price: o.price,
                qty: o.qty,
                filled: t.filled,
                remaining: t.remaining,
                prio: self.prio,
                post_only: o.post_only,
                stp: o.stp,
            });
        }
        Ok(())
    }

    fn replace(&mut self, r: &Replace) -> Result<(), RejectReason> {
        if r.symbol != 0 {
            return Err(RejectReason::UnknownSymbol);
        }
        let i = self.resting.iter().position(|o| o.id == r.id).ok_or(RejectReason::UnknownOrder)?;
        Self::check_qty(r.qty)?;
        Self::check_price(r.price)?;
        let o = self.resting[i].clone();
        let done = o.qty - o.remaining;
        if r.qty > done && o.post_only && r.price != o.price && self.crosses(o.side, r.price) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if r.qty <= done {
            self.resting.remove(i);
            return Ok(());
        }
        if r.price == o.price && r.qty <= o.qty {
            let m = &mut self.resting[i];
            m.remaining -= o.qty - r.qty;
            m.qty = r.qty;
            return Ok(());
        }
        self.resting.remove(i);
        let mut t = MTaker {
            id: o.id,
            owner: o.owner,
            side: o.side,
            stp: o.stp,
            filled: o.filled,
            remaining: r.qty - done,
            killed: false,
        };
        self.run(&mut t, Some(r.price));
        if !t.killed && t.remaining > 0 {
            self.prio += 1;
            self.resting.push(MOrder {
                price: r.price,
                qty: r.qty,
                filled: t.filled,
                remaining: t.remaining,
                prio: self.prio,
                ..o
            });
        }
        Ok(())
    }

    /// The side's levels, best first: (price, [(id, qty, filled, remaining)] in priority order).
    pub(crate) fn levels(&self, side: Side) -> Vec<MLevel> {
        let mut orders: Vec<&MOrder> = self.resting.iter().filter(|o| o.side == side).collect();
        orders.sort_by_key(|o| (if side == Side::Buy { -o.price } else { o.price }, o.prio));
        let mut out: Vec<MLevel> = Vec::new();
        for o in orders {
            let entry = (o.id, o.qty, o.filled, o.remaining);
            match out.last_mut() {
                Some((p, v)) if *p == o.price => v.push(entry),
                _ => out.push((o.price, vec![entry])),
            }
        }
        out
    }
}
