//! Role-based policy: roles map to patterns of tools, resources and prompts.
//!
//! Patterns are exact names, `*` (everything), or a name with one `*`
//! wildcard (`health.*`, `*_report`, `market://*/quote`). Default deny: a
//! principal may use a target only if one of its roles allows it.

use std::collections::HashMap;

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

/// What one role may use.
#[derive(Debug, Clone, Default)]
pub struct RoleGrants {
    pub tools: Vec<Pattern>,
    pub resources: Vec<Pattern>,
    pub prompts: Vec<Pattern>,
}

/// Roles and their grants.
#[derive(Debug, Clone, Default)]
pub struct RolePolicy {
    roles: HashMap<String, RoleGrants>,
}

impl RolePolicy {
    pub fn new(roles: HashMap<String, RoleGrants>) -> Self {
        Self { roles }
    }

    /// One role that may use everything.
    pub fn allow_all(role: &str) -> Self {
        let all = || vec![Pattern { prefix: String::new(), suffix: Some(String::new()) }];
        let mut roles = HashMap::new();
        roles.insert(role.to_owned(), RoleGrants { tools: all(), resources: all(), prompts: all() });
        Self { roles }
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

    #[test]
    fn default_deny_and_role_grants() {
        let mut roles = HashMap::new();
        roles.insert(
            "trader".into(),
            RoleGrants {
                tools: vec![Pattern::parse("place_order").unwrap(), Pattern::parse("get_*").unwrap()],
                resources: vec![Pattern::parse("market://*").unwrap()],
                prompts: vec![],
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
