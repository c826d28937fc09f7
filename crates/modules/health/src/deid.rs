//! HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of FHIR
//! resources, for researchers.
//!
//! The 18 identifiers, and what happens to each here:
//! names, telephone and fax numbers, e-mail addresses, social security,
//! medical record, health plan, account, certificate and licence numbers,
//! vehicle and device identifiers, URLs, IP addresses, biometric
//! identifiers, photographs and any other unique identifying number are
//! removed: the elements that carry them (`name`, `telecom`, `identifier`,
//! `photo`, `contact`, `link`, narrative `text`, free-text `note`,
//! reference `display`s, attachments' `url`/`data`, extensions whose value is
//! a string, address, name, URL or identifier) are dropped, and any string
//! left that looks like a phone number, e-mail, SSN, URL or IP address is
//! replaced by `[redacted]`. Resource ids and references are replaced by
//! pseudonyms that are random per de-identification run (Safe Harbor's
//! re-identification code may not be derived from the individual's data),
//! consistent within the run so one answer can still relate a patient's
//! records. Geography below the state is removed: an address keeps `state`
//! and `country`, and `postalCode` becomes its first three digits, or `000`
//! for the 17 three-digit ZIP areas with 20,000 people or fewer. Every date
//! keeps its year only, and a patient over 89 has no birth year at all but
//! `"_age": "90+"`, with every other date element that would reveal the
//! age (the year of death) removed too.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The three-digit ZIP prefixes whose areas have 20,000 people or fewer
/// (Census 2000, as HHS's guidance lists them): reported as `000`.
pub const SMALL_ZIP3: &[&str] = &[
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884", "890",
    "893",
];

const REDACTED: &str = "[redacted]";

/// Elements dropped wherever they appear.
const DROPPED: &[&str] = &["name", "telecom", "identifier", "photo", "contact", "link", "note", "data"];

/// Whether element `key` (with value `value`) of `parent` goes: the
/// identifier-carrying elements always; a narrative `text` (an object) but
/// not a concept's `text` (a string); a `display` except a coding's; a
/// `url` except an extension's.
fn dropped(key: &str, value: &Value, parent: &Map<String, Value>, in_extension: bool) -> bool {
    match key {
        "text" => value.is_object(),
        "display" => !(parent.contains_key("code") || parent.contains_key("system")),
        "url" => !in_extension,
        _ => DROPPED.contains(&key),
    }
}

/// One de-identification run: pseudonyms are random per run and
/// consistent within it.
pub struct Run {
    year_now: i32,
    pseudonyms: HashMap<String, String>,
    seed: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("pseudonyms", &self.pseudonyms.len()).finish_non_exhaustive()
    }
}

impl Run {
    /// A run at `year_now` whose pseudonyms come from `seed` (give it fresh
    /// randomness per run; tests give a fixed one).
    pub fn new(year_now: i32, seed: u64) -> Self {
        Self { year_now, pseudonyms: HashMap::new(), seed }
    }

    fn pseudonym(&mut self, kind: &str, id: &str) -> String {
        let next = self.pseudonyms.len() as u64 + 1;
        let seed = self.seed;
        let p = self.pseudonyms.entry(format!("{kind}/{id}")).or_insert_with(|| {
            // SplitMix64 of (seed, counter): unrelated to the id.
            let mut z = seed.wrapping_add(next.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            format!("anon-{:016x}", z ^ (z >> 31))
        });
        p.clone()
    }

    /// The de-identified copy of `resource`.
    pub fn resource(&mut self, resource: &Value) -> Value {
        let kind = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut out = self.value(resource, &kind, false);
        if let Some(id) = resource.get("id").and_then(Value::as_str) {
            out["id"] = Value::String(self.pseudonym(&kind, id));
        }
        if kind == "Patient" {
            self.patient_age(resource, &mut out);
        }
        out
    }

    /// Over 89: no birth year, no death year, an `_age` of `90+`.
    fn patient_age(&self, original: &Value, out: &mut Value) {
        let born = original.get("birthDate").and_then(Value::as_str).and_then(|d| d.get(..4)?.parse::<i32>().ok());
        let died =
            original.get("deceasedDateTime").and_then(Value::as_str).and_then(|d| d.get(..4)?.parse::<i32>().ok());
        let Some(born) = born else { return };
        let age = died.unwrap_or(self.year_now) - born;
        if age > 89
            && let Some(m) = out.as_object_mut()
        {
            m.remove("birthDate");
            if m.remove("deceasedDateTime").is_some() {
                m.insert("deceasedBoolean".into(), Value::Bool(true));
            }
            m.insert("_age".into(), Value::String("90+".into()));
        }
    }

    fn value(&mut self, v: &Value, key: &str, in_extension: bool) -> Value {
        match v {
            Value::Object(m) => self.object(m, key, in_extension),
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.value(x, key, in_extension)).filter(|x| !x.is_null()).collect())
            }
            Value::String(s) => Value::String(self.string(key, s)),
            other => other.clone(),
        }
    }

    fn object(&mut self, m: &Map<String, Value>, key: &str, in_extension: bool) -> Value {
        // Extensions whose value could identify (a string, address, name,
        // identifier, URL, attachment) go; coded and numeric ones stay.
        if key == "extension" || key == "modifierExtension" {
            let risky = m.keys().any(|k| {
                k.strip_prefix("value").is_some_and(|t| {
                    matches!(
                        t,
                        "String"
                            | "Address"
                            | "HumanName"
                            | "Identifier"
                            | "Uri"
                            | "Url"
                            | "Attachment"
                            | "ContactPoint"
                            | "Reference"
                            | "Markdown"
                            | "Date"
                            | "DateTime"
                    )
                })
            });
            if risky {
                return Value::Null;
            }
        }
        if key == "address" {
            return self.address(m);
        }
        let mut out = Map::new();
        for (k, x) in m {
            let ext = in_extension || key == "extension" || key == "modifierExtension";
            if dropped(k, x, m, ext) {
                continue;
            }
            if k == "reference"
                && let Value::String(r) = x
            {
                out.insert(k.clone(), Value::String(self.reference(r)));
                continue;
            }
            let y = self.value(x, k, ext);
            if !y.is_null() {
                out.insert(k.clone(), y);
            }
        }
        Value::Object(out)
    }

    fn address(&mut self, m: &Map<String, Value>) -> Value {
        let mut out = Map::new();
        for k in ["state", "country", "use", "type"] {
            if let Some(v) = m.get(k).filter(|v| v.is_string()) {
                out.insert(k.into(), v.clone());
            }
        }
        if let Some(zip) = m.get("postalCode").and_then(Value::as_str) {
            let digits: String = zip.chars().filter(char::is_ascii_digit).take(3).collect();
            if digits.len() == 3 {
                let zip3 = if SMALL_ZIP3.contains(&digits.as_str()) { "000".to_owned() } else { digits };
                out.insert("postalCode".into(), Value::String(zip3));
            }
        }
        Value::Object(out)
    }

    fn reference(&mut self, r: &str) -> String {
        match crate::fhir::relative(r) {
            Some((kind, id)) => format!("{kind}/{}", self.pseudonym(kind, id)),
            None if r.starts_with('#') => r.to_owned(),
            None => REDACTED.to_owned(),
        }
    }

    fn string(&self, key: &str, s: &str) -> String {
        if let Some(year) = date_year(s) {
            return year;
        }
        if looks_identifying(s) && !matches!(key, "system" | "code" | "unit" | "status" | "resourceType" | "url") {
            return REDACTED.to_owned();
        }
        s.to_owned()
    }
}

/// The year of a FHIR date, dateTime or instant (`2019`, `2019-05`,
/// `2019-05-04`, `2019-05-04T10:00:00+09:00`), or `None`.
fn date_year(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let year_ok =
        b.len() >= 7 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5..7].iter().all(u8::is_ascii_digit);
    year_ok.then(|| s[..4].to_owned())
}

/// Phone numbers, e-mail addresses, SSNs, URLs and IP addresses in free
/// text.
fn looks_identifying(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let phoneish = digits >= 7
        && s.chars().all(|c| c.is_ascii_digit() || " -().+x".contains(c))
        && s.chars().any(|c| " -().".contains(c));
    let email = s.contains('@') && s.rsplit('@').next().is_some_and(|d| d.contains('.'));
    let url = s.contains("://") || s.starts_with("www.");
    let ip = s.split('.').count() == 4
        && s.split('.').all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    phoneish || email || url || ip
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patient_keeps_state_zip3_years_and_codes_only() {
        let p = json!({
            "resourceType": "Patient", "id": "p-123",
            "text": {"status": "generated", "div": "<div>John Smith</div>"},
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": "Jane Doe"},
                {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                 "extension": [{"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}}]}
            ],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-52-6735"}],
            "name": [{"family": "Smith", "given": ["John"]}],
            "telecom": [{"system": "phone", "value": "555-123-4567"}],
            "gender": "male", "birthDate": "1961-04-17",
            "address": [{"line": ["12 Main St"], "city": "Westford", "state": "MA", "postalCode": "01886", "country": "US"},
                        {"state": "NH", "postalCode": "03601"}],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M", "display": "Married"}], "text": "Married"},
            "generalPractitioner": [{"reference": "Practitioner/dr-9", "display": "Dr. Bo Stanton"}]
        });
        let mut run = Run::new(2026, 7);
        let d = run.resource(&p);
        let text = d.to_string();
        for gone in [
            "John", "Smith", "Jane", "999-52", "555-123", "12 Main", "Westford", "01886", "1961-04", "p-123", "dr-9",
            "Stanton",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(d["birthDate"], "1961");
        assert_eq!(d["address"][0], json!({"state": "MA", "postalCode": "018", "country": "US"}));
        assert_eq!(d["address"][1]["postalCode"], "000", "036 is a small ZIP3 area");
        assert_eq!(d["maritalStatus"]["coding"][0]["display"], "Married", "codes stay");
        assert_eq!(d["extension"][0]["extension"][0]["valueCoding"]["code"], "2106-3", "coded extensions stay");
        let pseudo = d["id"].as_str().unwrap().to_owned();
        assert!(pseudo.starts_with("anon-"));
        // consistent within a run, different across runs
        let cond = json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p-123"},
                          "onsetDateTime": "2019-05-04T10:00:00+09:00", "code": {"text": "Diabetes"}});
        let c = run.resource(&cond);
        assert_eq!(c["subject"]["reference"], format!("Patient/{pseudo}"));
        assert_eq!(c["onsetDateTime"], "2019");
        assert_eq!(c["code"]["text"], "Diabetes");
        assert_ne!(Run::new(2026, 8).resource(&p)["id"], d["id"]);
    }

    #[test]
    fn over_89_has_no_birth_year_and_free_text_is_scrubbed() {
        let old =
            json!({"resourceType": "Patient", "id": "o", "birthDate": "1930-01-02", "deceasedDateTime": "2024-03-01"});
        let d = Run::new(2026, 1).resource(&old);
        assert_eq!(d.get("birthDate"), None);
        assert_eq!(d["_age"], "90+");
        assert_eq!(d.get("deceasedDateTime"), None);
        let young = json!({"resourceType": "Patient", "id": "y", "birthDate": "1990-01-02"});
        assert_eq!(Run::new(2026, 1).resource(&young)["birthDate"], "1990");
        for s in ["555-867-5309", "(617) 555-0100", "jo@example.com", "https://me.example", "10.0.0.12"] {
            assert!(looks_identifying(s), "{s}");
        }
        assert!(!looks_identifying("Hemoglobin A1c") && !looks_identifying("7.2"));
    }
}
