//! Assessments: `generate_assessment` and `submit_assessment_response`.
//!
//! A session is the CAT engine's [`CatSession`] persisted as its record
//! (replayed exactly on each answer), the item presented, and an optimistic
//! version: an answer is accepted only for the item presented, once, while
//! the session is open, and only by the transaction that moves the version
//! on (a concurrent second answer is refused). Item choices are seeded per
//! session and step, so they do not depend on which node serves the call.

use super::*;
use crate::activity::{self, Event, EventKind};
use crate::cat::{CatConfig, CatError, CatSession, ContentTarget, RandomSource, SplitMix64, StopReason};
use crate::catalog::{Catalog, TopicBank, label};
use crate::graph::TargetDifficulty;
use crate::irt::ItemBank;
use crate::service::{MasteryChange, SessionRow};
use crate::settings::ExposureControl;
use crate::xapi::{SimpleStatement, Statement};
use progress::DifficultyArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Adaptive,
    Diagnostic,
    Practice,
}

impl Kind {
    fn parse(s: &str) -> Result<Self, LearningError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "adaptive" | "cat" => Ok(Kind::Adaptive),
            "diagnostic" => Ok(Kind::Diagnostic),
            "practice" => Ok(Kind::Practice),
            _ => Err(LearningError::Invalid(format!("assessmentType: `{s}` is not adaptive, diagnostic or practice"))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Adaptive => "adaptive",
            Kind::Diagnostic => "diagnostic",
            Kind::Practice => "practice",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct GenerateArgs {
    /// The learner.
    user_id: String,
    /// A skill id, a subject, an item topic, or `all`.
    topic: String,
    /// `adaptive` (stops at the target standard error or the item limit), `diagnostic` (every skill of the
    /// topic) or `practice` (fixed length at a target difficulty).
    assessment_type: String,
    /// Practice only: `easy`, `medium`, `hard` (relative to the learner's ability) or a number on the b scale.
    target_difficulty: Option<DifficultyArg>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SubmitArgs {
    /// The assessment, as generate_assessment returned it.
    assessment_id: String,
    /// The item presented.
    item_id: String,
    /// The answer: an option's label (`B`) or text, or the free answer; for an item without an answer key,
    /// `true` or `false` (was it correct).
    response: Value,
    /// Time spent on the item, in seconds.
    duration_seconds: Option<f64>,
}

/// One option of a choice item.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct OptionView {
    /// `A`, `B`, …
    label: String,
    text: String,
}

/// An item as a learner sees it (never its key or parameters).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ItemView {
    id: String,
    /// 1 for the first item.
    position: usize,
    stem: String,
    options: Vec<OptionView>,
    /// `choice` (answer with a label or the option's text), `text` (a free answer) or `selfScored`
    /// (answer true or false).
    response_format: String,
    /// The skill it assesses.
    skill: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssessmentStart {
    assessment_id: String,
    user_id: String,
    assessment_type: String,
    /// The topic as resolved.
    topic: String,
    /// Skills the items cover.
    skills: Vec<String>,
    /// The most items it will present.
    max_items: usize,
    /// Adaptive: it stops when the standard error reaches this.
    target_se: Option<f64>,
    /// Practice: the difficulty aimed at (b scale).
    target_difficulty: Option<f64>,
    item: ItemView,
    /// The tenant's welcome line and platform name.
    welcome: String,
    platform: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Estimate {
    /// Ability (EAP) on the θ scale.
    theta: f64,
    /// Its standard error (posterior SD).
    se: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseView {
    item_id: String,
    correct: bool,
    /// The estimate after this answer.
    theta: f64,
    se: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct FinalResult {
    theta: f64,
    se: f64,
    items_used: usize,
    /// `se_target`, `max_items` or `bank_exhausted`.
    stop_reason: String,
    /// The stop reason in words.
    description: String,
    /// Every answer with the estimate after it.
    responses: Vec<ResponseView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubmitOutput {
    assessment_id: String,
    item_id: String,
    correct: bool,
    /// The estimate after this answer.
    estimate: Estimate,
    /// Items answered so far.
    answered: usize,
    finished: bool,
    /// The next item, while the assessment goes on.
    next_item: Option<ItemView>,
    /// The final estimate, once it has ended.
    result: Option<FinalResult>,
    /// The learner's mastery of the item's skill after this answer (BKT).
    mastery: Option<MasteryChange>,
    /// The xAPI statement recording the answer.
    statement_id: String,
}

fn item_view(catalog: &Catalog, bank: &ItemBank, index: usize, position: usize) -> Result<ItemView, LearningError> {
    let item = bank.item(index).map_err(|e| LearningError::Corrupt(e.to_string()))?;
    Ok(match catalog.content.get(&item.id) {
        Some(c) => ItemView {
            id: item.id.clone(),
            position,
            stem: c.raw.stem.clone(),
            options: c
                .raw
                .options
                .iter()
                .enumerate()
                .map(|(i, o)| OptionView { label: label(i), text: o.clone() })
                .collect(),
            response_format: c.format().to_owned(),
            skill: item.skill.clone(),
        },
        None => ItemView {
            id: item.id.clone(),
            position,
            stem: if item.name.is_empty() { format!("Item {}", item.id) } else { item.name.clone() },
            options: Vec::new(),
            response_format: "selfScored".to_owned(),
            skill: item.skill.clone(),
        },
    })
}

fn cat_error(e: CatError, id: &str) -> LearningError {
    match e {
        CatError::Finished(r) => {
            LearningError::Conflict(format!("assessment {id} has ended ({r}): it takes no more answers"))
        }
        CatError::BankMismatch => LearningError::Conflict(format!(
            "the item bank changed after assessment {id} started (a new import): start a new assessment"
        )),
        CatError::AlreadyAnswered(item) => {
            LearningError::Conflict(format!("item `{item}` was already answered in assessment {id}"))
        }
        CatError::UnknownItem(item) => {
            LearningError::Invalid(format!("itemId: `{item}` is not an item of assessment {id}"))
        }
        CatError::Excluded(item) => {
            LearningError::Conflict(format!("item `{item}` is not the item assessment {id} presents"))
        }
        other => LearningError::Corrupt(format!("assessment {id}: {other}")),
    }
}

/// The configuration of a new session of `kind` over `topic`.
fn cat_config(kind: Kind, topic: &TopicBank, config: &crate::settings::TenantConfig) -> CatConfig {
    let (randomesque, sympson_hetter) = match config.exposure {
        ExposureControl::None => (1, false),
        ExposureControl::Randomesque { k } => (k, false),
        ExposureControl::SympsonHetter => (1, true),
    };
    let balance = |on: bool| -> Vec<ContentTarget> {
        if on && topic.skills.len() > 1 {
            topic.skills.iter().map(|s| ContentTarget { area: s.clone(), proportion: 1.0 }).collect()
        } else {
            Vec::new()
        }
    };
    match kind {
        Kind::Adaptive => CatConfig {
            se_target: Some(config.target_se),
            min_items: config.min_items,
            max_items: config.max_items,
            randomesque,
            sympson_hetter,
            content_targets: balance(config.content_balancing),
            ..CatConfig::default()
        },
        Kind::Diagnostic => CatConfig {
            se_target: None,
            min_items: 1,
            max_items: (config.diagnostic_items_per_skill * topic.skills.len().max(1)).clamp(1, 200),
            randomesque,
            sympson_hetter,
            content_targets: balance(true),
            ..CatConfig::default()
        },
        Kind::Practice => {
            CatConfig { se_target: None, min_items: 1, max_items: config.practice_items, ..CatConfig::default() }
        }
    }
}

/// The next item of an open session (None once it has ended): maximum
/// information (with the session's exposure control and balancing; items
/// Sympson–Hetter declines are excluded for the rest of the session), or
/// for practice the items closest to the target difficulty (randomly among
/// the `k` closest).
fn select(
    s: &mut CatSession,
    bank: &ItemBank,
    kind: Kind,
    target: Option<f64>,
    seed: i64,
    k: usize,
) -> Result<Option<usize>, CatError> {
    if s.is_finished() {
        return Ok(None);
    }
    let step = (s.answered() as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut rng = SplitMix64::new(u64::from_ne_bytes(seed.to_ne_bytes()) ^ step);
    if kind == Kind::Practice {
        let target = target.unwrap_or(0.0);
        let mut near: Vec<(f64, usize)> = (0..bank.len())
            .filter(|&i| !s.is_used(i))
            .filter_map(|i| Some(((bank.get(i)?.b - target).abs(), i)))
            .collect();
        if near.is_empty() {
            return Ok(None);
        }
        near.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let pick = rng.below(k.clamp(1, near.len()));
        return Ok(near.get(pick).map(|(_, i)| *i));
    }
    let selection = s.next_item(bank, &mut rng)?;
    for r in &selection.exposure_rejected {
        s.exclude(bank, *r)?;
    }
    Ok(Some(selection.index))
}

fn fresh_seed() -> i64 {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    i64::from_ne_bytes(x)
}

pub(super) async fn generate(
    svc: Arc<Service>,
    cx: CallContext,
    a: GenerateArgs,
) -> Result<AssessmentStart, ToolError> {
    may_act_on(&cx, &a.user_id)?;
    let kind = Kind::parse(&a.assessment_type)?;
    let difficulty = a.target_difficulty.as_ref().map(|d| d.parse("targetDifficulty")).transpose()?;
    if difficulty.is_some() && kind != Kind::Practice {
        return Err(ToolError::InvalidArguments(
            "targetDifficulty: only practice assessments take a target difficulty (adaptive and diagnostic ones \
             follow the learner's answers)"
                .into(),
        ));
    }
    if a.topic.trim().is_empty() || a.topic.chars().count() > 200 {
        return Err(ToolError::InvalidArguments("topic: 1 to 200 characters (a skill, a subject or `all`)".into()));
    }
    let t = tenant(&cx);
    let catalog = svc.require_catalog(t).await?;
    let topic = catalog.topic_bank(&a.topic)?;
    let config = svc.config(t).await?;
    svc.ensure_learners(t, &[a.user_id.as_str()]).await?;
    let target = match kind {
        Kind::Practice => {
            let theta =
                svc.learner(t, &a.user_id).await?.and_then(|r| r.theta).filter(|x| x.is_finite()).unwrap_or(0.0);
            Some(difficulty.unwrap_or(TargetDifficulty::Medium).resolve(theta))
        }
        _ => None,
    };
    let cfg = cat_config(kind, &topic, &config.config);
    let (target_se, max_items) = (cfg.se_target, cfg.max_items.min(topic.bank.len()));
    let mut session = CatSession::new(&topic.bank, cfg).map_err(|e| LearningError::Corrupt(e.to_string()))?;
    let seed = fresh_seed();
    let k = match config.config.exposure {
        ExposureControl::Randomesque { k } => k,
        _ => 1,
    };
    let id = activity::new_uuid();
    let first = select(&mut session, &topic.bank, kind, target, seed, k)
        .map_err(|e| cat_error(e, &id))?
        .ok_or_else(|| LearningError::Conflict(format!("no item of topic `{}` can be presented", topic.topic)))?;
    let item = item_view(&catalog, &topic.bank, first, 1)?;
    let row = SessionRow {
        id: id.clone(),
        user_id: a.user_id.clone(),
        kind: kind.as_str().to_owned(),
        topic: topic.topic.clone(),
        target,
        seed,
        catalog: catalog.version,
        record: session.record(),
        presented: Some(item.id.clone()),
        status: "active".to_owned(),
        version: 1,
        started_at: activity::fmt_time(time::OffsetDateTime::now_utc()),
    };
    svc.create_session(t, &row).await?;
    Ok(AssessmentStart {
        assessment_id: id,
        user_id: a.user_id,
        assessment_type: kind.as_str().to_owned(),
        topic: topic.topic.clone(),
        skills: topic.skills.clone(),
        max_items,
        target_se,
        target_difficulty: target,
        item,
        welcome: config.config.branding.welcome.clone(),
        platform: config.config.branding.name.clone(),
    })
}

pub(super) async fn submit(svc: Arc<Service>, cx: CallContext, a: SubmitArgs) -> Result<SubmitOutput, ToolError> {
    let id = a.assessment_id.trim().to_ascii_lowercase();
    if uuid::Uuid::try_parse(&id).is_err() || id.len() != 36 {
        return Err(ToolError::InvalidArguments(format!(
            "assessmentId: `{}` is not an assessment id (a UUID from generate_assessment)",
            a.assessment_id
        )));
    }
    if a.item_id.is_empty() || a.item_id.chars().count() > 256 {
        return Err(ToolError::InvalidArguments("itemId: 1 to 256 characters".into()));
    }
    let duration = match a.duration_seconds {
        Some(d) if !(d.is_finite() && (0.0..=86_400.0).contains(&d)) => {
            return Err(ToolError::InvalidArguments(format!("durationSeconds: must be in [0, 86400], got {d}")));
        }
        d => d,
    };
    let t = tenant(&cx);
    // This node's copy of the session, if it has one, saves reading it; a
    // refusal or a conflict from a copy that another writer overtook is
    // not trusted: the answer is taken again from the stored row.
    if let Some(row) = svc.cached_session(t, &id) {
        let mut decided = false;
        match answer(&svc, &cx, &a, &id, duration, &row, &mut decided).await {
            Ok(out) => return Ok(out),
            Err(e) if decided => return Err(e),
            Err(_) => svc.forget_session(t, &id),
        }
    }
    let row = svc.session(t, &id).await?.ok_or_else(|| unknown_assessment(&id))?;
    answer(&svc, &cx, &a, &id, duration, &row, &mut false).await
}

fn unknown_assessment(id: &str) -> LearningError {
    LearningError::NotFound(format!("unknown assessment {id}"))
}

/// Answer `a` on session `row` as read (or as cached). `decided` is set
/// once the outcome no longer depends on whether `row` was current: the
/// answer was committed, or failed for a reason other than a conflict.
async fn answer(
    svc: &Service,
    cx: &CallContext,
    a: &SubmitArgs,
    id: &str,
    duration: Option<f64>,
    row: &SessionRow,
    decided: &mut bool,
) -> Result<SubmitOutput, ToolError> {
    let t = tenant(cx);
    let p = &cx.principal;
    if !(is_staff(p) || p.subject == row.user_id) {
        return Err(unknown_assessment(id).into());
    }
    let kind = Kind::parse(&row.kind)?;
    let catalog = svc.require_catalog(t).await?;
    if catalog.version != row.catalog {
        return Err(cat_error(CatError::BankMismatch, id).into());
    }
    let topic = catalog.topic_bank(&row.topic)?;
    let bank = &topic.bank;
    let mut session = CatSession::restore(bank, row.record.clone()).map_err(|e| cat_error(e, id))?;
    if let Some(reason) = session.stop_reason() {
        return Err(cat_error(CatError::Finished(reason), id).into());
    }
    let index = bank.index_of(&a.item_id).ok_or_else(|| cat_error(CatError::UnknownItem(a.item_id.clone()), id))?;
    if session.is_used(index) && !session.excluded().contains(&index) {
        return Err(cat_error(CatError::AlreadyAnswered(a.item_id.clone()), id).into());
    }
    if row.presented.as_deref() != Some(a.item_id.as_str()) {
        let now = row.presented.as_deref().unwrap_or("none");
        return Err(ToolError::Conflict(format!(
            "item `{}` is not the item assessment {id} presents now (`{now}`): answer that one",
            a.item_id
        )));
    }
    let item = bank.item(index).map_err(|e| LearningError::Corrupt(e.to_string()))?;
    let correct = match catalog.content.get(&a.item_id) {
        Some(c) => c.score(&a.response)?,
        None => match &a.response {
            Value::Bool(b) => *b,
            Value::Object(m) if m.len() == 1 && m.get("correct").is_some_and(Value::is_boolean) => {
                m.get("correct").and_then(Value::as_bool).unwrap_or(false)
            }
            _ => {
                return Err(ToolError::InvalidArguments(format!(
                    "response: item `{}` has no answer key: say whether the answer was correct with true or false",
                    a.item_id
                )));
            }
        },
    };
    let estimate = session.answer(bank, index, correct).map_err(|e| cat_error(e, id))?;
    let config = svc.config(t).await?;
    let k = match config.config.exposure {
        ExposureControl::Randomesque { k } => k,
        _ => 1,
    };
    let next = select(&mut session, bank, kind, row.target, row.seed, k).map_err(|e| cat_error(e, id))?;
    let finished = session.is_finished() || next.is_none();

    // The answer as an xAPI statement, with an id derived from the
    // assessment and item: a repeated submission is the same statement
    // (and a different answer to the same item a conflict).
    let home = svc.home(t);
    let statement_id = activity::derived_uuid(&[t.as_str(), "assessment", id, &a.item_id]);
    let built = SimpleStatement {
        home_page: home.clone(),
        account_name: row.user_id.clone(),
        verb_id: activity::VERB_ANSWERED.to_owned(),
        activity_id: activity::activity_iri(&home, "items", &a.item_id),
        success: Some(correct),
        duration_seconds: duration,
        registration: Some(id.to_owned()),
        ..SimpleStatement::default()
    }
    .build()
    .map_err(LearningError::from)?;
    let mut json = built.into_json();
    if let Some(m) = json.as_object_mut() {
        m.insert("id".into(), Value::String(statement_id.clone()));
    }
    let statement = Statement::from_value(&json).map_err(LearningError::from)?;
    let authority = activity::learner_agent(&home, &p.subject);
    let statement = svc.xapi().prepare(t, vec![statement], &authority, false).await.map_err(LearningError::from)?;
    let event = Event {
        statement_id: statement_id.clone(),
        user_id: row.user_id.clone(),
        kind: EventKind::Answered,
        item: Some(a.item_id.clone()),
        content: None,
        skill: item.skill.clone(),
        correct: Some(correct),
        duration: duration.unwrap_or(0.0),
        at: time::OffsetDateTime::now_utc(),
    };
    let next_view = next.map(|i| item_view(&catalog, bank, i, session.answered() + 1)).transpose()?;
    let new_row = SessionRow {
        record: session.record(),
        presented: next_view.as_ref().map(|v| v.id.clone()),
        status: if finished { "finished" } else { "active" }.to_owned(),
        version: row.version + 1,
        ..row.clone()
    };
    let ability = finished.then_some((session.theta(), session.se()));
    *decided = true;
    let changes = svc.commit_answer(t, &new_row, row.version, &statement, &[event], ability).await.map_err(|e| {
        *decided = !matches!(e, LearningError::Conflict(_));
        e
    })?;
    let result = finished.then(|| {
        let reason = session.stop_reason().unwrap_or(StopReason::BankExhausted);
        FinalResult {
            theta: session.theta(),
            se: session.se(),
            items_used: session.answered(),
            stop_reason: match reason {
                StopReason::SeTarget => "se_target",
                StopReason::MaxItems => "max_items",
                StopReason::BankExhausted => "bank_exhausted",
            }
            .to_owned(),
            description: reason.to_string(),
            responses: session
                .responses()
                .iter()
                .map(|r| ResponseView {
                    item_id: r.item_id.clone(),
                    correct: r.correct,
                    theta: r.estimate.theta,
                    se: r.estimate.se,
                })
                .collect(),
        }
    });
    Ok(SubmitOutput {
        assessment_id: id.to_owned(),
        item_id: a.item_id.clone(),
        correct,
        estimate: Estimate { theta: estimate.theta, se: estimate.se },
        answered: session.answered(),
        finished,
        next_item: next_view,
        result,
        mastery: changes.into_iter().next().flatten(),
        statement_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_with_precise_errors() {
        assert_eq!(Kind::parse(" Adaptive ").ok(), Some(Kind::Adaptive));
        assert_eq!(Kind::parse("practice").ok(), Some(Kind::Practice));
        let e = Kind::parse("quiz").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("assessmentType: `quiz` is not adaptive, diagnostic or practice"));
    }

    #[test]
    fn practice_picks_items_closest_to_the_target() {
        let items: Vec<crate::irt::Item> = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0]
            .iter()
            .enumerate()
            .map(|(i, b)| crate::irt::Item::two_pl(format!("q{i}"), 1.0, *b))
            .collect();
        let bank = ItemBank::new(items).unwrap_or_else(|e| panic!("{e}"));
        let mut s = CatSession::new(&bank, CatConfig { se_target: None, max_items: 3, ..CatConfig::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        let mut picked = Vec::new();
        while let Some(i) = select(&mut s, &bank, Kind::Practice, Some(0.9), 7, 1).unwrap_or_else(|e| panic!("{e}")) {
            picked.push(i);
            s.answer(&bank, i, true).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(picked, vec![4, 3, 2]);
    }
}
