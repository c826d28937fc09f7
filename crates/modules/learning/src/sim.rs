//! Seeded simulations: synthetic item banks, simulated learners with known
//! true abilities answering from the IRT model, and a runner that takes many
//! of them through CAT sessions and reports how many items were used, how
//! far the final estimates are from the truth, and how often items were
//! exposed.
//!
//! The *theoretical minimum* test length for a learner is the smallest `k`
//! such that the `k` most informative items of the bank at the learner's
//! **true** θ reach the test information `1 / SE²` (11.1 for SE 0.3). No
//! adaptive test can do better from the likelihood alone, since it does not
//! know θ; the N(0, 1) prior adds about 1 to the information, so an EAP-based
//! test can come out marginally below it.

use serde::{Deserialize, Serialize};

use crate::cat::{CatConfig, CatError, CatSession, RandomSource, SplitMix64, StopReason, next_item};
use crate::irt::{Estimate, IrtError, Item, ItemBank};

/// The distribution of a synthetic item bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BankSpec {
    /// Number of items (≥ 1).
    pub items: usize,
    /// Mean of `ln a` (default 0.2: median `a` ≈ 1.22).
    pub a_log_mean: f64,
    /// SD of `ln a` (default 0.25).
    pub a_log_sd: f64,
    /// Mean of `b` (default 0).
    pub b_mean: f64,
    /// SD of `b` (default 1.2).
    pub b_sd: f64,
    /// `c` is uniform on [0, c_max) (default 0: a 2PL bank).
    pub c_max: f64,
    /// Content areas assigned round-robin (empty: no area).
    pub areas: Vec<String>,
    /// Seed.
    pub seed: u64,
}

impl Default for BankSpec {
    fn default() -> Self {
        Self {
            items: 500,
            a_log_mean: 0.2,
            a_log_sd: 0.25,
            b_mean: 0.0,
            b_sd: 1.2,
            c_max: 0.0,
            areas: Vec::new(),
            seed: 1,
        }
    }
}

/// A seeded synthetic bank; item ids are `item-00000`, `item-00001`, ….
pub fn synthetic_bank(spec: &BankSpec) -> Result<ItemBank, IrtError> {
    let mut rng = SplitMix64::new(spec.seed);
    let items = (0..spec.items)
        .map(|i| {
            let a = (spec.a_log_mean + spec.a_log_sd * rng.standard_normal()).exp();
            let b = spec.b_mean + spec.b_sd * rng.standard_normal();
            let c = spec.c_max * rng.next_f64();
            let area = if spec.areas.is_empty() { String::new() } else { spec.areas[i % spec.areas.len()].clone() };
            Item::three_pl(format!("item-{i:05}"), a, b, c).with_skill(area)
        })
        .collect();
    ItemBank::new(items)
}

/// A simulated answer of a learner with ability `theta`: correct with probability `P(θ)`.
pub fn simulate_answer(rng: &mut impl RandomSource, item: &Item, theta: f64) -> bool {
    rng.next_f64() < item.probability(theta)
}

/// The smallest number of items whose information at `theta` sums to at
/// least `1 / se_target²`, taking the most informative first; `None` when
/// the whole bank does not reach it or `se_target` is not finite and > 0.
pub fn theoretical_min_items(bank: &ItemBank, theta: f64, se_target: f64) -> Option<usize> {
    if !(se_target.is_finite() && se_target > 0.0) {
        return None;
    }
    let need = 1.0 / (se_target * se_target);
    let mut infos = bank.information_at(theta);
    infos.sort_by(|x, y| y.total_cmp(x));
    let mut sum = 0.0;
    for (k, v) in infos.iter().enumerate() {
        sum += v;
        if sum >= need {
            return Some(k + 1);
        }
    }
    None
}

/// The simulated population and the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Number of learners (≥ 1).
    pub learners: usize,
    /// Mean of the true abilities.
    pub theta_mean: f64,
    /// SD of the true abilities.
    pub theta_sd: f64,
    /// Seed of the abilities, the answers and the selections.
    pub seed: u64,
    /// Classic Sympson–Hetter: items declined for a learner are excluded
    /// for the rest of that learner's session (default true).
    pub block_rejected: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { learners: 200, theta_mean: 0.0, theta_sd: 1.0, seed: 7, block_rejected: true }
    }
}

/// One simulated learner's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerOutcome {
    /// The generating ability.
    pub true_theta: f64,
    /// The final EAP estimate.
    pub estimate: Estimate,
    /// Items answered.
    pub items: usize,
    /// Why the session ended.
    pub stop: Option<StopReason>,
    /// [`theoretical_min_items`] at the true θ for the configured SE target.
    pub theoretical_min: Option<usize>,
}

/// What [`simulate_cat`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Number of learners.
    pub learners: usize,
    /// Mean number of items answered.
    pub mean_items: f64,
    /// Largest number of items answered.
    pub max_items: usize,
    /// Root mean squared error of the final θ̂ against the true θ.
    pub rmse: f64,
    /// Mean of θ̂ − θ.
    pub bias: f64,
    /// Mean final standard error.
    pub mean_se: f64,
    /// Sessions that ended because the SE reached its target.
    pub reached_se_target: usize,
    /// Mean theoretical minimum over the learners for whom it exists.
    pub mean_theoretical_min: f64,
    /// Learners for whom the whole bank cannot reach the SE target.
    pub theoretical_unreachable: usize,
    /// Per item: administrations / learners.
    pub exposure_rates: Vec<f64>,
    /// Per item: selections (administered or declined by Sympson–Hetter) / learners.
    pub selection_rates: Vec<f64>,
    /// The largest exposure rate.
    pub max_exposure_rate: f64,
    /// Items administered per content area over all sessions (indexed like [`ItemBank::areas`]).
    pub area_counts: Vec<usize>,
    /// Per learner.
    pub outcomes: Vec<LearnerOutcome>,
}

/// Runs `sim.learners` CAT sessions over `bank`: true θ ~ N(mean, sd), each
/// answer drawn from the IRT model at the true θ, items chosen by
/// [`next_item`] with `config`. Deterministic for a given seed.
pub fn simulate_cat(bank: &ItemBank, config: &CatConfig, sim: &SimConfig) -> Result<SimReport, CatError> {
    if sim.learners == 0 {
        return Err(CatError::InvalidConfig("the simulation needs at least one learner".to_owned()));
    }
    if !(sim.theta_mean.is_finite() && sim.theta_sd.is_finite() && sim.theta_sd >= 0.0) {
        return Err(CatError::InvalidConfig("the ability distribution must have a finite mean and SD ≥ 0".to_owned()));
    }
    let mut rng = SplitMix64::new(sim.seed);
    let n = bank.len();
    let mut administered = vec![0usize; n];
    let mut selected = vec![0usize; n];
    let mut area_counts = vec![0usize; bank.areas().len()];
    let mut outcomes = Vec::with_capacity(sim.learners);
    for _ in 0..sim.learners {
        let true_theta = sim.theta_mean + sim.theta_sd * rng.standard_normal();
        let mut session = CatSession::new(bank, config.clone())?;
        while !session.is_finished() {
            let sel = next_item(bank, &session, &mut rng)?;
            for &r in &sel.exposure_rejected {
                selected[r] += 1;
                if sim.block_rejected {
                    session.exclude(bank, r)?;
                }
            }
            let correct = simulate_answer(&mut rng, bank.item(sel.index)?, true_theta);
            session.answer(bank, sel.index, correct)?;
            administered[sel.index] += 1;
            selected[sel.index] += 1;
            if let Some(a) = bank.area_of(sel.index).and_then(|a| area_counts.get_mut(a)) {
                *a += 1;
            }
        }
        outcomes.push(LearnerOutcome {
            true_theta,
            estimate: session.estimate(),
            items: session.answered(),
            stop: session.stop_reason(),
            theoretical_min: config.se_target.and_then(|t| theoretical_min_items(bank, true_theta, t)),
        });
    }
    let m = outcomes.len() as f64;
    let mean = |f: &dyn Fn(&LearnerOutcome) -> f64| outcomes.iter().map(f).sum::<f64>() / m;
    let reachable: Vec<usize> = outcomes.iter().filter_map(|o| o.theoretical_min).collect();
    let exposure_rates: Vec<f64> = administered.iter().map(|&c| c as f64 / m).collect();
    Ok(SimReport {
        learners: outcomes.len(),
        mean_items: mean(&|o| o.items as f64),
        max_items: outcomes.iter().map(|o| o.items).max().unwrap_or(0),
        rmse: mean(&|o| (o.estimate.theta - o.true_theta).powi(2)).sqrt(),
        bias: mean(&|o| o.estimate.theta - o.true_theta),
        mean_se: mean(&|o| o.estimate.se),
        reached_se_target: outcomes.iter().filter(|o| o.stop == Some(StopReason::SeTarget)).count(),
        mean_theoretical_min: if reachable.is_empty() {
            f64::NAN
        } else {
            reachable.iter().sum::<usize>() as f64 / reachable.len() as f64
        },
        theoretical_unreachable: outcomes.len() - reachable.len(),
        max_exposure_rate: exposure_rates.iter().copied().fold(0.0, f64::max),
        exposure_rates,
        selection_rates: selected.iter().map(|&c| c as f64 / m).collect(),
        area_counts,
        outcomes,
    })
}

/// The result of [`calibrate_sympson_hetter`].
#[derive(Debug, Clone)]
pub struct SympsonHetterCalibration {
    /// The bank with the calibrated exposure parameters.
    pub bank: ItemBank,
    /// The largest exposure rate observed in each round's simulation.
    pub max_exposure_by_round: Vec<f64>,
}

/// Calibrates Sympson–Hetter exposure parameters by simulation (Sympson &
/// Hetter, 1985): starting from `K = 1`, each round simulates `sim` with
/// Sympson–Hetter on (each round with seed `sim.seed + round`) and sets
/// `K_i = r_max / P(S_i)` for items selected more often than `r_max`, else
/// `K_i = 1`, where `P(S_i)` is the item's selection rate.
pub fn calibrate_sympson_hetter(
    bank: &ItemBank,
    config: &CatConfig,
    sim: &SimConfig,
    r_max: f64,
    rounds: usize,
) -> Result<SympsonHetterCalibration, CatError> {
    if !(r_max.is_finite() && r_max > 0.0 && r_max <= 1.0) {
        return Err(CatError::InvalidConfig(format!("r_max must be in (0, 1], got {r_max}")));
    }
    let config = CatConfig { sympson_hetter: true, ..config.clone() };
    let mut current = bank.with_exposure_parameters(&vec![1.0; bank.len()])?;
    let mut max_exposure_by_round = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let report =
            simulate_cat(&current, &config, &SimConfig { seed: sim.seed.wrapping_add(round as u64), ..sim.clone() })?;
        max_exposure_by_round.push(report.max_exposure_rate);
        let k: Vec<f64> = report.selection_rates.iter().map(|&ps| if ps > r_max { r_max / ps } else { 1.0 }).collect();
        current = current.with_exposure_parameters(&k)?;
    }
    Ok(SympsonHetterCalibration { bank: current, max_exposure_by_round })
}
