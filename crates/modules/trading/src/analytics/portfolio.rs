//! Portfolio-level risk: a portfolio's daily return series from its
//! holdings, stress scenarios, and concentration warnings.
//!
//! Amounts here are `f64` in the quote currency (a position's value is
//! `quantity × price`, both decimals as the outside world writes them), not
//! the engines' integer units: risk figures are estimates, reported to people.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{AnalyticsError, check_finite};

/// One holding with its price history, for [`portfolio_returns`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Holding {
    /// The symbol, e.g. `"AAPL"`.
    pub symbol: String,
    /// Quantity held (negative for a short), constant over the history.
    pub quantity: f64,
    /// Daily closing prices, oldest first; every holding's history covers the same days.
    pub prices: Vec<f64>,
}

/// A portfolio's daily simple returns from its holdings' price histories.
///
/// The return of day `t` is the day's profit and loss over the previous
/// day's *gross* exposure:
/// `r_t = Σ qᵢ·(pᵢ,t − pᵢ,t−1) / Σ |qᵢ|·pᵢ,t−1`.
/// For a long-only portfolio this is exactly `V_t / V_{t−1} − 1` (V the
/// portfolio's value); with shorts it stays defined where the net value
/// crosses zero, and is the return on the capital at risk. Quantities are
/// held constant over the history (today's positions, replayed).
///
/// # Errors
/// No holdings, a symbol held twice, histories of different lengths or of
/// fewer than 2 prices, a non-finite quantity, a price that is not a
/// positive finite number, or [`AnalyticsError::Undefined`] when every
/// quantity is zero.
pub fn portfolio_returns(holdings: &[Holding]) -> Result<Vec<f64>, AnalyticsError> {
    let Some(first) = holdings.first() else {
        return Err(AnalyticsError::Empty { what: "holdings" });
    };
    let days = first.prices.len();
    let mut seen = HashSet::with_capacity(holdings.len());
    for h in holdings {
        if !seen.insert(h.symbol.as_str()) {
            return Err(AnalyticsError::DuplicateSymbol { symbol: h.symbol.clone() });
        }
        check_finite(&format!("quantity of {}", h.symbol), h.quantity)?;
        if h.prices.len() != days {
            return Err(AnalyticsError::LengthMismatch {
                what: format!("price history of {}", h.symbol),
                expected: days,
                got: h.prices.len(),
            });
        }
        if let Some((i, &p)) = h.prices.iter().enumerate().find(|(_, p)| !(p.is_finite() && **p > 0.0)) {
            return Err(AnalyticsError::InvalidParameter {
                name: format!("price of {} on day {i}", h.symbol),
                value: p,
                reason: "a price must be a positive finite number",
            });
        }
    }
    if days < 2 {
        return Err(AnalyticsError::TooFewPoints { metric: "portfolio returns", needed: 2, got: days });
    }
    if holdings.iter().all(|h| h.quantity == 0.0) {
        return Err(AnalyticsError::Undefined { metric: "portfolio returns", reason: "every quantity is zero" });
    }
    Ok((1..days)
        .map(|t| {
            let (pnl, gross) = holdings.iter().fold((0.0, 0.0), |(pnl, gross), h| {
                (pnl + h.quantity * (h.prices[t] - h.prices[t - 1]), gross + h.quantity.abs() * h.prices[t - 1])
            });
            pnl / gross
        })
        .collect())
}

/// A position now, for stress tests and concentration checks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Position {
    /// The symbol, e.g. `"AAPL"`.
    pub symbol: String,
    /// Quantity held (negative for a short).
    pub quantity: f64,
    /// The current price (a positive number).
    pub price: f64,
    /// The sector, for sector concentration; `None` leaves it out of sector totals.
    #[serde(default)]
    pub sector: Option<String>,
    /// Sensitivities to named factors (e.g. `"market": 1.2`), for factor shocks.
    #[serde(default)]
    pub factor_betas: BTreeMap<String, f64>,
}

impl Position {
    /// `quantity × price` (negative for a short).
    #[must_use]
    pub fn market_value(&self) -> f64 {
        self.quantity * self.price
    }
}

/// A stress scenario: price shocks per symbol and/or per factor, each a
/// simple return (`-0.2` is a 20 % fall).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Scenario {
    /// A name for the report, e.g. `"2008-style equity crash"`.
    pub name: String,
    /// Shocks per symbol; a symbol's own shock takes precedence over its factor shocks.
    #[serde(default)]
    pub symbol_shocks: BTreeMap<String, f64>,
    /// Shocks per factor; a position moves by `Σ betaᵢ,f · shock_f`.
    #[serde(default)]
    pub factor_shocks: BTreeMap<String, f64>,
}

/// Where a position's shock came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShockSource {
    /// The scenario names the symbol.
    Symbol,
    /// The position's factor betas times the scenario's factor shocks.
    Factors,
    /// Neither: the position is not shocked.
    None,
}

/// One position's result under a scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionPnl {
    /// The symbol.
    pub symbol: String,
    /// Quantity held.
    pub quantity: f64,
    /// The price before the shock.
    pub price: f64,
    /// `quantity × price` before the shock.
    pub market_value: f64,
    /// The return applied to the price (floored at -1: a price cannot fall below zero).
    pub shock: f64,
    /// Where the shock came from.
    pub source: ShockSource,
    /// `market_value × shock`.
    pub pnl: f64,
    /// `market_value + pnl`.
    pub stressed_value: f64,
}

/// A scenario's result over a portfolio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressResult {
    /// The scenario's name.
    pub scenario: String,
    /// One row per position, in the order given.
    pub positions: Vec<PositionPnl>,
    /// The sum of the positions' P&L.
    pub total_pnl: f64,
    /// Net market value before the shock, `Σ quantity × price`.
    pub net_value: f64,
    /// Gross exposure before the shock, `Σ |quantity × price|`.
    pub gross_exposure: f64,
    /// `total_pnl / gross_exposure` (0 when there is no exposure).
    pub pnl_fraction_of_gross: f64,
    /// Symbols the scenario shocks that the portfolio does not hold (ignored).
    pub unmatched_symbols: Vec<String>,
}

fn check_positions(positions: &[Position]) -> Result<(), AnalyticsError> {
    let mut seen = HashSet::with_capacity(positions.len());
    for p in positions {
        if !seen.insert(p.symbol.as_str()) {
            return Err(AnalyticsError::DuplicateSymbol { symbol: p.symbol.clone() });
        }
        check_finite(&format!("quantity of {}", p.symbol), p.quantity)?;
        if !(p.price.is_finite() && p.price > 0.0) {
            return Err(AnalyticsError::InvalidParameter {
                name: format!("price of {}", p.symbol),
                value: p.price,
                reason: "a price must be a positive finite number",
            });
        }
        for (factor, beta) in &p.factor_betas {
            check_finite(&format!("beta of {} to {factor}", p.symbol), *beta)?;
        }
    }
    Ok(())
}

fn check_shock(name: String, shock: f64) -> Result<(), AnalyticsError> {
    if shock.is_finite() && shock >= -1.0 {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter {
            name,
            value: shock,
            reason: "a shock is a simple return, finite and at least -1 (-100%)",
        })
    }
}

/// Applies `scenario` to `positions`: each position's price moves by its
/// symbol's shock if the scenario names the symbol, else by
/// `Σ_f beta_f × factor_shock_f` over the factors both the position and the
/// scenario name (floored at -100 %), else not at all; its P&L is
/// `quantity × price × shock` (a short gains when the price falls).
///
/// # Errors
/// A symbol held twice, a non-finite quantity or beta, a price that is not
/// a positive finite number, or a shock that is not finite or below -1.
pub fn stress_test(positions: &[Position], scenario: &Scenario) -> Result<StressResult, AnalyticsError> {
    check_positions(positions)?;
    for (symbol, shock) in &scenario.symbol_shocks {
        check_shock(format!("shock of {symbol}"), *shock)?;
    }
    for (factor, shock) in &scenario.factor_shocks {
        check_finite(&format!("shock of factor {factor}"), *shock)?;
    }
    let rows: Vec<PositionPnl> = positions
        .iter()
        .map(|p| {
            let (shock, source) = if let Some(s) = scenario.symbol_shocks.get(&p.symbol) {
                (*s, ShockSource::Symbol)
            } else {
                let mut any = false;
                let mut s = 0.0;
                for (factor, beta) in &p.factor_betas {
                    if let Some(f) = scenario.factor_shocks.get(factor) {
                        any = true;
                        s += beta * f;
                    }
                }
                if any { (s.max(-1.0), ShockSource::Factors) } else { (0.0, ShockSource::None) }
            };
            let market_value = p.market_value();
            let pnl = market_value * shock;
            PositionPnl {
                symbol: p.symbol.clone(),
                quantity: p.quantity,
                price: p.price,
                market_value,
                shock,
                source,
                pnl,
                stressed_value: market_value + pnl,
            }
        })
        .collect();
    let total_pnl = rows.iter().map(|r| r.pnl).sum::<f64>();
    let net_value = rows.iter().map(|r| r.market_value).sum::<f64>();
    let gross_exposure = rows.iter().map(|r| r.market_value.abs()).sum::<f64>();
    let held: HashSet<&str> = positions.iter().map(|p| p.symbol.as_str()).collect();
    let unmatched_symbols =
        scenario.symbol_shocks.keys().filter(|s| !held.contains(s.as_str())).cloned().collect::<Vec<_>>();
    Ok(StressResult {
        scenario: scenario.name.clone(),
        positions: rows,
        total_pnl,
        net_value,
        gross_exposure,
        pnl_fraction_of_gross: if gross_exposure > 0.0 { total_pnl / gross_exposure } else { 0.0 },
        unmatched_symbols,
    })
}

/// Concentration limits as fractions of gross exposure (`0.25` is 25 %).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct ConcentrationLimits {
    /// The largest share of gross exposure one position may have.
    pub max_position_fraction: f64,
    /// The largest share of gross exposure one sector may have.
    pub max_sector_fraction: f64,
}

impl Default for ConcentrationLimits {
    /// 10 % per position, 25 % per sector.
    fn default() -> Self {
        Self { max_position_fraction: 0.10, max_sector_fraction: 0.25 }
    }
}

/// What a concentration warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcentrationKind {
    /// One position.
    Position,
    /// One sector (the sum of its positions' absolute values).
    Sector,
}

/// A position or sector above its limit, with a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConcentrationWarning {
    /// Position or sector.
    pub kind: ConcentrationKind,
    /// The symbol or the sector.
    pub name: String,
    /// Its gross exposure, `Σ |quantity × price|`.
    pub exposure: f64,
    /// The portfolio's gross exposure.
    pub gross_exposure: f64,
    /// `exposure / gross_exposure`.
    pub fraction: f64,
    /// The limit it is above.
    pub limit: f64,
    /// How much exposure to cut to be back at the limit: `(e − L·G)/(1 − L)`
    /// (cutting shrinks the gross exposure too).
    pub reduce_by: f64,
    /// One sentence with the numbers, for a person.
    pub recommendation: String,
}

fn check_fraction(name: &str, value: f64) -> Result<(), AnalyticsError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter {
            name: name.to_owned(),
            value,
            reason: "a fraction of gross exposure in (0, 1] is required",
        })
    }
}

/// Positions above `max_position_fraction` and sectors above
/// `max_sector_fraction` of gross exposure (strictly above: at the limit is
/// fine), largest fraction first. Shorts count by their absolute value;
/// positions without a sector count only towards the gross exposure.
///
/// # Errors
/// Invalid positions (as [`stress_test`]) or limits outside (0, 1].
pub fn concentration_warnings(
    positions: &[Position],
    limits: &ConcentrationLimits,
) -> Result<Vec<ConcentrationWarning>, AnalyticsError> {
    check_positions(positions)?;
    check_fraction("max_position_fraction", limits.max_position_fraction)?;
    check_fraction("max_sector_fraction", limits.max_sector_fraction)?;
    let gross: f64 = positions.iter().map(|p| p.market_value().abs()).sum();
    if gross <= 0.0 {
        return Ok(Vec::new());
    }
    let mut sectors: BTreeMap<&str, f64> = BTreeMap::new();
    for p in positions {
        if let Some(s) = &p.sector {
            *sectors.entry(s.as_str()).or_insert(0.0) += p.market_value().abs();
        }
    }
    let candidates = positions
        .iter()
        .map(|p| (ConcentrationKind::Position, p.symbol.as_str(), p.market_value().abs(), limits.max_position_fraction))
        .chain(sectors.into_iter().map(|(s, e)| (ConcentrationKind::Sector, s, e, limits.max_sector_fraction)));
    let mut out: Vec<ConcentrationWarning> = candidates
        .filter(|(_, _, e, limit)| e / gross > *limit)
        .map(|(kind, name, exposure, limit)| {
            let fraction = exposure / gross;
            let reduce_by = if limit < 1.0 { (exposure - limit * gross) / (1.0 - limit) } else { 0.0 };
            let what = match kind {
                ConcentrationKind::Position => "position",
                ConcentrationKind::Sector => "sector",
            };
            let recommendation = format!(
                "{what} {name} is {:.2}% of gross exposure ({exposure:.2} of {gross:.2}), above the {:.2}% limit: \
                 reduce it by {reduce_by:.2} to bring it back to the limit",
                fraction * 100.0,
                limit * 100.0,
            );
            ConcentrationWarning {
                kind,
                name: name.to_owned(),
                exposure,
                gross_exposure: gross,
                fraction,
                limit,
                reduce_by,
                recommendation,
            }
        })
        .collect();
    out.sort_by(|a, b| b.fraction.total_cmp(&a.fraction).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}
