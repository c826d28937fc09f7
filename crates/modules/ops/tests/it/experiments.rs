//! Experiments: the statistics against independent references, the decision
//! rules, and the event log (counting rules, persistence, crash recovery).
//!
//! References were computed with Python 3's standard library only (no scipy
//! on the machine):
//! - `normal_sf`: `0.5 * math.erfc(z / math.sqrt(2))`;
//! - `chi_square_sf`: the textbook 5% critical values, and the closed forms
//!   for integer df (even: `exp(-x/2) * sum_{k<df/2} (x/2)^k / k!`; odd:
//!   `erfc(sqrt(x/2)) + sum_{k=1}^{(df-1)/2} exp(-x/2) x^(k-1/2) / (2^(k-1/2) Γ(k+1/2))`);
//! - z-tests: the textbook formulas with `math.erfc`;
//! - probability to beat control: numerical integration of
//!   `∫ f_B(x) F_A(x) dx` (trapezoid rule, 400,000 steps over ±14 standard
//!   deviations, Beta densities from `math.lgamma`), a method independent of
//!   the closed-form sum under test; each value was also checked with a Monte
//!   Carlo of 400,000 `random.betavariate` draws (agreeing to ~1e-3).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use plexus_ops::experiments::{
    ALPHA, Event, ExperimentError, ExperimentLog, ExperimentResults, Recommendation, Recorded, VariantCounts, analyze,
    chi_square_goodness_of_fit, chi_square_sf, normal_sf, prob_beat_control, render_markdown, two_proportion_z_test,
};
use time::macros::datetime;

#[track_caller]
fn close(got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "got {got}, want {want} ± {tol}");
}

#[track_caller]
fn close_rel(got: f64, want: f64, rel: f64) {
    assert!(((got - want) / want).abs() <= rel, "got {got}, want {want} (relative {rel})");
}

/// A fresh directory under the system's temporary directory, removed when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plexus-ops-experiments-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("log file").lines().map(str::to_owned).collect()
}

/// Exposes `exposures` units `"{variant}-{i}"` and converts the first
/// `conversions` of them.
async fn fill(log: &ExperimentLog, id: &str, variant: &str, exposures: usize, conversions: usize) {
    for i in 0..exposures {
        log.record(id, Event::exposure(variant, format!("{variant}-{i}"))).await.expect("exposure");
    }
    for i in 0..conversions {
        log.record(id, Event::conversion(variant, format!("{variant}-{i}"))).await.expect("conversion");
    }
}

// ---------------------------------------------------------------------------
// Pure statistics

#[test]
fn normal_sf_matches_references() {
    let cases = [
        (0.0, 0.5),
        (1.959963984540054, 0.02500000000000002),
        (3.0, 0.0013498980316300957),
        (-1.0, 0.8413447460685429),
    ];
    for (z, want) in cases {
        close_rel(normal_sf(z), want, 1e-12);
    }
    close_rel(normal_sf(8.0), 6.220960574271819e-16, 1e-9);
    // The textbook two-sided 5% point.
    close(2.0 * normal_sf(1.96), 0.05, 1e-4);
}

#[test]
fn chi_square_sf_matches_critical_values_and_closed_forms() {
    // Textbook 5% critical values.
    for (x, df) in [(3.841458820694124, 1), (5.991464547107979, 2), (18.307038053275146, 10), (43.77297182574219, 30)] {
        close(chi_square_sf(x, df), 0.05, 1e-12);
    }
    close(chi_square_sf(3.841, 1), 0.05, 1e-4);
    close(chi_square_sf(5.991, 2), 0.05, 1e-4);
    // Closed forms: both branches (series below x = df/2 + 1, continued
    // fraction above) and far tails with relative precision.
    let cases = [
        (0.01, 1, 0.920344325445942),
        (1.0, 3, 0.8012519569012009),
        (7.0, 5, 0.22064030793671072),
        (100.0, 100, 0.4811916845279572),
        (120.0, 99, 0.07424385580596571),
        (0.5, 7, 0.999446481390425),
        (15.384615384615385, 1, 8.769942375590239e-05),
        (100.0, 1, 1.5239706048320995e-23),
        (200.0, 4, 3.757276735781044e-42),
    ];
    for (x, df, want) in cases {
        close_rel(chi_square_sf(x, df), want, 1e-9);
    }
}

#[test]
fn chi_square_sf_edges() {
    assert_eq!(chi_square_sf(0.0, 1), 1.0);
    assert_eq!(chi_square_sf(-3.0, 4), 1.0);
    assert_eq!(chi_square_sf(f64::INFINITY, 2), 0.0);
    assert!(chi_square_sf(1.0, 0).is_nan());
    assert!(chi_square_sf(f64::NAN, 2).is_nan());
    for df in [1, 2, 3, 10, 1000] {
        let mut previous = 1.0;
        for i in 0..200 {
            let p = chi_square_sf(f64::from(i) * 10.0, df);
            assert!((0.0..=previous).contains(&p), "df {df} x {}: {p} after {previous}", i * 10);
            previous = p;
        }
    }
}

#[test]
fn chi_square_goodness_of_fit_of_a_sample_ratio() {
    let (statistic, df, p) = chi_square_goodness_of_fit(&[5000, 5400], &[50.0, 50.0]).expect("two groups");
    close(statistic, 15.384615384615385, 1e-9);
    assert_eq!(df, 1);
    close_rel(p, 8.769942375590239e-05, 1e-9);
    let (statistic, _, p) = chi_square_goodness_of_fit(&[6100, 2900], &[2.0, 1.0]).expect("two groups");
    close(statistic, 5.0, 1e-9);
    close_rel(p, 0.025347318677468252, 1e-9);
    assert_eq!(chi_square_goodness_of_fit(&[6000, 3000], &[2.0, 1.0]).map(|r| r.0), Some(0.0));
    assert!(chi_square_goodness_of_fit(&[0, 0], &[1.0, 1.0]).is_none());
    assert!(chi_square_goodness_of_fit(&[10], &[1.0]).is_none());
    assert!(chi_square_goodness_of_fit(&[10, 10], &[1.0, 0.0]).is_none());
    assert!(chi_square_goodness_of_fit(&[10, 10], &[1.0]).is_none());
}

#[test]
fn z_test_matches_references() {
    let t = two_proportion_z_test(200, 2000, 260, 2000).expect("defined");
    close(t.rate_a, 0.10, 1e-15);
    close(t.rate_b, 0.13, 1e-15);
    close(t.diff, 0.03, 1e-15);
    close(t.z, 2.973724282623409, 1e-12);
    close(t.p_value, 0.0029420930704592827, 1e-12);
    close(t.ci_low, 0.010249047029535802, 1e-12);
    close(t.ci_high, 0.049750952970464196, 1e-12);

    let t = two_proportion_z_test(100, 1000, 104, 1000).expect("defined");
    close(t.z, 0.29553351505005104, 1e-12);
    close(t.p_value, 0.767586353726008, 1e-12);
    close(t.ci_low, -0.022527227382635247, 1e-12);
    close(t.ci_high, 0.030527227382635226, 1e-12);

    let t = two_proportion_z_test(260, 2000, 200, 2000).expect("defined");
    close(t.z, -2.973724282623409, 1e-12);
    close(t.p_value, 0.0029420930704592827, 1e-12);

    // Nobody (or everybody) converted: no evidence, not a division by zero.
    let t = two_proportion_z_test(0, 500, 0, 500).expect("defined");
    assert_eq!((t.z, t.p_value, t.ci_low, t.ci_high), (0.0, 1.0, 0.0, 0.0));
    let t = two_proportion_z_test(500, 500, 500, 500).expect("defined");
    assert_eq!((t.z, t.p_value), (0.0, 1.0));
    assert!(two_proportion_z_test(0, 0, 1, 10).is_none());
    assert!(two_proportion_z_test(1, 10, 0, 0).is_none());
    assert!(two_proportion_z_test(11, 10, 1, 10).is_none());
}

#[test]
fn prob_beat_control_matches_numerical_integration() {
    // (control conversions, control exposures, variant conversions, variant
    // exposures, reference); the cases between them take each of the four
    // sums (over either group's successes or failures).
    let cases = [
        (200, 2000, 260, 2000, 0.9985309319255313),
        (100, 1000, 104, 1000, 0.6159220866598621),
        (5, 50, 9, 50, 0.8684153438590362),
        (260, 2000, 200, 2000, 0.0014690680754808891),
        (1, 10, 1, 10, 0.5),
        (3, 1000, 0, 20, 0.9201933984624979),
        (990, 1000, 995, 1000, 0.8958612843572283),
        (995, 1000, 990, 1000, 1.0 - 0.8958612843572283),
    ];
    for (ca, na, cb, nb, want) in cases {
        let got = prob_beat_control(ca, na, cb, nb);
        assert!((got - want).abs() < 1e-6, "{ca}/{na} vs {cb}/{nb}: got {got}, want {want}");
        let swapped = prob_beat_control(cb, nb, ca, na);
        assert!((got + swapped - 1.0).abs() < 1e-9, "symmetry {ca}/{na} vs {cb}/{nb}");
        assert_eq!(got, prob_beat_control(ca, na, cb, nb), "deterministic");
    }
    // Beyond 200,000 terms: the normal approximation of the posteriors.
    close(prob_beat_control(300_000, 1_000_000, 301_000, 1_000_000), 0.9384995516098732, 1e-4);
    assert_eq!(prob_beat_control(0, 0, 0, 0), 0.5);
    assert!(prob_beat_control(5, 4, 1, 1).is_nan());
}

// ---------------------------------------------------------------------------
// Decisions

fn counts(spec: &[(&str, u64, u64)]) -> Vec<VariantCounts> {
    spec.iter().map(|(v, n, c)| VariantCounts::new(*v, *n, *c)).collect()
}

#[track_caller]
fn check(spec: &[(&str, u64, u64)], want: Recommendation, reason_contains: &str) -> ExperimentResults {
    let results = analyze("exp", "control", &counts(spec));
    assert_eq!(results.recommendation, want, "{}", results.reason);
    assert!(results.reason.contains(reason_contains), "{:?} lacks {reason_contains:?}", results.reason);
    results
}

#[test]
fn a_clear_winner() {
    let r = check(
        &[("control", 2000, 200), ("treatment", 2000, 260)],
        Recommendation::Winner { variant: "treatment".into() },
        "treatment beats control: +3.00 pp (95% CI +1.02 pp to +4.98 pp), p = 0.0029",
    );
    assert_eq!(r.variants[0].variant, "control");
    assert!(r.variants[0].control && !r.variants[1].control);
    close(r.variants[1].rate.expect("rate"), 0.13, 1e-15);
    let c = &r.comparisons[0];
    close(c.absolute_lift.expect("lift"), 0.03, 1e-15);
    close(c.relative_lift.expect("relative"), 0.3, 1e-12);
    close(c.p_value.expect("p"), 0.0029420930704592827, 1e-12);
    close(c.prob_beat_control, 0.9985309319255313, 1e-6);
    assert!(c.significant);
    assert_eq!(c.alpha, ALPHA);
    assert!(!r.srm.mismatch);
    close(r.srm.p_value.expect("srm"), 1.0, 1e-12);
}

#[test]
fn control_better() {
    check(&[("control", 2000, 260), ("treatment", 2000, 200)], Recommendation::ControlBetter, "worse than control");
}

#[test]
fn no_winner_when_the_difference_is_not_significant() {
    let r =
        check(&[("control", 1000, 100), ("treatment", 1000, 104)], Recommendation::NoWinnerYet, "smallest p = 0.7676");
    assert!(!r.comparisons[0].significant);
    check(&[("control", 5000, 500), ("treatment", 5000, 500)], Recommendation::NoWinnerYet, "p = 1.0000");
}

#[test]
fn no_winner_with_too_few_exposures() {
    // A large effect (10% vs 40%, p < 0.001) on 50 units per variant.
    let r = check(
        &[("control", 50, 5), ("treatment", 50, 20)],
        Recommendation::NoWinnerYet,
        "at least 100 exposures; too few in control (50), treatment (50)",
    );
    assert!(r.comparisons[0].p_value.expect("p") < 0.001);
    check(&[("control", 0, 0), ("treatment", 0, 0)], Recommendation::NoWinnerYet, "Not enough data");
    check(&[("control", 300, 30)], Recommendation::NoWinnerYet, "Only the control");
    let r = analyze("exp", "control", &counts(&[("a", 300, 30), ("b", 300, 60)]));
    assert_eq!(r.recommendation, Recommendation::NoWinnerYet);
    assert!(r.reason.contains("Control variant control has no data"), "{}", r.reason);
}

#[test]
fn several_variants_share_alpha() {
    // Alone, b (p = 0.043) wins; next to a second variant it must reach 0.025.
    check(
        &[("control", 2000, 200), ("b", 2000, 240)],
        Recommendation::Winner { variant: "b".into() },
        "b beats control",
    );
    let r = check(
        &[("control", 2000, 200), ("b", 2000, 240), ("c", 2000, 200)],
        Recommendation::NoWinnerYet,
        "alpha 0.025",
    );
    assert_eq!(r.comparisons.len(), 2);
    assert!(r.comparisons.iter().all(|c| c.alpha == 0.025 && !c.significant));
    // The larger of two significant lifts wins.
    check(
        &[("control", 2000, 200), ("b", 2000, 260), ("c", 2000, 300)],
        Recommendation::Winner { variant: "c".into() },
        "c beats control",
    );
}

#[test]
fn sample_ratio_mismatch_invalidates_results() {
    let r =
        check(&[("control", 5000, 500), ("treatment", 5400, 700)], Recommendation::InvalidSrm, "chi-square p = 8.8e-5");
    assert!(r.srm.mismatch);
    close(r.srm.chi_square.expect("chi"), 15.384615384615385, 1e-9);
    close_rel(r.srm.p_value.expect("p"), 8.769942375590239e-05, 1e-9);
    // Uneven by design is not a mismatch.
    let mut weighted = counts(&[("control", 6000, 600), ("treatment", 3000, 300)]);
    weighted[0].weight = 2.0;
    let r = analyze("exp", "control", &weighted);
    assert!(!r.srm.mismatch);
    close(r.variants[0].expected_share, 2.0 / 3.0, 1e-12);
}

// ---------------------------------------------------------------------------
// The log

#[tokio::test]
async fn repeated_events_count_once() {
    let dir = TempDir::new("dedup");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    let at = datetime!(2026-05-01 09:30 UTC);
    assert_eq!(log.record("exp", Event::exposure("control", "u1").at(at)).await.expect("ok"), Recorded::Counted);
    assert_eq!(log.record("exp", Event::exposure("control", "u1")).await.expect("ok"), Recorded::Duplicate);
    assert_eq!(log.record("exp", Event::exposure("control", "u2")).await.expect("ok"), Recorded::Counted);
    let first = Event::conversion("control", "u1").with_value(12.5);
    assert_eq!(log.record("exp", first).await.expect("ok"), Recorded::Counted);
    let again = Event::conversion("control", "u1").with_value(99.0);
    assert_eq!(log.record("exp", again).await.expect("ok"), Recorded::Duplicate);
    assert_eq!(log.record("exp", Event::exposure("b", "u3")).await.expect("ok"), Recorded::Counted);

    let r = log.results("exp").expect("results");
    let control = &r.variants[0];
    assert_eq!((control.variant.as_str(), control.exposures, control.conversions), ("control", 2, 1));
    assert_eq!(control.value_total, 12.5);
    assert_eq!(r.first_event.as_deref(), Some("2026-05-01T09:30:00Z"));
    // Only counted events are stored.
    let stored = lines(&dir.path().join("exp.jsonl"));
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored[0], r#"{"t":"2026-05-01T09:30:00Z","kind":"exposure","variant":"control","unit":"u1"}"#);
    assert!(stored[2].contains(r#""kind":"conversion""#) && stored[2].contains(r#""value":12.5"#), "{}", stored[2]);
}

#[tokio::test]
async fn conversion_without_exposure_is_refused() {
    let dir = TempDir::new("unexposed");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    let e = log.record("exp", Event::conversion("control", "u9")).await.expect_err("never exposed");
    assert!(matches!(e, ExperimentError::NotExposed { .. }));
    assert_eq!(e.to_string(), "conversion for unit u9 that was never exposed to variant control of experiment exp");
    // Exposed, but to another variant.
    log.record("exp", Event::exposure("b", "u9")).await.expect("exposure");
    let e = log.record("exp", Event::conversion("control", "u9")).await.expect_err("other variant");
    assert!(e.to_string().starts_with("conversion for unit u9 that was never exposed"), "{e}");
    let r = log.results("exp").expect("results");
    assert_eq!(r.variants.iter().map(|v| v.conversions).sum::<u64>(), 0);
    assert_eq!(lines(&dir.path().join("exp.jsonl")).len(), 1);
}

#[tokio::test]
async fn a_unit_in_two_variants_is_contamination() {
    let dir = TempDir::new("contamination");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    assert_eq!(log.record("exp", Event::exposure("control", "u1")).await.expect("ok"), Recorded::Counted);
    assert_eq!(log.record("exp", Event::exposure("b", "u1")).await.expect("ok"), Recorded::Contaminated);
    assert_eq!(log.record("exp", Event::exposure("b", "u1")).await.expect("ok"), Recorded::Duplicate);
    assert_eq!(log.record("exp", Event::conversion("b", "u1")).await.expect("ok"), Recorded::Counted);
    let r = log.results("exp").expect("results");
    assert_eq!(r.contaminated_units, 1);
    assert_eq!(r.variants.iter().map(|v| v.exposures).collect::<Vec<_>>(), [1, 1]);
    let md = render_markdown(&[r]);
    assert!(md.contains("Warning: 1 units were exposed to more than one variant"), "{md}");
    // Reopening finds the same.
    drop(log);
    let log = ExperimentLog::open(dir.path().to_owned()).expect("reopen");
    assert_eq!(log.results("exp").expect("results").contaminated_units, 1);
}

#[tokio::test]
async fn bad_ids_and_events_are_refused() {
    let dir = TempDir::new("bad-ids");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    let too_long = "x".repeat(65);
    for id in ["", "a b", "../etc", "a/b", "a.b", "café", "exp\n", too_long.as_str()] {
        let e = log.record(id, Event::exposure("control", "u1")).await.expect_err(id);
        assert!(matches!(e, ExperimentError::InvalidId { .. }), "{id:?}: {e}");
        assert!(e.to_string().starts_with("invalid experiment id"), "{e}");
        assert!(matches!(log.results(id), Err(ExperimentError::InvalidId { .. })), "{id:?}");
        let defined = log.define(id, vec!["a".into(), "b".into()], "a".into(), vec![]).await;
        assert!(matches!(defined, Err(ExperimentError::InvalidId { .. })), "{id:?}");
    }
    let longest = "A-z_0".repeat(12) + "abcd";
    assert_eq!(longest.len(), 64);
    log.record(&longest, Event::exposure("control", "u1")).await.expect("64 characters");

    for (event, reason) in [
        (Event::exposure("", "u1"), "variant must not be empty"),
        (Event::exposure("a", " "), "unit must not be empty"),
        (Event::exposure("a", "u\u{7}"), "contains control characters"),
        (Event::exposure("a", "u".repeat(257)), "longer than 256"),
        (Event::conversion("a", "u1").with_value(f64::NAN), "value must be a finite number"),
    ] {
        let e = log.record("exp", event).await.expect_err(reason);
        assert!(e.to_string().contains(reason), "{e}");
    }
    assert!(matches!(log.results("nothing-here"), Err(ExperimentError::UnknownExperiment { .. })));
    // A refused conversion does not make an experiment appear.
    let _ = log.record("ghost", Event::conversion("a", "u1")).await;
    assert!(matches!(log.results("ghost"), Err(ExperimentError::UnknownExperiment { .. })));
    assert_eq!(log.experiments(), [longest]);
}

#[tokio::test]
async fn results_survive_reopening() {
    let dir = TempDir::new("reopen");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    fill(&log, "checkout", "control", 2000, 200).await;
    fill(&log, "checkout", "treatment", 2000, 260).await;
    fill(&log, "banner", "control", 10, 1).await;
    let before = log.results("checkout").expect("results");
    assert_eq!(before.recommendation, Recommendation::Winner { variant: "treatment".into() });
    drop(log);

    let log = ExperimentLog::open(dir.path().to_owned()).expect("reopen");
    assert_eq!(log.experiments(), ["banner", "checkout"]);
    assert_eq!(log.results("checkout").expect("results"), before);
    // And it keeps appending where it left off.
    log.record("checkout", Event::exposure("control", "late")).await.expect("exposure");
    assert_eq!(log.results("checkout").expect("results").variants[0].exposures, 2001);
    assert_eq!(log.all_results().len(), 2);
}

#[tokio::test]
async fn a_torn_last_line_is_cut_off() {
    let dir = TempDir::new("torn");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    let path = dir.path().join("exp.jsonl");
    let good = [
        r#"{"t":"2026-05-01T10:00:00Z","kind":"exposure","variant":"control","unit":"u1"}"#,
        r#"{"t":"2026-05-01T10:00:01+09:00","kind":"exposure","variant":"b","unit":"u2"}"#,
        r#"{"t":"2026-05-01T10:00:02Z","kind":"conversion","variant":"b","unit":"u2","value":3}"#,
    ];
    let mut text = good.join("\n") + "\n";
    text.push_str(r#"{"t":"2026-05-01T10:00:03Z","kind":"conv"#);
    std::fs::write(&path, &text).expect("write");

    let log = ExperimentLog::open(dir.path().to_owned()).expect("a torn last line is not fatal");
    let r = log.results("exp").expect("results");
    assert_eq!(r.variants.iter().map(|v| (v.exposures, v.conversions)).collect::<Vec<_>>(), [(1, 0), (1, 1)]);
    assert_eq!(r.first_event.as_deref(), Some("2026-05-01T01:00:01Z"), "the earliest, in UTC");
    assert_eq!(lines(&path), good, "the torn line is gone");
    log.record("exp", Event::exposure("control", "u3")).await.expect("append after repair");
    drop(log);
    let log = ExperimentLog::open(dir.path().to_owned()).expect("reopen");
    assert_eq!(log.results("exp").expect("results").variants[0].exposures, 2);
    assert_eq!(lines(&path).len(), 4);
}

#[tokio::test]
async fn an_unterminated_but_whole_last_line_is_kept() {
    let dir = TempDir::new("unterminated");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    let path = dir.path().join("exp.jsonl");
    std::fs::write(&path, r#"{"t":"2026-05-01T10:00:00Z","kind":"exposure","variant":"a","unit":"u1"}"#)
        .expect("write");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    log.record("exp", Event::exposure("a", "u2")).await.expect("append");
    assert_eq!(log.results("exp").expect("results").variants[0].exposures, 2);
    assert_eq!(lines(&path).len(), 2);
}

#[tokio::test]
async fn a_corrupt_line_in_the_middle_is_an_error() {
    let dir = TempDir::new("corrupt");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    std::fs::write(
        dir.path().join("exp.jsonl"),
        "{\"t\":\"2026-05-01T10:00:00Z\",\"kind\":\"exposure\",\"variant\":\"a\",\"unit\":\"u1\"}\n\
         \n\
         {\"t\":\"yesterday\",\"kind\":\"exposure\",\"variant\":\"a\",\"unit\":\"u2\"}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("not an id.jsonl"), "garbage\n").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "ignored\n").expect("write");
    let e = ExperimentLog::open(dir.path().to_owned()).expect_err("corrupt");
    let ExperimentError::Corrupt { line, .. } = &e else { panic!("unexpected {e:?}") };
    assert_eq!(*line, 3);
    assert!(e.to_string().contains("exp.jsonl at line 3: time \"yesterday\""), "{e}");
}

#[tokio::test]
async fn definitions_set_control_weights_and_variants() {
    let dir = TempDir::new("define");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    let variants = || vec!["new".to_owned(), "old".to_owned()];
    for (variants, control, weights, reason) in [
        (vec!["only".to_owned()], "only", vec![], "at least two variants"),
        (vec!["a".to_owned(), "a".to_owned()], "a", vec![], "listed twice"),
        (variants(), "missing", vec![], "control missing is not one of the variants"),
        (variants(), "old", vec![1.0], "1 weights for 2 variants"),
        (variants(), "old", vec![1.0, -1.0], "weight -1 is not a positive number"),
    ] {
        let e = log.define("exp", variants, control.to_owned(), weights).await.expect_err(reason);
        assert!(e.to_string().contains(reason), "{e}");
    }
    log.define("exp", variants(), "old".into(), vec![1.0, 3.0]).await.expect("valid");
    let r = log.results("exp").expect("a defined experiment has results");
    assert_eq!(r.control, "old");
    assert_eq!(r.variants.iter().map(|v| v.variant.as_str()).collect::<Vec<_>>(), ["old", "new"]);
    close(r.variants[0].expected_share, 0.75, 1e-12);
    let e = log.record("exp", Event::exposure("other", "u1")).await.expect_err("undefined variant");
    assert_eq!(e.to_string(), "unknown variant other for experiment exp (defined: new, old)");

    log.record("plain", Event::exposure("x", "u1")).await.expect("ok");
    let e = log.define("plain", variants(), "old".into(), vec![]).await.expect_err("conflict");
    assert!(e.to_string().contains("events exist for variant x"), "{e}");
}

#[tokio::test]
async fn sample_ratio_mismatch_through_the_log() {
    let dir = TempDir::new("srm");
    let log = ExperimentLog::open(dir.path().to_owned()).expect("open");
    log.define("split", vec!["control".into(), "treatment".into()], "control".into(), vec![50.0, 50.0])
        .await
        .expect("define");
    fill(&log, "split", "control", 5000, 500).await;
    fill(&log, "split", "treatment", 5400, 700).await;
    let r = log.results("split").expect("results");
    assert_eq!(r.recommendation, Recommendation::InvalidSrm, "{}", r.reason);
    close_rel(r.srm.p_value.expect("p"), 8.769942375590239e-05, 1e-9);
    let md = render_markdown(&[r]);
    assert!(md.contains("**Invalid: sample ratio mismatch**"), "{md}");
    assert!(
        md.contains("control 48.1% (expected 50.0%), treatment 51.9% (expected 50.0%); chi-square = 15.38 (df 1), p = 8.8e-5: **mismatch**"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_count_exactly() {
    let dir = TempDir::new("concurrent");
    let log = Arc::new(ExperimentLog::open(dir.path().to_owned()).expect("open"));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            // Every task exposes the same 50 units per variant (overlapping
            // duplicates) and converts units of its own.
            for i in 0..50 {
                for variant in ["control", "b"] {
                    log.record("race", Event::exposure(variant, format!("{variant}-{i}"))).await.expect("exposure");
                }
            }
            for variant in ["control", "b"] {
                log.record("race", Event::conversion(variant, format!("{variant}-{task}"))).await.expect("conv");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let r = log.results("race").expect("results");
    assert_eq!(r.variants.iter().map(|v| (v.exposures, v.conversions)).collect::<Vec<_>>(), [(50, 8), (50, 8)]);
    assert_eq!(lines(&dir.path().join("race.jsonl")).len(), 2 * (50 + 8));
}

// ---------------------------------------------------------------------------
// The report

#[test]
fn markdown_shows_the_numbers() {
    let winner = analyze("checkout", "control", &counts(&[("control", 2000, 200), ("treatment", 2000, 260)]));
    let mut pipes = analyze("a-b", "control", &counts(&[("control", 1000, 100), ("x|y", 1000, 104)]));
    pipes.contaminated_units = 0;
    let md = render_markdown(&[winner, pipes]);
    for expected in [
        "# Experiment results",
        "## checkout",
        "**Winner: treatment**: treatment beats control",
        "Control: `control` · 4000 exposures",
        "| Variant | Exposures | Conversions | Rate | Lift | Relative lift | 95% CI of difference | p-value | P(beat control) |",
        "| control (control) | 2000 | 200 | 10.00% | – | – | – | – | – |",
        "| treatment | 2000 | 260 | 13.00% | +3.00 pp | +30.0% | [+1.02, +4.98] pp | **0.0029** | 99.9% |",
        "chi-square = 0.00 (df 1), p = 1.0000: ok",
        "## a-b",
        "**No winner yet**",
        "| x\\|y | 1000 | 104 | 10.40% | +0.40 pp | +4.0% | [-2.25, +3.05] pp | 0.7676 | 61.6% |",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    assert!(render_markdown(&[]).contains("No experiments have recorded events yet."));
}

#[test]
fn markdown_shows_values_when_there_are_any() {
    let mut variants = counts(&[("control", 500, 50), ("b", 500, 60)]);
    variants[1].value_total = 1234.5;
    let md = render_markdown(&[analyze("rev", "control", &variants)]);
    assert!(md.contains("| Rate | Value | Lift |"), "{md}");
    assert!(md.contains("| b | 500 | 60 | 12.00% | 1234.50 |"), "{md}");
}
