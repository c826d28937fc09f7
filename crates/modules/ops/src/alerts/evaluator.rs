//! The alert state machine: inactive → pending → firing → (resolved).
//!
//! For each rule, on each [`AlertEvaluator::observe`]:
//! - the condition holds and the rule was inactive: it goes *pending*, since
//!   now (or fires at once when `for` is 0);
//! - it holds and has been pending for at least `for`: it *fires* and a
//!   [`AlertTransition::Firing`] is returned, once; it stays firing without
//!   repeating while the condition holds;
//! - it stops holding: a pending rule goes back to inactive silently (a flap
//!   shorter than `for` never fires), a firing one returns
//!   [`AlertTransition::Resolved`];
//! - the metric has no value (`None`, NaN): nothing changes, neither firing
//!   nor resolving. A gap in the data is not evidence either way; the
//!   condition is taken to have held (or not) throughout it.
//!
//! "Held continuously" is judged on the samples: the condition must hold at
//! every sample from the first one that met it until `for` has passed.
//! Time comes in as a parameter; a clock going backwards only delays firing.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Metric;
use super::Metrics;
use super::rules::{AlertRule, Op, format_duration};
use crate::incidents::Severity;

/// A change of an alert's state the module acts on (writes a notice, opens
/// an incident).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AlertTransition {
    /// The condition has held for the rule's `for`.
    Firing {
        /// The rule, as it was when the alert fired.
        rule: AlertRule,
        /// The value that made it fire.
        value: f64,
        /// When the condition began to hold (the first sample that met it).
        #[serde(serialize_with = "rfc3339")]
        #[schemars(with = "String")]
        since: OffsetDateTime,
    },
    /// The condition of a firing alert no longer holds.
    Resolved {
        /// The rule.
        rule: AlertRule,
        /// The value that resolved it.
        value: f64,
        /// The `since` of the [`Firing`](Self::Firing) this closes: when the
        /// condition began to hold.
        #[serde(serialize_with = "rfc3339")]
        #[schemars(with = "String")]
        firing_since: OffsetDateTime,
    },
    /// A firing alert whose rule was removed, or whose condition changed, by
    /// [`AlertEvaluator::replace_rules`]: it is no longer watched.
    Withdrawn {
        /// The rule as it was.
        rule: AlertRule,
        /// The last value seen.
        value: f64,
        /// When the condition began to hold.
        #[serde(serialize_with = "rfc3339")]
        #[schemars(with = "String")]
        firing_since: OffsetDateTime,
    },
}

impl AlertTransition {
    /// The rule this transition is about.
    pub fn rule(&self) -> &AlertRule {
        match self {
            Self::Firing { rule, .. } | Self::Resolved { rule, .. } | Self::Withdrawn { rule, .. } => rule,
        }
    }

    /// `firing`, `resolved` or `withdrawn`.
    pub fn state(&self) -> &'static str {
        match self {
            Self::Firing { .. } => "firing",
            Self::Resolved { .. } => "resolved",
            Self::Withdrawn { .. } => "withdrawn",
        }
    }

    /// The value the transition happened at.
    pub fn value(&self) -> f64 {
        match self {
            Self::Firing { value, .. } | Self::Resolved { value, .. } | Self::Withdrawn { value, .. } => *value,
        }
    }

    /// When the condition began to hold.
    pub fn since(&self) -> OffsetDateTime {
        match self {
            Self::Firing { since, .. } => *since,
            Self::Resolved { firing_since, .. } | Self::Withdrawn { firing_since, .. } => *firing_since,
        }
    }

    /// Whether the module should open an incident: a firing alert of a rule
    /// with `open_incident`.
    pub fn opens_incident(&self) -> bool {
        matches!(self, Self::Firing { rule, .. } if rule.open_incident)
    }
}

fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ActiveAlert {
    /// The rule's name.
    pub rule: String,
    /// The metric watched.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The threshold, in the metric's unit.
    pub threshold: f64,
    /// `error_rate > 1% for 5m`.
    pub condition: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The latest value that met the condition.
    pub value: f64,
    /// When the condition began to hold (RFC 3339).
    pub since: String,
    /// When the alert fired (RFC 3339).
    pub fired_at: String,
    /// Whether firing opened an incident.
    pub open_incident: bool,
    /// Teams to notify.
    pub teams: Vec<String>,
    /// The rule's description.
    pub description: String,
}

/// A rule whose condition holds but not yet for its `for`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PendingAlert {
    /// The rule's name.
    pub rule: String,
    /// The latest value.
    pub value: f64,
    /// When the condition began to hold (RFC 3339).
    pub since: String,
    /// When it fires if the condition keeps holding (RFC 3339).
    pub fires_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Pending { since: OffsetDateTime, value: f64 },
    Firing { since: OffsetDateTime, fired_at: OffsetDateTime, value: f64 },
}

/// Evaluates rules over a sequence of [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct AlertEvaluator {
    rules: Vec<AlertRule>,
    /// By rule name; a rule without an entry is inactive.
    states: HashMap<String, State>,
}

impl AlertEvaluator {
    /// Every rule inactive.
    pub fn new(rules: Vec<AlertRule>) -> Self {
        Self { rules, states: HashMap::new() }
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// New rules (a reloaded document). A rule whose name and condition
    /// (metric, operator, threshold) are unchanged keeps its state, even if
    /// its `for`, severity, teams or description changed: a pending alert is
    /// held to the new `for` at the next sample, a firing one stays firing.
    /// Every other state is dropped; firing alerts dropped that way are
    /// returned as [`AlertTransition::Withdrawn`] so their notices can be
    /// closed.
    pub fn replace_rules(&mut self, rules: Vec<AlertRule>) -> Vec<AlertTransition> {
        let mut withdrawn = Vec::new();
        let mut states = HashMap::new();
        for old in &self.rules {
            let Some(state) = self.states.remove(&old.name) else { continue };
            match rules.iter().find(|r| r.name == old.name) {
                Some(new) if new.same_condition(old) => {
                    states.insert(new.name.clone(), state);
                }
                _ => {
                    if let State::Firing { since, value, .. } = state {
                        withdrawn.push(AlertTransition::Withdrawn { rule: old.clone(), value, firing_since: since });
                    }
                }
            }
        }
        self.rules = rules;
        self.states = states;
        withdrawn
    }

    /// Evaluates every rule on `metrics`, sampled at `now`; returns what
    /// fired and what resolved, in rule order.
    pub fn observe(&mut self, now: OffsetDateTime, metrics: &Metrics) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        for rule in &self.rules {
            let Some(value) = metrics.value(rule.metric) else { continue };
            let holds = rule.holds(value);
            let state = self.states.get(&rule.name).copied();
            let next = match (state, holds) {
                (None, false) => None,
                (None, true) => {
                    if rule.for_seconds == 0 {
                        out.push(AlertTransition::Firing { rule: rule.clone(), value, since: now });
                        Some(State::Firing { since: now, fired_at: now, value })
                    } else {
                        Some(State::Pending { since: now, value })
                    }
                }
                (Some(State::Pending { since, .. }), true) => {
                    if now - since >= rule.for_duration() {
                        out.push(AlertTransition::Firing { rule: rule.clone(), value, since });
                        Some(State::Firing { since, fired_at: now, value })
                    } else {
                        Some(State::Pending { since, value })
                    }
                }
                (Some(State::Pending { .. }), false) => None,
                (Some(State::Firing { since, fired_at, .. }), true) => Some(State::Firing { since, fired_at, value }),
                (Some(State::Firing { since, .. }), false) => {
                    out.push(AlertTransition::Resolved { rule: rule.clone(), value, firing_since: since });
                    None
                }
            };
            match next {
                Some(s) => self.states.insert(rule.name.clone(), s),
                None => self.states.remove(&rule.name),
            };
        }
        out
    }

    /// The firing alerts, in rule order.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.rules
            .iter()
            .filter_map(|rule| match self.states.get(&rule.name) {
                Some(State::Firing { since, fired_at, value }) => Some(ActiveAlert {
                    rule: rule.name.clone(),
                    metric: rule.metric,
                    op: rule.op,
                    threshold: rule.threshold,
                    condition: rule.condition_text(),
                    severity: rule.severity,
                    value: *value,
                    since: format_time(*since),
                    fired_at: format_time(*fired_at),
                    open_incident: rule.open_incident,
                    teams: rule.teams.clone(),
                    description: rule.description.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The pending alerts, in rule order.
    pub fn pending(&self) -> Vec<PendingAlert> {
        self.rules
            .iter()
            .filter_map(|rule| match self.states.get(&rule.name) {
                Some(State::Pending { since, value }) => Some(PendingAlert {
                    rule: rule.name.clone(),
                    value: *value,
                    since: format_time(*since),
                    fires_at: format_time(since.saturating_add(rule.for_duration())),
                }),
                _ => None,
            })
            .collect()
    }
}

/// RFC 3339, or the `Display` form for a year RFC 3339 cannot write.
fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// `2m 30s`, for people.
fn human(d: time::Duration) -> String {
    let secs = u64::try_from(d.whole_seconds()).unwrap_or(0);
    let days = secs / 86_400;
    let rest = format_duration(secs % 86_400);
    if days > 0 { format!("{days}d{rest}") } else { rest }
}

/// A Markdown table cell: no line breaks, `|` escaped.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// The notice the module writes to `alerts/` for `t`, written at `now`
/// (headings in English and Japanese).
pub fn alert_markdown(t: &AlertTransition, now: OffsetDateTime) -> String {
    let rule = t.rule();
    let metric = rule.metric;
    let (title, value_label) = match t {
        AlertTransition::Firing { .. } => ("FIRING / 発報中", "Value / 現在値"),
        AlertTransition::Resolved { .. } => ("RESOLVED / 解消", "Value at resolution / 解消時の値"),
        AlertTransition::Withdrawn { .. } => ("WITHDRAWN / 取り下げ", "Last value / 最終値"),
    };
    let mut md = format!("# {title}: {}\n\n", rule.name);
    if let AlertTransition::Withdrawn { .. } = t {
        md.push_str(
            "The rule was removed or its condition changed while the alert was firing; it is no longer watched.\n\
             アラートの発報中にルールが削除または条件変更されたため、監視を終了しました。\n\n",
        );
    }
    md.push_str("| Field / 項目 | Value / 値 |\n|---|---|\n");
    let mut row = |k: &str, v: &str| md.push_str(&format!("| {k} | {} |\n", cell(v)));
    row("Rule / ルール", &rule.name);
    row("Severity / 重大度", &rule.severity.label());
    row("Condition / 条件", &rule.condition_text());
    row(value_label, &metric.format_value(t.value()));
    row("Since / 発生時刻", &format_time(t.since()));
    match t {
        AlertTransition::Firing { .. } => {
            row("Held for / 継続時間", &human(now - t.since()));
        }
        AlertTransition::Resolved { .. } | AlertTransition::Withdrawn { .. } => {
            row("Ended / 終了時刻", &format_time(now));
            row("Duration / 継続時間", &human(now - t.since()));
        }
    }
    let teams = if rule.teams.is_empty() { "-".to_owned() } else { rule.teams.join(", ") };
    row("Teams / 担当チーム", &teams);
    let incident = match (t, rule.open_incident) {
        (AlertTransition::Firing { .. }, true) => "opened / 起票",
        (_, true) => "opened when it fired / 発報時に起票済み",
        (_, false) => "none / なし",
    };
    row("Incident / インシデント", incident);
    row("Notice time / 通知時刻", &format_time(now));
    if !rule.description.is_empty() {
        md.push_str("\n## Description / 説明\n\n");
        md.push_str(rule.description.trim());
        md.push('\n');
    }
    md
}

/// Where the module writes the notice: `alerts/<time>-<rule>-<state>.md`,
/// with the time as `20250601T100500Z` (sorts by time, no `:` in file
/// names). Rule names are restricted to safe characters by the parser.
pub fn alert_notice_path(t: &AlertTransition, now: OffsetDateTime) -> String {
    let u = now.to_offset(time::UtcOffset::UTC);
    format!(
        "alerts/{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}-{}.md",
        u.year(),
        u8::from(u.month()),
        u.day(),
        u.hour(),
        u.minute(),
        u.second(),
        t.rule().name,
        t.state()
    )
}
