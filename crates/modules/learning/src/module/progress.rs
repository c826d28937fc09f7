//! Activity tracking, recommendations and the `learning://` resources.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::json;

use super::*;
use crate::activity::{self, Event};
use crate::bkt::BktParams;
use crate::catalog::Catalog;
use crate::graph::{
    BlockedSkill, ContentFormat, ContentItem, LearnerState, LearningPath, LearningStyle, PathStep, RecommendRequest,
    SkillStatus, TargetDifficulty, recommend,
};
use crate::service::{LearnerRecord, MasteryChange};
use crate::xapi::{SimpleStatement, Statement};

// ------------------------------------------------------------ tracking

/// What a learner did.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub(super) enum ActivityData {
    /// A content item studied.
    #[serde(rename_all = "camelCase")]
    Content {
        /// The content item's id in the course.
        content_id: String,
        /// Whether it was completed (default true).
        completed: Option<bool>,
        /// Time spent, in seconds.
        duration_seconds: Option<f64>,
        /// A score in [0, 1], if the content was graded.
        score: Option<f64>,
        /// When it ended (RFC 3339; default now).
        timestamp: Option<String>,
    },
    /// An answer: to an item of the bank, or on a skill without an item.
    #[serde(rename_all = "camelCase")]
    Answer {
        /// The item answered (its skill is the skill).
        item_id: Option<String>,
        /// The skill, when no item is given (or the item's skill, checked).
        skill_id: Option<String>,
        /// Whether the answer was correct.
        success: bool,
        /// A score in [0, 1].
        score: Option<f64>,
        /// Time spent, in seconds.
        duration_seconds: Option<f64>,
        /// When (RFC 3339; default now).
        timestamp: Option<String>,
    },
    /// A complete xAPI statement; its actor is the learner (set here when
    /// absent; another actor is refused).
    Statement {
        /// The statement.
        statement: Value,
    },
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TrackArgs {
    /// The learner.
    user_id: String,
    /// The activity: `{"type": "content", "contentId", "completed"?, "durationSeconds"?, "score"?}`,
    /// `{"type": "answer", "itemId" or "skillId", "success", "score"?, "durationSeconds"?}` or
    /// `{"type": "statement", "statement": {...xAPI...}}`.
    activity_data: ActivityData,
}

/// What was recorded.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Recorded {
    /// `answered` or `completed`.
    kind: String,
    item_id: Option<String>,
    content_id: Option<String>,
    skill: Option<String>,
    correct: Option<bool>,
    duration_seconds: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TrackOutput {
    /// The xAPI statement stored.
    statement_id: String,
    user_id: String,
    /// What the learning engines took from it (absent: the statement is
    /// about nothing this tenant's course knows; it is stored all the same).
    recorded: Option<Recorded>,
    /// The learner's mastery of the skill after this activity (answers
    /// update it; completions leave it).
    mastery: Option<MasteryChange>,
    /// Whether this activity updated the mastery.
    mastery_updated: bool,
}

fn time_arg(field: &str, t: Option<&str>) -> Result<Option<time::OffsetDateTime>, LearningError> {
    t.map(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
            LearningError::Invalid(format!("{field}: `{s}` is not an RFC 3339 time (2025-04-07T09:30:00+09:00)"))
        })
    })
    .transpose()
}

fn seconds(field: &str, d: Option<f64>) -> Result<Option<f64>, LearningError> {
    match d {
        Some(x) if !(x.is_finite() && (0.0..=86_400.0 * 365.0).contains(&x)) => {
            Err(LearningError::Invalid(format!("{field}: must be a number of seconds ≥ 0, got {x}")))
        }
        other => Ok(other),
    }
}

fn score(field: &str, s: Option<f64>) -> Result<Option<f64>, LearningError> {
    match s {
        Some(x) if !(x.is_finite() && (0.0..=1.0).contains(&x)) => {
            Err(LearningError::Invalid(format!("{field}: must be in [0, 1], got {x}")))
        }
        other => Ok(other),
    }
}

/// The statement recording `data` for `user`.
fn statement_of(
    data: ActivityData,
    home: &str,
    user: &str,
    catalog: Option<&Catalog>,
) -> Result<Statement, LearningError> {
    let simple = |verb: &str, activity: String| SimpleStatement {
        home_page: home.to_owned(),
        account_name: user.to_owned(),
        verb_id: verb.to_owned(),
        activity_id: activity,
        ..SimpleStatement::default()
    };
    let no_course = || {
        LearningError::NotFound(
            "this tenant has no course yet: an administrator imports one with import_learning_course".into(),
        )
    };
    let built = match data {
        ActivityData::Content { content_id, completed, duration_seconds, score: s, timestamp } => {
            let course = &catalog.ok_or_else(no_course)?.course;
            let c = course.content_item(&content_id).ok_or_else(|| {
                LearningError::Invalid(format!(
                    "activityData.contentId: `{content_id}` is not content of this tenant's course"
                ))
            })?;
            let completed = completed.unwrap_or(true);
            let verb = if completed { activity::VERB_COMPLETED } else { "http://adlnet.gov/expapi/verbs/experienced" };
            SimpleStatement {
                activity_name: Some(c.title.clone()),
                completion: Some(completed),
                score_scaled: score("activityData.score", s)?,
                duration_seconds: seconds("activityData.durationSeconds", duration_seconds)?,
                timestamp: time_arg("activityData.timestamp", timestamp.as_deref())?,
                ..simple(verb, activity::activity_iri(home, "content", &content_id))
            }
            .build()
        }
        ActivityData::Answer { item_id, skill_id, success, score: s, duration_seconds, timestamp } => {
            let catalog = catalog.ok_or_else(no_course)?;
            let activity = match (&item_id, &skill_id) {
                (Some(item), skill) => {
                    let bank = catalog.bank()?;
                    let it = bank.by_id(item).ok_or_else(|| {
                        LearningError::Invalid(format!("activityData.itemId: `{item}` is not an item of the bank"))
                    })?;
                    if let Some(s) = skill
                        && *s != it.skill
                    {
                        return Err(LearningError::Invalid(format!(
                            "activityData.skillId: item `{item}` assesses `{}`, not `{s}`",
                            it.skill
                        )));
                    }
                    activity::activity_iri(home, "items", item)
                }
                (None, Some(skill)) => {
                    if catalog.course.skill(skill).is_none() {
                        return Err(LearningError::Invalid(format!(
                            "activityData.skillId: `{skill}` is not a skill of this tenant's course"
                        )));
                    }
                    activity::activity_iri(home, "skills", skill)
                }
                (None, None) => {
                    return Err(LearningError::Invalid("activityData: an answer needs itemId or skillId".into()));
                }
            };
            SimpleStatement {
                success: Some(success),
                score_scaled: score("activityData.score", s)?,
                duration_seconds: seconds("activityData.durationSeconds", duration_seconds)?,
                timestamp: time_arg("activityData.timestamp", timestamp.as_deref())?,
                ..simple(activity::VERB_ANSWERED, activity)
            }
            .build()
        }
        ActivityData::Statement { statement } => {
            let Value::Object(mut m) = statement else {
                return Err(LearningError::Invalid("activityData.statement: must be an xAPI statement object".into()));
            };
            let agent = activity::learner_agent(home, user);
            match m.get("actor") {
                None => {
                    m.insert("actor".into(), agent);
                }
                Some(a) if crate::xapi::agent_key(a) == crate::xapi::agent_key(&agent) => {}
                Some(_) => {
                    return Err(LearningError::Invalid(format!(
                        "activityData.statement.actor: must be the learner ({{\"account\": {{\"homePage\": \"{home}\", \
                         \"name\": \"{user}\"}}}}) or absent"
                    )));
                }
            }
            Statement::from_value(&Value::Object(m))
        }
    };
    built.map_err(|e| match e {
        crate::xapi::XapiError::Invalid { path, reason } => {
            LearningError::Invalid(format!("activityData.{path}: {reason}"))
        }
        other => LearningError::from(other),
    })
}

pub(super) async fn track(svc: Arc<Service>, cx: CallContext, a: TrackArgs) -> Result<TrackOutput, ToolError> {
    may_act_on(&cx, &a.user_id)?;
    let t = tenant(&cx);
    let catalog = svc.catalog(t).await?;
    let home = svc.home(t);
    let statement = statement_of(a.activity_data, &home, &a.user_id, catalog.as_deref())?;
    let event = activity::event_of(
        &statement,
        &home,
        catalog.as_ref().map(|c| &c.course),
        catalog.as_ref().and_then(|c| c.bank.as_ref()),
    );
    let events: Vec<Event> = event.iter().cloned().collect();
    let authority = activity::learner_agent(&home, &cx.principal.subject);
    // A statement about someone else (possible for staff) must still be
    // about the learner named.
    if activity::learner_of(&statement, &home).as_deref() != Some(a.user_id.as_str()) {
        return Err(ToolError::InvalidArguments("activityData.statement.actor: must be the learner".into()));
    }
    if events.is_empty() {
        svc.ensure_learners(t, &[a.user_id.as_str()]).await?;
    }
    let (ids, changes) = svc.record(t, vec![statement], &events, &authority).await?;
    let statement_id = ids.into_iter().next().unwrap_or_default();
    let change = changes.into_iter().next().flatten();
    let mastery_updated = change.is_some();
    let mastery = match (&change, &event) {
        (Some(_), _) => change,
        (None, Some(e)) if !e.skill.is_empty() => {
            let threshold = svc.config(t).await?.config.mastery_threshold;
            let params = svc.skill_params(t).await?;
            let record = svc.learner(t, &a.user_id).await?.unwrap_or_default();
            Some(current_mastery(&record, &e.skill, &params, threshold))
        }
        _ => None,
    };
    let recorded = event.map(|e| Recorded {
        kind: e.kind.as_str().to_owned(),
        item_id: e.item,
        content_id: e.content,
        skill: (!e.skill.is_empty()).then_some(e.skill),
        correct: e.correct,
        duration_seconds: e.duration,
    });
    Ok(TrackOutput { statement_id, user_id: a.user_id, recorded, mastery, mastery_updated })
}

fn current_mastery(
    record: &LearnerRecord,
    skill: &str,
    params: &BTreeMap<String, BktParams>,
    threshold: f64,
) -> MasteryChange {
    let prior = params.get(skill).copied().unwrap_or_default().prior;
    let (p, attempts, correct) =
        record.mastery.get(skill).map_or((prior, 0, 0), |m| (m.p_known, m.attempts, m.correct));
    MasteryChange {
        skill: skill.to_owned(),
        p_known_before: p,
        p_known: p,
        mastered: p >= threshold,
        newly_mastered: false,
        attempts,
        correct,
    }
}

// ------------------------------------------------------ recommendations

/// A target difficulty: `easy`, `medium`, `hard` (relative to the
/// learner's ability) or a number on the IRT b scale.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum DifficultyArg {
    /// On the b scale.
    Value(f64),
    /// `easy`, `medium` or `hard`.
    Level(String),
}

impl DifficultyArg {
    pub(crate) fn parse(&self, field: &str) -> Result<TargetDifficulty, LearningError> {
        let bad = |e: crate::graph::GraphError| LearningError::Invalid(format!("{field}: {e}"));
        match self {
            DifficultyArg::Value(v) if v.is_finite() && v.abs() <= 10.0 => Ok(TargetDifficulty::Value(*v)),
            DifficultyArg::Value(v) => Err(LearningError::Invalid(format!("{field}: must be in [-10, 10], got {v}"))),
            DifficultyArg::Level(s) => TargetDifficulty::from_str(s).map_err(bad),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ContentArgs {
    /// The learner.
    user_id: String,
    /// The subject (e.g. `algebra`; see the course resource), or `all`.
    subject: String,
    /// `easy`, `medium`, `hard` or a number on the b scale (default: the learner's ability).
    difficulty: Option<DifficultyArg>,
    /// `visual`, `auditory`, `reading` or `kinesthetic`: formats it prefers come first among equally suitable content.
    learning_style: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RecommendationArgs {
    /// The learner.
    user_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ContentView {
    id: String,
    title: String,
    /// Titles in other languages (`ja`).
    translations: BTreeMap<String, String>,
    format: String,
    /// On the b scale.
    difficulty: f64,
    duration_minutes: f64,
}

impl From<&ContentItem> for ContentView {
    fn from(c: &ContentItem) -> Self {
        Self {
            id: c.id.clone(),
            title: c.title.clone(),
            translations: c.translations.clone(),
            format: c.format.as_str().to_owned(),
            difficulty: c.difficulty,
            duration_minutes: c.duration_minutes,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct StepView {
    position: usize,
    skill: String,
    skill_name: String,
    /// The learner's P(known) of the skill now.
    mastery: f64,
    content: ContentView,
    /// The difficulty aimed at (b scale).
    target_difficulty: f64,
    /// The content is in a preferred format.
    preferred_format: bool,
    /// Earlier steps that unlock this one's prerequisites.
    unlocked_by: Vec<usize>,
    /// Why this step.
    reason: String,
}

impl From<&PathStep> for StepView {
    fn from(s: &PathStep) -> Self {
        Self {
            position: s.position,
            skill: s.skill.clone(),
            skill_name: s.skill_name.clone(),
            mastery: s.mastery,
            content: ContentView::from(&s.content),
            target_difficulty: s.target_difficulty,
            preferred_format: s.preferred_format,
            unlocked_by: s.unlocked_by.clone(),
            reason: s.reason.clone(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SkillView {
    skill: String,
    name: String,
    mastery: f64,
}

impl From<&SkillStatus> for SkillView {
    fn from(s: &SkillStatus) -> Self {
        Self { skill: s.skill.clone(), name: s.name.clone(), mastery: s.mastery }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockedView {
    skill: String,
    name: String,
    mastery: f64,
    /// Direct prerequisites not mastered yet.
    missing: Vec<SkillView>,
    /// The step after which the path has mastered them, if it does.
    unlocked_at_step: Option<usize>,
}

impl From<&BlockedSkill> for BlockedView {
    fn from(b: &BlockedSkill) -> Self {
        Self {
            skill: b.skill.clone(),
            name: b.name.clone(),
            mastery: b.mastery,
            missing: b
                .missing
                .iter()
                .map(|m| SkillView { skill: m.skill.clone(), name: m.name.clone(), mastery: m.mastery })
                .collect(),
            unlocked_at_step: b.unlocked_at_step,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Ability {
    /// On the IRT θ scale.
    theta: f64,
    se: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NextAssessment {
    /// A topic to pass to generate_assessment.
    topic: String,
    /// `adaptive` when the ability is not known yet, else `practice`.
    assessment_type: String,
    why: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PathView {
    user_id: String,
    /// The subject asked for (absent: the whole course).
    subject: Option<String>,
    /// The ability of the learner's last finished assessment, if any.
    ability: Option<Ability>,
    steps: Vec<StepView>,
    /// Sum of the steps' durations.
    total_minutes: f64,
    /// Skills whose prerequisites are not mastered yet.
    blocked: Vec<BlockedView>,
    /// Skills already mastered.
    mastered: Vec<SkillView>,
    /// Skills that could be studied but have no content left.
    without_content: Vec<SkillView>,
    mastery_threshold: f64,
    /// Formats preferred, in order.
    preferred_formats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_assessment: Option<NextAssessment>,
}

/// The learner's state for the recommender: a learner without a record
/// yet is at the priors (for themselves; staff asking about an unknown id
/// are told it is unknown).
async fn learner_state(
    svc: &Service,
    cx: &CallContext,
    user: &str,
    catalog: &Catalog,
) -> Result<(LearnerState, Option<Ability>), LearningError> {
    let t = tenant(cx);
    let record = match svc.learner(t, user).await? {
        Some(r) => r,
        None if cx.principal.subject == user => LearnerRecord::default(),
        None => return Err(LearningError::NotFound(format!("no learner `{user}` in this tenant"))),
    };
    let params = svc.skill_params(t).await?;
    let default = BktParams::default();
    let mastery: BTreeMap<String, f64> = catalog
        .course
        .skills()
        .iter()
        .map(|s| {
            let p =
                record.mastery.get(&s.id).map_or_else(|| params.get(&s.id).unwrap_or(&default).prior, |m| m.p_known);
            (s.id.clone(), p.clamp(0.0, 1.0))
        })
        .collect();
    let theta = record.theta.filter(|x| x.is_finite()).unwrap_or(0.0);
    let theta_se = record.theta_se.filter(|x| x.is_finite() && *x > 0.0);
    let ability = record.theta.filter(|x| x.is_finite()).map(|theta| Ability { theta, se: theta_se });
    let state = LearnerState { mastery, prior: default.prior, theta, theta_se, completed: record.completed };
    Ok((state, ability))
}

async fn plan(
    svc: &Service,
    cx: &CallContext,
    user: &str,
    subject: Option<String>,
    difficulty: Option<TargetDifficulty>,
    style: Option<LearningStyle>,
) -> Result<(LearningPath, PathView), LearningError> {
    let t = tenant(cx);
    let catalog = svc.require_catalog(t).await?;
    let config = svc.config(t).await?;
    let (state, ability) = learner_state(svc, cx, user, &catalog).await?;
    let mut formats: Vec<ContentFormat> = style.map(LearningStyle::formats).unwrap_or_default();
    for f in &config.config.preferred_formats {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }
    let request = RecommendRequest {
        subject: subject.clone(),
        difficulty,
        preferred_formats: formats.clone(),
        mastery_threshold: config.config.mastery_threshold,
        max_steps: config.config.path_steps,
        ..RecommendRequest::default()
    };
    let path = recommend(&catalog.course, &state, &request).map_err(|e| match e {
        crate::graph::GraphError::UnknownSubject(s) => LearningError::Invalid(format!(
            "subject: `{s}` is not a subject of this tenant's course (subjects: {}; or `all`)",
            catalog.course.subjects().join(", ")
        )),
        other => LearningError::Invalid(other.to_string()),
    })?;
    let view = PathView {
        user_id: user.to_owned(),
        subject,
        ability,
        steps: path.steps.iter().map(StepView::from).collect(),
        total_minutes: path.total_minutes,
        blocked: path.blocked.iter().map(BlockedView::from).collect(),
        mastered: path.mastered.iter().map(SkillView::from).collect(),
        without_content: path.without_content.iter().map(SkillView::from).collect(),
        mastery_threshold: config.config.mastery_threshold,
        preferred_formats: formats.iter().map(|f| f.as_str().to_owned()).collect(),
        next_assessment: None,
    };
    Ok((path, view))
}

pub(super) async fn personalized(svc: Arc<Service>, cx: CallContext, a: ContentArgs) -> Result<PathView, ToolError> {
    may_act_on(&cx, &a.user_id)?;
    let difficulty = a.difficulty.as_ref().map(|d| d.parse("difficulty")).transpose()?;
    let style = a
        .learning_style
        .as_deref()
        .map(LearningStyle::from_str)
        .transpose()
        .map_err(|e| ToolError::InvalidArguments(format!("learningStyle: {e}")))?;
    let subject = a.subject.trim();
    if subject.is_empty() || subject.chars().count() > 200 {
        return Err(ToolError::InvalidArguments("subject: 1 to 200 characters (or `all`)".into()));
    }
    let subject = (!subject.eq_ignore_ascii_case("all")).then(|| subject.to_owned());
    let (_, view) = plan(&svc, &cx, &a.user_id, subject, difficulty, style).await?;
    Ok(view)
}

pub(super) async fn recommendations(
    svc: Arc<Service>,
    cx: CallContext,
    a: RecommendationArgs,
) -> Result<PathView, ToolError> {
    may_act_on(&cx, &a.user_id)?;
    let (path, mut view) = plan(&svc, &cx, &a.user_id, None, None, None).await?;
    let next = path.steps.first().map(|s| (s.skill.clone(), s.skill_name.clone()));
    view.next_assessment = next.map(|(skill, name)| {
        let known = view.ability.is_some();
        NextAssessment {
            topic: skill,
            assessment_type: if known { "practice" } else { "adaptive" }.to_owned(),
            why: if known {
                format!("practice {name}, the first step of the path, at your level")
            } else {
                format!("no ability estimate yet: an adaptive assessment on {name} places you quickly")
            },
        }
    });
    Ok(view)
}

// ------------------------------------------------------------ resources

/// `learning://course` and `learning://learners/{userId}/progress`; an
/// unknown learner and one the caller may not see read alike.
pub(super) async fn read_resource(svc: &Service, cx: &CallContext, uri: &str) -> Result<ResourceContents, ToolError> {
    let missing = || ToolError::unknown_resource(uri);
    let t = tenant(cx);
    if uri == COURSE_URI {
        let catalog = svc.catalog(t).await?.ok_or_else(missing)?;
        let c = &catalog.course;
        let body = json!({
            "version": catalog.version,
            "subjects": c.subjects(),
            "skills": c.skills(),
            "content": c.content(),
            "items": catalog.bank.as_ref().map_or(0, |b| b.len()),
        });
        return Ok(ResourceContents::text(uri, Some("application/json"), body.to_string()));
    }
    let user = uri
        .strip_prefix("learning://learners/")
        .and_then(|r| r.strip_suffix("/progress"))
        .and_then(activity::decode)
        .ok_or_else(missing)?;
    if may_act_on(cx, &user).is_err() {
        return Err(missing());
    }
    let record = svc.learner(t, &user).await?.ok_or_else(missing)?;
    let threshold = svc.config(t).await?.config.mastery_threshold;
    let catalog = svc.catalog(t).await?;
    let name = |s: &str| catalog.as_ref().and_then(|c| c.course.skill(s)).map(|s| s.name.clone());
    let mastery: Vec<Value> = record
        .mastery
        .iter()
        .map(|(s, m)| {
            json!({
                "skill": s, "name": name(s), "pKnown": m.p_known, "mastered": m.p_known >= threshold,
                "attempts": m.attempts, "correct": m.correct,
            })
        })
        .collect();
    let body = json!({
        "userId": user,
        "since": record.created_at,
        "ability": record.theta.map(|theta| json!({"theta": theta, "se": record.theta_se})),
        "masteryThreshold": threshold,
        "mastery": mastery,
        "completed": record.completed,
    });
    Ok(ResourceContents::text(uri, Some("application/json"), body.to_string()))
}
