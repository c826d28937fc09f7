//! 2PL item calibration by marginal maximum likelihood (Bock–Aitkin EM).
//!
//! θ is integrated out over a fixed grid with a normal population
//! distribution (the same [`EapGrid`] the EAP uses). E-step: every person's
//! posterior over the grid gives expected counts `n_iq` (answers to item `i`
//! at node `q`) and `r_iq` (correct ones). M-step: per item, a damped Newton
//! ascent of `Σ_q r_iq ln P_i(θ_q) + (n_iq − r_iq) ln(1 − P_i(θ_q))` in the
//! slope–intercept form `a θ + β` (`b = −β / a`), with `a` kept in
//! `[a_min, a_max]` and `b` in `[−b_max, b_max]`. The marginal
//! log-likelihood never decreases from one iteration to the next (the
//! M-step only accepts steps that increase its objective).

use super::{EapGrid, IrtError, NormalPrior, Quadrature, ln_sigmoid, log_add_exp};

/// Options of [`calibrate_2pl`].
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationOptions {
    /// The integration grid; default 121 nodes on [−6, 6].
    pub quadrature: Quadrature,
    /// The population distribution of θ; default N(0, 1) (this fixes the scale).
    pub prior: NormalPrior,
    /// Maximum EM iterations (default 500).
    pub max_iterations: usize,
    /// Stop when no `a` or `b` moves by more than this in an iteration (default 1e-6).
    pub tolerance: f64,
    /// Lower bound of `a` (default 0.05).
    pub a_min: f64,
    /// Upper bound of `a` (default 6).
    pub a_max: f64,
    /// Bound of `|b|` (default 8).
    pub b_max: f64,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            quadrature: Quadrature::default(),
            prior: NormalPrior::default(),
            max_iterations: 500,
            tolerance: 1e-6,
            a_min: 0.05,
            a_max: 6.0,
            b_max: 8.0,
        }
    }
}

/// The result of [`calibrate_2pl`].
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    /// Discriminations, one per item.
    pub a: Vec<f64>,
    /// Difficulties, one per item.
    pub b: Vec<f64>,
    /// The marginal log-likelihood after each E-step (non-decreasing).
    pub log_likelihoods: Vec<f64>,
    /// EM iterations run.
    pub iterations: usize,
    /// Whether the tolerance was reached before `max_iterations`.
    pub converged: bool,
}

/// Calibrates 2PL items from response data by marginal maximum likelihood.
///
/// `responses` holds one list per person of `(item index, correct)`; items
/// may be missing for any person (sparse data such as CAT logs). Every item
/// index must be below `n_items`, every item must have at least one answer,
/// and a person may answer an item at most once.
pub fn calibrate_2pl(
    n_items: usize,
    responses: &[Vec<(usize, bool)>],
    options: &CalibrationOptions,
) -> Result<CalibrationReport, IrtError> {
    let bad = |m: String| Err(IrtError::Calibration(m));
    if n_items == 0 {
        return bad("there are no items".to_owned());
    }
    if responses.is_empty() {
        return bad("there are no responses".to_owned());
    }
    let o = options;
    if !(o.a_min.is_finite() && o.a_max.is_finite() && o.a_min > 0.0 && o.a_min < o.a_max) {
        return bad(format!("a bounds must satisfy 0 < a_min < a_max, got [{}, {}]", o.a_min, o.a_max));
    }
    if !(o.b_max.is_finite() && o.b_max > 0.0) {
        return bad(format!("b_max must be finite and > 0, got {}", o.b_max));
    }
    if !(o.tolerance.is_finite() && o.tolerance > 0.0) || o.max_iterations == 0 {
        return bad("tolerance must be finite and > 0 and max_iterations ≥ 1".to_owned());
    }
    let grid = EapGrid::new(o.quadrature.clone(), o.prior)?;
    let nodes = grid.nodes();
    let nq = nodes.len();

    let mut answered = vec![0.0_f64; n_items];
    let mut correct = vec![0.0_f64; n_items];
    let mut seen = vec![usize::MAX; n_items];
    for (p, person) in responses.iter().enumerate() {
        for &(i, u) in person {
            if i >= n_items {
                return bad(format!("person {p} answers item {i}, but there are {n_items} items"));
            }
            if seen[i] == p {
                return bad(format!("person {p} answers item {i} twice"));
            }
            seen[i] = p;
            answered[i] += 1.0;
            if u {
                correct[i] += 1.0;
            }
        }
    }
    if let Some(i) = answered.iter().position(|&n| n == 0.0) {
        return bad(format!("item {i} has no answers"));
    }

    let mut a = vec![1.0; n_items];
    let mut b: Vec<f64> = (0..n_items)
        .map(|i| {
            let p = (correct[i] + 0.5) / (answered[i] + 1.0);
            (-(p / (1.0 - p)).ln()).clamp(-3.0, 3.0)
        })
        .collect();

    let mut ln_p = vec![0.0; n_items * nq];
    let mut ln_q = vec![0.0; n_items * nq];
    let mut r = vec![0.0; n_items * nq];
    let mut n = vec![0.0; n_items * nq];
    let mut post = vec![0.0; nq];
    let mut log_likelihoods = Vec::new();
    let mut converged = false;
    let mut iterations = 0;

    while iterations < o.max_iterations {
        iterations += 1;
        // E-step
        for i in 0..n_items {
            for (q, &t) in nodes.iter().enumerate() {
                let x = a[i] * (t - b[i]);
                ln_p[i * nq + q] = ln_sigmoid(x);
                ln_q[i * nq + q] = ln_sigmoid(-x);
            }
        }
        r.iter_mut().for_each(|v| *v = 0.0);
        n.iter_mut().for_each(|v| *v = 0.0);
        let mut ll = 0.0;
        for person in responses {
            post.copy_from_slice(grid.log_weights());
            for &(i, u) in person {
                let row = if u { &ln_p[i * nq..(i + 1) * nq] } else { &ln_q[i * nq..(i + 1) * nq] };
                for (v, &l) in post.iter_mut().zip(row) {
                    *v += l;
                }
            }
            let norm = post.iter().copied().fold(f64::NEG_INFINITY, log_add_exp);
            ll += norm;
            for v in &mut post {
                *v = (*v - norm).exp();
            }
            for &(i, u) in person {
                let nrow = &mut n[i * nq..(i + 1) * nq];
                for (acc, &w) in nrow.iter_mut().zip(&post) {
                    *acc += w;
                }
                if u {
                    let rrow = &mut r[i * nq..(i + 1) * nq];
                    for (acc, &w) in rrow.iter_mut().zip(&post) {
                        *acc += w;
                    }
                }
            }
        }
        log_likelihoods.push(ll);
        // M-step
        let mut change: f64 = 0.0;
        for i in 0..n_items {
            let (na, nb) = m_step_item(nodes, &r[i * nq..(i + 1) * nq], &n[i * nq..(i + 1) * nq], a[i], b[i], o);
            change = change.max((na - a[i]).abs()).max((nb - b[i]).abs());
            a[i] = na;
            b[i] = nb;
        }
        if change <= o.tolerance {
            converged = true;
            break;
        }
    }
    Ok(CalibrationReport { a, b, log_likelihoods, iterations, converged })
}

/// The M-step objective of one item in slope–intercept form.
fn objective(nodes: &[f64], r: &[f64], n: &[f64], slope: f64, icpt: f64) -> f64 {
    let mut f = 0.0;
    for ((&t, &rq), &nq) in nodes.iter().zip(r).zip(n) {
        let x = slope * t + icpt;
        f += rq * ln_sigmoid(x) + (nq - rq) * ln_sigmoid(-x);
    }
    f
}

fn m_step_item(nodes: &[f64], r: &[f64], n: &[f64], a: f64, b: f64, o: &CalibrationOptions) -> (f64, f64) {
    let mut slope = a;
    let mut icpt = -a * b;
    let project = |s: f64, c: f64| {
        let s = s.clamp(o.a_min, o.a_max);
        let bb = (-c / s).clamp(-o.b_max, o.b_max);
        (s, -s * bb)
    };
    let mut f = objective(nodes, r, n, slope, icpt);
    for _ in 0..50 {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for ((&t, &rq), &nq) in nodes.iter().zip(r).zip(n) {
            let x = slope * t + icpt;
            let (p, _, pq) = super::logistic_parts(x);
            let resid = rq - nq * p;
            g0 += resid * t;
            g1 += resid;
            let w = nq * pq;
            h00 += w * t * t;
            h01 += w * t;
            h11 += w;
        }
        let det = h00 * h11 - h01 * h01;
        if !(det.is_finite() && det > 0.0) {
            break;
        }
        // Newton step for the concave objective: H⁻¹ g with H the negated Hessian.
        let d0 = (h11 * g0 - h01 * g1) / det;
        let d1 = (h00 * g1 - h01 * g0) / det;
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..30 {
            let (s, c) = project(slope + step * d0, icpt + step * d1);
            let fs = objective(nodes, r, n, s, c);
            if fs >= f {
                let moved = (s - slope).abs().max((c - icpt).abs());
                slope = s;
                icpt = c;
                f = fs;
                accepted = moved > 0.0;
                break;
            }
            step *= 0.5;
        }
        if !accepted || (d0.abs().max(d1.abs()) * step) < 1e-12 {
            break;
        }
    }
    (slope, -icpt / slope)
}
