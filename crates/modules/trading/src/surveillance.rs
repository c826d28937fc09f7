//! Compliance surveillance over the stream of order and trade events: wash
//! trades, spoofing and layering, and order-to-trade ratios, with the
//! evidence behind every alert, and a compliance report for a time range.
//!
//! [`Surveillance::record`] takes [`Event`]s (orders placed, canceled and
//! rejected, trades), each with its timestamp; they may arrive slightly out
//! of order. Detection runs when asked ([`Surveillance::alerts`],
//! [`Surveillance::report`]) over the recorded history, so an alert that
//! needs what happened *after* an order (a cancel, a trade on the other
//! side) is found whatever the order of arrival. Prices and quantities are
//! the engines' integer units (see [`crate::types`]); times are nanoseconds.
//!
//! The rules ([`SurveillanceConfig`] holds the thresholds):
//! - **wash trade**: a trade whose buyer and seller share a beneficial owner
//!   (including an account trading with itself);
//! - **spoofing**: a *large* limit order (at least `large_order_qty`, or at
//!   least `large_order_median_multiple` × the median size of the account's
//!   orders in that symbol over the `median_lookback_ns` before it, once it
//!   has `median_min_orders` of them), canceled within
//!   `max_cancel_latency_ns` of being placed, while the same account traded
//!   the same symbol on the *other* side between `opposite_trade_window_ns`
//!   before the order and that long after its cancel;
//! - **layering**: at least `layering_min_levels` quickly canceled orders of
//!   one account on one side of one symbol at as many distinct prices, alive
//!   at overlapping times, together large (same test on their total
//!   quantity), with a trade on the other side in the same window. Orders in
//!   a layering alert do not also raise spoofing alerts;
//! - **order-to-trade ratio**: orders placed by an account in the
//!   `otr_window_ns` ending at an order, over its trades in that window
//!   (`orders ÷ max(trades, 1)`), above `otr_limit` once at least
//!   `otr_min_orders` orders are in the window. One alert when an account
//!   goes into breach (at the first order that breaches after one that did
//!   not); [`Surveillance::check_order_to_trade`] asks the same question
//!   before an order is sent.
//!
//! A report for `[from, to)` keeps the alerts whose time (the trade; the
//! cancel; the last cancel; the breaching order) is in the range; its
//! spoofing and layering analysis looks at cancels up to
//! `max_cancel_latency_ns + opposite_trade_window_ns` beyond either end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::types::{AccountId, OrderId, Price, Qty, Side, SymbolId};

/// A beneficial owner: the person or entity behind one or more accounts.
pub type OwnerId = u32;

/// An order accepted by the venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderPlaced {
    /// When, in nanoseconds.
    pub ts_ns: u64,
    /// The venue's order id.
    pub order_id: OrderId,
    /// The account.
    pub account: AccountId,
    /// The symbol.
    pub symbol: SymbolId,
    /// Buy or sell.
    #[serde(serialize_with = "side_str")]
    pub side: Side,
    /// Quantity, in quantity units.
    pub qty: Qty,
    /// Limit price in price units; `None` for a market order.
    pub price: Option<Price>,
}

/// An order (or its unfilled rest) canceled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderCanceled {
    /// When, in nanoseconds.
    pub ts_ns: u64,
    /// The order.
    pub order_id: OrderId,
    /// The account.
    pub account: AccountId,
    /// The symbol.
    pub symbol: SymbolId,
    /// The quantity canceled (what was still open).
    pub canceled_qty: Qty,
}

/// An order refused, by pre-trade risk or by the venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRejected {
    /// When, in nanoseconds.
    pub ts_ns: u64,
    /// The order id, if one had been assigned.
    pub order_id: Option<OrderId>,
    /// The account.
    pub account: AccountId,
    /// The symbol.
    pub symbol: SymbolId,
    /// Buy or sell.
    #[serde(serialize_with = "side_str")]
    pub side: Side,
    /// Quantity, in quantity units.
    pub qty: Qty,
    /// Limit price; `None` for a market order.
    pub price: Option<Price>,
    /// The reason code, e.g. `"price_collar"` (see [`crate::pretrade::RejectReason::as_str`]).
    pub reason: String,
}

/// A trade between two orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trade {
    /// When, in nanoseconds.
    pub ts_ns: u64,
    /// The symbol.
    pub symbol: SymbolId,
    /// Price, in price units.
    pub price: Price,
    /// Quantity, in quantity units.
    pub qty: Qty,
    /// The buy order.
    pub buy_order: OrderId,
    /// The sell order.
    pub sell_order: OrderId,
    /// The buyer's account.
    pub buy_account: AccountId,
    /// The seller's account.
    pub sell_account: AccountId,
    /// The buyer's beneficial owner.
    pub buy_owner: OwnerId,
    /// The seller's beneficial owner.
    pub sell_owner: OwnerId,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An order accepted by the venue.
    Placed(OrderPlaced),
    /// An order canceled.
    Canceled(OrderCanceled),
    /// An order refused.
    Rejected(OrderRejected),
    /// A trade.
    Trade(Trade),
}

impl Event {
    /// The event's time, in nanoseconds.
    #[must_use]
    pub fn ts_ns(&self) -> u64 {
        match self {
            Self::Placed(e) => e.ts_ns,
            Self::Canceled(e) => e.ts_ns,
            Self::Rejected(e) => e.ts_ns,
            Self::Trade(e) => e.ts_ns,
        }
    }
}

fn side_str<S: serde::Serializer>(side: &Side, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(side.as_str())
}

/// The thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurveillanceConfig {
    /// An order at least this large (quantity units) is large; `None`: only the median test.
    pub large_order_qty: Option<Qty>,
    /// An order at least this many times the account's median order size is large (0 turns the test off).
    pub large_order_median_multiple: f64,
    /// The fewest earlier orders the median needs.
    pub median_min_orders: usize,
    /// How far back the median looks, in nanoseconds.
    pub median_lookback_ns: u64,
    /// A cancel this soon after placement (inclusive) is a quick cancel, in nanoseconds.
    pub max_cancel_latency_ns: u64,
    /// How far before the order and after its cancel an opposite trade counts, in nanoseconds.
    pub opposite_trade_window_ns: u64,
    /// The fewest distinct price levels for layering.
    pub layering_min_levels: usize,
    /// The order-to-trade ratio's window, in nanoseconds.
    pub otr_window_ns: u64,
    /// The order-to-trade ratio above which an account is in breach.
    pub otr_limit: f64,
    /// The fewest orders in the window before the ratio is judged.
    pub otr_min_orders: u64,
}

impl Default for SurveillanceConfig {
    /// No absolute size threshold, 5× the median over a day (from 5 orders),
    /// quick cancels within 2 s, opposite trades within 5 s, 3 levels for
    /// layering, and at most 20 orders per trade over a minute (from 20 orders).
    fn default() -> Self {
        Self {
            large_order_qty: None,
            large_order_median_multiple: 5.0,
            median_min_orders: 5,
            median_lookback_ns: 86_400 * 1_000_000_000,
            max_cancel_latency_ns: 2_000_000_000,
            opposite_trade_window_ns: 5_000_000_000,
            layering_min_levels: 3,
            otr_window_ns: 60_000_000_000,
            otr_limit: 20.0,
            otr_min_orders: 20,
        }
    }
}

/// The kind of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Buyer and seller share a beneficial owner.
    WashTrade,
    /// A large order canceled quickly while the account traded the other side.
    Spoofing,
    /// Several such orders at different price levels.
    Layering,
    /// Too many orders per trade.
    OrderToTradeRatio,
}

impl AlertKind {
    /// The stable snake_case code, e.g. `"wash_trade"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WashTrade => "wash_trade",
            Self::Spoofing => "spoofing",
            Self::Layering => "layering",
            Self::OrderToTradeRatio => "order_to_trade_ratio",
        }
    }
}

/// Why an order (or a set of orders) was judged large.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum LargeBasis {
    /// At least the configured size.
    Threshold {
        /// The quantity judged.
        qty: Qty,
        /// `large_order_qty`.
        threshold: Qty,
    },
    /// At least a multiple of the account's median order size.
    Median {
        /// The quantity judged.
        qty: Qty,
        /// The median size of the account's earlier orders in the symbol.
        median: f64,
        /// How many orders the median is over.
        sample: usize,
        /// `qty / median`.
        multiple: f64,
        /// `large_order_median_multiple`.
        min_multiple: f64,
    },
}

impl LargeBasis {
    fn describe(&self) -> String {
        match self {
            Self::Threshold { threshold, .. } => format!("at least the large-order threshold {threshold}"),
            Self::Median { median, sample, multiple, .. } => {
                format!("{multiple:.2}x the median order size {median} of the account's {sample} earlier orders")
            }
        }
    }
}

/// A trade cited as evidence, from the account's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TradeRef {
    /// When.
    pub ts_ns: u64,
    /// The account's order in the trade.
    pub order_id: OrderId,
    /// The account's side in the trade.
    #[serde(serialize_with = "side_str")]
    pub side: Side,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
}

/// An order cited as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OrderRef {
    /// The order.
    pub order_id: OrderId,
    /// Its limit price.
    pub price: Price,
    /// Its quantity.
    pub qty: Qty,
    /// How much of it filled before the cancel.
    pub filled_qty: Qty,
    /// When it was placed.
    pub placed_ns: u64,
    /// When it was canceled.
    pub canceled_ns: u64,
}

/// The numbers that tripped a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Evidence {
    /// A wash trade.
    WashTrade {
        /// The shared beneficial owner.
        owner: OwnerId,
        /// The buyer's account.
        buy_account: AccountId,
        /// The seller's account.
        sell_account: AccountId,
        /// The buy order.
        buy_order: OrderId,
        /// The sell order.
        sell_order: OrderId,
        /// The trade's price.
        price: Price,
        /// The trade's quantity.
        qty: Qty,
    },
    /// Spoofing.
    Spoofing {
        /// The order's side.
        #[serde(serialize_with = "side_str")]
        side: Side,
        /// The order.
        order: OrderRef,
        /// How long it lived, in nanoseconds.
        lifetime_ns: u64,
        /// Why it is large.
        large: LargeBasis,
        /// The account's trades on the other side in the window.
        opposite_trades: Vec<TradeRef>,
    },
    /// Layering.
    Layering {
        /// The orders' side.
        #[serde(serialize_with = "side_str")]
        side: Side,
        /// The orders, by placement time.
        orders: Vec<OrderRef>,
        /// The distinct price levels, ascending.
        levels: Vec<Price>,
        /// Their total quantity.
        total_qty: Qty,
        /// Why the total is large.
        large: LargeBasis,
        /// The account's trades on the other side in the window.
        opposite_trades: Vec<TradeRef>,
    },
    /// An order-to-trade ratio above the limit.
    OrderToTradeRatio {
        /// Orders placed in the window (this one included).
        orders: u64,
        /// Trades in the window.
        trades: u64,
        /// `orders ÷ max(trades, 1)`.
        ratio: f64,
        /// The limit.
        limit: f64,
        /// The window's start (exclusive), in nanoseconds.
        window_start_ns: u64,
        /// The window's end (inclusive): the breaching order's time.
        window_end_ns: u64,
    },
}

/// An alert: what, who, where, when, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule.
    pub kind: AlertKind,
    /// When the pattern completed (see the module documentation).
    pub ts_ns: u64,
    /// The accounts involved (ascending, without repeats).
    pub accounts: Vec<AccountId>,
    /// The symbol, when the rule is about one.
    pub symbol: Option<SymbolId>,
    /// The orders involved (for an order-to-trade ratio: the order(s) that went into breach).
    pub order_ids: Vec<OrderId>,
    /// The numbers.
    pub evidence: Evidence,
    /// One sentence with the numbers, for a person.
    pub summary: String,
}

/// The order-to-trade ratio of an account in the window ending at some time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OtrCheck {
    /// Orders in the window (with the prospective order, for [`Surveillance::check_order_to_trade`]).
    pub orders: u64,
    /// Trades in the window.
    pub trades: u64,
    /// `orders ÷ max(trades, 1)`.
    pub ratio: f64,
    /// The limit.
    pub limit: f64,
    /// Whether the ratio is above the limit with enough orders to judge.
    pub exceeds: bool,
}

/// Counts and alerts for a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceReport {
    /// The range's start (inclusive), in nanoseconds.
    pub from_ns: u64,
    /// The range's end (exclusive).
    pub to_ns: u64,
    /// Orders placed.
    pub orders: u64,
    /// Orders canceled.
    pub cancels: u64,
    /// Trades.
    pub trades: u64,
    /// Fills: two per trade (the buy order's and the sell order's).
    pub fills: u64,
    /// Orders refused.
    pub rejections: u64,
    /// Refusals by reason code.
    pub rejections_by_reason: BTreeMap<String, u64>,
    /// Alerts by kind code.
    pub alerts_by_kind: BTreeMap<String, u64>,
    /// The alerts, by time.
    pub alerts: Vec<Alert>,
}

/// The CSV columns of [`ComplianceReport::to_csv`].
pub const REPORT_CSV_HEADER: [&str; 8] =
    ["record", "kind", "ts_ns", "accounts", "symbol", "order_ids", "count", "details"];

/// `s` as one CSV field (RFC 4180): quoted, its quotes doubled, when it holds a comma, a quote, CR or LF.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn join<T: ToString>(xs: &[T]) -> String {
    xs.iter().map(ToString::to_string).collect::<Vec<_>>().join(";")
}

impl ComplianceReport {
    /// The report as CSV (RFC 4180, CRLF line ends) under [`REPORT_CSV_HEADER`]:
    /// `summary` rows (`from_ns`, `to_ns`, `orders`, `cancels`, `trades`, `fills`,
    /// `rejections`, `alerts`) with their value in `count`; one `rejection`
    /// row per reason code with its count; one `alert` row per alert with its
    /// time, accounts and order ids (`;`-separated), symbol and summary.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut row = |fields: [&str; 8]| {
            let line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
            out.push_str(&line);
            out.push_str("\r\n");
        };
        row(REPORT_CSV_HEADER);
        let summary = [
            ("from_ns", self.from_ns),
            ("to_ns", self.to_ns),
            ("orders", self.orders),
            ("cancels", self.cancels),
            ("trades", self.trades),
            ("fills", self.fills),
            ("rejections", self.rejections),
            ("alerts", self.alerts.len() as u64),
        ];
        for (name, value) in summary {
            row(["summary", name, "", "", "", "", &value.to_string(), ""]);
        }
        for (reason, n) in &self.rejections_by_reason {
            row(["rejection", reason, "", "", "", "", &n.to_string(), ""]);
        }
        for a in &self.alerts {
            row([
                "alert",
                a.kind.as_str(),
                &a.ts_ns.to_string(),
                &join(&a.accounts),
                &a.symbol.map(|s| s.to_string()).unwrap_or_default(),
                &join(&a.order_ids),
                "",
                &a.summary,
            ]);
        }
        out
    }
}

/// What is known of an order from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OrderInfo {
    placed: Option<PlacedInfo>,
    canceled_ns: Option<u64>,
    filled_qty: Qty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlacedInfo {
    ts_ns: u64,
    account: AccountId,
    symbol: SymbolId,
    side: Side,
    qty: Qty,
    price: Option<Price>,
}

/// Inserts `x` into a vector sorted by `key`, after any equal keys (O(1) for in-order arrivals).
fn insert_sorted<T, K: Ord>(v: &mut Vec<T>, x: T, key: impl Fn(&T) -> K) {
    let k = key(&x);
    if v.last().is_none_or(|last| key(last) <= k) {
        v.push(x);
    } else {
        let at = v.partition_point(|e| key(e) <= k);
        v.insert(at, x);
    }
}

/// The index range of items with `lo ≤ key < hi` in a vector sorted by key.
fn range_of<T>(v: &[T], lo: u64, hi: u64, key: impl Fn(&T) -> u64) -> std::ops::Range<usize> {
    let a = v.partition_point(|e| key(e) < lo);
    let b = v.partition_point(|e| key(e) < hi);
    a..b.max(a)
}

/// The surveillance engine: the recorded stream and its indexes.
#[derive(Debug, Clone, Default)]
pub struct Surveillance {
    config: SurveillanceConfig,
    placed: Vec<OrderPlaced>,
    canceled: Vec<OrderCanceled>,
    rejected: Vec<OrderRejected>,
    trades: Vec<Trade>,
    orders: HashMap<OrderId, OrderInfo>,
    /// (time, order id) of orders per account, sorted by time.
    account_orders: HashMap<AccountId, Vec<(u64, OrderId)>>,
    /// Trade times per account (one per trade, even against itself), sorted.
    account_trades: HashMap<AccountId, Vec<u64>>,
    /// (time, qty) of orders per account and symbol, sorted, for medians.
    sizes: HashMap<(AccountId, SymbolId), Vec<(u64, Qty)>>,
    /// Trades per account and symbol from the account's side, sorted.
    fills: HashMap<(AccountId, SymbolId), Vec<TradeRef>>,
}

impl Surveillance {
    /// An empty history with these thresholds.
    #[must_use]
    pub fn new(config: SurveillanceConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// The thresholds.
    #[must_use]
    pub fn config(&self) -> &SurveillanceConfig {
        &self.config
    }

    /// The number of events recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.placed.len() + self.canceled.len() + self.rejected.len() + self.trades.len()
    }

    /// Whether nothing is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records one event (in time order or close to it).
    pub fn record(&mut self, event: Event) {
        match event {
            Event::Placed(e) => {
                let info = self.orders.entry(e.order_id).or_insert(OrderInfo {
                    placed: None,
                    canceled_ns: None,
                    filled_qty: 0,
                });
                info.placed = Some(PlacedInfo {
                    ts_ns: e.ts_ns,
                    account: e.account,
                    symbol: e.symbol,
                    side: e.side,
                    qty: e.qty,
                    price: e.price,
                });
                insert_sorted(self.account_orders.entry(e.account).or_default(), (e.ts_ns, e.order_id), |x| x.0);
                insert_sorted(self.sizes.entry((e.account, e.symbol)).or_default(), (e.ts_ns, e.qty), |x| x.0);
                insert_sorted(&mut self.placed, e, |x| x.ts_ns);
            }
            Event::Canceled(e) => {
                let info = self.orders.entry(e.order_id).or_insert(OrderInfo {
                    placed: None,
                    canceled_ns: None,
                    filled_qty: 0,
                });
                info.canceled_ns = Some(e.ts_ns);
                insert_sorted(&mut self.canceled, e, |x| x.ts_ns);
            }
            Event::Rejected(e) => insert_sorted(&mut self.rejected, e, |x| x.ts_ns),
            Event::Trade(t) => {
                for (order, account, side) in
                    [(t.buy_order, t.buy_account, Side::Buy), (t.sell_order, t.sell_account, Side::Sell)]
                {
                    let info = self.orders.entry(order).or_insert(OrderInfo {
                        placed: None,
                        canceled_ns: None,
                        filled_qty: 0,
                    });
                    info.filled_qty = info.filled_qty.saturating_add(t.qty);
                    let r = TradeRef { ts_ns: t.ts_ns, order_id: order, side, price: t.price, qty: t.qty };
                    insert_sorted(self.fills.entry((account, t.symbol)).or_default(), r, |x| x.ts_ns);
                }
                insert_sorted(self.account_trades.entry(t.buy_account).or_default(), t.ts_ns, |x| *x);
                if t.sell_account != t.buy_account {
                    insert_sorted(self.account_trades.entry(t.sell_account).or_default(), t.ts_ns, |x| *x);
                }
                insert_sorted(&mut self.trades, t, |x| x.ts_ns);
            }
        }
    }

    /// Forgets everything before `ts_ns` (for a bounded memory); alerts that
    /// need the forgotten events can no longer be found.
    pub fn prune_before(&mut self, ts_ns: u64) {
        self.placed.retain(|e| e.ts_ns >= ts_ns);
        self.canceled.retain(|e| e.ts_ns >= ts_ns);
        self.rejected.retain(|e| e.ts_ns >= ts_ns);
        self.trades.retain(|e| e.ts_ns >= ts_ns);
        self.orders
            .retain(|_, o| o.placed.is_some_and(|p| p.ts_ns >= ts_ns) || o.canceled_ns.is_some_and(|c| c >= ts_ns));
        for v in self.account_orders.values_mut() {
            v.retain(|x| x.0 >= ts_ns);
        }
        for v in self.account_trades.values_mut() {
            v.retain(|t| *t >= ts_ns);
        }
        for v in self.sizes.values_mut() {
            v.retain(|x| x.0 >= ts_ns);
        }
        for v in self.fills.values_mut() {
            v.retain(|x| x.ts_ns >= ts_ns);
        }
        self.account_orders.retain(|_, v| !v.is_empty());
        self.account_trades.retain(|_, v| !v.is_empty());
        self.sizes.retain(|_, v| !v.is_empty());
        self.fills.retain(|_, v| !v.is_empty());
    }

    // ---- order-to-trade ratio ----

    fn otr(&self, account: AccountId, ts_ns: u64, extra: u64) -> OtrCheck {
        let lo = ts_ns.saturating_sub(self.config.otr_window_ns);
        // (lo, ts]: strictly after the window's start, up to and including its end.
        fn count<T>(v: Option<&Vec<T>>, lo: u64, hi: u64, key: impl Fn(&T) -> u64) -> u64 {
            v.map_or(0, |v| {
                let a = v.partition_point(|x| key(x) <= lo);
                let b = v.partition_point(|x| key(x) <= hi);
                b.saturating_sub(a) as u64
            })
        }
        let orders = count(self.account_orders.get(&account), lo, ts_ns, |x| x.0) + extra;
        let trades = count(self.account_trades.get(&account), lo, ts_ns, |t| *t);
        #[allow(clippy::cast_precision_loss)]
        let ratio = orders as f64 / trades.max(1) as f64;
        let limit = self.config.otr_limit;
        OtrCheck { orders, trades, ratio, limit, exceeds: orders >= self.config.otr_min_orders && ratio > limit }
    }

    /// The account's order-to-trade ratio if it placed one more order at
    /// `ts_ns`: for a pre-trade check (the order is not recorded).
    #[must_use]
    pub fn check_order_to_trade(&self, account: AccountId, ts_ns: u64) -> OtrCheck {
        self.otr(account, ts_ns, 1)
    }

    /// The account's order-to-trade ratio over the window ending at `ts_ns` (inclusive).
    #[must_use]
    pub fn order_to_trade(&self, account: AccountId, ts_ns: u64) -> OtrCheck {
        self.otr(account, ts_ns, 0)
    }

    // ---- detection ----

    /// Every alert whose time is in `[from_ns, to_ns)`, by time.
    #[must_use]
    pub fn alerts(&self, from_ns: u64, to_ns: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        if to_ns <= from_ns {
            return out;
        }
        self.wash_trades(from_ns, to_ns, &mut out);
        self.spoofing_and_layering(from_ns, to_ns, &mut out);
        self.otr_breaches(from_ns, to_ns, &mut out);
        out.sort_by(|a, b| {
            (a.ts_ns, a.kind, &a.accounts, &a.order_ids).cmp(&(b.ts_ns, b.kind, &b.accounts, &b.order_ids))
        });
        out
    }

    fn wash_trades(&self, from: u64, to: u64, out: &mut Vec<Alert>) {
        for t in &self.trades[range_of(&self.trades, from, to, |t| t.ts_ns)] {
            if t.buy_owner != t.sell_owner {
                continue;
            }
            let mut accounts = vec![t.buy_account, t.sell_account];
            accounts.sort_unstable();
            accounts.dedup();
            out.push(Alert {
                kind: AlertKind::WashTrade,
                ts_ns: t.ts_ns,
                accounts,
                symbol: Some(t.symbol),
                order_ids: vec![t.buy_order, t.sell_order],
                evidence: Evidence::WashTrade {
                    owner: t.buy_owner,
                    buy_account: t.buy_account,
                    sell_account: t.sell_account,
                    buy_order: t.buy_order,
                    sell_order: t.sell_order,
                    price: t.price,
                    qty: t.qty,
                },
                summary: format!(
                    "trade of {} at {} in symbol {} between buyer account {} (order {}) and seller account {} \
                     (order {}), both of beneficial owner {}",
                    t.qty, t.price, t.symbol, t.buy_account, t.buy_order, t.sell_account, t.sell_order, t.buy_owner
                ),
            });
        }
    }

    /// Whether `qty` is large for the account in the symbol at `at_ns`.
    fn large(&self, account: AccountId, symbol: SymbolId, at_ns: u64, qty: Qty) -> Option<LargeBasis> {
        let c = &self.config;
        if let Some(threshold) = c.large_order_qty
            && qty >= threshold
        {
            return Some(LargeBasis::Threshold { qty, threshold });
        }
        if !(c.large_order_median_multiple > 0.0 && c.large_order_median_multiple.is_finite()) {
            return None;
        }
        let v = self.sizes.get(&(account, symbol))?;
        let r = range_of(v, at_ns.saturating_sub(c.median_lookback_ns), at_ns, |x| x.0);
        let sample = r.len();
        if sample == 0 || sample < c.median_min_orders {
            return None;
        }
        let mut q: Vec<Qty> = v[r].iter().map(|x| x.1).collect();
        q.sort_unstable();
        #[allow(clippy::cast_precision_loss)]
        let median = if sample % 2 == 1 {
            q[sample / 2] as f64
        } else {
            (q[sample / 2 - 1] as f64 + q[sample / 2] as f64) / 2.0
        };
        if median <= 0.0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let multiple = qty as f64 / median;
        (multiple >= c.large_order_median_multiple).then_some(LargeBasis::Median {
            qty,
            median,
            sample,
            multiple,
            min_multiple: c.large_order_median_multiple,
        })
    }

    /// The account's trades in the symbol on `side` with times in `[lo, hi]`.
    fn trades_on(&self, account: AccountId, symbol: SymbolId, side: Side, lo: u64, hi: u64) -> Vec<TradeRef> {
        self.fills.get(&(account, symbol)).map_or_else(Vec::new, |v| {
            v[range_of(v, lo, hi.saturating_add(1), |x| x.ts_ns)].iter().filter(|t| t.side == side).copied().collect()
        })
    }

    fn spoofing_and_layering(&self, from: u64, to: u64, out: &mut Vec<Alert>) {
        let c = &self.config;
        let pad = c.max_cancel_latency_ns.saturating_add(c.opposite_trade_window_ns);
        // Quick cancels of limit orders, grouped by account, symbol and side.
        let mut groups: BTreeMap<(AccountId, SymbolId, Side), Vec<(PlacedInfo, OrderRef)>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for cx in
            &self.canceled[range_of(&self.canceled, from.saturating_sub(pad), to.saturating_add(pad), |x| x.ts_ns)]
        {
            let Some(info) = self.orders.get(&cx.order_id) else { continue };
            let (Some(p), Some(canceled_ns)) = (info.placed, info.canceled_ns) else { continue };
            let Some(price) = p.price else { continue };
            if canceled_ns < p.ts_ns || canceled_ns - p.ts_ns > c.max_cancel_latency_ns || !seen.insert(cx.order_id) {
                continue;
            }
            let r = OrderRef {
                order_id: cx.order_id,
                price,
                qty: p.qty,
                filled_qty: info.filled_qty,
                placed_ns: p.ts_ns,
                canceled_ns,
            };
            groups.entry((p.account, p.symbol, p.side)).or_default().push((p, r));
        }
        let w = c.opposite_trade_window_ns;
        for ((account, symbol, side), mut orders) in groups {
            orders.sort_by_key(|(_, r)| (r.placed_ns, r.order_id));
            // Components of overlapping lifetimes.
            let mut start = 0;
            while start < orders.len() {
                let mut end = start + 1;
                let mut reach = orders[start].1.canceled_ns;
                while end < orders.len() && orders[end].1.placed_ns <= reach {
                    reach = reach.max(orders[end].1.canceled_ns);
                    end += 1;
                }
                let comp = &orders[start..end];
                start = end;
                let first = comp[0].1.placed_ns;
                let levels: Vec<Price> =
                    comp.iter().map(|(_, r)| r.price).collect::<BTreeSet<_>>().into_iter().collect();
                if levels.len() >= c.layering_min_levels.max(2) {
                    let total_qty = comp.iter().map(|(_, r)| r.qty).fold(0, Qty::saturating_add);
                    let trades = self.trades_on(
                        account,
                        symbol,
                        side.opposite(),
                        first.saturating_sub(w),
                        reach.saturating_add(w),
                    );
                    if let (Some(large), false) = (self.large(account, symbol, first, total_qty), trades.is_empty()) {
                        if (from..to).contains(&reach) {
                            out.push(layering_alert(account, symbol, side, comp, levels, total_qty, large, trades));
                        }
                        continue;
                    }
                }
                for (p, r) in comp {
                    if !(from..to).contains(&r.canceled_ns) {
                        continue;
                    }
                    let Some(large) = self.large(account, symbol, p.ts_ns, p.qty) else { continue };
                    let trades = self.trades_on(
                        account,
                        symbol,
                        side.opposite(),
                        r.placed_ns.saturating_sub(w),
                        r.canceled_ns.saturating_add(w),
                    );
                    if trades.is_empty() {
                        continue;
                    }
                    out.push(spoofing_alert(account, symbol, side, *r, large, trades, w));
                }
            }
        }
    }

    fn otr_breaches(&self, from: u64, to: u64, out: &mut Vec<Alert>) {
        for (&account, orders) in &self.account_orders {
            let r = range_of(orders, from, to, |x| x.0);
            // The breach status of the order before the range decides whether the first in it starts a breach.
            let mut prev = r.start > 0 && self.order_to_trade(account, orders[r.start - 1].0).exceeds;
            let mut i = r.start;
            while i < r.end {
                let ts = orders[i].0;
                // Orders at the same instant are judged together.
                let mut j = i + 1;
                while j < r.end && orders[j].0 == ts {
                    j += 1;
                }
                let now = self.order_to_trade(account, ts);
                if now.exceeds && !prev {
                    let ids = orders[i..j].iter().map(|x| x.1).collect();
                    out.push(otr_alert(account, ts, ids, now, self.config.otr_window_ns));
                }
                prev = now.exceeds;
                i = j;
            }
        }
    }

    /// The report for `[from_ns, to_ns)`: counts of orders, cancels, trades,
    /// fills and rejections (by reason code), and the alerts with their evidence.
    #[must_use]
    pub fn report(&self, from_ns: u64, to_ns: u64) -> ComplianceReport {
        let count = |r: std::ops::Range<usize>| r.len() as u64;
        let trades = count(range_of(&self.trades, from_ns, to_ns, |x| x.ts_ns));
        let rejected = &self.rejected[range_of(&self.rejected, from_ns, to_ns, |x| x.ts_ns)];
        let mut rejections_by_reason = BTreeMap::new();
        for r in rejected {
            *rejections_by_reason.entry(r.reason.clone()).or_insert(0) += 1;
        }
        let alerts = self.alerts(from_ns, to_ns);
        let mut alerts_by_kind = BTreeMap::new();
        for a in &alerts {
            *alerts_by_kind.entry(a.kind.as_str().to_owned()).or_insert(0) += 1;
        }
        ComplianceReport {
            from_ns,
            to_ns,
            orders: count(range_of(&self.placed, from_ns, to_ns, |x| x.ts_ns)),
            cancels: count(range_of(&self.canceled, from_ns, to_ns, |x| x.ts_ns)),
            trades,
            fills: 2 * trades,
            rejections: rejected.len() as u64,
            rejections_by_reason,
            alerts_by_kind,
            alerts,
        }
    }
}

fn opposite_summary(trades: &[TradeRef]) -> String {
    let qty = trades.iter().map(|t| t.qty).fold(0, Qty::saturating_add);
    let mut s = format!("{} trade(s) for {qty} on the other side (", trades.len());
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        let _ = write!(s, "order {} {} {} at {} at {} ns", t.order_id, t.side, t.qty, t.price, t.ts_ns);
    }
    s.push(')');
    s
}

fn spoofing_alert(
    account: AccountId,
    symbol: SymbolId,
    side: Side,
    r: OrderRef,
    large: LargeBasis,
    trades: Vec<TradeRef>,
    window: u64,
) -> Alert {
    let lifetime_ns = r.canceled_ns - r.placed_ns;
    let summary = format!(
        "account {account} placed {side} order {} for {} at {} in symbol {symbol} ({}), canceled it {lifetime_ns} ns \
         later with {} filled, and made {} within {window} ns",
        r.order_id,
        r.qty,
        r.price,
        large.describe(),
        r.filled_qty,
        opposite_summary(&trades),
    );
    let mut order_ids = vec![r.order_id];
    order_ids.extend(trades.iter().map(|t| t.order_id));
    Alert {
        kind: AlertKind::Spoofing,
        ts_ns: r.canceled_ns,
        accounts: vec![account],
        symbol: Some(symbol),
        order_ids,
        evidence: Evidence::Spoofing { side, order: r, lifetime_ns, large, opposite_trades: trades },
        summary,
    }
}

#[allow(clippy::too_many_arguments)]
fn layering_alert(
    account: AccountId,
    symbol: SymbolId,
    side: Side,
    comp: &[(PlacedInfo, OrderRef)],
    levels: Vec<Price>,
    total_qty: Qty,
    large: LargeBasis,
    trades: Vec<TradeRef>,
) -> Alert {
    let orders: Vec<OrderRef> = comp.iter().map(|(_, r)| *r).collect();
    let last_cancel = orders.iter().map(|r| r.canceled_ns).max().unwrap_or(0);
    let longest = orders.iter().map(|r| r.canceled_ns - r.placed_ns).max().unwrap_or(0);
    let summary = format!(
        "account {account} placed {} {side} orders in symbol {symbol} at {} price levels ({}) totalling {total_qty} \
         ({}), canceled each within {longest} ns, and made {}",
        orders.len(),
        levels.len(),
        join(&levels),
        large.describe(),
        opposite_summary(&trades),
    );
    let mut order_ids: Vec<OrderId> = orders.iter().map(|r| r.order_id).collect();
    order_ids.extend(trades.iter().map(|t| t.order_id));
    Alert {
        kind: AlertKind::Layering,
        ts_ns: last_cancel,
        accounts: vec![account],
        symbol: Some(symbol),
        order_ids,
        evidence: Evidence::Layering { side, orders, levels, total_qty, large, opposite_trades: trades },
        summary,
    }
}

fn otr_alert(account: AccountId, ts: u64, order_ids: Vec<OrderId>, now: OtrCheck, window: u64) -> Alert {
    Alert {
        kind: AlertKind::OrderToTradeRatio,
        ts_ns: ts,
        accounts: vec![account],
        symbol: None,
        order_ids,
        evidence: Evidence::OrderToTradeRatio {
            orders: now.orders,
            trades: now.trades,
            ratio: now.ratio,
            limit: now.limit,
            window_start_ns: ts.saturating_sub(window),
            window_end_ns: ts,
        },
        summary: format!(
            "account {account} placed {} orders against {} trades in the {window} ns up to {ts}: an order-to-trade \
             ratio of {:.2}, above the limit {}",
            now.orders, now.trades, now.ratio, now.limit
        ),
    }
}
