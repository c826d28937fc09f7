//! The disclosure log as FHIR R4 AuditEvents, after IHE Basic Audit Log
//! Patterns (BALP).
//!
//! Every access to a patient's data is a [`Disclosure`] row; [`audit_event`]
//! turns one row into one AuditEvent, [`bundle`] gathers them for export
//! (`plexus health disclosures --format auditevent`). Pure functions: no
//! clock, no randomness, the same row always gives the same resource (its id
//! is a digest of the row).
//!
//! Sources read (FHIR R4 4.0.1 and BALP 1.1.x, the R4 edition):
//! - BALP profiles `IHE.BasicAudit.PatientRead` and
//!   `IHE.BasicAudit.PatientQuery`
//!   (<https://profiles.ihe.net/ITI/BALP/StructureDefinition-IHE.BasicAudit.PatientRead.html>,
//!   `...PatientQuery.html`), their FSH sources and examples in
//!   github.com/IHE/ITI.BasicAudit (`input/fsh/PatientRead.fsh`,
//!   `PatientQuery.fsh`, `ex-patientRead.fsh`, `ex-patientQuery.fsh`,
//!   `terms.fsh` for the `XrequestId` entity type).
//! - FHIR R4 AuditEvent (<https://hl7.org/fhir/R4/auditevent.html>): `type`
//!   and `subtype` are Codings, `outcome` a code of
//!   <https://hl7.org/fhir/R4/codesystem-audit-event-outcome.html> (`0`
//!   success "whether with warnings or not", `4` minor failure "often
//!   equivalent to an HTTP 400", `8` serious failure), `agent.network` an
//!   address with a network-type code (`1` machine name, `2` IP address),
//!   `entity.query` base64Binary (and, by invariant sev-1, never together
//!   with `entity.name`).
//! - v3 ActReason / PurposeOfUse codes (terminology.hl7.org, `v3-ActReason`).
//!
//! What each element carries, and the decisions taken:
//! - `meta.profile`: PatientRead for `read`, PatientQuery for `search`, but
//!   only when the outcome is `0`: both profiles fix `outcome` to `0`
//!   ("failures are recorded differently"; a failure "may follow this
//!   pattern, but would not be a successful outcome"), so a refusal follows
//!   the same pattern without claiming a profile it would fail.
//! - `type` `rest` (audit-event-type); `subtype` `read` (restful-interaction)
//!   for reads; for searches `search-type` when the search was confined to
//!   one data type, else `search-system` (Plexus searches every resource type
//!   of the patients the caller may see). `action` `R` for reads, `E` for
//!   searches (as BALP fixes them).
//! - `outcome`: `success` → `0`; `partial` → `0` with `outcomeDesc` saying
//!   some sources or data types failed (R4: success "whether with warnings
//!   or not" — the rest was released, so it was a disclosure); `denied` →
//!   `4` with `outcomeDesc` the refusal; anything else → `8`.
//! - `purposeOfEvent` (v3-ActReason, PurposeOfUse): break-the-glass →
//!   `ETREAT` (emergency treatment) and also `BTG` (break the glass); a care
//!   relationship or assignment → `TREAT`; research (de-identified) →
//!   `HRESCH`; administration → `HOPERAT` (healthcare operations: HIPAA's
//!   "operations" under which administrators act). For refusals the purpose
//!   the role would have acted under: admin `HOPERAT`, clinician and nurse
//!   `TREAT`, researcher `HRESCH`, auditor `HCOMPL` (health compliance, the
//!   auditor's purpose). The recorded purpose text rides in `text`, except
//!   for refusals, where the row's text is the refusal and goes to
//!   `outcomeDesc`.
//! - Agents: the user (`IRCP` information recipient, `requestor` true,
//!   `who.identifier` the subject, `role` the roles); the client and the
//!   server with DICOM role ids. BALP follows DICOM: for a read the data
//!   flows to the client, so the client is "Destination Role ID" (110152)
//!   and the server "Source Role ID" (110153); for a query the parameters
//!   flow to the server, so the client is the Source and the server the
//!   Destination (PatientQuery's own note). The client's `network` is its IP
//!   address (type `2`), omitted when unknown (stdio has none); the server is
//!   the observer, its `network` the observer's name (type `1`, machine
//!   name; a URL observer is type `5`).
//! - `source`: `observer.display` the observer, `type` `4` (application
//!   server, security-source-type).
//! - Entities: the patient (type `1` Person, role `1` Patient, `what` a
//!   `Patient/<id>` reference, or a logical reference by identifier when the
//!   patient is known only as `system|value`); for a read the data (type `2`
//!   System Object, role `4` Domain Resource, `what.display` the data types
//!   released, `what.type` the FHIR type when there is one); for a search the
//!   query (type `2`, role `24` Query, `query` the base64 of the cleaned
//!   request — the tool and the data types; the search words were never
//!   logged, as they may be PHI — and `description` the same text in clear);
//!   the call's request id as BALP's transaction entity (type `XrequestId`
//!   of `https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType`,
//!   `what.identifier.value` the id, which is also the id of the call's
//!   record in Plexus's own audit log).

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::fhir;
use crate::store::Disclosure;

/// BALP's profile for a read of a patient's data.
pub const PATIENT_READ: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead";
/// BALP's profile for a search of patients' data.
pub const PATIENT_QUERY: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery";

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";

/// What kind of access a disclosure row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interaction {
    Read,
    Search,
    /// Neither (not written today): exported without a BALP profile.
    Other,
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// The AuditEvent of one disclosure, recorded by `observer` (this node's
/// name: the configured audit node id).
pub fn audit_event(d: &Disclosure, observer: &str) -> Value {
    let observer = if observer.trim().is_empty() { "plexus" } else { observer };
    let interaction = match d.action.as_str() {
        "read" => Interaction::Read,
        "search" => Interaction::Search,
        _ => Interaction::Other,
    };
    let (outcome, outcome_desc) = outcome(d);

    let mut e = Map::new();
    e.insert("resourceType".into(), json!("AuditEvent"));
    e.insert("id".into(), json!(id_of(d)));
    let profile = match interaction {
        Interaction::Read => Some(PATIENT_READ),
        Interaction::Search => Some(PATIENT_QUERY),
        Interaction::Other => None,
    };
    if let Some(p) = profile.filter(|_| outcome == "0") {
        e.insert("meta".into(), json!({ "profile": [p] }));
    }
    e.insert("type".into(), coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation"));
    let subtype = match interaction {
        Interaction::Read => Some(("read", "read")),
        Interaction::Search if single_fhir_type(&d.types).is_some() => Some(("search-type", "search-type")),
        Interaction::Search => Some(("search-system", "search-system")),
        Interaction::Other => None,
    };
    if let Some((code, display)) = subtype {
        e.insert("subtype".into(), json!([coding(RESTFUL_INTERACTION, code, display)]));
    }
    e.insert("action".into(), json!(if interaction == Interaction::Read { "R" } else { "E" }));
    e.insert("recorded".into(), json!(d.at));
    e.insert("outcome".into(), json!(outcome));
    if let Some(desc) = outcome_desc {
        e.insert("outcomeDesc".into(), json!(desc));
    }
    let purposes = purposes(d);
    if !purposes.is_empty() {
        e.insert("purposeOfEvent".into(), Value::Array(purposes));
    }
    e.insert("agent".into(), json!(agents(d, observer, interaction)));
    e.insert(
        "source".into(),
        json!({
            "observer": { "display": observer },
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        }),
    );
    e.insert("entity".into(), json!(entities(d, interaction)));
    Value::Object(e)
}

/// A `collection` Bundle of `events` (an export, not the answer to a
/// search: no `total`, no `search.mode`). No events, no `entry` (FHIR JSON
/// has no empty arrays).
pub fn bundle(events: Vec<Value>) -> Value {
    let mut b = json!({ "resourceType": "Bundle", "type": "collection" });
    if !events.is_empty() {
        b["entry"] = events.into_iter().map(|resource| json!({ "resource": resource })).collect();
    }
    b
}

/// A FHIR id from a digest of the whole row: stable across exports, distinct
/// for the several rows of one call (one per patient of a search).
fn id_of(d: &Disclosure) -> String {
    let mut h = Sha256::new();
    for part in [
        d.at.as_str(),
        &d.request_id,
        &d.subject,
        &d.roles.join(","),
        &d.patient,
        &d.tool,
        &d.action,
        &d.types.join(","),
        &d.purpose,
        if d.break_glass { "1" } else { "0" },
        &d.outcome,
        &d.client,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    format!("balp-{}", &digest[..32])
}

/// The R4 outcome code and, when it needs saying, why.
fn outcome(d: &Disclosure) -> (&'static str, Option<String>) {
    match d.outcome.as_str() {
        "success" => ("0", None),
        "partial" => ("0", Some("partial: some sources or data types failed; the rest was released".into())),
        "denied" => {
            let why = d.purpose.trim();
            ("4", Some(if why.is_empty() { "denied".into() } else { format!("denied: {why}") }))
        }
        other => ("8", Some(format!("outcome `{other}`"))),
    }
}

/// The PurposeOfUse of the access (see the module documentation).
fn purposes(d: &Disclosure) -> Vec<Value> {
    let denied = d.outcome == "denied";
    let text = (!denied && !d.purpose.trim().is_empty()).then(|| d.purpose.clone());
    let concept = |code: &str, display: &str, text: Option<String>| {
        let mut c = json!({ "coding": [coding(ACT_REASON, code, display)] });
        if let Some(t) = text {
            c["text"] = json!(t);
        }
        c
    };
    if d.break_glass {
        return vec![concept("ETREAT", "Emergency Treatment", text), concept("BTG", "break the glass", None)];
    }
    let purpose = d.purpose.trim_start().to_lowercase();
    let by_text = if denied {
        None
    } else if purpose.starts_with("treatment") {
        Some(("TREAT", "treatment"))
    } else if purpose.starts_with("research") {
        Some(("HRESCH", "healthcare research"))
    } else if purpose.starts_with("administration") {
        Some(("HOPERAT", "healthcare operations"))
    } else if purpose.starts_with("emergency") {
        Some(("ETREAT", "Emergency Treatment"))
    } else {
        None
    };
    let has = |r: &str| d.roles.iter().any(|x| x == r);
    let by_role = if has("admin") {
        Some(("HOPERAT", "healthcare operations"))
    } else if has("clinician") || has("nurse") {
        Some(("TREAT", "treatment"))
    } else if has("researcher") {
        Some(("HRESCH", "healthcare research"))
    } else if has("auditor") {
        Some(("HCOMPL", "health compliance"))
    } else {
        None
    };
    match by_text.or(by_role) {
        Some((code, display)) => vec![concept(code, display, text)],
        None => text.map(|t| vec![json!({ "text": t })]).unwrap_or_default(),
    }
}

fn agents(d: &Disclosure, observer: &str, interaction: Interaction) -> Vec<Value> {
    let source = coding(DCM, "110153", "Source Role ID");
    let destination = coding(DCM, "110152", "Destination Role ID");
    // DICOM/BALP: a read's data flows server → client; a query's parameters
    // flow client → server.
    let (client_type, server_type) = match interaction {
        Interaction::Search => (source, destination),
        Interaction::Read | Interaction::Other => (destination, source),
    };
    let mut user = json!({
        "type": { "coding": [coding(PARTICIPATION_TYPE, "IRCP", "information recipient")] },
        "who": { "display": "unknown user" },
        "requestor": true,
    });
    if !d.subject.is_empty() {
        user["who"] = json!({ "identifier": { "value": d.subject }, "display": d.subject });
        user["name"] = json!(d.subject);
    }
    if !d.roles.is_empty() {
        user["role"] = json!(d.roles.iter().map(|r| json!({ "text": r })).collect::<Vec<_>>());
    }
    let address = d.client.trim();
    let mut client = json!({
        "type": { "coding": [client_type] },
        "who": { "display": if address.is_empty() { "client (address unknown)" } else { address } },
        "requestor": false,
    });
    if !address.is_empty() {
        let kind = if address.parse::<std::net::IpAddr>().is_ok() { "2" } else { "1" };
        client["network"] = json!({ "address": address, "type": kind });
    }
    let observer_kind = if observer.starts_with("http://") || observer.starts_with("https://") { "5" } else { "1" };
    let server = json!({
        "type": { "coding": [server_type] },
        "who": { "identifier": { "value": observer }, "display": observer },
        "requestor": false,
        "network": { "address": observer, "type": observer_kind },
    });
    vec![user, client, server]
}

/// The FHIR resource type of the data types, when there is exactly one.
fn single_fhir_type(types: &[String]) -> Option<&'static str> {
    match types {
        [one] => crate::module::DATA_TYPES.iter().find(|(t, _)| t == one).map(|(_, kind)| *kind),
        _ => None,
    }
}

/// The cleaned request of a search: the tool and the data types (the
/// search words are not in the log).
fn query_text(d: &Disclosure) -> String {
    if d.types.is_empty() { d.tool.clone() } else { format!("{}?types={}", d.tool, d.types.join(",")) }
}

fn patient_what(patient: &str) -> Value {
    if fhir::is_id(patient) {
        return json!({ "reference": format!("Patient/{patient}") });
    }
    match patient.split_once('|') {
        Some((system, value)) if !system.is_empty() && !value.is_empty() => {
            json!({ "type": "Patient", "identifier": { "system": system, "value": value } })
        }
        _ if patient.trim().is_empty() => json!({ "type": "Patient", "display": "unknown patient" }),
        _ => json!({ "type": "Patient", "display": patient }),
    }
}

fn entities(d: &Disclosure, interaction: Interaction) -> Vec<Value> {
    let mut out = vec![json!({
        "what": patient_what(&d.patient),
        "type": coding(ENTITY_TYPE, "1", "Person"),
        "role": coding(OBJECT_ROLE, "1", "Patient"),
    })];
    match interaction {
        Interaction::Search => {
            let q = query_text(d);
            out.push(json!({
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "24", "Query"),
                "description": q,
                "query": base64::engine::general_purpose::STANDARD.encode(q.as_bytes()),
            }));
        }
        Interaction::Read | Interaction::Other => {
            let released = if d.types.is_empty() { "no data".to_owned() } else { d.types.join(", ") };
            let mut what = json!({ "display": released });
            if let Some(kind) = single_fhir_type(&d.types) {
                what["type"] = json!(kind);
            }
            out.push(json!({
                "what": what,
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
                "description": format!("{} released {released}", d.tool),
            }));
        }
    }
    if !d.request_id.is_empty() {
        out.push(json!({
            "what": { "identifier": { "value": d.request_id } },
            "type": {
                "system": BALP_ENTITY_TYPE,
                "code": "XrequestId",
                "display": "transport specific unique identifier where http X-Request-Id is used",
            },
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: &str, outcome: &str) -> Disclosure {
        Disclosure {
            at: "2026-03-01T09:30:00Z".into(),
            request_id: "req-1".into(),
            subject: "dr-a".into(),
            roles: vec!["clinician".into()],
            patient: "p1".into(),
            tool: "get_patient_data".into(),
            action: action.into(),
            types: vec!["medications".into()],
            purpose: "treatment (care relationship: CareTeam/ct1)".into(),
            break_glass: false,
            outcome: outcome.into(),
            client: "192.0.2.7".into(),
        }
    }

    #[test]
    fn ids_are_fhir_ids_and_differ_per_row() {
        let a = audit_event(&row("read", "success"), "node-a");
        let mut other = row("read", "success");
        other.patient = "p2".into();
        let b = audit_event(&other, "node-a");
        let (ia, ib) = (a["id"].as_str().unwrap_or(""), b["id"].as_str().unwrap_or(""));
        assert!(fhir::is_id(ia) && fhir::is_id(ib), "{ia} {ib}");
        assert_ne!(ia, ib);
        assert_eq!(audit_event(&row("read", "success"), "node-a"), a, "same row, same resource");
    }

    #[test]
    fn read_agents_follow_dicom_directions() {
        let e = audit_event(&row("read", "success"), "node-a");
        assert_eq!(e["agent"][1]["type"]["coding"][0]["code"], "110152", "a read's client is the destination");
        assert_eq!(e["agent"][2]["type"]["coding"][0]["code"], "110153");
        let s = audit_event(&row("search", "success"), "node-a");
        assert_eq!(s["agent"][1]["type"]["coding"][0]["code"], "110153", "a query's client is the source");
        assert_eq!(s["agent"][2]["type"]["coding"][0]["code"], "110152");
    }

    #[test]
    fn identifier_patients_are_logical_references() {
        let mut d = row("read", "success");
        d.patient = "urn:oid:1.2.3|12345".into();
        let e = audit_event(&d, "node-a");
        assert_eq!(e["entity"][0]["what"]["identifier"]["system"], "urn:oid:1.2.3");
        assert_eq!(e["entity"][0]["what"]["identifier"]["value"], "12345");
        assert!(fhir::validate(&e).is_ok());
    }

    #[test]
    fn partial_is_a_success_with_a_warning() {
        let e = audit_event(&row("read", "partial"), "node-a");
        assert_eq!(e["outcome"], "0");
        assert!(e["outcomeDesc"].as_str().unwrap_or("").starts_with("partial"));
        assert_eq!(e["meta"]["profile"][0], PATIENT_READ);
    }
}
