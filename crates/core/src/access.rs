//! Live access lists: who is an administrator, who may only read, and which
//! client addresses are refused outright. The ops module keeps them in step
//! with its shared `config/access-control.json`; the HTTP edge asks
//! [`AccessList::ip_blocked`] before anything else, and [`AccessPolicy`]
//! applies the user lists on top of the role policy. A change takes effect
//! on the next request.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::context::Principal;
use crate::pipeline::Target;
use crate::ports::{Decision, Policy};
use crate::registry::Registry;

/// A client address or network (`203.0.113.7`, `198.51.100.0/24`,
/// `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses an address or a CIDR network.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn masked(net: u128, ip: u128, bits: u32, prefix: u8) -> bool {
    let host_bits = bits - u32::from(prefix);
    if host_bits >= 128 {
        return true;
    }
    (net >> host_bits) == (ip >> host_bits)
}

/// One version of the lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// Subjects allowed everything the server offers, whatever their roles.
    pub admin_users: HashSet<String>,
    /// Subjects allowed only tools annotated read-only (and reading
    /// resources and prompts).
    pub readonly_users: HashSet<String>,
    /// Client addresses refused at the HTTP edge.
    pub blocked_ips: Vec<IpRange>,
}

/// The lists in force, swapped whole on each change.
#[derive(Debug, Default)]
pub struct AccessList {
    current: parking_lot::RwLock<Arc<AccessRules>>,
}

impl AccessList {
    pub fn new(rules: AccessRules) -> Self {
        Self { current: parking_lot::RwLock::new(Arc::new(rules)) }
    }

    /// Put `rules` in force.
    pub fn set(&self, rules: AccessRules) {
        *self.current.write() = Arc::new(rules);
    }

    pub fn current(&self) -> Arc<AccessRules> {
        Arc::clone(&self.current.read())
    }

    /// Whether requests from `ip` are refused.
    pub fn ip_blocked(&self, ip: IpAddr) -> bool {
        self.current.read().blocked_ips.iter().any(|r| r.contains(ip))
    }
}

/// The role policy with the access lists applied on top: an administrator
/// is allowed everything, a read-only user is denied every tool not
/// annotated read-only (so those tools also vanish from its listings).
pub struct AccessPolicy {
    inner: Arc<dyn Policy>,
    access: Arc<AccessList>,
    registry: Arc<Registry>,
}

impl AccessPolicy {
    pub fn new(inner: Arc<dyn Policy>, access: Arc<AccessList>, registry: Arc<Registry>) -> Self {
        Self { inner, access, registry }
    }

    fn overrides(&self, principal: &Principal, target: &Target<'_>) -> Option<Decision> {
        let rules = self.access.current();
        if rules.admin_users.contains(&principal.subject) {
            return Some(Decision::Allow);
        }
        if let Target::Tool(name) = target
            && rules.readonly_users.contains(&principal.subject)
            && self.registry.tool(name).is_none_or(|t| t.annotations.read_only != Some(true))
        {
            return Some(Decision::Deny(format!("read-only user: `{name}` is not a read-only tool")));
        }
        None
    }
}

impl Policy for AccessPolicy {
    fn decide(&self, principal: &Principal, target: &Target<'_>) -> Decision {
        self.overrides(principal, target).unwrap_or_else(|| self.inner.decide(principal, target))
    }

    fn decide_call(&self, principal: &Principal, target: &Target<'_>, args: &serde_json::Value) -> Decision {
        self.overrides(principal, target).unwrap_or_else(|| self.inner.decide_call(principal, target, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_addresses_and_networks() {
        let r = IpRange::parse("198.51.100.0/24").unwrap();
        assert!(r.contains("198.51.100.7".parse().unwrap()));
        assert!(!r.contains("198.51.101.7".parse().unwrap()));
        assert!(r.contains("::ffff:198.51.100.9".parse().unwrap()));
        let one = IpRange::parse("203.0.113.7").unwrap();
        assert!(one.contains("203.0.113.7".parse().unwrap()));
        assert!(!one.contains("203.0.113.8".parse().unwrap()));
        let v6 = IpRange::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "1.2.3", "1.2.3.4/33", "::/129", "x/8", "1.2.3.4/-1"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }
}
