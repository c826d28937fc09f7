//! What the venue reports: events, the reasons in them, and the read-only
//! views of books and orders.

use std::fmt;

use super::command::{CommandKind, NewOrder, StpMode};
use crate::types::{AccountId, Instrument, OrderId, Price, Qty, Side, SymbolId};

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// No instrument has this symbol id.
    UnknownSymbol,
    /// The price is not a multiple of the instrument's tick.
    OffTick,
    /// The quantity is not a multiple of the instrument's lot.
    OffLot,
    /// The quantity is zero.
    ZeroQuantity,
    /// The quantity is above [`MAX_QTY`](crate::types::MAX_QTY).
    QuantityTooLarge,
    /// A limit price not in `(0, MAX_PRICE]`.
    PriceOutOfRange,
    /// A post-only order (or a replace of one) would trade on arrival.
    PostOnlyWouldCross,
    /// Post-only was asked of a market, IOC or FOK order.
    PostOnlyRequiresGtcLimit,
    /// A fill-or-kill order cannot be filled in full now (self-trade
    /// prevention that would stop it counts as not fillable).
    FokNotFillable,
    /// No resting order has this id in this symbol (never existed, or done).
    UnknownOrder,
    /// The order id is at or below the highest one already accepted.
    DuplicateOrderId,
    /// An instrument with this symbol name is already listed.
    DuplicateSymbol,
    /// An instrument with an empty or too long name (1 to 64 bytes, no control
    /// characters), a tick or lot that is not positive or too large, or more
    /// than 18 decimals.
    InvalidInstrument,
    /// The book holds as many orders as it can index (about 4 billion), or
    /// its side would hold more open quantity than a `u64` counts.
    BookFull,
    InvalidClientOrderId,
    /// A [`crate::engine::Command::Refused`] whose reason is not a code.
    InvalidRefusal,
}

impl RejectReason {
    /// A stable snake_case code, e.g. `off_tick`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownSymbol => "unknown_symbol",
            Self::OffTick => "off_tick",
            Self::OffLot => "off_lot",
            Self::ZeroQuantity => "zero_quantity",
            Self::QuantityTooLarge => "quantity_too_large",
            Self::PriceOutOfRange => "price_out_of_range",
            Self::PostOnlyWouldCross => "post_only_would_cross",
            Self::PostOnlyRequiresGtcLimit => "post_only_requires_gtc_limit",
            Self::FokNotFillable => "fok_not_fillable",
            Self::UnknownOrder => "unknown_order",
            Self::DuplicateOrderId => "duplicate_order_id",
            Self::DuplicateSymbol => "duplicate_symbol",
            Self::InvalidInstrument => "invalid_instrument",
            Self::BookFull => "book_full",
            Self::InvalidClientOrderId => "invalid_client_order_id",
            Self::InvalidRefusal => "invalid_refusal",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why (part of) an accepted order was canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// A [`Cancel`](super::Cancel) command.
    Requested,
    /// Self-trade prevention (see [`StpMode`]).
    SelfTradePrevented,
    /// The unfilled rest of an IOC or FOK limit order.
    ImmediateOrCancel,
    /// The unfilled rest of a market order: nothing more to trade against.
    NoLiquidity,
    /// A [`Replace`](super::Replace) to a quantity at or below what is already done.
    ReplacedAtOrBelowFilled,
}

impl CancelReason {
    /// A stable snake_case code, e.g. `self_trade_prevented`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::SelfTradePrevented => "self_trade_prevented",
            Self::ImmediateOrCancel => "immediate_or_cancel",
            Self::NoLiquidity => "no_liquidity",
            Self::ReplacedAtOrBelowFilled => "replaced_at_or_below_filled",
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One execution between a resting order (maker) and an incoming one (taker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trade {
    /// The instrument.
    pub symbol: SymbolId,
    /// 1, 2, 3... per symbol.
    pub trade_id: u64,
    /// The maker's price.
    pub price: Price,
    /// The quantity traded.
    pub qty: Qty,
    /// The resting order.
    pub maker_id: OrderId,
    /// The incoming order.
    pub taker_id: OrderId,
    /// The resting order's account.
    pub maker_account: AccountId,
    /// The incoming order's account.
    pub taker_account: AccountId,
    /// The resting order's beneficial owner.
    pub maker_owner: u32,
    /// The incoming order's beneficial owner.
    pub taker_owner: u32,
    /// The taker's side (the maker is on the other).
    pub aggressor: Side,
}

impl Trade {
    /// The buying order's id.
    #[must_use]
    pub const fn buy_id(&self) -> OrderId {
        match self.aggressor {
            Side::Buy => self.taker_id,
            Side::Sell => self.maker_id,
        }
    }

    /// The selling order's id.
    #[must_use]
    pub const fn sell_id(&self) -> OrderId {
        match self.aggressor {
            Side::Buy => self.maker_id,
            Side::Sell => self.taker_id,
        }
    }
}

/// What happened, in order. A command's events are pushed to the caller's
/// [`EventSink`] while it is applied:
///
/// - a refused command: one [`Event::Rejected`];
/// - a new order: [`Event::Accepted`], then for each execution a
///   [`Event::Trade`] followed by the maker's then the taker's fill state
///   ([`Event::PartiallyFilled`] or [`Event::Filled`]), self-trade
///   prevention as [`Event::Reduced`] / [`Event::Canceled`], a
///   [`Event::Level`] for each price level the taker touched once it is done
///   with it, and at the end the taker's fate: a [`Event::Canceled`] for an
///   unfilled rest that may not rest, or a [`Event::Level`] for the level it
///   rests on;
/// - a cancel: [`Event::Canceled`] and [`Event::Level`];
/// - a replace: [`Event::Replaced`] (or [`Event::Canceled`] if to at or
///   below the done quantity), then as a new order if it moved and crosses,
///   and [`Event::Level`] updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// An instrument was listed under this id.
    InstrumentAdded {
        /// The new symbol id.
        symbol: SymbolId,
    },
    /// A new order was accepted (as given; price 0 for market orders).
    Accepted(NewOrder),
    /// A command was refused and changed nothing.
    Rejected {
        /// The command's kind.
        kind: CommandKind,
        /// The command's symbol (for an instrument: the id it would have had).
        symbol: SymbolId,
        /// The order id the command named (0 for an instrument).
        id: OrderId,
        /// Why.
        reason: RejectReason,
    },
    /// An execution.
    Trade(Trade),
    /// An order traded part of its quantity and has some left.
    PartiallyFilled {
        /// The instrument.
        symbol: SymbolId,
        /// The order.
        id: OrderId,
        /// Quantity filled so far.
        filled: Qty,
        /// Quantity still open.
        remaining: Qty,
    },
    /// An order traded all of its quantity; it is done.
    Filled {
        /// The instrument.
        symbol: SymbolId,
        /// The order.
        id: OrderId,
        /// Quantity filled in all.
        filled: Qty,
    },
    /// A live order's open quantity was cut without a trade (self-trade
    /// prevention's decrement); it stays live.
    Reduced {
        /// The instrument.
        symbol: SymbolId,
        /// The order.
        id: OrderId,
        /// Quantity canceled by this event.
        by: Qty,
        /// Quantity still open.
        remaining: Qty,
        /// Why.
        reason: CancelReason,
    },
    /// An order's open quantity was canceled; it is done.
    Canceled {
        /// The instrument.
        symbol: SymbolId,
        /// The order.
        id: OrderId,
        /// The open quantity canceled by this event.
        canceled: Qty,
        /// Quantity filled before the cancel.
        filled: Qty,
        /// Why.
        reason: CancelReason,
    },
    /// A resting order was replaced.
    Replaced {
        /// The instrument.
        symbol: SymbolId,
        /// The order (same id).
        id: OrderId,
        /// The new price.
        price: Price,
        /// The new total quantity.
        qty: Qty,
        /// The open quantity after the replace, before any trade it makes.
        remaining: Qty,
        /// Whether the order kept its place in the queue.
        priority_kept: bool,
    },
    /// A price level's new totals (market data). `qty == 0` (and
    /// `orders == 0`): the level is gone.
    Level {
        /// The instrument.
        symbol: SymbolId,
        /// The book side.
        side: Side,
        /// The level's price.
        price: Price,
        /// Total open quantity at the level.
        qty: Qty,
        /// Number of orders at the level.
        orders: u32,
    },
}

/// Where events go. Implemented for `Vec<Event>` (push); a sink that
/// reuses its buffer keeps the hot path free of allocation.
pub trait EventSink {
    /// Take one event.
    fn event(&mut self, event: Event);
}

impl EventSink for Vec<Event> {
    #[inline]
    fn event(&mut self, event: Event) {
        self.push(event);
    }
}

/// A sink that drops everything (replays that only want the state).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl EventSink for Discard {
    #[inline]
    fn event(&mut self, _event: Event) {}
}

/// An order's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Live, nothing filled.
    New,
    /// Live, partly filled.
    PartiallyFilled,
    /// Done: all filled.
    Filled,
    /// Done: the rest canceled.
    Canceled,
}

impl OrderStatus {
    /// `new`, `partially_filled`, `filled` or `canceled`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::PartiallyFilled => "partially_filled",
            Self::Filled => "filled",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the order is done (filled or canceled).
    #[must_use]
    pub const fn is_done(self) -> bool {
        matches!(self, Self::Filled | Self::Canceled)
    }
}

/// A resting order as the book holds it. Always `filled + remaining +
/// canceled == qty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderState {
    /// The order.
    pub id: OrderId,
    /// The instrument.
    pub symbol: SymbolId,
    /// The account.
    pub account: AccountId,
    /// The beneficial owner.
    pub owner: u32,
    /// Buy or sell.
    pub side: Side,
    /// The limit price.
    pub price: Price,
    /// The total quantity (as last replaced).
    pub qty: Qty,
    /// Quantity filled.
    pub filled: Qty,
    /// Quantity open on the book.
    pub remaining: Qty,
    /// Quantity canceled without a trade (self-trade prevention decrements).
    pub canceled: Qty,
    /// [`OrderStatus::New`] or [`OrderStatus::PartiallyFilled`] (the book only holds live orders).
    pub status: OrderStatus,
    /// Post-only.
    pub post_only: bool,
    /// Its self-trade prevention mode (used if it is replaced across the book).
    pub stp: StpMode,
}

/// One price level's totals (L2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DepthLevel {
    /// The price.
    pub price: Price,
    /// Total open quantity.
    pub qty: Qty,
    /// Number of orders.
    pub orders: u32,
}

/// One price level with its orders in time priority (L3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSnapshot {
    /// The price.
    pub price: Price,
    /// Total open quantity.
    pub qty: Qty,
    /// The orders, first in the queue first.
    pub orders: Vec<OrderState>,
}

/// A whole book, comparable with `==` (replay tests, before/after a refused command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookSnapshot {
    /// The symbol id.
    pub symbol: SymbolId,
    /// The instrument.
    pub instrument: Instrument,
    /// The highest order id this book accepted (0: none).
    pub last_order_id: OrderId,
    /// Trades so far (the last trade id).
    pub trades: u64,
    /// Bids, best (highest) first.
    pub bids: Vec<LevelSnapshot>,
    /// Asks, best (lowest) first.
    pub asks: Vec<LevelSnapshot>,
}

/// The whole venue, comparable with `==`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueSnapshot {
    /// The highest order id accepted (0: none).
    pub last_order_id: OrderId,
    /// Commands applied (refused ones are not counted).
    pub applied: u64,
    /// Every book, by symbol id.
    pub books: Vec<BookSnapshot>,
}
