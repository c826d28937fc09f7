//! Tests of `plexus_learning::analytics`.

use std::collections::BTreeMap;

use plexus_learning::analytics::{
    self, Activity, ActivityEvent, AnalyticsError, AtRiskOptions, ItemFlag, ItemFlagOptions, MasteryOptions,
    ResponseMatrix, RiskReason,
};
use plexus_learning::bkt::BktParams;
use serde_json::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::common::{close, f, fixture, floats};

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn parse_row(text: &str) -> Vec<Option<bool>> {
    text.chars()
        .map(|c| match c {
            '1' => Some(true),
            '0' => Some(false),
            '.' => None,
            other => panic!("cell {other}"),
        })
        .collect()
}

fn opt(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// p-values with numpy and point-biserials with `scipy.stats.pointbiserialr`
/// (rest score and total score) on 60 learners × 10 items with ~12 %
/// missing answers, a learner without answers, a miskeyed item and an item
/// everyone answers correctly (scipy: nan; here `None`). Same formula, so 1e-12.
#[test]
fn item_statistics_match_scipy() {
    let fx = fixture();
    let section = &fx["analytics"]["item_statistics"];
    let rows: Vec<Vec<Option<bool>>> =
        section["responses"].as_array().expect("rows").iter().map(|r| parse_row(r.as_str().expect("row"))).collect();
    let want = section["items"].as_array().expect("items");
    let matrix = ResponseMatrix::new(ids("i", want.len()), ids("l", rows.len()), rows).expect("matrix");
    let stats = analytics::item_statistics(&matrix, &ItemFlagOptions::default()).expect("stats");
    assert_eq!(stats.len(), want.len());
    let mut worst: f64 = 0.0;
    for (j, (got, want)) in stats.iter().zip(want).enumerate() {
        assert_eq!(got.item, format!("i{j:02}"));
        assert_eq!(got.responses as u64, want["responses"].as_u64().expect("count"), "item {j}");
        assert_eq!(got.correct as u64, want["correct"].as_u64().expect("count"), "item {j}");
        for (name, value) in [
            ("p_value", got.p_value),
            ("point_biserial", got.point_biserial),
            ("point_biserial_uncorrected", got.point_biserial_uncorrected),
        ] {
            match (value, opt(&want[name])) {
                (Some(g), Some(w)) => worst = worst.max(close(g, w, 1e-12, &format!("{name} of item {j}"))),
                (None, None) => {}
                (g, w) => panic!("{name} of item {j}: got {g:?}, want {w:?}"),
            }
        }
    }
    eprintln!("item statistics: {} items, largest difference from scipy {worst:.1e}", stats.len());
    // the flags: item 9 everyone right, item 6 hard, item 5 miskeyed, items 0, 1, 3 weak
    let kinds: Vec<Vec<&str>> = stats
        .iter()
        .map(|s| {
            s.flags
                .iter()
                .map(|f| match f {
                    ItemFlag::TooEasy { .. } => "too_easy",
                    ItemFlag::TooHard { .. } => "too_hard",
                    ItemFlag::LowDiscrimination { .. } => "low",
                    ItemFlag::NegativeDiscrimination { .. } => "negative",
                    _ => "other",
                })
                .collect()
        })
        .collect();
    let expect: Vec<Vec<&str>> = vec![
        vec!["low"],
        vec!["low"],
        vec![],
        vec!["low"],
        vec![],
        vec!["negative"],
        vec!["too_hard"],
        vec!["negative"],
        vec![],
        vec!["too_easy"],
    ];
    assert_eq!(kinds, expect);
    assert_eq!(stats[9].flags[0], ItemFlag::TooEasy { p_value: 1.0, threshold: 0.9 });
    assert_eq!(stats[9].flags[0].to_string(), "too easy: 100 % correct, above 90 %");
    assert_eq!(stats[6].flags[0].to_string(), "too hard: 11 % correct, below 20 %");
    assert!(stats[5].flags[0].to_string().starts_with("negative discrimination: point-biserial -0.18"));
    // other thresholds
    let lenient = ItemFlagOptions { too_easy: 1.0, too_hard: 0.1, low_discrimination: 0.0, min_responses: 1 };
    let stats = analytics::item_statistics(&matrix, &lenient).expect("stats");
    let flagged: Vec<usize> = stats.iter().enumerate().filter(|(_, s)| !s.flags.is_empty()).map(|(j, _)| j).collect();
    assert_eq!(flagged, vec![5, 7]);
    let few = ItemFlagOptions { min_responses: 100, ..ItemFlagOptions::default() };
    assert!(analytics::item_statistics(&matrix, &few).expect("stats").iter().all(|s| s.flags.is_empty()));
}

/// A 4 × 3 matrix worked by hand.
///
/// ```text
///        i0 i1 i2  total
///   l1    1  1  1   3
///   l2    1  1  0   2
///   l3    1  0  0   1
///   l4    0  0  .   0
/// ```
/// i0 against the rest [2, 1, 0, 0]: r = 0.75 / √(0.75 · 2.75) = √(3/11);
/// against the total: 1.5 / √(0.75 · 5) = √(3/5). i1: 1/√2 and 2/√5.
/// i2 (answered by three): 0.5 and √3/2.
#[test]
fn item_statistics_by_hand() {
    let rows = vec![parse_row("111"), parse_row("110"), parse_row("100"), parse_row("00.")];
    let m = ResponseMatrix::new(ids("i", 3), ids("l", 4), rows).expect("matrix");
    let s = analytics::item_statistics(&m, &ItemFlagOptions::default()).expect("stats");
    let got: Vec<(usize, usize, f64, f64, f64)> = s
        .iter()
        .map(|x| {
            (
                x.responses,
                x.correct,
                x.p_value.expect("p"),
                x.point_biserial.expect("r"),
                x.point_biserial_uncorrected.expect("r"),
            )
        })
        .collect();
    let want = [
        (4, 3, 0.75, (3.0f64 / 11.0).sqrt(), 0.6f64.sqrt()),
        (4, 2, 0.5, 0.5f64.sqrt(), 2.0 / 5.0f64.sqrt()),
        (3, 1, 1.0 / 3.0, 0.5, 3.0f64.sqrt() / 2.0),
    ];
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!((g.0, g.1), (w.0, w.1), "item {j}");
        close(g.2, w.2, 1e-15, "p");
        close(g.3, w.3, 1e-15, "corrected");
        close(g.4, w.4, 1e-15, "uncorrected");
    }
    assert!(s.iter().all(|x| x.flags.is_empty()));

    // an item nobody answered, and a matrix with one learner
    let m = ResponseMatrix::new(ids("i", 2), ids("l", 1), vec![vec![Some(true), None]]).expect("matrix");
    let s = analytics::item_statistics(&m, &ItemFlagOptions::default()).expect("stats");
    assert_eq!((s[1].responses, s[1].p_value, s[0].point_biserial), (0, None, None));
    assert_eq!(s[0].flags, vec![ItemFlag::TooEasy { p_value: 1.0, threshold: 0.9 }]);
}

#[test]
fn response_matrix_shapes() {
    let err = ResponseMatrix::new(ids("i", 2), ids("l", 2), vec![vec![None, None], vec![None]]).expect_err("ragged");
    assert_eq!(err.to_string(), "response matrix: row 1 (learner `l01`) has 1 answers, expected 2");
    let err = ResponseMatrix::new(ids("i", 1), ids("l", 2), vec![vec![None]]).expect_err("rows");
    assert_eq!(err, AnalyticsError::Matrix("2 learners but 1 rows of answers".into()));
    let err = ResponseMatrix::new(vec!["a".into(), "a".into()], ids("l", 1), vec![vec![None, None]]).expect_err("dup");
    assert_eq!(err.to_string(), "response matrix: duplicate item `a` at positions 0 and 1");

    // from answers: ids sorted, the first answer counts
    let m = ResponseMatrix::from_answers([
        ("bo", "q2", false),
        ("ann", "q1", true),
        ("bo", "q2", true),
        ("ann", "q3", false),
    ]);
    assert_eq!(m.learners(), ["ann", "bo"]);
    assert_eq!(m.items(), ["q1", "q2", "q3"]);
    assert_eq!(m.rows(), [vec![Some(true), None, Some(false)], vec![None, Some(false), None]]);
    let opts = ItemFlagOptions { too_easy: 1.5, ..ItemFlagOptions::default() };
    let err = analytics::item_statistics(&m, &opts).expect_err("option");
    assert_eq!(err.to_string(), "option too_easy must be in [0, 1], got 1.5");
}

const T0: OffsetDateTime = datetime!(2025-04-01 09:00 UTC);

fn at(hours: i64) -> OffsetDateTime {
    T0 + Duration::hours(hours)
}

fn answer(learner: &str, t: OffsetDateTime, item: &str, correct: bool, seconds: f64) -> ActivityEvent {
    ActivityEvent {
        learner: learner.into(),
        timestamp: t,
        activity: Activity::Answered { item: item.into(), skill: "s".into(), correct, duration_seconds: seconds },
    }
}

fn done(learner: &str, t: OffsetDateTime, content: &str, seconds: f64) -> ActivityEvent {
    ActivityEvent {
        learner: learner.into(),
        timestamp: t,
        activity: Activity::Completed { content: content.into(), skill: "s".into(), duration_seconds: seconds },
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn events_serialize_flat_with_rfc3339_timestamps() {
    let e = answer("a", T0, "q1", true, 30.0);
    let json = serde_json::to_string(&e).expect("json");
    assert_eq!(
        json,
        r#"{"learner":"a","timestamp":"2025-04-01T09:00:00Z","verb":"answered","item":"q1","skill":"s","correct":true,"duration_seconds":30.0}"#
    );
    assert_eq!(serde_json::from_str::<ActivityEvent>(&json).expect("back"), e);
    let c = done("b", at(1), "c1", 60.0);
    let back: ActivityEvent = serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("back");
    assert_eq!(back, c);
    assert!(serde_json::from_str::<ActivityEvent>(&json.replace("2025-04-01T09:00:00Z", "yesterday")).is_err());
}

/// Four learners, four content items, worked by hand: rates 1, 0.5, 0,
/// 0.25; mean 0.4375, median 0.375; a repeat, an outsider and content
/// outside the course are ignored.
#[test]
fn completion_rates_by_hand() {
    let events = vec![
        done("a", at(0), "c1", 60.0),
        done("a", at(1), "c2", 60.0),
        done("a", at(2), "c3", 60.0),
        done("a", at(3), "c4", 60.0),
        done("a", at(4), "c1", 60.0),
        done("a", at(5), "x", 60.0),
        done("b", at(0), "c1", 60.0),
        done("b", at(1), "c2", 60.0),
        done("d", at(0), "c1", 60.0),
        done("e", at(0), "c1", 60.0),
        answer("c", at(0), "q1", true, 10.0),
    ];
    let r = analytics::completion_rates(&events, &names(&["d", "c", "b", "a", "a"]), &names(&["c4", "c3", "c2", "c1"]))
        .expect("report");
    let rates: Vec<(&str, usize, f64)> = r.learners.iter().map(|l| (l.learner.as_str(), l.completed, l.rate)).collect();
    assert_eq!(rates, vec![("a", 4, 1.0), ("b", 2, 0.5), ("c", 0, 0.0), ("d", 1, 0.25)]);
    let content: Vec<(&str, usize, f64)> = r.content.iter().map(|c| (c.content.as_str(), c.learners, c.rate)).collect();
    assert_eq!(content, vec![("c1", 3, 0.75), ("c2", 2, 0.5), ("c3", 1, 0.25), ("c4", 1, 0.25)]);
    assert_eq!((r.cohort_mean, r.cohort_median), (Some(0.4375), Some(0.375)));
    assert_eq!((r.completed_course, r.course_completion_rate, r.ignored_events), (1, Some(0.25), 3));
    assert_eq!(analytics::completion_rates(&events, &[], &names(&["c1"])).expect("empty").cohort_mean, None);
    assert_eq!(
        analytics::completion_rates(&events, &names(&["a"]), &[]).expect_err("no content"),
        AnalyticsError::NoContent
    );
}

#[test]
fn time_on_task_by_hand() {
    let events = vec![
        answer("a", at(0), "q1", true, 30.0),
        answer("a", at(1), "q2", true, 60.0),
        answer("a", at(2), "q3", false, 90.0),
        done("a", at(3), "c1", 600.0),
        answer("b", at(0), "q1", true, 45.0),
        answer("z", at(0), "q1", true, 1000.0),
    ];
    let r = analytics::time_on_task(&events, &names(&["a", "b", "c"])).expect("report");
    type Row<'a> = (&'a str, usize, f64, f64, f64, Option<f64>);
    let got: Vec<Row<'_>> = r
        .learners
        .iter()
        .map(|l| (l.learner.as_str(), l.events, l.total_seconds, l.answer_seconds, l.content_seconds, l.median_seconds))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", 4, 780.0, 180.0, 600.0, Some(75.0)),
            ("b", 1, 45.0, 45.0, 0.0, Some(45.0)),
            ("c", 0, 0.0, 0.0, 0.0, None)
        ]
    );
    assert_eq!((r.total_seconds, r.cohort_median_total_seconds), (825.0, Some(45.0)));
    let bad = vec![answer("a", at(0), "q1", true, -1.0)];
    let err = analytics::time_on_task(&bad, &names(&["a"])).expect_err("negative");
    assert_eq!(err.to_string(), "event 0 of learner `a`: duration_seconds must be finite and ≥ 0, got -1");
    let bad = vec![answer("a", at(0), "q1", true, 1.0), done("a", at(0), "c", f64::NAN)];
    assert!(matches!(
        analytics::time_on_task(&bad, &names(&["a"])),
        Err(AnalyticsError::InvalidEvent { index: 1, .. })
    ));
}

/// Medians against numpy's, slopes against numpy's `polyfit`.
#[test]
fn medians_and_slopes_match_numpy() {
    let fx = fixture();
    let m = &fx["analytics"]["medians"];
    for (d, want) in m["durations"].as_array().expect("durations").iter().zip(floats(&m["medians"])) {
        assert_eq!(analytics::median(&floats(d)), Some(want));
    }
    assert_eq!(analytics::median(&[]), None);
    let s = &fx["analytics"]["slopes"];
    for (seq, want) in s["sequences"].as_array().expect("sequences").iter().zip(floats(&s["slopes"])) {
        let y = floats(seq);
        close(analytics::trend_slope(&y).expect("slope"), want, 1e-12, &format!("slope of {y:?}"));
    }
    assert_eq!(analytics::trend_slope(&[1.0]), None);
}

/// Histogram against `numpy.histogram(bins=10, range=(0, 1))`, mean and
/// median against numpy.
#[test]
fn mastery_distribution_matches_numpy() {
    let fx = fixture();
    let h = &fx["analytics"]["histogram"];
    let values: Vec<(&str, f64)> = floats(&h["values"]).into_iter().map(|v| ("s", v)).collect();
    let d = analytics::mastery_distribution(&values, &MasteryOptions { buckets: 10, threshold: f(&h["threshold"]) })
        .expect("distribution");
    assert_eq!(d.len(), 1);
    let d = &d[0];
    let counts: Vec<u64> = d.histogram.iter().map(|b| b.count as u64).collect();
    let want: Vec<u64> = h["counts"].as_array().expect("counts").iter().map(|c| c.as_u64().expect("count")).collect();
    assert_eq!(counts, want);
    let edges = floats(&h["edges"]);
    for (k, b) in d.histogram.iter().enumerate() {
        close(b.lower, edges[k], 1e-15, "lower edge");
        close(b.upper, edges[k + 1], 1e-15, "upper edge");
    }
    close(d.mean, f(&h["mean"]), 1e-12, "mean");
    assert_eq!(d.median, f(&h["median"]));
    assert_eq!(d.share_mastered, f(&h["share_mastered"]));
    assert_eq!(d.learners, values.len());
}

/// Edges: each value in `[k/10, (k+1)/10)`, 1 in the last bucket; several skills.
#[test]
fn mastery_distribution_by_hand() {
    let values = [("b", 0.0), ("b", 0.1), ("b", 0.3), ("b", 0.7), ("b", 0.95), ("b", 1.0), ("a", 0.5), ("a", 0.96)];
    let d = analytics::mastery_distribution(&values, &MasteryOptions::default()).expect("distribution");
    assert_eq!(d.iter().map(|x| x.skill.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    let b = &d[1];
    let counts: Vec<usize> = b.histogram.iter().map(|x| x.count).collect();
    assert_eq!(counts, vec![1, 1, 0, 1, 0, 0, 0, 1, 0, 2]);
    assert_eq!((b.mastered, b.share_mastered, b.median), (2, 2.0 / 6.0, 0.5));
    close(b.mean, 3.05 / 6.0, 1e-15, "mean");
    assert_eq!((d[0].mastered, d[0].mean, d[0].median), (1, 0.73, 0.73));
    let d = analytics::mastery_distribution(&values, &MasteryOptions { buckets: 3, threshold: 0.5 }).expect("three");
    assert_eq!(d[1].histogram.iter().map(|x| x.count).collect::<Vec<_>>(), vec![3, 0, 3]);
    assert_eq!(d[1].histogram[1].lower, 1.0 / 3.0);
    let err = analytics::mastery_distribution(&[("x", 1.2)], &MasteryOptions::default()).expect_err("invalid");
    assert_eq!(err.to_string(), "mastery of skill `x` must be in [0, 1], got 1.2");
    let err =
        analytics::mastery_distribution(&values, &MasteryOptions { buckets: 0, threshold: 0.9 }).expect_err("buckets");
    assert_eq!(err.to_string(), "option buckets must be at least 1, got 0");
}

/// A cohort built to hit each rule once:
/// - steady: half the course, 28 answers: 8 right, then 20 alternating (the
///   window of 20 sees no drop; all 28 would: 11/14 vs 7/14);
/// - slacker: active but completed nothing (below 0.5 × median 0.5);
/// - decliner: 6 right, then 1 of 6 (drop 5/6, slope −17.5/143);
/// - ghost: no events at all;
/// - finisher: everything done three weeks ago (not inactive);
/// - napper: half done, last seen 11 days before `now`.
#[test]
fn at_risk_learners_on_constructed_histories() {
    let now = datetime!(2025-05-01 00:00 UTC);
    let recent = datetime!(2025-04-29 10:00 UTC);
    let mut events = Vec::new();
    events.push(done("steady", recent, "c1", 600.0));
    events.push(done("steady", recent, "c2", 600.0));
    for i in 0..28 {
        let correct = i < 8 || (i - 8) % 2 == 0;
        events.push(answer("steady", recent + Duration::minutes(i), "q", correct, 30.0));
    }
    events.push(answer("slacker", recent, "q", true, 30.0));
    events.push(done("decliner", recent, "c1", 600.0));
    events.push(done("decliner", recent, "c2", 600.0));
    for i in 0..12 {
        events.push(answer("decliner", recent + Duration::minutes(i), "q", i < 7, 30.0));
    }
    for c in ["c1", "c2", "c3", "c4"] {
        events.push(done("finisher", datetime!(2025-04-10 12:00 UTC), c, 600.0));
    }
    events.push(done("napper", datetime!(2025-04-20 00:00 UTC), "c1", 600.0));
    events.push(done("napper", datetime!(2025-04-20 00:00 UTC), "c2", 600.0));
    let cohort = names(&["steady", "slacker", "decliner", "ghost", "finisher", "napper"]);
    let content = names(&["c1", "c2", "c3", "c4"]);
    let report =
        analytics::at_risk_learners(&events, &cohort, &content, now, &AtRiskOptions::default()).expect("report");
    assert_eq!((report.checked, report.cohort_median_completion), (6, Some(0.5)));
    let flagged: Vec<&str> = report.learners.iter().map(|l| l.learner.as_str()).collect();
    assert_eq!(flagged, vec!["decliner", "ghost", "napper", "slacker"]);

    let decliner = &report.learners[0];
    assert_eq!(decliner.reasons.len(), 1);
    match decliner.reasons[0] {
        RiskReason::DecliningAccuracy {
            answers,
            first_half_accuracy,
            second_half_accuracy,
            drop,
            slope_per_answer,
        } => {
            assert_eq!((answers, first_half_accuracy), (12, 1.0));
            close(second_half_accuracy, 1.0 / 6.0, 1e-15, "second half");
            close(drop, 5.0 / 6.0, 1e-15, "drop");
            close(slope_per_answer, -17.5 / 143.0, 1e-15, "slope");
        }
        ref other => panic!("decliner: {other:?}"),
    }
    assert_eq!(
        decliner.messages[0],
        "declining accuracy: 100 % correct in the first half of the last 12 answers, 17 % in the second half \
         (drop 0.83, slope -0.122 per answer)"
    );
    let ghost = &report.learners[1];
    assert_eq!(
        ghost.reasons,
        vec![
            RiskReason::LowProgress { completion_rate: 0.0, cohort_median: 0.5, threshold: 0.25 },
            RiskReason::Inactive { last_activity: None, days_inactive: None, threshold_days: 7.0 },
        ]
    );
    assert_eq!(
        ghost.messages,
        vec![
            "low progress: completed 0 % of the course against a cohort median of 50 % (threshold 25 %)",
            "inactive: no activity recorded (threshold 7 days)",
        ]
    );
    let napper = &report.learners[2];
    assert_eq!(
        napper.reasons,
        vec![RiskReason::Inactive {
            last_activity: Some(datetime!(2025-04-20 00:00 UTC)),
            days_inactive: Some(11.0),
            threshold_days: 7.0
        }]
    );
    assert_eq!(napper.messages[0], "inactive: no activity for 11.0 days (threshold 7 days)");
    assert!(matches!(report.learners[3].reasons[..], [RiskReason::LowProgress { completion_rate: 0.0, .. }]));
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["learners"][2]["reasons"][0]["last_activity"], "2025-04-20T00:00:00Z");
    assert_eq!(json["learners"][0]["reasons"][0]["risk"], "declining_accuracy");

    // a longer window sees steady's early streak; a slope rule catches a gentler decline
    let wide = AtRiskOptions { recent_answers: 40, ..AtRiskOptions::default() };
    let r = analytics::at_risk_learners(&events, &cohort, &content, now, &wide).expect("report");
    assert!(r.learners.iter().any(|l| l.learner == "steady"));
    let mut gentle = Vec::new();
    for i in 0..20 {
        // 8 of 10 right, then 6 of 10: drop 0.2 < 0.25
        let correct = if i < 10 { i % 5 != 0 } else { i % 5 < 3 };
        gentle.push(answer("g", recent + Duration::minutes(i), "q", correct, 30.0));
    }
    let g = names(&["g"]);
    let c1 = names(&["c1"]);
    let r = analytics::at_risk_learners(&gentle, &g, &c1, now, &AtRiskOptions::default()).expect("report");
    assert!(r.learners.is_empty(), "{:?}", r.learners);
    let slope = analytics::trend_slope(
        &gentle
            .iter()
            .map(|e| match e.activity {
                Activity::Answered { correct, .. } => f64::from(u8::from(correct)),
                _ => 0.0,
            })
            .collect::<Vec<_>>(),
    )
    .expect("slope");
    assert!(slope < -0.01, "{slope}");
    let sloped = AtRiskOptions { slope_threshold: Some(0.01), ..AtRiskOptions::default() };
    let r = analytics::at_risk_learners(&gentle, &g, &c1, now, &sloped).expect("report");
    assert!(
        r.learners[0]
            .reasons
            .iter()
            .any(|x| matches!(x, RiskReason::DecliningAccuracy { drop, .. } if (drop - 0.2).abs() < 1e-12))
    );

    // options are checked
    let bad = AtRiskOptions { inactive_days: 0.0, ..AtRiskOptions::default() };
    let err = analytics::at_risk_learners(&events, &cohort, &content, now, &bad).expect_err("option");
    assert_eq!(err.to_string(), "option inactive_days must be finite and > 0, got 0");
}

/// BKT states from events follow `BktParams::update` in time order, per
/// skill parameters where given; answer sequences are per skill and learner.
#[test]
fn knowledge_tracing_from_events() {
    let skill_answer = |l: &str, h: i64, skill: &str, correct: bool| ActivityEvent {
        learner: l.into(),
        timestamp: at(h),
        activity: Activity::Answered { item: "q".into(), skill: skill.into(), correct, duration_seconds: 10.0 },
    };
    // given out of order: the timestamps decide
    let events = vec![
        skill_answer("b", 2, "s", true),
        skill_answer("a", 1, "s", false),
        skill_answer("a", 0, "s", true),
        skill_answer("a", 3, "t", true),
        skill_answer("a", 4, "", true),
    ];
    let default = BktParams::default();
    let special = BktParams { prior: 0.5, learn: 0.3, guess: 0.25, slip: 0.15, forget: 0.0 };
    let params: BTreeMap<String, BktParams> = [("t".to_owned(), special)].into();
    let states = analytics::trace_mastery(&events, &params, &default).expect("states");
    let trace = default.trace(&[true, false]);
    assert_eq!(states["a"]["s"], trace.p_known_after[1]);
    assert_eq!(states["a"]["t"], special.update(0.5, true));
    assert_eq!(states["b"]["s"], default.update(0.2, true));
    assert_eq!(states["a"].len(), 2, "no skill, no state");
    let seqs = analytics::answer_sequences(&events);
    assert_eq!(seqs["s"], vec![vec![true, false], vec![true]]);
    assert_eq!(seqs["t"], vec![vec![true]]);
    assert_eq!(seqs.len(), 2);
    let bad: BTreeMap<String, BktParams> = [("t".to_owned(), BktParams { guess: 0.0, ..special })].into();
    let err = analytics::trace_mastery(&events, &bad, &default).expect_err("invalid");
    assert_eq!(err.to_string(), "bkt parameters of skill `t`: guess must be in (0, 1), got 0");
    let m = ResponseMatrix::from_events(&events);
    assert_eq!(m.rows()[0], vec![Some(true)], "a's first answer to q, by time");
}
