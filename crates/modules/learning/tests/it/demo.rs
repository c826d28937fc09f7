//! Tests of `plexus_learning::demo`: determinism, validity, and that the
//! simulated activity behaves like its model.

use std::collections::{BTreeMap, BTreeSet};

use plexus_learning::analytics::{self, Activity, AtRiskOptions, ItemFlagOptions, ResponseMatrix, RiskReason};
use plexus_learning::bkt::{self, BktParams, EmOptions};
use plexus_learning::demo::{self, ActivitySpec, Demo, DemoError, DemoSpec};
use plexus_learning::graph::Course;

fn demo_default() -> Demo {
    demo::generate(&DemoSpec::default()).expect("demo")
}

/// The same spec gives byte-identical JSON; another seed another demo.
#[test]
fn same_seed_same_bytes_other_seed_other_demo() {
    let spec = DemoSpec::default();
    let a = demo::generate(&spec).expect("demo");
    let b = demo::generate(&spec).expect("demo");
    let json_a = serde_json::to_string(&a).expect("json");
    assert_eq!(json_a, serde_json::to_string(&b).expect("json"));
    let log_a =
        serde_json::to_string(&demo::simulate_activity(&a, &ActivitySpec::default()).expect("log")).expect("json");
    let log_b =
        serde_json::to_string(&demo::simulate_activity(&b, &ActivitySpec::default()).expect("log")).expect("json");
    assert_eq!(log_a, log_b);

    let other = demo::generate(&DemoSpec { seed: spec.seed + 1, ..spec.clone() }).expect("demo");
    assert_ne!(serde_json::to_string(&other.course).expect("json"), serde_json::to_string(&a.course).expect("json"));
    assert_ne!(serde_json::to_string(&other.bank).expect("json"), serde_json::to_string(&a.bank).expect("json"));
    assert_ne!(
        serde_json::to_string(&other.learners).expect("json"),
        serde_json::to_string(&a.learners).expect("json")
    );
    let log_c = serde_json::to_string(
        &demo::simulate_activity(&a, &ActivitySpec { seed: 2, ..ActivitySpec::default() }).expect("log"),
    )
    .expect("json");
    assert_ne!(log_a, log_c);
    // the JSON reads back into the same demo (the course and bank re-validated)
    let back: Demo = serde_json::from_str(&json_a).expect("read back");
    assert_eq!(back, a);
}

/// The course validates, spans two subjects with English and Japanese
/// names, and every skill has content in distinct formats and bank items.
#[test]
fn the_generated_course_and_bank_are_valid() {
    for (seed, per_subject) in [(1, 5), (2025, 8), (99, 15)] {
        let spec = DemoSpec { seed, skills_per_subject: per_subject, ..DemoSpec::default() };
        let d = demo::generate(&spec).expect("demo");
        let json = serde_json::to_string(&d.course).expect("json");
        let course: Course = serde_json::from_str(&json).expect("the course validates");
        assert_eq!(course, d.course);
        assert_eq!(course.skills().len(), 2 * per_subject);
        assert_eq!(course.subjects(), vec!["algebra", "geometry"]);
        assert_eq!(d.subjects.iter().map(|s| s.name_ja.as_str()).collect::<Vec<_>>(), vec!["代数", "幾何"]);
        let cross = course
            .skills()
            .iter()
            .filter(|s| s.subject == "geometry" && s.prerequisites.iter().any(|p| p.starts_with("algebra")))
            .count();
        eprintln!("demo seed {seed}: {} skills, {cross} geometry skills need algebra", course.skills().len());
        assert!(cross >= 1);
        for skill in course.skills() {
            assert!(skill.translations.get("ja").is_some_and(|n| !n.is_ascii()), "{} has a Japanese name", skill.id);
            let content = course.content_for(&skill.id);
            assert_eq!(content.len(), spec.content_per_skill);
            let formats: BTreeSet<_> = content.iter().map(|c| c.format).collect();
            assert_eq!(formats.len(), content.len(), "distinct formats for {}", skill.id);
            assert!(content.iter().all(|c| c.translations.contains_key("ja") && c.duration_minutes >= 5.0));
            let level = d.skill_levels[&skill.id];
            assert!(
                content.iter().all(|c| (c.difficulty - level).abs() < 1.5),
                "content near the level of {}",
                skill.id
            );
            let area = d.bank.area_index(&skill.id).expect("bank items for every skill");
            assert_eq!(d.bank.area_items(area).len(), spec.items_per_skill);
        }
        assert!(d.bank.areas().iter().all(|a| course.skill(a).is_some()), "every bank skill exists");
        assert_eq!(d.bank.len(), 2 * per_subject * spec.items_per_skill);
        // harder skills later in a subject
        let first = d.skill_levels["algebra-01"];
        let last = d.skill_levels[&format!("algebra-{per_subject:02}")];
        assert_eq!((first, last), (-1.5, 1.5));
        // learners know a skill only with its prerequisites
        assert_eq!(d.learners.len(), spec.learners);
        for l in &d.learners {
            for s in &l.known_skills {
                let skill = course.skill(s).expect("known skill exists");
                assert!(
                    skill.prerequisites.iter().all(|p| l.known_skills.contains(p)),
                    "{} knows {s} without its prerequisites",
                    l.id
                );
            }
        }
    }
}

#[test]
fn specs_out_of_range_are_refused() {
    let cases = [
        (
            DemoSpec { skills_per_subject: 4, ..DemoSpec::default() },
            "invalid demo spec: skills_per_subject must be in 5..=15, got 4",
        ),
        (
            DemoSpec { skills_per_subject: 16, ..DemoSpec::default() },
            "invalid demo spec: skills_per_subject must be in 5..=15, got 16",
        ),
        (
            DemoSpec { content_per_skill: 6, ..DemoSpec::default() },
            "invalid demo spec: content_per_skill must be in 1..=5, got 6",
        ),
        (
            DemoSpec { items_per_skill: 0, ..DemoSpec::default() },
            "invalid demo spec: items_per_skill must be in 1..=50, got 0",
        ),
        (DemoSpec { learners: 0, ..DemoSpec::default() }, "invalid demo spec: learners must be in 1..=10000, got 0"),
    ];
    for (spec, message) in cases {
        let err = demo::generate(&spec).expect_err("invalid");
        assert!(matches!(err, DemoError::InvalidSpec(_)));
        assert_eq!(err.to_string(), message);
    }
    let d = demo_default();
    let err = demo::simulate_activity(&d, &ActivitySpec { days: 0, ..ActivitySpec::default() }).expect_err("days");
    assert_eq!(err.to_string(), "invalid demo spec: days must be in 1..=3650, got 0");
}

/// The events are consistent: chronological, inside the period, answers to
/// items of the skill practised, content completed once, nothing after a
/// dropout; the demo's BKT estimates are what `analytics::trace_mastery` computes.
#[test]
fn simulated_activity_is_consistent() {
    let d = demo_default();
    let spec = ActivitySpec::default();
    let log = demo::simulate_activity(&d, &spec).expect("log");
    let events = &log.events;
    assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(events.iter().all(|e| e.timestamp > spec.start && e.timestamp < spec.end()));
    let mut completed: BTreeSet<(&str, &str)> = BTreeSet::new();
    let (mut answers, mut completions) = (0, 0);
    for e in events {
        match &e.activity {
            Activity::Answered { item, skill, duration_seconds, .. } => {
                answers += 1;
                assert_eq!(&d.bank.by_id(item).expect("bank item").skill, skill);
                assert!((5.0..=600.0).contains(duration_seconds));
            }
            Activity::Completed { content, skill, .. } => {
                completions += 1;
                assert_eq!(&d.course.content_item(content).expect("content").skill, skill);
                assert!(completed.insert((e.learner.as_str(), content.as_str())), "{} repeats {content}", e.learner);
            }
            _ => panic!("unexpected activity"),
        }
    }
    eprintln!("demo activity: {} events, {answers} answers, {completions} completions", events.len());
    assert!(answers > 1000 && completions > 200, "{answers} answers, {completions} completions");
    for l in &d.learners {
        if let Some(f) = l.dropout_after {
            let stop = spec.start + time::Duration::days((f * f64::from(spec.days)).ceil() as i64);
            assert!(events.iter().filter(|e| e.learner == l.id).all(|e| e.timestamp < stop), "{} after dropout", l.id);
        }
        // learning only adds skills
        assert!(l.known_skills.is_subset(&log.known_after[&l.id]));
    }
    let traced = analytics::trace_mastery(events, &BTreeMap::new(), &BktParams::default()).expect("trace");
    for (learner, skills) in &log.estimated_mastery {
        for (skill, p) in skills {
            assert_eq!(traced[learner][skill], *p, "{learner} {skill}");
        }
    }
}

/// Accuracy follows true ability; BKT estimates follow the true states;
/// BKT fitted to the answers beats the defaults and keeps guess and slip
/// below 0.5; every dropout is flagged inactive at the end of the period.
#[test]
fn simulated_activity_follows_its_model() {
    let d = demo::generate(&DemoSpec { learners: 80, ..DemoSpec::default() }).expect("demo");
    let spec = ActivitySpec::default();
    let log = demo::simulate_activity(&d, &spec).expect("log");
    let mut per: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for e in &log.events {
        if let Activity::Answered { correct, .. } = e.activity {
            let entry = per.entry(e.learner.as_str()).or_default();
            entry.0 += 1.0;
            entry.1 += f64::from(u8::from(correct));
        }
    }
    let (mut thetas, mut accuracy) = (Vec::new(), Vec::new());
    for l in &d.learners {
        if let Some(&(n, c)) = per.get(l.id.as_str())
            && n >= 10.0
        {
            thetas.push(l.true_theta);
            accuracy.push(c / n);
        }
    }
    let r = analytics::pearson(&thetas, &accuracy).expect("correlation");
    eprintln!("demo: correlation of accuracy with true ability {r:.3} over {} learners", thetas.len());
    assert!(thetas.len() >= 50);
    assert!(r > 0.5, "accuracy vs ability {r}");

    // BKT estimates at the end against the true states
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for (learner, skills) in &log.estimated_mastery {
        for (skill, p) in skills {
            if log.known_after[learner].contains(skill) { known.push(*p) } else { unknown.push(*p) }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!("demo: mean BKT estimate {:.3} on known skills, {:.3} on unknown", mean(&known), mean(&unknown));
    assert!(mean(&known) > mean(&unknown) + 0.2);

    // BKT fitting on all answer sequences
    let sequences: Vec<Vec<bool>> = analytics::answer_sequences(&log.events).into_values().flatten().collect();
    let report = bkt::fit_or_default(&sequences, &EmOptions::default());
    assert!(report.fitted);
    let p = report.params;
    eprintln!("demo: BKT fitted to {} answers: {p:?}", report.observations);
    assert!(p.guess < 0.5 && p.slip < 0.5 && p.learn > 0.0);
    assert!(p.log_likelihood(&sequences) > BktParams::default().log_likelihood(&sequences));

    // dropouts are inactive at the end
    let learners = analytics::learners_in(&log.events);
    let all: Vec<String> = d.learners.iter().map(|l| l.id.clone()).collect();
    let content: Vec<String> = d.course.content().iter().map(|c| c.id.clone()).collect();
    let risk =
        analytics::at_risk_learners(&log.events, &all, &content, spec.end(), &AtRiskOptions::default()).expect("risk");
    let inactive: BTreeSet<&str> = risk
        .learners
        .iter()
        .filter(|l| l.reasons.iter().any(|r| matches!(r, RiskReason::Inactive { .. })))
        .map(|l| l.learner.as_str())
        .collect();
    let dropouts: Vec<&str> = d.learners.iter().filter(|l| l.dropout_after.is_some()).map(|l| l.id.as_str()).collect();
    eprintln!(
        "demo: {} dropouts, {} flagged inactive, {} at risk, {} active",
        dropouts.len(),
        inactive.len(),
        risk.learners.len(),
        learners.len()
    );
    assert!(!dropouts.is_empty());
    for l in &dropouts {
        assert!(inactive.contains(l), "dropout {l} not flagged");
    }

    // item statistics: items discriminate on average
    let stats = analytics::item_statistics(&ResponseMatrix::from_events(&log.events), &ItemFlagOptions::default())
        .expect("stats");
    let rs: Vec<f64> =
        stats.iter().filter(|s| s.responses >= 20).filter_map(|s| s.point_biserial_uncorrected).collect();
    let mean_r = mean(&rs);
    eprintln!("demo: {} items with ≥ 20 answers, mean uncorrected point-biserial {mean_r:.3}", rs.len());
    assert!(!rs.is_empty() && mean_r > 0.0);
}
