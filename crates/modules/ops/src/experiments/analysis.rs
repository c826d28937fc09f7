//! From counts per variant to [`ExperimentResults`] and a recommendation.

use serde::Serialize;

use super::stats::{chi_square_goodness_of_fit, prob_beat_control, two_proportion_z_test};

/// Significance level of the two-sided z-test. With more than one variant
/// besides control it is split among them (Bonferroni): each comparison must
/// reach `ALPHA / (number of non-control variants)`.
pub const ALPHA: f64 = 0.05;

/// The posterior probability to beat control a winner must reach (and the
/// complement control must reach against every variant for
/// [`Recommendation::ControlBetter`]).
pub const WIN_PROBABILITY: f64 = 0.95;

/// Below this many exposures in any variant (control included) no winner is
/// called, whatever the p-value: early, small samples exaggerate effects.
pub const MIN_EXPOSURES_PER_VARIANT: u64 = 100;

/// A sample-ratio-mismatch test with a p-value below this flags the
/// experiment ([`Recommendation::InvalidSrm`]). Deliberately strict: the test
/// runs on every look at the data and a false alarm stops a valid experiment.
pub const SRM_ALPHA: f64 = 0.001;

/// What one variant saw, the input of [`analyze`].
#[derive(Debug, Clone, PartialEq)]
pub struct VariantCounts {
    /// Variant name.
    pub variant: String,
    /// Distinct units exposed.
    pub exposures: u64,
    /// Distinct exposed units that converted.
    pub conversions: u64,
    /// Sum of the `value`s of the counted conversions.
    pub value_total: f64,
    /// Expected allocation (any positive scale; normalized over variants).
    pub weight: f64,
}

impl VariantCounts {
    /// Counts with weight 1 and no value.
    pub fn new(variant: impl Into<String>, exposures: u64, conversions: u64) -> Self {
        Self { variant: variant.into(), exposures, conversions, value_total: 0.0, weight: 1.0 }
    }
}

/// One variant in [`ExperimentResults`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct VariantStats {
    /// Variant name.
    pub variant: String,
    /// Whether this is the control.
    pub control: bool,
    /// Distinct units exposed.
    pub exposures: u64,
    /// Distinct exposed units that converted.
    pub conversions: u64,
    /// `conversions / exposures`; `None` without exposures.
    pub rate: Option<f64>,
    /// Sum of the conversions' values.
    pub value_total: f64,
    /// Expected share of exposures (0 to 1).
    pub expected_share: f64,
    /// Observed share of exposures (0 to 1); `None` without any exposure.
    pub observed_share: Option<f64>,
}

/// A variant against control.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    /// The variant compared with control.
    pub variant: String,
    /// `rate(variant) - rate(control)`; `None` when either has no exposures.
    pub absolute_lift: Option<f64>,
    /// `absolute_lift / rate(control)`; `None` when control's rate is 0 or
    /// unknown.
    pub relative_lift: Option<f64>,
    /// z statistic (pooled standard error).
    pub z: Option<f64>,
    /// Two-sided p-value of the z-test.
    pub p_value: Option<f64>,
    /// 95% confidence interval of the absolute lift, lower bound (unpooled
    /// standard error).
    pub ci_low: Option<f64>,
    /// 95% confidence interval of the absolute lift, upper bound.
    pub ci_high: Option<f64>,
    /// Posterior probability that the variant's rate beats control's (uniform
    /// priors).
    pub prob_beat_control: f64,
    /// The p-value threshold this comparison was held to ([`ALPHA`] split
    /// over the non-control variants).
    pub alpha: f64,
    /// `p_value < alpha` and the confidence interval excludes 0.
    pub significant: bool,
}

/// The sample-ratio-mismatch check: are exposures split as expected?
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SrmCheck {
    /// Pearson's chi-square statistic of exposures against expected shares;
    /// `None` with fewer than two variants or no exposures.
    pub chi_square: Option<f64>,
    /// Degrees of freedom (variants - 1).
    pub df: u32,
    /// p-value of the statistic.
    pub p_value: Option<f64>,
    /// `p_value < SRM_ALPHA`.
    pub mismatch: bool,
}

/// What to do with an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Recommendation {
    /// The data does not support a decision (yet).
    NoWinnerYet,
    /// This variant beats control.
    Winner {
        /// The winning variant.
        variant: String,
    },
    /// Every variant converts worse than control.
    ControlBetter,
    /// Exposures do not follow the expected allocation: assignment or
    /// logging is broken and no result can be trusted.
    InvalidSrm,
}

impl Recommendation {
    /// A short human label.
    pub fn label(&self) -> String {
        match self {
            Self::NoWinnerYet => "No winner yet".to_owned(),
            Self::Winner { variant } => format!("Winner: {variant}"),
            Self::ControlBetter => "Control is better".to_owned(),
            Self::InvalidSrm => "Invalid: sample ratio mismatch".to_owned(),
        }
    }
}

/// Everything [`super::ExperimentLog::results`] reports for one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ExperimentResults {
    /// Experiment id.
    pub experiment: String,
    /// The control variant.
    pub control: String,
    /// Variants, control first.
    pub variants: Vec<VariantStats>,
    /// Each non-control variant against control.
    pub comparisons: Vec<Comparison>,
    /// Sample ratio mismatch check.
    pub srm: SrmCheck,
    /// Units exposed to more than one variant (counted in each).
    pub contaminated_units: u64,
    /// First counted event (RFC 3339, UTC).
    pub first_event: Option<String>,
    /// Last counted event (RFC 3339, UTC).
    pub last_event: Option<String>,
    /// The decision.
    pub recommendation: Recommendation,
    /// One or two sentences explaining it.
    pub reason: String,
}

/// The statistics and recommendation for counts per variant against
/// `control` (the order of `variants` is kept, control moved first). Pure.
pub fn analyze(experiment: &str, control: &str, variants: &[VariantCounts]) -> ExperimentResults {
    let mut ordered: Vec<&VariantCounts> = variants.iter().filter(|v| v.variant == control).take(1).collect();
    ordered.extend(variants.iter().filter(|v| v.variant != control));
    let total_exposures: u64 = ordered.iter().map(|v| v.exposures).sum();
    let weights: Vec<f64> =
        ordered.iter().map(|v| if v.weight.is_finite() && v.weight > 0.0 { v.weight } else { 0.0 }).collect();
    let weight_sum: f64 = weights.iter().sum();
    let stats: Vec<VariantStats> = ordered
        .iter()
        .zip(&weights)
        .map(|(v, w)| VariantStats {
            variant: v.variant.clone(),
            control: v.variant == control,
            exposures: v.exposures,
            conversions: v.conversions,
            rate: (v.exposures > 0).then(|| v.conversions as f64 / v.exposures as f64),
            value_total: v.value_total,
            expected_share: if weight_sum > 0.0 { w / weight_sum } else { 0.0 },
            observed_share: (total_exposures > 0).then(|| v.exposures as f64 / total_exposures as f64),
        })
        .collect();

    let exposures: Vec<u64> = ordered.iter().map(|v| v.exposures).collect();
    let srm = match chi_square_goodness_of_fit(&exposures, &weights) {
        Some((chi_square, df, p)) => {
            SrmCheck { chi_square: Some(chi_square), df, p_value: Some(p), mismatch: p < SRM_ALPHA }
        }
        None => SrmCheck {
            chi_square: None,
            df: u32::try_from(ordered.len().saturating_sub(1)).unwrap_or(u32::MAX),
            p_value: None,
            mismatch: false,
        },
    };

    let control_counts = ordered.first().filter(|v| v.variant == control);
    let treatments = ordered.len().saturating_sub(usize::from(control_counts.is_some()));
    let alpha = ALPHA / treatments.max(1) as f64;
    let comparisons: Vec<Comparison> = match control_counts {
        Some(c) => ordered[1..].iter().map(|v| compare(c, v, alpha)).collect(),
        None => Vec::new(),
    };

    let (recommendation, reason) = recommend(control, control_counts.copied(), &ordered, &comparisons, &srm);
    ExperimentResults {
        experiment: experiment.to_owned(),
        control: control.to_owned(),
        variants: stats,
        comparisons,
        srm,
        contaminated_units: 0,
        first_event: None,
        last_event: None,
        recommendation,
        reason,
    }
}

fn compare(control: &VariantCounts, v: &VariantCounts, alpha: f64) -> Comparison {
    let test = two_proportion_z_test(control.conversions, control.exposures, v.conversions, v.exposures);
    let prob = prob_beat_control(control.conversions, control.exposures, v.conversions, v.exposures);
    let significant = test.is_some_and(|t| t.p_value < alpha && (t.ci_low > 0.0 || t.ci_high < 0.0));
    Comparison {
        variant: v.variant.clone(),
        absolute_lift: test.map(|t| t.diff),
        relative_lift: test.and_then(|t| (t.rate_a > 0.0).then(|| t.diff / t.rate_a)),
        z: test.map(|t| t.z),
        p_value: test.map(|t| t.p_value),
        ci_low: test.map(|t| t.ci_low),
        ci_high: test.map(|t| t.ci_high),
        prob_beat_control: if prob.is_nan() { 0.5 } else { prob },
        alpha,
        significant,
    }
}

/// How sentences name the control: "control", or "control old".
fn control_name(control: &str) -> String {
    if control == "control" { control.to_owned() } else { format!("control {control}") }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn pp(x: f64) -> String {
    format!("{:+.2} pp", x * 100.0)
}

/// The decision, in this order: SRM, enough data, a winner, control better,
/// else no winner yet.
fn recommend(
    control: &str,
    control_counts: Option<&VariantCounts>,
    ordered: &[&VariantCounts],
    comparisons: &[Comparison],
    srm: &SrmCheck,
) -> (Recommendation, String) {
    if let (true, Some(p)) = (srm.mismatch, srm.p_value) {
        return (
            Recommendation::InvalidSrm,
            format!(
                "Sample ratio mismatch: exposures do not follow the expected allocation (chi-square p = {}, \
                 below {SRM_ALPHA}). Assignment or logging is broken; do not trust these results.",
                super::report::fmt_p(p)
            ),
        );
    }
    if control_counts.is_none() {
        return (Recommendation::NoWinnerYet, format!("Control variant {control} has no data yet."));
    }
    if comparisons.is_empty() {
        return (Recommendation::NoWinnerYet, "Only the control variant has data.".to_owned());
    }
    let small: Vec<String> = ordered
        .iter()
        .filter(|v| v.exposures < MIN_EXPOSURES_PER_VARIANT)
        .map(|v| format!("{} ({})", v.variant, v.exposures))
        .collect();
    if !small.is_empty() {
        return (
            Recommendation::NoWinnerYet,
            format!(
                "Not enough data: every variant needs at least {MIN_EXPOSURES_PER_VARIANT} exposures; \
                 too few in {}.",
                small.join(", ")
            ),
        );
    }
    let winner = comparisons
        .iter()
        .filter(|c| c.significant && c.absolute_lift.is_some_and(|d| d > 0.0) && c.prob_beat_control >= WIN_PROBABILITY)
        .max_by(|a, b| a.absolute_lift.unwrap_or(0.0).total_cmp(&b.absolute_lift.unwrap_or(0.0)));
    if let Some(w) = winner {
        return (
            Recommendation::Winner { variant: w.variant.clone() },
            format!(
                "{} beats {}: {} (95% CI {} to {}), p = {}, probability to beat control {}.",
                w.variant,
                control_name(control),
                pp(w.absolute_lift.unwrap_or(0.0)),
                pp(w.ci_low.unwrap_or(0.0)),
                pp(w.ci_high.unwrap_or(0.0)),
                super::report::fmt_p(w.p_value.unwrap_or(1.0)),
                pct(w.prob_beat_control),
            ),
        );
    }
    let control_wins = comparisons.iter().all(|c| {
        c.significant && c.absolute_lift.is_some_and(|d| d < 0.0) && c.prob_beat_control <= 1.0 - WIN_PROBABILITY
    });
    if control_wins {
        return (
            Recommendation::ControlBetter,
            format!("Every variant converts significantly worse than {}; keep it.", control_name(control)),
        );
    }
    let best_p = comparisons.iter().filter_map(|c| c.p_value).fold(1.0_f64, f64::min);
    let reason = if comparisons.iter().any(|c| c.significant) {
        format!(
            "Some differences are significant but none is a clear win over {} \
             (a winner needs p < alpha, a confidence interval above 0 and a probability to beat control \
             of at least {}).",
            control_name(control),
            pct(WIN_PROBABILITY)
        )
    } else {
        format!(
            "No variant differs significantly from {} (smallest p = {}, alpha {}); \
             the confidence intervals include 0.",
            control_name(control),
            super::report::fmt_p(best_p),
            super::report::fmt_alpha(comparisons.first().map_or(ALPHA, |c| c.alpha)),
        )
    };
    (Recommendation::NoWinnerYet, reason)
}
