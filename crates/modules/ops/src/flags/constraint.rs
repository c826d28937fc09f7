//! Constraints, compiled once when a state is loaded: operands are parsed and
//! regular expressions built up front, so evaluation only reads the context.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use semver::Version;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::context::Context;
use super::model::ConstraintDef;
use super::net::{IpNet, parse_ip};

/// Bounds on a compiled regular expression, so a hostile pattern costs at most
/// this much memory (the regex crate matches in linear time).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    field: String,
    inverted: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    In(Vec<String>),
    NotIn(Vec<String>),
    Str {
        op: StrOp,
        values: Vec<String>,
        case_insensitive: bool,
    },
    Num(Cmp, f64),
    Date(Cmp, OffsetDateTime),
    Semver(Cmp, Version),
    Regex(Regex),
    Cidr(Vec<IpNet>),
    /// An unknown operator or an operand that does not parse: false, whether
    /// inverted or not.
    Never,
}

#[derive(Debug, Clone, Copy)]
enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Self::Eq => ord == Ordering::Equal,
            Self::Gt => ord == Ordering::Greater,
            Self::Gte => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Lte => ord != Ordering::Greater,
        }
    }
}

impl Constraint {
    pub(crate) fn compile(def: &ConstraintDef) -> Self {
        // List operators read `values` (a lone `value` stands in when there is
        // no list), trimmed, empty entries dropped, as the SDKs clean them.
        let values = || {
            let list = match (&def.values, &def.value) {
                (Some(values), _) => values.as_slice(),
                (None, Some(value)) => std::slice::from_ref(value),
                (None, None) => &[],
            };
            list.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned).collect::<Vec<_>>()
        };
        // Operators on one operand read `value`, falling back to the first of
        // `values`.
        let single = || def.value.as_deref().or_else(|| def.values.as_ref()?.first().map(String::as_str));
        let ci = def.case_insensitive;
        let str_test = |op| {
            let values = values();
            let values = if ci { values.iter().map(|v| v.to_lowercase()).collect() } else { values };
            Some(Test::Str { op, values, case_insensitive: ci })
        };
        let num = |cmp| single().and_then(parse_number).map(|n| Test::Num(cmp, n));
        let date = |cmp| single().and_then(parse_date).map(|d| Test::Date(cmp, d));
        let semver = |cmp| single().and_then(|s| Version::parse(s).ok()).map(|v| Test::Semver(cmp, v));
        let test = match def.operator.as_str() {
            "IN" => Some(Test::In(values())),
            "NOT_IN" => Some(Test::NotIn(values())),
            "STR_CONTAINS" => str_test(StrOp::Contains),
            "STR_STARTS_WITH" => str_test(StrOp::StartsWith),
            "STR_ENDS_WITH" => str_test(StrOp::EndsWith),
            "NUM_EQ" => num(Cmp::Eq),
            "NUM_GT" => num(Cmp::Gt),
            "NUM_GTE" => num(Cmp::Gte),
            "NUM_LT" => num(Cmp::Lt),
            "NUM_LTE" => num(Cmp::Lte),
            "DATE_AFTER" => date(Cmp::Gt),
            "DATE_BEFORE" => date(Cmp::Lt),
            "SEMVER_EQ" => semver(Cmp::Eq),
            "SEMVER_GT" => semver(Cmp::Gt),
            "SEMVER_GTE" => semver(Cmp::Gte),
            "SEMVER_LT" => semver(Cmp::Lt),
            "SEMVER_LTE" => semver(Cmp::Lte),
            "REGEX" => single().and_then(|p| {
                RegexBuilder::new(p)
                    .case_insensitive(ci)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .ok()
                    .map(Test::Regex)
            }),
            "IN_CIDR" => {
                // Entries that do not parse are skipped; none at all is broken.
                let nets: Vec<IpNet> = values().iter().filter_map(|v| IpNet::parse(v)).collect();
                (!nets.is_empty()).then_some(Test::Cidr(nets))
            }
            _ => None,
        };
        Self { field: def.context_name.clone(), inverted: def.inverted, test: test.unwrap_or(Test::Never) }
    }

    pub(crate) fn matches(&self, ctx: &Context) -> bool {
        let value = ctx.field(&self.field);
        let hit = match &self.test {
            Test::Never => return false,
            Test::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            Test::NotIn(values) => !value.is_some_and(|v| values.iter().any(|x| x == v)),
            Test::Str { op, values, case_insensitive } => value.is_some_and(|v| {
                let v = if *case_insensitive { v.to_lowercase() } else { v.to_owned() };
                values.iter().any(|x| match op {
                    StrOp::Contains => v.contains(x.as_str()),
                    StrOp::StartsWith => v.starts_with(x.as_str()),
                    StrOp::EndsWith => v.ends_with(x.as_str()),
                })
            }),
            Test::Num(cmp, n) => {
                value.and_then(parse_number).and_then(|v| v.partial_cmp(n)).is_some_and(|o| cmp.holds(o))
            }
            Test::Date(cmp, d) => {
                // Without a currentTime in the context, it is now.
                let at = match value {
                    Some(v) => parse_date(v),
                    None => Some(OffsetDateTime::now_utc()),
                };
                at.is_some_and(|at| cmp.holds(at.cmp(d)))
            }
            Test::Semver(cmp, version) => {
                value.and_then(|v| Version::parse(v).ok()).is_some_and(|v| cmp.holds(v.cmp_precedence(version)))
            }
            Test::Regex(re) => value.is_some_and(|v| re.is_match(v)),
            Test::Cidr(nets) => value.and_then(parse_ip).is_some_and(|ip| nets.iter().any(|n| n.contains(ip))),
        };
        hit != self.inverted
    }
}

/// A finite decimal number; `NaN` and infinities are refused.
fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_date(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}
