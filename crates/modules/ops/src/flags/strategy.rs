//! Activation strategies, compiled once when a state is loaded.

use std::collections::{BTreeMap, HashMap};

use super::constraint::Constraint;
use super::context::Context;
use super::hash::{random_id, random_in, rollout_bucket};
use super::model::{StrategyDef, VariantDef};
use super::net::{IpNet, parse_ip};

#[derive(Debug, Clone)]
pub(crate) struct Strategy {
    kind: Kind,
    constraints: Vec<Constraint>,
    segments: Vec<u64>,
    /// Strategy variants; when non-empty they replace the feature's variants.
    pub(crate) variants: Vec<VariantDef>,
    /// The `stickiness` parameter, the fallback stickiness of the variants.
    pub(crate) stickiness: Option<String>,
    /// The `groupId` parameter, else the feature's name.
    pub(crate) group: String,
}

#[derive(Debug, Clone)]
enum Kind {
    Default,
    UserWithId(Vec<String>),
    /// `gradualRolloutUserId` / `gradualRolloutSessionId`: the bucket of that
    /// field; off when the field is absent. Its group defaults to "" (not to
    /// the feature's name), as in the SDKs.
    FieldRollout {
        field: &'static str,
        percentage: f64,
        group: String,
    },
    Random {
        percentage: f64,
    },
    Flexible {
        rollout: f64,
        stickiness: String,
    },
    RemoteAddress(Vec<(String, Option<IpNet>)>),
    /// A strategy this engine does not implement: never on.
    Unknown,
}

impl Strategy {
    pub(crate) fn compile(def: &StrategyDef, feature: &str) -> Self {
        let params = &def.parameters;
        let param = |k: &str| params.get(k).map(String::as_str);
        let group = param("groupId").filter(|g| !g.is_empty()).unwrap_or(feature).to_owned();
        let kind = match def.name.as_str() {
            "default" => Kind::Default,
            "userWithId" => Kind::UserWithId(list(param("userIds"))),
            "gradualRolloutUserId" | "gradualRolloutSessionId" => Kind::FieldRollout {
                field: if def.name == "gradualRolloutUserId" { "userId" } else { "sessionId" },
                percentage: number(params, "percentage"),
                group: param("groupId").unwrap_or_default().to_owned(),
            },
            "gradualRolloutRandom" => Kind::Random { percentage: number(params, "percentage") },
            "flexibleRollout" => Kind::Flexible {
                rollout: number(params, "rollout"),
                stickiness: param("stickiness").filter(|s| !s.is_empty()).unwrap_or("default").to_owned(),
            },
            "remoteAddress" => {
                Kind::RemoteAddress(list(param("IPs")).into_iter().map(|ip| (ip.clone(), IpNet::parse(&ip))).collect())
            }
            _ => Kind::Unknown,
        };
        Self {
            kind,
            constraints: def.constraints.iter().map(Constraint::compile).collect(),
            segments: def.segments.clone(),
            variants: def.variants.clone(),
            stickiness: param("stickiness").map(str::to_owned),
            group,
        }
    }

    /// A `default` strategy without constraints or segments: on for everyone.
    pub(crate) fn is_static(&self) -> bool {
        matches!(self.kind, Kind::Default) && self.constraints.is_empty() && self.segments.is_empty()
    }

    /// A strategy that puts a share of callers (neither none nor all) on.
    pub(crate) fn is_split(&self) -> bool {
        let partial = |p: f64| p > 0.0 && p < 100.0;
        match &self.kind {
            Kind::FieldRollout { percentage, .. } | Kind::Random { percentage } => partial(*percentage),
            Kind::Flexible { rollout, .. } => partial(*rollout),
            _ => false,
        }
    }

    /// On when every constraint holds, every segment exists and all its
    /// constraints hold, and the strategy itself is on.
    pub(crate) fn is_enabled(&self, ctx: &Context, segments: &HashMap<u64, Vec<Constraint>>) -> bool {
        self.constraints.iter().all(|c| c.matches(ctx))
            && self.segments.iter().all(|id| segments.get(id).is_some_and(|cs| cs.iter().all(|c| c.matches(ctx))))
            && self.kind_enabled(ctx)
    }

    fn kind_enabled(&self, ctx: &Context) -> bool {
        let in_rollout = |id: &str, group: &str, percentage: f64| {
            percentage > 0.0 && f64::from(rollout_bucket(id, group)) <= percentage
        };
        match &self.kind {
            Kind::Default => true,
            Kind::UserWithId(ids) => ctx.user_id.as_deref().is_some_and(|u| ids.iter().any(|id| id == u)),
            Kind::FieldRollout { field, percentage, group } => {
                ctx.sticky(field).is_some_and(|id| in_rollout(id, group, *percentage))
            }
            Kind::Random { percentage } => *percentage >= f64::from(random_in(100)),
            Kind::Flexible { rollout, stickiness } => {
                let id = match stickiness.as_str() {
                    "default" => ctx.sticky("userId").or_else(|| ctx.sticky("sessionId")).map(str::to_owned),
                    "random" => None,
                    field => match ctx.sticky(field) {
                        Some(id) => Some(id.to_owned()),
                        // A custom field that is absent: off.
                        None => return false,
                    },
                };
                let id = id.unwrap_or_else(random_id);
                in_rollout(&id, &self.group, *rollout)
            }
            Kind::RemoteAddress(rules) => ctx.remote_address.as_deref().is_some_and(|addr| {
                let ip = parse_ip(addr);
                rules.iter().any(|(text, net)| text == addr || net.zip(ip).is_some_and(|(net, ip)| net.contains(ip)))
            }),
            Kind::Unknown => false,
        }
    }
}

/// A comma-separated parameter, entries trimmed, empty ones dropped.
fn list(param: Option<&str>) -> Vec<String> {
    param.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A numeric parameter; absent or unparsable is NaN, which no comparison
/// satisfies, so the strategy is off.
fn number(params: &BTreeMap<String, String>, key: &str) -> f64 {
    params.get(key).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(f64::NAN)
}
