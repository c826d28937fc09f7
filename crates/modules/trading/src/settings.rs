//! `[trading]` in `plexus.toml`: the instruments, accounts, risk roles and
//! journal of the desk, with defaults that make a working demo desk.
//!
//! ```toml
//! [trading]
//! sync = "always"                # or "os": survives kill -9, not power loss
//! max_batch = 64
//! restricted = ["9984.T"]
//! duplicate_window_ms = 1000     # same account, symbol, side, quantity and price: refused; 0 = off
//! [[trading.instruments]]
//! symbol = "7203.T"
//! price_decimals = 1
//! qty_decimals = 0
//! tick = 5                       # price units: 0.5
//! lot = 100
//! reference = 3000.0
//! [[trading.accounts]]
//! name = "desk-tokyo"
//! owner = "fund-a"
//! role = "trader"
//! traders = ["alice", "role:trading-desk"]   # who may use it
//! [[trading.feeds]]              # external market data (read-only; never routes orders)
//! name = "binance"
//! style = "binance"              # or "coinbase"
//! url = "wss://stream.binance.com:9443/ws"
//! snapshot_url = "http://depth-proxy.internal:8080"   # binance: REST depth snapshots (http)
//! symbols = ["BTCUSDT", "ETHUSDT"]
//! stale_after_ms = 5000
//! dead_after_ms = 30000
//! [trading.roles.trader]
//! max_order_qty = 100000         # in the instrument's units (shares)
//! max_order_notional = 50000000.0
//! collar_bps = 500
//! credit_limit = 200000000.0
//! max_position = 1000000
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::desk::{AccountSpec, ListedInstrument};
use crate::pretrade::{LimitOverrides, NOTIONAL_ONE, Notional, RiskLimits};
use crate::types::Instrument;

/// The raw table; a field left out keeps the demo desk's value.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TradingSettings {
    /// `always` (fdatasync, group commit) or `os` (write only).
    pub sync: String,
    pub max_batch: usize,
    pub restricted: Vec<String>,
    pub instruments: Vec<InstrumentSettings>,
    pub accounts: Vec<AccountSettings>,
    pub roles: BTreeMap<String, RoleSettings>,
    /// Run the market simulator (seeded random order flow around a random
    /// walk) on the simulated accounts; `--demo` turns it on.
    pub simulate: bool,
    /// Compliance: the most orders per trade an account may send in
    /// `otr_window_seconds`, judged once it sent `otr_min_orders`.
    pub otr_limit: f64,
    pub otr_min_orders: u64,
    pub otr_window_seconds: u64,
    /// Pre-trade: an order of an account with the same symbol, side,
    /// quantity and price as one it placed less than this long before is
    /// refused as `duplicate_order` (0 turns the check off).
    pub duplicate_window_ms: u64,
    /// External market-data feeds (`[[trading.feeds]]`), shown beside the
    /// internal venue by `get_market_data` and the `market://` resources.
    pub feeds: Vec<FeedSettings>,
}

/// One external feed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    /// A unique name: the `venue` of its market data.
    pub name: String,
    /// `binance` or `coinbase`: which venue protocol the stream speaks.
    pub style: String,
    /// `ws://` or `wss://`.
    pub url: String,
    pub symbols: Vec<String>,
    /// Binance style: the `http://` base URL of REST depth snapshots
    /// (`/api/v3/depth`), needed to build and resync the local book.
    #[serde(default)]
    pub snapshot_url: Option<String>,
    /// Nothing about a symbol within this: it is marked stale (default 5000).
    #[serde(default)]
    pub stale_after_ms: Option<u64>,
    /// Nothing at all within this: the connection is reopened (default 30000).
    #[serde(default)]
    pub dead_after_ms: Option<u64>,
}

impl FeedSettings {
    /// The feed handler's configuration.
    ///
    /// # Errors
    /// What is wrong, naming the feed.
    pub fn config(&self) -> Result<crate::feeds::FeedConfig, String> {
        use crate::feeds::{FeedConfig, HttpSnapshotSource};
        let err = |e: &dyn std::fmt::Display| format!("trading.feeds `{}`: {e}", self.name);
        let mut config = match (self.style.as_str(), &self.snapshot_url) {
            ("binance", Some(url)) => {
                let source = HttpSnapshotSource::new(url).map_err(|e| err(&format!("snapshot_url: {e}")))?;
                FeedConfig::binance(&self.name, &self.url, self.symbols.iter().cloned(), std::sync::Arc::new(source))
            }
            ("binance", None) => return Err(err(&"a binance-style feed needs snapshot_url (REST depth snapshots)")),
            ("coinbase", None) => FeedConfig::coinbase(&self.name, &self.url, self.symbols.iter().cloned()),
            ("coinbase", Some(_)) => return Err(err(&"snapshot_url is for binance-style feeds only")),
            (other, _) => return Err(err(&format!("style must be `binance` or `coinbase`, not `{other}`"))),
        };
        if let Some(ms) = self.stale_after_ms {
            config.stale_after = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = self.dead_after_ms {
            config.dead_after = std::time::Duration::from_millis(ms);
        }
        config.check().map_err(|e| err(&e))?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstrumentSettings {
    pub symbol: String,
    pub price_decimals: u8,
    #[serde(default)]
    pub qty_decimals: u8,
    /// In price units.
    #[serde(default = "one_i64")]
    pub tick: i64,
    /// In quantity units.
    #[serde(default = "one_u64")]
    pub lot: u64,
    /// The reference price (decimal) until the first trade.
    pub reference: Option<f64>,
    /// Annualized volatility of the simulated price history (0.3 = 30 %).
    #[serde(default = "default_vol")]
    pub volatility: f64,
    /// Sector, for concentration warnings.
    #[serde(default)]
    pub sector: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub name: String,
    pub owner: String,
    pub role: String,
    /// Callers who may use it: subjects, or `role:<name>`.
    #[serde(default)]
    pub traders: Vec<String>,
    #[serde(default)]
    pub max_order_qty: Option<u64>,
    #[serde(default)]
    pub credit_limit: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleSettings {
    pub max_order_qty: Option<u64>,
    pub max_order_notional: Option<f64>,
    pub collar_bps: Option<u32>,
    pub credit_limit: Option<f64>,
    pub max_position: Option<u64>,
}

fn default_sync() -> String {
    "always".into()
}
fn default_batch() -> usize {
    64
}
fn one_i64() -> i64 {
    1
}
fn one_u64() -> u64 {
    1
}
fn default_vol() -> f64 {
    0.3
}

impl Default for TradingSettings {
    /// A demo desk: four instruments, two funds' accounts and a market
    /// maker, a trader role with limits.
    fn default() -> Self {
        let inst = |symbol: &str, pd: u8, qd: u8, tick: i64, lot: u64, reference: f64, vol: f64, sector: &str| {
            InstrumentSettings {
                symbol: symbol.into(),
                price_decimals: pd,
                qty_decimals: qd,
                tick,
                lot,
                reference: Some(reference),
                volatility: vol,
                sector: Some(sector.into()),
            }
        };
        let account = |name: &str, owner: &str, role: &str, traders: &[&str]| AccountSettings {
            name: name.into(),
            owner: owner.into(),
            role: role.into(),
            traders: traders.iter().map(|t| (*t).to_owned()).collect(),
            max_order_qty: None,
            credit_limit: None,
        };
        let mut roles = BTreeMap::new();
        roles.insert(
            "trader".into(),
            RoleSettings {
                max_order_qty: Some(100_000),
                max_order_notional: Some(100_000_000.0),
                collar_bps: Some(500),
                credit_limit: Some(500_000_000.0),
                max_position: Some(1_000_000),
            },
        );
        roles.insert(
            "market-maker".into(),
            RoleSettings {
                max_order_qty: Some(1_000_000),
                max_order_notional: None,
                collar_bps: Some(1_000),
                credit_limit: None,
                max_position: None,
            },
        );
        Self {
            sync: default_sync(),
            max_batch: default_batch(),
            restricted: Vec::new(),
            instruments: vec![
                inst("7203.T", 1, 0, 5, 100, 3000.0, 0.25, "automobiles"),
                inst("6758.T", 1, 0, 5, 100, 3500.0, 0.3, "electronics"),
                inst("AAPL", 2, 0, 1, 1, 230.0, 0.28, "technology"),
                inst("BTC-USD", 2, 8, 1, 1000, 95_000.0, 0.6, "crypto"),
            ],
            accounts: vec![
                account("fund-a-tokyo", "fund-a", "trader", &["role:trader", "role:admin"]),
                account("fund-b-global", "fund-b", "trader", &["role:trader", "role:admin"]),
                account("sim-market-maker", "simulator-mm", "market-maker", &["role:admin"]),
                account("sim-flow", "simulator-flow", "market-maker", &["role:admin"]),
            ],
            roles,
            simulate: false,
            otr_limit: 100.0,
            otr_min_orders: 200,
            otr_window_seconds: 60,
            duplicate_window_ms: 1_000,
            feeds: Vec::new(),
        }
    }
}

/// The settings checked and turned into the desk's terms.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sync: crate::journal::Sync,
    pub instruments: Vec<ListedInstrument>,
    pub accounts: Vec<AccountSpec>,
    pub roles: Vec<(String, RiskLimits)>,
    pub traders: BTreeMap<String, Vec<String>>,
    pub volatility: BTreeMap<String, f64>,
    pub sectors: BTreeMap<String, String>,
    pub pretrade: crate::pretrade::PreTradeConfig,
    /// The external feeds, checked (start them with [`crate::feeds::FeedHandle::start`]).
    pub feeds: Vec<crate::feeds::FeedConfig>,
}

fn money(v: Option<f64>, what: &str) -> Result<Notional, String> {
    match v {
        None => Ok(Notional::MAX),
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(x) if x.is_finite() && (0.0..1e20).contains(&x) => Ok((x * NOTIONAL_ONE as f64).round() as Notional),
        Some(x) => Err(format!("{what} must be a non-negative number, not {x}")),
    }
}

impl TradingSettings {
    /// Check the table.
    ///
    /// # Errors
    /// What is wrong, naming the entry.
    pub fn check(&self) -> Result<Checked, String> {
        let sync = match self.sync.as_str() {
            "always" => crate::journal::Sync::Always,
            "os" => crate::journal::Sync::Os,
            other => return Err(format!("trading.sync must be `always` or `os`, not `{other}`")),
        };
        if !(self.otr_limit.is_finite() && self.otr_limit >= 1.0) || self.otr_window_seconds == 0 {
            return Err("trading.otr_limit must be at least 1 and otr_window_seconds positive".into());
        }
        if self.duplicate_window_ms > 3_600_000 {
            return Err(format!(
                "trading.duplicate_window_ms must be at most 3600000 (an hour), not {}",
                self.duplicate_window_ms
            ));
        }
        if self.max_batch == 0 || self.max_batch > 4096 {
            return Err("trading.max_batch must be between 1 and 4096".into());
        }
        let mut instruments = Vec::new();
        let mut volatility = BTreeMap::new();
        let mut sectors = BTreeMap::new();
        for i in &self.instruments {
            let instrument = Instrument {
                symbol: i.symbol.clone(),
                price_decimals: i.price_decimals,
                qty_decimals: i.qty_decimals,
                tick: i.tick,
                lot: i.lot,
            };
            let reference = match i.reference {
                Some(r) => Some(
                    instrument
                        .price_from_decimal(r)
                        .map_err(|e| format!("instrument `{}` reference: {e}", i.symbol))?,
                ),
                None => None,
            };
            if instruments.iter().any(|l: &ListedInstrument| l.instrument.symbol == i.symbol) {
                return Err(format!("trading.instruments: `{}` is listed twice", i.symbol));
            }
            if !(i.volatility.is_finite() && i.volatility > 0.0 && i.volatility < 5.0) {
                return Err(format!("instrument `{}`: volatility must be in (0, 5)", i.symbol));
            }
            volatility.insert(i.symbol.clone(), i.volatility);
            if let Some(s) = &i.sector {
                sectors.insert(i.symbol.clone(), s.clone());
            }
            instruments.push(ListedInstrument { instrument, reference });
        }
        let mut roles = Vec::new();
        for (name, r) in &self.roles {
            roles.push((
                name.clone(),
                RiskLimits {
                    max_order_qty: r.max_order_qty.unwrap_or(u64::MAX),
                    max_order_notional: money(r.max_order_notional, "max_order_notional")?,
                    collar_bps: r.collar_bps.unwrap_or(RiskLimits::NO_COLLAR),
                    credit_limit: money(r.credit_limit, "credit_limit")?,
                    max_position: r.max_position.unwrap_or(u64::MAX),
                },
            ));
        }
        let mut accounts = Vec::new();
        let mut traders = BTreeMap::new();
        for a in &self.accounts {
            if !self.roles.contains_key(&a.role) {
                return Err(format!("account `{}`: no role `{}` in trading.roles", a.name, a.role));
            }
            if a.name.is_empty() || a.name.len() > 64 || a.name.chars().any(char::is_control) {
                return Err(format!("account `{}`: a name is 1 to 64 characters", a.name));
            }
            let overrides = LimitOverrides {
                max_order_qty: a.max_order_qty,
                credit_limit: a.credit_limit.map(|c| money(Some(c), "credit_limit")).transpose()?,
                ..LimitOverrides::default()
            };
            traders.insert(a.name.clone(), a.traders.clone());
            accounts.push(AccountSpec {
                name: a.name.clone(),
                owner: a.owner.clone(),
                role: a.role.clone(),
                overrides,
            });
        }
        let pretrade =
            crate::pretrade::PreTradeConfig { duplicate_window_ns: self.duplicate_window_ms.saturating_mul(1_000_000) };
        let mut feeds: Vec<crate::feeds::FeedConfig> = Vec::new();
        for f in &self.feeds {
            if f.name.is_empty() || f.name.len() > 64 || f.name.chars().any(|c| c.is_control() || c == '/') {
                return Err(format!("trading.feeds `{}`: a name is 1 to 64 characters, no `/`", f.name));
            }
            if f.name == "internal" || feeds.iter().any(|g| g.name == f.name) {
                return Err(format!("trading.feeds: the name `{}` is taken", f.name));
            }
            feeds.push(f.config()?);
        }
        Ok(Checked { sync, instruments, accounts, roles, traders, volatility, sectors, pretrade, feeds })
    }
}
