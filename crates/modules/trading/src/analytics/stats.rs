//! Risk metrics over a daily simple-return series, with empyrical's
//! conventions (see the module table in [`super`]).

use serde::Serialize;

use super::normal::{normal_pdf, normal_quantile};
use super::{AnalyticsError, TRADING_DAYS_PER_YEAR, check_finite, check_series};

/// Below this benchmark variance, beta is undefined (empyrical's threshold).
const MIN_BENCHMARK_VARIANCE: f64 = 1.0e-30;

#[allow(clippy::cast_precision_loss)]
fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The sample standard deviation (ddof = 1), two-pass like bottleneck's
/// `nanstd`; zero when every value is equal (empyrical's
/// `_zero_dispersion_std`). The caller guarantees at least two points.
#[allow(clippy::cast_precision_loss)]
fn std_ddof1(xs: &[f64], shift: f64) -> f64 {
    let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if lo == hi {
        return 0.0;
    }
    let m = xs.iter().map(|x| x - shift).sum::<f64>() / xs.len() as f64;
    let ss: f64 = xs.iter().map(|x| (x - shift - m) * (x - shift - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

fn check_cutoff(cutoff: f64) -> Result<(), AnalyticsError> {
    if cutoff > 0.0 && cutoff < 1.0 {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter {
            name: "cutoff".to_owned(),
            value: cutoff,
            reason: "a tail probability strictly between 0 and 1 is required (0.05 for a 95% VaR)",
        })
    }
}

fn check_periods(periods_per_year: f64) -> Result<(), AnalyticsError> {
    if periods_per_year.is_finite() && periods_per_year > 0.0 {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter {
            name: "periods_per_year".to_owned(),
            value: periods_per_year,
            reason: "must be a positive finite number (252 for daily returns)",
        })
    }
}

fn check_pair(returns: &[f64], benchmark: &[f64], metric: &'static str) -> Result<(), AnalyticsError> {
    check_series("returns", metric, returns, 2)?;
    check_series("benchmark", metric, benchmark, 1)?;
    if benchmark.len() != returns.len() {
        return Err(AnalyticsError::LengthMismatch {
            what: "benchmark".to_owned(),
            expected: returns.len(),
            got: benchmark.len(),
        });
    }
    Ok(())
}

/// Historical value at risk: the `cutoff` quantile of the returns
/// (`cutoff = 0.05` for 95 %, `0.01` for 99 %), as empyrical's
/// `value_at_risk`, i.e. numpy's `percentile(returns, 100·cutoff)` with
/// linear interpolation: sort, take the virtual index `(n−1)·cutoff`, and
/// interpolate between its neighbours. A return, negative for a loss.
///
/// # Errors
/// Empty or non-finite returns, or a cutoff outside (0, 1).
pub fn value_at_risk(returns: &[f64], cutoff: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "value at risk", returns, 1)?;
    check_cutoff(cutoff)?;
    let mut sorted = returns.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(percentile_sorted(&sorted, cutoff))
}

/// numpy's linear-method quantile of sorted, finite, non-empty values.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn percentile_sorted(sorted: &[f64], cutoff: f64) -> f64 {
    // empyrical passes 100·cutoff and numpy divides it by 100 again.
    let q = (100.0 * cutoff) / 100.0;
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    let last = n - 1;
    if virtual_index >= last as f64 {
        return sorted[last];
    }
    if virtual_index < 0.0 {
        return sorted[0];
    }
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let i = previous as usize;
    let (a, b) = (sorted[i], sorted[(i + 1).min(last)]);
    let diff = b - a;
    if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma }
}

/// Historical expected shortfall (conditional VaR): the mean of the
/// `int((n−1)·cutoff) + 1` lowest returns, as empyrical's
/// `conditional_value_at_risk` (which partitions at that index and keeps it).
/// A return, negative for a loss.
///
/// # Errors
/// Empty or non-finite returns, or a cutoff outside (0, 1).
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn conditional_value_at_risk(returns: &[f64], cutoff: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "conditional value at risk", returns, 1)?;
    check_cutoff(cutoff)?;
    let cutoff_index = (((returns.len() - 1) as f64) * cutoff) as usize;
    let mut sorted = returns.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(mean(&sorted[..=cutoff_index.min(sorted.len() - 1)]))
}

/// Parametric (Gaussian) value at risk: `mean + Φ⁻¹(cutoff)·σ`, σ the
/// sample standard deviation (ddof = 1) and Φ⁻¹ the standard normal quantile
/// (`scipy.stats.norm.ppf`). empyrical has no parametric VaR; this is the
/// textbook variance–covariance formula on one series. A return, negative
/// for a loss.
///
/// # Errors
/// Fewer than 2 points, non-finite returns, or a cutoff outside (0, 1).
pub fn parametric_var(returns: &[f64], cutoff: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "parametric value at risk", returns, 2)?;
    check_cutoff(cutoff)?;
    let z = normal_quantile(cutoff)?;
    Ok(mean(returns) + z * std_ddof1(returns, 0.0))
}

/// Parametric (Gaussian) expected shortfall: `mean − σ·φ(Φ⁻¹(cutoff))/cutoff`,
/// the mean of a normal distribution's worst `cutoff` tail, with σ the sample
/// standard deviation (ddof = 1). A return, negative for a loss.
///
/// # Errors
/// Fewer than 2 points, non-finite returns, or a cutoff outside (0, 1).
pub fn parametric_expected_shortfall(returns: &[f64], cutoff: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "parametric expected shortfall", returns, 2)?;
    check_cutoff(cutoff)?;
    let z = normal_quantile(cutoff)?;
    Ok(mean(returns) - std_ddof1(returns, 0.0) * normal_pdf(z) / cutoff)
}

/// The annualized Sharpe ratio: `mean(r − rf) / std(r − rf, ddof=1) · √periods`,
/// `risk_free` a constant return *per period* (daily for daily returns), as
/// empyrical's `sharpe_ratio`.
///
/// # Errors
/// Fewer than 2 points, non-finite inputs, non-positive periods, or
/// [`AnalyticsError::Undefined`] when the excess returns are all equal.
pub fn sharpe_ratio(returns: &[f64], risk_free: f64, periods_per_year: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "sharpe ratio", returns, 2)?;
    check_finite("risk_free", risk_free)?;
    check_periods(periods_per_year)?;
    let adjusted: f64 = returns.iter().map(|r| r - risk_free).sum::<f64>();
    #[allow(clippy::cast_precision_loss)]
    let m = adjusted / returns.len() as f64;
    let sd = std_ddof1(returns, risk_free);
    if sd == 0.0 {
        return Err(AnalyticsError::Undefined {
            metric: "sharpe ratio",
            reason: "the returns have zero dispersion (a standard deviation of 0)",
        });
    }
    Ok(m / sd * periods_per_year.sqrt())
}

/// The annualized downside deviation below `required_return` (per period):
/// `√mean(min(r − req, 0)²) · √periods`, the mean taken over *all* points,
/// as empyrical's `downside_risk`.
///
/// # Errors
/// Empty or non-finite inputs, non-positive periods.
pub fn downside_risk(returns: &[f64], required_return: f64, periods_per_year: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "downside risk", returns, 1)?;
    check_finite("required_return", required_return)?;
    check_periods(periods_per_year)?;
    #[allow(clippy::cast_precision_loss)]
    let ms = returns
        .iter()
        .map(|r| {
            let d = (r - required_return).min(0.0);
            d * d
        })
        .sum::<f64>()
        / returns.len() as f64;
    Ok(ms.sqrt() * periods_per_year.sqrt())
}

/// The Sortino ratio: `mean(r − req)·periods / downside_risk(r, req)`, as
/// empyrical's `sortino_ratio` (annualized mean excess return over the
/// annualized downside deviation).
///
/// # Errors
/// Fewer than 2 points, non-finite inputs, non-positive periods, or
/// [`AnalyticsError::Undefined`] when no return is below `required_return`.
pub fn sortino_ratio(returns: &[f64], required_return: f64, periods_per_year: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "sortino ratio", returns, 2)?;
    let dr = downside_risk(returns, required_return, periods_per_year)?;
    if dr == 0.0 {
        return Err(AnalyticsError::Undefined {
            metric: "sortino ratio",
            reason: "no return is below the required return (a downside deviation of 0)",
        });
    }
    #[allow(clippy::cast_precision_loss)]
    let m = returns.iter().map(|r| r - required_return).sum::<f64>() / returns.len() as f64;
    Ok(m * periods_per_year / dr)
}

/// The annualized volatility: `std(r, ddof=1) · √periods`, as empyrical's
/// `annual_volatility`.
///
/// # Errors
/// Fewer than 2 points, non-finite returns, non-positive periods.
pub fn annual_volatility(returns: &[f64], periods_per_year: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "annual volatility", returns, 2)?;
    check_periods(periods_per_year)?;
    Ok(std_ddof1(returns, 0.0) * periods_per_year.sqrt())
}

/// The cumulative return over the whole series: `Π(1 + r) − 1`, as
/// empyrical's `cum_returns_final`.
///
/// # Errors
/// Empty or non-finite returns.
pub fn cumulative_return(returns: &[f64]) -> Result<f64, AnalyticsError> {
    check_series("returns", "cumulative return", returns, 1)?;
    Ok(returns.iter().map(|r| 1.0 + r).product::<f64>() - 1.0)
}

/// The compound annual growth rate: `(Π(1 + r))^(periods/n) − 1`, as
/// empyrical's `annual_return`.
///
/// # Errors
/// Empty or non-finite returns, non-positive periods, or
/// [`AnalyticsError::Undefined`] when the ending wealth is negative.
pub fn annual_return(returns: &[f64], periods_per_year: f64) -> Result<f64, AnalyticsError> {
    check_series("returns", "annual return", returns, 1)?;
    check_periods(periods_per_year)?;
    let ending = returns.iter().map(|r| 1.0 + r).product::<f64>();
    if ending < 0.0 {
        return Err(AnalyticsError::Undefined {
            metric: "annual return",
            reason: "the ending wealth is negative (a return below -100%)",
        });
    }
    #[allow(clippy::cast_precision_loss)]
    let years = returns.len() as f64 / periods_per_year;
    Ok(ending.powf(1.0 / years) - 1.0)
}

/// The drawdown after each period: `(wealth − running peak) / running peak`,
/// wealth starting at 1 before the first return (the starting value counts
/// as a peak), as empyrical's `drawdown_series`. Each value is `≤ 0`.
///
/// # Errors
/// Empty or non-finite returns.
pub fn drawdown_series(returns: &[f64]) -> Result<Vec<f64>, AnalyticsError> {
    check_series("returns", "drawdown", returns, 1)?;
    // empyrical anchors at 100; the ratios are the same.
    let mut wealth = 100.0;
    let mut cum = 1.0;
    let mut peak = wealth;
    Ok(returns
        .iter()
        .map(|r| {
            cum *= 1.0 + r;
            wealth = cum * 100.0;
            peak = f64::max(peak, wealth);
            (wealth - peak) / peak
        })
        .collect())
}

/// The maximum drawdown: the most negative value of [`drawdown_series`],
/// as empyrical's `max_drawdown`: `-0.25` is a fall of 25 % from a peak;
/// `0` when wealth never fell below a previous peak.
///
/// # Errors
/// Empty or non-finite returns.
pub fn max_drawdown(returns: &[f64]) -> Result<f64, AnalyticsError> {
    Ok(drawdown_series(returns)?.into_iter().fold(0.0, f64::min))
}

/// The Calmar ratio: `annual_return / |max_drawdown|`, as empyrical's
/// `calmar_ratio`.
///
/// # Errors
/// As [`annual_return`], or [`AnalyticsError::Undefined`] when there is no drawdown.
pub fn calmar_ratio(returns: &[f64], periods_per_year: f64) -> Result<f64, AnalyticsError> {
    let dd = max_drawdown(returns)?;
    if dd >= 0.0 {
        return Err(AnalyticsError::Undefined { metric: "calmar ratio", reason: "the series has no drawdown" });
    }
    Ok(annual_return(returns, periods_per_year)? / dd.abs())
}

/// Beta against a benchmark over aligned series:
/// `mean((b − mean b)·r) / mean((b − mean b)²)`, the slope of an ordinary
/// least squares fit of `r` on `b`, as empyrical's `beta` (whose risk-free
/// argument does not enter the computation; a constant shift does not change
/// a slope).
///
/// # Errors
/// Fewer than 2 points, non-finite values, series of different lengths, or
/// [`AnalyticsError::Undefined`] when the benchmark's variance is below 1e-30.
pub fn beta(returns: &[f64], benchmark: &[f64]) -> Result<f64, AnalyticsError> {
    check_pair(returns, benchmark, "beta")?;
    let mb = mean(benchmark);
    #[allow(clippy::cast_precision_loss)]
    let n = benchmark.len() as f64;
    let cov = benchmark.iter().zip(returns).map(|(b, r)| (b - mb) * r).sum::<f64>() / n;
    let var = benchmark.iter().map(|b| (b - mb) * (b - mb)).sum::<f64>() / n;
    if var < MIN_BENCHMARK_VARIANCE {
        return Err(AnalyticsError::Undefined { metric: "beta", reason: "the benchmark has no variance" });
    }
    Ok(cov / var)
}

/// Annualized Jensen's alpha: `(1 + mean((r − rf) − β·(b − rf)))^periods − 1`,
/// `risk_free` per period, as empyrical's `alpha`.
///
/// # Errors
/// As [`beta`], plus a non-finite risk-free rate or non-positive periods.
pub fn alpha(returns: &[f64], benchmark: &[f64], risk_free: f64, periods_per_year: f64) -> Result<f64, AnalyticsError> {
    Ok(alpha_beta(returns, benchmark, risk_free, periods_per_year)?.0)
}

/// `(alpha, beta)` in one pass over the inputs; see [`alpha`] and [`beta`].
///
/// # Errors
/// As [`alpha`].
pub fn alpha_beta(
    returns: &[f64],
    benchmark: &[f64],
    risk_free: f64,
    periods_per_year: f64,
) -> Result<(f64, f64), AnalyticsError> {
    check_finite("risk_free", risk_free)?;
    check_periods(periods_per_year)?;
    let b = beta(returns, benchmark)?;
    let residual = returns.iter().zip(benchmark).map(|(r, m)| (r - risk_free) - b * (m - risk_free)).sum::<f64>();
    #[allow(clippy::cast_precision_loss)]
    let m = residual / returns.len() as f64;
    Ok(((1.0 + m).powf(periods_per_year) - 1.0, b))
}

/// The parameters of [`risk_summary`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskParams {
    /// The risk-free return per period (daily for daily returns), for Sharpe and alpha.
    pub risk_free: f64,
    /// The minimum acceptable return per period, for Sortino and the downside deviation.
    pub required_return: f64,
    /// Periods in a year: 252 for daily returns.
    pub periods_per_year: f64,
}

impl Default for RiskParams {
    /// No risk-free rate, a required return of 0, daily periods.
    fn default() -> Self {
        Self { risk_free: 0.0, required_return: 0.0, periods_per_year: TRADING_DAYS_PER_YEAR }
    }
}

/// VaR and expected shortfall at one confidence level, as returns (negative for a loss).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TailRisk {
    /// The tail probability: 0.05 for 95 %, 0.01 for 99 %.
    pub cutoff: f64,
    /// [`value_at_risk`].
    pub historical_var: f64,
    /// [`parametric_var`].
    pub parametric_var: f64,
    /// [`conditional_value_at_risk`].
    pub expected_shortfall: f64,
    /// [`parametric_expected_shortfall`].
    pub parametric_expected_shortfall: f64,
}

impl TailRisk {
    fn compute(returns: &[f64], cutoff: f64) -> Result<Self, AnalyticsError> {
        Ok(Self {
            cutoff,
            historical_var: value_at_risk(returns, cutoff)?,
            parametric_var: parametric_var(returns, cutoff)?,
            expected_shortfall: conditional_value_at_risk(returns, cutoff)?,
            parametric_expected_shortfall: parametric_expected_shortfall(returns, cutoff)?,
        })
    }
}

/// Every metric of one return series (and a benchmark, if given). A metric
/// that is undefined for this series is `None`, and `notes` says why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskSummary {
    /// The number of returns.
    pub observations: usize,
    /// [`cumulative_return`].
    pub cumulative_return: f64,
    /// [`annual_return`] (CAGR).
    pub annual_return: Option<f64>,
    /// [`annual_volatility`].
    pub annual_volatility: f64,
    /// [`sharpe_ratio`].
    pub sharpe_ratio: Option<f64>,
    /// [`sortino_ratio`].
    pub sortino_ratio: Option<f64>,
    /// [`downside_risk`].
    pub downside_risk: f64,
    /// [`max_drawdown`] (`≤ 0`).
    pub max_drawdown: f64,
    /// [`calmar_ratio`].
    pub calmar_ratio: Option<f64>,
    /// VaR and expected shortfall at 95 %.
    pub tail_95: TailRisk,
    /// VaR and expected shortfall at 99 %.
    pub tail_99: TailRisk,
    /// [`beta`] against the benchmark, when one was given and it varies.
    pub beta: Option<f64>,
    /// [`alpha`] against the benchmark, when one was given and it varies.
    pub alpha: Option<f64>,
    /// Why a metric is `None`, one sentence each.
    pub notes: Vec<String>,
}

/// `Ok(Some)`, or `Ok(None)` with a note for an undefined metric; other errors pass.
fn defined(result: Result<f64, AnalyticsError>, notes: &mut Vec<String>) -> Result<Option<f64>, AnalyticsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e @ AnalyticsError::Undefined { .. }) => {
            notes.push(e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Every metric at once: cumulative and annual return, volatility, Sharpe,
/// Sortino, drawdown, Calmar, VaR and expected shortfall (historical and
/// Gaussian) at 95 % and 99 %, and beta and alpha when `benchmark` is given.
///
/// # Errors
/// Fewer than 2 returns, non-finite values, a benchmark of another length,
/// or invalid parameters. A metric that is merely undefined for this series
/// (a constant series' Sharpe ratio, Sortino without a downside, Calmar
/// without a drawdown, beta against a constant benchmark) is `None` instead.
pub fn risk_summary(
    returns: &[f64],
    benchmark: Option<&[f64]>,
    params: &RiskParams,
) -> Result<RiskSummary, AnalyticsError> {
    check_series("returns", "risk summary", returns, 2)?;
    check_finite("risk_free", params.risk_free)?;
    check_finite("required_return", params.required_return)?;
    check_periods(params.periods_per_year)?;
    if let Some(b) = benchmark {
        check_pair(returns, b, "risk summary")?;
    }
    let periods = params.periods_per_year;
    let mut notes = Vec::new();
    let annual_return = defined(annual_return(returns, periods), &mut notes)?;
    let sharpe_ratio = defined(sharpe_ratio(returns, params.risk_free, periods), &mut notes)?;
    let sortino_ratio = defined(sortino_ratio(returns, params.required_return, periods), &mut notes)?;
    let calmar_ratio = defined(calmar_ratio(returns, periods), &mut notes)?;
    let (alpha, beta) = match benchmark {
        Some(b) => match alpha_beta(returns, b, params.risk_free, periods) {
            Ok((a, b)) => (Some(a), Some(b)),
            Err(e @ AnalyticsError::Undefined { .. }) => {
                notes.push(e.to_string());
                (None, None)
            }
            Err(e) => return Err(e),
        },
        None => (None, None),
    };
    Ok(RiskSummary {
        observations: returns.len(),
        cumulative_return: cumulative_return(returns)?,
        annual_return,
        annual_volatility: annual_volatility(returns, periods)?,
        sharpe_ratio,
        sortino_ratio,
        downside_risk: downside_risk(returns, params.required_return, periods)?,
        max_drawdown: max_drawdown(returns)?,
        calmar_ratio,
        tail_95: TailRisk::compute(returns, 0.05)?,
        tail_99: TailRisk::compute(returns, 0.01)?,
        beta,
        alpha,
        notes,
    })
}
