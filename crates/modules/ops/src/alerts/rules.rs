//! Alert rules, read from a JSON document (`config/alert-rules.json`):
//!
//! ```json
//! {"rules": [{"name": "high-error-rate", "metric": "error_rate", "op": ">",
//!             "threshold": "1%", "for": "5m", "severity": "sev2",
//!             "open_incident": true, "teams": ["medical"],
//!             "description": "More than 1% of calls fail"}]}
//! ```
//!
//! Fields: `name`, `metric`, `op` and `threshold` are required; `for`
//! (default 0: fire on the first sample that holds), `severity` (default
//! `sev3`), `open_incident` (default false), `teams` (default none) and
//! `description` (default empty) are optional. Unknown fields are errors.
//!
//! - `name`: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, starting with
//!   a letter or digit (it names the notice files); unique, ignoring case.
//! - `op`: `>`, `>=`, `<` or `<=`.
//! - `threshold`: a number in the metric's unit, or a string:
//!   `"1%"` (for `error_rate`, a fraction, `"1%"` is `0.01`; for the
//!   `*_percent` metrics it is `1`), `"250ms"` / `"1.5s"` for latencies,
//!   `"512MiB"` / `"1GB"` for memory, `"50/s"` for the request rate.
//!   `error_rate` as a number is a fraction and must be at most 1.
//! - `for`: `"30s"`, `"5m"`, `"1h"`, or whole seconds as a number; at most
//!   [`MAX_FOR_SECONDS`].
//! - `severity`: `sev1`..`sev4` (or `critical`, `high`, `medium`, `low`), as
//!   for incidents.
//!
//! [`parse_rules`] reports every problem, each prefixed with the rule's
//! position and name and the field: `rules[2] "slow": op: ...`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Metric, Unit};
use crate::incidents::Severity;

/// Rules in one document at most.
pub const MAX_RULES: usize = 500;
/// The longest `for`: one day.
pub const MAX_FOR_SECONDS: u64 = 86_400;
const MAX_NAME_CHARS: usize = 64;
const MAX_TEAMS: usize = 32;
const MAX_TEAM_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 2000;
const FIELDS: [&str; 9] =
    ["name", "metric", "op", "threshold", "for", "severity", "open_incident", "teams", "description"];

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Op {
    /// value > threshold
    #[serde(rename = ">")]
    Gt,
    /// value >= threshold
    #[serde(rename = ">=")]
    Ge,
    /// value < threshold
    #[serde(rename = "<")]
    Lt,
    /// value <= threshold
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    /// `>`, `>=`, `<`, `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    /// Whether `value op threshold`; false when either is NaN.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            ">" => Ok(Op::Gt),
            ">=" => Ok(Op::Ge),
            "<" => Ok(Op::Lt),
            "<=" => Ok(Op::Le),
            _ => Err(format!("unknown operator {:?} (expected one of >, >=, <, <=)", clip(s))),
        }
    }
}

/// One validated rule. Serialized with `threshold` in the metric's unit and
/// `for` in seconds, which [`parse_rules`] reads back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AlertRule {
    /// Unique name (ASCII letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The metric watched.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// In the metric's unit; `error_rate` is a fraction (0.01 for 1%).
    pub threshold: f64,
    /// Seconds the condition must hold before the alert fires.
    #[serde(rename = "for")]
    pub for_seconds: u64,
    /// Severity of the alert and of the incident it opens.
    pub severity: Severity,
    /// Whether firing opens an incident.
    pub open_incident: bool,
    /// Teams to notify.
    pub teams: Vec<String>,
    /// What the alert means, for people.
    pub description: String,
}

impl AlertRule {
    /// Whether `value` meets the condition.
    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.threshold)
    }

    /// `for` as a duration.
    pub fn for_duration(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.for_seconds).unwrap_or(i64::MAX))
    }

    /// `error_rate > 1% for 5m`.
    pub fn condition_text(&self) -> String {
        let mut s = format!("{} {} {}", self.metric, self.op, self.metric.format_value(self.threshold));
        if self.for_seconds > 0 {
            s.push_str(" for ");
            s.push_str(&format_duration(self.for_seconds));
        }
        s
    }

    /// Same metric, operator and threshold: the state of the alert carries
    /// over a reload. (`for`, severity, teams and description may change.)
    pub fn same_condition(&self, other: &AlertRule) -> bool {
        self.metric == other.metric && self.op == other.op && self.threshold.to_bits() == other.threshold.to_bits()
    }
}

/// `90` → `1m30s`, `3600` → `1h`, `0` → `0s`.
pub(crate) fn format_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The rules of a document `{"rules": [...]}`, or every problem found.
pub fn parse_rules(doc: &Value) -> Result<Vec<AlertRule>, Vec<String>> {
    let Some(obj) = doc.as_object() else {
        return Err(vec![format!("the document must be an object with a \"rules\" list, not {}", kind(doc))]);
    };
    let mut errors = Vec::new();
    for key in obj.keys().filter(|k| k.as_str() != "rules") {
        errors.push(format!("unknown field {:?} at the top level (expected \"rules\")", clip(key)));
    }
    let list = match obj.get("rules") {
        None => {
            errors.push("missing field \"rules\" (a list of rules)".to_owned());
            return Err(errors);
        }
        Some(Value::Array(list)) => list,
        Some(other) => {
            errors.push(format!("\"rules\" must be a list, not {}", kind(other)));
            return Err(errors);
        }
    };
    if list.len() > MAX_RULES {
        errors.push(format!("too many rules: {} (at most {MAX_RULES})", list.len()));
        return Err(errors);
    }
    let mut rules = Vec::with_capacity(list.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, value) in list.iter().enumerate() {
        let label = rule_label(i, value);
        match parse_rule(value) {
            Ok(rule) => {
                let key = rule.name.to_ascii_lowercase();
                if let Some(first) = seen.get(&key) {
                    errors
                        .push(format!("{label}: name: duplicate of rules[{first}] (names are unique, ignoring case)"));
                } else {
                    seen.insert(key, i);
                    rules.push(rule);
                }
            }
            Err(problems) => errors.extend(problems.into_iter().map(|p| format!("{label}: {p}"))),
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

/// `rules[3] "name"`, or `rules[3]` when the name is missing.
fn rule_label(i: usize, value: &Value) -> String {
    match value.get("name").and_then(Value::as_str) {
        Some(name) => format!("rules[{i}] {:?}", clip(name)),
        None => format!("rules[{i}]"),
    }
}

/// One rule, or its problems as `field: what is wrong`.
fn parse_rule(value: &Value) -> Result<AlertRule, Vec<String>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![format!("a rule must be an object, not {}", kind(value))]);
    };
    let mut errors = Vec::new();
    for key in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(format!("unknown field {:?} (expected one of {})", clip(key), FIELDS.join(", ")));
    }

    let name = field(&mut errors, "name", required(obj, "name").and_then(parse_name));
    let metric = field(
        &mut errors,
        "metric",
        required(obj, "metric")
            .and_then(|v| string(v))
            .and_then(|s| Metric::from_str(s.trim()).map_err(|e| e.to_string())),
    );
    let op = field(&mut errors, "op", required(obj, "op").and_then(|v| string(v)).and_then(Op::from_str));
    let threshold_value = required(obj, "threshold");
    let threshold = match metric {
        Some(metric) => field(&mut errors, "threshold", threshold_value.and_then(|v| parse_threshold(metric, v))),
        // Without a metric the threshold's unit is unknown; only report a
        // missing threshold.
        None => field(&mut errors, "threshold", threshold_value.map(|_| 0.0)),
    };
    let for_seconds = field(&mut errors, "for", obj.get("for").map_or(Ok(0), parse_duration));
    let severity = field(
        &mut errors,
        "severity",
        obj.get("severity").map_or(Ok(Severity::Sev3), |v| {
            string(v).and_then(|s| {
                Severity::from_str(s)
                    .map_err(|_| format!("unknown severity {:?} (expected sev1, sev2, sev3 or sev4)", clip(s)))
            })
        }),
    );
    let open_incident = field(
        &mut errors,
        "open_incident",
        obj.get("open_incident")
            .map_or(Ok(false), |v| v.as_bool().ok_or_else(|| format!("must be true or false, not {}", kind(v)))),
    );
    let teams = field(&mut errors, "teams", obj.get("teams").map_or(Ok(Vec::new()), parse_teams));
    let description = field(
        &mut errors,
        "description",
        obj.get("description").map_or(Ok(String::new()), |v| {
            let s = string(v)?;
            if s.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(format!("longer than {MAX_DESCRIPTION_CHARS} characters"));
            }
            Ok(s.to_owned())
        }),
    );

    match (name, metric, op, threshold, for_seconds, severity, open_incident, teams, description) {
        (
            Some(name),
            Some(metric),
            Some(op),
            Some(threshold),
            Some(for_seconds),
            Some(severity),
            Some(open_incident),
            Some(teams),
            Some(description),
        ) if errors.is_empty() => {
            Ok(AlertRule { name, metric, op, threshold, for_seconds, severity, open_incident, teams, description })
        }
        _ => Err(errors),
    }
}

/// `result`'s value, or `None` with its error recorded as `name: error`.
fn field<T>(errors: &mut Vec<String>, name: &str, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(format!("{name}: {e}"))).ok()
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    obj.get(key).ok_or_else(|| "missing (required)".to_owned())
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| format!("must be a string, not {}", kind(v)))
}

fn parse_name(v: &Value) -> Result<String, String> {
    let s = string(v)?;
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(format!("longer than {MAX_NAME_CHARS} characters"));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.chars().all(ok_char) {
        return Err(format!(
            "{:?} may hold only ASCII letters, digits, '-', '_' and '.', and must start with a letter or digit",
            clip(s)
        ));
    }
    Ok(s.to_owned())
}

fn parse_teams(v: &Value) -> Result<Vec<String>, String> {
    let Some(list) = v.as_array() else {
        return Err(format!("must be a list of team names, not {}", kind(v)));
    };
    if list.len() > MAX_TEAMS {
        return Err(format!("more than {MAX_TEAMS} teams"));
    }
    let mut teams: Vec<String> = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let s = t.as_str().map(str::trim).ok_or_else(|| format!("[{i}] must be a string, not {}", kind(t)))?;
        if s.is_empty() || s.chars().count() > MAX_TEAM_CHARS {
            return Err(format!("[{i}] must be 1 to {MAX_TEAM_CHARS} characters"));
        }
        if !teams.iter().any(|have| have == s) {
            teams.push(s.to_owned());
        }
    }
    Ok(teams)
}

/// A duration in whole seconds: `"30s"`, `"5m"`, `"1h"`, or a number of
/// seconds; at most [`MAX_FOR_SECONDS`].
pub fn parse_duration(v: &Value) -> Result<u64, String> {
    let seconds = match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a whole, non-negative number of seconds"))?,
        Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (digits, unit) = t.split_at(split);
            if digits.is_empty() {
                return Err(format!(
                    "{:?} is not a duration (write \"30s\", \"5m\", \"1h\" or seconds as a number)",
                    clip(s)
                ));
            }
            let n: u64 = digits.parse().map_err(|_| format!("{:?} is too large", clip(s)))?;
            let scale = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "" => {
                    return Err(format!("{:?} has no unit (write \"{n}s\", or the number {n} for seconds)", clip(s)));
                }
                _ => {
                    return Err(format!("{:?} has an unknown unit {:?} (expected s, m or h)", clip(s), clip(unit)));
                }
            };
            n.checked_mul(scale).ok_or_else(|| format!("{:?} is too large", clip(s)))?
        }
        other => return Err(format!("must be a string such as \"5m\" or a number of seconds, not {}", kind(other))),
    };
    if seconds > MAX_FOR_SECONDS {
        return Err(format!(
            "{} is longer than the maximum of {}",
            format_duration(seconds),
            format_duration(MAX_FOR_SECONDS)
        ));
    }
    Ok(seconds)
}

/// A threshold for `metric` in its unit (see the module documentation for
/// the strings accepted).
pub fn parse_threshold(metric: Metric, v: &Value) -> Result<f64, String> {
    let unit = metric.unit();
    let value = match v {
        Value::Number(n) => {
            let x = n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("{n} is not a finite number"))?;
            if unit == Unit::Fraction && x > 1.0 {
                return Err(format!(
                    "{metric} is a fraction from 0 to 1: write {} or \"{x}%\"",
                    super::trim_decimals(x / 100.0, 6)
                ));
            }
            x
        }
        Value::String(s) => threshold_string(metric, unit, s.trim()).map_err(|e| format!("{:?}: {e}", clip(s)))?,
        other => return Err(format!("must be a number or a string such as \"1%\", not {}", kind(other))),
    };
    if value < 0.0 {
        return Err("must not be negative".to_owned());
    }
    Ok(value)
}

fn threshold_string(metric: Metric, unit: Unit, s: &str) -> Result<f64, String> {
    let number = |t: &str| -> Result<f64, String> {
        t.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| "not a number".to_owned())
    };
    if let Some(n) = s.strip_suffix('%') {
        let x = number(n)?;
        return match unit {
            Unit::Fraction if x > 100.0 => Err("a rate above 100%".to_owned()),
            Unit::Fraction => Ok(x / 100.0),
            Unit::Percent => Ok(x),
            _ => Err(format!("a percentage, but {metric} is not a rate or percentage")),
        };
    }
    match unit {
        Unit::Milliseconds => {
            if let Some(n) = s.strip_suffix("ms") {
                number(n)
            } else if let Some(n) = s.strip_suffix('s') {
                Ok(number(n)? * 1000.0)
            } else {
                number(s)
            }
        }
        Unit::Bytes => {
            let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
            let (n, suffix) = s.split_at(split);
            let scale: f64 = match suffix {
                "" | "B" => 1.0,
                "KB" | "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => return Err(format!("unknown unit {:?} (expected B, KB, MB, GB, KiB, MiB or GiB)", clip(suffix))),
            };
            Ok(number(n)? * scale)
        }
        Unit::PerSecond => number(s.strip_suffix("/s").unwrap_or(s)),
        Unit::Fraction => {
            let x = number(s)?;
            if x > 1.0 {
                return Err(format!("{metric} is a fraction from 0 to 1; write \"{x}%\" for a percentage"));
            }
            Ok(x)
        }
        Unit::Percent => number(s),
    }
}

/// A JSON value's kind, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// At most 64 characters of outside text in a message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
