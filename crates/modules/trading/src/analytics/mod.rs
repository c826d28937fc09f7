//! Portfolio risk: VaR, expected shortfall, beta and alpha, Sharpe and
//! Sortino ratios, volatility, drawdown, stress tests and concentration.
//!
//! Series are *daily simple returns* (`0.01` is +1 %), oldest first, as
//! `&[f64]`. Every metric follows the conventions of Python's
//! `empyrical-reloaded` 0.7.1 (the maintained fork of Quantopian's
//! `empyrical`), and `tests/it/analytics.rs` checks them to 1e-9 against
//! values that library computed (`scripts/reference/trading_risk.py`):
//!
//! | here | empyrical | convention |
//! |---|---|---|
//! | [`value_at_risk`] | `value_at_risk` | numpy `percentile(returns, 100·cutoff)`, linear interpolation |
//! | [`conditional_value_at_risk`] | `conditional_value_at_risk` | mean of the `int((n-1)·cutoff)+1` lowest returns |
//! | [`parametric_var`] | — | `mean + Φ⁻¹(cutoff)·std` (ddof = 1), checked against `scipy.stats.norm` |
//! | [`parametric_expected_shortfall`] | — | `mean − std·φ(Φ⁻¹(cutoff))/cutoff` (ddof = 1) |
//! | [`sharpe_ratio`] | `sharpe_ratio` | `mean(r−rf)/std(r−rf, ddof=1)·√periods` |
//! | [`sortino_ratio`] | `sortino_ratio` | `mean(r−req)·periods / downside_risk` |
//! | [`downside_risk`] | `downside_risk` | `√mean(min(r−req,0)²)·√periods` (over all n points) |
//! | [`annual_volatility`] | `annual_volatility` | `std(r, ddof=1)·√periods` |
//! | [`annual_return`] | `annual_return` (CAGR) | `(Π(1+r))^(periods/n) − 1` |
//! | [`cumulative_return`] | `cum_returns_final` | `Π(1+r) − 1` |
//! | [`max_drawdown`] | `max_drawdown` | most negative `(wealth − running peak)/running peak`, wealth starting at 1; `≤ 0` |
//! | [`calmar_ratio`] | `calmar_ratio` | `annual_return / |max_drawdown|` |
//! | [`beta`] | `beta` | `mean((b−mean b)·r) / mean((b−mean b)²)`; the risk-free rate does not enter |
//! | [`alpha`] | `alpha` | `(1 + mean((r−rf) − β·(b−rf)))^periods − 1` |
//!
//! VaR and expected shortfall are *return quantiles*, as in empyrical: a
//! 95 % VaR of `-0.021` means "on 5 % of days the return is -2.1 % or
//! worse"; multiply by the portfolio's value (and negate) for a loss amount.
//!
//! Where empyrical answers NaN or an infinity (too few points, a constant
//! series, no downside, no drawdown), these functions return an
//! [`AnalyticsError`] that says why; no function panics on any input. NaN
//! and infinities in the inputs are refused (empyrical skips NaNs in some
//! metrics and not in others; a risk report should not silently drop days).
//!
//! [`portfolio`] turns positions into a daily return series, runs stress
//! scenarios and flags concentrated positions and sectors.

mod normal;
pub mod portfolio;
mod stats;

pub use normal::{normal_pdf, normal_quantile};
pub use portfolio::{
    ConcentrationKind, ConcentrationLimits, ConcentrationWarning, Holding, Position, PositionPnl, Scenario,
    ShockSource, StressResult, concentration_warnings, portfolio_returns, stress_test,
};
pub use stats::{
    RiskParams, RiskSummary, TailRisk, alpha, alpha_beta, annual_return, annual_volatility, beta, calmar_ratio,
    conditional_value_at_risk, cumulative_return, downside_risk, drawdown_series, max_drawdown,
    parametric_expected_shortfall, parametric_var, risk_summary, sharpe_ratio, sortino_ratio, value_at_risk,
};

/// Daily periods in a year, as empyrical's `DAILY` annualization factor.
pub const TRADING_DAYS_PER_YEAR: f64 = 252.0;

/// Why a risk metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyticsError {
    /// A series with no points.
    #[error("{what} is empty")]
    Empty {
        /// Which input, e.g. "returns".
        what: &'static str,
    },
    /// NaN or an infinity in an input series.
    #[error("{what}[{index}] is not a finite number ({value})")]
    NotFinite {
        /// Which input.
        what: &'static str,
        /// The position of the bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// Two series that must be aligned have different lengths.
    #[error("{what} has {got} points but {expected} were expected (the series must be aligned)")]
    LengthMismatch {
        /// Which input.
        what: String,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// Fewer points than the metric needs.
    #[error("{metric} needs at least {needed} points, got {got}")]
    TooFewPoints {
        /// The metric asked for.
        metric: &'static str,
        /// The fewest points it accepts.
        needed: usize,
        /// The points given.
        got: usize,
    },
    /// A parameter outside its domain.
    #[error("{name} = {value} is invalid: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: String,
        /// The value given.
        value: f64,
        /// What it must be.
        reason: &'static str,
    },
    /// The metric is not defined for this input (empyrical would answer NaN or an infinity).
    #[error("{metric} is undefined: {reason}")]
    Undefined {
        /// The metric asked for.
        metric: &'static str,
        /// Why, e.g. "the returns have zero dispersion".
        reason: &'static str,
    },
    /// The same symbol given twice where each must appear once.
    #[error("symbol {symbol} appears more than once")]
    DuplicateSymbol {
        /// The symbol.
        symbol: String,
    },
}

/// `Ok` when `xs` is non-empty, all finite and at least `needed` long.
pub(crate) fn check_series(
    what: &'static str,
    metric: &'static str,
    xs: &[f64],
    needed: usize,
) -> Result<(), AnalyticsError> {
    if xs.is_empty() {
        return Err(AnalyticsError::Empty { what });
    }
    if let Some((index, &value)) = xs.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(AnalyticsError::NotFinite { what, index, value });
    }
    if xs.len() < needed {
        return Err(AnalyticsError::TooFewPoints { metric, needed, got: xs.len() });
    }
    Ok(())
}

/// `Ok` when `value` is finite.
pub(crate) fn check_finite(name: &str, value: f64) -> Result<(), AnalyticsError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter { name: name.to_owned(), value, reason: "must be a finite number" })
    }
}
