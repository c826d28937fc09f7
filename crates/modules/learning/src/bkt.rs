//! Bayesian Knowledge Tracing (Corbett & Anderson, 1995) per learner and
//! skill: a two-state hidden Markov model (skill unknown / known) with
//! parameters `prior` p(L₀), `learn` p(T), `guess` p(G), `slip` p(S) and an
//! optional `forget` p(F) (0 in standard BKT).
//!
//! # Update order (pyBKT's)
//!
//! For an observation at step t with `p = P(L_t | answers before t)`:
//! 1. predicted correctness `P(correct) = p (1 − S) + (1 − p) G`;
//! 2. posterior given the answer: correct `p (1 − S) / (p (1 − S) + (1 − p) G)`,
//!    wrong `p S / (p S + (1 − p)(1 − G))`;
//! 3. learning transition `P(L_{t+1}) = post (1 − F) + (1 − post) T`.
//!
//! These are pyBKT's `predict_onestep` state predictions and its E-step's
//! forward messages; the crate's tests compare them to pyBKT on fixed
//! parameters and sequences to 1e-12.
//!
//! # Fitting
//!
//! [`fit_em`] runs Baum–Welch (EM with scaled forward–backward) on
//! per-learner answer sequences of one skill, stopping like pyBKT's
//! `EM_fit`: after the E-step of iteration `i` (from 0), stop when `i > 1`
//! and the log-likelihood changed by at most `tolerance`; otherwise run the
//! M-step. The M-step keeps `guess` and `slip` in `[1e-6, max − 1e-6]`
//! (`max` 0.5 by default: guessing or slipping more often than not makes
//! "known" and "unknown" swap meaning) and `prior`, `learn`, `forget` in
//! `[1e-6, 1 − 1e-6]`; each of these is the exact constrained maximizer of
//! its own concave term, so the log-likelihood never decreases. Unlike
//! pyBKT, the answer of a one-answer sequence counts towards `guess` and
//! `slip` (pyBKT skips emissions of length-1 sequences).
//!
//! Before a tenant has data, [`BktParams::default`] applies: prior 0.2,
//! learn 0.1, guess 0.2, slip 0.1, forget 0 ([`fit_or_default`] returns it
//! until `min_observations` answers exist).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cat::RandomSource;

/// Errors of BKT parameters, options and fitting.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BktError {
    /// A parameter outside its domain.
    #[error("{param} must be {rule}, got {value}")]
    InvalidParameter {
        /// The parameter.
        param: &'static str,
        /// The rule.
        rule: &'static str,
        /// The value.
        value: f64,
    },
    /// A probability that is not in [0, 1].
    #[error("p_known must be in [0, 1], got {0}")]
    InvalidProbability(f64),
    /// A mastery threshold outside (0, 1].
    #[error("the mastery threshold must be in (0, 1], got {0}")]
    InvalidThreshold(f64),
    /// Fitting options that cannot be used.
    #[error("invalid EM options: {0}")]
    InvalidOptions(String),
    /// No answers to fit.
    #[error("there are no answers to fit")]
    NoData,
}

/// The default mastery threshold.
pub const DEFAULT_MASTERY_THRESHOLD: f64 = 0.95;

/// Lower and upper margin of fitted probabilities.
const FLOOR: f64 = 1e-6;

/// BKT parameters of one skill.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BktParams {
    /// p(L₀): the skill is known before the first answer.
    pub prior: f64,
    /// p(T): an unknown skill becomes known after an answer.
    pub learn: f64,
    /// p(G): a correct answer without the skill.
    pub guess: f64,
    /// p(S): a wrong answer with the skill.
    pub slip: f64,
    /// p(F): a known skill is forgotten after an answer (0 in standard BKT).
    pub forget: f64,
}

impl Default for BktParams {
    /// prior 0.2, learn 0.1, guess 0.2, slip 0.1, forget 0.
    fn default() -> Self {
        Self { prior: 0.2, learn: 0.1, guess: 0.2, slip: 0.1, forget: 0.0 }
    }
}

fn check_p(p: f64) -> Result<f64, BktError> {
    if p.is_finite() && (0.0..=1.0).contains(&p) { Ok(p) } else { Err(BktError::InvalidProbability(p)) }
}

impl BktParams {
    /// Checks: `prior`, `learn`, `forget` finite in [0, 1]; `guess`, `slip`
    /// finite in (0, 1) (so every posterior is defined).
    pub fn validate(&self) -> Result<(), BktError> {
        for (param, value) in [("prior", self.prior), ("learn", self.learn), ("forget", self.forget)] {
            if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                return Err(BktError::InvalidParameter { param, rule: "in [0, 1]", value });
            }
        }
        for (param, value) in [("guess", self.guess), ("slip", self.slip)] {
            if !(value.is_finite() && value > 0.0 && value < 1.0) {
                return Err(BktError::InvalidParameter { param, rule: "in (0, 1)", value });
            }
        }
        Ok(())
    }

    /// `P(correct)` when the skill is known with probability `p_known`.
    pub fn predict_correct(&self, p_known: f64) -> f64 {
        p_known * (1.0 - self.slip) + (1.0 - p_known) * self.guess
    }

    /// `P(known | answer)` (conditioning only, no transition).
    pub fn posterior(&self, p_known: f64, correct: bool) -> f64 {
        if correct {
            let k = p_known * (1.0 - self.slip);
            k / (k + (1.0 - p_known) * self.guess)
        } else {
            let k = p_known * self.slip;
            k / (k + (1.0 - p_known) * (1.0 - self.guess))
        }
    }

    /// The learning transition: `p (1 − F) + (1 − p) T`.
    pub fn transition(&self, p_known: f64) -> f64 {
        p_known * (1.0 - self.forget) + (1.0 - p_known) * self.learn
    }

    /// One step: the posterior given the answer, then the transition.
    pub fn update(&self, p_known: f64, correct: bool) -> f64 {
        self.transition(self.posterior(p_known, correct))
    }

    /// [`BktParams::update`] with the parameters and `p_known` validated.
    pub fn checked_update(&self, p_known: f64, correct: bool) -> Result<f64, BktError> {
        self.validate()?;
        Ok(self.update(check_p(p_known)?, correct))
    }

    /// The forward pass over one learner's answers, from the prior.
    pub fn trace(&self, answers: &[bool]) -> Trace {
        let mut t = Trace::default();
        let mut p = self.prior;
        for &correct in answers {
            t.p_known_before.push(p);
            t.predicted_correct.push(self.predict_correct(p));
            let post = self.posterior(p, correct);
            t.p_known_posterior.push(post);
            p = self.transition(post);
            t.p_known_after.push(p);
        }
        t
    }

    /// `Σ ln P(answer_t | answers before t)` over all sequences (pyBKT's
    /// `total_loglike`); empty sequences contribute 0.
    pub fn log_likelihood<S: AsRef<[bool]>>(&self, sequences: &[S]) -> f64 {
        let mut ll = 0.0;
        for seq in sequences {
            let mut p = self.prior;
            for &correct in seq.as_ref() {
                let pc = self.predict_correct(p);
                ll += if correct { pc.ln() } else { (1.0 - pc).ln() };
                p = self.update(p, correct);
            }
        }
        ll
    }

    /// A sequence of `len` answers of a simulated learner who follows this model.
    pub fn simulate(&self, rng: &mut impl RandomSource, len: usize) -> Vec<bool> {
        let mut known = rng.next_f64() < self.prior;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            let p = if known { 1.0 - self.slip } else { self.guess };
            out.push(rng.next_f64() < p);
            known = if known { rng.next_f64() >= self.forget } else { rng.next_f64() < self.learn };
        }
        out
    }
}

/// The forward pass of [`BktParams::trace`], one entry per answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// `P(known)` before the answer (pyBKT's state prediction).
    pub p_known_before: Vec<f64>,
    /// `P(correct)` predicted before the answer (pyBKT's correct prediction).
    pub predicted_correct: Vec<f64>,
    /// `P(known)` given the answer, before the transition (pyBKT's forward message).
    pub p_known_posterior: Vec<f64>,
    /// `P(known)` after the transition: the next answer's `p_known_before`.
    pub p_known_after: Vec<f64>,
}

/// One learner's state on one skill.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SkillState {
    /// `P(known)` now (after the last transition).
    pub p_known: f64,
    /// Answers seen.
    pub attempts: u32,
    /// Correct answers seen.
    pub correct: u32,
}

/// What one answer did to a [`SkillState`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// `P(known)` before the answer.
    pub p_known_before: f64,
    /// `P(correct)` predicted before the answer.
    pub predicted_correct: f64,
    /// `P(known)` after the answer and the transition.
    pub p_known_after: f64,
    /// Mastered after the answer.
    pub mastered: bool,
    /// Not mastered before, mastered after.
    pub newly_mastered: bool,
}

/// A skill's parameters with its mastery threshold (default 0.95).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillModel {
    params: BktParams,
    mastery_threshold: f64,
}

impl Default for SkillModel {
    fn default() -> Self {
        Self { params: BktParams::default(), mastery_threshold: DEFAULT_MASTERY_THRESHOLD }
    }
}

impl SkillModel {
    /// Validated parameters and a threshold in (0, 1].
    pub fn new(params: BktParams, mastery_threshold: f64) -> Result<Self, BktError> {
        params.validate()?;
        if !(mastery_threshold.is_finite() && mastery_threshold > 0.0 && mastery_threshold <= 1.0) {
            return Err(BktError::InvalidThreshold(mastery_threshold));
        }
        Ok(Self { params, mastery_threshold })
    }

    /// The parameters.
    pub fn params(&self) -> BktParams {
        self.params
    }

    /// The mastery threshold.
    pub fn mastery_threshold(&self) -> f64 {
        self.mastery_threshold
    }

    /// Whether `p_known` reaches the threshold.
    pub fn is_mastered(&self, p_known: f64) -> bool {
        p_known >= self.mastery_threshold
    }

    /// A new learner's state: `p_known = prior`.
    pub fn initial_state(&self) -> SkillState {
        SkillState { p_known: self.params.prior, attempts: 0, correct: 0 }
    }

    /// Applies one answer to `state`; refuses a state whose `p_known` is not in [0, 1].
    pub fn observe(&self, state: &mut SkillState, correct: bool) -> Result<Observation, BktError> {
        let before = check_p(state.p_known)?;
        let after = self.params.update(before, correct);
        state.p_known = after;
        state.attempts = state.attempts.saturating_add(1);
        if correct {
            state.correct = state.correct.saturating_add(1);
        }
        Ok(Observation {
            p_known_before: before,
            predicted_correct: self.params.predict_correct(before),
            p_known_after: after,
            mastered: self.is_mastered(after),
            newly_mastered: !self.is_mastered(before) && self.is_mastered(after),
        })
    }
}

/// Options of [`fit_em`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmOptions {
    /// Maximum iterations (E-steps), default 200.
    pub max_iterations: usize,
    /// Stop when the log-likelihood changes by at most this (default 1e-6; pyBKT uses 0.005).
    pub tolerance: f64,
    /// Upper bound of `guess` (default 0.5, exclusive).
    pub max_guess: f64,
    /// Upper bound of `slip` (default 0.5, exclusive).
    pub max_slip: f64,
    /// Fit `forget` too (default false: it stays at its starting value).
    pub fit_forget: bool,
    /// [`fit_or_default`] fits only from this many answers on (default 50).
    pub min_observations: usize,
}

impl Default for EmOptions {
    fn default() -> Self {
        Self {
            max_iterations: 200,
            tolerance: 1e-6,
            max_guess: 0.5,
            max_slip: 0.5,
            fit_forget: false,
            min_observations: 50,
        }
    }
}

/// The result of a fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// The fitted (or default) parameters.
    pub params: BktParams,
    /// The log-likelihood after each E-step (non-decreasing); empty when not fitted.
    pub log_likelihoods: Vec<f64>,
    /// E-steps run.
    pub iterations: usize,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Answers in the data.
    pub observations: usize,
    /// Whether the parameters were fitted (false: the defaults, too little data).
    pub fitted: bool,
}

#[derive(Default)]
struct Counts {
    init_known: f64,
    sequences: f64,
    /// from unknown: to unknown, to known; from known: to unknown, to known
    trans: [[f64; 2]; 2],
    /// state unknown/known × answer wrong/correct
    emit: [[f64; 2]; 2],
    ll: f64,
}

fn emission(p: &BktParams, correct: bool) -> [f64; 2] {
    if correct { [p.guess, 1.0 - p.slip] } else { [1.0 - p.guess, p.slip] }
}

/// Scaled forward–backward over one sequence, accumulating expected counts.
fn e_step_sequence(p: &BktParams, seq: &[bool], c: &mut Counts, alpha: &mut Vec<[f64; 2]>, scale: &mut Vec<f64>) {
    let n = seq.len();
    if n == 0 {
        return;
    }
    alpha.clear();
    scale.clear();
    let a = [[1.0 - p.learn, p.learn], [p.forget, 1.0 - p.forget]];
    let mut prev = [1.0 - p.prior, p.prior];
    for (t, &obs) in seq.iter().enumerate() {
        let e = emission(p, obs);
        let pred =
            if t == 0 { prev } else { [prev[0] * a[0][0] + prev[1] * a[1][0], prev[0] * a[0][1] + prev[1] * a[1][1]] };
        let un = [pred[0] * e[0], pred[1] * e[1]];
        let s = un[0] + un[1];
        prev = [un[0] / s, un[1] / s];
        alpha.push(prev);
        scale.push(s);
        c.ll += s.ln();
    }
    let mut beta = [1.0, 1.0];
    for t in (0..n).rev() {
        let al = alpha[t];
        let gamma = [al[0] * beta[0], al[1] * beta[1]];
        let g = gamma[0] + gamma[1];
        let gamma = [gamma[0] / g, gamma[1] / g];
        let o = usize::from(seq[t]);
        c.emit[0][o] += gamma[0];
        c.emit[1][o] += gamma[1];
        if t == 0 {
            c.init_known += gamma[1];
        }
        if t > 0 {
            let prev_alpha = alpha[t - 1];
            let e = emission(p, seq[t]);
            let s = scale[t];
            let mut nb = [0.0; 2];
            for i in 0..2 {
                for j in 0..2 {
                    let w = a[i][j] * e[j] * beta[j] / s;
                    c.trans[i][j] += prev_alpha[i] * w;
                    nb[i] += w;
                }
            }
            beta = nb;
        }
    }
    c.sequences += 1.0;
}

/// Fits BKT parameters to per-learner answer sequences of one skill by EM,
/// starting from `start` (see the [module documentation](self) for the
/// stopping rule and the constraints). Empty sequences are ignored.
pub fn fit_em<S: AsRef<[bool]>>(
    sequences: &[S],
    start: &BktParams,
    options: &EmOptions,
) -> Result<FitReport, BktError> {
    start.validate()?;
    let o = options;
    if o.max_iterations == 0 || !(o.tolerance.is_finite() && o.tolerance >= 0.0) {
        return Err(BktError::InvalidOptions("max_iterations must be ≥ 1 and tolerance finite and ≥ 0".to_owned()));
    }
    for (name, v) in [("max_guess", o.max_guess), ("max_slip", o.max_slip)] {
        if !(v.is_finite() && v > 2.0 * FLOOR && v <= 1.0) {
            return Err(BktError::InvalidOptions(format!("{name} must be in (2e-6, 1], got {v}")));
        }
    }
    let observations: usize = sequences.iter().map(|s| s.as_ref().len()).sum();
    if observations == 0 {
        return Err(BktError::NoData);
    }
    let mut params = *start;
    let mut lls = Vec::new();
    let mut converged = false;
    let (mut alpha, mut scale) = (Vec::new(), Vec::new());
    let clamp = |v: f64, hi: f64| v.clamp(FLOOR, hi - FLOOR);
    let ratio = |num: f64, den: f64, old: f64| if den > 0.0 && (num / den).is_finite() { num / den } else { old };
    for i in 0..o.max_iterations {
        let mut c = Counts::default();
        for seq in sequences {
            e_step_sequence(&params, seq.as_ref(), &mut c, &mut alpha, &mut scale);
        }
        lls.push(c.ll);
        if i > 1 && (lls[i] - lls[i - 1]).abs() <= o.tolerance {
            converged = true;
            break;
        }
        params.prior = clamp(ratio(c.init_known, c.sequences, params.prior), 1.0);
        params.learn = clamp(ratio(c.trans[0][1], c.trans[0][0] + c.trans[0][1], params.learn), 1.0);
        if o.fit_forget {
            params.forget = clamp(ratio(c.trans[1][0], c.trans[1][0] + c.trans[1][1], params.forget), 1.0);
        }
        params.guess = clamp(ratio(c.emit[0][1], c.emit[0][0] + c.emit[0][1], params.guess), o.max_guess);
        params.slip = clamp(ratio(c.emit[1][0], c.emit[1][0] + c.emit[1][1], params.slip), o.max_slip);
    }
    let iterations = lls.len();
    Ok(FitReport { params, log_likelihoods: lls, iterations, converged, observations, fitted: true })
}

/// [`fit_em`] from [`BktParams::default`] when there are at least
/// `options.min_observations` answers; otherwise (or if the data cannot be
/// fitted) the defaults with `fitted: false`.
pub fn fit_or_default<S: AsRef<[bool]>>(sequences: &[S], options: &EmOptions) -> FitReport {
    let observations: usize = sequences.iter().map(|s| s.as_ref().len()).sum();
    let defaults = FitReport {
        params: BktParams::default(),
        log_likelihoods: Vec::new(),
        iterations: 0,
        converged: false,
        observations,
        fitted: false,
    };
    if observations < options.min_observations.max(1) {
        return defaults;
    }
    fit_em(sequences, &BktParams::default(), options).unwrap_or(defaults)
}
