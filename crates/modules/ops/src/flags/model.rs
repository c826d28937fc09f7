//! The wire format of Unleash's client API, read leniently: unknown fields are
//! ignored, `null` stands for an empty list, and parameter or constraint values
//! may be numbers or booleans where Unleash usually sends strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::FlagsError;
use super::variant::Payload;

/// A full client features payload, as served by `GET /api/client/features`:
/// `{"version": 2, "features": [...], "segments": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientFeatures {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) features: Vec<FeatureDef>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) segments: Vec<SegmentDef>,
}

impl ClientFeatures {
    /// Reads a client features payload from JSON text.
    ///
    /// # Errors
    /// [`FlagsError::Json`] when the text is not JSON of that shape.
    pub fn from_json(text: &str) -> Result<Self, FlagsError> {
        serde_json::from_str(text).map_err(|e| FlagsError::json("client features", &e))
    }
}

/// A batch of events of Unleash's delta API (`GET /api/client/delta`):
/// `{"events": [{"type": "hydration", ...}, {"type": "feature-updated", ...}]}`.
/// [`Engine::apply`](super::Engine::apply) applies them in order.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeltaEvents {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) events: Vec<DeltaEvent>,
}

impl DeltaEvents {
    /// Reads a batch of delta events from JSON text.
    ///
    /// # Errors
    /// [`FlagsError::Json`] when the text is not JSON of that shape.
    pub fn from_json(text: &str) -> Result<Self, FlagsError> {
        serde_json::from_str(text).map_err(|e| FlagsError::json("delta events", &e))
    }
}

/// One event of the delta API. Event types this engine does not know are
/// ignored, so a newer server does not break an older client.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum DeltaEvent {
    /// The whole state: replaces every feature and segment.
    Hydration {
        #[serde(default, deserialize_with = "nullable")]
        features: Vec<FeatureDef>,
        #[serde(default, deserialize_with = "nullable")]
        segments: Vec<SegmentDef>,
    },
    FeatureUpdated {
        feature: FeatureDef,
    },
    #[serde(rename_all = "camelCase")]
    FeatureRemoved {
        feature_name: String,
    },
    SegmentUpdated {
        segment: SegmentDef,
    },
    #[serde(rename_all = "camelCase")]
    SegmentRemoved {
        segment_id: u64,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FeatureDef {
    pub(crate) name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) enabled: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) strategies: Vec<StrategyDef>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) variants: Vec<VariantDef>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) dependencies: Vec<DependencyDef>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StrategyDef {
    pub(crate) name: String,
    #[serde(default, deserialize_with = "string_map")]
    pub(crate) parameters: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) constraints: Vec<ConstraintDef>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) segments: Vec<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) variants: Vec<VariantDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConstraintDef {
    pub(crate) context_name: String,
    pub(crate) operator: String,
    /// `None` when absent, so a single `value` can stand in for the list.
    #[serde(default, deserialize_with = "string_list")]
    pub(crate) values: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string")]
    pub(crate) value: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) inverted: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) case_insensitive: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SegmentDef {
    pub(crate) id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) constraints: Vec<ConstraintDef>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VariantDef {
    pub(crate) name: String,
    /// Unleash sends integers (the server has already spread `variable`
    /// weights over 1000); anything else counts as 0.
    #[serde(default, deserialize_with = "weight")]
    pub(crate) weight: u32,
    #[serde(default, deserialize_with = "string")]
    pub(crate) stickiness: Option<String>,
    #[serde(default)]
    pub(crate) payload: Option<Payload>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) overrides: Vec<OverrideDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OverrideDef {
    pub(crate) context_name: String,
    #[serde(default, deserialize_with = "string_list")]
    pub(crate) values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DependencyDef {
    pub(crate) feature: String,
    /// Absent means `true`: the parent must be enabled.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) enabled: Option<bool>,
    #[serde(default, deserialize_with = "string_list")]
    pub(crate) variants: Option<Vec<String>>,
}

/// `null` reads as the default value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A scalar as text: strings as they are, numbers and booleans as JSON
/// prints them; `null`, arrays and objects are no value.
pub(crate) fn scalar(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(scalar))
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.map(|vs| vs.into_iter().filter_map(scalar).collect()))
}

/// A JSON object of scalars; entries whose value is `null` (or not a scalar)
/// are left out.
pub(crate) fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    Ok(map.into_iter().filter_map(|(k, v)| scalar(v).map(|v| (k, v))).collect())
}

fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| v.as_u64()).map_or(0, |w| u32::try_from(w).unwrap_or(u32::MAX)))
}
