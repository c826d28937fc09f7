//! `config/access-control.json`: the lists the pipeline and the HTTP edge
//! enforce live (see [`plexus_core::access`]).
//!
//! ```json
//! {"admin_users": ["sato"], "readonly_users": ["bi-dashboard"], "blocked_ips": ["203.0.113.7", "198.51.100.0/24"]}
//! ```
//! Every field is optional; anything else is refused, as is a malformed
//! address, so a typo cannot silently open or close access.

use plexus_core::access::{AccessRules, IpRange};
use serde_json::Value;

/// The document's name in the registry.
pub const ACCESS_DOC: &str = "config/access-control.json";

const FIELDS: [&str; 3] = ["admin_users", "readonly_users", "blocked_ips"];

/// Reads the access-control document; the errors name each field at fault.
pub fn parse_access(doc: &Value) -> Result<AccessRules, Vec<String>> {
    let Some(map) = doc.as_object() else {
        return Err(vec!["the access-control document is a JSON object".into()]);
    };
    let mut errors = Vec::new();
    for key in map.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(format!("unknown field `{key}` (expected one of {})", FIELDS.join(", ")));
    }
    let list = |field: &str, errors: &mut Vec<String>| -> Vec<String> {
        match map.get(field) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v.as_str() {
                    Some(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                    _ => {
                        errors.push(format!("`{field}[{i}]` must be a non-empty string"));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                errors.push(format!("`{field}` must be a list of strings"));
                Vec::new()
            }
        }
    };
    let admin_users = list("admin_users", &mut errors);
    let readonly_users = list("readonly_users", &mut errors);
    let mut blocked_ips = Vec::new();
    for (i, text) in list("blocked_ips", &mut errors).iter().enumerate() {
        match IpRange::parse(text) {
            Ok(r) => blocked_ips.push(r),
            Err(e) => errors.push(format!("`blocked_ips[{i}]`: {e}")),
        }
    }
    if let Some(both) = admin_users.iter().find(|u| readonly_users.contains(u)) {
        errors.push(format!("`{both}` is both an admin and a read-only user"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AccessRules {
        admin_users: admin_users.into_iter().collect(),
        readonly_users: readonly_users.into_iter().collect(),
        blocked_ips,
    })
}
