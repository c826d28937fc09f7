//! What the venue is asked to do: the commands (journaled, replayed) and the
//! order fields they carry.

use crate::types::{AccountId, Instrument, OrderId, OrderType, Price, Qty, Side, SymbolId, TimeInForce};

/// Self-trade prevention: what happens when an incoming order (the taker)
/// would trade against a resting order of the same beneficial owner
/// ([`NewOrder::owner`]), whatever the accounts. The taker's mode decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StpMode {
    /// The rest of the incoming order is canceled; the resting order stays.
    #[default]
    CancelNewest,
    /// The resting order is canceled and matching goes on with the next one.
    CancelOldest,
    /// Both the resting order and the rest of the incoming order are canceled.
    CancelBoth,
    /// Both are reduced by the smaller of their remaining quantities, without
    /// a trade; an order reduced to nothing is canceled, and an incoming
    /// order left with quantity goes on matching.
    DecrementAndCancel,
}

impl StpMode {
    /// Every mode, in tag order.
    pub const ALL: [Self; 4] = [Self::CancelNewest, Self::CancelOldest, Self::CancelBoth, Self::DecrementAndCancel];

    /// A stable snake_case code: `cancel_newest`, `cancel_oldest`, `cancel_both`, `decrement_and_cancel`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CancelNewest => "cancel_newest",
            Self::CancelOldest => "cancel_oldest",
            Self::CancelBoth => "cancel_both",
            Self::DecrementAndCancel => "decrement_and_cancel",
        }
    }
}

/// A new order.
///
/// Order ids are chosen by the caller and must be strictly increasing across
/// the venue (gaps are allowed): an id at or below the highest id the venue
/// has accepted is refused as [`RejectReason::DuplicateOrderId`](super::RejectReason::DuplicateOrderId),
/// so 0 is never valid. [`Venue::next_order_id`](super::Venue::next_order_id)
/// gives the next free one; a refused order does not use its id up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewOrder {
    /// The order's id, unique and increasing across the venue.
    pub id: OrderId,
    /// The instrument traded.
    pub symbol: SymbolId,
    /// The account the order is for.
    pub account: AccountId,
    /// The beneficial owner, for self-trade prevention.
    pub owner: u32,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// GTC (rests), IOC or FOK. Market orders never rest, whatever this says.
    pub tif: TimeInForce,
    /// The limit price in price units; ignored (and reported as 0) for market orders.
    pub price: Price,
    /// The quantity in quantity units.
    pub qty: Qty,
    /// Post-only (maker-only): refused if it would trade on arrival. Only
    /// for GTC limit orders.
    pub post_only: bool,
    /// What to do if it would trade with its own owner's resting order.
    pub stp: StpMode,
}

impl NewOrder {
    /// A GTC limit order for account 0 / owner 0, default self-trade prevention.
    #[must_use]
    pub const fn limit(id: OrderId, symbol: SymbolId, side: Side, price: Price, qty: Qty) -> Self {
        Self {
            id,
            symbol,
            account: 0,
            owner: 0,
            side,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            price,
            qty,
            post_only: false,
            stp: StpMode::CancelNewest,
        }
    }

    /// A market order (never rests; FOK if [`Self::tif`] is FOK, else IOC).
    #[must_use]
    pub const fn market(id: OrderId, symbol: SymbolId, side: Side, qty: Qty) -> Self {
        let mut order = Self::limit(id, symbol, side, 0, qty);
        order.order_type = OrderType::Market;
        order.tif = TimeInForce::Ioc;
        order
    }

    /// The same order for another account and beneficial owner.
    #[must_use]
    pub const fn by(mut self, account: AccountId, owner: u32) -> Self {
        self.account = account;
        self.owner = owner;
        self
    }

    /// The same order with another time in force.
    #[must_use]
    pub const fn tif(mut self, tif: TimeInForce) -> Self {
        self.tif = tif;
        self
    }

    /// The same order, post-only.
    #[must_use]
    pub const fn post_only(mut self) -> Self {
        self.post_only = true;
        self
    }

    /// The same order with another self-trade prevention mode.
    #[must_use]
    pub const fn stp(mut self, stp: StpMode) -> Self {
        self.stp = stp;
        self
    }
}

/// Cancel a resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cancel {
    /// The order's instrument.
    pub symbol: SymbolId,
    /// The order.
    pub id: OrderId,
}

/// Replace (amend) a resting order's price and/or quantity; the order keeps its id.
///
/// `qty` is the new *total* quantity, filled part included (as FIX's
/// OrderQty). The order keeps its time priority only if the price is
/// unchanged and the quantity does not grow (a smaller quantity, or the same
/// one); otherwise it goes to the back of the queue at its (new) price, and
/// trades first if that price crosses the book. A `qty` at or below what is
/// already done (filled, or canceled by self-trade prevention) cancels the
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Replace {
    /// The order's instrument.
    pub symbol: SymbolId,
    /// The order.
    pub id: OrderId,
    /// The new limit price.
    pub price: Price,
    /// The new total quantity.
    pub qty: Qty,
}

/// A command to the venue: what the journal records and replays.
///
/// New variants may be added (each has its own tag in the journal), so
/// matches need a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// List an instrument; it gets the next [`SymbolId`] (0, 1, 2...).
    AddInstrument(Instrument),
    /// Enter an order.
    New(NewOrder),
    /// Cancel a resting order.
    Cancel(Cancel),
    /// Replace a resting order.
    Replace(Replace),
    /// The client's own id of the order that follows it in the journal
    /// (the OMS's idempotency key); the books ignore it.
    ClientOrderId(ClientOrderId),
    /// An order the desk refused before it reached the books (pre-trade
    /// risk, compliance, the venue's own checks): kept so that what is
    /// reported about refusals survives a restart; the books ignore it.
    Refused(Refused),
}

/// See [`Command::Refused`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The account of the refused order.
    pub account: AccountId,
    /// Its symbol.
    pub symbol: SymbolId,
    pub side: Side,
    /// The reason code (`price_collar`, `credit_limit`, ...): 1 to
    /// [`MAX_REFUSAL_REASON`] bytes of lowercase ASCII letters, digits and `_`.
    pub reason: String,
}

/// The longest refusal reason code, in bytes.
pub const MAX_REFUSAL_REASON: usize = 64;

/// See [`Command::ClientOrderId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOrderId {
    /// The venue's id of the order.
    pub order_id: OrderId,
    /// Its account.
    pub account: AccountId,
    /// The client's id: 1 to [`MAX_CLIENT_ORDER_ID`] bytes, no control characters.
    pub client_order_id: String,
}

/// The longest client order id, in bytes.
pub const MAX_CLIENT_ORDER_ID: usize = 64;

impl Command {
    /// Which kind of command this is.
    #[must_use]
    pub const fn kind(&self) -> CommandKind {
        match self {
            Self::AddInstrument(_) => CommandKind::AddInstrument,
            Self::New(_) => CommandKind::New,
            Self::Cancel(_) => CommandKind::Cancel,
            Self::Replace(_) => CommandKind::Replace,
            Self::ClientOrderId(_) => CommandKind::ClientOrderId,
            Self::Refused(_) => CommandKind::Refused,
        }
    }
}

impl From<NewOrder> for Command {
    fn from(order: NewOrder) -> Self {
        Self::New(order)
    }
}

impl From<Cancel> for Command {
    fn from(cancel: Cancel) -> Self {
        Self::Cancel(cancel)
    }
}

impl From<Replace> for Command {
    fn from(replace: Replace) -> Self {
        Self::Replace(replace)
    }
}

/// The kind of a [`Command`], as named in a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// [`Command::AddInstrument`].
    AddInstrument,
    /// [`Command::New`].
    New,
    /// [`Command::Cancel`].
    Cancel,
    /// [`Command::Replace`].
    Replace,
    /// [`Command::ClientOrderId`].
    ClientOrderId,
    /// [`Command::Refused`].
    Refused,
}

impl CommandKind {
    /// A stable snake_case code: `add_instrument`, `new_order`, `cancel`, `replace`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AddInstrument => "add_instrument",
            Self::New => "new_order",
            Self::Cancel => "cancel",
            Self::Replace => "replace",
            Self::ClientOrderId => "client_order_id",
            Self::Refused => "refused",
        }
    }
}
