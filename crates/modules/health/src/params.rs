//! Search values of a resource: what the store's `health_search` table
//! holds beside each sealed resource.
//!
//! Clinical values (codes, categories, statuses, dates of service,
//! quantities, the display text of codes) are kept as they are, so that
//! ranges and text can be searched. What identifies a person (a Patient's
//! or Practitioner's identifiers, names and birth date) is never stored in
//! clear: only a keyed hash of it (a *blind index*, HMAC-SHA256 with a key
//! per tenant that is itself sealed), which answers exact matches and
//! nothing else.

use serde_json::Value;

/// One search value.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchValue {
    /// `code`, `category`, `clinical-status`, `status`, `criticality`,
    /// `gender`, `date`, `value-quantity`, `text`, `identifier`, `name`,
    /// `birthdate`, `identifier-value`.
    pub param: &'static str,
    pub system: String,
    /// The code, the unit (quantities), the lower-cased display text, or
    /// (blind) the material to hash.
    pub code: String,
    /// Date range the value covers (ISO 8601, as precise as the source).
    pub lo: Option<String>,
    pub hi: Option<String>,
    pub num: Option<f64>,
    /// The value is an identifier of a person: the store keeps its keyed
    /// hash, never the value.
    pub blind: bool,
}

impl SearchValue {
    fn token(param: &'static str, system: &str, code: &str) -> Self {
        Self { param, system: system.to_owned(), code: code.to_owned(), lo: None, hi: None, num: None, blind: false }
    }

    fn blind(param: &'static str, system: &str, material: String) -> Self {
        Self { blind: true, ..Self::token(param, system, &material) }
    }

    fn date(param: &'static str, lo: &str, hi: &str) -> Self {
        Self { lo: Some(lo.to_owned()), hi: Some(hi.to_owned()), ..Self::token(param, "", "") }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Codings of a CodeableConcept: `code` tokens and `text` values for the
/// display strings and the concept's text.
fn concept(out: &mut Vec<SearchValue>, param: &'static str, cc: Option<&Value>) {
    let Some(cc) = cc else { return };
    for coding in cc.get("coding").and_then(Value::as_array).into_iter().flatten() {
        if let Some(code) = coding.get("code").and_then(Value::as_str) {
            let system = coding.get("system").and_then(Value::as_str).unwrap_or("");
            out.push(SearchValue::token(param, system, code));
        }
        if param == "code"
            && let Some(d) = coding.get("display").and_then(Value::as_str)
        {
            push_text(out, d);
        }
    }
    if param == "code"
        && let Some(t) = cc.get("text").and_then(Value::as_str)
    {
        push_text(out, t);
    }
}

fn push_text(out: &mut Vec<SearchValue>, text: &str) {
    let t = text.trim().to_lowercase();
    if !t.is_empty() && !out.iter().any(|v| v.param == "text" && v.code == t) {
        out.push(SearchValue::token("text", "", &t));
    }
}

fn concepts(out: &mut Vec<SearchValue>, param: &'static str, v: Option<&Value>) {
    match v {
        Some(Value::Array(a)) => a.iter().for_each(|cc| concept(out, param, Some(cc))),
        other => concept(out, param, other),
    }
}

/// A date element (`date`, `dateTime`, `Period`) as a range.
fn date(out: &mut Vec<SearchValue>, param: &'static str, v: &Value, element: &str) {
    if let Some(s) = v.get(element).and_then(Value::as_str) {
        out.push(SearchValue::date(param, s, s));
    }
}

fn period(out: &mut Vec<SearchValue>, param: &'static str, p: Option<&Value>) {
    let Some(p) = p else { return };
    let start = p.get("start").and_then(Value::as_str);
    let end = p.get("end").and_then(Value::as_str);
    if let Some(lo) = start.or(end) {
        out.push(SearchValue::date(param, lo, end.unwrap_or(lo)));
    }
}

fn status(out: &mut Vec<SearchValue>, v: &Value) {
    if let Some(s) = v.get("status").and_then(Value::as_str) {
        out.push(SearchValue::token("status", "", s));
    }
}

fn identifiers(out: &mut Vec<SearchValue>, v: &Value) {
    for ident in v.get("identifier").and_then(Value::as_array).into_iter().flatten() {
        let Some(value) = ident.get("value").and_then(Value::as_str) else { continue };
        let system = ident.get("system").and_then(Value::as_str).unwrap_or("");
        out.push(SearchValue::blind("identifier", system, format!("{system}|{value}")));
        out.push(SearchValue::blind("identifier-value", "", value.to_owned()));
    }
}

/// Name parts, each matched exactly (case-insensitive) through the blind index.
fn names(out: &mut Vec<SearchValue>, v: &Value) {
    for name in v.get("name").and_then(Value::as_array).into_iter().flatten() {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(f) = name.get("family").and_then(Value::as_str) {
            parts.push(f);
        }
        parts.extend(name.get("given").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str));
        if let Some(t) = name.get("text").and_then(Value::as_str) {
            parts.extend(t.split_whitespace());
        }
        for p in parts {
            let p = p.trim().to_lowercase();
            if !p.is_empty() && !out.iter().any(|x| x.param == "name" && x.code == p) {
                out.push(SearchValue::blind("name", "", p));
            }
        }
    }
}

/// The search values of `resource` (of type `kind`).
pub fn extract(kind: &str, r: &Value) -> Vec<SearchValue> {
    let mut out = Vec::new();
    match kind {
        "Patient" | "Practitioner" => {
            identifiers(&mut out, r);
            names(&mut out, r);
            if let Some(g) = r.get("gender").and_then(Value::as_str) {
                out.push(SearchValue::token("gender", "", g));
            }
            if let Some(b) = r.get("birthDate").and_then(Value::as_str) {
                out.push(SearchValue::blind("birthdate", "", b.to_owned()));
            }
        }
        "Observation" => {
            status(&mut out, r);
            concept(&mut out, "code", r.get("code"));
            concepts(&mut out, "category", r.get("category"));
            date(&mut out, "date", r, "effectiveDateTime");
            period(&mut out, "date", r.get("effectivePeriod"));
            if let Some(q) = r.get("valueQuantity")
                && let Some(n) = q.get("value").and_then(Value::as_f64)
            {
                let unit = q.get("code").or_else(|| q.get("unit")).and_then(Value::as_str).unwrap_or("");
                let system = q.get("system").and_then(Value::as_str).unwrap_or("");
                out.push(SearchValue { num: Some(n), ..SearchValue::token("value-quantity", system, unit) });
            }
            for c in r.get("component").and_then(Value::as_array).into_iter().flatten() {
                concept(&mut out, "code", c.get("code"));
            }
        }
        "Condition" => {
            concept(&mut out, "clinical-status", r.get("clinicalStatus"));
            concept(&mut out, "code", r.get("code"));
            concepts(&mut out, "category", r.get("category"));
            date(&mut out, "date", r, "onsetDateTime");
            period(&mut out, "date", r.get("onsetPeriod"));
        }
        "MedicationRequest" => {
            status(&mut out, r);
            concept(&mut out, "code", r.get("medicationCodeableConcept"));
            date(&mut out, "date", r, "authoredOn");
        }
        "AllergyIntolerance" => {
            concept(&mut out, "clinical-status", r.get("clinicalStatus"));
            if let Some(c) = r.get("criticality").and_then(Value::as_str) {
                out.push(SearchValue::token("criticality", "", c));
            }
            concept(&mut out, "code", r.get("code"));
            date(&mut out, "date", r, "recordedDate");
        }
        "Encounter" => {
            status(&mut out, r);
            concepts(&mut out, "code", r.get("type"));
            if let Some(c) = str_at(r, "/class/code") {
                out.push(SearchValue::token("class", "", c));
            }
            period(&mut out, "date", r.get("period"));
        }
        "DiagnosticReport" => {
            status(&mut out, r);
            concept(&mut out, "code", r.get("code"));
            concepts(&mut out, "category", r.get("category"));
            date(&mut out, "date", r, "effectiveDateTime");
            period(&mut out, "date", r.get("effectivePeriod"));
        }
        "Immunization" => {
            status(&mut out, r);
            concept(&mut out, "code", r.get("vaccineCode"));
            date(&mut out, "date", r, "occurrenceDateTime");
        }
        "Procedure" => {
            status(&mut out, r);
            concept(&mut out, "code", r.get("code"));
            date(&mut out, "date", r, "performedDateTime");
            period(&mut out, "date", r.get("performedPeriod"));
        }
        "CareTeam" => {
            status(&mut out, r);
            period(&mut out, "date", r.get("period"));
        }
        _ => {}
    }
    out
}

/// Practitioners a resource puts in a care relationship with its patient:
/// CareTeam participants (`member`) and Encounter participants
/// (`individual`): the id of a `Practitioner/<id>` reference, or
/// `?identifier=<system>|<value>` for a conditional reference (Bulk Data
/// exports refer to practitioners by identifier).
pub fn carers(kind: &str, r: &Value) -> Vec<String> {
    let (list, field) = match kind {
        "CareTeam" => ("participant", "/member/reference"),
        "Encounter" => ("participant", "/individual/reference"),
        _ => return Vec::new(),
    };
    let mut out: Vec<String> = r
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.pointer(field).and_then(Value::as_str))
        .filter_map(|reference| match crate::fhir::relative(reference) {
            Some(("Practitioner", id)) => Some(id.to_owned()),
            Some(_) => None,
            None => match crate::fhir::conditional(reference) {
                Some(("Practitioner", query)) if query.starts_with("identifier=") => Some(format!("?{query}")),
                _ => None,
            },
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn person_identifiers_are_blind_and_clinical_values_are_not() {
        let p = json!({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-02-03",
            "identifier": [{"system": "urn:mrn", "value": "M-1"}], "name": [{"family": "山田", "given": ["花子"]}]});
        let v = extract("Patient", &p);
        let blind: Vec<&str> = v.iter().filter(|x| x.blind).map(|x| x.code.as_str()).collect();
        assert_eq!(blind, ["urn:mrn|M-1", "M-1", "山田", "花子", "1950-02-03"]);
        assert!(v.iter().any(|x| x.param == "gender" && x.code == "female" && !x.blind));
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
            "category": [{"coding": [{"code": "laboratory"}]}], "effectiveDateTime": "2020-01-02T03:04:05Z",
            "valueQuantity": {"value": 101.5, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}});
        let v = extract("Observation", &o);
        assert!(v.iter().all(|x| !x.blind));
        assert!(v.iter().any(|x| x.param == "code" && x.system == "http://loinc.org" && x.code == "2339-0"));
        assert!(v.iter().any(|x| x.param == "text" && x.code == "glucose"));
        assert!(v.iter().any(|x| x.param == "value-quantity" && x.num == Some(101.5) && x.code == "mg/dL"));
        assert!(v.iter().any(|x| x.param == "date" && x.lo.as_deref() == Some("2020-01-02T03:04:05Z")));
    }

    #[test]
    fn care_teams_and_encounters_name_their_practitioners() {
        let ct = json!({"participant": [{"member": {"reference": "Practitioner/d1"}},
            {"member": {"reference": "Organization/o"}}, {"member": {"reference": "Practitioner/d1"}}]});
        assert_eq!(carers("CareTeam", &ct), ["d1"]);
        let enc = json!({"participant": [{"individual": {"reference": "Practitioner/n2"}},
            {"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999"}}]});
        assert_eq!(carers("Encounter", &enc), ["?identifier=http://hl7.org/fhir/sid/us-npi|999", "n2"]);
        assert!(carers("Observation", &enc).is_empty());
    }
}
