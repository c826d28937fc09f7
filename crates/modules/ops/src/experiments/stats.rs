//! The pure statistics behind [`super::ExperimentResults`]: deterministic,
//! no I/O, no randomness.

/// The 97.5th percentile of the standard normal distribution: a two-sided 95%
/// interval is the estimate ± this many standard errors.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Iteration limit of the incomplete-gamma series and continued fraction; both
/// converge in far fewer steps for every `df` an experiment can have.
const GAMMA_MAX_ITER: usize = 100_000;
/// Relative precision at which the incomplete-gamma iterations stop.
const GAMMA_EPS: f64 = 1e-15;
/// Keeps the Lentz continued fraction away from a division by zero.
const GAMMA_TINY: f64 = 1e-300;

/// Above this many terms the exact probability-to-beat sum is replaced by the
/// normal approximation of the difference of the two Beta posteriors: with
/// that many successes and failures the posteriors are normal to well below
/// the precision anyone reads (and the sum would cost seconds).
const PROB_BEAT_MAX_TERMS: u64 = 200_000;

/// The upper tail of the standard normal distribution, `P(Z > z)`, through
/// `erfc` so that it keeps its relative precision far into the tail.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// A two-proportion z-test of variant `b` against control `a`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// Conversion rate of `a`.
    pub rate_a: f64,
    /// Conversion rate of `b`.
    pub rate_b: f64,
    /// `rate_b - rate_a`.
    pub diff: f64,
    /// The statistic, `diff` over the pooled standard error (0 when that
    /// error is 0, i.e. both groups converted never or always).
    pub z: f64,
    /// Two-sided p-value of `z`.
    pub p_value: f64,
    /// Lower bound of the 95% confidence interval of `diff` (unpooled
    /// standard error).
    pub ci_low: f64,
    /// Upper bound of the 95% confidence interval of `diff`.
    pub ci_high: f64,
}

/// Two-proportion z-test of `conversions_b / exposures_b` against
/// `conversions_a / exposures_a`: the statistic uses the pooled standard error
/// (the null hypothesis says both rates are equal), the 95% confidence
/// interval of the difference the unpooled one. `None` when a group has no
/// exposures or more conversions than exposures.
pub fn two_proportion_z_test(
    conversions_a: u64,
    exposures_a: u64,
    conversions_b: u64,
    exposures_b: u64,
) -> Option<ZTest> {
    if exposures_a == 0 || exposures_b == 0 || conversions_a > exposures_a || conversions_b > exposures_b {
        return None;
    }
    let (na, nb) = (exposures_a as f64, exposures_b as f64);
    let rate_a = conversions_a as f64 / na;
    let rate_b = conversions_b as f64 / nb;
    let diff = rate_b - rate_a;
    let pooled = (conversions_a + conversions_b) as f64 / (na + nb);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    let (z, p_value) = if se_pooled > 0.0 {
        let z = diff / se_pooled;
        (z, (2.0 * normal_sf(z.abs())).min(1.0))
    } else {
        (0.0, 1.0)
    };
    let se = (rate_a * (1.0 - rate_a) / na + rate_b * (1.0 - rate_b) / nb).sqrt();
    Some(ZTest { rate_a, rate_b, diff, z, p_value, ci_low: diff - Z_95 * se, ci_high: diff + Z_95 * se })
}

/// `ln B(a, b)`.
fn ln_beta(a: f64, b: f64) -> f64 {
    libm::lgamma(a) + libm::lgamma(b) - libm::lgamma(a + b)
}

/// `P(X_b > X_a)` for `X_a ~ Beta(a.0, a.1)` and `X_b ~ Beta(b.0, b.1)` with an
/// integer `b.0`: Evan Miller's closed form
/// `Σ_{i=0}^{b.0-1} B(a.0+i, a.1+b.1) / ((b.1+i) B(1+i, b.1) B(a.0, a.1))`,
/// each term computed in log space.
fn beta_beats_sum(a: (f64, f64), b: (f64, f64), terms: u64) -> f64 {
    let (alpha_a, beta_a) = a;
    let beta_b = b.1;
    let base = ln_beta(alpha_a, beta_a);
    let mut total = 0.0;
    for i in 0..terms {
        let i = i as f64;
        let ln_term = ln_beta(alpha_a + i, beta_a + beta_b) - (beta_b + i).ln() - ln_beta(1.0 + i, beta_b) - base;
        total += ln_term.exp();
    }
    total
}

/// The probability that the variant's true conversion rate is higher than the
/// control's, with uniform priors: posteriors `Beta(1 + conversions, 1 +
/// exposures - conversions)`. Exact (Evan Miller's closed form, summed in log
/// space with `lgamma`) through whichever of four equivalent sums is shortest
/// (over either group's successes or failures); when even that would take
/// more than 200,000 terms the normal approximation of the posteriors is used.
/// Deterministic. `NaN` when a group has more conversions than exposures.
pub fn prob_beat_control(
    control_conversions: u64,
    control_exposures: u64,
    variant_conversions: u64,
    variant_exposures: u64,
) -> f64 {
    if control_conversions > control_exposures || variant_conversions > variant_exposures {
        return f64::NAN;
    }
    // Integer-valued posterior parameters, as counts (for choosing the sum)
    // and as floats.
    let (sa, fa) = (control_conversions + 1, control_exposures - control_conversions + 1);
    let (sb, fb) = (variant_conversions + 1, variant_exposures - variant_conversions + 1);
    let a = (sa as f64, fa as f64);
    let b = (sb as f64, fb as f64);
    let shortest = sa.min(sb).min(fa).min(fb);
    let p = if shortest > PROB_BEAT_MAX_TERMS {
        let mean = |(s, f): (f64, f64)| s / (s + f);
        let var = |(s, f): (f64, f64)| s * f / ((s + f) * (s + f) * (s + f + 1.0));
        let sd = (var(a) + var(b)).sqrt();
        normal_sf(-(mean(b) - mean(a)) / sd)
    } else if shortest == sb {
        beta_beats_sum(a, b, sb)
    } else if shortest == sa {
        // P(B > A) = 1 - P(A > B).
        1.0 - beta_beats_sum(b, a, sa)
    } else if shortest == fa {
        // Rates swap with failure rates: P(p_b > p_a) = P(q_a > q_b) with
        // q ~ Beta(failures, successes); the sum runs over q_a's first
        // parameter.
        beta_beats_sum((fb as f64, sb as f64), (fa as f64, sa as f64), fa)
    } else {
        // P(q_a > q_b) = 1 - P(q_b > q_a), summed over q_b's first parameter.
        1.0 - beta_beats_sum((fa as f64, sa as f64), (fb as f64, sb as f64), fb)
    };
    p.clamp(0.0, 1.0)
}

/// The survival function of the chi-square distribution with `df` degrees of
/// freedom, `P(X > x)`: the regularized upper incomplete gamma function
/// `Q(df/2, x/2)`. `NaN` for `df == 0` or a `NaN` `x`; 1 for `x <= 0`.
pub fn chi_square_sf(x: f64, df: u32) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    gamma_q(f64::from(df) / 2.0, x / 2.0)
}

/// The regularized upper incomplete gamma function `Q(a, x) = Γ(a, x) / Γ(a)`
/// (Numerical Recipes §6.2): the series of `P = 1 - Q` below `x = a + 1`,
/// where it converges fast and `Q` is not small, else the continued fraction
/// of `Q` (modified Lentz), which keeps `Q`'s relative precision in the tail.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    // x^a e^-x / Γ(a), the factor both expansions share.
    let prefactor = (a * x.ln() - x - libm::lgamma(a)).exp();
    if x < a + 1.0 {
        let mut ap = a;
        let mut term = 1.0 / a;
        let mut sum = term;
        for _ in 0..GAMMA_MAX_ITER {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * GAMMA_EPS {
                break;
            }
        }
        (1.0 - sum * prefactor).clamp(0.0, 1.0)
    } else {
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / GAMMA_TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..GAMMA_MAX_ITER {
            let i = i as f64;
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < GAMMA_TINY {
                d = GAMMA_TINY;
            }
            c = b + an / c;
            if c.abs() < GAMMA_TINY {
                c = GAMMA_TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < GAMMA_EPS {
                break;
            }
        }
        (prefactor * h).clamp(0.0, 1.0)
    }
}

/// Pearson's chi-square goodness-of-fit statistic of `observed` counts against
/// expected shares (any positive weights; normalized here), with its degrees
/// of freedom (`len - 1`) and p-value. `None` with fewer than two groups, a
/// length mismatch, a weight that is not positive and finite, or no
/// observations at all.
pub fn chi_square_goodness_of_fit(observed: &[u64], weights: &[f64]) -> Option<(f64, u32, f64)> {
    if observed.len() < 2 || observed.len() != weights.len() || weights.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return None;
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return None;
    }
    let weight_sum: f64 = weights.iter().sum();
    let statistic: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / weight_sum;
            let d = o as f64 - expected;
            d * d / expected
        })
        .sum();
    let df = u32::try_from(observed.len() - 1).unwrap_or(u32::MAX);
    Some((statistic, df, chi_square_sf(statistic, df)))
}
