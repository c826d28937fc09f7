//! The matching engine: limit order books with price-time priority.
//!
//! - A [`Venue`] lists instruments ([`Command::AddInstrument`]) and holds one
//!   [`Book`] per symbol. Every change goes through [`Venue::apply`] with a
//!   [`Command`] (new order, cancel, replace, instrument), by a single writer
//!   (`&mut self`, no locks). [`Venue::check`] says whether a command would be
//!   accepted without changing anything (the journal uses it to record only
//!   accepted commands).
//! - Events ([`Event`]) are pushed into a caller-provided [`EventSink`]
//!   (`Vec<Event>` implements it): reuse the buffer and the hot path does not
//!   allocate once the book is warm.
//! - A refused command pushes one [`Event::Rejected`] with a [`RejectReason`]
//!   (stable snake_case codes) and leaves the venue exactly as it was.
//! - Order types: GTC limit (rests), IOC and FOK limit, market (never rests;
//!   FOK if asked), post-only (refused if it would trade). Replace keeps the
//!   order's queue position only when its price is unchanged and its
//!   quantity does not grow. Self-trade prevention compares beneficial
//!   owners ([`NewOrder::owner`]) with the taker's [`StpMode`].
//! - Queries: [`Book::best_bid`]/[`Book::best_ask`], [`Book::depth`] (L2),
//!   [`Book::order`], [`Venue::snapshot`] (comparable) and
//!   [`Venue::digest`] (a deterministic hash).
//!
//! ```
//! use plexus_trading::engine::{Command, Event, NewOrder, Venue};
//! use plexus_trading::types::{Instrument, Side};
//!
//! let mut venue = Venue::new();
//! let mut events = Vec::new();
//! let aapl = Instrument { symbol: "AAPL".into(), price_decimals: 2, qty_decimals: 0, tick: 1, lot: 1 };
//! venue.apply(&Command::AddInstrument(aapl), &mut events).unwrap();
//! let sym = venue.symbol("AAPL").unwrap();
//! venue.apply(&NewOrder::limit(1, sym, Side::Sell, 18_733, 100).by(7, 7).into(), &mut events).unwrap();
//! events.clear();
//! venue.apply(&NewOrder::limit(2, sym, Side::Buy, 18_740, 60).by(9, 9).into(), &mut events).unwrap();
//! let trades: Vec<_> = events.iter().filter_map(|e| match e { Event::Trade(t) => Some(*t), _ => None }).collect();
//! assert_eq!((trades[0].price, trades[0].qty, trades[0].maker_id), (18_733, 60, 1));
//! assert_eq!(venue.book(sym).unwrap().best_ask().unwrap().qty, 40);
//! ```

mod book;
mod command;
mod digest;
mod event;
mod venue;

pub use book::Book;
pub use command::{
    Cancel, ClientOrderId, Command, CommandKind, MAX_CLIENT_ORDER_ID, MAX_REFUSAL_REASON, NewOrder, Refused, Replace,
    StpMode,
};
pub use event::{
    BookSnapshot, CancelReason, DepthLevel, Discard, Event, EventSink, LevelSnapshot, OrderState, OrderStatus,
    RejectReason, Trade, VenueSnapshot,
};
pub use venue::{MAX_DECIMALS, MAX_SYMBOL_LEN, Venue};
