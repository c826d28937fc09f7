//! Variants: what [`Engine::variant`](super::Engine::variant) returns, and how
//! one is chosen from weighted definitions.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::hash::{VARIANT_SEED, normalized, random_id};
use super::model::VariantDef;

/// The variant of a feature for a context, shaped as Unleash SDKs return it:
/// `{"name": "blue", "payload": {...}, "enabled": true, "feature_enabled": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// The variant's name; `disabled` when there is none.
    pub name: String,
    /// The variant's payload, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// Whether a variant was chosen (false for the `disabled` variant).
    pub enabled: bool,
    /// Whether the feature itself is enabled for this context.
    #[serde(alias = "featureEnabled")]
    pub feature_enabled: bool,
}

impl Variant {
    /// The `disabled` variant: no variant was chosen.
    pub fn disabled(feature_enabled: bool) -> Self {
        Self { name: "disabled".to_owned(), payload: None, enabled: false, feature_enabled }
    }
}

/// A variant's payload: `{"type": "string" | "json" | "csv" | "number", "value": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// How to read `value`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload, always as text.
    pub value: String,
}

impl VariantDef {
    pub(crate) fn to_variant(&self) -> Variant {
        Variant { name: self.name.clone(), payload: self.payload.clone(), enabled: true, feature_enabled: true }
    }
}

/// Chooses among `variants` for `ctx` as the SDKs do: none if the weights add
/// up to 0; else the first variant with an override matching the context;
/// else the bucket of the stickiness value in `group`, seeded with Unleash's
/// variant seed, walked through the cumulative weights.
///
/// Stickiness is the first variant's, else `fallback` (the strategy's), else
/// `default` (`userId`, `sessionId`, `remoteAddress`, then random).
pub(crate) fn select<'a>(
    variants: &'a [VariantDef],
    group: &str,
    fallback: Option<&str>,
    ctx: &Context,
) -> Option<&'a VariantDef> {
    let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
    let total = u32::try_from(total).ok().filter(|&t| t > 0)?;
    if let Some(v) = variants.iter().find(|v| overridden(v, ctx)) {
        return Some(v);
    }
    let stickiness = variants.first().and_then(|v| v.stickiness.as_deref()).or(fallback).unwrap_or("default");
    let seed = match stickiness {
        "default" => ["userId", "sessionId", "remoteAddress"].iter().find_map(|f| ctx.sticky(f)),
        field => ctx.sticky(field),
    };
    let target = match seed {
        Some(seed) => normalized(seed, group, total, VARIANT_SEED),
        None => normalized(&random_id(), group, total, VARIANT_SEED),
    };
    let mut counter = 0u32;
    variants.iter().filter(|v| v.weight > 0).find(|v| {
        counter += v.weight;
        counter >= target
    })
}

fn overridden(v: &VariantDef, ctx: &Context) -> bool {
    v.overrides
        .iter()
        .any(|o| ctx.field(&o.context_name).is_some_and(|value| o.values.iter().flatten().any(|x| x == value)))
}
