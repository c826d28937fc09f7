//! Reading what an import brings: FHIR Bundles and Bulk Data NDJSON.
//!
//! A Bundle (`batch` or `transaction`) is accepted whole or not at all:
//! every entry is validated, `urn:uuid:` full URLs are given ids (the
//! resource's own id, else the UUID, which is a valid FHIR id), and every
//! `urn:uuid:` reference is rewritten to `Type/id` — pointing into the
//! bundle, or to a resource already known to the store (Synthea's patient
//! bundles point at practitioners and organizations of separate bundles by
//! their UUIDs). A reference that resolves nowhere rejects the bundle.
//! Although FHIR lets a `batch` succeed entry by entry, a clinical import
//! that keeps half a patient record is worse than one that keeps none: the
//! report says which entries failed and why, and the bundle can be fixed
//! and imported again (imports are idempotent: ids are stable).
//!
//! NDJSON is one resource per line; each line stands alone and a bad line
//! is reported by number without stopping the file.

use std::collections::HashMap;

use serde_json::Value;

use crate::fhir::{self, Invalid};

/// A resource ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: String,
    pub id: String,
    pub resource: Value,
}

/// Something the import refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// `file#entry 3`, `file:12` (line), or `file` for the whole input.
    pub at: String,
    pub reason: String,
}

/// Why a bundle was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s), first: {} — {}", .0.len(), .0.first().map_or("", |r| r.at.as_str()), .0.first().map_or("", |r| r.reason.as_str()))]
pub struct BundleRejected(pub Vec<Rejected>);

fn reject(at: String, reason: impl std::fmt::Display) -> Rejected {
    Rejected { at, reason: reason.to_string() }
}

/// Rewrite every `urn:uuid:` reference in `v` with `resolve`; the ones it
/// cannot resolve are returned.
fn rewrite(v: &mut Value, resolve: &dyn Fn(&str) -> Option<String>, missing: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "reference"
                    && let Value::String(r) = x
                    && r.starts_with("urn:uuid:")
                {
                    match resolve(r) {
                        Some(to) => *r = to,
                        None => missing.push(r.clone()),
                    }
                } else {
                    rewrite(x, resolve, missing);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, resolve, missing)),
        _ => {}
    }
}

/// The entries of a Bundle, references resolved, or every problem found.
/// `known(id)` gives the type of a resource the store already has.
pub fn bundle(
    bundle: &Value,
    origin: &str,
    known: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Entry>, BundleRejected> {
    let whole = |reason: &str| BundleRejected(vec![reject(origin.to_owned(), reason)]);
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(whole("not a FHIR Bundle (resourceType is not Bundle)"));
    }
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or_default();
    if !matches!(kind, "batch" | "transaction" | "collection" | "searchset") {
        return Err(whole(&format!(
            "bundle type `{kind}` is not importable (batch, transaction, collection, searchset)"
        )));
    }
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(entries.len());
    let mut urns: HashMap<String, String> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("{origin}#entry {i}");
        let Some(resource) = e.get("resource") else {
            problems.push(reject(at, "entry has no resource"));
            continue;
        };
        let (kind, id) = match fhir::validate(resource) {
            Ok(k) => k,
            Err(err) => {
                problems.push(reject(at, err));
                continue;
            }
        };
        if let Some(method) = e.pointer("/request/method").and_then(Value::as_str)
            && !matches!(method, "POST" | "PUT")
        {
            problems.push(reject(at, format!("request method {method} is not an import (POST or PUT)")));
            continue;
        }
        let full_url = e.get("fullUrl").and_then(Value::as_str).unwrap_or_default();
        let uuid = full_url.strip_prefix("urn:uuid:").filter(|u| fhir::is_id(u));
        let Some(id) = id.or_else(|| uuid.map(str::to_owned)) else {
            problems.push(reject(at, "resource has no id and its fullUrl is not a urn:uuid"));
            continue;
        };
        if !full_url.is_empty() {
            urns.insert(full_url.to_owned(), format!("{kind}/{id}"));
        }
        let mut resource = resource.clone();
        resource["id"] = Value::String(id.clone());
        out.push((at, Entry { kind, id, resource }));
    }
    let resolve = |r: &str| -> Option<String> {
        urns.get(r).cloned().or_else(|| {
            let id = r.strip_prefix("urn:uuid:")?;
            known(id).map(|kind| format!("{kind}/{id}"))
        })
    };
    let mut entries = Vec::with_capacity(out.len());
    for (at, mut e) in out {
        let mut missing = Vec::new();
        rewrite(&mut e.resource, &resolve, &mut missing);
        if let Some(m) = missing.first() {
            problems.push(reject(at, format!("reference {m} is neither in the bundle nor already imported")));
            continue;
        }
        entries.push(e);
    }
    let mut seen = std::collections::HashSet::new();
    for e in &entries {
        if !seen.insert((e.kind.as_str(), e.id.as_str())) {
            problems.push(reject(origin.to_owned(), format!("{}/{} appears twice", e.kind, e.id)));
        }
    }
    if problems.is_empty() { Ok(entries) } else { Err(BundleRejected(problems)) }
}

/// The resources of Bulk Data NDJSON text, and the lines refused.
pub fn ndjson(text: &str, origin: &str) -> (Vec<Entry>, Vec<Rejected>) {
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{origin}:{}", n + 1);
        let resource: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                rejected.push(reject(at, format!("not JSON: {e}")));
                continue;
            }
        };
        match fhir::validate(&resource) {
            Ok((kind, Some(id))) => ok.push(Entry { kind, id, resource }),
            Ok((_, None)) => rejected.push(reject(at, Invalid::BadId(String::new()))),
            Err(e) => rejected.push(reject(at, e)),
        }
    }
    (ok, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn urns_become_references_and_one_bad_entry_rejects_the_bundle() {
        let p = "urn:uuid:11111111-2222-3333-4444-555555555555";
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": p, "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:aaaaaaaa-2222-3333-4444-555555555555",
             "resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": p}}},
        ]});
        let e = bundle(&b, "b.json", &none).unwrap();
        assert_eq!(e[0].id, "11111111-2222-3333-4444-555555555555");
        assert_eq!(e[1].resource["subject"]["reference"], "Patient/11111111-2222-3333-4444-555555555555");

        let mut bad = b.clone();
        bad["entry"][1]["resource"]["subject"]["reference"] = json!("urn:uuid:99999999-2222-3333-4444-555555555555");
        bad["entry"].as_array_mut().unwrap().push(json!({"resource": {"resourceType": "Observation", "id": "o"}}));
        let r = bundle(&bad, "b.json", &none).unwrap_err().0;
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r.iter().any(|x| x.at == "b.json#entry 2" && x.reason.contains("status")), "{r:?}");
        assert!(r.iter().any(|x| x.reason.contains("neither in the bundle")), "{r:?}");
        // ... unless the store knows it.
        let known = |id: &str| (id == "99999999-2222-3333-4444-555555555555").then(|| "Practitioner".to_owned());
        bad["entry"].as_array_mut().unwrap().pop();
        let e = bundle(&bad, "b.json", &known).unwrap();
        assert_eq!(e[1].resource["subject"]["reference"], "Practitioner/99999999-2222-3333-4444-555555555555");
        assert!(bundle(&json!({"resourceType": "Patient"}), "x", &none).is_err());
        assert!(bundle(&json!({"resourceType": "Bundle", "type": "history"}), "x", &none).is_err());
    }

    #[test]
    fn ndjson_lines_stand_alone() {
        let text = "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n\nnot json\n{\"resourceType\":\"Patient\"}\n";
        let (ok, bad) = ndjson(text, "Patient.ndjson");
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.iter().map(|r| r.at.as_str()).collect::<Vec<_>>(), ["Patient.ndjson:3", "Patient.ndjson:4"]);
    }
}
