//! The daily price history risk is computed over.
//!
//! The internal venue has no years of closes, and this machine reaches no
//! market data vendor, so the history is **simulated**, and says so in every
//! answer: a seeded one-factor model, the market factor's daily returns
//! `m_t ~ N(0.0003, 0.01)` and each symbol's `r_t = β·m_t + ε_t` with `ε_t`
//! normal and sized so that the symbol's annualized volatility is the one
//! configured; the path is scaled so that its last close is the symbol's
//! current mark. Seeds come from the symbol names, so the same
//! configuration gives the same history on every node and every run.
//! A deployment with a vendor feed replaces this type's source.

use std::collections::BTreeMap;

/// Trading days of history.
pub const DAYS: usize = 252;
const MARKET_MEAN: f64 = 0.0003;
const MARKET_SD: f64 = 0.01;

/// Seeded daily returns per symbol and of the market factor.
#[derive(Debug, Clone)]
pub struct History {
    market: Vec<f64>,
    symbols: BTreeMap<String, (f64, Vec<f64>)>,
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    #[allow(clippy::cast_precision_loss)]
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

impl History {
    /// Histories for `volatility` (symbol → annualized volatility).
    #[must_use]
    pub fn simulated(volatility: &BTreeMap<String, f64>) -> Self {
        let mut rng = Rng(0x504c_4558_5553); // "PLEXUS"
        let market: Vec<f64> = (0..DAYS).map(|_| MARKET_MEAN + MARKET_SD * rng.normal()).collect();
        let symbols = volatility
            .iter()
            .map(|(symbol, vol)| {
                let beta = if symbol.contains('-') { 1.4 } else { 0.9 };
                let total = vol / (DAYS as f64).sqrt();
                let idio = (total * total - (beta * MARKET_SD).powi(2)).max((0.2 * total).powi(2)).sqrt();
                let mut r = Rng(u64::from(crate::desk::name_id(symbol)) << 17 ^ 0x5EED);
                let returns = market.iter().map(|m| beta * m + idio * r.normal()).collect();
                (symbol.clone(), (beta, returns))
            })
            .collect();
        Self { market, symbols }
    }

    /// What the history is, for answers.
    #[must_use]
    pub fn label(&self) -> String {
        format!(
            "SIMULATED daily history ({DAYS} days, seeded one-factor model scaled to each symbol's configured \
             volatility and current mark): not market data"
        )
    }

    /// The market factor's daily returns (the benchmark).
    #[must_use]
    pub fn market_returns(&self) -> Vec<f64> {
        self.market.clone()
    }

    /// The symbol's beta to the market factor (1 for a symbol without history).
    #[must_use]
    pub fn beta(&self, symbol: &str) -> f64 {
        self.symbols.get(symbol).map_or(1.0, |(b, _)| *b)
    }

    /// `DAYS + 1` daily closes ending at `last`.
    #[must_use]
    pub fn prices(&self, symbol: &str, last: f64) -> Vec<f64> {
        let returns = self.symbols.get(symbol).map_or_else(|| self.market.clone(), |(_, r)| r.clone());
        let mut closes = vec![1.0];
        for r in &returns {
            let prev = closes.last().copied().unwrap_or(1.0);
            closes.push(prev * (1.0 + r));
        }
        let end = closes.last().copied().unwrap_or(1.0);
        closes.iter().map(|c| c / end * last).collect()
    }
}
