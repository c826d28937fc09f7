//! Learning analytics: pure functions over plain inputs.
//!
//! - **Item statistics** ([`item_statistics`]) from a [`ResponseMatrix`]
//!   (learners × items, missing answers allowed): the p-value (proportion
//!   correct among those who answered), the point-biserial correlation of
//!   the item with the rest score (corrected: the item left out of the
//!   total) and with the total score (uncorrected), and flags for authors.
//!   A learner's total is the number of items answered correctly (missing
//!   answers count 0); each item's correlations use the learners who
//!   answered it (pairwise deletion). The correlation is Pearson's, what
//!   `scipy.stats.pointbiserialr` computes; it is `None` where it is
//!   undefined (fewer than two answers, or a constant item or score).
//! - **Activity** ([`ActivityEvent`]: answers and completions with
//!   timestamps and durations): [`completion_rates`] per learner, content
//!   and cohort; [`time_on_task`]; [`at_risk_learners`] for low progress,
//!   declining accuracy and inactivity, each with the figures behind it.
//! - **Mastery**: [`mastery_distribution`] per skill (histogram, mean,
//!   median, share at or above the threshold); [`trace_mastery`] and
//!   [`answer_sequences`] turn answers into BKT states and into the input of
//!   [`crate::bkt::fit_em`].
//!
//! Medians are numpy's (the mean of the two middle values for an even count).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::bkt::{BktError, BktParams, DEFAULT_MASTERY_THRESHOLD};

/// Errors of the analytics functions.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum AnalyticsError {
    /// A response matrix whose shape or ids are inconsistent.
    #[error("response matrix: {0}")]
    Matrix(String),
    /// An event that cannot be used (0-based position in the slice given).
    #[error("event {index} of learner `{learner}`: {message}")]
    InvalidEvent {
        /// Position in the slice.
        index: usize,
        /// The event's learner.
        learner: String,
        /// What is wrong.
        message: String,
    },
    /// An option outside its domain.
    #[error("option {name} must be {rule}, got {value}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// The rule it breaks.
        rule: &'static str,
        /// The value.
        value: f64,
    },
    /// A mastery probability outside [0, 1].
    #[error("mastery of skill `{skill}` must be in [0, 1], got {value}")]
    InvalidMastery {
        /// The skill.
        skill: String,
        /// The value.
        value: f64,
    },
    /// Completion rates of a course without content.
    #[error("the course has no content to complete")]
    NoContent,
    /// BKT parameters that cannot be used.
    #[error("bkt parameters of skill `{skill}`: {source}")]
    Bkt {
        /// The skill (empty: the default parameters).
        skill: String,
        /// The validation error.
        #[source]
        source: BktError,
    },
}

fn option(name: &'static str, rule: &'static str, value: f64, ok: bool) -> Result<(), AnalyticsError> {
    if ok { Ok(()) } else { Err(AnalyticsError::InvalidOption { name, rule, value }) }
}

/// numpy's median: the middle value, or the mean of the two middle values; `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() { None } else { Some(values.iter().sum::<f64>() / values.len() as f64) }
}

/// Pearson's correlation; `None` for fewer than two pairs or a constant side.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    if x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// The least-squares slope of `y` against `0, 1, …, n − 1` (numpy's
/// `polyfit(x, y, 1)[0]`); `None` for fewer than two values.
pub fn trend_slope(y: &[f64]) -> Option<f64> {
    let n = y.len();
    if n < 2 {
        return None;
    }
    let mx = (n - 1) as f64 / 2.0;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (i, &v) in y.iter().enumerate() {
        let dx = i as f64 - mx;
        sxx += dx * dx;
        sxy += dx * (v - my);
    }
    Some(sxy / sxx)
}

/// Timestamps as RFC 3339 text.
pub(crate) mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de, ser};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t.format(&Rfc3339).map_err(ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(de::Error::custom)
    }

    pub(crate) mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub(crate) fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] OffsetDateTime);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

// ---------------------------------------------------------------------------
// Item statistics

/// Answers of learners (rows) to items (columns); `None` where a learner did
/// not answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMatrix {
    items: Vec<String>,
    learners: Vec<String>,
    rows: Vec<Vec<Option<bool>>>,
}

impl ResponseMatrix {
    /// A matrix with one row per learner and one column per item; ids must
    /// be unique and every row must have one entry per item.
    pub fn new(
        items: Vec<String>,
        learners: Vec<String>,
        rows: Vec<Vec<Option<bool>>>,
    ) -> Result<Self, AnalyticsError> {
        if rows.len() != learners.len() {
            return Err(AnalyticsError::Matrix(format!(
                "{} learners but {} rows of answers",
                learners.len(),
                rows.len()
            )));
        }
        for (r, row) in rows.iter().enumerate() {
            if row.len() != items.len() {
                return Err(AnalyticsError::Matrix(format!(
                    "row {r} (learner `{}`) has {} answers, expected {}",
                    learners[r],
                    row.len(),
                    items.len()
                )));
            }
        }
        for (kind, ids) in [("item", &items), ("learner", &learners)] {
            let mut seen = HashMap::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                if let Some(first) = seen.insert(id.as_str(), i) {
                    return Err(AnalyticsError::Matrix(format!(
                        "duplicate {kind} `{id}` at positions {first} and {i}"
                    )));
                }
            }
        }
        Ok(Self { items, learners, rows })
    }

    /// A matrix from `(learner, item, correct)` answers: learners and items
    /// sorted by id, and the **first** answer of each learner to each item
    /// counts (classical item analysis uses first attempts).
    pub fn from_answers<L: AsRef<str>, I: AsRef<str>>(answers: impl IntoIterator<Item = (L, I, bool)>) -> Self {
        let answers: Vec<(L, I, bool)> = answers.into_iter().collect();
        let learners: BTreeSet<&str> = answers.iter().map(|(l, _, _)| l.as_ref()).collect();
        let items: BTreeSet<&str> = answers.iter().map(|(_, i, _)| i.as_ref()).collect();
        let learner_index: HashMap<&str, usize> = learners.iter().enumerate().map(|(i, &l)| (l, i)).collect();
        let item_index: HashMap<&str, usize> = items.iter().enumerate().map(|(i, &l)| (l, i)).collect();
        let mut rows = vec![vec![None; items.len()]; learners.len()];
        for (l, i, correct) in &answers {
            let cell = &mut rows[learner_index[l.as_ref()]][item_index[i.as_ref()]];
            if cell.is_none() {
                *cell = Some(*correct);
            }
        }
        Self {
            items: items.into_iter().map(str::to_owned).collect(),
            learners: learners.into_iter().map(str::to_owned).collect(),
            rows,
        }
    }

    /// [`ResponseMatrix::from_answers`] over the answers among `events`, in
    /// time order (the first answer by timestamp counts).
    pub fn from_events(events: &[ActivityEvent]) -> Self {
        Self::from_answers(chronological(events).into_iter().filter_map(|e| match &e.activity {
            Activity::Answered { item, correct, .. } => Some((e.learner.as_str(), item.as_str(), *correct)),
            Activity::Completed { .. } => None,
        }))
    }

    /// Item ids (columns).
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Learner ids (rows).
    pub fn learners(&self) -> &[String] {
        &self.learners
    }

    /// The answers, one row per learner.
    pub fn rows(&self) -> &[Vec<Option<bool>>] {
        &self.rows
    }
}

/// Thresholds of the item flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemFlagOptions {
    /// Flag items with a p-value above this (default 0.9).
    pub too_easy: f64,
    /// Flag items with a p-value below this (default 0.2).
    pub too_hard: f64,
    /// Flag items whose corrected point-biserial is below this (default 0.2).
    pub low_discrimination: f64,
    /// Flag only items with at least this many answers (default 1).
    pub min_responses: usize,
}

impl Default for ItemFlagOptions {
    fn default() -> Self {
        Self { too_easy: 0.9, too_hard: 0.2, low_discrimination: 0.2, min_responses: 1 }
    }
}

/// Something an item's author should look at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemFlag {
    /// Almost everyone answers correctly.
    TooEasy {
        /// The item's p-value.
        p_value: f64,
        /// The threshold it exceeds.
        threshold: f64,
    },
    /// Almost no one answers correctly.
    TooHard {
        /// The item's p-value.
        p_value: f64,
        /// The threshold it is below.
        threshold: f64,
    },
    /// Stronger learners are not much more likely to answer correctly.
    LowDiscrimination {
        /// The corrected point-biserial.
        point_biserial: f64,
        /// The threshold it is below.
        threshold: f64,
    },
    /// Weaker learners answer correctly more often than stronger ones: a
    /// miskeyed or misleading item.
    NegativeDiscrimination {
        /// The corrected point-biserial (< 0).
        point_biserial: f64,
    },
}

impl fmt::Display for ItemFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ItemFlag::TooEasy { p_value, threshold } => {
                write!(f, "too easy: {:.0} % correct, above {:.0} %", p_value * 100.0, threshold * 100.0)
            }
            ItemFlag::TooHard { p_value, threshold } => {
                write!(f, "too hard: {:.0} % correct, below {:.0} %", p_value * 100.0, threshold * 100.0)
            }
            ItemFlag::LowDiscrimination { point_biserial, threshold } => {
                write!(f, "low discrimination: point-biserial {point_biserial:.2} below {threshold:.2}")
            }
            ItemFlag::NegativeDiscrimination { point_biserial } => write!(
                f,
                "negative discrimination: point-biserial {point_biserial:.2}; check the key and the distractors"
            ),
        }
    }
}

/// Classical statistics of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemStatistics {
    /// The item's id.
    pub item: String,
    /// Learners who answered it.
    pub responses: usize,
    /// Correct answers.
    pub correct: usize,
    /// Proportion correct among those who answered; `None` without answers.
    pub p_value: Option<f64>,
    /// Point-biserial correlation with the rest score (total without this item).
    pub point_biserial: Option<f64>,
    /// Point-biserial correlation with the total score (this item included).
    pub point_biserial_uncorrected: Option<f64>,
    /// Flags, in the order too easy / too hard / negative / low discrimination.
    pub flags: Vec<ItemFlag>,
}

/// Statistics of every item of `matrix`, in column order (see the [module documentation](self)).
pub fn item_statistics(
    matrix: &ResponseMatrix,
    options: &ItemFlagOptions,
) -> Result<Vec<ItemStatistics>, AnalyticsError> {
    let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    option("too_easy", "in [0, 1]", options.too_easy, unit(options.too_easy))?;
    option("too_hard", "in [0, 1]", options.too_hard, unit(options.too_hard))?;
    let ld = options.low_discrimination;
    option("low_discrimination", "in [-1, 1]", ld, ld.is_finite() && (-1.0..=1.0).contains(&ld))?;
    let totals: Vec<f64> =
        matrix.rows.iter().map(|row| row.iter().filter(|a| **a == Some(true)).count() as f64).collect();
    let mut out = Vec::with_capacity(matrix.items.len());
    for (j, id) in matrix.items.iter().enumerate() {
        let mut x = Vec::new();
        let mut total = Vec::new();
        let mut rest = Vec::new();
        for (r, row) in matrix.rows.iter().enumerate() {
            if let Some(answer) = row[j] {
                let v = if answer { 1.0 } else { 0.0 };
                x.push(v);
                total.push(totals[r]);
                rest.push(totals[r] - v);
            }
        }
        let responses = x.len();
        let correct = x.iter().filter(|&&v| v == 1.0).count();
        let p_value = (responses > 0).then(|| correct as f64 / responses as f64);
        let point_biserial = pearson(&x, &rest);
        let mut flags = Vec::new();
        if responses >= options.min_responses.max(1) {
            if let Some(p) = p_value {
                if p > options.too_easy {
                    flags.push(ItemFlag::TooEasy { p_value: p, threshold: options.too_easy });
                }
                if p < options.too_hard {
                    flags.push(ItemFlag::TooHard { p_value: p, threshold: options.too_hard });
                }
            }
            if let Some(r) = point_biserial {
                if r < 0.0 {
                    flags.push(ItemFlag::NegativeDiscrimination { point_biserial: r });
                } else if r < options.low_discrimination {
                    flags
                        .push(ItemFlag::LowDiscrimination { point_biserial: r, threshold: options.low_discrimination });
                }
            }
        }
        out.push(ItemStatistics {
            item: id.clone(),
            responses,
            correct,
            p_value,
            point_biserial,
            point_biserial_uncorrected: pearson(&x, &total),
            flags,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Activity

/// One recorded activity of a learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEvent {
    /// The learner's id.
    pub learner: String,
    /// When it ended (RFC 3339 in JSON).
    #[serde(with = "rfc3339")]
    pub timestamp: OffsetDateTime,
    /// What happened.
    #[serde(flatten)]
    pub activity: Activity,
}

/// What a learner did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activity {
    /// Answered an assessment item.
    Answered {
        /// The item's id.
        item: String,
        /// The skill it assesses (may be empty).
        skill: String,
        /// Whether the answer was correct.
        correct: bool,
        /// Time spent, in seconds (finite, ≥ 0).
        duration_seconds: f64,
    },
    /// Completed a content item.
    Completed {
        /// The content item's id.
        content: String,
        /// The skill it teaches (may be empty).
        skill: String,
        /// Time spent, in seconds (finite, ≥ 0).
        duration_seconds: f64,
    },
}

impl Activity {
    /// The time spent, in seconds.
    pub fn duration_seconds(&self) -> f64 {
        match self {
            Activity::Answered { duration_seconds, .. } | Activity::Completed { duration_seconds, .. } => {
                *duration_seconds
            }
        }
    }

    /// The skill involved.
    pub fn skill(&self) -> &str {
        match self {
            Activity::Answered { skill, .. } | Activity::Completed { skill, .. } => skill,
        }
    }
}

fn validate_events(events: &[ActivityEvent]) -> Result<(), AnalyticsError> {
    for (index, e) in events.iter().enumerate() {
        let bad = |message: String| AnalyticsError::InvalidEvent { index, learner: e.learner.clone(), message };
        if e.learner.is_empty() {
            return Err(bad("the learner id is empty".to_owned()));
        }
        let d = e.activity.duration_seconds();
        if !(d.is_finite() && d >= 0.0) {
            return Err(bad(format!("duration_seconds must be finite and ≥ 0, got {d}")));
        }
        match &e.activity {
            Activity::Answered { item, .. } if item.is_empty() => return Err(bad("the item id is empty".to_owned())),
            Activity::Completed { content, .. } if content.is_empty() => {
                return Err(bad("the content id is empty".to_owned()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The events sorted by timestamp, ties in the order given.
fn chronological(events: &[ActivityEvent]) -> Vec<&ActivityEvent> {
    let mut sorted: Vec<&ActivityEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.timestamp);
    sorted
}

fn cohort(learners: &[String]) -> BTreeSet<&str> {
    learners.iter().map(String::as_str).collect()
}

/// The distinct learners of `events`, sorted.
pub fn learners_in(events: &[ActivityEvent]) -> Vec<String> {
    let set: BTreeSet<&str> = events.iter().map(|e| e.learner.as_str()).collect();
    set.into_iter().map(str::to_owned).collect()
}

/// One learner's completions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerCompletion {
    /// The learner's id.
    pub learner: String,
    /// Distinct content items of the course completed.
    pub completed: usize,
    /// Content items in the course.
    pub total: usize,
    /// `completed / total`.
    pub rate: f64,
}

/// One content item's completions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentCompletion {
    /// The content item's id.
    pub content: String,
    /// Learners of the cohort who completed it.
    pub learners: usize,
    /// `learners / cohort size` (0 for an empty cohort).
    pub rate: f64,
}

/// The result of [`completion_rates`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionReport {
    /// Per learner of the cohort, by id.
    pub learners: Vec<LearnerCompletion>,
    /// Per content item of the course, by id.
    pub content: Vec<ContentCompletion>,
    /// Mean of the learners' rates (`None` for an empty cohort); equals
    /// completions / (learners × content items).
    pub cohort_mean: Option<f64>,
    /// Median of the learners' rates.
    pub cohort_median: Option<f64>,
    /// Learners who completed every content item.
    pub completed_course: usize,
    /// `completed_course / cohort size`.
    pub course_completion_rate: Option<f64>,
    /// Completion events of other learners or other content, or repeated.
    pub ignored_events: usize,
}

/// Completion rates of the cohort `learners` over the course's `content`
/// (ids; duplicates count once) from the completion events among `events`.
pub fn completion_rates(
    events: &[ActivityEvent],
    learners: &[String],
    content: &[String],
) -> Result<CompletionReport, AnalyticsError> {
    validate_events(events)?;
    let course: BTreeSet<&str> = content.iter().map(String::as_str).collect();
    if course.is_empty() {
        return Err(AnalyticsError::NoContent);
    }
    let cohort = cohort(learners);
    let mut done: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut ignored = 0;
    for e in events {
        if let Activity::Completed { content, .. } = &e.activity {
            let counted = cohort.contains(e.learner.as_str())
                && course.contains(content.as_str())
                && done.insert((e.learner.as_str(), content.as_str()));
            if !counted {
                ignored += 1;
            }
        }
    }
    let total = course.len();
    let per_learner: Vec<LearnerCompletion> = cohort
        .iter()
        .map(|&l| {
            let completed = done.range((l, "")..).take_while(|(x, _)| *x == l).count();
            LearnerCompletion { learner: l.to_owned(), completed, total, rate: completed as f64 / total as f64 }
        })
        .collect();
    let size = cohort.len();
    let per_content = course
        .iter()
        .map(|&c| {
            let n = done.iter().filter(|(_, x)| *x == c).count();
            ContentCompletion {
                content: c.to_owned(),
                learners: n,
                rate: if size == 0 { 0.0 } else { n as f64 / size as f64 },
            }
        })
        .collect();
    let rates: Vec<f64> = per_learner.iter().map(|l| l.rate).collect();
    let completed_course = per_learner.iter().filter(|l| l.completed == total).count();
    Ok(CompletionReport {
        cohort_mean: mean(&rates),
        cohort_median: median(&rates),
        completed_course,
        course_completion_rate: (size > 0).then(|| completed_course as f64 / size as f64),
        learners: per_learner,
        content: per_content,
        ignored_events: ignored,
    })
}

/// One learner's time on task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerTime {
    /// The learner's id.
    pub learner: String,
    /// Events with a duration.
    pub events: usize,
    /// Sum of the durations, in seconds.
    pub total_seconds: f64,
    /// Seconds spent answering items.
    pub answer_seconds: f64,
    /// Seconds spent on content.
    pub content_seconds: f64,
    /// Median duration of one event (`None` without events).
    pub median_seconds: Option<f64>,
}

/// The result of [`time_on_task`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeOnTaskReport {
    /// Per learner of the cohort, by id.
    pub learners: Vec<LearnerTime>,
    /// Sum over the cohort, in seconds.
    pub total_seconds: f64,
    /// Median of the learners' totals.
    pub cohort_median_total_seconds: Option<f64>,
}

/// Time on task of the cohort `learners` from the events' durations.
pub fn time_on_task(events: &[ActivityEvent], learners: &[String]) -> Result<TimeOnTaskReport, AnalyticsError> {
    validate_events(events)?;
    let cohort = cohort(learners);
    let mut by_learner: BTreeMap<&str, Vec<&Activity>> = cohort.iter().map(|&l| (l, Vec::new())).collect();
    for e in events {
        if let Some(list) = by_learner.get_mut(e.learner.as_str()) {
            list.push(&e.activity);
        }
    }
    let per: Vec<LearnerTime> = by_learner
        .into_iter()
        .map(|(l, acts)| {
            let durations: Vec<f64> = acts.iter().map(|a| a.duration_seconds()).collect();
            let answer_seconds =
                acts.iter().filter(|a| matches!(a, Activity::Answered { .. })).map(|a| a.duration_seconds()).sum();
            let content_seconds =
                acts.iter().filter(|a| matches!(a, Activity::Completed { .. })).map(|a| a.duration_seconds()).sum();
            LearnerTime {
                learner: l.to_owned(),
                events: durations.len(),
                total_seconds: durations.iter().sum(),
                answer_seconds,
                content_seconds,
                median_seconds: median(&durations),
            }
        })
        .collect();
    let totals: Vec<f64> = per.iter().map(|l| l.total_seconds).collect();
    Ok(TimeOnTaskReport {
        total_seconds: totals.iter().sum(),
        cohort_median_total_seconds: median(&totals),
        learners: per,
    })
}

/// Thresholds of [`at_risk_learners`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AtRiskOptions {
    /// Low progress: completion rate below this fraction of the cohort
    /// median (default 0.5).
    pub low_progress_ratio: f64,
    /// Declining accuracy looks at the learner's last this many answers (default 20).
    pub recent_answers: usize,
    /// … and only when there are at least this many (default 10, ≥ 2).
    pub min_answers: usize,
    /// Flag when accuracy in the second half of those answers is lower than
    /// in the first half by at least this much (default 0.25).
    pub accuracy_drop: f64,
    /// Also flag when the least-squares slope of correctness per answer is
    /// at most `−slope` (default `None`: the half split only).
    pub slope_threshold: Option<f64>,
    /// Inactive: no activity for at least this many days (default 7);
    /// learners who completed the course are not flagged.
    pub inactive_days: f64,
}

impl Default for AtRiskOptions {
    fn default() -> Self {
        Self {
            low_progress_ratio: 0.5,
            recent_answers: 20,
            min_answers: 10,
            accuracy_drop: 0.25,
            slope_threshold: None,
            inactive_days: 7.0,
        }
    }
}

/// Why a learner is at risk, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "risk", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RiskReason {
    /// Completion well below the cohort's.
    LowProgress {
        /// The learner's completion rate.
        completion_rate: f64,
        /// The cohort's median completion rate.
        cohort_median: f64,
        /// `low_progress_ratio × cohort_median`.
        threshold: f64,
    },
    /// Recent answers less often correct than earlier ones.
    DecliningAccuracy {
        /// Answers considered (the most recent).
        answers: usize,
        /// Accuracy in the first half of them.
        first_half_accuracy: f64,
        /// Accuracy in the second half.
        second_half_accuracy: f64,
        /// `first_half_accuracy − second_half_accuracy`.
        drop: f64,
        /// Least-squares slope of correctness (0/1) per answer.
        slope_per_answer: f64,
    },
    /// No recent activity.
    Inactive {
        /// The last activity, if any.
        #[serde(with = "rfc3339::option")]
        last_activity: Option<OffsetDateTime>,
        /// Days since then (`None`: never active).
        days_inactive: Option<f64>,
        /// The threshold in days.
        threshold_days: f64,
    },
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

impl fmt::Display for RiskReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RiskReason::LowProgress { completion_rate, cohort_median, threshold } => write!(
                f,
                "low progress: completed {} of the course against a cohort median of {} (threshold {})",
                pct(*completion_rate),
                pct(*cohort_median),
                pct(*threshold)
            ),
            RiskReason::DecliningAccuracy {
                answers,
                first_half_accuracy,
                second_half_accuracy,
                drop,
                slope_per_answer,
            } => write!(
                f,
                "declining accuracy: {} correct in the first half of the last {answers} answers, {} in the second \
                 half (drop {drop:.2}, slope {slope_per_answer:+.3} per answer)",
                pct(*first_half_accuracy),
                pct(*second_half_accuracy)
            ),
            RiskReason::Inactive { last_activity: None, threshold_days, .. } => {
                write!(f, "inactive: no activity recorded (threshold {threshold_days} days)")
            }
            RiskReason::Inactive { days_inactive, threshold_days, .. } => write!(
                f,
                "inactive: no activity for {:.1} days (threshold {threshold_days} days)",
                days_inactive.unwrap_or(f64::INFINITY)
            ),
        }
    }
}

/// A learner flagged by [`at_risk_learners`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRiskLearner {
    /// The learner's id.
    pub learner: String,
    /// The learner's completion rate.
    pub completion_rate: f64,
    /// Why, in the order low progress, declining accuracy, inactivity.
    pub reasons: Vec<RiskReason>,
    /// The reasons in words.
    pub messages: Vec<String>,
}

/// The result of [`at_risk_learners`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRiskReport {
    /// Learners checked (the cohort).
    pub checked: usize,
    /// The cohort's median completion rate.
    pub cohort_median_completion: Option<f64>,
    /// Flagged learners, by id.
    pub learners: Vec<AtRiskLearner>,
}

/// Learners of the cohort at risk (see [`AtRiskOptions`]), judged at `now`
/// over the course's `content`.
pub fn at_risk_learners(
    events: &[ActivityEvent],
    learners: &[String],
    content: &[String],
    now: OffsetDateTime,
    options: &AtRiskOptions,
) -> Result<AtRiskReport, AnalyticsError> {
    let o = options;
    option(
        "low_progress_ratio",
        "finite and ≥ 0",
        o.low_progress_ratio,
        o.low_progress_ratio.is_finite() && o.low_progress_ratio >= 0.0,
    )?;
    option("min_answers", "at least 2", o.min_answers as f64, o.min_answers >= 2)?;
    option("recent_answers", "at least 2", o.recent_answers as f64, o.recent_answers >= 2)?;
    option("accuracy_drop", "in (0, 1]", o.accuracy_drop, o.accuracy_drop > 0.0 && o.accuracy_drop <= 1.0)?;
    if let Some(s) = o.slope_threshold {
        option("slope_threshold", "finite and > 0", s, s.is_finite() && s > 0.0)?;
    }
    option("inactive_days", "finite and > 0", o.inactive_days, o.inactive_days.is_finite() && o.inactive_days > 0.0)?;
    let completion = completion_rates(events, learners, content)?;
    let median_rate = completion.cohort_median;
    let mut answers: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    let mut last: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
    for e in chronological(events) {
        if let Activity::Answered { correct, .. } = e.activity {
            answers.entry(e.learner.as_str()).or_default().push(correct);
        }
        last.insert(e.learner.as_str(), e.timestamp);
    }
    let mut flagged = Vec::new();
    for lc in &completion.learners {
        let l = lc.learner.as_str();
        let mut reasons = Vec::new();
        if let Some(m) = median_rate {
            let threshold = o.low_progress_ratio * m;
            if lc.rate < threshold {
                reasons.push(RiskReason::LowProgress { completion_rate: lc.rate, cohort_median: m, threshold });
            }
        }
        if let Some(all) = answers.get(l) {
            let window = &all[all.len().saturating_sub(o.recent_answers)..];
            if window.len() >= o.min_answers {
                let y: Vec<f64> = window.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect();
                let half = y.len() / 2;
                let first = y[..half].iter().sum::<f64>() / half as f64;
                let second = y[y.len() - half..].iter().sum::<f64>() / half as f64;
                let drop = first - second;
                let slope = trend_slope(&y).unwrap_or(0.0);
                let by_drop = drop >= o.accuracy_drop - 1e-12;
                let by_slope = o.slope_threshold.is_some_and(|s| slope <= -s);
                if by_drop || by_slope {
                    reasons.push(RiskReason::DecliningAccuracy {
                        answers: y.len(),
                        first_half_accuracy: first,
                        second_half_accuracy: second,
                        drop,
                        slope_per_answer: slope,
                    });
                }
            }
        }
        if lc.completed < lc.total {
            match last.get(l) {
                None => reasons.push(RiskReason::Inactive {
                    last_activity: None,
                    days_inactive: None,
                    threshold_days: o.inactive_days,
                }),
                Some(&t) => {
                    let days = (now - t).as_seconds_f64() / 86_400.0;
                    if days >= o.inactive_days {
                        reasons.push(RiskReason::Inactive {
                            last_activity: Some(t),
                            days_inactive: Some(days),
                            threshold_days: o.inactive_days,
                        });
                    }
                }
            }
        }
        if !reasons.is_empty() {
            flagged.push(AtRiskLearner {
                learner: l.to_owned(),
                completion_rate: lc.rate,
                messages: reasons.iter().map(ToString::to_string).collect(),
                reasons,
            });
        }
    }
    Ok(AtRiskReport { checked: completion.learners.len(), cohort_median_completion: median_rate, learners: flagged })
}

// ---------------------------------------------------------------------------
// Mastery

/// Options of [`mastery_distribution`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasteryOptions {
    /// Equal-width histogram buckets over [0, 1], ≥ 1 (default 10); the last includes 1.
    pub buckets: usize,
    /// Mastery threshold in (0, 1] (default 0.95).
    pub threshold: f64,
}

impl Default for MasteryOptions {
    fn default() -> Self {
        Self { buckets: 10, threshold: DEFAULT_MASTERY_THRESHOLD }
    }
}

/// One histogram bucket: `[lower, upper)`, the last `[lower, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Lower edge (`k / buckets`).
    pub lower: f64,
    /// Upper edge (`(k + 1) / buckets`).
    pub upper: f64,
    /// Values in the bucket.
    pub count: usize,
}

/// The mastery of one skill across learners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillMasteryDistribution {
    /// The skill's id.
    pub skill: String,
    /// Values (learners).
    pub learners: usize,
    /// Mean mastery.
    pub mean: f64,
    /// Median mastery.
    pub median: f64,
    /// Values at or above the threshold.
    pub mastered: usize,
    /// `mastered / learners`.
    pub share_mastered: f64,
    /// The histogram.
    pub histogram: Vec<Bucket>,
}

/// The bucket of `v` in `[0, 1]` among `n` equal-width buckets, consistent
/// with the edges `k / n` computed in floating point.
fn bucket_of(v: f64, n: usize) -> usize {
    let nf = n as f64;
    let mut k = ((v * nf).floor() as usize).min(n - 1);
    if k > 0 && v < k as f64 / nf {
        k -= 1;
    }
    if k + 1 < n && v >= (k + 1) as f64 / nf {
        k += 1;
    }
    k
}

/// The distribution of mastery per skill from `(skill, p_known)` values
/// (one per learner and skill), by skill id.
pub fn mastery_distribution<S: AsRef<str>>(
    values: &[(S, f64)],
    options: &MasteryOptions,
) -> Result<Vec<SkillMasteryDistribution>, AnalyticsError> {
    option("buckets", "at least 1", options.buckets as f64, options.buckets >= 1)?;
    let t = options.threshold;
    option("threshold", "in (0, 1]", t, t.is_finite() && t > 0.0 && t <= 1.0)?;
    let mut by_skill: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (skill, p) in values {
        let skill = skill.as_ref();
        if !(p.is_finite() && (0.0..=1.0).contains(p)) {
            return Err(AnalyticsError::InvalidMastery { skill: skill.to_owned(), value: *p });
        }
        by_skill.entry(skill).or_default().push(*p);
    }
    let n = options.buckets;
    Ok(by_skill
        .into_iter()
        .map(|(skill, ps)| {
            let mut histogram: Vec<Bucket> = (0..n)
                .map(|k| Bucket { lower: k as f64 / n as f64, upper: (k + 1) as f64 / n as f64, count: 0 })
                .collect();
            for &p in &ps {
                histogram[bucket_of(p, n)].count += 1;
            }
            let mastered = ps.iter().filter(|&&p| p >= t).count();
            SkillMasteryDistribution {
                skill: skill.to_owned(),
                learners: ps.len(),
                mean: mean(&ps).unwrap_or(0.0),
                median: median(&ps).unwrap_or(0.0),
                mastered,
                share_mastered: mastered as f64 / ps.len() as f64,
                histogram,
            }
        })
        .collect())
}

/// Each learner's BKT `P(known)` per skill after their answers among
/// `events` (in time order), with the skill's parameters from `params` or
/// `default`. Answers without a skill are skipped.
pub fn trace_mastery(
    events: &[ActivityEvent],
    params: &BTreeMap<String, BktParams>,
    default: &BktParams,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>, AnalyticsError> {
    validate_events(events)?;
    default.validate().map_err(|source| AnalyticsError::Bkt { skill: String::new(), source })?;
    for (skill, p) in params {
        p.validate().map_err(|source| AnalyticsError::Bkt { skill: skill.clone(), source })?;
    }
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for e in chronological(events) {
        if let Activity::Answered { skill, correct, .. } = &e.activity {
            if skill.is_empty() {
                continue;
            }
            let p = params.get(skill).unwrap_or(default);
            let state = out.entry(e.learner.clone()).or_default().entry(skill.clone()).or_insert(p.prior);
            *state = p.update(*state, *correct);
        }
    }
    Ok(out)
}

/// Per skill, each learner's answers in time order (learners by id): the
/// input of [`crate::bkt::fit_em`]. Answers without a skill are skipped.
pub fn answer_sequences(events: &[ActivityEvent]) -> BTreeMap<String, Vec<Vec<bool>>> {
    let mut by: BTreeMap<&str, BTreeMap<&str, Vec<bool>>> = BTreeMap::new();
    for e in chronological(events) {
        if let Activity::Answered { skill, correct, .. } = &e.activity
            && !skill.is_empty()
        {
            by.entry(skill.as_str()).or_default().entry(e.learner.as_str()).or_default().push(*correct);
        }
    }
    by.into_iter().map(|(s, per)| (s.to_owned(), per.into_values().collect())).collect()
}
