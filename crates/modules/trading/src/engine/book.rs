//! One symbol's limit order book: price-time priority, one writer.
//!
//! Layout (chosen for the hot path: no allocation once warm, O(1) cancel):
//! - orders live in a slab (`Vec<Order>` with an intrusive free list) and
//!   are chained per price level in a doubly linked FIFO list (`prev`/`next`
//!   slot indices), so a cancel unlinks in O(1);
//! - price levels live in a second slab; each side keeps a `Vec` of
//!   `(key, level)` sorted so that the best level is *last* (bids by price,
//!   asks by negated price), which makes the touch a `last()`/`pop()` and
//!   inserting near the touch a short `memmove`;
//! - order id → slot goes through a `HashMap` with a one-multiply hasher
//!   (ids are integers chosen by the venue, not attacker-controlled keys).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::command::{Cancel, CommandKind, NewOrder, Replace, StpMode};
use super::digest::Digest;
use super::event::{
    BookSnapshot, CancelReason, DepthLevel, Event, EventSink, LevelSnapshot, OrderState, OrderStatus, RejectReason,
    Trade,
};
use crate::types::{
    AccountId, Instrument, MAX_PRICE, MAX_QTY, OrderId, OrderType, Price, Qty, Side, SymbolId, TimeInForce,
};

/// "No slot": the end of a list.
const NIL: u32 = u32::MAX;
/// The most order slots a book indexes (slot numbers are `u32`, `NIL` excluded).
const MAX_SLOTS: usize = (u32::MAX - 1) as usize;

/// Order id → slot: ids are venue-chosen integers, so one multiply (Fibonacci
/// hashing) spreads them; the fold keeps low bits mixed for hashbrown's
/// bucket index while its tag uses the top bits.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        let x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}

type IdIndex = HashMap<OrderId, u32, BuildHasherDefault<IdHasher>>;

/// A resting order in the slab: 63 bytes, aligned so that each order is
/// exactly one cache line (a cancel touches one line per order).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Order {
    id: OrderId,
    price: Price,
    qty: Qty,
    filled: Qty,
    remaining: Qty,
    account: AccountId,
    owner: u32,
    prev: u32,
    next: u32,
    level: u32,
    side: Side,
    stp: StpMode,
    post_only: bool,
}

/// A price level: totals and the FIFO list's ends. A free level's `head`
/// links the free list.
#[derive(Debug, Clone, Copy)]
struct Level {
    price: Price,
    qty: Qty,
    count: u32,
    head: u32,
    tail: u32,
}

/// An incoming order while it matches.
struct Taker {
    id: OrderId,
    account: AccountId,
    owner: u32,
    side: Side,
    stp: StpMode,
    filled: Qty,
    remaining: Qty,
    /// Stopped by self-trade prevention: the rest is to be canceled.
    killed: bool,
}

/// The sort key of a level on its side: larger is better on both sides, so
/// the best level is the last of the sorted `Vec`.
#[inline]
const fn key(side: Side, price: Price) -> i64 {
    match side {
        Side::Buy => price,
        Side::Sell => -price,
    }
}

/// A side's slot in per-side arrays.
#[inline]
const fn ix(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// Where key `k` is in a side's ascending `(key, level)` list, as
/// `slice::binary_search` answers: most searches are near the touch (the
/// end), so the last few entries are scanned before a binary search.
#[inline]
fn locate(v: &[(i64, u32)], k: i64) -> Result<usize, usize> {
    const NEAR: usize = 8;
    let lo = v.len().saturating_sub(NEAR);
    let mut i = v.len();
    while i > lo {
        let x = v[i - 1].0;
        if x == k {
            return Ok(i - 1);
        }
        if x < k {
            return Err(i);
        }
        i -= 1;
    }
    v[..lo].binary_search_by(|&(x, _)| x.cmp(&k))
}

/// One symbol's order book. Driven through `&mut self` by a single writer
/// (a [`Venue`](super::Venue), or a thread that owns the book); no locks.
///
/// Every command method checks first and, if the command is refused, pushes
/// one [`Event::Rejected`] and changes nothing.
#[derive(Debug, Clone)]
pub struct Book {
    symbol: SymbolId,
    instrument: Instrument,
    orders: Vec<Order>,
    free_order: u32,
    levels: Vec<Level>,
    free_level: u32,
    /// `(price, level)`, ascending: best bid last.
    bids: Vec<(i64, u32)>,
    /// `(-price, level)`, ascending: best ask last.
    asks: Vec<(i64, u32)>,
    index: IdIndex,
    /// Open quantity resting per side (`[bids, asks]`): every level's total
    /// is at most this, so refusing what would overflow it keeps level
    /// totals exact.
    open: [Qty; 2],
    last_id: OrderId,
    trades: u64,
}

impl Book {
    /// An empty book. The instrument is taken as valid (the venue checks it
    /// when it is listed); a tick or lot below 1 is treated as 1.
    #[must_use]
    pub fn new(symbol: SymbolId, mut instrument: Instrument) -> Self {
        instrument.tick = instrument.tick.max(1);
        instrument.lot = instrument.lot.max(1);
        Self {
            symbol,
            instrument,
            orders: Vec::new(),
            free_order: NIL,
            levels: Vec::new(),
            free_level: NIL,
            bids: Vec::new(),
            asks: Vec::new(),
            index: IdIndex::default(),
            open: [0, 0],
            last_id: 0,
            trades: 0,
        }
    }

    /// The symbol id.
    #[must_use]
    pub const fn symbol(&self) -> SymbolId {
        self.symbol
    }

    /// The instrument.
    #[must_use]
    pub const fn instrument(&self) -> &Instrument {
        &self.instrument
    }

    /// Resting orders.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No resting orders.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The highest order id this book accepted (0: none).
    #[must_use]
    pub const fn last_order_id(&self) -> OrderId {
        self.last_id
    }

    /// Trades so far, which is also the last trade id.
    #[must_use]
    pub const fn trades(&self) -> u64 {
        self.trades
    }

    const fn side_levels(&self, side: Side) -> &Vec<(i64, u32)> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn depth_level(&self, level: u32) -> DepthLevel {
        let l = &self.levels[level as usize];
        DepthLevel { price: l.price, qty: l.qty, orders: l.count }
    }

    /// The best level of a side.
    #[must_use]
    pub fn best(&self, side: Side) -> Option<DepthLevel> {
        self.side_levels(side).last().map(|&(_, l)| self.depth_level(l))
    }

    /// The best (highest) bid.
    #[must_use]
    pub fn best_bid(&self) -> Option<DepthLevel> {
        self.best(Side::Buy)
    }

    /// The best (lowest) ask.
    #[must_use]
    pub fn best_ask(&self) -> Option<DepthLevel> {
        self.best(Side::Sell)
    }

    /// The top `n` levels of a side, best first.
    #[must_use]
    pub fn depth(&self, side: Side, n: usize) -> Vec<DepthLevel> {
        self.side_levels(side).iter().rev().take(n).map(|&(_, l)| self.depth_level(l)).collect()
    }

    /// Number of price levels on a side.
    #[must_use]
    pub fn level_count(&self, side: Side) -> usize {
        self.side_levels(side).len()
    }

    /// A resting order's state; `None` if no live order has this id here
    /// (done orders are reported by events, not kept).
    #[must_use]
    pub fn order(&self, id: OrderId) -> Option<OrderState> {
        self.index.get(&id).map(|&slot| self.state(slot))
    }

    fn state(&self, slot: u32) -> OrderState {
        let o = &self.orders[slot as usize];
        OrderState {
            id: o.id,
            symbol: self.symbol,
            account: o.account,
            owner: o.owner,
            side: o.side,
            price: o.price,
            qty: o.qty,
            filled: o.filled,
            remaining: o.remaining,
            canceled: o.qty - o.filled - o.remaining,
            status: if o.filled > 0 { OrderStatus::PartiallyFilled } else { OrderStatus::New },
            post_only: o.post_only,
            stp: o.stp,
        }
    }

    fn level_snapshot(&self, level: u32) -> LevelSnapshot {
        let l = &self.levels[level as usize];
        let mut orders = Vec::with_capacity(l.count as usize);
        let mut cur = l.head;
        while cur != NIL {
            orders.push(self.state(cur));
            cur = self.orders[cur as usize].next;
        }
        LevelSnapshot { price: l.price, qty: l.qty, orders }
    }

    /// The whole book, every order in queue order; comparable with `==`.
    #[must_use]
    pub fn snapshot(&self) -> BookSnapshot {
        BookSnapshot {
            symbol: self.symbol,
            instrument: self.instrument.clone(),
            last_order_id: self.last_id,
            trades: self.trades,
            bids: self.bids.iter().rev().map(|&(_, l)| self.level_snapshot(l)).collect(),
            asks: self.asks.iter().rev().map(|&(_, l)| self.level_snapshot(l)).collect(),
        }
    }

    /// Feeds the book's logical state (not its memory layout) to a digest.
    pub(crate) fn digest_into(&self, d: &mut Digest) {
        d.u32(self.symbol);
        d.str(&self.instrument.symbol);
        d.u8(self.instrument.price_decimals);
        d.u8(self.instrument.qty_decimals);
        d.i64(self.instrument.tick);
        d.u64(self.instrument.lot);
        d.u64(self.last_id);
        d.u64(self.trades);
        for side in [&self.bids, &self.asks] {
            d.u64(side.len() as u64);
            for &(_, level) in side.iter().rev() {
                let l = &self.levels[level as usize];
                d.i64(l.price);
                d.u64(l.qty);
                d.u32(l.count);
                let mut cur = l.head;
                while cur != NIL {
                    let o = &self.orders[cur as usize];
                    d.u64(o.id);
                    d.u32(o.account);
                    d.u32(o.owner);
                    d.u8(o.side as u8);
                    d.i64(o.price);
                    d.u64(o.qty);
                    d.u64(o.filled);
                    d.u64(o.remaining);
                    d.u8(u8::from(o.post_only));
                    d.u8(o.stp as u8);
                    cur = o.next;
                }
            }
        }
    }

    // ---- checks (pure) ----

    #[inline]
    const fn check_qty(&self, qty: Qty) -> Result<(), RejectReason> {
        if qty == 0 {
            return Err(RejectReason::ZeroQuantity);
        }
        if qty > MAX_QTY {
            return Err(RejectReason::QuantityTooLarge);
        }
        if self.instrument.lot != 1 && !qty.is_multiple_of(self.instrument.lot) {
            return Err(RejectReason::OffLot);
        }
        Ok(())
    }

    #[inline]
    const fn check_price(&self, price: Price) -> Result<(), RejectReason> {
        if price <= 0 || price > MAX_PRICE {
            return Err(RejectReason::PriceOutOfRange);
        }
        if self.instrument.tick != 1 && price % self.instrument.tick != 0 {
            return Err(RejectReason::OffTick);
        }
        Ok(())
    }

    /// Whether a limit order at `price` on `side` would trade on arrival.
    #[inline]
    fn crosses(&self, side: Side, price: Price) -> bool {
        match side {
            Side::Buy => self.asks.last().is_some_and(|&(k, _)| price >= -k),
            Side::Sell => self.bids.last().is_some_and(|&(k, _)| price <= k),
        }
    }

    /// Whether a taker can be filled in full now, walking the other side in
    /// priority order as matching would (self-trade prevention included).
    fn fok_fillable(&self, side: Side, threshold: i64, mut need: Qty, owner: u32, stp: StpMode) -> bool {
        for &(k, level) in self.side_levels(side.opposite()).iter().rev() {
            if k < threshold {
                return false;
            }
            let mut cur = self.levels[level as usize].head;
            while cur != NIL {
                let m = &self.orders[cur as usize];
                if m.owner == owner {
                    // Only cancel-oldest lets the taker go on (the resting
                    // order is canceled); the others stop or shrink it.
                    if stp != StpMode::CancelOldest {
                        return false;
                    }
                } else if m.remaining >= need {
                    return true;
                } else {
                    need -= m.remaining;
                }
                cur = m.next;
            }
        }
        false
    }

    /// Checks a new order without changing anything.
    ///
    /// # Errors
    /// Why the order would be refused.
    pub fn check_new(&self, o: &NewOrder) -> Result<(), RejectReason> {
        if o.symbol != self.symbol {
            return Err(RejectReason::UnknownSymbol);
        }
        if o.id <= self.last_id {
            return Err(RejectReason::DuplicateOrderId);
        }
        let market = o.order_type == OrderType::Market;
        if o.post_only && (market || o.tif != TimeInForce::Gtc) {
            return Err(RejectReason::PostOnlyRequiresGtcLimit);
        }
        self.check_qty(o.qty)?;
        if !market {
            self.check_price(o.price)?;
        }
        if o.post_only && self.crosses(o.side, o.price) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if o.tif == TimeInForce::Fok {
            let threshold = if market { i64::MIN } else { key(o.side.opposite(), o.price) };
            if !self.fok_fillable(o.side, threshold, o.qty, o.owner, o.stp) {
                return Err(RejectReason::FokNotFillable);
            }
        }
        let may_rest = !market && o.tif == TimeInForce::Gtc;
        if may_rest
            && ((self.free_order == NIL && self.orders.len() >= MAX_SLOTS)
                || self.open[ix(o.side)].checked_add(o.qty).is_none())
        {
            return Err(RejectReason::BookFull);
        }
        Ok(())
    }

    /// Checks a cancel without changing anything.
    ///
    /// # Errors
    /// Why the cancel would be refused.
    pub fn check_cancel(&self, c: &Cancel) -> Result<(), RejectReason> {
        if c.symbol != self.symbol {
            return Err(RejectReason::UnknownSymbol);
        }
        if !self.index.contains_key(&c.id) {
            return Err(RejectReason::UnknownOrder);
        }
        Ok(())
    }

    /// Checks a replace without changing anything.
    ///
    /// # Errors
    /// Why the replace would be refused.
    pub fn check_replace(&self, r: &Replace) -> Result<(), RejectReason> {
        self.replace_slot(r).map(|_| ())
    }

    /// Checks a replace; the order's slot.
    fn replace_slot(&self, r: &Replace) -> Result<u32, RejectReason> {
        if r.symbol != self.symbol {
            return Err(RejectReason::UnknownSymbol);
        }
        let Some(&slot) = self.index.get(&r.id) else {
            return Err(RejectReason::UnknownOrder);
        };
        self.check_qty(r.qty)?;
        self.check_price(r.price)?;
        let o = &self.orders[slot as usize];
        let done = o.qty - o.remaining;
        if r.qty > done && o.post_only && r.price != o.price && self.crosses(o.side, r.price) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if r.qty > o.qty && self.open[ix(o.side)].checked_add(r.qty - o.qty).is_none() {
            return Err(RejectReason::BookFull);
        }
        Ok(slot)
    }

    // ---- commands ----

    /// Enters a new order: checks it, then matches it and rests what may rest.
    ///
    /// # Errors
    /// Why it was refused (also pushed as [`Event::Rejected`]); nothing changed.
    pub fn submit<S: EventSink + ?Sized>(&mut self, o: &NewOrder, out: &mut S) -> Result<(), RejectReason> {
        let result = self.try_new(o, out);
        if let Err(reason) = result {
            out.event(Event::Rejected { kind: CommandKind::New, symbol: o.symbol, id: o.id, reason });
        }
        result
    }

    /// Cancels a resting order.
    ///
    /// # Errors
    /// Why it was refused (also pushed as [`Event::Rejected`]); nothing changed.
    pub fn cancel<S: EventSink + ?Sized>(&mut self, c: &Cancel, out: &mut S) -> Result<(), RejectReason> {
        let result = self.try_cancel(c, out);
        if let Err(reason) = result {
            out.event(Event::Rejected { kind: CommandKind::Cancel, symbol: c.symbol, id: c.id, reason });
        }
        result
    }

    /// Replaces a resting order (see [`Replace`] for the priority rules).
    ///
    /// # Errors
    /// Why it was refused (also pushed as [`Event::Rejected`]); nothing changed.
    pub fn replace<S: EventSink + ?Sized>(&mut self, r: &Replace, out: &mut S) -> Result<(), RejectReason> {
        let result = self.try_replace(r, out);
        if let Err(reason) = result {
            out.event(Event::Rejected { kind: CommandKind::Replace, symbol: r.symbol, id: r.id, reason });
        }
        result
    }

    /// Checks and applies a new order; a refusal changes nothing and pushes nothing.
    #[inline]
    pub(crate) fn try_new<S: EventSink + ?Sized>(&mut self, o: &NewOrder, out: &mut S) -> Result<(), RejectReason> {
        self.check_new(o)?;
        self.exec_new(o, out);
        Ok(())
    }

    /// Checks and applies a cancel with one index operation; a refusal
    /// changes nothing and pushes nothing.
    #[inline]
    pub(crate) fn try_cancel<S: EventSink + ?Sized>(&mut self, c: &Cancel, out: &mut S) -> Result<(), RejectReason> {
        if c.symbol != self.symbol {
            return Err(RejectReason::UnknownSymbol);
        }
        let slot = self.index.remove(&c.id).ok_or(RejectReason::UnknownOrder)?;
        self.cancel_and_tidy(slot, CancelReason::Requested, out);
        Ok(())
    }

    /// Checks and applies a replace; a refusal changes nothing and pushes nothing.
    #[inline]
    pub(crate) fn try_replace<S: EventSink + ?Sized>(&mut self, r: &Replace, out: &mut S) -> Result<(), RejectReason> {
        let slot = self.replace_slot(r)?;
        self.exec_replace(slot, r, out);
        Ok(())
    }

    /// Applies a new order that passed [`Self::check_new`].
    fn exec_new<S: EventSink + ?Sized>(&mut self, o: &NewOrder, out: &mut S) {
        let market = o.order_type == OrderType::Market;
        let price = if market { 0 } else { o.price };
        self.last_id = o.id;
        out.event(Event::Accepted(NewOrder { price, ..*o }));
        let mut t = Taker {
            id: o.id,
            account: o.account,
            owner: o.owner,
            side: o.side,
            stp: o.stp,
            filled: 0,
            remaining: o.qty,
            killed: false,
        };
        let threshold = if market { i64::MIN } else { key(o.side.opposite(), price) };
        self.match_taker(&mut t, threshold, out);
        let symbol = self.symbol;
        if t.killed {
            let reason = CancelReason::SelfTradePrevented;
            out.event(Event::Canceled { symbol, id: o.id, canceled: t.remaining, filled: t.filled, reason });
        } else if t.remaining > 0 {
            if market {
                let reason = CancelReason::NoLiquidity;
                out.event(Event::Canceled { symbol, id: o.id, canceled: t.remaining, filled: t.filled, reason });
            } else if o.tif != TimeInForce::Gtc {
                let reason = CancelReason::ImmediateOrCancel;
                out.event(Event::Canceled { symbol, id: o.id, canceled: t.remaining, filled: t.filled, reason });
            } else {
                let level = self.level_for(o.side, price);
                let slot = self.alloc_order(Order {
                    id: o.id,
                    price,
                    qty: o.qty,
                    filled: t.filled,
                    remaining: t.remaining,
                    account: o.account,
                    owner: o.owner,
                    prev: NIL,
                    next: NIL,
                    level,
                    side: o.side,
                    stp: o.stp,
                    post_only: o.post_only,
                });
                self.link(slot, level);
                self.index.insert(o.id, slot);
                self.emit_level(o.side, level, out);
            }
        }
    }

    /// Applies a replace that passed [`Self::replace_slot`].
    fn exec_replace<S: EventSink + ?Sized>(&mut self, slot: u32, r: &Replace, out: &mut S) {
        let o = self.orders[slot as usize];
        let done = o.qty - o.remaining;
        if r.qty <= done {
            self.index.remove(&o.id);
            self.cancel_and_tidy(slot, CancelReason::ReplacedAtOrBelowFilled, out);
            return;
        }
        let symbol = self.symbol;
        if r.price == o.price && r.qty <= o.qty {
            let cut = o.qty - r.qty;
            let m = &mut self.orders[slot as usize];
            m.qty = r.qty;
            m.remaining -= cut;
            let remaining = m.remaining;
            self.levels[o.level as usize].qty -= cut;
            self.open[ix(o.side)] -= cut;
            out.event(Event::Replaced { symbol, id: o.id, price: o.price, qty: r.qty, remaining, priority_kept: true });
            if cut > 0 {
                self.emit_level(o.side, o.level, out);
            }
            return;
        }
        // Loses its place: out of the queue, trades if it now crosses, and
        // rests at the back of its new level.
        self.unlink(slot);
        let moved = r.price != o.price;
        if moved {
            self.emit_level(o.side, o.level, out);
        }
        if self.levels[o.level as usize].count == 0 {
            self.remove_level(o.side, o.level);
        }
        let remaining = r.qty - done;
        {
            let m = &mut self.orders[slot as usize];
            m.price = r.price;
            m.qty = r.qty;
            m.remaining = remaining;
            m.level = NIL;
        }
        out.event(Event::Replaced { symbol, id: o.id, price: r.price, qty: r.qty, remaining, priority_kept: false });
        let mut t = Taker {
            id: o.id,
            account: o.account,
            owner: o.owner,
            side: o.side,
            stp: o.stp,
            filled: o.filled,
            remaining,
            killed: false,
        };
        self.match_taker(&mut t, key(o.side.opposite(), r.price), out);
        if t.killed || t.remaining == 0 {
            self.index.remove(&o.id);
            self.free_order(slot);
            if t.killed {
                let reason = CancelReason::SelfTradePrevented;
                out.event(Event::Canceled { symbol, id: o.id, canceled: t.remaining, filled: t.filled, reason });
            }
        } else {
            let m = &mut self.orders[slot as usize];
            m.filled = t.filled;
            m.remaining = t.remaining;
            let level = self.level_for(o.side, r.price);
            self.link(slot, level);
            self.emit_level(o.side, level, out);
        }
    }

    // ---- matching ----

    /// Matches a taker against the other side while the best level's key is
    /// at least `threshold` (`i64::MIN`: any price).
    #[inline]
    fn match_taker<S: EventSink + ?Sized>(&mut self, t: &mut Taker, threshold: i64, out: &mut S) {
        let opp = t.side.opposite();
        let symbol = self.symbol;
        while t.remaining > 0 && !t.killed {
            let best = match opp {
                Side::Buy => self.bids.last(),
                Side::Sell => self.asks.last(),
            };
            let Some(&(k, level)) = best else { break };
            if k < threshold {
                break;
            }
            let li = level as usize;
            let price = self.levels[li].price;
            let mut touched = false;
            let mut cur = self.levels[li].head;
            while cur != NIL && t.remaining > 0 {
                let ci = cur as usize;
                let next = self.orders[ci].next;
                if self.orders[ci].owner == t.owner {
                    match t.stp {
                        StpMode::CancelNewest => {
                            t.killed = true;
                            break;
                        }
                        StpMode::CancelOldest => {
                            touched = true;
                            self.cancel_resting(cur, CancelReason::SelfTradePrevented, out);
                            cur = next;
                            continue;
                        }
                        StpMode::CancelBoth => {
                            touched = true;
                            self.cancel_resting(cur, CancelReason::SelfTradePrevented, out);
                            t.killed = true;
                            break;
                        }
                        StpMode::DecrementAndCancel => {
                            touched = true;
                            let reason = CancelReason::SelfTradePrevented;
                            let m = &mut self.orders[ci];
                            let by = m.remaining.min(t.remaining);
                            m.remaining -= by;
                            let (mid, mfilled, mremaining) = (m.id, m.filled, m.remaining);
                            self.levels[li].qty -= by;
                            self.open[ix(opp)] -= by;
                            if mremaining == 0 {
                                self.unlink(cur);
                                self.index.remove(&mid);
                                self.free_order(cur);
                                out.event(Event::Canceled { symbol, id: mid, canceled: by, filled: mfilled, reason });
                            } else {
                                out.event(Event::Reduced { symbol, id: mid, by, remaining: mremaining, reason });
                            }
                            t.remaining -= by;
                            if t.remaining == 0 {
                                out.event(Event::Canceled { symbol, id: t.id, canceled: by, filled: t.filled, reason });
                            } else {
                                out.event(Event::Reduced { symbol, id: t.id, by, remaining: t.remaining, reason });
                            }
                            cur = next;
                            continue;
                        }
                    }
                }
                touched = true;
                let m = &mut self.orders[ci];
                let qty = m.remaining.min(t.remaining);
                m.remaining -= qty;
                m.filled += qty;
                let (mid, maccount, mowner, mfilled, mremaining) = (m.id, m.account, m.owner, m.filled, m.remaining);
                self.levels[li].qty -= qty;
                self.open[ix(opp)] -= qty;
                t.remaining -= qty;
                t.filled += qty;
                self.trades += 1;
                out.event(Event::Trade(Trade {
                    symbol,
                    trade_id: self.trades,
                    price,
                    qty,
                    maker_id: mid,
                    taker_id: t.id,
                    maker_account: maccount,
                    taker_account: t.account,
                    maker_owner: mowner,
                    taker_owner: t.owner,
                    aggressor: t.side,
                }));
                if mremaining == 0 {
                    self.unlink(cur);
                    self.index.remove(&mid);
                    self.free_order(cur);
                    out.event(Event::Filled { symbol, id: mid, filled: mfilled });
                } else {
                    out.event(Event::PartiallyFilled { symbol, id: mid, filled: mfilled, remaining: mremaining });
                }
                if t.remaining == 0 {
                    out.event(Event::Filled { symbol, id: t.id, filled: t.filled });
                } else {
                    out.event(Event::PartiallyFilled { symbol, id: t.id, filled: t.filled, remaining: t.remaining });
                }
                cur = next;
            }
            if touched {
                self.emit_level(opp, level, out);
            }
            if self.levels[li].count == 0 {
                self.remove_level(opp, level);
            } else {
                // The taker is done (filled, or stopped by self-trade
                // prevention) before the level is: nothing worse may trade.
                break;
            }
        }
    }

    // ---- slab and list plumbing ----

    /// Cancels a resting order's open quantity, unlinks and frees it, and
    /// reports its level (removing the level if it is now empty). The caller
    /// has taken the id out of the index.
    fn cancel_and_tidy<S: EventSink + ?Sized>(&mut self, slot: u32, reason: CancelReason, out: &mut S) {
        let (side, level) = {
            let o = &self.orders[slot as usize];
            (o.side, o.level)
        };
        self.drop_resting(slot, reason, out);
        self.emit_level(side, level, out);
        if self.levels[level as usize].count == 0 {
            self.remove_level(side, level);
        }
    }

    /// Cancels a resting order's open quantity, unlinks and frees it; the
    /// caller tidies the level.
    fn cancel_resting<S: EventSink + ?Sized>(&mut self, slot: u32, reason: CancelReason, out: &mut S) {
        let id = self.orders[slot as usize].id;
        self.index.remove(&id);
        self.drop_resting(slot, reason, out);
    }

    /// [`Self::cancel_resting`] without the index.
    fn drop_resting<S: EventSink + ?Sized>(&mut self, slot: u32, reason: CancelReason, out: &mut S) {
        let o = self.orders[slot as usize];
        self.unlink(slot);
        self.free_order(slot);
        out.event(Event::Canceled { symbol: self.symbol, id: o.id, canceled: o.remaining, filled: o.filled, reason });
    }

    #[inline]
    fn emit_level<S: EventSink + ?Sized>(&self, side: Side, level: u32, out: &mut S) {
        let l = &self.levels[level as usize];
        out.event(Event::Level { symbol: self.symbol, side, price: l.price, qty: l.qty, orders: l.count });
    }

    #[inline]
    fn alloc_order(&mut self, order: Order) -> u32 {
        if self.free_order == NIL {
            // check_new refuses before the slab reaches MAX_SLOTS, so this fits.
            let slot = u32::try_from(self.orders.len()).unwrap_or(NIL);
            self.orders.push(order);
            slot
        } else {
            let slot = self.free_order;
            self.free_order = self.orders[slot as usize].next;
            self.orders[slot as usize] = order;
            slot
        }
    }

    #[inline]
    fn free_order(&mut self, slot: u32) {
        self.orders[slot as usize].next = self.free_order;
        self.free_order = slot;
    }

    /// The level at `price` on `side`, created (empty) if missing.
    #[inline]
    fn level_for(&mut self, side: Side, price: Price) -> u32 {
        let k = key(side, price);
        let v = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let pos = match locate(v, k) {
            Ok(i) => return v[i].1,
            Err(i) => i,
        };
        let fresh = Level { price, qty: 0, count: 0, head: NIL, tail: NIL };
        let level = if self.free_level == NIL {
            // Levels never outnumber order slots, which are below MAX_SLOTS.
            let level = u32::try_from(self.levels.len()).unwrap_or(NIL);
            self.levels.push(fresh);
            level
        } else {
            let level = self.free_level;
            self.free_level = self.levels[level as usize].head;
            self.levels[level as usize] = fresh;
            level
        };
        v.insert(pos, (k, level));
        level
    }

    /// Takes an (empty) level off its side and frees it.
    fn remove_level(&mut self, side: Side, level: u32) {
        let k = key(side, self.levels[level as usize].price);
        let v = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if v.last().is_some_and(|&(_, l)| l == level) {
            v.pop();
        } else if let Ok(i) = locate(v, k) {
            v.remove(i);
        }
        self.levels[level as usize].head = self.free_level;
        self.free_level = level;
    }

    /// Appends a slot to the back of a level's queue.
    #[inline]
    fn link(&mut self, slot: u32, level: u32) {
        let li = level as usize;
        let tail = self.levels[li].tail;
        {
            let o = &mut self.orders[slot as usize];
            o.level = level;
            o.prev = tail;
            o.next = NIL;
        }
        if tail == NIL {
            self.levels[li].head = slot;
        } else {
            self.orders[tail as usize].next = slot;
        }
        let (remaining, side) = (self.orders[slot as usize].remaining, self.orders[slot as usize].side);
        let l = &mut self.levels[li];
        l.tail = slot;
        l.count += 1;
        l.qty += remaining;
        self.open[ix(side)] += remaining;
    }

    /// Takes a slot out of its level's queue (the level may become empty).
    #[inline]
    fn unlink(&mut self, slot: u32) {
        let o = self.orders[slot as usize];
        let li = o.level as usize;
        if o.prev == NIL {
            self.levels[li].head = o.next;
        } else {
            self.orders[o.prev as usize].next = o.next;
        }
        if o.next == NIL {
            self.levels[li].tail = o.prev;
        } else {
            self.orders[o.next as usize].prev = o.prev;
        }
        let l = &mut self.levels[li];
        l.count -= 1;
        l.qty -= o.remaining;
        self.open[ix(o.side)] -= o.remaining;
    }
}
