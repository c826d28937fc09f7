//! Item response theory: the four-parameter logistic model (2PL and 3PL are
//! its special cases), Fisher information, EAP ability estimates over a fixed
//! quadrature grid, item banks (CSV and JSON import) and 2PL calibration.
//!
//! # Conventions
//!
//! - **Scaling.** The logistic is used without a scaling constant (D = 1),
//!   as in catsim's `irt.icc` and girth:
//!   `P(θ) = c + (d − c) / (1 + exp(−a (θ − b)))`. Parameters calibrated on
//!   the normal-ogive metric (D = 1.702) are converted by multiplying `a` by
//!   1.702 before import ([`Item::with_scaling`]).
//! - **Information** is the 4PL Fisher information of catsim's `irt.inf`:
//!   `I(θ) = a² (P − c)² (d − P)² / ((d − c)² P (1 − P))`, which is
//!   `a² P (1 − P)` for a 2PL item. It is computed in a form that neither
//!   overflows nor divides zero by zero far from `b`.
//! - **EAP** ([`eap`], [`Posterior`]): the posterior mean and standard
//!   deviation over a fixed grid, see [`Quadrature`] and [`NormalPrior`].

mod bank;
mod calibrate;
mod eap;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use bank::ItemBank;
pub use calibrate::{CalibrationOptions, CalibrationReport, calibrate_2pl};
pub use eap::{
    DEFAULT_NODES, EapGrid, EapGridSpec, Estimate, NormalPrior, Posterior, Quadrature, QuadratureKind, QuadratureSpec,
    eap,
};

/// Errors of item validation, item bank import, quadrature and priors.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IrtError {
    /// An item parameter is outside its domain.
    #[error("item `{id}`: {param} must be {rule}, got {value}")]
    InvalidParameter {
        /// The item's id.
        id: String,
        /// The parameter (`a`, `b`, `c`, `d`, `exposure`).
        param: &'static str,
        /// The rule it breaks, e.g. `a positive finite number`.
        rule: &'static str,
        /// The offending value.
        value: f64,
    },
    /// An item without an id.
    #[error("an item id must not be empty")]
    EmptyId,
    /// A bank without items.
    #[error("the item bank is empty")]
    EmptyBank,
    /// Two items with the same id (`first` and `second` are 1-based CSV lines or 0-based JSON/array positions).
    #[error("duplicate item id `{id}`: {second} repeats {first}")]
    DuplicateId {
        /// The repeated id.
        id: String,
        /// Where it first appeared (`line 3`, `item 0`).
        first: String,
        /// Where it appeared again.
        second: String,
    },
    /// A CSV cell that cannot be used; `line` is 1-based (the header is line 1), `column` 1-based.
    #[error("line {line}, column {column} (`{name}`): {message}")]
    Csv {
        /// 1-based line of the record.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A CSV record or header that is malformed as a whole.
    #[error("line {line}: {message}")]
    CsvRecord {
        /// 1-based line of the record.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A required CSV column is absent from the header.
    #[error("missing column `{0}` in the CSV header")]
    MissingColumn(String),
    /// JSON that does not parse or does not have the item bank's shape.
    #[error("invalid JSON item bank: {0}")]
    Json(String),
    /// An item that fails validation, at its 0-based position in the list
    /// given to [`ItemBank::new`] or in the JSON `items` array.
    #[error("position {index} in the bank: {source}")]
    InvalidItem {
        /// 0-based position.
        index: usize,
        /// The validation error.
        #[source]
        source: Box<IrtError>,
    },
    /// The reader failed.
    #[error("cannot read the item bank: {0}")]
    Io(String),
    /// A quadrature grid that cannot be built.
    #[error("invalid quadrature: {0}")]
    InvalidQuadrature(String),
    /// A prior that cannot be used.
    #[error("invalid prior: {0}")]
    InvalidPrior(String),
    /// An item index that is not in the bank.
    #[error("item index {index} is out of range for a bank of {len} items")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// The bank's size.
        len: usize,
    },
    /// A per-item list whose length differs from the bank's.
    #[error("expected {expected} values, one per item, got {got}")]
    LengthMismatch {
        /// The bank's size.
        expected: usize,
        /// The list's length.
        got: usize,
    },
    /// Calibration input or options that cannot be used.
    #[error("calibration: {0}")]
    Calibration(String),
}

fn default_d() -> f64 {
    1.0
}

fn default_exposure() -> f64 {
    1.0
}

/// One dichotomous item with 4PL parameters (2PL: `c = 0`, `d = 1`; 3PL: `d = 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Unique id within its bank.
    pub id: String,
    /// Discrimination, finite and > 0 (D = 1 metric).
    pub a: f64,
    /// Difficulty, finite.
    pub b: f64,
    /// Pseudo-guessing lower asymptote, in [0, 1); 0 for 2PL.
    #[serde(default)]
    pub c: f64,
    /// Upper asymptote, in (c, 1]; 1 for 2PL and 3PL.
    #[serde(default = "default_d")]
    pub d: f64,
    /// Content area (skill) used by content balancing; may be empty.
    #[serde(default)]
    pub skill: String,
    /// Finer topic label; informational.
    #[serde(default)]
    pub topic: String,
    /// Display name; informational.
    #[serde(default)]
    pub name: String,
    /// Sympson–Hetter exposure-control parameter K in (0, 1]: the probability
    /// that the item is administered once selected (1 = no control).
    #[serde(default = "default_exposure")]
    pub exposure: f64,
    /// Any other metadata (unknown CSV columns land here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Item {
    /// A 2PL item (`c = 0`, `d = 1`) without content area. Not validated: see [`Item::validate`].
    pub fn two_pl(id: impl Into<String>, a: f64, b: f64) -> Self {
        Self::four_pl(id, a, b, 0.0, 1.0)
    }

    /// A 3PL item (`d = 1`). Not validated: see [`Item::validate`].
    pub fn three_pl(id: impl Into<String>, a: f64, b: f64, c: f64) -> Self {
        Self::four_pl(id, a, b, c, 1.0)
    }

    /// A 4PL item. Not validated: see [`Item::validate`].
    pub fn four_pl(id: impl Into<String>, a: f64, b: f64, c: f64, d: f64) -> Self {
        Self {
            id: id.into(),
            a,
            b,
            c,
            d,
            skill: String::new(),
            topic: String::new(),
            name: String::new(),
            exposure: 1.0,
            extra: BTreeMap::new(),
        }
    }

    /// The same item with its content area set.
    #[must_use]
    pub fn with_skill(mut self, skill: impl Into<String>) -> Self {
        self.skill = skill.into();
        self
    }

    /// The same item with its Sympson–Hetter parameter set.
    #[must_use]
    pub fn with_exposure(mut self, k: f64) -> Self {
        self.exposure = k;
        self
    }

    /// The same item converted from a metric with scaling constant `scale`
    /// (e.g. 1.702 for the normal-ogive metric) to this crate's D = 1 metric:
    /// `a` is multiplied by `scale`.
    #[must_use]
    pub fn with_scaling(mut self, scale: f64) -> Self {
        self.a *= scale;
        self
    }

    /// Checks the item: non-empty id, `a` finite and > 0, `b` finite,
    /// `0 ≤ c < 1`, `c < d ≤ 1`, `0 < exposure ≤ 1`.
    pub fn validate(&self) -> Result<(), IrtError> {
        if self.id.is_empty() {
            return Err(IrtError::EmptyId);
        }
        let bad = |param, rule, value| IrtError::InvalidParameter { id: self.id.clone(), param, rule, value };
        if !(self.a.is_finite() && self.a > 0.0) {
            return Err(bad("a", "a positive finite number", self.a));
        }
        if !self.b.is_finite() {
            return Err(bad("b", "a finite number", self.b));
        }
        if !(self.c.is_finite() && (0.0..1.0).contains(&self.c)) {
            return Err(bad("c", "in [0, 1)", self.c));
        }
        if !(self.d.is_finite() && self.d > self.c && self.d <= 1.0) {
            return Err(bad("d", "in (c, 1]", self.d));
        }
        if !(self.exposure.is_finite() && self.exposure > 0.0 && self.exposure <= 1.0) {
            return Err(bad("exposure", "in (0, 1]", self.exposure));
        }
        Ok(())
    }

    /// `P(θ)`, the probability of a correct answer (see [`probability`]).
    pub fn probability(&self, theta: f64) -> f64 {
        probability(theta, self.a, self.b, self.c, self.d)
    }

    /// Fisher information at `θ` (see [`information`]).
    pub fn information(&self, theta: f64) -> f64 {
        information(theta, self.a, self.b, self.c, self.d)
    }
}

/// `(σ(x), 1 − σ(x), σ(x)(1 − σ(x)))` for the logistic σ, without overflow
/// and without cancellation in `1 − σ(x)`.
#[inline]
pub(crate) fn logistic_parts(x: f64) -> (f64, f64, f64) {
    let e = (-x.abs()).exp();
    let s = 1.0 / (1.0 + e);
    let es = e * s;
    let (l, one_minus_l) = if x >= 0.0 { (s, es) } else { (es, s) };
    (l, one_minus_l, es * s)
}

/// `ln σ(x)` computed without overflow or loss for large `|x|`.
#[inline]
pub(crate) fn ln_sigmoid(x: f64) -> f64 {
    if x >= 0.0 { -(-x).exp().ln_1p() } else { x - x.exp().ln_1p() }
}

/// `ln(e^u + e^v)` with `-∞` allowed in either argument.
#[inline]
pub(crate) fn log_add_exp(u: f64, v: f64) -> f64 {
    let (hi, lo) = if u >= v { (u, v) } else { (v, u) };
    if hi == f64::NEG_INFINITY { hi } else { hi + (lo - hi).exp().ln_1p() }
}

/// The 4PL item characteristic curve with D = 1, catsim's `irt.icc`:
/// `c + (d − c) / (1 + exp(−a (θ − b)))`.
///
/// The parameters are not validated here; [`Item::validate`] does that.
pub fn probability(theta: f64, a: f64, b: f64, c: f64, d: f64) -> f64 {
    let (l, _, _) = logistic_parts(a * (theta - b));
    c + (d - c) * l
}

/// `(ln P(θ), ln(1 − P(θ)))` for a 4PL item, accurate far from `b`.
pub fn log_probabilities(theta: f64, a: f64, b: f64, c: f64, d: f64) -> (f64, f64) {
    let x = a * (theta - b);
    let ln_dc = (d - c).ln();
    let ln_c = if c > 0.0 { c.ln() } else { f64::NEG_INFINITY };
    let ln_1md = if d < 1.0 { (1.0 - d).ln() } else { f64::NEG_INFINITY };
    (log_add_exp(ln_c, ln_dc + ln_sigmoid(x)), log_add_exp(ln_1md, ln_dc + ln_sigmoid(-x)))
}

/// Fisher information of a 4PL item at `θ`, catsim's `irt.inf`:
/// `a² (P − c)² (d − P)² / ((d − c)² P (1 − P))`.
///
/// Evaluated as `a² (d − c)² [σ(1 − σ)]² / (P Q)` with `P − c = (d − c) σ`,
/// `d − P = (d − c)(1 − σ)` and `Q = (1 − d) + (d − c)(1 − σ)`, so it is
/// finite and ≥ 0 for every finite input (0 where it underflows).
pub fn information(theta: f64, a: f64, b: f64, c: f64, d: f64) -> f64 {
    let dc = d - c;
    let (l, one_minus_l, l_q) = logistic_parts(a * (theta - b));
    let num = a * a * dc * dc * l_q * l_q;
    if num == 0.0 {
        return 0.0;
    }
    let p = c + dc * l;
    let q = (1.0 - d) + dc * one_minus_l;
    num / (p * q)
}

/// Test information: the sum of the items' information at `θ` (catsim's `irt.test_info`).
pub fn test_information<'a>(theta: f64, items: impl IntoIterator<Item = &'a Item>) -> f64 {
    items.into_iter().map(|it| it.information(theta)).sum()
}

/// The standard error of measurement implied by test information, `1/√I(θ)`
/// (`+∞` when the information is 0).
pub fn standard_error(test_information: f64) -> f64 {
    if test_information > 0.0 { 1.0 / test_information.sqrt() } else { f64::INFINITY }
}
