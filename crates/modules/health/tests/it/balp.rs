//! The disclosure log exported as FHIR AuditEvents after IHE BALP: one
//! disclosure row in, the values BALP and R4 ask for out.

use base64::Engine as _;
use plexus_health::balp::{self, PATIENT_QUERY, PATIENT_READ};
use plexus_health::fhir;
use plexus_health::store::Disclosure;
use serde_json::Value;

/// A clinician's successful read of two data types over HTTP.
fn read() -> Disclosure {
    Disclosure {
        at: "2026-03-01T09:30:00Z".into(),
        request_id: "0f8e2c1a-77aa-4c3e-9f1b-3d2a1b0c9e8f".into(),
        subject: "dr-alice".into(),
        roles: vec!["clinician".into()],
        patient: "pat-001".into(),
        tool: "get_patient_data".into(),
        action: "read".into(),
        types: vec!["medications".into(), "allergies".into()],
        purpose: "treatment (care relationship: CareTeam/ct-9)".into(),
        break_glass: false,
        outcome: "success".into(),
        client: "203.0.113.24".into(),
    }
}

fn search() -> Disclosure {
    Disclosure { tool: "search_medical_records".into(), action: "search".into(), types: vec![], ..read() }
}

fn denied() -> Disclosure {
    Disclosure {
        types: vec![],
        purpose: "no care relationship with this patient".into(),
        outcome: "denied".into(),
        ..read()
    }
}

/// `check(row, expectations)`: the event validates with the crate's own
/// FHIR checks, and each `(JSON pointer, expected)` holds.
fn check(d: &Disclosure, expect: &[(&str, Value)]) -> Value {
    let e = balp::audit_event(d, "plexus-node-1");
    let (kind, id) = fhir::validate(&e).unwrap();
    assert_eq!(kind, "AuditEvent");
    assert!(fhir::is_id(&id.unwrap()));
    for (pointer, want) in expect {
        assert_eq!(e.pointer(pointer), Some(want), "{pointer} in {e:#}");
    }
    e
}

/// The entity whose role has `code`.
fn entity<'a>(e: &'a Value, role: &str) -> Option<&'a Value> {
    e["entity"].as_array().unwrap().iter().find(|x| x["role"]["code"] == role)
}

/// The agent whose type has `code`.
fn agent<'a>(e: &'a Value, code: &str) -> &'a Value {
    e["agent"].as_array().unwrap().iter().find(|a| a["type"]["coding"][0]["code"] == code).unwrap()
}

#[test]
fn read_is_a_patient_read() {
    let e = check(
        &read(),
        &[
            ("/resourceType", "AuditEvent".into()),
            ("/meta/profile/0", PATIENT_READ.into()),
            ("/type/system", "http://terminology.hl7.org/CodeSystem/audit-event-type".into()),
            ("/type/code", "rest".into()),
            ("/subtype/0/system", "http://hl7.org/fhir/restful-interaction".into()),
            ("/subtype/0/code", "read".into()),
            ("/action", "R".into()),
            ("/recorded", "2026-03-01T09:30:00Z".into()),
            ("/outcome", "0".into()),
            ("/purposeOfEvent/0/coding/0/system", "http://terminology.hl7.org/CodeSystem/v3-ActReason".into()),
            ("/purposeOfEvent/0/coding/0/code", "TREAT".into()),
            ("/purposeOfEvent/0/text", "treatment (care relationship: CareTeam/ct-9)".into()),
            ("/source/observer/display", "plexus-node-1".into()),
            ("/source/type/0/code", "4".into()),
        ],
    );
    assert!(e.get("outcomeDesc").is_none());
    assert_eq!(e["meta"]["profile"].as_array().unwrap().len(), 1);
    assert!(entity(&e, "24").is_none(), "a read has no query entity");
    let data = entity(&e, "4").unwrap();
    assert_eq!(data["type"]["code"], "2");
    assert_eq!(data["what"]["display"], "medications, allergies");
}

#[test]
fn search_is_a_patient_query_with_its_query() {
    let e = check(
        &search(),
        &[
            ("/meta/profile/0", PATIENT_QUERY.into()),
            ("/subtype/0/code", "search-system".into()),
            ("/action", "E".into()),
            ("/outcome", "0".into()),
        ],
    );
    let q = entity(&e, "24").expect("a search has a query entity");
    assert_eq!(q["type"]["system"], "http://terminology.hl7.org/CodeSystem/audit-entity-type");
    assert_eq!(q["type"]["code"], "2");
    let raw = base64::engine::general_purpose::STANDARD.decode(q["query"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(raw).unwrap(), "search_medical_records");
    assert_eq!(q["description"], "search_medical_records");
    assert!(q.get("name").is_none(), "R4 sev-1: name or query, not both");
    assert!(entity(&e, "4").is_none(), "a query has no data entity");

    let one_type = Disclosure { types: vec!["conditions".into()], ..search() };
    let e = check(&one_type, &[("/subtype/0/code", "search-type".into())]);
    let q = entity(&e, "24").unwrap();
    let raw = base64::engine::general_purpose::STANDARD.decode(q["query"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(raw).unwrap(), "search_medical_records?types=conditions");
}

#[test]
fn patient_entity_references_the_patient() {
    for d in [read(), search(), denied()] {
        let e = balp::audit_event(&d, "n");
        let p = entity(&e, "1").unwrap();
        assert_eq!(p["what"]["reference"], "Patient/pat-001");
        assert_eq!(p["type"]["system"], "http://terminology.hl7.org/CodeSystem/audit-entity-type");
        assert_eq!(p["type"]["code"], "1");
        assert_eq!(p["role"]["system"], "http://terminology.hl7.org/CodeSystem/object-role");
        let refs = fhir::references(&e);
        assert!(refs.iter().any(|(_, r)| r == "Patient/pat-001"), "{refs:?}");
    }
}

#[test]
fn request_id_is_the_transaction_entity() {
    let e = balp::audit_event(&read(), "n");
    let tx = e["entity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"]["code"] == "XrequestId")
        .expect("an XrequestId entity");
    assert_eq!(tx["type"]["system"], "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType");
    assert_eq!(tx["what"]["identifier"]["value"], "0f8e2c1a-77aa-4c3e-9f1b-3d2a1b0c9e8f");

    let none = Disclosure { request_id: String::new(), ..read() };
    let e = balp::audit_event(&none, "n");
    assert!(e["entity"].as_array().unwrap().iter().all(|x| x["type"]["code"] != "XrequestId"));
}

#[test]
fn agents_carry_user_client_address_and_observer() {
    let e = balp::audit_event(&read(), "plexus-node-1");
    assert_eq!(e["agent"].as_array().unwrap().len(), 3);
    let user = agent(&e, "IRCP");
    assert_eq!(user["type"]["coding"][0]["system"], "http://terminology.hl7.org/CodeSystem/v3-ParticipationType");
    assert_eq!(user["requestor"], true);
    assert_eq!(user["who"]["identifier"]["value"], "dr-alice");
    assert_eq!(user["role"][0]["text"], "clinician");
    // A read: the client receives the data (Destination), the server sends it (Source).
    let client = agent(&e, "110152");
    assert_eq!(client["type"]["coding"][0]["system"], "http://dicom.nema.org/resources/ontology/DCM");
    assert_eq!(client["requestor"], false);
    assert_eq!(client["network"]["address"], "203.0.113.24");
    assert_eq!(client["network"]["type"], "2");
    let server = agent(&e, "110153");
    assert_eq!(server["who"]["display"], "plexus-node-1");
    assert_eq!(server["network"]["address"], "plexus-node-1");

    // A query: the client sends the parameters (Source), the server receives them (Destination).
    let s = balp::audit_event(&search(), "plexus-node-1");
    assert_eq!(agent(&s, "110153")["network"]["address"], "203.0.113.24");
    assert_eq!(agent(&s, "110152")["who"]["display"], "plexus-node-1");

    let v6 = Disclosure { client: "2001:db8::7".into(), ..read() };
    assert_eq!(agent(&balp::audit_event(&v6, "n"), "110152")["network"]["type"], "2");

    let stdio = Disclosure { client: String::new(), ..read() };
    let e = balp::audit_event(&stdio, "n");
    assert!(agent(&e, "110152").get("network").is_none(), "no address is invented");
    assert!(fhir::validate(&e).is_ok());
}

#[test]
fn denied_is_a_minor_failure_with_its_reason() {
    let e = check(&denied(), &[("/outcome", "4".into()), ("/purposeOfEvent/0/coding/0/code", "TREAT".into())]);
    assert_eq!(e["outcomeDesc"], "denied: no care relationship with this patient");
    assert!(e.get("meta").is_none(), "BALP's profiles fix outcome 0: a refusal claims none");
    assert!(e["purposeOfEvent"][0].get("text").is_none(), "the refusal is not a purpose");

    let auditor = Disclosure { roles: vec!["auditor".into()], ..denied() };
    check(&auditor, &[("/outcome", "4".into()), ("/purposeOfEvent/0/coding/0/code", "HCOMPL".into())]);
}

#[test]
fn break_the_glass_is_emergency_treatment() {
    let d = Disclosure {
        purpose: "emergency access until 2026-03-01T10:30:00Z: unconscious patient in ER".into(),
        break_glass: true,
        ..read()
    };
    let e = check(
        &d,
        &[
            ("/purposeOfEvent/0/coding/0/code", "ETREAT".into()),
            ("/purposeOfEvent/0/coding/0/system", "http://terminology.hl7.org/CodeSystem/v3-ActReason".into()),
            ("/purposeOfEvent/1/coding/0/code", "BTG".into()),
            ("/outcome", "0".into()),
        ],
    );
    assert_eq!(e["purposeOfEvent"][0]["text"], d.purpose.as_str());
}

#[test]
fn research_and_administration_purposes() {
    let research =
        Disclosure { roles: vec!["researcher".into()], purpose: "research (de-identified)".into(), ..search() };
    check(&research, &[("/purposeOfEvent/0/coding/0/code", "HRESCH".into())]);
    let admin = Disclosure { roles: vec!["admin".into()], purpose: "administration".into(), ..read() };
    check(&admin, &[("/purposeOfEvent/0/coding/0/code", "HOPERAT".into())]);
}

#[test]
fn japanese_purpose_survives() {
    let reason = "緊急：意識不明の患者、アレルギー歴の確認が必要";
    let d = Disclosure {
        purpose: format!("emergency access until 2026-03-01T10:30:00Z: {reason}"),
        break_glass: true,
        subject: "看護師-佐藤".into(),
        ..read()
    };
    let e = balp::audit_event(&d, "n");
    let text = serde_json::to_string(&e).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert!(back["purposeOfEvent"][0]["text"].as_str().unwrap().ends_with(reason));
    assert_eq!(agent(&back, "IRCP")["who"]["identifier"]["value"], "看護師-佐藤");

    let refused = Disclosure { purpose: "この患者との診療関係がありません".into(), ..denied() };
    let e = balp::audit_event(&refused, "n");
    assert_eq!(e["outcomeDesc"], "denied: この患者との診療関係がありません");
}

#[test]
fn bundle_is_a_valid_collection() {
    let events: Vec<Value> =
        [read(), search(), denied()].iter().map(|d| balp::audit_event(d, "plexus-node-1")).collect();
    let b = balp::bundle(events.clone());
    assert_eq!(fhir::validate(&b).unwrap().0, "Bundle");
    assert_eq!(b["type"], "collection");
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (entry, e) in entries.iter().zip(&events) {
        assert_eq!(&entry["resource"], e);
    }
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one id per row");
    let empty = balp::bundle(Vec::new());
    assert!(empty.get("entry").is_none(), "FHIR JSON has no empty arrays");
    assert!(fhir::validate(&empty).is_ok());
}
