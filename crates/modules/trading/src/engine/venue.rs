//! The venue: instruments and one book per symbol, order-id discipline,
//! and the one entry point for commands.

use std::collections::HashMap;

use super::book::Book;
use super::command::{ClientOrderId, Command, MAX_CLIENT_ORDER_ID, MAX_REFUSAL_REASON, Refused};
use super::digest::Digest;
use super::event::{Event, EventSink, OrderState, RejectReason, VenueSnapshot};
use crate::types::{Instrument, MAX_PRICE, MAX_QTY, OrderId, SymbolId};

/// The longest symbol name, in bytes.
pub const MAX_SYMBOL_LEN: usize = 64;

/// The most decimals a price or quantity unit may have.
pub const MAX_DECIMALS: u8 = 18;

/// Instruments and their books. Commands go through [`Venue::apply`], one at
/// a time, by one writer (`&mut self`; no locks inside). The venue reads no
/// clock and no randomness: the same commands in the same order give the
/// same books and the same events, which is what journal replay relies on.
#[derive(Debug, Clone, Default)]
pub struct Venue {
    books: Vec<Book>,
    names: HashMap<String, SymbolId>,
    last_order_id: OrderId,
    applied: u64,
}

impl Venue {
    /// An empty venue: no instruments.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one command: checks it and, if it passes, executes it. Its
    /// events are pushed to `out` in order (see [`Event`]).
    ///
    /// # Errors
    /// Why the command was refused (also pushed as one [`Event::Rejected`]);
    /// a refused command changes nothing at all.
    pub fn apply<S: EventSink + ?Sized>(&mut self, cmd: &Command, out: &mut S) -> Result<(), RejectReason> {
        let result = self.try_apply(cmd, out);
        match result {
            Ok(()) => self.applied += 1,
            Err(reason) => out.event(self.rejected(cmd, reason)),
        }
        result
    }

    /// Executes a command that passed [`Self::check`] (one that did not is
    /// ignored: it changes nothing and pushes nothing).
    pub(crate) fn execute<S: EventSink + ?Sized>(&mut self, cmd: &Command, out: &mut S) {
        if self.try_apply(cmd, out).is_ok() {
            self.applied += 1;
        }
    }

    /// Checks and applies in one pass (each book operation checks before it
    /// changes anything); a refusal changes nothing and pushes nothing.
    #[inline]
    fn try_apply<S: EventSink + ?Sized>(&mut self, cmd: &Command, out: &mut S) -> Result<(), RejectReason> {
        match cmd {
            Command::New(o) => {
                let book = self.books.get_mut(o.symbol as usize).ok_or(RejectReason::UnknownSymbol)?;
                if o.id <= self.last_order_id {
                    return Err(RejectReason::DuplicateOrderId);
                }
                book.try_new(o, out)?;
                self.last_order_id = o.id;
                Ok(())
            }
            Command::Cancel(c) => {
                self.books.get_mut(c.symbol as usize).ok_or(RejectReason::UnknownSymbol)?.try_cancel(c, out)
            }
            Command::Replace(r) => {
                self.books.get_mut(r.symbol as usize).ok_or(RejectReason::UnknownSymbol)?.try_replace(r, out)
            }
            Command::AddInstrument(instrument) => {
                self.check_instrument(instrument)?;
                let symbol = SymbolId::try_from(self.books.len()).map_err(|_| RejectReason::InvalidInstrument)?;
                self.names.insert(instrument.symbol.clone(), symbol);
                self.books.push(Book::new(symbol, instrument.clone()));
                out.event(Event::InstrumentAdded { symbol });
                Ok(())
            }
            Command::ClientOrderId(c) => check_client_order_id(c),
            Command::Refused(r) => check_refused(r),
        }
    }

    /// Whether [`Self::apply`] would accept the command now, changing nothing.
    ///
    /// # Errors
    /// Why it would be refused.
    pub fn check(&self, cmd: &Command) -> Result<(), RejectReason> {
        match cmd {
            Command::AddInstrument(instrument) => self.check_instrument(instrument),
            Command::New(o) => {
                let book = self.books.get(o.symbol as usize).ok_or(RejectReason::UnknownSymbol)?;
                if o.id <= self.last_order_id {
                    return Err(RejectReason::DuplicateOrderId);
                }
                book.check_new(o)
            }
            Command::Cancel(c) => self.books.get(c.symbol as usize).ok_or(RejectReason::UnknownSymbol)?.check_cancel(c),
            Command::Replace(r) => {
                self.books.get(r.symbol as usize).ok_or(RejectReason::UnknownSymbol)?.check_replace(r)
            }
            Command::ClientOrderId(c) => check_client_order_id(c),
            Command::Refused(r) => check_refused(r),
        }
    }

    /// The [`Event::Rejected`] for a command.
    pub(crate) fn rejected(&self, cmd: &Command, reason: RejectReason) -> Event {
        let (symbol, id) = match cmd {
            Command::AddInstrument(_) => (u32::try_from(self.books.len()).unwrap_or(u32::MAX), 0),
            Command::New(o) => (o.symbol, o.id),
            Command::Cancel(c) => (c.symbol, c.id),
            Command::Replace(r) => (r.symbol, r.id),
            Command::ClientOrderId(c) => (u32::MAX, c.order_id),
            Command::Refused(r) => (r.symbol, 0),
        };
        Event::Rejected { kind: cmd.kind(), symbol, id, reason }
    }

    fn check_instrument(&self, i: &Instrument) -> Result<(), RejectReason> {
        let name_ok =
            !i.symbol.is_empty() && i.symbol.len() <= MAX_SYMBOL_LEN && !i.symbol.chars().any(char::is_control);
        let units_ok = (1..=MAX_PRICE).contains(&i.tick)
            && (1..=MAX_QTY).contains(&i.lot)
            && i.price_decimals <= MAX_DECIMALS
            && i.qty_decimals <= MAX_DECIMALS;
        if !name_ok || !units_ok || SymbolId::try_from(self.books.len()).is_err() {
            return Err(RejectReason::InvalidInstrument);
        }
        if self.names.contains_key(&i.symbol) {
            return Err(RejectReason::DuplicateSymbol);
        }
        Ok(())
    }

    /// The id to give the next new order: one above the highest accepted.
    #[must_use]
    pub const fn next_order_id(&self) -> OrderId {
        self.last_order_id.saturating_add(1)
    }

    /// The highest order id accepted (0: none).
    #[must_use]
    pub const fn last_order_id(&self) -> OrderId {
        self.last_order_id
    }

    /// Commands applied so far (refused ones are not counted).
    #[must_use]
    pub const fn applied(&self) -> u64 {
        self.applied
    }

    /// A symbol's id by name.
    #[must_use]
    pub fn symbol(&self, name: &str) -> Option<SymbolId> {
        self.names.get(name).copied()
    }

    /// A symbol's instrument.
    #[must_use]
    pub fn instrument(&self, symbol: SymbolId) -> Option<&Instrument> {
        self.book(symbol).map(Book::instrument)
    }

    /// A symbol's book (read-only: commands go through [`Self::apply`]).
    #[must_use]
    pub fn book(&self, symbol: SymbolId) -> Option<&Book> {
        self.books.get(symbol as usize)
    }

    /// Every book, by symbol id.
    #[must_use]
    pub fn books(&self) -> &[Book] {
        &self.books
    }

    /// A resting order's state (`None`: unknown symbol, or not live).
    #[must_use]
    pub fn order(&self, symbol: SymbolId, id: OrderId) -> Option<OrderState> {
        self.book(symbol)?.order(id)
    }

    /// Everything, comparable with `==`.
    #[must_use]
    pub fn snapshot(&self) -> VenueSnapshot {
        VenueSnapshot {
            last_order_id: self.last_order_id,
            applied: self.applied,
            books: self.books.iter().map(Book::snapshot).collect(),
        }
    }

    /// A deterministic 64-bit digest of the logical state (instruments,
    /// every resting order in queue order, counters), stable across runs and
    /// platforms: equal venues have equal digests.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut d = Digest::new();
        d.u64(self.last_order_id);
        d.u64(self.applied);
        d.u64(self.books.len() as u64);
        for book in &self.books {
            book.digest_into(&mut d);
        }
        d.finish()
    }
}

/// A client order id is 1 to 64 bytes without control characters.
fn check_refused(r: &Refused) -> Result<(), RejectReason> {
    let ok = !r.reason.is_empty()
        && r.reason.len() <= MAX_REFUSAL_REASON
        && r.reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok { Ok(()) } else { Err(RejectReason::InvalidRefusal) }
}

fn check_client_order_id(c: &ClientOrderId) -> Result<(), RejectReason> {
    let ok = !c.client_order_id.is_empty()
        && c.client_order_id.len() <= MAX_CLIENT_ORDER_ID
        && !c.client_order_id.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(RejectReason::InvalidClientOrderId) }
}
