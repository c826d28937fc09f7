//! Tests of `plexus_learning::bkt`.

use plexus_learning::bkt::{self, BktError, BktParams, EmOptions, SkillModel};
use plexus_learning::cat::SplitMix64;
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{close, f, fixture, floats};

fn params_of(v: &Value) -> BktParams {
    BktParams {
        prior: f(&v["prior"]),
        learn: f(&v["learn"]),
        guess: f(&v["guess"]),
        slip: f(&v["slip"]),
        forget: v.get("forget").map_or(0.0, f),
    }
}

fn sequences_of(v: &Value) -> Vec<Vec<bool>> {
    v.as_array()
        .expect("sequences")
        .iter()
        .map(|s| match s {
            Value::String(text) => text.bytes().map(|b| b == b'1').collect(),
            Value::Array(list) => list.iter().map(|x| x.as_u64() == Some(1)).collect(),
            other => panic!("sequence {other}"),
        })
        .collect()
}

/// Forward updates and predictions against pyBKT's `predict_onestep.run`
/// (state and correctness predictions) and `EM_fit.run` (forward messages
/// and `total_loglike`) for four parameter sets, one with forgetting. Same
/// arithmetic: 1e-12, log-likelihood 1e-9 relative.
#[test]
fn forward_updates_match_pybkt() {
    let fx = fixture();
    let sequences = sequences_of(&fx["bkt"]["sequences"]);
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for trace in fx["bkt"]["traces"].as_array().expect("traces") {
        let params = params_of(&trace["params"]);
        params.validate().expect("valid");
        for (s, seq) in sequences.iter().enumerate() {
            let t = params.trace(seq);
            let what = format!("{params:?} sequence {s}");
            for (k, want) in floats(&trace["predicted_correct"][s]).iter().enumerate() {
                worst = worst.max(close(t.predicted_correct[k], *want, 1e-12, &format!("P(correct) {what} step {k}")));
            }
            for (k, want) in floats(&trace["p_known_before"][s]).iter().enumerate() {
                worst = worst.max(close(t.p_known_before[k], *want, 1e-12, &format!("P(L) before {what} step {k}")));
            }
            for (k, want) in floats(&trace["p_known_posterior"][s]).iter().enumerate() {
                worst =
                    worst.max(close(t.p_known_posterior[k], *want, 1e-12, &format!("P(L | answer) {what} step {k}")));
                checked += 1;
            }
            // the chain: after = before of the next step
            for k in 1..seq.len() {
                assert_eq!(t.p_known_after[k - 1], t.p_known_before[k]);
            }
        }
        let d = close(params.log_likelihood(&sequences), f(&trace["log_likelihood"]), 1e-9, "log-likelihood");
        eprintln!("BKT log-likelihood {params:?}: relative difference {d:.1e}");
    }
    eprintln!("BKT forward: {checked} steps, largest difference {worst:.1e}");
    assert_eq!(checked, 4 * sequences.iter().map(Vec::len).sum::<usize>());
}

/// EM from the crate's defaults on 300 simulated learners, with pyBKT's
/// tolerance (0.005) and iteration cap (100): the same iterations, the same
/// log-likelihood after each E-step and the same parameters as pyBKT's
/// E-step/M-step (1e-9; observed ~1e-14). The constraints do not bind here.
#[test]
fn em_matches_pybkt_from_the_same_start() {
    let fx = fixture();
    let em = &fx["bkt"]["em"];
    let sequences = sequences_of(&em["sequences"]);
    let start = params_of(&em["start"]);
    assert_eq!(start, BktParams::default(), "pyBKT starts from the crate's defaults");
    let options = EmOptions {
        tolerance: f(&em["tol"]),
        max_iterations: em["maxiter"].as_u64().expect("maxiter") as usize,
        ..EmOptions::default()
    };
    let report = bkt::fit_em(&sequences, &start, &options).expect("fit");
    let lls = floats(&em["log_likelihoods"]);
    let mut worst: f64 = 0.0;
    assert_eq!(report.log_likelihoods.len(), lls.len(), "iterations");
    for (k, (got, want)) in report.log_likelihoods.iter().zip(&lls).enumerate() {
        worst = worst.max(close(*got, *want, 1e-9, &format!("log-likelihood at iteration {k}")));
    }
    let want = params_of(&em["fitted"]);
    let got = report.params;
    for (name, g, w) in [
        ("prior", got.prior, want.prior),
        ("learn", got.learn, want.learn),
        ("guess", got.guess, want.guess),
        ("slip", got.slip, want.slip),
        ("forget", got.forget, want.forget),
    ] {
        worst = worst.max(close(g, w, 1e-9, name));
    }
    eprintln!("BKT EM vs pyBKT: {} iterations, largest difference {worst:.1e}", report.iterations);
    assert!(report.converged && report.fitted);
}

/// Data simulated from known parameters (1,500 learners × 25 answers):
/// EM with a tight tolerance recovers every parameter within 0.05, the
/// log-likelihood never decreases, and the result is a local maximum
/// (moving any parameter by ±0.005 does not increase the likelihood).
#[test]
fn em_recovers_known_parameters() {
    let truth = BktParams { prior: 0.35, learn: 0.12, guess: 0.22, slip: 0.08, forget: 0.0 };
    let mut rng = SplitMix64::new(31);
    let sequences: Vec<Vec<bool>> = (0..1500).map(|_| truth.simulate(&mut rng, 25)).collect();
    let report = bkt::fit_em(&sequences, &BktParams::default(), &EmOptions::default()).expect("fit");
    eprintln!("EM: {} iterations, fitted {:?} (truth {truth:?})", report.iterations, report.params);
    assert!(report.converged);
    for w in report.log_likelihoods.windows(2) {
        assert!(w[1] >= w[0] - 1e-9, "log-likelihood decreased: {} -> {}", w[0], w[1]);
    }
    let p = report.params;
    for (name, got, want) in [
        ("prior", p.prior, truth.prior),
        ("learn", p.learn, truth.learn),
        ("guess", p.guess, truth.guess),
        ("slip", p.slip, truth.slip),
    ] {
        assert!((got - want).abs() < 0.05, "{name}: fitted {got}, true {want}");
    }
    let best = p.log_likelihood(&sequences);
    close(best, *report.log_likelihoods.last().expect("ll"), 1e-6, "final log-likelihood");
    for k in 0..4 {
        for delta in [-0.005, 0.005] {
            let mut q = p;
            match k {
                0 => q.prior += delta,
                1 => q.learn += delta,
                2 => q.guess += delta,
                _ => q.slip += delta,
            }
            assert!(q.log_likelihood(&sequences) <= best + 1e-6, "parameter {k} {delta:+} improves the fit");
        }
    }
    // fitting forgetting as well on data with forgetting
    let truth_f = BktParams { forget: 0.05, ..truth };
    let sequences: Vec<Vec<bool>> = (0..2000).map(|_| truth_f.simulate(&mut rng, 30)).collect();
    let start = BktParams { forget: 0.01, ..BktParams::default() };
    let fitted = bkt::fit_em(&sequences, &start, &EmOptions { fit_forget: true, ..EmOptions::default() }).expect("fit");
    eprintln!("EM with forgetting: fitted {:?}", fitted.params);
    assert!((fitted.params.forget - 0.05).abs() < 0.03, "{:?}", fitted.params);
    for w in fitted.log_likelihoods.windows(2) {
        assert!(w[1] >= w[0] - 1e-9);
    }
}

/// Degenerate data (everyone always right): guess and slip stay below 0.5,
/// the likelihood still never decreases and nothing is NaN.
#[test]
fn em_constraints_hold_on_degenerate_data() {
    let sequences = vec![vec![true; 10]; 50];
    let report = bkt::fit_em(&sequences, &BktParams::default(), &EmOptions::default()).expect("fit");
    let p = report.params;
    p.validate().expect("valid parameters");
    assert!(p.guess < 0.5 && p.slip < 0.5, "{p:?}");
    for w in report.log_likelihoods.windows(2) {
        assert!(w[1] >= w[0] - 1e-9);
    }
    let wrong = vec![vec![false; 10]; 50];
    let r =
        bkt::fit_em(&wrong, &BktParams::default(), &EmOptions { max_guess: 0.3, ..EmOptions::default() }).expect("fit");
    assert!(r.params.guess <= 0.3 && r.params.slip < 0.5, "{:?}", r.params);
    // length-1 sequences only: no transitions, learn keeps its value
    let single = vec![vec![true], vec![false], vec![true]];
    let r = bkt::fit_em(&single, &BktParams::default(), &EmOptions::default()).expect("fit");
    assert_eq!(r.params.learn, 0.1);
    assert!(r.params.prior.is_finite());
}

#[test]
fn defaults_before_there_is_data() {
    let d = BktParams::default();
    assert_eq!((d.prior, d.learn, d.guess, d.slip, d.forget), (0.2, 0.1, 0.2, 0.1, 0.0));
    let few = vec![vec![true, false, true]];
    let r = bkt::fit_or_default(&few, &EmOptions::default());
    assert!(!r.fitted);
    assert_eq!((r.params, r.observations), (d, 3));
    let none: Vec<Vec<bool>> = Vec::new();
    assert!(!bkt::fit_or_default(&none, &EmOptions::default()).fitted);
    assert_eq!(bkt::fit_em(&none, &d, &EmOptions::default()), Err(BktError::NoData));
    assert_eq!(bkt::fit_em(&[Vec::<bool>::new()], &d, &EmOptions::default()), Err(BktError::NoData));
    let mut rng = SplitMix64::new(4);
    let enough: Vec<Vec<bool>> = (0..20).map(|_| d.simulate(&mut rng, 10)).collect();
    assert!(bkt::fit_or_default(&enough, &EmOptions::default()).fitted);
}

#[test]
fn mastery_threshold_and_observations() {
    let model = SkillModel::default();
    assert_eq!(model.mastery_threshold(), 0.95);
    let mut state = model.initial_state();
    assert_eq!(state.p_known, 0.2);
    let mut newly = 0;
    let mut steps = 0;
    while !model.is_mastered(state.p_known) {
        let obs = model.observe(&mut state, true).expect("observe");
        steps += 1;
        assert!(obs.p_known_after > obs.p_known_before);
        newly += usize::from(obs.newly_mastered);
        assert_eq!(obs.mastered, obs.p_known_after >= 0.95);
    }
    // 0.2 → 0.576 → 0.874 → 0.972 (pyBKT's state predictions above)
    assert_eq!((steps, newly, state.attempts, state.correct), (3, 1, 3, 3));
    let obs = model.observe(&mut state, false).expect("observe");
    assert!(obs.p_known_after < obs.p_known_before);
    assert_eq!(state.attempts, 4);
    // a stricter threshold takes more answers
    let strict = SkillModel::new(BktParams::default(), 0.99).expect("model");
    let mut s = strict.initial_state();
    let mut n = 0;
    while !strict.is_mastered(s.p_known) {
        strict.observe(&mut s, true).expect("observe");
        n += 1;
    }
    assert_eq!(n, 4);
    // a corrupted state is refused
    let mut bad = state;
    bad.p_known = f64::NAN;
    assert!(matches!(model.observe(&mut bad, true), Err(BktError::InvalidProbability(_))));
}

#[test]
fn parameters_are_validated() {
    let bad = [
        BktParams { prior: -0.1, ..BktParams::default() },
        BktParams { learn: 1.5, ..BktParams::default() },
        BktParams { guess: 0.0, ..BktParams::default() },
        BktParams { slip: 1.0, ..BktParams::default() },
        BktParams { forget: f64::NAN, ..BktParams::default() },
    ];
    for p in bad {
        assert!(matches!(p.validate(), Err(BktError::InvalidParameter { .. })), "{p:?}");
        assert!(SkillModel::new(p, 0.95).is_err());
        assert!(bkt::fit_em(&[vec![true]], &p, &EmOptions::default()).is_err());
    }
    let e = BktParams { guess: 0.0, ..BktParams::default() }.validate().expect_err("guess");
    assert_eq!(e.to_string(), "guess must be in (0, 1), got 0");
    for t in [0.0, 1.5, f64::NAN] {
        assert!(matches!(SkillModel::new(BktParams::default(), t), Err(BktError::InvalidThreshold(_))), "{t}");
    }
    assert!(SkillModel::new(BktParams::default(), 1.0).is_ok());
    assert!(BktParams::default().checked_update(1.2, true).is_err());
    assert!((BktParams::default().checked_update(0.2, true).expect("ok") - 0.576_470_588_235_294_1).abs() < 1e-15);
    for o in [
        EmOptions { max_iterations: 0, ..EmOptions::default() },
        EmOptions { tolerance: f64::NAN, ..EmOptions::default() },
        EmOptions { max_guess: 0.0, ..EmOptions::default() },
        EmOptions { max_slip: 1.5, ..EmOptions::default() },
    ] {
        assert!(matches!(bkt::fit_em(&[vec![true]], &BktParams::default(), &o), Err(BktError::InvalidOptions(_))));
    }
    // JSON with defaults; unknown fields refused
    let p: BktParams = serde_json::from_str(r#"{"guess": 0.25}"#).expect("params");
    assert_eq!(p, BktParams { guess: 0.25, ..BktParams::default() });
    assert!(serde_json::from_str::<BktParams>(r#"{"gues": 0.25}"#).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn updates_stay_probabilities(
        prior in 0.0f64..=1.0,
        learn in 0.0f64..=1.0,
        guess in 0.001f64..0.999,
        slip in 0.001f64..0.999,
        forget in 0.0f64..=1.0,
        answers in proptest::collection::vec(any::<bool>(), 0..40),
    ) {
        let p = BktParams { prior, learn, guess, slip, forget };
        p.validate().expect("valid");
        let t = p.trace(&answers);
        for k in 0..answers.len() {
            for v in [t.p_known_before[k], t.p_known_posterior[k], t.p_known_after[k], t.predicted_correct[k]] {
                prop_assert!(v.is_finite() && (-1e-12..=1.0 + 1e-12).contains(&v), "{v}");
            }
            let lo = guess.min(1.0 - slip) - 1e-12;
            let hi = guess.max(1.0 - slip) + 1e-12;
            prop_assert!(t.predicted_correct[k] >= lo && t.predicted_correct[k] <= hi);
        }
        let ll = p.log_likelihood(&[answers]);
        prop_assert!(ll.is_finite() && ll <= 0.0);
    }
}
