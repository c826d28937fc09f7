//! The shared Synthea data (../shared/data/fhir): 12 FHIR Bundles and a
//! 10-patient Bulk Data NDJSON export. Every resource imports, references
//! resolve, known values survive, and de-identification leaves none of a
//! patient's identifiers behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use plexus_health::{deid, fhir, import};
use serde_json::Value;

use crate::data;

/// Every bundle, organizations and practitioners first (patient bundles
/// point at them by UUID), imported in order.
fn import_bundles(dir: &Path) -> (Vec<import::Entry>, BTreeMap<String, Value>) {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("synthea-r4")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        (!(n.starts_with("hospital") || n.starts_with("practitioner")), n)
    });
    let mut known: HashMap<String, String> = HashMap::new();
    let mut all = Vec::new();
    let mut raw = BTreeMap::new();
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let entries = import::bundle(&v, &name, &|id| known.get(id).cloned()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for e in &entries {
            known.insert(e.id.clone(), e.kind.clone());
        }
        all.extend(entries);
        raw.insert(name, v);
    }
    (all, raw)
}

#[test]
fn every_bundle_imports_whole_with_references_resolved() {
    let Some(dir) = data() else { return };
    let (entries, raw) = import_bundles(&dir);
    // Counts per type equal what the files hold.
    let mut in_files: BTreeMap<String, usize> = BTreeMap::new();
    for b in raw.values() {
        for e in b["entry"].as_array().unwrap() {
            *in_files.entry(e["resource"]["resourceType"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    let mut imported: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        *imported.entry(e.kind.clone()).or_default() += 1;
    }
    assert_eq!(imported, in_files);
    assert_eq!(entries.len(), 1_000);
    assert_eq!((imported["Patient"], imported["Immunization"], imported["Observation"]), (10, 242, 144));
    // No urn:uuid is left, and every relative reference names an imported resource.
    let ids: HashSet<(String, String)> = entries.iter().map(|e| (e.kind.clone(), e.id.clone())).collect();
    for e in &entries {
        for (at, r) in fhir::references(&e.resource) {
            assert!(!r.starts_with("urn:uuid:"), "{}/{} {at}: {r}", e.kind, e.id);
            if let Some((k, id)) = fhir::relative(&r) {
                assert!(ids.contains(&(k.to_owned(), id.to_owned())), "{}/{} {at}: {r} dangles", e.kind, e.id);
            }
        }
    }
    // Without its practitioners (and with nothing imported before), a
    // patient bundle's references resolve nowhere: refused whole, with reasons.
    let lone = raw.iter().find(|(n, _)| n.starts_with("Cris921")).unwrap().1;
    let mut cut = lone.clone();
    cut["entry"].as_array_mut().unwrap().retain(|e| e["resource"]["resourceType"] != "Practitioner");
    let e = import::bundle(&cut, "Cris921.json", &|_| None).unwrap_err();
    assert!(!e.0.is_empty() && e.0.iter().all(|r| r.reason.contains("neither in the bundle")), "{:?}", &e.0[..1]);
    // Importing the same bundle again gives the same ids (idempotent).
    let again = import::bundle(lone, "Cris921.json", &|id| entries.iter().find(|e| e.id == id).map(|e| e.kind.clone()))
        .unwrap();
    let first: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert!(again.iter().all(|e| first.contains(e.id.as_str())));
    // A known value, as the file has it: the SSN-bearing Patient of Cris921.
    let cris = entries.iter().find(|e| e.id == "d4519c92-d241-b2b2-7360-291d60be699e").unwrap();
    assert_eq!(cris.resource["name"][0]["family"], "Rath779");
}

#[test]
fn the_bulk_export_imports_line_by_line() {
    let Some(dir) = data() else { return };
    let mut counts = BTreeMap::new();
    let mut all = Vec::new();
    for f in std::fs::read_dir(dir.join("bulk-ndjson-10-patients")).unwrap() {
        let f = f.unwrap().path();
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        let (ok, rejected) = import::ndjson(&text, &f.file_name().unwrap().to_string_lossy());
        assert!(rejected.is_empty(), "{} rejected, first {:?}", rejected.len(), rejected.first());
        assert_eq!(ok.len(), lines);
        counts.insert(ok[0].kind.clone(), ok.len());
        all.extend(ok);
    }
    let expect: BTreeMap<String, usize> = [
        ("AllergyIntolerance", 11),
        ("Condition", 555),
        ("Encounter", 1215),
        ("Immunization", 161),
        ("MedicationRequest", 1745),
        ("Organization", 43),
        ("Patient", 13),
        ("Practitioner", 43),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(counts, expect);
    // A known allergy, as the file has it.
    let aspirin = all.iter().find(|e| e.id == "1b2ce4a9-9773-f40f-6692-cb4d1283a9ca").unwrap();
    assert_eq!(aspirin.resource["code"]["text"], "Aspirin");
    assert_eq!(fhir::patient_of(&aspirin.resource).as_deref(), Some("cbc86e51-9eca-3855-76ec-c058f72c5761"));
}

/// Every identifying string of a patient resource: names, identifiers,
/// telecom, address below the state, the full birth date, the id.
fn identifiers_of(p: &Value) -> Vec<String> {
    let mut out = vec![p["id"].as_str().unwrap().to_owned()];
    let mut strings = |v: &Value| {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) if s.len() >= 4 => out.push(s.clone()),
                Value::Array(a) => stack.extend(a),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
    };
    for n in p["name"].as_array().into_iter().flatten() {
        strings(&n["family"]);
        strings(&n["given"]);
    }
    for i in p["identifier"].as_array().into_iter().flatten() {
        strings(&i["value"]);
    }
    for t in p["telecom"].as_array().into_iter().flatten() {
        strings(&t["value"]);
    }
    for a in p["address"].as_array().into_iter().flatten() {
        strings(&a["line"]);
        strings(&a["city"]);
        strings(&a["postalCode"]);
    }
    for e in p["extension"].as_array().into_iter().flatten() {
        strings(&e["valueString"]);
        strings(&e["valueAddress"]["city"]);
    }
    strings(&p["birthDate"]);
    out
}

#[test]
fn researchers_see_none_of_the_18_identifiers() {
    let Some(dir) = data() else { return };
    let (entries, raw) = import_bundles(&dir);
    let mut scanned = 0;
    for (name, bundle) in &raw {
        let Some(patient) =
            bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).find(|r| r["resourceType"] == "Patient")
        else {
            continue;
        };
        let secrets = identifiers_of(patient);
        assert!(secrets.len() > 8, "{name}: {secrets:?}");
        let mut run = deid::Run::new(2026, 42);
        let mut text = String::new();
        for e in entries.iter().filter(|e| fhir::patient_of(&e.resource).as_deref() == patient["id"].as_str()) {
            text.push_str(&run.resource(&e.resource).to_string());
            scanned += 1;
        }
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{name}: `{s}` survived de-identification");
        }
        // Dates keep the year only; the clinical codes stay.
        assert!(!text.contains("T0") && !text.contains("-01-"), "{name}: a full date survived");
        assert!(text.contains("http://snomed.info/sct") || text.contains("http://loinc.org"), "{name}");
    }
    assert!(scanned > 500, "{scanned} resources scanned");
}
