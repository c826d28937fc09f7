//! Tests of `plexus_trading::engine`: one example per order type, self-trade
//! prevention mode, replace rule and refusal; then random command sequences
//! checked against a naive reference book and against invariants derived
//! from the event stream alone.

// Tests may unwrap (the workspace warns on it for library code).
#![allow(clippy::unwrap_used)]

pub(crate) mod model;

use std::collections::{BTreeMap, HashMap};

use plexus_trading::engine::{
    Book, Cancel, CancelReason, Command, CommandKind, DepthLevel, Discard, Event, NewOrder, OrderStatus, RejectReason,
    Replace, StpMode, Trade, Venue,
};
use plexus_trading::types::{
    Instrument, MAX_PRICE, MAX_QTY, OrderId, OrderType, Price, Qty, Side, SymbolId, TimeInForce,
};
use proptest::prelude::*;

use self::model::{MTrade, Model, Op};

fn aapl() -> Instrument {
    Instrument { symbol: "AAPL".into(), price_decimals: 2, qty_decimals: 0, tick: 1, lot: 1 }
}

fn btc() -> Instrument {
    Instrument { symbol: "BTC-USD".into(), price_decimals: 2, qty_decimals: 8, tick: 50, lot: 1000 }
}

/// A venue with one instrument and the events of the last command.
struct H {
    v: Venue,
    ev: Vec<Event>,
    sym: SymbolId,
}

impl H {
    fn new(instrument: Instrument) -> Self {
        let mut v = Venue::new();
        let mut ev = Vec::new();
        let name = instrument.symbol.clone();
        v.apply(&Command::AddInstrument(instrument), &mut ev).unwrap();
        let sym = v.symbol(&name).unwrap();
        assert_eq!(ev, vec![Event::InstrumentAdded { symbol: sym }]);
        Self { v, ev, sym }
    }

    fn run(&mut self, cmd: impl Into<Command>) -> Result<(), RejectReason> {
        self.ev.clear();
        self.v.apply(&cmd.into(), &mut self.ev)
    }

    /// A GTC limit order by account = owner = `who`.
    fn limit(&mut self, id: OrderId, side: Side, price: Price, qty: Qty, who: u32) -> Result<(), RejectReason> {
        self.run(NewOrder::limit(id, self.sym, side, price, qty).by(who, who))
    }

    fn cancel(&mut self, id: OrderId) -> Result<(), RejectReason> {
        self.run(Cancel { symbol: self.sym, id })
    }

    fn replace(&mut self, id: OrderId, price: Price, qty: Qty) -> Result<(), RejectReason> {
        self.run(Replace { symbol: self.sym, id, price, qty })
    }

    fn book(&self) -> &Book {
        self.v.book(self.sym).unwrap()
    }

    fn trades(&self) -> Vec<Trade> {
        self.ev
            .iter()
            .filter_map(|e| match e {
                Event::Trade(t) => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// (price, qty, maker, taker) of the last command's trades.
    fn fills(&self) -> Vec<(Price, Qty, OrderId, OrderId)> {
        self.trades().iter().map(|t| (t.price, t.qty, t.maker_id, t.taker_id)).collect()
    }

    /// The order ids queued at a price, front first.
    fn queue(&self, side: Side, price: Price) -> Vec<OrderId> {
        let snap = self.book().snapshot();
        let levels = if side == Side::Buy { snap.bids } else { snap.asks };
        levels
            .into_iter()
            .find(|l| l.price == price)
            .map(|l| l.orders.iter().map(|o| o.id).collect())
            .unwrap_or_default()
    }

    fn canceled(&self) -> Vec<(OrderId, Qty, CancelReason)> {
        self.ev
            .iter()
            .filter_map(|e| match *e {
                Event::Canceled { id, canceled, reason, .. } => Some((id, canceled, reason)),
                _ => None,
            })
            .collect()
    }
}

const fn lvl(side: Side, price: Price, qty: Qty, orders: u32) -> Event {
    Event::Level { symbol: 0, side, price, qty, orders }
}

// ---- order types ----

#[test]
fn a_limit_order_rests_and_shows_in_queries() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 18_700, 100, 1).unwrap();
    h.limit(2, Side::Buy, 18_700, 50, 2).unwrap();
    h.limit(3, Side::Buy, 18_650, 10, 3).unwrap();
    h.limit(4, Side::Sell, 18_800, 70, 4).unwrap();
    assert_eq!(
        h.ev,
        vec![Event::Accepted(NewOrder::limit(4, 0, Side::Sell, 18_800, 70).by(4, 4)), lvl(Side::Sell, 18_800, 70, 1)]
    );
    let b = h.book();
    assert_eq!(b.best_bid(), Some(DepthLevel { price: 18_700, qty: 150, orders: 2 }));
    assert_eq!(b.best_ask(), Some(DepthLevel { price: 18_800, qty: 70, orders: 1 }));
    assert_eq!(
        b.depth(Side::Buy, 5),
        vec![DepthLevel { price: 18_700, qty: 150, orders: 2 }, DepthLevel { price: 18_650, qty: 10, orders: 1 }]
    );
    assert_eq!(b.depth(Side::Buy, 1).len(), 1);
    assert_eq!(b.level_count(Side::Buy), 2);
    assert_eq!(b.len(), 4);
    let o = b.order(2).unwrap();
    assert_eq!((o.qty, o.filled, o.remaining, o.canceled, o.status), (50, 0, 50, 0, OrderStatus::New));
    assert_eq!((o.account, o.owner, o.side, o.price), (2, 2, Side::Buy, 18_700));
    assert_eq!(h.queue(Side::Buy, 18_700), vec![1, 2]);
    assert_eq!(h.v.next_order_id(), 5);
    assert_eq!(h.v.order(h.sym, 9), None);
}

#[test]
fn a_crossing_limit_trades_at_makers_prices_best_first_and_rests_the_rest() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Sell, 101, 50, 1).unwrap();
    h.limit(2, Side::Sell, 102, 50, 2).unwrap();
    h.limit(3, Side::Sell, 103, 50, 2).unwrap();
    h.limit(4, Side::Buy, 102, 120, 3).unwrap();
    let trade = |trade_id, price, maker_id: OrderId, maker: u32| {
        Event::Trade(Trade {
            symbol: 0,
            trade_id,
            price,
            qty: 50,
            maker_id,
            taker_id: 4,
            maker_account: maker,
            taker_account: 3,
            maker_owner: maker,
            taker_owner: 3,
            aggressor: Side::Buy,
        })
    };
    assert_eq!(
        h.ev,
        vec![
            Event::Accepted(NewOrder::limit(4, 0, Side::Buy, 102, 120).by(3, 3)),
            trade(1, 101, 1, 1),
            Event::Filled { symbol: 0, id: 1, filled: 50 },
            Event::PartiallyFilled { symbol: 0, id: 4, filled: 50, remaining: 70 },
            lvl(Side::Sell, 101, 0, 0),
            trade(2, 102, 2, 2),
            Event::Filled { symbol: 0, id: 2, filled: 50 },
            Event::PartiallyFilled { symbol: 0, id: 4, filled: 100, remaining: 20 },
            lvl(Side::Sell, 102, 0, 0),
            lvl(Side::Buy, 102, 20, 1),
        ]
    );
    let o = h.book().order(4).unwrap();
    assert_eq!((o.filled, o.remaining, o.status), (100, 20, OrderStatus::PartiallyFilled));
    assert_eq!(h.book().best_ask().unwrap().price, 103);
    assert_eq!(h.book().trades(), 2);
}

#[test]
fn within_a_level_the_first_order_in_is_filled_first() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Sell, 100, 30, 1).unwrap();
    h.limit(2, Side::Sell, 100, 30, 2).unwrap();
    h.limit(3, Side::Sell, 100, 30, 3).unwrap();
    h.limit(4, Side::Buy, 100, 45, 4).unwrap();
    assert_eq!(h.fills(), vec![(100, 30, 1, 4), (100, 15, 2, 4)]);
    // One level update for the whole sweep, with what is left.
    let levels: Vec<_> = h.ev.iter().filter(|e| matches!(e, Event::Level { .. })).collect();
    assert_eq!(levels, vec![&lvl(Side::Sell, 100, 45, 2)]);
    assert_eq!(h.queue(Side::Sell, 100), vec![2, 3]);
    assert_eq!(h.book().order(2).unwrap().remaining, 15);
}

#[test]
fn a_market_order_sweeps_and_never_rests() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 99, 10, 1).unwrap();
    h.limit(2, Side::Buy, 98, 10, 2).unwrap();
    h.run(NewOrder::market(3, 0, Side::Sell, 25).by(3, 3)).unwrap();
    assert_eq!(h.fills(), vec![(99, 10, 1, 3), (98, 10, 2, 3)]);
    assert_eq!(h.canceled(), vec![(3, 5, CancelReason::NoLiquidity)]);
    assert!(h.book().is_empty());
    assert_eq!(h.book().best_ask(), None);
    // On an empty book: accepted, then canceled whole.
    h.run(NewOrder::market(4, 0, Side::Buy, 7)).unwrap();
    assert_eq!(
        h.ev,
        vec![
            Event::Accepted(NewOrder::market(4, 0, Side::Buy, 7)),
            Event::Canceled { symbol: 0, id: 4, canceled: 7, filled: 0, reason: CancelReason::NoLiquidity },
        ]
    );
    // The price of a market order is ignored and reported as 0.
    h.limit(5, Side::Sell, 100, 5, 5).unwrap();
    h.run(NewOrder { price: 1, ..NewOrder::market(6, 0, Side::Buy, 5) }).unwrap();
    assert_eq!(h.ev[0], Event::Accepted(NewOrder::market(6, 0, Side::Buy, 5)));
    assert_eq!(h.fills(), vec![(100, 5, 5, 6)]);
}

#[test]
fn an_ioc_order_trades_what_it_can_and_cancels_the_rest() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Sell, 100, 10, 1).unwrap();
    h.limit(2, Side::Sell, 101, 10, 1).unwrap();
    h.run(NewOrder::limit(3, 0, Side::Buy, 100, 25).by(2, 2).tif(TimeInForce::Ioc)).unwrap();
    assert_eq!(h.fills(), vec![(100, 10, 1, 3)]);
    assert_eq!(h.canceled(), vec![(3, 15, CancelReason::ImmediateOrCancel)]);
    assert_eq!(h.book().order(3), None);
    assert_eq!(h.book().best_bid(), None);
    // Not crossing at all: nothing trades, nothing rests.
    h.run(NewOrder::limit(4, 0, Side::Buy, 90, 5).tif(TimeInForce::Ioc)).unwrap();
    assert_eq!(h.canceled(), vec![(4, 5, CancelReason::ImmediateOrCancel)]);
    assert_eq!(h.book().len(), 1);
}

#[test]
fn a_fok_order_fills_in_full_or_is_refused_with_the_book_untouched() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Sell, 100, 10, 1).unwrap();
    h.limit(2, Side::Sell, 101, 10, 2).unwrap();
    h.limit(3, Side::Sell, 102, 10, 3).unwrap();
    let before = h.v.snapshot();
    let fok = |id, price, qty| NewOrder::limit(id, 0, Side::Buy, price, qty).by(9, 9).tif(TimeInForce::Fok);
    // 25 are offered up to 102 but only 20 up to 101.
    assert_eq!(h.run(fok(4, 101, 25)), Err(RejectReason::FokNotFillable));
    assert_eq!(
        h.ev,
        vec![Event::Rejected { kind: CommandKind::New, symbol: 0, id: 4, reason: RejectReason::FokNotFillable }]
    );
    assert_eq!(h.v.snapshot(), before);
    h.run(fok(4, 102, 25)).unwrap();
    assert_eq!(h.fills(), vec![(100, 10, 1, 4), (101, 10, 2, 4), (102, 5, 3, 4)]);
    assert!(h.canceled().is_empty());
    assert!(h.ev.contains(&Event::Filled { symbol: 0, id: 4, filled: 25 }));
    // A market FOK: any price, still all or nothing.
    let mfok = NewOrder::market(5, 0, Side::Buy, 6).tif(TimeInForce::Fok);
    assert_eq!(h.run(mfok), Err(RejectReason::FokNotFillable));
    h.run(NewOrder { qty: 5, ..mfok }).unwrap();
    assert_eq!(h.fills(), vec![(102, 5, 3, 5)]);
    assert!(h.book().is_empty());
}

#[test]
fn a_post_only_order_rests_or_is_refused_but_never_takes() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Sell, 100, 10, 1).unwrap();
    let before = h.v.snapshot();
    assert_eq!(h.run(NewOrder::limit(2, 0, Side::Buy, 100, 5).post_only()), Err(RejectReason::PostOnlyWouldCross));
    assert_eq!(h.run(NewOrder::limit(2, 0, Side::Buy, 105, 5).post_only()), Err(RejectReason::PostOnlyWouldCross));
    assert_eq!(h.v.snapshot(), before);
    h.run(NewOrder::limit(2, 0, Side::Buy, 99, 5).post_only()).unwrap();
    assert!(h.trades().is_empty());
    assert!(h.book().order(2).unwrap().post_only);
    // Only GTC limit orders may be post-only.
    for o in [
        NewOrder::limit(3, 0, Side::Buy, 98, 5).post_only().tif(TimeInForce::Ioc),
        NewOrder::limit(3, 0, Side::Buy, 98, 5).post_only().tif(TimeInForce::Fok),
        NewOrder::market(3, 0, Side::Buy, 5).post_only(),
    ] {
        assert_eq!(h.run(o), Err(RejectReason::PostOnlyRequiresGtcLimit));
    }
    // A post-only order is a maker when others cross it.
    h.run(NewOrder::limit(3, 0, Side::Sell, 99, 5).by(3, 3)).unwrap();
    assert_eq!(h.fills(), vec![(99, 5, 2, 3)]);
}

// ---- cancel and replace ----

#[test]
fn cancel_removes_the_order_and_its_level_and_a_second_cancel_is_refused() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 100, 10, 1).unwrap();
    h.limit(2, Side::Buy, 100, 20, 1).unwrap();
    h.cancel(1).unwrap();
    assert_eq!(
        h.ev,
        vec![
            Event::Canceled { symbol: 0, id: 1, canceled: 10, filled: 0, reason: CancelReason::Requested },
            lvl(Side::Buy, 100, 20, 1),
        ]
    );
    h.cancel(2).unwrap();
    assert_eq!(h.ev[1], lvl(Side::Buy, 100, 0, 0));
    assert_eq!(h.book().best_bid(), None);
    assert_eq!(h.cancel(2), Err(RejectReason::UnknownOrder));
    // A partly filled order cancels its rest.
    h.limit(3, Side::Sell, 100, 10, 1).unwrap();
    h.limit(4, Side::Buy, 100, 4, 2).unwrap();
    h.cancel(3).unwrap();
    assert_eq!(h.ev[0], Event::Canceled { symbol: 0, id: 3, canceled: 6, filled: 4, reason: CancelReason::Requested });
}

#[test]
fn replace_down_at_the_same_price_keeps_priority() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 100, 30, 1).unwrap();
    h.limit(2, Side::Buy, 100, 30, 2).unwrap();
    h.replace(1, 100, 20).unwrap();
    assert_eq!(
        h.ev,
        vec![
            Event::Replaced { symbol: 0, id: 1, price: 100, qty: 20, remaining: 20, priority_kept: true },
            lvl(Side::Buy, 100, 50, 2),
        ]
    );
    assert_eq!(h.queue(Side::Buy, 100), vec![1, 2]);
    // The same price and quantity changes nothing and keeps the place too.
    h.replace(1, 100, 20).unwrap();
    assert_eq!(
        h.ev,
        vec![Event::Replaced { symbol: 0, id: 1, price: 100, qty: 20, remaining: 20, priority_kept: true }]
    );
    h.limit(3, Side::Sell, 100, 20, 3).unwrap();
    assert_eq!(h.fills(), vec![(100, 20, 1, 3)]);
}

#[test]
fn replace_up_or_to_another_price_loses_priority() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 100, 30, 1).unwrap();
    h.limit(2, Side::Buy, 100, 30, 2).unwrap();
    h.replace(1, 100, 40).unwrap();
    assert_eq!(
        h.ev,
        vec![
            Event::Replaced { symbol: 0, id: 1, price: 100, qty: 40, remaining: 40, priority_kept: false },
            lvl(Side::Buy, 100, 70, 2),
        ]
    );
    assert_eq!(h.queue(Side::Buy, 100), vec![2, 1]);
    // Away and back: behind order 3 now.
    h.limit(3, Side::Buy, 100, 5, 3).unwrap();
    h.replace(2, 99, 30).unwrap();
    assert_eq!(h.ev[0], lvl(Side::Buy, 100, 45, 2));
    assert_eq!(h.ev[2], lvl(Side::Buy, 99, 30, 1));
    h.replace(2, 100, 30).unwrap();
    assert_eq!(h.queue(Side::Buy, 100), vec![1, 3, 2]);
    assert_eq!(h.book().level_count(Side::Buy), 1);
    // Down in quantity but at a new price: loses it as well.
    h.replace(1, 101, 10).unwrap();
    h.replace(1, 100, 10).unwrap();
    assert_eq!(h.queue(Side::Buy, 100), vec![3, 2, 1]);
}

#[test]
fn replace_at_or_below_the_filled_quantity_cancels() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 100, 30, 1).unwrap();
    h.limit(2, Side::Sell, 100, 20, 2).unwrap();
    assert_eq!(h.book().order(1).unwrap().filled, 20);
    // 25 total keeps priority with 5 left.
    h.limit(3, Side::Buy, 100, 10, 3).unwrap();
    h.replace(1, 100, 25).unwrap();
    assert_eq!(h.ev[0], Event::Replaced { symbol: 0, id: 1, price: 100, qty: 25, remaining: 5, priority_kept: true });
    assert_eq!(h.queue(Side::Buy, 100), vec![1, 3]);
    h.replace(1, 100, 20).unwrap();
    assert_eq!(
        h.ev,
        vec![
            Event::Canceled {
                symbol: 0,
                id: 1,
                canceled: 5,
                filled: 20,
                reason: CancelReason::ReplacedAtOrBelowFilled
            },
            lvl(Side::Buy, 100, 10, 1),
        ]
    );
    assert_eq!(h.book().order(1), None);
    assert_eq!(h.replace(1, 100, 30), Err(RejectReason::UnknownOrder));
}

#[test]
fn a_replace_across_the_book_trades_then_rests() {
    let mut h = H::new(aapl());
    h.limit(1, Side::Buy, 100, 30, 1).unwrap();
    h.limit(2, Side::Sell, 105, 10, 2).unwrap();
    h.limit(3, Side::Sell, 106, 10, 3).unwrap();
    h.replace(1, 105, 30).unwrap();
    assert_eq!(h.ev[0], lvl(Side::Buy, 100, 0, 0));
    assert_eq!(h.ev[1], Event::Replaced { symbol: 0, id: 1, price: 105, qty: 30, remaining: 30, priority_kept: false });
    assert_eq!(h.fills(), vec![(105, 10, 2, 1)]);
    assert_eq!(h.trades()[0].aggressor, Side::Buy);
    assert_eq!(*h.ev.last().unwrap(), lvl(Side::Buy, 105, 20, 1));
    let o = h.book().order(1).unwrap();
    assert_eq!((o.price, o.qty, o.filled, o.remaining), (105, 30, 10, 20));
    // A post-only order may not be replaced across the book.
    h.run(NewOrder::limit(4, 0, Side::Sell, 110, 10).by(4, 4).post_only()).unwrap();
    let before = h.v.snapshot();
    assert_eq!(h.replace(4, 105, 10), Err(RejectReason::PostOnlyWouldCross));
    assert_eq!(h.v.snapshot(), before);
    h.replace(4, 107, 10).unwrap();
    assert_eq!(h.book().order(4).unwrap().price, 107);
}

// ---- self-trade prevention ----

/// Owner 1 rests a sell of 10 at 100 (account 10) before owner 2's sell of
/// 10 at 100; owner 1 then buys 20 at 100 from account 11.
fn stp_setup(resting: Qty) -> H {
    let mut h = H::new(aapl());
    h.run(NewOrder::limit(1, 0, Side::Sell, 100, resting).by(10, 1)).unwrap();
    h.run(NewOrder::limit(2, 0, Side::Sell, 100, 10).by(20, 2)).unwrap();
    h
}

fn stp_buy(qty: Qty, mode: StpMode) -> NewOrder {
    NewOrder::limit(3, 0, Side::Buy, 100, qty).by(11, 1).stp(mode)
}

#[test]
fn stp_cancel_newest_cancels_the_incoming_order_and_is_the_default() {
    assert_eq!(StpMode::default(), StpMode::CancelNewest);
    let mut h = stp_setup(10);
    let before = h.book().snapshot();
    h.run(stp_buy(20, StpMode::CancelNewest)).unwrap();
    assert_eq!(
        h.ev,
        vec![
            Event::Accepted(stp_buy(20, StpMode::CancelNewest)),
            Event::Canceled { symbol: 0, id: 3, canceled: 20, filled: 0, reason: CancelReason::SelfTradePrevented },
        ]
    );
    assert_eq!(h.book().snapshot().asks, before.asks);
    assert_eq!(h.book().best_bid(), None);
}

#[test]
fn stp_cancel_oldest_cancels_the_resting_order_and_goes_on() {
    let mut h = stp_setup(10);
    h.run(stp_buy(20, StpMode::CancelOldest)).unwrap();
    assert_eq!(h.canceled(), vec![(1, 10, CancelReason::SelfTradePrevented)]);
    assert_eq!(h.fills(), vec![(100, 10, 2, 3)]);
    assert_eq!(h.book().best_ask(), None);
    assert_eq!(h.book().order(3).unwrap().remaining, 10);
    assert_eq!(h.book().best_bid(), Some(DepthLevel { price: 100, qty: 10, orders: 1 }));
}

#[test]
fn stp_cancel_both_cancels_both() {
    let mut h = stp_setup(10);
    h.run(stp_buy(20, StpMode::CancelBoth)).unwrap();
    assert_eq!(
        h.canceled(),
        vec![(1, 10, CancelReason::SelfTradePrevented), (3, 20, CancelReason::SelfTradePrevented)]
    );
    assert!(h.trades().is_empty());
    assert_eq!(h.queue(Side::Sell, 100), vec![2]);
    assert_eq!(h.book().best_bid(), None);
}

#[test]
fn stp_decrement_and_cancel_shrinks_both_by_the_smaller() {
    // The resting order is smaller: it is canceled, the taker goes on smaller.
    let mut h = stp_setup(10);
    h.run(stp_buy(25, StpMode::DecrementAndCancel)).unwrap();
    let reason = CancelReason::SelfTradePrevented;
    assert_eq!(h.ev[1], Event::Canceled { symbol: 0, id: 1, canceled: 10, filled: 0, reason });
    assert_eq!(h.ev[2], Event::Reduced { symbol: 0, id: 3, by: 10, remaining: 15, reason });
    assert_eq!(h.fills(), vec![(100, 10, 2, 3)]);
    let o = h.book().order(3).unwrap();
    assert_eq!((o.qty, o.filled, o.canceled, o.remaining), (25, 10, 10, 5));
    // The resting order is larger: it shrinks, the taker is canceled.
    let mut h = stp_setup(30);
    h.run(stp_buy(10, StpMode::DecrementAndCancel)).unwrap();
    assert_eq!(h.ev[1], Event::Reduced { symbol: 0, id: 1, by: 10, remaining: 20, reason });
    assert_eq!(h.ev[2], Event::Canceled { symbol: 0, id: 3, canceled: 10, filled: 0, reason });
    assert!(h.trades().is_empty());
    let o = h.book().order(1).unwrap();
    assert_eq!((o.qty, o.filled, o.canceled, o.remaining), (30, 0, 10, 20));
    assert_eq!(h.book().best_ask(), Some(DepthLevel { price: 100, qty: 30, orders: 2 }));
    // A later replace counts the canceled part as done.
    h.replace(1, 100, 10).unwrap();
    assert_eq!(h.canceled(), vec![(1, 20, CancelReason::ReplacedAtOrBelowFilled)]);
}

#[test]
fn stp_compares_owners_not_accounts_and_stops_fok() {
    // Same owner through another account: prevented (above). Other owners trade.
    let mut h = stp_setup(10);
    h.run(NewOrder::limit(3, 0, Side::Buy, 100, 5).by(10, 7)).unwrap();
    assert_eq!(h.fills(), vec![(100, 5, 1, 3)]);
    // A FOK that self-trade prevention would stop is not fillable.
    let mut h = stp_setup(10);
    for mode in [StpMode::CancelNewest, StpMode::CancelBoth, StpMode::DecrementAndCancel] {
        assert_eq!(h.run(stp_buy(20, mode).tif(TimeInForce::Fok)), Err(RejectReason::FokNotFillable));
    }
    // Cancel-oldest skips its own order: only 10 left to fill against.
    assert_eq!(h.run(stp_buy(20, StpMode::CancelOldest).tif(TimeInForce::Fok)), Err(RejectReason::FokNotFillable));
    h.run(stp_buy(10, StpMode::CancelOldest).tif(TimeInForce::Fok)).unwrap();
    assert_eq!(h.canceled(), vec![(1, 10, CancelReason::SelfTradePrevented)]);
    assert_eq!(h.fills(), vec![(100, 10, 2, 3)]);
}

// ---- refusals ----

#[test]
fn every_refusal_has_a_stable_code_and_leaves_the_venue_exactly_as_it_was() {
    let mut h = H::new(btc());
    h.limit(1, Side::Buy, 6_400_000, 2_000, 1).unwrap();
    h.limit(2, Side::Sell, 6_400_100, 3_000, 2).unwrap();
    h.run(NewOrder::limit(3, 0, Side::Sell, 6_400_200, 1_000).by(3, 3).post_only()).unwrap();
    let good = NewOrder::limit(10, 0, Side::Buy, 6_399_950, 1_000);
    let big_price = (MAX_PRICE / 50 + 1) * 50;
    let big_qty = (MAX_QTY / 1_000 + 1) * 1_000;
    let rep = |id, price, qty| Command::Replace(Replace { symbol: 0, id, price, qty });
    let cases: Vec<(Command, RejectReason, &str)> = vec![
        (NewOrder { symbol: 7, ..good }.into(), RejectReason::UnknownSymbol, "unknown_symbol"),
        (NewOrder { price: 6_400_025, ..good }.into(), RejectReason::OffTick, "off_tick"),
        (NewOrder { qty: 1_500, ..good }.into(), RejectReason::OffLot, "off_lot"),
        (NewOrder { qty: 0, ..good }.into(), RejectReason::ZeroQuantity, "zero_quantity"),
        (NewOrder { qty: big_qty, ..good }.into(), RejectReason::QuantityTooLarge, "quantity_too_large"),
        (NewOrder { price: 0, ..good }.into(), RejectReason::PriceOutOfRange, "price_out_of_range"),
        (NewOrder { price: -50, ..good }.into(), RejectReason::PriceOutOfRange, "price_out_of_range"),
        (NewOrder { price: big_price, ..good }.into(), RejectReason::PriceOutOfRange, "price_out_of_range"),
        (
            NewOrder { price: 6_400_100, ..good }.post_only().into(),
            RejectReason::PostOnlyWouldCross,
            "post_only_would_cross",
        ),
        (
            good.post_only().tif(TimeInForce::Ioc).into(),
            RejectReason::PostOnlyRequiresGtcLimit,
            "post_only_requires_gtc_limit",
        ),
        (
            NewOrder { price: 6_400_100, qty: 4_000, ..good }.tif(TimeInForce::Fok).into(),
            RejectReason::FokNotFillable,
            "fok_not_fillable",
        ),
        (NewOrder { id: 2, ..good }.into(), RejectReason::DuplicateOrderId, "duplicate_order_id"),
        (NewOrder { id: 3, ..good }.into(), RejectReason::DuplicateOrderId, "duplicate_order_id"),
        (NewOrder { id: 0, ..good }.into(), RejectReason::DuplicateOrderId, "duplicate_order_id"),
        (Cancel { symbol: 0, id: 99 }.into(), RejectReason::UnknownOrder, "unknown_order"),
        (Cancel { symbol: 5, id: 1 }.into(), RejectReason::UnknownSymbol, "unknown_symbol"),
        (rep(99, 6_400_000, 1_000), RejectReason::UnknownOrder, "unknown_order"),
        (rep(1, 6_400_010, 1_000), RejectReason::OffTick, "off_tick"),
        (rep(1, 6_400_000, 1_001), RejectReason::OffLot, "off_lot"),
        (rep(1, 6_400_000, 0), RejectReason::ZeroQuantity, "zero_quantity"),
        (rep(1, -1, 1_000), RejectReason::PriceOutOfRange, "price_out_of_range"),
        (rep(3, 6_400_000, 1_000), RejectReason::PostOnlyWouldCross, "post_only_would_cross"),
        (Command::AddInstrument(btc()), RejectReason::DuplicateSymbol, "duplicate_symbol"),
        (
            Command::AddInstrument(Instrument { tick: 0, ..aapl() }),
            RejectReason::InvalidInstrument,
            "invalid_instrument",
        ),
        (
            Command::AddInstrument(Instrument { lot: 0, ..aapl() }),
            RejectReason::InvalidInstrument,
            "invalid_instrument",
        ),
        (
            Command::AddInstrument(Instrument { symbol: String::new(), ..aapl() }),
            RejectReason::InvalidInstrument,
            "invalid_instrument",
        ),
        (
            Command::AddInstrument(Instrument { symbol: "X".repeat(65), ..aapl() }),
            RejectReason::InvalidInstrument,
            "invalid_instrument",
        ),
        (
            Command::AddInstrument(Instrument { symbol: "A\nB".into(), ..aapl() }),
            RejectReason::InvalidInstrument,
            "invalid_instrument",
        ),
        (
            Command::AddInstrument(Instrument { price_decimals: 19, ..aapl() }),
            RejectReason::InvalidInstrument,
            "invalid_instrument",
        ),
    ];
    for (cmd, reason, code) in cases {
        let (snapshot, digest, next_id) = (h.v.snapshot(), h.v.digest(), h.v.next_order_id());
        assert_eq!(h.v.check(&cmd), Err(reason), "{cmd:?}");
        assert_eq!(h.run(cmd.clone()), Err(reason), "{cmd:?}");
        assert_eq!(reason.as_str(), code);
        assert_eq!(reason.to_string(), code);
        assert_eq!(h.ev.len(), 1, "{cmd:?}");
        let Event::Rejected { kind, reason: r, .. } = h.ev[0] else { panic!("{:?}", h.ev) };
        assert_eq!((kind, r), (cmd.kind(), reason));
        assert_eq!(h.v.snapshot(), snapshot, "{cmd:?} changed the venue");
        assert_eq!(h.v.digest(), digest);
        assert_eq!(h.v.next_order_id(), next_id);
    }
    // A refused order does not use its id up.
    assert_eq!(h.v.next_order_id(), 4);
    h.run(NewOrder { id: 4, ..good }).unwrap();
    // Gaps are fine; going back is not.
    h.run(NewOrder { id: 100, ..good }).unwrap();
    assert_eq!(h.run(NewOrder { id: 50, ..good }), Err(RejectReason::DuplicateOrderId));
}

#[test]
fn a_side_never_holds_more_open_quantity_than_a_u64_counts() {
    // 2,047 orders of MAX_QTY (2^53) leave room for MAX_QTY - 1 in a u64 total.
    let mut h = H::new(aapl());
    for id in 1..=2_047 {
        h.limit(id, Side::Buy, 100 + (id % 3) as i64, MAX_QTY, 1).unwrap();
    }
    let before = h.v.snapshot();
    assert_eq!(h.limit(2_048, Side::Buy, 100, MAX_QTY, 1), Err(RejectReason::BookFull));
    assert_eq!(h.v.snapshot(), before);
    // Exactly full: u64::MAX open on the bid side.
    h.limit(2_048, Side::Buy, 99, MAX_QTY - 1, 1).unwrap();
    let total: u128 = h.book().depth(Side::Buy, 10).iter().map(|l| u128::from(l.qty)).sum();
    assert_eq!(total, u128::from(u64::MAX));
    assert_eq!(h.limit(2_049, Side::Buy, 99, 1, 1), Err(RejectReason::BookFull));
    assert_eq!(h.replace(2_048, 99, MAX_QTY), Err(RejectReason::BookFull));
    // Orders that cannot rest are not limited, and the other side is separate.
    h.run(NewOrder::limit(2_049, 0, Side::Buy, 100, MAX_QTY).tif(TimeInForce::Ioc)).unwrap();
    h.limit(2_050, Side::Sell, 200, MAX_QTY, 2).unwrap();
    // Taking quantity out makes room again.
    h.replace(1, 100, 1).unwrap();
    h.replace(2_048, 99, MAX_QTY).unwrap();
    h.run(NewOrder::market(2_051, 0, Side::Sell, MAX_QTY).by(3, 3)).unwrap();
    assert_eq!(h.fills(), vec![(102, MAX_QTY, 2, 2_051)]);
    h.limit(2_052, Side::Buy, 100, MAX_QTY, 1).unwrap();
}

#[test]
fn reason_and_mode_codes_are_stable() {
    let cancels = [
        (CancelReason::Requested, "requested"),
        (CancelReason::SelfTradePrevented, "self_trade_prevented"),
        (CancelReason::ImmediateOrCancel, "immediate_or_cancel"),
        (CancelReason::NoLiquidity, "no_liquidity"),
        (CancelReason::ReplacedAtOrBelowFilled, "replaced_at_or_below_filled"),
    ];
    for (r, code) in cancels {
        assert_eq!(r.as_str(), code);
    }
    let modes: Vec<_> = StpMode::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(modes, ["cancel_newest", "cancel_oldest", "cancel_both", "decrement_and_cancel"]);
    assert_eq!(RejectReason::BookFull.as_str(), "book_full");
    assert_eq!(OrderStatus::PartiallyFilled.as_str(), "partially_filled");
    assert_eq!(CommandKind::New.as_str(), "new_order");
}

// ---- venue ----

#[test]
fn several_symbols_are_independent_and_the_digest_is_deterministic() {
    let script = |extra: bool| {
        let mut v = Venue::new();
        v.apply(&Command::AddInstrument(aapl()), &mut Discard).unwrap();
        v.apply(&Command::AddInstrument(btc()), &mut Discard).unwrap();
        v.apply(&NewOrder::limit(1, 0, Side::Buy, 100, 5).into(), &mut Discard).unwrap();
        v.apply(&NewOrder::limit(2, 1, Side::Sell, 6_400_000, 1_000).into(), &mut Discard).unwrap();
        if extra {
            v.apply(&NewOrder::limit(3, 1, Side::Sell, 6_400_000, 1_000).into(), &mut Discard).unwrap();
        }
        v
    };
    let (a, b, c) = (script(false), script(false), script(true));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.snapshot(), b.snapshot());
    assert_ne!(a.digest(), c.digest());
    assert_eq!(a.symbol("BTC-USD"), Some(1));
    assert_eq!(a.instrument(1).unwrap().lot, 1_000);
    assert_eq!(a.book(0).unwrap().best_ask(), None);
    assert_eq!(a.book(1).unwrap().best_ask().unwrap().price, 6_400_000);
    assert_eq!(a.order(0, 1).unwrap().price, 100);
    assert_eq!(a.order(1, 1), None);
    assert_eq!(a.applied(), 4);
    assert_eq!(a.books().len(), 2);
}

#[test]
fn a_book_can_be_driven_alone() {
    let mut book = Book::new(0, aapl());
    let mut ev = Vec::new();
    book.submit(&NewOrder::limit(1, 0, Side::Sell, 100, 5), &mut ev).unwrap();
    book.submit(&NewOrder::limit(2, 0, Side::Buy, 100, 5).by(1, 1), &mut ev).unwrap();
    assert_eq!(book.trades(), 1);
    assert_eq!(book.submit(&NewOrder::limit(2, 0, Side::Buy, 90, 5), &mut ev), Err(RejectReason::DuplicateOrderId));
    assert_eq!(book.cancel(&Cancel { symbol: 0, id: 1 }, &mut ev), Err(RejectReason::UnknownOrder));
    assert_eq!(book.submit(&NewOrder::limit(3, 1, Side::Buy, 90, 5), &mut ev), Err(RejectReason::UnknownSymbol));
    book.submit(&NewOrder::limit(3, 0, Side::Buy, 90, 5), &mut ev).unwrap();
    book.replace(&Replace { symbol: 0, id: 3, price: 91, qty: 5 }, &mut ev).unwrap();
    assert_eq!(book.best_bid().unwrap().price, 91);
}

#[test]
fn deep_books_keep_levels_sorted() {
    // Prices inserted in a scrambled order; levels come out best first.
    let mut h = H::new(aapl());
    let mut id = 0;
    for i in 0..200i64 {
        let p = 1_000 + (i * 37) % 200;
        id += 1;
        h.limit(id, Side::Buy, p, 1, 1).unwrap();
        id += 1;
        h.limit(id, Side::Sell, 2_000 + p, 1, 1).unwrap();
    }
    let bids: Vec<_> = h.book().depth(Side::Buy, 500).iter().map(|l| l.price).collect();
    let asks: Vec<_> = h.book().depth(Side::Sell, 500).iter().map(|l| l.price).collect();
    assert_eq!(bids, (1_000..1_200).rev().collect::<Vec<_>>());
    assert_eq!(asks, (3_000..3_200).collect::<Vec<_>>());
    // Cancel every other level from the middle out, then sweep with a market order.
    for id in (1..=400).step_by(4) {
        h.cancel(id).unwrap();
    }
    assert_eq!(h.book().level_count(Side::Buy), 100);
    h.run(NewOrder::market(1_000, 0, Side::Sell, 1_000).by(2, 2)).unwrap();
    let prices: Vec<_> = h.trades().iter().map(|t| t.price).collect();
    assert_eq!(prices.len(), 100);
    assert!(prices.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(h.book().best_bid(), None);
}

// ---- random sequences ----

/// What the event stream alone says about one order.
#[derive(Debug, Clone)]
struct Tracked {
    order: NewOrder,
    qty: Qty,
    filled: Qty,
    canceled: Qty,
    done: bool,
}

/// Applies a command and checks every invariant; the model applies it too.
struct Checker {
    venue: Venue,
    model: Model,
    events: Vec<Event>,
    orders: HashMap<OrderId, Tracked>,
    /// L2 rebuilt from `Event::Level` alone.
    l2: BTreeMap<(u8, Price), (Qty, u32)>,
}

impl Checker {
    fn new() -> Self {
        let mut venue = Venue::new();
        venue.apply(&Command::AddInstrument(model::test_instrument()), &mut Discard).unwrap();
        Self { venue, model: Model::default(), events: Vec::new(), orders: HashMap::new(), l2: BTreeMap::new() }
    }

    fn step(&mut self, cmd: &Command) -> Result<(), TestCaseError> {
        self.events.clear();
        let before = self.venue.snapshot();
        let got = self.venue.apply(cmd, &mut self.events);
        let want = self.model.apply(cmd);
        prop_assert_eq!(got, want, "verdict on {:?}", cmd);
        if got.is_err() {
            prop_assert_eq!(self.events.len(), 1);
            let rejected = matches!(self.events[0], Event::Rejected { .. });
            prop_assert!(rejected, "not a rejection: {:?}", self.events);
            prop_assert_eq!(&self.venue.snapshot(), &before, "a refused {:?} changed the book", cmd);
            return Ok(());
        }
        // Same trades, in the same order (price-time priority, STP), as the naive book.
        let trades: Vec<MTrade> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Trade(t) => Some((t.price, t.qty, t.maker_id, t.taker_id, t.aggressor)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&trades, &self.model.trades, "trades of {:?}", cmd);
        // An aggressor's trades never get better as it goes (best price first).
        for w in trades.windows(2) {
            let worse_or_equal = match w[0].4 {
                Side::Buy => w[1].0 >= w[0].0,
                Side::Sell => w[1].0 <= w[0].0,
            };
            prop_assert!(worse_or_equal, "trades out of price order: {:?}", trades);
        }
        for e in &self.events.clone() {
            self.on_event(e)?;
        }
        self.check_book()?;
        if let Command::New(o) = cmd {
            self.check_order_type(o)?;
        }
        Ok(())
    }

    fn on_event(&mut self, e: &Event) -> Result<(), TestCaseError> {
        match *e {
            Event::Accepted(o) => {
                prop_assert!(!self.orders.contains_key(&o.id));
                self.orders.insert(o.id, Tracked { order: o, qty: o.qty, filled: 0, canceled: 0, done: false });
            }
            Event::Trade(t) => {
                prop_assert!(t.qty > 0);
                prop_assert_ne!(t.maker_owner, t.taker_owner, "a self-trade");
                prop_assert_ne!(t.maker_id, t.taker_id);
                let buy = &self.orders[&t.buy_id()];
                let sell = &self.orders[&t.sell_id()];
                prop_assert_eq!(buy.order.side, Side::Buy);
                prop_assert_eq!(sell.order.side, Side::Sell);
                prop_assert!(!buy.done && !sell.done);
                prop_assert_eq!(self.orders[&t.maker_id].order.account, t.maker_account);
                prop_assert_eq!(self.orders[&t.taker_id].order.owner, t.taker_owner);
                for id in [t.maker_id, t.taker_id] {
                    let o = self.orders.get_mut(&id).unwrap();
                    o.filled += t.qty;
                    prop_assert!(o.filled + o.canceled <= o.qty);
                }
            }
            Event::PartiallyFilled { id, filled, remaining, .. } => {
                let o = &self.orders[&id];
                prop_assert_eq!(o.filled, filled);
                prop_assert!(remaining > 0);
                prop_assert_eq!(o.filled + o.canceled + remaining, o.qty);
            }
            Event::Filled { id, filled, .. } => {
                let o = self.orders.get_mut(&id).unwrap();
                prop_assert_eq!(o.filled, filled);
                prop_assert_eq!(o.filled + o.canceled, o.qty);
                o.done = true;
            }
            Event::Reduced { id, by, remaining, .. } => {
                let o = self.orders.get_mut(&id).unwrap();
                o.canceled += by;
                prop_assert!(remaining > 0);
                prop_assert_eq!(o.filled + o.canceled + remaining, o.qty);
            }
            Event::Canceled { id, canceled, filled, .. } => {
                let o = self.orders.get_mut(&id).unwrap();
                prop_assert!(!o.done);
                prop_assert_eq!(o.filled, filled);
                o.canceled += canceled;
                prop_assert_eq!(o.filled + o.canceled, o.qty, "canceled {} of {:?}", canceled, o);
                o.done = true;
            }
            Event::Replaced { id, qty, remaining, price, .. } => {
                let o = self.orders.get_mut(&id).unwrap();
                o.qty = qty;
                o.order.price = price;
                prop_assert_eq!(o.filled + o.canceled + remaining, o.qty);
            }
            Event::Level { side, price, qty, orders, .. } => {
                prop_assert_eq!(qty == 0, orders == 0);
                if qty == 0 {
                    self.l2.remove(&(side as u8, price));
                } else {
                    self.l2.insert((side as u8, price), (qty, orders));
                }
            }
            _ => prop_assert!(false, "unexpected event {:?}", e),
        }
        Ok(())
    }

    fn check_book(&self) -> Result<(), TestCaseError> {
        let book = self.venue.book(0).unwrap();
        // Never crossed at rest.
        if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
            prop_assert!(bid.price < ask.price, "crossed: {:?} / {:?}", bid, ask);
        }
        // The same levels and queues as the naive book.
        let snap = book.snapshot();
        for (side, levels) in [(Side::Buy, &snap.bids), (Side::Sell, &snap.asks)] {
            let mine: Vec<_> = levels
                .iter()
                .map(|l| (l.price, l.orders.iter().map(|o| (o.id, o.qty, o.filled, o.remaining)).collect::<Vec<_>>()))
                .collect();
            prop_assert_eq!(mine, self.model.levels(side), "{:?} side", side);
            for l in levels {
                prop_assert_eq!(l.qty, l.orders.iter().map(|o| o.remaining).sum::<Qty>());
                prop_assert!(!l.orders.is_empty());
            }
        }
        // L2 rebuilt from the events is the book's depth.
        let mut depth = BTreeMap::new();
        for side in [Side::Buy, Side::Sell] {
            for l in book.depth(side, usize::MAX) {
                depth.insert((side as u8, l.price), (l.qty, l.orders));
            }
        }
        prop_assert_eq!(&self.l2, &depth);
        // Every live order: the events' account of it matches the book's, and
        // quantity is conserved; every order the events leave open is on the book.
        let mut live = 0;
        for (id, t) in &self.orders {
            if t.done {
                prop_assert!(book.order(*id).is_none());
                continue;
            }
            live += 1;
            let o = book.order(*id);
            prop_assert!(o.is_some(), "order {} neither done nor resting", id);
            let o = o.unwrap();
            prop_assert_eq!((o.qty, o.filled, o.canceled), (t.qty, t.filled, t.canceled));
            prop_assert_eq!(o.filled + o.remaining + o.canceled, o.qty);
            prop_assert!(o.remaining > 0);
            prop_assert_eq!(o.status, if o.filled > 0 { OrderStatus::PartiallyFilled } else { OrderStatus::New });
        }
        prop_assert_eq!(live, book.len());
        Ok(())
    }

    fn check_order_type(&self, o: &NewOrder) -> Result<(), TestCaseError> {
        let t = &self.orders[&o.id];
        let taken: Qty = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Trade(tr) if tr.taker_id == o.id => Some(tr.qty),
                _ => None,
            })
            .sum();
        let resting = self.venue.order(0, o.id).is_some();
        if o.tif == TimeInForce::Fok {
            prop_assert_eq!(taken, o.qty, "a FOK filled in part");
            prop_assert!(t.done && t.canceled == 0);
        }
        if o.post_only {
            prop_assert_eq!(taken, 0, "a post-only order took");
        }
        if o.order_type == OrderType::Market || o.tif != TimeInForce::Gtc {
            prop_assert!(!resting, "an IOC/FOK/market order rests");
            prop_assert!(t.done);
        }
        Ok(())
    }
}

/// Runs a whole generated sequence through the checker.
fn check_ops(ops: &[Op]) -> Result<(), TestCaseError> {
    let cmds = model::commands(ops);
    let mut c = Checker::new();
    for cmd in &cmds[1..] {
        c.step(cmd)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_match_the_reference_book_and_keep_every_invariant(
        ops in proptest::collection::vec(model::op(), 1..250)
    ) {
        check_ops(&ops)?;
    }
}

#[test]
fn a_long_seeded_sequence_matches_the_reference_book() {
    // A longer run than proptest's cases, with a fixed seed (xorshift).
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    };
    let mut ops = Vec::new();
    for _ in 0..5_000 {
        let op = match next(21) {
            0..=11 => Op::New {
                sell: next(2) == 1,
                kind: u8::try_from(next(10)).unwrap(),
                off: i64::try_from(next(9)).unwrap() - 4,
                lots: 1 + next(6),
                account: u32::try_from(next(4)).unwrap(),
                stp: u8::try_from(next(4)).unwrap(),
            },
            12..=15 => Op::Cancel { pick: usize::try_from(next(1 << 20)).unwrap() },
            16..=19 => Op::Replace {
                pick: usize::try_from(next(1 << 20)).unwrap(),
                off: i64::try_from(next(9)).unwrap() - 4,
                lots: 1 + next(6),
            },
            _ => Op::Bad { which: u8::try_from(next(9)).unwrap(), pick: usize::try_from(next(1 << 20)).unwrap() },
        };
        ops.push(op);
    }
    check_ops(&ops).unwrap();
}
