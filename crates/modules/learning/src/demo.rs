//! Seeded demo course and learners.
//!
//! [`generate`] builds, from a [`DemoSpec`] and its seed alone:
//! - a [`Course`] over two subjects, algebra (代数) and geometry (幾何),
//!   with 5–15 skills each (English names, Japanese in
//!   `translations["ja"]`); each skill requires one or two earlier skills of
//!   its subject, and some geometry skills (at least the middle one) also
//!   require an algebra skill;
//!   skills get harder along the sequence (a level from −1.5 to +1.5 on the
//!   `b` scale);
//! - content per skill in distinct formats, spread around the skill's level;
//! - a 2PL [`ItemBank`] drawn by [`crate::sim::synthetic_bank`], shifted to
//!   each skill's level and tagged with the skill (`Item::skill`);
//! - learners with a true ability θ ~ N(0, 1), the skills they know at the
//!   start (a skill only if its prerequisites are known, with probability
//!   `σ(1.7 (θ − level − 0.5))`), a learning rate, an engagement (chance of
//!   a session on a given day) and, for about one in five, a point at
//!   which they drop out.
//!
//! [`simulate_activity`] then runs each learner day by day: a session asks
//! [`crate::graph::recommend`] for the next content (with the learner's BKT
//! estimates, updated after every answer, as the mastery), completes it,
//! and answers items of its skill drawn from the bank. An answer is correct
//! with the IRT probability at `θ + 1` when the skill is truly known and at
//! `θ − 1` when not; content and answers teach an unknown skill with the
//! learner's learning rate. The events feed [`crate::analytics`] and,
//! through [`crate::analytics::answer_sequences`], [`crate::bkt::fit_em`].
//!
//! The same spec gives byte-identical output; another seed gives another demo.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::analytics::{Activity, ActivityEvent};
use crate::bkt::{BktError, SkillModel};
use crate::cat::{RandomSource, SplitMix64};
use crate::graph::{ContentFormat, ContentItem, Course, GraphError, LearnerState, RecommendRequest, Skill, recommend};
use crate::irt::{IrtError, Item, ItemBank};
use crate::sim::{BankSpec, synthetic_bank};

/// Errors of the demo generator.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A spec outside the supported ranges.
    #[error("invalid demo spec: {0}")]
    InvalidSpec(String),
    /// The generated course failed validation (a bug) or a recommendation failed.
    #[error("demo course: {0}")]
    Graph(#[from] GraphError),
    /// The generated item bank failed validation (a bug).
    #[error("demo item bank: {0}")]
    Irt(#[from] IrtError),
    /// Knowledge tracing failed (a bug).
    #[error("demo knowledge tracing: {0}")]
    Bkt(#[from] BktError),
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSpec {
    /// Seed of everything.
    pub seed: u64,
    /// Skills per subject, 5–15 (two subjects; default 8).
    pub skills_per_subject: usize,
    /// Content items per skill, 1–5, each in another format (default 4).
    pub content_per_skill: usize,
    /// Bank items per skill, 1–50 (default 6).
    pub items_per_skill: usize,
    /// Simulated learners, 1–10,000 (default 40).
    pub learners: usize,
}

impl Default for DemoSpec {
    fn default() -> Self {
        Self { seed: 2025, skills_per_subject: 8, content_per_skill: 4, items_per_skill: 6, learners: 40 }
    }
}

impl DemoSpec {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), DemoError> {
        let check = |name: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(DemoError::InvalidSpec(format!("{name} must be in {lo}..={hi}, got {v}")))
            }
        };
        check("skills_per_subject", self.skills_per_subject, 5, MAX_SKILLS)?;
        check("content_per_skill", self.content_per_skill, 1, FORMATS.len())?;
        check("items_per_skill", self.items_per_skill, 1, 50)?;
        check("learners", self.learners, 1, 10_000)
    }
}

/// A subject of the demo course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoSubject {
    /// The id used as [`Skill::subject`].
    pub id: String,
    /// English name.
    pub name: String,
    /// Japanese name.
    pub name_ja: String,
}

/// A simulated learner with known true parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoLearner {
    /// Id (`learner-001`, …).
    pub id: String,
    /// Display name.
    pub name: String,
    /// True ability.
    pub true_theta: f64,
    /// Skills truly known at the start.
    pub known_skills: BTreeSet<String>,
    /// Probability that a content item or an answer teaches an unknown skill.
    pub learn_rate: f64,
    /// Probability of a session on a given day.
    pub engagement: f64,
    /// Drops out after this fraction of the simulated period, if at all.
    pub dropout_after: Option<f64>,
}

/// A generated demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demo {
    /// The spec it was generated from.
    pub spec: DemoSpec,
    /// The two subjects.
    pub subjects: Vec<DemoSubject>,
    /// Skill levels (the centre of its content and items on the `b` scale), by skill id.
    pub skill_levels: BTreeMap<String, f64>,
    /// The course.
    pub course: Course,
    /// The item bank, items tagged by skill.
    pub bank: ItemBank,
    /// The learners.
    pub learners: Vec<DemoLearner>,
}

const MAX_SKILLS: usize = 15;

struct SubjectDef {
    id: &'static str,
    name: &'static str,
    name_ja: &'static str,
    skills: [(&'static str, &'static str); MAX_SKILLS],
}

const SUBJECTS: [SubjectDef; 2] = [
    SubjectDef {
        id: "algebra",
        name: "Algebra",
        name_ja: "代数",
        skills: [
            ("Integers", "整数"),
            ("Fractions", "分数"),
            ("Decimals", "小数"),
            ("Ratios", "比"),
            ("Algebraic expressions", "文字式"),
            ("Linear equations", "一次方程式"),
            ("Inequalities", "不等式"),
            ("Systems of equations", "連立方程式"),
            ("Functions", "関数"),
            ("Linear functions", "一次関数"),
            ("Polynomials", "多項式"),
            ("Factoring", "因数分解"),
            ("Square roots", "平方根"),
            ("Quadratic equations", "二次方程式"),
            ("Quadratic functions", "二次関数"),
        ],
    },
    SubjectDef {
        id: "geometry",
        name: "Geometry",
        name_ja: "幾何",
        skills: [
            ("Points and lines", "点と直線"),
            ("Angles", "角"),
            ("Triangles", "三角形"),
            ("Quadrilaterals", "四角形"),
            ("Circles", "円"),
            ("Area", "面積"),
            ("Volume", "体積"),
            ("Congruence", "合同"),
            ("Similarity", "相似"),
            ("Pythagorean theorem", "三平方の定理"),
            ("Coordinates", "座標"),
            ("Transformations", "図形の移動"),
            ("Trigonometric ratios", "三角比"),
            ("Vectors", "ベクトル"),
            ("Proofs", "証明"),
        ],
    },
];

const FORMATS: [(ContentFormat, &str, u32, u32); 5] = [
    (ContentFormat::Video, "動画", 6, 15),
    (ContentFormat::Text, "テキスト", 5, 12),
    (ContentFormat::Interactive, "インタラクティブ", 10, 20),
    (ContentFormat::Exercise, "演習", 10, 25),
    (ContentFormat::Quiz, "クイズ", 5, 10),
];

const PARTS: [(&str, &str); 5] = [
    ("introduction", "入門"),
    ("worked examples", "例題"),
    ("practice", "練習"),
    ("challenge", "発展"),
    ("review", "復習"),
];

const NAMES: [&str; 10] = [
    "佐藤 花",
    "Alex Morgan",
    "鈴木 大翔",
    "Sam Lee",
    "高橋 陽菜",
    "Jordan Kim",
    "田中 蓮",
    "Taylor Chen",
    "伊藤 結衣",
    "Riley Park",
];

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Generates a demo; see the [module documentation](self).
pub fn generate(spec: &DemoSpec) -> Result<Demo, DemoError> {
    spec.validate()?;
    let mut seeds = SplitMix64::new(spec.seed);
    let mut course_rng = SplitMix64::new(seeds.next_u64());
    let bank_seed = seeds.next_u64();
    let mut learner_rng = SplitMix64::new(seeds.next_u64());

    let n = spec.skills_per_subject;
    let mut skills = Vec::with_capacity(2 * n);
    let mut content = Vec::new();
    let mut levels: BTreeMap<String, f64> = BTreeMap::new();
    let skill_id = |subject: &str, i: usize| format!("{subject}-{:02}", i + 1);
    for (si, subject) in SUBJECTS.iter().enumerate() {
        for i in 0..n {
            let id = skill_id(subject.id, i);
            let (name, name_ja) = subject.skills[i];
            let level = round2(-1.5 + 3.0 * i as f64 / (n - 1) as f64);
            let mut prereqs: BTreeSet<usize> = BTreeSet::new();
            if i > 0 {
                prereqs.insert(i - 1 - course_rng.below(i.min(3)));
                if i >= 2 && course_rng.next_f64() < 0.4 {
                    prereqs.insert(course_rng.below(i));
                }
            }
            let mut prereq_ids: Vec<String> = prereqs.iter().map(|&j| skill_id(subject.id, j)).collect();
            // some geometry skills need algebra; the middle one always does
            if si == 1 && i >= 1 && (course_rng.next_f64() < 0.3 || i == n / 2) {
                prereq_ids.push(skill_id(SUBJECTS[0].id, course_rng.below((i + 1).min(n))));
            }
            skills.push(
                Skill::new(id.clone(), name, subject.id).with_prerequisites(prereq_ids).with_translation("ja", name_ja),
            );
            let m = spec.content_per_skill;
            for c in 0..m {
                let (format, format_ja, lo, hi) = FORMATS[(i + c + si) % FORMATS.len()];
                let spread = if m == 1 { 0.0 } else { -0.6 + 1.2 * c as f64 / (m - 1) as f64 };
                let difficulty = round2(level + spread + 0.15 * course_rng.standard_normal());
                let minutes = f64::from(lo) + course_rng.below((hi - lo + 1) as usize) as f64;
                let (part, part_ja) = PARTS[c];
                content.push(
                    ContentItem::new(
                        format!("{id}-c{}", c + 1),
                        format!("{name}: {part} ({format})"),
                        id.clone(),
                        format,
                        difficulty,
                        minutes,
                    )
                    .with_translation("ja", format!("{name_ja}：{part_ja}（{format_ja}）")),
                );
            }
            levels.insert(id, level);
        }
    }
    let course = Course::new(skills, content)?;

    // The bank: synthetic 2PL parameters, item i of skill s at position k·S + s.
    let s_count = course.skills().len();
    let k = spec.items_per_skill;
    let drawn = synthetic_bank(&BankSpec {
        items: s_count * k,
        a_log_mean: 0.2,
        a_log_sd: 0.25,
        b_mean: 0.0,
        b_sd: 0.5,
        c_max: 0.0,
        areas: Vec::new(),
        seed: bank_seed,
    })?;
    let mut items = Vec::with_capacity(s_count * k);
    for (s, skill) in course.skills().iter().enumerate() {
        let level = levels.get(&skill.id).copied().unwrap_or(0.0);
        for q in 0..k {
            let base = drawn.item(q * s_count + s)?;
            let mut item = Item::two_pl(format!("{}-q{:02}", skill.id, q + 1), base.a, round2(level + base.b))
                .with_skill(skill.id.clone());
            item.topic = skill.subject.clone();
            item.name = format!("{} Q{}", skill.name, q + 1);
            items.push(item);
        }
    }
    let bank = ItemBank::new(items)?;

    let topo: Vec<&Skill> = course.topological_order();
    let mut learners = Vec::with_capacity(spec.learners);
    for l in 0..spec.learners {
        let theta = learner_rng.standard_normal();
        let mut known: BTreeSet<String> = BTreeSet::new();
        for skill in &topo {
            let ready = skill.prerequisites.iter().all(|p| known.contains(p));
            let level = levels.get(&skill.id).copied().unwrap_or(0.0);
            let draw = learner_rng.next_f64();
            if ready && draw < sigmoid(1.7 * (theta - level - 0.5)) {
                known.insert(skill.id.clone());
            }
        }
        let engagement = 0.35 + 0.55 * learner_rng.next_f64();
        let dropout_after = if learner_rng.next_f64() < 0.2 { Some(0.1 + 0.4 * learner_rng.next_f64()) } else { None };
        let base = NAMES[l % NAMES.len()];
        let name = if l < NAMES.len() { base.to_owned() } else { format!("{base} {}", l / NAMES.len() + 1) };
        learners.push(DemoLearner {
            id: format!("learner-{:03}", l + 1),
            name,
            true_theta: theta,
            known_skills: known,
            learn_rate: 0.08 + 0.2 * sigmoid(theta),
            engagement,
            dropout_after,
        });
    }
    let subjects = SUBJECTS
        .iter()
        .map(|s| DemoSubject { id: s.id.to_owned(), name: s.name.to_owned(), name_ja: s.name_ja.to_owned() })
        .collect();
    Ok(Demo { spec: spec.clone(), subjects, skill_levels: levels, course, bank, learners })
}

/// The simulated period of [`simulate_activity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivitySpec {
    /// Seed of the activity (independent of the demo's).
    pub seed: u64,
    /// Midnight of the first day (RFC 3339 in JSON; default 2025-04-07T00:00:00Z).
    #[serde(with = "crate::analytics::rfc3339")]
    pub start: OffsetDateTime,
    /// Days simulated, 1–3650 (default 28).
    pub days: u32,
    /// Items answered per session, 1–50 (default 5).
    pub answers_per_session: usize,
}

impl Default for ActivitySpec {
    fn default() -> Self {
        Self { seed: 1, start: time::macros::datetime!(2025-04-07 00:00 UTC), days: 28, answers_per_session: 5 }
    }
}

impl ActivitySpec {
    /// Midnight after the last day: the natural "now" for analytics.
    pub fn end(&self) -> OffsetDateTime {
        self.start + Duration::days(i64::from(self.days))
    }
}

/// What [`simulate_activity`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityLog {
    /// Every learner's events, by timestamp (ties by learner id).
    pub events: Vec<ActivityEvent>,
    /// Per learner, the skills truly known at the end.
    pub known_after: BTreeMap<String, BTreeSet<String>>,
    /// Per learner, the BKT estimates at the end (skills answered on).
    pub estimated_mastery: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Simulates the learners of `demo` over the period of `spec`; see the
/// [module documentation](self).
pub fn simulate_activity(demo: &Demo, spec: &ActivitySpec) -> Result<ActivityLog, DemoError> {
    if !(1..=3650).contains(&spec.days) {
        return Err(DemoError::InvalidSpec(format!("days must be in 1..=3650, got {}", spec.days)));
    }
    if !(1..=50).contains(&spec.answers_per_session) {
        return Err(DemoError::InvalidSpec(format!(
            "answers_per_session must be in 1..=50, got {}",
            spec.answers_per_session
        )));
    }
    let model = SkillModel::default();
    let bkt = model.params();
    let mut items_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, item) in demo.bank.items().iter().enumerate() {
        items_of.entry(item.skill.as_str()).or_default().push(i);
    }
    let request = RecommendRequest { max_steps: 1, mastery_threshold: model.mastery_threshold(), ..Default::default() };
    let mut events: Vec<ActivityEvent> = Vec::new();
    let mut known_after = BTreeMap::new();
    let mut estimated_mastery = BTreeMap::new();
    for (li, learner) in demo.learners.iter().enumerate() {
        let mut rng = SplitMix64::new(spec.seed ^ (li as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut state = LearnerState { theta: learner.true_theta, prior: bkt.prior, ..LearnerState::default() };
        let mut known = learner.known_skills.clone();
        let stop_day = learner.dropout_after.map(|f| (f * f64::from(spec.days)).ceil() as u32);
        for day in 0..spec.days {
            if stop_day.is_some_and(|s| day >= s) {
                break;
            }
            if rng.next_f64() >= learner.engagement {
                continue;
            }
            let mut t = spec.start
                + Duration::days(i64::from(day))
                + Duration::hours(8 + rng.below(13) as i64)
                + Duration::minutes(rng.below(60) as i64);
            let path = recommend(&demo.course, &state, &request)?;
            let skill = if let Some(step) = path.steps.first() {
                let factor = (0.25 * rng.standard_normal()).exp();
                let seconds = (step.content.duration_minutes * 60.0 * factor).round().max(60.0);
                t += Duration::seconds(seconds as i64);
                events.push(ActivityEvent {
                    learner: learner.id.clone(),
                    timestamp: t,
                    activity: Activity::Completed {
                        content: step.content.id.clone(),
                        skill: step.skill.clone(),
                        duration_seconds: seconds,
                    },
                });
                state.completed.insert(step.content.id.clone());
                if !known.contains(&step.skill) && rng.next_f64() < learner.learn_rate {
                    known.insert(step.skill.clone());
                }
                step.skill.clone()
            } else if let Some(s) = path.without_content.first() {
                s.skill.clone()
            } else {
                break; // everything mastered
            };
            let Some(pool) = items_of.get(skill.as_str()) else { continue };
            for _ in 0..spec.answers_per_session {
                let item = demo.bank.item(pool[rng.below(pool.len())])?;
                let is_known = known.contains(&skill);
                let effective = learner.true_theta + if is_known { 1.0 } else { -1.0 };
                let correct = rng.next_f64() < item.probability(effective);
                let seconds = (40.0 * (0.5 * rng.standard_normal()).exp()).round().clamp(5.0, 600.0);
                t += Duration::seconds(seconds as i64);
                events.push(ActivityEvent {
                    learner: learner.id.clone(),
                    timestamp: t,
                    activity: Activity::Answered {
                        item: item.id.clone(),
                        skill: skill.clone(),
                        correct,
                        duration_seconds: seconds,
                    },
                });
                let p = state.mastery_of(&skill);
                state.mastery.insert(skill.clone(), bkt.update(p, correct));
                if !is_known && rng.next_f64() < learner.learn_rate {
                    known.insert(skill.clone());
                }
            }
        }
        known_after.insert(learner.id.clone(), known);
        estimated_mastery.insert(learner.id.clone(), state.mastery);
    }
    // stable: a learner's own events keep their order
    events.sort_by(|x, y| x.timestamp.cmp(&y.timestamp).then_with(|| x.learner.cmp(&y.learner)));
    Ok(ActivityLog { events, known_after, estimated_mastery })
}
