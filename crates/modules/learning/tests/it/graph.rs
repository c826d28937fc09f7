//! Tests of `plexus_learning::graph`: course validation and recommendations.

use std::collections::{BTreeMap, BTreeSet};

use plexus_learning::graph::{
    self, ContentFormat, ContentItem, Course, GraphError, LearnerState, LearningPath, LearningStyle, RecommendRequest,
    Skill, TargetDifficulty,
};
use proptest::prelude::*;

use ContentFormat::{Exercise, Interactive, Quiz, Text, Video};

fn skill(id: &str, prerequisites: &[&str]) -> Skill {
    Skill::new(id, format!("Skill {id}"), "math").with_prerequisites(prerequisites.iter().copied())
}

fn item(id: &str, skill: &str, format: ContentFormat, difficulty: f64) -> ContentItem {
    ContentItem::new(id, format!("Content {id}"), skill, format, difficulty, 10.0)
}

fn course(skills: Vec<Skill>, content: Vec<ContentItem>) -> Course {
    Course::new(skills, content).expect("a valid course")
}

fn learner(mastery: &[(&str, f64)], theta: f64) -> LearnerState {
    LearnerState {
        mastery: mastery.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        theta,
        ..LearnerState::default()
    }
}

/// Recommends and checks the content ids of the path, in order.
fn check(course: &Course, learner: &LearnerState, request: &RecommendRequest, expect: &[&str]) -> LearningPath {
    let path = graph::recommend(course, learner, request).expect("a path");
    let got: Vec<&str> = path.steps.iter().map(|s| s.content.id.as_str()).collect();
    assert_eq!(
        got,
        expect,
        "path for {request:?}; reasons: {:#?}",
        path.steps.iter().map(|s| &s.reason).collect::<Vec<_>>()
    );
    for (i, s) in path.steps.iter().enumerate() {
        assert_eq!(s.position, i + 1);
        assert_eq!(s.content.skill, s.skill);
    }
    path
}

/// a → b, (b, c) → d. b has the lowest mastery but needs a; once a is
/// (assumed) mastered b comes first, then c, then d, which needed b and c.
#[test]
fn prerequisites_gate_and_lowest_mastery_goes_first() {
    let c = course(
        vec![skill("d", &["b", "c"]), skill("c", &[]), skill("b", &["a"]), skill("a", &[])],
        vec![
            item("a1", "a", Video, 0.0),
            item("b1", "b", Video, 0.0),
            item("c1", "c", Video, 0.0),
            item("d1", "d", Video, 0.0),
        ],
    );
    let l = learner(&[("a", 0.3), ("b", 0.1), ("c", 0.6), ("d", 0.05)], 0.0);
    let path = check(&c, &l, &RecommendRequest::default(), &["a1", "b1", "c1", "d1"]);
    let unlocked: Vec<Vec<usize>> = path.steps.iter().map(|s| s.unlocked_by.clone()).collect();
    assert_eq!(unlocked, vec![vec![], vec![1], vec![], vec![2, 3]]);
    assert_eq!(path.steps.iter().map(|s| s.mastery).collect::<Vec<_>>(), vec![0.3, 0.1, 0.6, 0.05]);
    assert_eq!(path.total_minutes, 40.0);
    let blocked: Vec<(&str, Vec<&str>, Option<usize>)> = path
        .blocked
        .iter()
        .map(|b| (b.skill.as_str(), b.missing.iter().map(|m| m.skill.as_str()).collect(), b.unlocked_at_step))
        .collect();
    assert_eq!(blocked, vec![("b", vec!["a"], Some(1)), ("d", vec!["b", "c"], Some(3))]);
    assert_eq!(path.blocked[0].missing[0].mastery, 0.3);
    assert_eq!(
        path.steps[1].reason,
        "lowest mastery (0.10) among skills whose prerequisites are mastered (after step 1); \
         difficulty 0.00 closest to your ability 0.00"
    );
    assert!(path.steps[3].reason.contains("(after steps 2, 3)"), "{}", path.steps[3].reason);

    // only two steps: d stays blocked by its prerequisites
    let short = check(&c, &l, &RecommendRequest { max_steps: 2, ..RecommendRequest::default() }, &["a1", "b1"]);
    assert_eq!(short.blocked[1].unlocked_at_step, None);
}

/// Mastered skills (p ≥ threshold) are skipped and reported; the threshold is the request's.
#[test]
fn mastered_skills_are_skipped() {
    let c = course(
        vec![skill("a", &[]), skill("b", &["a"]), skill("c", &[])],
        vec![item("a1", "a", Text, 0.0), item("b1", "b", Text, 0.0), item("c1", "c", Text, 0.0)],
    );
    let l = learner(&[("a", 0.96), ("b", 0.5), ("c", 0.7)], 0.0);
    let path = check(&c, &l, &RecommendRequest::default(), &["b1", "c1"]);
    assert!(path.blocked.is_empty(), "a is mastered, so b is not blocked");
    assert_eq!(path.mastered.iter().map(|s| s.skill.as_str()).collect::<Vec<_>>(), vec!["a"]);
    let strict = RecommendRequest { mastery_threshold: 0.97, ..RecommendRequest::default() };
    let path = check(&c, &l, &strict, &["c1", "a1", "b1"]);
    // a (0.96) is now unmastered but c (0.7) is lower and also unlocked; b needs a
    assert_eq!(path.blocked.len(), 1);
    assert!(path.mastered.is_empty());
}

/// Missing skills count at the prior; equal masteries go by id.
#[test]
fn ties_break_by_id_and_missing_mastery_is_the_prior() {
    let c = course(
        vec![skill("z", &[]), skill("m", &[]), skill("b", &[]), skill("k", &[])],
        vec![
            item("z1", "z", Text, 0.0),
            item("m1", "m", Text, 0.0),
            item("b1", "b", Text, 0.0),
            item("k1", "k", Text, 0.0),
        ],
    );
    // k at 0.25 is above the prior 0.2 of the others
    let l = learner(&[("k", 0.25)], 0.0);
    check(&c, &l, &RecommendRequest::default(), &["b1", "m1", "z1", "k1"]);
    let l = LearnerState { prior: 0.3, ..learner(&[("k", 0.25)], 0.0) };
    check(&c, &l, &RecommendRequest::default(), &["k1", "b1", "m1", "z1"]);
    check(&c, &l, &RecommendRequest { max_steps: 2, ..RecommendRequest::default() }, &["k1", "b1"]);
}

/// Difficulty: closest `b` to θ, or to the requested level or number.
#[test]
fn difficulty_matches_ability_or_request() {
    let c = course(
        vec![skill("x", &[])],
        vec![item("x-easy", "x", Text, -1.0), item("x-mid", "x", Text, 0.2), item("x-hard", "x", Text, 1.5)],
    );
    let l = learner(&[], 0.1);
    let cases: Vec<(Option<TargetDifficulty>, &str, f64)> = vec![
        (None, "x-mid", 0.1),
        (Some(TargetDifficulty::Medium), "x-mid", 0.1),
        (Some(TargetDifficulty::Easy), "x-easy", -0.9),
        (Some(TargetDifficulty::Hard), "x-hard", 1.1),
        (Some(TargetDifficulty::Value(0.9)), "x-hard", 0.9),
        (Some(TargetDifficulty::Value(0.8)), "x-mid", 0.8),
        (Some(TargetDifficulty::Value(-5.0)), "x-easy", -5.0),
    ];
    for (difficulty, want, target) in cases {
        let path = check(&c, &l, &RecommendRequest { difficulty, ..RecommendRequest::default() }, &[want]);
        assert!((path.steps[0].target_difficulty - target).abs() < 1e-12, "{difficulty:?}");
    }
    // several steps per skill: by distance from θ = 0.1
    let r = RecommendRequest { steps_per_skill: 3, ..RecommendRequest::default() };
    let path = check(&c, &l, &r, &["x-mid", "x-easy", "x-hard"]);
    assert_eq!(
        path.steps[1].reason,
        "continues Skill x (2 of 3 for this skill); difficulty -1.00 within 0.1 of the closest to your ability 0.10"
    );
    let path = check(
        &c,
        &l,
        &RecommendRequest { difficulty: Some(TargetDifficulty::Hard), ..RecommendRequest::default() },
        &["x-hard"],
    );
    assert_eq!(
        path.steps[0].reason,
        "lowest mastery (0.20) among skills whose prerequisites are mastered; \
         difficulty 1.50 closest to the hard target 1.10 (ability 0.10)"
    );
}

/// Format preference breaks ties within the difficulty tolerance and never
/// buys a difficulty further away.
#[test]
fn format_preference_is_only_a_tie_break() {
    let c = course(
        vec![skill("y", &[])],
        vec![item("y-video", "y", Video, 0.20), item("y-text", "y", Text, 0.28), item("y-quiz", "y", Quiz, 0.9)],
    );
    let l = learner(&[("y", 0.31)], 0.2);
    let req = |formats: Vec<ContentFormat>, tol: f64| RecommendRequest {
        preferred_formats: formats,
        difficulty_tolerance: tol,
        ..RecommendRequest::default()
    };
    check(&c, &l, &req(vec![], 0.1), &["y-video"]);
    let p = check(&c, &l, &req(vec![Text], 0.1), &["y-text"]);
    assert!(p.steps[0].preferred_format);
    assert_eq!(
        p.steps[0].reason,
        "lowest mastery (0.31) among skills whose prerequisites are mastered; \
         difficulty 0.28 within 0.1 of the closest to your ability 0.20; preferred format text"
    );
    let p = check(&c, &l, &req(vec![Quiz], 0.1), &["y-video"]);
    assert!(!p.steps[0].preferred_format);
    assert!(p.steps[0].reason.ends_with("; no preferred format near this difficulty"), "{}", p.steps[0].reason);
    check(&c, &l, &req(vec![Quiz, Text], 0.1), &["y-text"]);
    check(&c, &l, &req(vec![Text], 0.0), &["y-video"]);
    check(&c, &l, &req(vec![Quiz], 0.7), &["y-quiz"]);
    check(&c, &l, &RecommendRequest::default().with_style(LearningStyle::Reading), &["y-text"]);
    check(&c, &l, &RecommendRequest::default().with_style(LearningStyle::Visual), &["y-video"]);

    // an exact tie: by id without a preference, by format with one
    let c = course(vec![skill("z", &[])], vec![item("z-b", "z", Text, 0.5), item("z-a", "z", Video, 0.5)]);
    check(&c, &l, &req(vec![], 0.0), &["z-a"]);
    check(&c, &l, &req(vec![Text], 0.0), &["z-b"]);
    check(&c, &l, &req(vec![Exercise, Interactive], 0.0), &["z-a"]);
}

/// Completed content is never recommended; a skill without content left is
/// reported and its dependents stay blocked.
#[test]
fn completed_content_is_skipped() {
    let c = course(
        vec![skill("y", &[]), skill("w", &["y"])],
        vec![item("y-video", "y", Video, 0.2), item("y-text", "y", Text, 0.28), item("w1", "w", Text, 0.0)],
    );
    let mut l = learner(&[], 0.2);
    l.completed.insert("y-video".to_owned());
    check(&c, &l, &RecommendRequest::default(), &["y-text", "w1"]);
    l.completed.insert("y-text".to_owned());
    let path = check(&c, &l, &RecommendRequest::default(), &[]);
    assert_eq!(path.without_content.iter().map(|s| s.skill.as_str()).collect::<Vec<_>>(), vec!["y"]);
    assert_eq!(path.blocked.len(), 1);
    assert_eq!(path.blocked[0].skill, "w");
    assert_eq!(path.blocked[0].unlocked_at_step, None);
    assert_eq!(path.total_minutes, 0.0);
    // unknown ids in the learner state are ignored
    l.completed.insert("elsewhere".to_owned());
    l.mastery.insert("other-course".to_owned(), 0.5);
    check(&c, &l, &RecommendRequest::default(), &[]);
}

/// The subject filter limits what is recommended; prerequisites of another
/// subject still gate.
#[test]
fn subject_filter() {
    let c = course(
        vec![
            Skill::new("alg1", "Equations", "algebra"),
            Skill::new("geo1", "Coordinates", "geometry").with_prerequisites(["alg1"]),
            Skill::new("geo2", "Angles", "geometry"),
        ],
        vec![item("alg1-c", "alg1", Text, 0.0), item("geo1-c", "geo1", Text, 0.0), item("geo2-c", "geo2", Text, 0.0)],
    );
    let l = learner(&[("geo1", 0.1)], 0.0);
    let geo = RecommendRequest { subject: Some("geometry".to_owned()), ..RecommendRequest::default() };
    let path = check(&c, &l, &geo, &["geo2-c"]);
    assert_eq!(path.blocked.len(), 1);
    assert_eq!((path.blocked[0].skill.as_str(), path.blocked[0].missing[0].skill.as_str()), ("geo1", "alg1"));
    assert_eq!(path.blocked[0].unlocked_at_step, None);
    check(&c, &l, &RecommendRequest::default(), &["alg1-c", "geo1-c", "geo2-c"]);
    let err = graph::recommend(
        &c,
        &l,
        &RecommendRequest { subject: Some("history".to_owned()), ..RecommendRequest::default() },
    )
    .expect_err("unknown subject");
    assert_eq!(err, GraphError::UnknownSubject("history".to_owned()));
    assert_eq!(c.subjects(), vec!["algebra", "geometry"]);
}

/// Japanese ids, names and titles.
#[test]
fn japanese_course() {
    let c = course(
        vec![
            Skill::new("一次方程式", "一次方程式", "代数").with_prerequisites(["文字式"]),
            Skill::new("文字式", "文字式", "代数").with_translation("en", "Algebraic expressions"),
            Skill::new("連立方程式", "連立方程式", "代数").with_prerequisites(["一次方程式"]),
        ],
        vec![
            ContentItem::new("文字式-動画", "文字式の入門", "文字式", Video, -0.5, 12.0),
            ContentItem::new("一次方程式-演習", "一次方程式の練習", "一次方程式", Exercise, 0.1, 15.0),
            ContentItem::new("連立方程式-テキスト", "連立方程式の解き方", "連立方程式", Text, 0.6, 8.5),
        ],
    );
    let l = learner(&[("文字式", 0.4), ("一次方程式", 0.1)], -0.2);
    let path = check(
        &c,
        &l,
        &RecommendRequest { subject: Some("代数".to_owned()), ..RecommendRequest::default() },
        &["文字式-動画", "一次方程式-演習", "連立方程式-テキスト"],
    );
    assert_eq!(path.total_minutes, 35.5);
    assert_eq!(path.steps[1].skill_name, "一次方程式");
    assert_eq!(
        path.blocked.iter().map(|b| (b.skill.as_str(), b.missing[0].skill.as_str())).collect::<Vec<_>>(),
        vec![("一次方程式", "文字式"), ("連立方程式", "一次方程式")]
    );
    let json = serde_json::to_string(&c).expect("json");
    assert!(json.contains("\"文字式の入門\""), "{json}");
    assert_eq!(serde_json::from_str::<Course>(&json).expect("round trip"), c);
}

/// A reason with every part, as the brief's example.
#[test]
fn reason_text() {
    let c = course(
        vec![skill("s", &[]), skill("t", &[])],
        vec![item("s-video", "s", Video, 0.2), item("s-text", "s", Text, 0.6), item("t1", "t", Text, 0.0)],
    );
    let l = LearnerState { theta_se: Some(0.3), ..learner(&[("s", 0.31), ("t", 0.5)], 0.1) };
    let path = check(
        &c,
        &l,
        &RecommendRequest { preferred_formats: vec![Video], max_steps: 1, ..RecommendRequest::default() },
        &["s-video"],
    );
    assert_eq!(
        path.steps[0].reason,
        "lowest mastery (0.31) among skills whose prerequisites are mastered; \
         difficulty 0.20 closest to your ability 0.10 ± 0.30; preferred format video"
    );
    let path = check(
        &c,
        &l,
        &RecommendRequest {
            difficulty: Some(TargetDifficulty::Value(0.7)),
            max_steps: 1,
            ..RecommendRequest::default()
        },
        &["s-text"],
    );
    assert_eq!(
        path.steps[0].reason,
        "lowest mastery (0.31) among skills whose prerequisites are mastered; \
         difficulty 0.60 closest to the requested difficulty 0.70"
    );
}

/// Validation errors, each precise.
#[test]
fn course_validation_errors() {
    let ok_skills = || vec![skill("a", &[]), skill("b", &["a"])];
    let cases: Vec<(Vec<Skill>, Vec<ContentItem>, GraphError, &str)> = vec![
        (
            vec![skill("a", &[]), skill("", &[])],
            vec![],
            GraphError::EmptyId { kind: "skill", index: 1 },
            "skill at position 1 has an empty id",
        ),
        (
            vec![Skill::new("a", "  ", "math")],
            vec![],
            GraphError::EmptyField { kind: "skill", id: "a".into(), field: "name" },
            "skill `a`: name must not be empty",
        ),
        (
            vec![skill("a", &[]), skill("b", &[]), skill("a", &[])],
            vec![],
            GraphError::DuplicateId { kind: "skill", id: "a".into(), first: 0, second: 2 },
            "duplicate skill id `a` at positions 0 and 2",
        ),
        (
            vec![skill("a", &["zz"])],
            vec![],
            GraphError::UnknownPrerequisite { skill: "a".into(), prerequisite: "zz".into() },
            "skill `a` has unknown prerequisite `zz`",
        ),
        (
            vec![skill("a", &[]), skill("b", &["a", "a"])],
            vec![],
            GraphError::DuplicatePrerequisite { skill: "b".into(), prerequisite: "a".into() },
            "skill `b` lists prerequisite `a` more than once",
        ),
        (
            ok_skills(),
            vec![item("c1", "a", Video, 0.0), item("c2", "nope", Video, 0.0)],
            GraphError::UnknownSkill { content: "c2".into(), skill: "nope".into() },
            "content `c2` refers to unknown skill `nope`",
        ),
        (
            ok_skills(),
            vec![item("c1", "a", Video, 0.0), item("c1", "b", Video, 0.0)],
            GraphError::DuplicateId { kind: "content", id: "c1".into(), first: 0, second: 1 },
            "duplicate content id `c1` at positions 0 and 1",
        ),
        (
            ok_skills(),
            vec![ContentItem::new("c1", "", "a", Video, 0.0, 1.0)],
            GraphError::EmptyField { kind: "content", id: "c1".into(), field: "title" },
            "content `c1`: title must not be empty",
        ),
        (
            ok_skills(),
            vec![ContentItem::new("c1", "t", "a", Video, 0.0, -5.0)],
            GraphError::InvalidNumber {
                content: "c1".into(),
                field: "duration_minutes",
                rule: "a finite number ≥ 0",
                value: -5.0,
            },
            "content `c1`: duration_minutes must be a finite number ≥ 0, got -5",
        ),
        (
            ok_skills(),
            vec![ContentItem::new("c1", "t", "a", Video, f64::INFINITY, 1.0)],
            GraphError::InvalidNumber {
                content: "c1".into(),
                field: "difficulty",
                rule: "a finite number",
                value: f64::INFINITY,
            },
            "content `c1`: difficulty must be a finite number, got inf",
        ),
        (
            vec![skill("a", &["c"]), skill("b", &["a"]), skill("c", &["b"])],
            vec![],
            GraphError::Cycle { cycle: vec!["a".into(), "c".into(), "b".into(), "a".into()] },
            "prerequisite cycle: a → c → b → a (each skill requires the next)",
        ),
        (
            vec![skill("x", &["x"])],
            vec![],
            GraphError::Cycle { cycle: vec!["x".into(), "x".into()] },
            "prerequisite cycle: x → x (each skill requires the next)",
        ),
        (
            // the cycle does not include the skill the search starts from; it starts at its smallest id
            vec![skill("r", &["q"]), skill("q", &["p"]), skill("p", &["o"]), skill("o", &["q"])],
            vec![],
            GraphError::Cycle { cycle: vec!["o".into(), "q".into(), "p".into(), "o".into()] },
            "prerequisite cycle: o → q → p → o (each skill requires the next)",
        ),
        (
            vec![
                Skill::new("関数", "関数", "代数").with_prerequisites(["二次関数"]),
                Skill::new("二次関数", "二次関数", "代数").with_prerequisites(["関数"]),
            ],
            vec![],
            GraphError::Cycle { cycle: vec!["二次関数".into(), "関数".into(), "二次関数".into()] },
            "prerequisite cycle: 二次関数 → 関数 → 二次関数 (each skill requires the next)",
        ),
    ];
    for (skills, content, want, message) in cases {
        let err = Course::new(skills, content).expect_err("invalid");
        assert_eq!(err, want);
        assert_eq!(err.to_string(), message);
    }
    let err = Course::new(ok_skills(), vec![ContentItem::new("c1", "t", "a", Video, f64::NAN, 1.0)]).expect_err("NaN");
    assert!(matches!(err, GraphError::InvalidNumber { field: "difficulty", value, .. } if value.is_nan()), "{err}");
}

/// JSON import validates like [`Course::new`]; formats and difficulties parse.
#[test]
fn json_import_and_parsing() {
    let json = r#"{"skills": [{"id": "a", "name": "A", "subject": "math"}, {"id": "b", "name": "B", "prerequisites": ["a"]}],
                   "content": [{"id": "c", "title": "C", "skill": "b", "difficulty": 0.5, "duration_minutes": 7, "format": "interactive",
                                "translations": {"ja": "シー"}}]}"#;
    let c: Course = serde_json::from_str(json).expect("course");
    assert_eq!(c.content_item("c").map(|x| x.format), Some(Interactive));
    assert_eq!(c.content_for("b").len(), 1);
    assert!(c.content_for("zz").is_empty());
    let cyclic = r#"{"skills": [{"id": "a", "name": "A", "prerequisites": ["b"]}, {"id": "b", "name": "B", "prerequisites": ["a"]}]}"#;
    let err = serde_json::from_str::<Course>(cyclic).expect_err("cycle").to_string();
    assert!(err.contains("prerequisite cycle: a → b → a"), "{err}");
    let bad_format = json.replace("interactive", "podcast");
    let err = serde_json::from_str::<Course>(&bad_format).expect_err("format").to_string();
    assert!(err.contains("podcast"), "{err}");
    let unknown_field = json.replace("\"subject\"", "\"subjet\"");
    assert!(serde_json::from_str::<Course>(&unknown_field).is_err());

    assert_eq!(" Video ".parse::<ContentFormat>(), Ok(Video));
    assert_eq!("podcast".parse::<ContentFormat>(), Err(GraphError::UnknownFormat("podcast".into())));
    for f in ContentFormat::ALL {
        assert_eq!(f.to_string().parse::<ContentFormat>(), Ok(f));
        assert_eq!(serde_json::to_string(&f).expect("json"), format!("\"{f}\""));
    }
    assert_eq!("HARD".parse::<TargetDifficulty>(), Ok(TargetDifficulty::Hard));
    assert_eq!("-0.75".parse::<TargetDifficulty>(), Ok(TargetDifficulty::Value(-0.75)));
    assert_eq!("inf".parse::<TargetDifficulty>(), Err(GraphError::UnknownDifficulty("inf".into())));
    assert_eq!("tough".parse::<TargetDifficulty>(), Err(GraphError::UnknownDifficulty("tough".into())));
    let r: RecommendRequest =
        serde_json::from_str(r#"{"difficulty": "easy", "preferred_formats": ["video"], "max_steps": 3}"#)
            .expect("request");
    assert_eq!((r.difficulty, r.max_steps, r.mastery_threshold), (Some(TargetDifficulty::Easy), 3, 0.95));
    let r: RecommendRequest = serde_json::from_str(r#"{"difficulty": 1.25}"#).expect("request");
    assert_eq!(r.difficulty, Some(TargetDifficulty::Value(1.25)));
    assert!(serde_json::from_str::<RecommendRequest>(r#"{"difficulty": "tough"}"#).is_err());
    assert_eq!(serde_json::to_string(&TargetDifficulty::Medium).expect("json"), "\"medium\"");
    assert_eq!(
        "kinesthetic".parse::<LearningStyle>().map(LearningStyle::formats),
        Ok(vec![Interactive, Exercise, ContentFormat::Project])
    );
    assert!("smell".parse::<LearningStyle>().is_err());
}

/// Invalid learner states and requests are refused with the reason.
#[test]
fn learner_and_request_validation() {
    let c = course(vec![skill("a", &[])], vec![item("a1", "a", Text, 0.0)]);
    let ok = RecommendRequest::default();
    let bad_learners = [
        (learner(&[("a", 1.5)], 0.0), "invalid learner state: mastery of `a` must be in [0, 1], got 1.5"),
        (learner(&[], f64::NAN), "invalid learner state: theta must be finite, got NaN"),
        (
            LearnerState { theta_se: Some(0.0), ..LearnerState::default() },
            "invalid learner state: theta_se must be finite and > 0, got 0",
        ),
        (
            LearnerState { prior: -0.1, ..LearnerState::default() },
            "invalid learner state: prior must be in [0, 1], got -0.1",
        ),
    ];
    for (l, message) in bad_learners {
        assert_eq!(graph::recommend(&c, &l, &ok).expect_err("invalid").to_string(), message);
    }
    let l = LearnerState::default();
    let bad_requests = [
        (RecommendRequest { mastery_threshold: 0.0, ..ok.clone() }, "mastery_threshold must be in (0, 1], got 0"),
        (RecommendRequest { max_steps: 0, ..ok.clone() }, "max_steps must be at least 1"),
        (RecommendRequest { steps_per_skill: 0, ..ok.clone() }, "steps_per_skill must be at least 1"),
        (
            RecommendRequest { difficulty_tolerance: -1.0, ..ok.clone() },
            "difficulty_tolerance must be finite and ≥ 0, got -1",
        ),
        (
            RecommendRequest { difficulty: Some(TargetDifficulty::Value(f64::NAN)), ..ok.clone() },
            "the target difficulty must be finite, got NaN",
        ),
    ];
    for (r, message) in bad_requests {
        assert_eq!(graph::recommend(&c, &l, &r).expect_err("invalid"), GraphError::InvalidRequest(message.to_owned()));
    }
}

/// Topological order: prerequisites first, ties by id; ancestors in that order.
#[test]
fn topological_order_and_ancestors() {
    let c = course(
        vec![skill("d", &["b", "c"]), skill("c", &[]), skill("b", &["a"]), skill("a", &[]), skill("e", &[])],
        vec![],
    );
    let order: Vec<&str> = c.topological_order().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, vec!["a", "b", "c", "d", "e"]);
    let anc: Vec<&str> = c.ancestors("d").expect("d").iter().map(|s| s.id.as_str()).collect();
    assert_eq!(anc, vec!["a", "b", "c"]);
    assert!(c.ancestors("a").expect("a").is_empty());
    assert_eq!(c.ancestors("zz").expect_err("unknown"), GraphError::SkillNotFound("zz".into()));
    assert_eq!(c.skill("b").map(|s| s.prerequisites.clone()), Some(vec!["a".to_owned()]));
}

// ---------------------------------------------------------------------------
// Properties

#[derive(Debug, Clone)]
struct Case {
    skills: Vec<Skill>,
    content: Vec<ContentItem>,
    learner: LearnerState,
    request: RecommendRequest,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..10)
        .prop_flat_map(|n| {
            let mastery = prop::collection::vec(
                prop_oneof![Just(None), (0.0..1.0f64).prop_map(Some), Just(Some(0.97)), Just(Some(0.95))],
                n,
            );
            let content =
                prop::collection::vec(prop::collection::vec((-20i32..20, 0usize..5, 0u32..30, any::<bool>()), 0..4), n);
            let request = (
                1usize..8,
                1usize..3,
                prop::collection::vec(0usize..5, 0..3),
                prop_oneof![
                    Just(None),
                    Just(Some(TargetDifficulty::Easy)),
                    Just(Some(TargetDifficulty::Hard)),
                    (-2.0..2.0f64).prop_map(|v| Some(TargetDifficulty::Value(v)))
                ],
                prop_oneof![Just(0.0), Just(0.1), Just(0.5)],
                prop_oneof![Just(0.95), Just(0.5)],
            );
            (
                prop::collection::vec(any::<u16>(), n),
                mastery,
                content,
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                request,
                -2.0..2.0f64,
            )
        })
        .prop_map(|(masks, mastery, content, names, request, theta)| {
            let formats = [Video, Text, Interactive, Exercise, Quiz];
            let id = |i: usize| format!("s{}", names[i]);
            let n = masks.len();
            let skills: Vec<Skill> = (0..n)
                .map(|i| {
                    let prereqs: Vec<String> = (0..i).filter(|j| masks[i] & (1 << j) != 0).map(id).collect();
                    Skill::new(id(i), format!("skill {i}"), "math").with_prerequisites(prereqs)
                })
                .collect();
            let mut items = Vec::new();
            let mut completed = BTreeSet::new();
            for (i, list) in content.iter().enumerate() {
                for (k, &(b, f, minutes, done)) in list.iter().enumerate() {
                    let cid = format!("{}-c{k}", id(i));
                    if done {
                        completed.insert(cid.clone());
                    }
                    items.push(ContentItem::new(
                        cid,
                        "content",
                        id(i),
                        formats[f],
                        f64::from(b) / 10.0,
                        f64::from(minutes),
                    ));
                }
            }
            let mastery: BTreeMap<String, f64> =
                mastery.iter().enumerate().filter_map(|(i, m)| m.map(|v| (id(i), v))).collect();
            let (max_steps, steps_per_skill, prefs, difficulty, tol, threshold) = request;
            Case {
                skills,
                content: items,
                learner: LearnerState { mastery, theta, completed, ..LearnerState::default() },
                request: RecommendRequest {
                    max_steps,
                    steps_per_skill,
                    preferred_formats: prefs.into_iter().map(|f| formats[f]).collect(),
                    difficulty,
                    difficulty_tolerance: tol,
                    mastery_threshold: threshold,
                    ..RecommendRequest::default()
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A path never includes a skill with an unmastered prerequisite that is
    /// not earlier in the path, never a mastered skill, never completed or
    /// repeated content; it stops early only when nothing is left to study;
    /// and it does not depend on the order of the input lists.
    #[test]
    fn paths_respect_prerequisites(case in case()) {
        let course = Course::new(case.skills.clone(), case.content.clone()).expect("acyclic by construction");
        let l = &case.learner;
        let r = &case.request;
        let path = graph::recommend(&course, l, r).expect("path");
        let mastered = |id: &str| l.mastery_of(id) >= r.mastery_threshold;
        prop_assert!(path.steps.len() <= r.max_steps);
        let mut earlier: Vec<String> = Vec::new();
        let mut used = BTreeSet::new();
        let mut run = 0;
        for (i, step) in path.steps.iter().enumerate() {
            prop_assert_eq!(step.position, i + 1);
            prop_assert!(!mastered(&step.skill), "{} is mastered", step.skill);
            prop_assert!(!l.completed.contains(&step.content.id));
            prop_assert!(used.insert(step.content.id.clone()), "repeated {}", step.content.id);
            prop_assert_eq!(&step.content.skill, &step.skill);
            let skill = course.skill(&step.skill).expect("skill");
            for p in &skill.prerequisites {
                prop_assert!(mastered(p) || earlier.contains(p), "{} before its prerequisite {}", step.skill, p);
            }
            // a skill's steps are consecutive, at most steps_per_skill of them
            if earlier.last() == Some(&step.skill) {
                run += 1;
            } else {
                prop_assert!(!earlier.contains(&step.skill), "{} split", step.skill);
                run = 1;
            }
            prop_assert!(run <= r.steps_per_skill);
            earlier.push(step.skill.clone());
        }
        let total: f64 = path.steps.iter().map(|s| s.content.duration_minutes).sum();
        prop_assert!((path.total_minutes - total).abs() < 1e-9);
        for b in &path.blocked {
            prop_assert!(!mastered(&b.skill));
            prop_assert!(!b.missing.is_empty());
            prop_assert!(b.missing.iter().all(|m| !mastered(&m.skill)));
        }
        // stopped early: every skill left that is studiable has no content left
        if path.steps.len() < r.max_steps {
            let done: BTreeSet<&str> = course
                .skills()
                .iter()
                .map(|s| s.id.as_str())
                .filter(|id| mastered(id) || earlier.iter().any(|e| e == id))
                .collect();
            for s in course.skills() {
                if done.contains(s.id.as_str()) || !s.prerequisites.iter().all(|p| done.contains(p.as_str())) {
                    continue;
                }
                let left = course.content_for(&s.id).iter().filter(|c| !l.completed.contains(&c.id) && !used.contains(&c.id)).count();
                prop_assert_eq!(left, 0, "{} could still be studied", s.id);
                prop_assert!(path.without_content.iter().any(|w| w.skill == s.id));
            }
        }
        // the order of the inputs does not matter
        let mut skills = case.skills.clone();
        skills.reverse();
        let mut content = case.content.clone();
        content.reverse();
        let reversed = Course::new(skills, content).expect("same course");
        prop_assert_eq!(graph::recommend(&reversed, l, r).expect("path"), path);
    }

    /// Adding a cycle to a valid course is always rejected, naming a cycle
    /// whose edges are prerequisites.
    #[test]
    fn cycles_are_rejected_and_named(case in case(), from in any::<prop::sample::Index>(), to in any::<prop::sample::Index>()) {
        let mut skills = case.skills.clone();
        let n = skills.len();
        let (a, b) = (from.index(n), to.index(n));
        let (lo, hi) = (a.min(b), a.max(b));
        // lo gets hi as a prerequisite: with the edges to earlier skills this closes a cycle iff hi reaches lo
        let hi_id = skills[hi].id.clone();
        if !skills[lo].prerequisites.contains(&hi_id) {
            skills[lo].prerequisites.push(hi_id);
        }
        let reaches = {
            let course = Course::new(case.skills.clone(), Vec::new()).expect("valid");
            lo == hi || course.ancestors(&skills[hi].id).expect("known").iter().any(|s| s.id == skills[lo].id)
        };
        match Course::new(skills.clone(), Vec::new()) {
            Ok(_) => prop_assert!(!reaches),
            Err(GraphError::Cycle { cycle }) => {
                prop_assert!(reaches);
                prop_assert!(cycle.len() >= 2);
                prop_assert_eq!(cycle.first(), cycle.last());
                let smallest = cycle.iter().min().expect("non-empty");
                prop_assert_eq!(&cycle[0], smallest);
                for w in cycle.windows(2) {
                    let s = skills.iter().find(|s| s.id == w[0]).expect("in the course");
                    prop_assert!(s.prerequisites.contains(&w[1]), "{} does not require {}", w[0], w[1]);
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}
