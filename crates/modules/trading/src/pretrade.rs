//! Pre-trade risk checks in the spirit of SEC Rule 15c3-5 (the market
//! access rule): every order is checked against the account's limits before
//! it reaches the book, and a rejection says which rule refused it, with the
//! numbers.
//!
//! [`PreTradeRisk::check`] runs the checks in this order and stops at the
//! first that fails; each failure has a stable snake_case code
//! ([`RejectReason::as_str`]):
//!
//! 1. `global_kill_switch`: trading is halted for everyone;
//! 2. `unknown_account`: the account has no limits (no role);
//! 3. `account_kill_switch`: trading is halted for this account;
//! 4. `unknown_instrument`: the symbol's units are not configured;
//! 5. `invalid_order`: a zero or absurd quantity, a non-positive or absurd limit price;
//! 6. `restricted_symbol`: the symbol is on the global or the account's restricted list;
//! 7. `max_order_qty`: the order's quantity is above the maximum;
//! 8. `no_reference_price`: a market order, or a limit order while a collar
//!    is configured, and the symbol has no reference price;
//! 9. `price_collar`: the limit price is further from the reference price
//!    than the collar allows (fat finger);
//! 10. `max_order_notional`: the order's notional (at its limit price, or at
//!     the reference price for a market order) is above the maximum;
//! 11. `duplicate_order`: an order of the same account with the same symbol,
//!     side, quantity and price (or both market orders) was accepted less
//!     than the duplicate window earlier;
//! 12. `position_limit`: position + open same-side quantity + this order is
//!     beyond the per-symbol limit on that side;
//! 13. `credit_limit`: the account's credit used would exceed its credit limit.
//!
//! **Notional** is an integer count of `10^-8` of the quote currency
//! ([`Notional`], [`NOTIONAL_DECIMALS`]): `price units × quantity units`
//! rescaled by the instrument's decimals, exact for every instrument with
//! `price_decimals + qty_decimals ≤ 8` and rounded *up* otherwise (a risk
//! limit must not be passed by rounding). State sums (open notional) are
//! integers too, so fills and cancels release exactly what was reserved.
//!
//! **Credit used** by an account is the notional of all its open orders
//! (both sides, each at its limit price or, for a market order, at the
//! reference price when it was accepted) plus this order's notional, plus,
//! *for a buy*, the account's long exposure: each long position valued at
//! the symbol's reference price (or, without one, at the last fill price).
//! A sell does not add long exposure: it reduces it when it fills.
//!
//! **Limits** come from the account's role ([`PreTradeRisk::set_role_limits`]),
//! field by field overridden per account ([`LimitOverrides`]); a per-symbol
//! position limit can be set per account.
//!
//! **State** changes only through explicit methods: [`PreTradeRisk::on_accepted`]
//! (or [`PreTradeRisk::submit`], which checks and records at once) reserves
//! the order's notional and open quantity and remembers it for duplicate
//! detection; [`PreTradeRisk::on_fill`] moves filled quantity from open to
//! position; [`PreTradeRisk::on_cancel`] releases the rest. A rejected check
//! changes nothing. Time is an input (`ts_ns`), never read from a clock, so
//! the checks are deterministic.
//!
//! [`PreTradeRisk::check`] does not allocate when it accepts (a rejection
//! builds its message) and scans nothing: the duplicate lookup is a hash
//! probe, and the long exposure is kept current as fills, set positions and
//! reference prices change.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use crate::types::{AccountId, Instrument, MAX_PRICE, MAX_QTY, OrderId, Price, Qty, Side, SymbolId};

/// A notional amount in `10^-NOTIONAL_DECIMALS` of the quote currency.
pub type Notional = u128;
/// Decimals of a [`Notional`] unit: 8, so `100_000_000` is one unit of currency.
pub const NOTIONAL_DECIMALS: u8 = 8;
/// One unit of the quote currency as a [`Notional`].
pub const NOTIONAL_ONE: Notional = 100_000_000;

/// `whole` units of the quote currency as a [`Notional`] (for configuring limits).
#[must_use]
pub const fn notional_from_whole(whole: u64) -> Notional {
    whole as Notional * NOTIONAL_ONE
}

/// A [`Notional`] as a decimal amount of the quote currency (for reports).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn notional_to_f64(n: Notional) -> f64 {
    (n / NOTIONAL_ONE) as f64 + (n % NOTIONAL_ONE) as f64 / NOTIONAL_ONE as f64
}

/// The notional of `qty` quantity units at `price` price units of an
/// instrument with these decimals, in [`Notional`] units: exact when
/// `price_decimals + qty_decimals ≤ 8`, else rounded up; saturating at
/// `u128::MAX` for absurd values; 0 for a non-positive price.
#[must_use]
pub fn notional(price: Price, qty: Qty, price_decimals: u8, qty_decimals: u8) -> Notional {
    let Ok(p) = u128::try_from(price) else { return 0 };
    // < 2^63 · 2^64: fits in a u128.
    let raw = p * u128::from(qty);
    let scale = u32::from(price_decimals) + u32::from(qty_decimals);
    let target = u32::from(NOTIONAL_DECIMALS);
    if scale <= target {
        raw.saturating_mul(10u128.pow(target - scale))
    } else {
        let d = scale - target;
        match 10u128.checked_pow(d) {
            Some(div) => raw.div_ceil(div),
            None => u128::from(raw > 0),
        }
    }
}

/// `v` units with `decimals` decimals as a decimal string, without floating
/// point: `fmt_units(12345, 2, false)` is `"123.45"`; with `trim`, trailing
/// fractional zeros (and a bare point) are dropped.
fn fmt_units(v: i128, decimals: u8, trim: bool) -> String {
    let digits = v.unsigned_abs().to_string();
    let d = usize::from(decimals);
    let mut out = String::with_capacity(digits.len() + d + 2);
    if v < 0 {
        out.push('-');
    }
    if d == 0 {
        out.push_str(&digits);
        return out;
    }
    let padded = if digits.len() <= d { format!("{}{digits}", "0".repeat(d + 1 - digits.len())) } else { digits };
    let (int, frac) = padded.split_at(padded.len() - d);
    out.push_str(int);
    let frac = if trim { frac.trim_end_matches('0') } else { frac };
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A [`Notional`] as a decimal string of the quote currency, e.g. `"1500.25"`.
#[must_use]
pub fn fmt_notional(n: Notional) -> String {
    if n == u128::MAX {
        return "unlimited".to_owned();
    }
    match i128::try_from(n) {
        Ok(v) => fmt_units(v, NOTIONAL_DECIMALS, true),
        Err(_) => "more than 10^30".to_owned(),
    }
}

/// FxHash-style hashing for the integer ids the maps are keyed by (interned
/// by the venue and the OMS, never chosen by a client), much faster than SipHash.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(Self::K);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// An order as the risk checks see it, before it reaches the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderIntent {
    /// The account sending it.
    pub account: AccountId,
    /// The symbol.
    pub symbol: SymbolId,
    /// Buy or sell.
    pub side: Side,
    /// Quantity, in quantity units of the symbol.
    pub qty: Qty,
    /// The limit price in price units; `None` for a market order.
    pub limit_price: Option<Price>,
    /// When it was sent, in nanoseconds (an input, not read from a clock).
    pub ts_ns: u64,
}

/// An account's risk limits. `Qty::MAX`, `Notional::MAX` and
/// [`RiskLimits::NO_COLLAR`] mean "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskLimits {
    /// The largest quantity one order may have, in quantity units.
    pub max_order_qty: Qty,
    /// The largest notional one order may have.
    pub max_order_notional: Notional,
    /// How far a limit price may be from the reference price, in basis points
    /// of the reference (500 = 5 %); a price exactly on the band's edge passes.
    pub collar_bps: u32,
    /// The most credit the account may use (see the module documentation).
    pub credit_limit: Notional,
    /// The largest position per symbol on each side (long or short), in
    /// quantity units, counting open orders on that side.
    pub max_position: Qty,
}

impl RiskLimits {
    /// `collar_bps` value that disables the price collar.
    pub const NO_COLLAR: u32 = u32::MAX;
    /// No limit at all.
    pub const UNLIMITED: Self = Self {
        max_order_qty: Qty::MAX,
        max_order_notional: Notional::MAX,
        collar_bps: Self::NO_COLLAR,
        credit_limit: Notional::MAX,
        max_position: Qty::MAX,
    };
}

/// Per-account overrides of the role's limits; `None` keeps the role's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitOverrides {
    /// Overrides [`RiskLimits::max_order_qty`].
    pub max_order_qty: Option<Qty>,
    /// Overrides [`RiskLimits::max_order_notional`].
    pub max_order_notional: Option<Notional>,
    /// Overrides [`RiskLimits::collar_bps`].
    pub collar_bps: Option<u32>,
    /// Overrides [`RiskLimits::credit_limit`].
    pub credit_limit: Option<Notional>,
    /// Overrides [`RiskLimits::max_position`].
    pub max_position: Option<Qty>,
}

impl LimitOverrides {
    /// `base` with these overrides applied.
    #[must_use]
    pub fn apply(&self, base: &RiskLimits) -> RiskLimits {
        RiskLimits {
            max_order_qty: self.max_order_qty.unwrap_or(base.max_order_qty),
            max_order_notional: self.max_order_notional.unwrap_or(base.max_order_notional),
            collar_bps: self.collar_bps.unwrap_or(base.collar_bps),
            credit_limit: self.credit_limit.unwrap_or(base.credit_limit),
            max_position: self.max_position.unwrap_or(base.max_position),
        }
    }
}

/// Checker-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTradeConfig {
    /// Two orders with the same account, symbol, side, quantity and price are
    /// duplicates when the second comes less than this long after the first
    /// (nanoseconds; 0 turns duplicate detection off).
    pub duplicate_window_ns: u64,
}

impl Default for PreTradeConfig {
    /// A one-second duplicate window.
    fn default() -> Self {
        Self { duplicate_window_ns: 1_000_000_000 }
    }
}

/// Why an order was refused; [`RejectReason::as_str`] is its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectReason {
    /// `global_kill_switch`.
    GlobalKillSwitch,
    /// `unknown_account`.
    UnknownAccount,
    /// `account_kill_switch`.
    AccountKillSwitch,
    /// `unknown_instrument`.
    UnknownInstrument,
    /// `invalid_order`.
    InvalidOrder,
    /// `restricted_symbol`.
    RestrictedSymbol,
    /// `max_order_qty`.
    MaxOrderQty,
    /// `no_reference_price`.
    NoReferencePrice,
    /// `price_collar`.
    PriceCollar,
    /// `max_order_notional`.
    MaxOrderNotional,
    /// `duplicate_order`.
    DuplicateOrder,
    /// `position_limit`.
    PositionLimit,
    /// `credit_limit`.
    CreditLimit,
}

impl RejectReason {
    /// Every reason, in the order the checks run.
    pub const ALL: [Self; 13] = [
        Self::GlobalKillSwitch,
        Self::UnknownAccount,
        Self::AccountKillSwitch,
        Self::UnknownInstrument,
        Self::InvalidOrder,
        Self::RestrictedSymbol,
        Self::MaxOrderQty,
        Self::NoReferencePrice,
        Self::PriceCollar,
        Self::MaxOrderNotional,
        Self::DuplicateOrder,
        Self::PositionLimit,
        Self::CreditLimit,
    ];

    /// The stable snake_case code, e.g. `"price_collar"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GlobalKillSwitch => "global_kill_switch",
            Self::UnknownAccount => "unknown_account",
            Self::AccountKillSwitch => "account_kill_switch",
            Self::UnknownInstrument => "unknown_instrument",
            Self::InvalidOrder => "invalid_order",
            Self::RestrictedSymbol => "restricted_symbol",
            Self::MaxOrderQty => "max_order_qty",
            Self::NoReferencePrice => "no_reference_price",
            Self::PriceCollar => "price_collar",
            Self::MaxOrderNotional => "max_order_notional",
            Self::DuplicateOrder => "duplicate_order",
            Self::PositionLimit => "position_limit",
            Self::CreditLimit => "credit_limit",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused order: the rule and a message with the numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Rejection {
    /// The rule that refused it.
    pub reason: RejectReason,
    /// What was wrong, with the numbers (prices and quantities as decimals).
    pub message: String,
}

impl Rejection {
    fn new(reason: RejectReason, message: String) -> Self {
        Self { reason, message }
    }
}

/// What a check measured, for the caller to report with the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskMetrics {
    /// The limits applied (the role's, with the account's overrides).
    pub limits: RiskLimits,
    /// The price the notional was computed at: the limit price, or the
    /// reference price for a market order.
    pub price_used: Price,
    /// The symbol's reference price, if it has one.
    pub reference_price: Option<Price>,
    /// The collar's band `(low, high)` when the collar was checked.
    pub collar: Option<(Price, Price)>,
    /// This order's notional.
    pub notional: Notional,
    /// The position in the symbol before this order (negative for short).
    pub position: i64,
    /// Position plus open same-side quantity plus this order, signed (what the
    /// position limit was checked against).
    pub projected_position: i64,
    /// The position limit on this side for this symbol.
    pub position_limit: Qty,
    /// The account's open-order notional before this order.
    pub open_notional: Notional,
    /// The account's long exposure (counted for buys only).
    pub long_exposure: Notional,
    /// Credit used with this order (what the credit limit was checked against).
    pub credit_used: Notional,
    /// The credit limit.
    pub credit_limit: Notional,
}

/// A failed state update or configuration call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreTradeError {
    /// No limits are configured for this role.
    #[error("role {0:?} has no limits configured")]
    UnknownRole(String),
    /// The account has no role.
    #[error("account {0} is not configured")]
    UnknownAccount(AccountId),
    /// The symbol's units are not configured.
    #[error("symbol {0} is not configured")]
    UnknownInstrument(SymbolId),
    /// The order id is not open here.
    #[error("order {0} is not open")]
    UnknownOrder(OrderId),
    /// The order id is already open.
    #[error("order {0} is already open")]
    DuplicateOrderId(OrderId),
    /// A fill larger than what is open.
    #[error("fill of {fill} on order {order_id} is more than its open quantity {open}")]
    Overfill {
        /// The order.
        order_id: OrderId,
        /// Its open quantity.
        open: Qty,
        /// The fill's quantity.
        fill: Qty,
    },
    /// A zero quantity, or a price that is not positive or absurd.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// "fill quantity", "fill price", "reference price"...
        what: &'static str,
        /// The value given.
        value: i128,
    },
}

/// Where a kill switch or a restriction applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every account.
    Global,
    /// One account.
    Account(AccountId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InstrumentState {
    price_decimals: u8,
    qty_decimals: u8,
    reference: Option<Price>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SymbolState {
    /// Signed position in quantity units.
    position: i64,
    open_buy: Qty,
    open_sell: Qty,
    /// The last fill price (or the price given with a set position): the mark without a reference price.
    last_price: Price,
    /// A per-symbol override of `max_position`.
    position_limit: Option<Qty>,
    /// This symbol's share of the account's `long_exposure`.
    long_value: Notional,
}

/// What makes two orders of one account duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OrderKey {
    symbol: SymbolId,
    side: Side,
    qty: Qty,
    price: Option<Price>,
}

impl OrderKey {
    fn of(o: &OrderIntent) -> Self {
        Self { symbol: o.symbol, side: o.side, qty: o.qty, price: o.limit_price }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecentOrder {
    ts_ns: u64,
    key: OrderKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountState {
    role: String,
    overrides: LimitOverrides,
    /// The role's limits with the overrides applied, kept current.
    limits: RiskLimits,
    killed: bool,
    restricted: IdSet<SymbolId>,
    open_notional: Notional,
    /// Long positions at their marks, kept current by fills, set positions
    /// and reference prices, so a check reads it without a scan.
    long_exposure: Notional,
    symbols: IdMap<SymbolId, SymbolState>,
    /// Accepted orders inside the duplicate window, oldest first.
    recent: VecDeque<RecentOrder>,
    /// The latest time of each key in `recent`, for a lookup without a scan.
    recent_by_key: IdMap<OrderKey, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenOrder {
    account: AccountId,
    symbol: SymbolId,
    side: Side,
    remaining: Qty,
    price: Price,
    reserved: Notional,
}

/// One account's exposure, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountExposure {
    /// Notional of open orders, both sides.
    pub open_notional: Notional,
    /// Long positions at their marks.
    pub long_exposure: Notional,
    /// The effective credit limit.
    pub credit_limit: Notional,
}

/// The pre-trade risk checker: configuration and the state the checks need
/// (open orders, positions, recent orders). Not internally synchronized: the
/// OMS holds it behind its lock, so a check and the acceptance that follows
/// see the same state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreTradeRisk {
    config: PreTradeConfig,
    global_kill: bool,
    global_restricted: IdSet<SymbolId>,
    roles: HashMap<String, RiskLimits>,
    instruments: IdMap<SymbolId, InstrumentState>,
    accounts: IdMap<AccountId, AccountState>,
    open: IdMap<OrderId, OpenOrder>,
    /// The accounts long in each symbol, to re-mark when its reference price moves.
    holders: IdMap<SymbolId, IdSet<AccountId>>,
}

impl PreTradeRisk {
    /// An empty checker: no roles, accounts or instruments, so every order is refused until configured.
    #[must_use]
    pub fn new(config: PreTradeConfig) -> Self {
        Self { config, ..Self::default() }
    }

    // ---- configuration ----

    /// Sets a role's default limits (creating the role); accounts with this role get them at once.
    pub fn set_role_limits(&mut self, role: &str, limits: RiskLimits) {
        self.roles.insert(role.to_owned(), limits);
        for a in self.accounts.values_mut().filter(|a| a.role == role) {
            a.limits = a.overrides.apply(&limits);
        }
    }

    /// Gives an account a role (adding the account, or changing its role and keeping its state and overrides).
    ///
    /// # Errors
    /// [`PreTradeError::UnknownRole`] when the role has no limits.
    pub fn set_account_role(&mut self, account: AccountId, role: &str) -> Result<(), PreTradeError> {
        let base = *self.roles.get(role).ok_or_else(|| PreTradeError::UnknownRole(role.to_owned()))?;
        match self.accounts.entry(account) {
            Entry::Occupied(mut e) => {
                let a = e.get_mut();
                a.role = role.to_owned();
                a.limits = a.overrides.apply(&base);
            }
            Entry::Vacant(e) => {
                e.insert(AccountState {
                    role: role.to_owned(),
                    overrides: LimitOverrides::default(),
                    limits: base,
                    killed: false,
                    restricted: IdSet::default(),
                    open_notional: 0,
                    long_exposure: 0,
                    symbols: IdMap::default(),
                    recent: VecDeque::new(),
                    recent_by_key: IdMap::default(),
                });
            }
        }
        Ok(())
    }

    /// Replaces an account's overrides of its role's limits.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownAccount`].
    pub fn set_account_overrides(
        &mut self,
        account: AccountId,
        overrides: LimitOverrides,
    ) -> Result<(), PreTradeError> {
        let a = self.accounts.get_mut(&account).ok_or(PreTradeError::UnknownAccount(account))?;
        let base = self.roles.get(&a.role).copied().unwrap_or(RiskLimits::UNLIMITED);
        a.overrides = overrides;
        a.limits = overrides.apply(&base);
        Ok(())
    }

    /// Sets (or with `None` clears) an account's position limit for one symbol,
    /// overriding `max_position` (quantities differ in units between symbols).
    ///
    /// # Errors
    /// [`PreTradeError::UnknownAccount`].
    pub fn set_position_limit(
        &mut self,
        account: AccountId,
        symbol: SymbolId,
        limit: Option<Qty>,
    ) -> Result<(), PreTradeError> {
        let a = self.accounts.get_mut(&account).ok_or(PreTradeError::UnknownAccount(account))?;
        a.symbols.entry(symbol).or_default().position_limit = limit;
        Ok(())
    }

    /// The limits that apply to an account, if it is configured.
    #[must_use]
    pub fn effective_limits(&self, account: AccountId) -> Option<RiskLimits> {
        self.accounts.get(&account).map(|a| a.limits)
    }

    /// Registers a symbol's units (its price and quantity decimals), keeping its reference price if it had one.
    pub fn add_instrument(&mut self, symbol: SymbolId, instrument: &Instrument) {
        let reference = self.instruments.get(&symbol).and_then(|i| i.reference);
        self.instruments.insert(
            symbol,
            InstrumentState {
                price_decimals: instrument.price_decimals,
                qty_decimals: instrument.qty_decimals,
                reference,
            },
        );
    }

    /// Sets (or with `None` clears) a symbol's reference price: the price the
    /// collar is centred on, market orders are valued at and long positions are marked at.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownInstrument`], or a price that is not in `1..=MAX_PRICE`.
    pub fn set_reference_price(&mut self, symbol: SymbolId, price: Option<Price>) -> Result<(), PreTradeError> {
        if let Some(p) = price
            && !(1..=MAX_PRICE).contains(&p)
        {
            return Err(PreTradeError::Invalid { what: "reference price", value: i128::from(p) });
        }
        let i = self.instruments.get_mut(&symbol).ok_or(PreTradeError::UnknownInstrument(symbol))?;
        i.reference = price;
        if let Some(holders) = self.holders.get(&symbol) {
            for account in holders {
                if let Some(a) = self.accounts.get_mut(account) {
                    remark(&self.instruments, a, symbol);
                }
            }
        }
        Ok(())
    }

    /// A symbol's reference price.
    #[must_use]
    pub fn reference_price(&self, symbol: SymbolId) -> Option<Price> {
        self.instruments.get(&symbol).and_then(|i| i.reference)
    }

    /// Turns a kill switch on or off.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownAccount`] for an account that is not configured.
    pub fn set_kill_switch(&mut self, scope: Scope, on: bool) -> Result<(), PreTradeError> {
        match scope {
            Scope::Global => self.global_kill = on,
            Scope::Account(id) => self.accounts.get_mut(&id).ok_or(PreTradeError::UnknownAccount(id))?.killed = on,
        }
        Ok(())
    }

    /// Whether a kill switch is on (for an account: its own switch, not the global one).
    #[must_use]
    pub fn kill_switch(&self, scope: Scope) -> bool {
        match scope {
            Scope::Global => self.global_kill,
            Scope::Account(id) => self.accounts.get(&id).is_some_and(|a| a.killed),
        }
    }

    /// Adds a symbol to, or removes it from, a restricted list.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownAccount`] for an account that is not configured.
    pub fn set_restricted(&mut self, scope: Scope, symbol: SymbolId, restricted: bool) -> Result<(), PreTradeError> {
        let set = match scope {
            Scope::Global => &mut self.global_restricted,
            Scope::Account(id) => &mut self.accounts.get_mut(&id).ok_or(PreTradeError::UnknownAccount(id))?.restricted,
        };
        if restricted {
            set.insert(symbol);
        } else {
            set.remove(&symbol);
        }
        Ok(())
    }

    /// Sets a position directly (start of day, or a transfer), marked at `price` when there is no reference price.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownAccount`], [`PreTradeError::UnknownInstrument`], or a price not in `1..=MAX_PRICE`.
    pub fn set_position(
        &mut self,
        account: AccountId,
        symbol: SymbolId,
        position: i64,
        price: Price,
    ) -> Result<(), PreTradeError> {
        if !self.instruments.contains_key(&symbol) {
            return Err(PreTradeError::UnknownInstrument(symbol));
        }
        if !(1..=MAX_PRICE).contains(&price) {
            return Err(PreTradeError::Invalid { what: "position price", value: i128::from(price) });
        }
        let a = self.accounts.get_mut(&account).ok_or(PreTradeError::UnknownAccount(account))?;
        let s = a.symbols.entry(symbol).or_default();
        s.position = position;
        s.last_price = price;
        let long = remark(&self.instruments, a, symbol);
        set_holder(&mut self.holders, symbol, account, long);
        Ok(())
    }

    // ---- queries ----

    /// An account's position in a symbol (0 when it has none).
    #[must_use]
    pub fn position(&self, account: AccountId, symbol: SymbolId) -> i64 {
        self.accounts.get(&account).and_then(|a| a.symbols.get(&symbol)).map_or(0, |s| s.position)
    }

    /// An account's open quantity on one side of a symbol.
    #[must_use]
    pub fn open_qty(&self, account: AccountId, symbol: SymbolId, side: Side) -> Qty {
        self.accounts.get(&account).and_then(|a| a.symbols.get(&symbol)).map_or(0, |s| match side {
            Side::Buy => s.open_buy,
            Side::Sell => s.open_sell,
        })
    }

    /// An account's exposure, if it is configured.
    #[must_use]
    pub fn exposure(&self, account: AccountId) -> Option<AccountExposure> {
        self.accounts.get(&account).map(|a| AccountExposure {
            open_notional: a.open_notional,
            long_exposure: a.long_exposure,
            credit_limit: a.limits.credit_limit,
        })
    }

    /// The number of open orders tracked.
    #[must_use]
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// The long exposure recomputed from scratch (what `long_exposure` must equal).
    #[cfg(test)]
    fn long_exposure_recomputed(&self, a: &AccountState) -> Notional {
        a.symbols
            .iter()
            .filter(|(_, s)| s.position > 0)
            .map(|(sym, s)| {
                self.instruments.get(sym).map_or(0, |i| {
                    let mark = i.reference.unwrap_or(s.last_price);
                    notional(mark, s.position.unsigned_abs(), i.price_decimals, i.qty_decimals)
                })
            })
            .fold(0, Notional::saturating_add)
    }

    // ---- the check ----

    /// Checks an order against every rule (in the order of the module
    /// documentation) without changing any state.
    ///
    /// # Errors
    /// The first rule that refuses it, as a [`Rejection`].
    pub fn check(&self, o: &OrderIntent) -> Result<RiskMetrics, Rejection> {
        use RejectReason as R;
        if self.global_kill {
            return Err(Rejection::new(R::GlobalKillSwitch, "trading is halted by the global kill switch".to_owned()));
        }
        let Some(a) = self.accounts.get(&o.account) else {
            return Err(Rejection::new(
                R::UnknownAccount,
                format!("account {} has no risk limits configured", o.account),
            ));
        };
        if a.killed {
            return Err(Rejection::new(
                R::AccountKillSwitch,
                format!("trading is halted for account {} by its kill switch", o.account),
            ));
        }
        let Some(ins) = self.instruments.get(&o.symbol) else {
            return Err(Rejection::new(
                R::UnknownInstrument,
                format!("symbol {} is not configured for pre-trade risk", o.symbol),
            ));
        };
        let (pd, qd) = (ins.price_decimals, ins.qty_decimals);
        let qty_s = |q: Qty| fmt_units(i128::from(q), qd, false);
        let px_s = |p: Price| fmt_units(i128::from(p), pd, false);
        if o.qty == 0 || o.qty > MAX_QTY {
            return Err(Rejection::new(
                R::InvalidOrder,
                format!("quantity {} is not between one unit and the maximum {}", qty_s(o.qty), qty_s(MAX_QTY)),
            ));
        }
        if let Some(p) = o.limit_price
            && !(1..=MAX_PRICE).contains(&p)
        {
            return Err(Rejection::new(
                R::InvalidOrder,
                format!("limit price {} is not between one unit and the maximum {}", px_s(p), px_s(MAX_PRICE)),
            ));
        }
        if self.global_restricted.contains(&o.symbol) {
            return Err(Rejection::new(
                R::RestrictedSymbol,
                format!("symbol {} is on the restricted list for all accounts", o.symbol),
            ));
        }
        if a.restricted.contains(&o.symbol) {
            return Err(Rejection::new(
                R::RestrictedSymbol,
                format!("symbol {} is on the restricted list of account {}", o.symbol, o.account),
            ));
        }
        let limits = a.limits;
        if o.qty > limits.max_order_qty {
            return Err(Rejection::new(
                R::MaxOrderQty,
                format!(
                    "order quantity {} is above the maximum order quantity {}",
                    qty_s(o.qty),
                    qty_s(limits.max_order_qty)
                ),
            ));
        }
        let reference = ins.reference;
        let collar_on = limits.collar_bps != RiskLimits::NO_COLLAR;
        let (price_used, collar) = match (o.limit_price, reference) {
            (None, None) => {
                return Err(Rejection::new(
                    R::NoReferencePrice,
                    format!("a market order needs a reference price and symbol {} has none", o.symbol),
                ));
            }
            (None, Some(r)) => (r, None),
            (Some(_), None) if collar_on => {
                return Err(Rejection::new(
                    R::NoReferencePrice,
                    format!(
                        "the price collar of {} bps needs a reference price and symbol {} has none",
                        limits.collar_bps, o.symbol
                    ),
                ));
            }
            (Some(p), None) => (p, None),
            (Some(p), Some(r)) if collar_on => {
                let delta = i128::from(r) * i128::from(limits.collar_bps) / 10_000;
                let low = (i128::from(r) - delta).max(0);
                let high = i128::from(r) + delta;
                let band = (clamp_price(low), clamp_price(high));
                let pp = i128::from(p);
                if pp < low || pp > high {
                    let away_bps = (pp - i128::from(r)).abs() * 10_000 / i128::from(r);
                    return Err(Rejection::new(
                        R::PriceCollar,
                        format!(
                            "limit price {} is {away_bps} bps from the reference price {}, outside the collar of {} \
                             bps [{}, {}]",
                            px_s(p),
                            px_s(r),
                            limits.collar_bps,
                            fmt_units(low, pd, false),
                            fmt_units(high, pd, false),
                        ),
                    ));
                }
                (p, Some(band))
            }
            (Some(p), Some(_)) => (p, None),
        };
        let order_notional = notional(price_used, o.qty, pd, qd);
        if order_notional > limits.max_order_notional {
            return Err(Rejection::new(
                R::MaxOrderNotional,
                format!(
                    "order notional {} ({} at {}{}) is above the maximum order notional {}",
                    fmt_notional(order_notional),
                    qty_s(o.qty),
                    px_s(price_used),
                    if o.limit_price.is_none() { ", the reference price" } else { "" },
                    fmt_notional(limits.max_order_notional)
                ),
            ));
        }
        if let Some(prev) = self.duplicate_of(a, o) {
            return Err(Rejection::new(
                R::DuplicateOrder,
                format!(
                    "duplicate of an order accepted {} ns earlier with the same symbol, side, quantity and price \
                     (duplicate window {} ns)",
                    o.ts_ns.saturating_sub(prev),
                    self.config.duplicate_window_ns
                ),
            ));
        }
        let sym = a.symbols.get(&o.symbol).copied().unwrap_or_default();
        let position_limit = sym.position_limit.unwrap_or(limits.max_position);
        let qty = i128::from(o.qty);
        let pos = i128::from(sym.position);
        let (projected, open_same) = match o.side {
            Side::Buy => (pos + i128::from(sym.open_buy) + qty, sym.open_buy),
            Side::Sell => (pos - i128::from(sym.open_sell) - qty, sym.open_sell),
        };
        let beyond = match o.side {
            Side::Buy => projected > i128::from(position_limit),
            Side::Sell => projected < -i128::from(position_limit),
        };
        if beyond {
            return Err(Rejection::new(
                R::PositionLimit,
                format!(
                    "{} would take the position in symbol {} to {} (position {} {} open {}s {} {} this order {}), \
                     beyond the position limit of {} per side",
                    o.side,
                    o.symbol,
                    fmt_units(projected, qd, false),
                    fmt_units(pos, qd, false),
                    if o.side == Side::Buy { "+" } else { "-" },
                    o.side,
                    qty_s(open_same),
                    if o.side == Side::Buy { "+" } else { "-" },
                    qty_s(o.qty),
                    qty_s(position_limit),
                ),
            ));
        }
        let long_exposure = if o.side == Side::Buy { a.long_exposure } else { 0 };
        let credit_used = a.open_notional.saturating_add(order_notional).saturating_add(long_exposure);
        if credit_used > limits.credit_limit {
            return Err(Rejection::new(
                R::CreditLimit,
                format!(
                    "credit used would be {} (open orders {} + this order {}{}), above the credit limit {}",
                    fmt_notional(credit_used),
                    fmt_notional(a.open_notional),
                    fmt_notional(order_notional),
                    if o.side == Side::Buy {
                        format!(" + long positions {}", fmt_notional(long_exposure))
                    } else {
                        String::new()
                    },
                    fmt_notional(limits.credit_limit)
                ),
            ));
        }
        Ok(RiskMetrics {
            limits,
            price_used,
            reference_price: reference,
            collar,
            notional: order_notional,
            position: sym.position,
            projected_position: clamp_i64(projected),
            position_limit,
            open_notional: a.open_notional,
            long_exposure,
            credit_used,
            credit_limit: limits.credit_limit,
        })
    }

    /// The time of an earlier accepted order this one duplicates, if any.
    fn duplicate_of(&self, a: &AccountState, o: &OrderIntent) -> Option<u64> {
        let window = self.config.duplicate_window_ns;
        if window == 0 {
            return None;
        }
        a.recent_by_key.get(&OrderKey::of(o)).copied().filter(|ts| o.ts_ns.saturating_sub(*ts) < window)
    }

    // ---- state updates ----

    /// Checks an order and, if it passes, records it as accepted under
    /// `order_id` (for an OMS that assigns ids before the venue sees the
    /// order). A rejection changes nothing.
    ///
    /// # Errors
    /// The [`Rejection`]; an `order_id` already open is refused as `invalid_order`.
    pub fn submit(&mut self, order_id: OrderId, o: &OrderIntent) -> Result<RiskMetrics, Rejection> {
        let m = self.check(o)?;
        if self.open.contains_key(&order_id) {
            return Err(Rejection::new(RejectReason::InvalidOrder, format!("order id {order_id} is already open")));
        }
        self.record_accepted(order_id, o, &m);
        Ok(m)
    }

    /// Records an order that passed [`check`](Self::check) and was accepted
    /// by the venue as `order_id`: reserves its notional (at
    /// `metrics.price_used`) and open quantity, and remembers it for
    /// duplicate detection.
    ///
    /// # Errors
    /// [`PreTradeError::DuplicateOrderId`], [`PreTradeError::UnknownAccount`],
    /// [`PreTradeError::UnknownInstrument`].
    pub fn on_accepted(
        &mut self,
        order_id: OrderId,
        o: &OrderIntent,
        metrics: &RiskMetrics,
    ) -> Result<(), PreTradeError> {
        if self.open.contains_key(&order_id) {
            return Err(PreTradeError::DuplicateOrderId(order_id));
        }
        if !self.accounts.contains_key(&o.account) {
            return Err(PreTradeError::UnknownAccount(o.account));
        }
        if !self.instruments.contains_key(&o.symbol) {
            return Err(PreTradeError::UnknownInstrument(o.symbol));
        }
        self.record_accepted(order_id, o, metrics);
        Ok(())
    }

    /// Records an order the venue accepted earlier, without checking it
    /// again (a journal replay after a restart: limits may have changed
    /// since, and what the venue accepted stands). Its notional is reserved
    /// at its limit price, or at the reference price for a market order.
    ///
    /// # Errors
    /// As [`on_accepted`](Self::on_accepted).
    pub fn restore_accepted(&mut self, order_id: OrderId, o: &OrderIntent) -> Result<(), PreTradeError> {
        let instrument = self.instruments.get(&o.symbol).ok_or(PreTradeError::UnknownInstrument(o.symbol))?;
        let limits = self.effective_limits(o.account).ok_or(PreTradeError::UnknownAccount(o.account))?;
        let price = o.limit_price.or(instrument.reference).unwrap_or(0);
        let n = notional(price, o.qty, instrument.price_decimals, instrument.qty_decimals);
        let m = RiskMetrics {
            limits,
            price_used: price,
            reference_price: instrument.reference,
            collar: None,
            notional: n,
            position: self.position(o.account, o.symbol),
            projected_position: 0,
            position_limit: limits.max_position,
            open_notional: 0,
            long_exposure: 0,
            credit_used: 0,
            credit_limit: limits.credit_limit,
        };
        self.on_accepted(order_id, o, &m)
    }

    fn record_accepted(&mut self, order_id: OrderId, o: &OrderIntent, m: &RiskMetrics) {
        let window = self.config.duplicate_window_ns;
        let Some(a) = self.accounts.get_mut(&o.account) else { return };
        a.open_notional = a.open_notional.saturating_add(m.notional);
        let s = a.symbols.entry(o.symbol).or_default();
        match o.side {
            Side::Buy => s.open_buy = s.open_buy.saturating_add(o.qty),
            Side::Sell => s.open_sell = s.open_sell.saturating_add(o.qty),
        }
        if window > 0 {
            while let Some(old) = a.recent.front().copied()
                && o.ts_ns.saturating_sub(old.ts_ns) >= window
            {
                a.recent.pop_front();
                if a.recent_by_key.get(&old.key) == Some(&old.ts_ns) {
                    a.recent_by_key.remove(&old.key);
                }
            }
            let key = OrderKey::of(o);
            a.recent.push_back(RecentOrder { ts_ns: o.ts_ns, key });
            let latest = a.recent_by_key.entry(key).or_insert(o.ts_ns);
            *latest = (*latest).max(o.ts_ns);
        }
        self.open.insert(
            order_id,
            OpenOrder {
                account: o.account,
                symbol: o.symbol,
                side: o.side,
                remaining: o.qty,
                price: m.price_used,
                reserved: m.notional,
            },
        );
    }

    /// A fill of `qty` at `price` on an open order: the position moves by
    /// the fill, the open quantity and the reserved notional shrink (the
    /// order's notional is recomputed on what remains, so nothing drifts),
    /// and the fill price becomes the symbol's mark without a reference price.
    /// A fill of everything that is open closes the order.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownOrder`], [`PreTradeError::Overfill`], or a zero
    /// quantity or a price not in `1..=MAX_PRICE` ([`PreTradeError::Invalid`]).
    pub fn on_fill(&mut self, order_id: OrderId, qty: Qty, price: Price) -> Result<(), PreTradeError> {
        if qty == 0 {
            return Err(PreTradeError::Invalid { what: "fill quantity", value: 0 });
        }
        if !(1..=MAX_PRICE).contains(&price) {
            return Err(PreTradeError::Invalid { what: "fill price", value: i128::from(price) });
        }
        let ord = *self.open.get(&order_id).ok_or(PreTradeError::UnknownOrder(order_id))?;
        if qty > ord.remaining {
            return Err(PreTradeError::Overfill { order_id, open: ord.remaining, fill: qty });
        }
        let (pd, qd) = self.instruments.get(&ord.symbol).map_or((0, 0), |i| (i.price_decimals, i.qty_decimals));
        let Some(a) = self.accounts.get_mut(&ord.account) else {
            return Err(PreTradeError::UnknownAccount(ord.account));
        };
        let remaining = ord.remaining - qty;
        let reserved = notional(ord.price, remaining, pd, qd).min(ord.reserved);
        a.open_notional = a.open_notional.saturating_sub(ord.reserved - reserved);
        let s = a.symbols.entry(ord.symbol).or_default();
        let signed = i64::try_from(qty).unwrap_or(i64::MAX);
        match ord.side {
            Side::Buy => {
                s.open_buy = s.open_buy.saturating_sub(qty);
                s.position = s.position.saturating_add(signed);
            }
            Side::Sell => {
                s.open_sell = s.open_sell.saturating_sub(qty);
                s.position = s.position.saturating_sub(signed);
            }
        }
        s.last_price = price;
        let long = remark(&self.instruments, a, ord.symbol);
        set_holder(&mut self.holders, ord.symbol, ord.account, long);
        if remaining == 0 {
            self.open.remove(&order_id);
        } else if let Some(o) = self.open.get_mut(&order_id) {
            o.remaining = remaining;
            o.reserved = reserved;
        }
        Ok(())
    }

    /// An open order canceled (by the owner, or the unfilled rest of an
    /// IOC/FOK or market order): releases its open quantity and reserved
    /// notional. Returns the quantity released.
    ///
    /// # Errors
    /// [`PreTradeError::UnknownOrder`].
    pub fn on_cancel(&mut self, order_id: OrderId) -> Result<Qty, PreTradeError> {
        let ord = self.open.remove(&order_id).ok_or(PreTradeError::UnknownOrder(order_id))?;
        if let Some(a) = self.accounts.get_mut(&ord.account) {
            a.open_notional = a.open_notional.saturating_sub(ord.reserved);
            let s = a.symbols.entry(ord.symbol).or_default();
            match ord.side {
                Side::Buy => s.open_buy = s.open_buy.saturating_sub(ord.remaining),
                Side::Sell => s.open_sell = s.open_sell.saturating_sub(ord.remaining),
            }
        }
        Ok(ord.remaining)
    }
}

/// Re-marks an account's position in one symbol (at the reference price, or
/// the last fill price without one) and updates its long exposure; returns
/// whether the account is long the symbol.
fn remark(instruments: &IdMap<SymbolId, InstrumentState>, a: &mut AccountState, symbol: SymbolId) -> bool {
    let Some(s) = a.symbols.get_mut(&symbol) else { return false };
    let long = s.position > 0;
    let value = if long {
        instruments.get(&symbol).map_or(0, |i| {
            notional(i.reference.unwrap_or(s.last_price), s.position.unsigned_abs(), i.price_decimals, i.qty_decimals)
        })
    } else {
        0
    };
    let old = std::mem::replace(&mut s.long_value, value);
    a.long_exposure = match a.long_exposure.checked_sub(old).and_then(|x| x.checked_add(value)) {
        Some(v) => v,
        // Absurd values saturated somewhere: add it all up again.
        None => a.symbols.values().map(|s| s.long_value).fold(0, Notional::saturating_add),
    };
    long
}

fn set_holder(holders: &mut IdMap<SymbolId, IdSet<AccountId>>, symbol: SymbolId, account: AccountId, long: bool) {
    if long {
        holders.entry(symbol).or_default().insert(account);
    } else if let Some(h) = holders.get_mut(&symbol) {
        h.remove(&account);
    }
}

fn clamp_price(v: i128) -> Price {
    Price::try_from(v).unwrap_or(if v < 0 { Price::MIN } else { Price::MAX })
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_format_without_floats() {
        assert_eq!(fmt_units(12345, 2, false), "123.45");
        assert_eq!(fmt_units(5, 2, false), "0.05");
        assert_eq!(fmt_units(-5, 3, false), "-0.005");
        assert_eq!(fmt_units(100, 0, false), "100");
        assert_eq!(fmt_units(150_000_000, 8, true), "1.5");
        assert_eq!(fmt_units(100_000_000, 8, true), "1");
        assert_eq!(fmt_notional(0), "0");
        assert_eq!(fmt_notional(Notional::MAX), "unlimited");
    }

    proptest::proptest! {
        /// The incrementally kept long exposure always equals a recomputation.
        #[test]
        fn long_exposure_is_kept_current(
            ops in proptest::collection::vec((0u8..4, 0u32..3, 1u64..500, 9_000i64..11_000), 1..60)
        ) {
            let mut r = PreTradeRisk::new(PreTradeConfig { duplicate_window_ns: 0 });
            for sym in 0..3 {
                let ins = Instrument { symbol: format!("S{sym}"), price_decimals: 2, qty_decimals: u8::try_from(sym).unwrap_or(0), tick: 1, lot: 1 };
                r.add_instrument(sym, &ins);
            }
            r.set_role_limits("any", RiskLimits { collar_bps: RiskLimits::NO_COLLAR, ..RiskLimits::UNLIMITED });
            r.set_account_role(1, "any").expect("role");
            let mut next = 0;
            for (op, sym, qty, price) in ops {
                match op {
                    0 | 1 => {
                        let side = if op == 0 { Side::Buy } else { Side::Sell };
                        let o = OrderIntent { account: 1, symbol: sym, side, qty, limit_price: Some(price), ts_ns: 0 };
                        r.submit(next, &o).expect("unlimited");
                        r.on_fill(next, qty, price).expect("fill");
                        next += 1;
                    }
                    2 => r.set_reference_price(sym, if qty % 3 == 0 { None } else { Some(price) }).expect("reference"),
                    _ => r.set_position(1, sym, i64::try_from(qty).unwrap_or(0) - 250, price).expect("position"),
                }
                let a = r.accounts.get(&1).expect("account");
                proptest::prop_assert_eq!(a.long_exposure, r.long_exposure_recomputed(a));
            }
        }
    }

    #[test]
    fn notional_scales_by_decimals() {
        // 10 000 shares at 100.00: 1 000 000.
        assert_eq!(notional(10_000, 10_000, 2, 0), notional_from_whole(1_000_000));
        // 0.5 BTC (8 decimals) at 60 000.00 (2 decimals): 30 000, 10 decimals → rounded up.
        assert_eq!(notional(6_000_000, 50_000_000, 2, 8), notional_from_whole(30_000));
        // One satoshi at 0.01: 1e-10, rounds up to one notional unit.
        assert_eq!(notional(1, 1, 2, 8), 1);
        assert_eq!(notional(-5, 1, 2, 0), 0);
        assert_eq!(notional(1, 1, 200, 200), 1);
        assert!((notional_to_f64(notional(12_345, 3, 2, 0)) - 370.35).abs() < 1e-9);
    }
}
