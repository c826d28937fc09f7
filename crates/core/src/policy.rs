//! Role-based policy: roles map to patterns of tools, resources and prompts,
//! with attribute conditions on tool arguments and time windows.
//!
//! Patterns are exact names, `*` (everything), or a name with one `*`
//! wildcard (`health.*`, `*_report`, `market://*/quote`). Default deny: a
//! principal may use a target only if one of its roles allows it. A role
//! allows a tool call when one of its tool patterns matches, every condition
//! of that role whose pattern matches the tool holds for the call's
//! arguments, and the current time lies in one of the role's windows (if it
//! has any). Listings show what a role grants, before conditions: a tool a
//! trader may call with up to 1,000 shares is listed for the trader.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::context::Principal;
use crate::pipeline::Target;
use crate::ports::{Decision, Policy};

/// A name pattern with at most one `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    prefix: String,
    suffix: Option<String>,
}

impl Pattern {
    /// Parse a pattern; `None` if it has more than one `*` or is empty.
    pub fn parse(p: &str) -> Option<Self> {
        if p.is_empty() || p.matches('*').count() > 1 {
            return None;
        }
        Some(match p.split_once('*') {
            Some((pre, suf)) => Pattern { prefix: pre.to_owned(), suffix: Some(suf.to_owned()) },
            None => Pattern { prefix: p.to_owned(), suffix: None },
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.suffix {
            None => name == self.prefix,
            Some(suf) => {
                name.len() >= self.prefix.len() + suf.len()
                    && name.starts_with(&self.prefix)
                    && name.ends_with(suf.as_str())
            }
        }
    }
}

/// A check on one argument of a tool call, addressed by JSON pointer
/// (`/order/quantity`). An argument that is absent fails the check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// A number no larger than this.
    Max(f64),
    /// A number no smaller than this.
    Min(f64),
    /// One of these values.
    OneOf(Vec<Value>),
    /// A string equal to the caller's tenant.
    IsCallerTenant,
}

/// A condition a role puts on the tools matching `tools`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub tools: Pattern,
    pub pointer: String,
    pub check: Check,
}

impl Condition {
    /// `Err(reason)` when the arguments fail the condition.
    fn holds(&self, principal: &Principal, args: &Value) -> Result<(), String> {
        let Some(v) = args.pointer(&self.pointer) else {
            return Err(format!("argument {} is required for this role", self.pointer));
        };
        let ok = match &self.check {
            Check::Max(max) => v.as_f64().is_some_and(|n| n <= *max),
            Check::Min(min) => v.as_f64().is_some_and(|n| n >= *min),
            Check::OneOf(values) => values.contains(v),
            Check::IsCallerTenant => v.as_str() == Some(principal.tenant.as_str()),
        };
        if ok { Ok(()) } else { Err(format!("argument {} = {v} fails {:?}", self.pointer, self.check)) }
    }
}

/// Days and UTC hours in which a role is active: `mon-fri 08:00-18:00`,
/// `sat,sun 10:00-14:00`, `* 00:00-24:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Bit 0 is Monday.
    days: u8,
    start_min: u16,
    end_min: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(d: &str) -> Option<u8> {
    DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)).and_then(|i| u8::try_from(i).ok())
}

fn parse_minute(t: &str) -> Option<u16> {
    let (h, m) = t.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

impl TimeWindow {
    /// Parse `DAYS HH:MM-HH:MM`; `None` when malformed or empty.
    pub fn parse(s: &str) -> Option<Self> {
        let (days_part, hours) = s.trim().split_once(' ')?;
        let mut days = 0u8;
        for item in days_part.split(',') {
            if item == "*" {
                days = 0x7f;
            } else if let Some((a, b)) = item.split_once('-') {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                if a > b {
                    return None;
                }
                for d in a..=b {
                    days |= 1 << d;
                }
            } else {
                days |= 1 << parse_day(item)?;
            }
        }
        let (start, end) = hours.trim().split_once('-')?;
        let (start_min, end_min) = (parse_minute(start)?, parse_minute(end)?);
        (start_min < end_min && days != 0).then_some(Self { days, start_min, end_min })
    }

    pub fn contains(&self, t: OffsetDateTime) -> bool {
        let day = t.weekday().number_days_from_monday();
        let minute = u16::from(t.hour()) * 60 + u16::from(t.minute());
        self.days & (1 << day) != 0 && minute >= self.start_min && minute < self.end_min
    }
}

/// What one role may use.
#[derive(Debug, Clone, Default)]
pub struct RoleGrants {
    pub tools: Vec<Pattern>,
    pub resources: Vec<Pattern>,
    pub prompts: Vec<Pattern>,
    pub conditions: Vec<Condition>,
    /// When empty, the role is active at all times.
    pub windows: Vec<TimeWindow>,
}

/// A policy that can be replaced while the server runs (reload without
/// restart). Readers take a cheap snapshot per decision.
pub struct SharedPolicy {
    current: parking_lot::RwLock<Arc<dyn Policy>>,
}

impl std::fmt::Debug for SharedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPolicy").finish_non_exhaustive()
    }
}

impl SharedPolicy {
    pub fn new(policy: Arc<dyn Policy>) -> Self {
        Self { current: parking_lot::RwLock::new(policy) }
    }

    /// Replace the policy; calls already past the authorize layer keep the
    /// decision they got.
    pub fn replace(&self, policy: Arc<dyn Policy>) {
        *self.current.write() = policy;
    }

    fn get(&self) -> Arc<dyn Policy> {
        Arc::clone(&self.current.read())
    }
}

impl Policy for SharedPolicy {
    fn decide(&self, principal: &Principal, target: &Target<'_>) -> Decision {
        self.get().decide(principal, target)
    }

    fn decide_call(&self, principal: &Principal, target: &Target<'_>, args: &Value) -> Decision {
        self.get().decide_call(principal, target, args)
    }
}

/// The current time, injectable for tests.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Roles and their grants.
#[derive(Clone)]
pub struct RolePolicy {
    roles: HashMap<String, RoleGrants>,
    clock: Clock,
}

impl std::fmt::Debug for RolePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolePolicy").field("roles", &self.roles).finish_non_exhaustive()
    }
}

impl Default for RolePolicy {
    fn default() -> Self {
        Self::new(HashMap::new())
    }
}

impl RolePolicy {
    pub fn new(roles: HashMap<String, RoleGrants>) -> Self {
        Self { roles, clock: Arc::new(OffsetDateTime::now_utc) }
    }

    /// Use another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// One role that may use everything.
    pub fn allow_all(role: &str) -> Self {
        let all = || vec![Pattern { prefix: String::new(), suffix: Some(String::new()) }];
        let mut roles = HashMap::new();
        roles.insert(
            role.to_owned(),
            RoleGrants { tools: all(), resources: all(), prompts: all(), ..RoleGrants::default() },
        );
        Self::new(roles)
    }
}

impl Policy for RolePolicy {
    fn decide(&self, principal: &Principal, target: &Target<'_>) -> Decision {
        let (kind, name) = match target {
            Target::Tool(n) => ("tool", *n),
            Target::Resource(n) => ("resource", *n),
            Target::Prompt(n) => ("prompt", *n),
            Target::Listing(_) => return Decision::Allow,
        };
        let allowed = principal.roles.iter().filter_map(|r| self.roles.get(r)).any(|g| {
            let pats = match kind {
                "tool" => &g.tools,
                "resource" => &g.resources,
                _ => &g.prompts,
            };
            pats.iter().any(|p| p.matches(name))
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny(format!("no role of `{}` grants {kind} `{name}`", principal.subject))
        }
    }

    fn decide_call(&self, principal: &Principal, target: &Target<'_>, args: &Value) -> Decision {
        let Target::Tool(tool) = target else { return self.decide(principal, target) };
        let now = (self.clock)();
        let mut reasons = Vec::new();
        for role in &principal.roles {
            let Some(g) = self.roles.get(role) else { continue };
            if !g.tools.iter().any(|p| p.matches(tool)) {
                continue;
            }
            if !g.windows.is_empty() && !g.windows.iter().any(|w| w.contains(now)) {
                reasons.push(format!("role `{role}` is outside its time windows"));
                continue;
            }
            match g.conditions.iter().filter(|c| c.tools.matches(tool)).try_for_each(|c| c.holds(principal, args)) {
                Ok(()) => return Decision::Allow,
                Err(why) => reasons.push(format!("role `{role}`: {why}")),
            }
        }
        if reasons.is_empty() {
            Decision::Deny(format!("no role of `{}` grants tool `{tool}`", principal.subject))
        } else {
            Decision::Deny(reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TenantId;

    fn who(roles: &[&str]) -> Principal {
        Principal {
            subject: "u".into(),
            tenant: TenantId::default_tenant(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            scopes: vec![],
            groups: vec![],
            method: "test",
        }
    }

    #[test]
    fn patterns() {
        let p = Pattern::parse("health.*").unwrap();
        assert!(p.matches("health.get"));
        assert!(!p.matches("healthy"));
        let p = Pattern::parse("*_report").unwrap();
        assert!(p.matches("generate_compliance_report"));
        assert!(!p.matches("report"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        assert!(Pattern::parse("a*b*").is_none());
        assert!(Pattern::parse("").is_none());
        assert!(Pattern::parse("place_order").unwrap().matches("place_order"));
        assert!(!Pattern::parse("place_order").unwrap().matches("place_orders"));
    }

    fn at(weekday_offset_days: i64, hour: u8) -> OffsetDateTime {
        // 2026-11-23 is a Monday.
        let monday = time::macros::datetime!(2026-11-23 00:00 UTC);
        monday + time::Duration::days(weekday_offset_days) + time::Duration::hours(i64::from(hour))
    }

    #[test]
    fn time_windows_parse_and_contain() {
        let w = TimeWindow::parse("mon-fri 08:00-18:00").unwrap();
        assert!(w.contains(at(0, 8)) && w.contains(at(4, 17)));
        assert!(!w.contains(at(0, 18)) && !w.contains(at(0, 7)) && !w.contains(at(5, 12)));
        let w = TimeWindow::parse("sat,sun 00:00-24:00").unwrap();
        assert!(w.contains(at(6, 23)) && !w.contains(at(2, 12)));
        for bad in
            ["", "mon", "fri-mon 08:00-09:00", "mon 18:00-08:00", "xyz 08:00-09:00", "mon 8-9", "mon 25:00-26:00"]
        {
            assert!(TimeWindow::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn conditions_and_windows_limit_calls_not_listings() {
        let mut roles = HashMap::new();
        roles.insert(
            "trader".into(),
            RoleGrants {
                tools: vec![Pattern::parse("place_order").unwrap()],
                conditions: vec![
                    Condition {
                        tools: Pattern::parse("place_order").unwrap(),
                        pointer: "/quantity".into(),
                        check: Check::Max(1000.0),
                    },
                    Condition {
                        tools: Pattern::parse("*").unwrap(),
                        pointer: "/tenant".into(),
                        check: Check::IsCallerTenant,
                    },
                ],
                windows: vec![TimeWindow::parse("mon-fri 08:00-18:00").unwrap()],
                ..RoleGrants::default()
            },
        );
        let now = Arc::new(std::sync::Mutex::new(at(1, 10)));
        let clock_now = Arc::clone(&now);
        let policy = RolePolicy::new(roles).with_clock(Arc::new(move || *clock_now.lock().unwrap()));
        let trader = who(&["trader"]);
        let order = |q: f64, tenant: &str| serde_json::json!({"quantity": q, "tenant": tenant});
        let place = Target::Tool("place_order");
        assert_eq!(policy.decide_call(&trader, &place, &order(1000.0, "default")), Decision::Allow);
        let Decision::Deny(why) = policy.decide_call(&trader, &place, &order(1001.0, "default")) else { panic!() };
        assert!(why.contains("/quantity"), "{why}");
        let Decision::Deny(why) = policy.decide_call(&trader, &place, &order(1.0, "other")) else { panic!() };
        assert!(why.contains("/tenant"), "{why}");
        let Decision::Deny(why) = policy.decide_call(&trader, &place, &serde_json::json!({})) else { panic!() };
        assert!(why.contains("required"), "{why}");
        // listings show the tool whatever the arguments or the hour
        *now.lock().unwrap() = at(5, 10);
        assert_eq!(policy.decide(&trader, &place), Decision::Allow);
        let Decision::Deny(why) = policy.decide_call(&trader, &place, &order(1.0, "default")) else { panic!() };
        assert!(why.contains("time windows"), "{why}");
    }

    #[test]
    fn default_deny_and_role_grants() {
        let mut roles = HashMap::new();
        roles.insert(
            "trader".into(),
            RoleGrants {
                tools: vec![Pattern::parse("place_order").unwrap(), Pattern::parse("get_*").unwrap()],
                resources: vec![Pattern::parse("market://*").unwrap()],
                ..RoleGrants::default()
            },
        );
        let policy = RolePolicy::new(roles);
        assert_eq!(policy.decide(&who(&["trader"]), &Target::Tool("place_order")), Decision::Allow);
        assert_eq!(policy.decide(&who(&["trader"]), &Target::Tool("get_market_data")), Decision::Allow);
        assert!(matches!(policy.decide(&who(&["trader"]), &Target::Tool("calculate_risk")), Decision::Deny(_)));
        assert!(matches!(policy.decide(&who(&[]), &Target::Tool("place_order")), Decision::Deny(_)));
        assert!(matches!(policy.decide(&who(&["trader"]), &Target::Prompt("x")), Decision::Deny(_)));
        assert_eq!(policy.decide(&who(&["trader"]), &Target::Resource("market://7203.T/quote")), Decision::Allow);
    }
}
