//! The hub's simple flag format, mapped onto Unleash's.
//!
//! The teams' first flag file predates the hub and reads
//! `{"ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical", "voicedrive"]}}`.
//! Each entry becomes one Unleash feature with one `flexibleRollout`
//! strategy (stickiness `default`, group = the flag's name, so the same
//! users stay in as the rollout grows), constrained by `team IN teams`,
//! `userId IN users` and `environment IN environments` when those lists
//! are given. A document is in Unleash's own format instead when it has a
//! `features` array (`GET /api/client/features`).

use serde_json::{Map, Value, json};

use super::model::ClientFeatures;

/// The fields a simple flag may have.
const FIELDS: [&str; 6] = ["enabled", "rollout", "teams", "users", "environments", "description"];

/// Reads a flag document in either format. The errors name each flag and
/// field at fault.
pub fn parse_flags(doc: &Value) -> Result<ClientFeatures, Vec<String>> {
    let Some(map) = doc.as_object() else {
        return Err(vec!["a flag document is a JSON object (flag name -> definition, or Unleash's `features`)".into()]);
    };
    if map.get("features").is_some_and(Value::is_array) {
        return ClientFeatures::from_json(&doc.to_string()).map_err(|e| vec![e.to_string()]);
    }
    let mut errors = Vec::new();
    let mut features = Vec::new();
    for (name, def) in map {
        match simple_feature(name, def) {
            Ok(f) => features.push(f),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    ClientFeatures::from_json(&json!({"version": 2, "features": features}).to_string()).map_err(|e| vec![e.to_string()])
}

fn simple_feature(name: &str, def: &Value) -> Result<Value, Vec<String>> {
    let mut errors = Vec::new();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        errors.push(format!("flag `{}`: a name is 1 to 200 printable characters", name.escape_debug()));
    }
    let Some(def) = def.as_object() else {
        return Err(vec![format!("flag `{name}`: the definition must be an object like {{\"enabled\": true}}")]);
    };
    for key in def.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(format!("flag `{name}`: unknown field `{key}` (expected one of {})", FIELDS.join(", ")));
    }
    let enabled = match def.get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(format!("flag `{name}`: `enabled` must be true or false"));
            false
        }
        None => {
            errors.push(format!("flag `{name}`: `enabled` is required"));
            false
        }
    };
    let rollout = match def.get("rollout") {
        None => 100.0,
        Some(v) => match v.as_f64() {
            Some(r) if (0.0..=100.0).contains(&r) => r,
            _ => {
                errors.push(format!("flag `{name}`: `rollout` must be a number from 0 to 100, found {v}"));
                0.0
            }
        },
    };
    let mut constraints = Vec::new();
    for (field, context) in [("teams", "team"), ("users", "userId"), ("environments", "environment")] {
        let Some(v) = def.get(field) else { continue };
        match string_list(v) {
            Some(values) if !values.is_empty() => constraints.push(json!({
                "contextName": context, "operator": "IN", "values": values, "inverted": false, "caseInsensitive": false
            })),
            _ => errors.push(format!("flag `{name}`: `{field}` must be a non-empty list of strings")),
        }
    }
    if def.get("description").is_some_and(|d| !d.is_string()) {
        errors.push(format!("flag `{name}`: `description` must be a string"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut parameters = Map::new();
    parameters.insert("rollout".into(), Value::String(format_rollout(rollout)));
    parameters.insert("stickiness".into(), "default".into());
    parameters.insert("groupId".into(), name.into());
    Ok(json!({
        "name": name,
        "description": def.get("description").cloned().unwrap_or(Value::Null),
        "enabled": enabled,
        "strategies": [{"name": "flexibleRollout", "parameters": parameters, "constraints": constraints}],
    }))
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

fn format_rollout(r: f64) -> String {
    if r.fract() == 0.0 { format!("{r:.0}") } else { r.to_string() }
}
