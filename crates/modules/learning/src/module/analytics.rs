//! `analyze_learning_data`: the analytics engine over the tenant's stored
//! events and mastery.
//!
//! - `learner`: one learner (learners: themselves only): completion, time
//!   on task, mastery per skill, and the at-risk checks that need no
//!   cohort (declining accuracy, inactivity).
//! - `cohort` (teachers and administrators): every learner of the tenant
//!   (with a `skill`, those who worked on it): completion rates, mastery
//!   distribution per skill, time on task, at-risk learners with reasons.
//! - `course` (teachers and administrators): completion per content item,
//!   mastery distribution per skill, time on task, and item statistics
//!   (p-value, point-biserial, flags) for authors.

use std::collections::BTreeSet;

use super::*;
use crate::activity::parse_user_time;
use crate::analytics::{
    Activity, ActivityEvent, AtRiskReport, CompletionReport, MasteryOptions, ResponseMatrix, RiskReason,
    TimeOnTaskReport, at_risk_learners, completion_rates, item_statistics, mastery_distribution, time_on_task,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AnalyzeArgs {
    /// `learner` (one learner), `cohort` or `course` (teachers and administrators).
    scope: String,
    /// The learner, for `learner` (default: yourself).
    user_id: Option<String>,
    /// Only this skill (its events, content, items and mastery).
    skill: Option<String>,
    /// From this time (RFC 3339, or a date `2025-04-07`), inclusive.
    from: Option<String>,
    /// Up to this time (RFC 3339, or a date: through its end), inclusive.
    to: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LearnerCompletionView {
    learner: String,
    completed: usize,
    total: usize,
    rate: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ContentCompletionView {
    content: String,
    learners: usize,
    rate: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CompletionView {
    /// Mean of the learners' completion rates.
    cohort_mean: Option<f64>,
    cohort_median: Option<f64>,
    /// Learners who completed every content item in scope.
    completed_course: usize,
    course_completion_rate: Option<f64>,
    /// Per learner (learner and cohort scopes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    learners: Vec<LearnerCompletionView>,
    /// Per content item (course scope).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    content: Vec<ContentCompletionView>,
}

fn completion_view(r: CompletionReport, per_learner: bool, per_content: bool) -> CompletionView {
    CompletionView {
        cohort_mean: r.cohort_mean,
        cohort_median: r.cohort_median,
        completed_course: r.completed_course,
        course_completion_rate: r.course_completion_rate,
        learners: if per_learner {
            r.learners
                .into_iter()
                .map(|l| LearnerCompletionView {
                    learner: l.learner,
                    completed: l.completed,
                    total: l.total,
                    rate: l.rate,
                })
                .collect()
        } else {
            Vec::new()
        },
        content: if per_content {
            r.content
                .into_iter()
                .map(|c| ContentCompletionView { content: c.content, learners: c.learners, rate: c.rate })
                .collect()
        } else {
            Vec::new()
        },
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct BucketView {
    lower: f64,
    upper: f64,
    count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct MasteryView {
    skill: String,
    name: Option<String>,
    /// Learners with answers on the skill.
    learners: usize,
    mean: f64,
    median: f64,
    /// Learners at or above the mastery threshold.
    mastered: usize,
    share_mastered: f64,
    histogram: Vec<BucketView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SkillMasteryView {
    skill: String,
    name: Option<String>,
    p_known: f64,
    mastered: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LearnerTimeView {
    learner: String,
    events: usize,
    total_seconds: f64,
    answer_seconds: f64,
    content_seconds: f64,
    median_seconds: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TimeView {
    total_seconds: f64,
    cohort_median_total_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    learners: Vec<LearnerTimeView>,
}

fn time_view(r: TimeOnTaskReport, per_learner: bool) -> TimeView {
    TimeView {
        total_seconds: r.total_seconds,
        cohort_median_total_seconds: r.cohort_median_total_seconds,
        learners: if per_learner {
            r.learners
                .into_iter()
                .map(|l| LearnerTimeView {
                    learner: l.learner,
                    events: l.events,
                    total_seconds: l.total_seconds,
                    answer_seconds: l.answer_seconds,
                    content_seconds: l.content_seconds,
                    median_seconds: l.median_seconds,
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AtRiskLearnerView {
    learner: String,
    completion_rate: f64,
    /// `low_progress`, `declining_accuracy`, `inactive`.
    risks: Vec<String>,
    /// The reasons in words, with the figures behind them.
    reasons: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AtRiskView {
    checked: usize,
    cohort_median_completion: Option<f64>,
    learners: Vec<AtRiskLearnerView>,
}

fn risk_name(r: &RiskReason) -> &'static str {
    match r {
        RiskReason::LowProgress { .. } => "low_progress",
        RiskReason::DecliningAccuracy { .. } => "declining_accuracy",
        RiskReason::Inactive { .. } => "inactive",
    }
}

fn at_risk_view(r: AtRiskReport) -> AtRiskView {
    AtRiskView {
        checked: r.checked,
        cohort_median_completion: r.cohort_median_completion,
        learners: r
            .learners
            .into_iter()
            .map(|l| AtRiskLearnerView {
                learner: l.learner,
                completion_rate: l.completion_rate,
                risks: l.reasons.iter().map(|x| risk_name(x).to_owned()).collect(),
                reasons: l.messages,
            })
            .collect(),
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ItemStatView {
    item: String,
    skill: Option<String>,
    responses: usize,
    correct: usize,
    /// Proportion correct.
    p_value: Option<f64>,
    /// Corrected point-biserial (the item left out of the total).
    point_biserial: Option<f64>,
    point_biserial_uncorrected: Option<f64>,
    /// What an author should look at, in words.
    flags: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AnalyticsOutput {
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skill: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Learners analysed.
    learners: usize,
    /// Events (answers and completions) in the window.
    events: usize,
    answers: usize,
    completions: usize,
    /// Share of answers correct.
    accuracy: Option<f64>,
    completion: Option<CompletionView>,
    /// Mastery distribution per skill (cohort and course).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mastery: Vec<MasteryView>,
    /// The learner's mastery per skill (learner scope).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    learner_mastery: Vec<SkillMasteryView>,
    time_on_task: TimeView,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_risk: Option<AtRiskView>,
    /// Item statistics for authors (course scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    item_statistics: Option<Vec<ItemStatView>>,
}

fn analytics_error(e: crate::analytics::AnalyticsError) -> LearningError {
    LearningError::Corrupt(format!("analytics: {e}"))
}

pub(super) async fn analyze(svc: Arc<Service>, cx: CallContext, a: AnalyzeArgs) -> Result<AnalyticsOutput, ToolError> {
    let scope = a.scope.trim().to_ascii_lowercase();
    let p = &cx.principal;
    let user = match scope.as_str() {
        "learner" => {
            let u = a.user_id.clone().unwrap_or_else(|| p.subject.clone());
            may_act_on(&cx, &u)?;
            Some(u)
        }
        "cohort" | "course" => {
            staff_only(&cx, "cohort and course analytics")?;
            if a.user_id.is_some() {
                return Err(ToolError::InvalidArguments(format!(
                    "userId: only the learner scope takes a learner (scope is {scope})"
                )));
            }
            None
        }
        other => {
            return Err(ToolError::InvalidArguments(format!("scope: `{other}` is not learner, cohort or course")));
        }
    };
    let from = a
        .from
        .as_deref()
        .map(|s| {
            parse_user_time(s)
                .ok_or_else(|| LearningError::Invalid(format!("from: `{s}` is not an RFC 3339 time or a date")))
        })
        .transpose()?;
    let to =
        a.to.as_deref()
            .map(|s| {
                let t = parse_user_time(s)
                    .ok_or_else(|| LearningError::Invalid(format!("to: `{s}` is not an RFC 3339 time or a date")))?;
                // A date means through its end.
                Ok::<_, LearningError>(if s.len() == 10 {
                    t + time::Duration::days(1) - time::Duration::microseconds(1)
                } else {
                    t
                })
            })
            .transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ToolError::InvalidArguments("from: must not be after `to`".into()));
    }
    let t = tenant(&cx);
    let catalog = svc.require_catalog(t).await?;
    let course = &catalog.course;
    if let Some(s) = &a.skill
        && course.skill(s).is_none()
    {
        return Err(ToolError::InvalidArguments(format!("skill: `{s}` is not a skill of this tenant's course")));
    }
    if let Some(u) = &user
        && svc.learner(t, u).await?.is_none()
        && *u != p.subject
    {
        return Err(LearningError::NotFound(format!("no learner `{u}` in this tenant")).into());
    }
    let config = svc.config(t).await?;
    let threshold = config.config.mastery_threshold;
    let at_risk_options = config.config.at_risk.options();
    let mut events = svc.events(t, user.as_deref(), from, to).await?;
    if let Some(s) = &a.skill {
        events.retain(|e| e.activity.skill() == s);
    }
    let content: Vec<String> = course
        .content()
        .iter()
        .filter(|c| a.skill.as_ref().is_none_or(|s| c.skill == *s))
        .map(|c| c.id.clone())
        .collect();
    let learners: Vec<String> = match &user {
        Some(u) => vec![u.clone()],
        None => {
            let all = svc.learner_ids(t).await?;
            match &a.skill {
                Some(_) => {
                    let active: BTreeSet<&str> = events.iter().map(|e| e.learner.as_str()).collect();
                    all.into_iter().filter(|l| active.contains(l.as_str())).collect()
                }
                None => all,
            }
        }
    };
    let answers = events.iter().filter(|e| matches!(e.activity, Activity::Answered { .. })).count();
    let right = events.iter().filter(|e| matches!(e.activity, Activity::Answered { correct: true, .. })).count();
    let completion = if content.is_empty() {
        None
    } else {
        Some(completion_rates(&events, &learners, &content).map_err(analytics_error)?)
    };
    let time = time_on_task(&events, &learners).map_err(analytics_error)?;
    let name = |s: &str| course.skill(s).map(|k| k.name.clone());
    let values = svc.mastery_values(t, user.as_deref()).await?;
    let values: Vec<(String, String, f64)> =
        values.into_iter().filter(|(_, s, _)| a.skill.as_ref().is_none_or(|k| k == s)).collect();
    let (mastery, learner_mastery) = if user.is_some() {
        let list = values
            .iter()
            .map(|(_, s, p)| SkillMasteryView {
                skill: s.clone(),
                name: name(s),
                p_known: *p,
                mastered: *p >= threshold,
            })
            .collect();
        (Vec::new(), list)
    } else {
        let pairs: Vec<(&str, f64)> = values.iter().map(|(_, s, p)| (s.as_str(), *p)).collect();
        let dist = mastery_distribution(&pairs, &MasteryOptions { threshold, ..MasteryOptions::default() })
            .map_err(analytics_error)?;
        let list = dist
            .into_iter()
            .map(|d| MasteryView {
                name: name(&d.skill),
                skill: d.skill,
                learners: d.learners,
                mean: d.mean,
                median: d.median,
                mastered: d.mastered,
                share_mastered: d.share_mastered,
                histogram: d
                    .histogram
                    .into_iter()
                    .map(|b| BucketView { lower: b.lower, upper: b.upper, count: b.count })
                    .collect(),
            })
            .collect();
        (list, Vec::new())
    };
    let now = to.map_or_else(time::OffsetDateTime::now_utc, |t| t.min(time::OffsetDateTime::now_utc()));
    let at_risk = if scope == "course" || content.is_empty() {
        None
    } else {
        Some(at_risk_view(
            at_risk_learners(&events, &learners, &content, now, &at_risk_options).map_err(analytics_error)?,
        ))
    };
    let item_statistics = if scope == "course" {
        let answered: Vec<ActivityEvent> = events
            .iter()
            .filter(|e| matches!(&e.activity, Activity::Answered { item, .. } if !item.starts_with("skill:")))
            .cloned()
            .collect();
        let matrix = ResponseMatrix::from_events(&answered);
        let bank = catalog.bank.as_ref();
        let stats = item_statistics(&matrix, &crate::analytics::ItemFlagOptions::default()).map_err(analytics_error)?;
        Some(
            stats
                .into_iter()
                .map(|s| ItemStatView {
                    skill: bank.and_then(|b| b.by_id(&s.item)).map(|i| i.skill.clone()).filter(|k| !k.is_empty()),
                    item: s.item,
                    responses: s.responses,
                    correct: s.correct,
                    p_value: s.p_value,
                    point_biserial: s.point_biserial,
                    point_biserial_uncorrected: s.point_biserial_uncorrected,
                    flags: s.flags.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        )
    } else {
        None
    };
    let completions = events.len() - answers;
    Ok(AnalyticsOutput {
        scope: scope.clone(),
        user_id: user,
        skill: a.skill,
        from: from.map(crate::activity::rfc3339),
        to: to.map(crate::activity::rfc3339),
        learners: learners.len(),
        events: events.len(),
        answers,
        completions,
        accuracy: (answers > 0).then(|| right as f64 / answers as f64),
        completion: completion.map(|c| completion_view(c, scope != "course", scope == "course")),
        mastery,
        learner_mastery,
        time_on_task: time_view(time, scope != "course"),
        at_risk,
        item_statistics,
    })
}
