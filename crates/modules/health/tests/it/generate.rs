//! The synthetic population generator: deterministic, importable whole,
//! clinically coherent enough to demo and benchmark on.

use std::collections::{BTreeMap, HashMap, HashSet};

use plexus_health::generate::{self, Generator, LABS};
use plexus_health::{fhir, import};
use serde_json::Value;

const SEED: u64 = 20_260_630;

fn resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"])
}

fn kind(r: &Value) -> &str {
    r["resourceType"].as_str().unwrap()
}

fn codes(concept: &Value) -> impl Iterator<Item = (&str, &str)> {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["system"].as_str().unwrap(), c["code"].as_str().unwrap()))
}

/// The directory imported, then patients `0..count`: every entry, and what
/// the store would know.
fn import_population(g: &Generator, count: u64) -> (Vec<import::Entry>, Vec<Vec<import::Entry>>) {
    let directory = import::bundle(&g.directory(), "directory", &|_| None).unwrap();
    let known: HashMap<String, String> = directory.iter().map(|e| (e.id.clone(), e.kind.clone())).collect();
    let patients = (0..count)
        .map(|n| {
            import::bundle(&g.patient(n), &format!("patient {n}"), &|id| known.get(id).cloned())
                .unwrap_or_else(|e| panic!("patient {n}: {e}"))
        })
        .collect();
    (directory, patients)
}

#[test]
fn same_seed_same_population_and_patients_stand_alone() {
    let a = generate::patient(SEED, 7);
    assert_eq!(a, generate::patient(SEED, 7));
    assert_eq!(a.to_string(), generate::patient(SEED, 7).to_string());
    assert_ne!(a, generate::patient(SEED + 1, 7));
    assert_ne!(a, generate::patient(SEED, 8));
    // Patient 7 does not depend on patients 0..7 having been made, nor on
    // the generator being reused.
    let g = Generator::new(SEED);
    for n in 0..7 {
        g.patient(n);
    }
    assert_eq!(g.patient(7), a);
    assert_eq!(generate::directory(SEED), g.directory());
    assert_ne!(generate::directory(SEED), generate::directory(SEED + 1));
    // The practitioner ids are the directory's Practitioners, in order.
    let dir = generate::directory(SEED);
    let practitioners: Vec<&str> =
        resources(&dir).filter(|r| kind(r) == "Practitioner").map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(practitioners.len(), 20);
    assert_eq!(generate::practitioner_ids(SEED), practitioners);
    assert_ne!(generate::practitioner_ids(SEED), generate::practitioner_ids(SEED + 1));
    // Different seeds give different people, not just different ids.
    let name = |b: &Value| resources(b).next().unwrap()["name"][0]["text"].clone();
    assert!((0..20).any(|n| name(&generate::patient(1, n)) != name(&generate::patient(2, n))));
}

#[test]
fn the_directory_and_200_patients_validate_and_import_with_every_reference_resolved() {
    let g = Generator::new(SEED);
    for (n, bundle) in std::iter::once(g.directory()).chain((0..200).map(|n| g.patient(n))).enumerate() {
        assert_eq!((bundle["resourceType"].as_str(), bundle["type"].as_str()), (Some("Bundle"), Some("transaction")));
        for e in bundle["entry"].as_array().unwrap() {
            let (k, id) = fhir::validate(&e["resource"]).unwrap_or_else(|err| panic!("bundle {n}: {err}: {e}"));
            let id = id.unwrap();
            assert_eq!(e["fullUrl"], format!("urn:uuid:{id}"));
            assert_eq!(
                (e["request"]["method"].as_str(), e["request"]["url"].as_str()),
                (Some("PUT"), Some(&*format!("{k}/{id}")))
            );
            assert_eq!(id.len(), 36, "{id}");
        }
    }
    let (directory, patients) = import_population(&g, 200);
    let mut ids: HashSet<(String, String)> = directory.iter().map(|e| (e.kind.clone(), e.id.clone())).collect();
    for p in &patients {
        ids.extend(p.iter().map(|e| (e.kind.clone(), e.id.clone())));
    }
    let directory_ids: HashSet<&str> = directory.iter().map(|e| e.id.as_str()).collect();
    let mut to_directory = 0;
    for e in directory.iter().chain(patients.iter().flatten()) {
        for (at, r) in fhir::references(&e.resource) {
            assert!(!r.starts_with("urn:uuid:"), "{}/{} {at}: {r}", e.kind, e.id);
            let (k, id) = fhir::relative(&r).unwrap_or_else(|| panic!("{}/{} {at}: {r} is not relative", e.kind, e.id));
            assert!(ids.contains(&(k.to_owned(), id.to_owned())), "{}/{} {at}: {r} dangles", e.kind, e.id);
            to_directory += usize::from(directory_ids.contains(id));
        }
    }
    assert!(to_directory > 200 * 10, "{to_directory} references into the directory");
    // Every patient resource belongs to the bundle's one Patient.
    for p in &patients {
        let patient: Vec<&import::Entry> = p.iter().filter(|e| e.kind == "Patient").collect();
        assert_eq!(patient.len(), 1);
        for e in p {
            assert_eq!(fhir::patient_of(&e.resource).as_deref(), Some(patient[0].id.as_str()), "{}/{}", e.kind, e.id);
        }
    }
    // The directory: 4 organizations, 20 practitioners with a role at one
    // of them; an encounter's provider is its clinician's organization.
    let count = |k: &str| directory.iter().filter(|e| e.kind == k).count();
    assert_eq!((count("Organization"), count("Practitioner"), count("PractitionerRole")), (4, 20, 20));
    let works_at: HashMap<&str, &str> = directory
        .iter()
        .filter(|e| e.kind == "PractitionerRole")
        .map(|e| {
            let at = |k: &str| e.resource[k]["reference"].as_str().unwrap();
            (at("practitioner"), at("organization"))
        })
        .collect();
    for e in patients.iter().flatten().filter(|e| e.kind == "Encounter") {
        let clinician = e.resource["participant"][0]["individual"]["reference"].as_str().unwrap();
        assert_eq!(Some(&e.resource["serviceProvider"]["reference"].as_str().unwrap()), works_at.get(clinician));
    }
}

#[test]
fn another_today_moves_every_date_but_keeps_the_people() {
    let earlier = Generator::with_today(SEED, 2020, 1, 15);
    for n in 0..50 {
        let b = earlier.patient(n);
        for r in resources(&b) {
            for d in dates(r) {
                assert!(d[..10] <= *"2020-01-15", "{}: {d}", kind(r));
            }
        }
        let name = |b: &Value| resources(b).next().unwrap()["name"].clone();
        assert_eq!(name(&b), name(&generate::patient(SEED, n)));
    }
}

#[test]
fn patients_carry_both_identifiers_and_varied_demographics() {
    let g = Generator::new(SEED);
    let dir = g.directory();
    let hospital_of: HashMap<String, String> = resources(&dir)
        .filter(|r| kind(r) == "Organization" && r.get("identifier").is_some())
        .map(|r| {
            (
                format!("Organization/{}", r["id"].as_str().unwrap()),
                r["identifier"][0]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(hospital_of.len(), 2);
    let (mut japanese, mut over_89, mut children, mut deceased, mut female) = (0, 0, 0, 0, 0);
    let mut systems = HashSet::new();
    let today = "2026-06-30";
    for n in 0..1000 {
        let b = g.patient(n);
        let p = resources(&b).next().unwrap();
        assert_eq!(kind(p), "Patient");
        let ids = p["identifier"].as_array().unwrap();
        assert_eq!(ids[0]["system"], generate::MRN_SYSTEM);
        assert_eq!(ids[0]["value"], format!("MRN-{SEED}-{n}"));
        let hospital = ids[1]["system"].as_str().unwrap();
        assert!(generate::HOSPITAL_SYSTEMS.contains(&hospital), "{hospital}");
        assert_eq!(hospital_of[p["managingOrganization"]["reference"].as_str().unwrap()], hospital);
        systems.insert(hospital.to_owned());
        let name = &p["name"][0];
        let text = name["text"].as_str().unwrap();
        assert!(!name["family"].as_str().unwrap().is_empty() && !name["given"][0].as_str().unwrap().is_empty());
        if !text.is_ascii() {
            japanese += 1;
            assert_eq!(text, format!("{} {}", name["family"].as_str().unwrap(), name["given"][0].as_str().unwrap()));
            assert!(p["name"][1]["text"].as_str().unwrap().is_ascii(), "romanised name of {text}");
        }
        let birth = p["birthDate"].as_str().unwrap();
        let age = 2026 - birth[..4].parse::<i32>().unwrap();
        assert!((0..=100).contains(&age), "{birth}");
        over_89 += usize::from(age > 90);
        children += usize::from(age < 18);
        deceased += usize::from(p.get("deceasedDateTime").is_some());
        female += usize::from(p["gender"] == "female");
        let address = &p["address"][0];
        let zip = address["postalCode"].as_str().unwrap();
        assert!(zip.len() == 5 && zip.bytes().all(|b| b.is_ascii_digit()), "{zip}");
        assert!(address["line"][0].is_string() && address["city"].is_string() && address["country"] == "US");
        let telecom: Vec<&str> =
            p["telecom"].as_array().unwrap().iter().map(|t| t["system"].as_str().unwrap()).collect();
        assert_eq!(telecom, ["phone", "email"]);
        assert!(p["maritalStatus"]["coding"][0]["code"].is_string() && p["communication"][0]["language"].is_object());
        // Nothing is dated after "today", nor before birth.
        let end = p["deceasedDateTime"].as_str().map_or(today.to_owned(), |d| d[..10].to_owned());
        for r in resources(&b) {
            let text = r.to_string();
            for date in dates(r) {
                assert!(
                    date.as_str() >= birth && date[..10] <= *end.as_str(),
                    "{}: {date} outside {birth}..{end}: {text}",
                    kind(r)
                );
            }
        }
    }
    assert_eq!(systems.len(), 2);
    assert!((150..350).contains(&japanese), "{japanese} Japanese names of 1000");
    assert!((20..90).contains(&over_89), "{over_89} over 89");
    assert!((120..300).contains(&children), "{children} children");
    assert!((1..50).contains(&deceased), "{deceased} deceased");
    assert!((400..600).contains(&female), "{female} female");
}

/// Every date or dateTime of a resource (`birthDate` excepted), with its
/// element name ignored.
fn dates(r: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![r];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match x {
                        Value::String(s)
                            if k != "birthDate"
                                && s.len() >= 10
                                && s.as_bytes()[4] == b'-'
                                && s.as_bytes()[7] == b'-'
                                && s[..4].bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            out.push(s.clone())
                        }
                        _ => stack.push(x),
                    }
                }
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}

#[test]
fn counts_per_patient_stay_in_range_and_average_near_45() {
    let g = Generator::new(SEED);
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for n in 0..200 {
        let b = g.patient(n);
        let count = b["entry"].as_array().unwrap().len();
        assert!(generate::RESOURCES_PER_PATIENT.contains(&count), "patient {n} has {count} resources");
        total += count;
        for r in resources(&b) {
            *per_type.entry(kind(r).to_owned()).or_default() += 1;
        }
    }
    let average = total as f64 / 200.0;
    assert!((41.0..=49.0).contains(&average), "{average} resources per patient");
    for k in [
        "Patient",
        "CareTeam",
        "Encounter",
        "Condition",
        "Observation",
        "DiagnosticReport",
        "MedicationRequest",
        "AllergyIntolerance",
        "Immunization",
        "Procedure",
    ] {
        assert!(per_type.get(k).copied().unwrap_or(0) > 0, "no {k} in {per_type:?}");
    }
    assert_eq!((per_type["Patient"], per_type["CareTeam"]), (200, 200));
    // Every indexed type is generated, and nothing else.
    assert_eq!(per_type.keys().map(String::as_str).collect::<HashSet<_>>(), fhir::INDEXED.iter().copied().collect());
}

#[test]
fn observations_are_ucum_and_lab_interpretations_match_their_ranges() {
    let g = Generator::new(SEED);
    let ucum = ["cm", "kg", "kg/m2", "/min", "Cel", "%", "mm[Hg]", "mg/dL", "g/dL", "10*3/uL", "mmol/L"];
    let labs: HashMap<&str, &generate::Lab> = LABS.iter().map(|l| (l.loinc, l)).collect();
    let (mut lab_count, mut abnormal, mut critical) = (0, 0, 0);
    let (mut a1c_diabetic, mut a1c_other) = (Vec::new(), Vec::new());
    let mut vital_codes = HashSet::new();
    let mut trends = 0;
    for n in 0..300 {
        let b = g.patient(n);
        let diabetic = resources(&b)
            .any(|r| kind(r) == "Condition" && codes(&r["code"]).any(|c| c == ("http://snomed.info/sct", "44054006")));
        let obs: HashMap<String, &Value> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .map(|e| (e["fullUrl"].as_str().unwrap().to_owned(), &e["resource"]))
            .collect();
        let mut per_code: HashMap<&str, usize> = HashMap::new();
        for o in obs.values() {
            let quantities: Vec<&Value> = std::iter::once(&o["valueQuantity"])
                .chain(o["component"].as_array().into_iter().flatten().map(|c| &c["valueQuantity"]))
                .filter(|q| q.is_object())
                .collect();
            assert!(!quantities.is_empty(), "{o}");
            for q in quantities {
                assert_eq!(q["system"], "http://unitsofmeasure.org", "{o}");
                assert_eq!(q["unit"], q["code"]);
                assert!(ucum.contains(&q["code"].as_str().unwrap()), "{q}");
                assert!(q["value"].as_f64().unwrap() > 0.0, "{q}");
            }
            let category = o["category"][0]["coding"][0]["code"].as_str().unwrap();
            let (system, code) = codes(&o["code"]).next().unwrap();
            assert_eq!(system, "http://loinc.org");
            *per_code.entry(code).or_default() += 1;
            if category == "vital-signs" {
                vital_codes.insert(code.to_owned());
                continue;
            }
            assert_eq!(category, "laboratory");
            let lab = labs[code];
            let v = o["valueQuantity"]["value"].as_f64().unwrap();
            assert_eq!(o["valueQuantity"]["code"], lab.unit);
            let range = &o["referenceRange"][0];
            let (low, high) = (range["low"]["value"].as_f64().unwrap(), range["high"]["value"].as_f64().unwrap());
            assert_eq!((low, high), (lab.low, lab.high));
            assert_eq!(
                (range["low"]["code"].as_str(), range["high"]["code"].as_str()),
                (Some(lab.unit), Some(lab.unit))
            );
            let interpretation = &o["interpretation"][0]["coding"][0];
            assert_eq!(interpretation["system"], "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation");
            let expected = if lab.critical_low.is_some_and(|c| v < c) {
                "LL"
            } else if v < low {
                "L"
            } else if lab.critical_high.is_some_and(|c| v > c) {
                "HH"
            } else if v > high {
                "H"
            } else {
                "N"
            };
            assert_eq!(interpretation["code"], expected, "{code} {v} in {low}..{high}");
            lab_count += 1;
            abnormal += usize::from(expected != "N");
            critical += usize::from(expected.len() == 2);
            if code == "4548-4" {
                if diabetic { a1c_diabetic.push(v) } else { a1c_other.push(v) }
            }
        }
        // Trends: an adult with labs has each test of the panels at least twice.
        if per_code.contains_key("2339-0") {
            trends += 1;
            for code in ["2339-0", "2160-0", "2823-3", "2951-2", "718-7", "6690-2", "2093-3"] {
                assert!(per_code.get(code).copied().unwrap_or(0) >= 2, "patient {n}: {code} once: {per_code:?}");
            }
        }
        // Reports reference this patient's lab Observations only.
        for r in resources(&b).filter(|r| kind(r) == "DiagnosticReport") {
            let results = r["result"].as_array().unwrap();
            assert!(!results.is_empty());
            for x in results {
                let o = obs[x["reference"].as_str().unwrap()];
                assert_eq!(o["category"][0]["coding"][0]["code"], "laboratory");
                assert_eq!(o["encounter"], r["encounter"]);
            }
        }
    }
    let all_vitals = ["8867-4", "85354-9", "8310-5", "29463-7", "8302-2", "39156-5", "9279-1", "2708-6"];
    assert!(all_vitals.iter().all(|c| vital_codes.contains(*c)), "{vital_codes:?}");
    assert!(trends > 150, "{trends} patients with lab trends");
    let share = abnormal as f64 / lab_count as f64;
    assert!((0.05..0.35).contains(&share), "{abnormal} abnormal of {lab_count}");
    assert!(critical > 0 && (critical as f64) < lab_count as f64 * 0.01, "{critical} critical of {lab_count}");
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(a1c_diabetic.len() > 20 && a1c_other.len() > 200, "{} {}", a1c_diabetic.len(), a1c_other.len());
    assert!(mean(&a1c_diabetic) > mean(&a1c_other) + 1.5, "{} vs {}", mean(&a1c_diabetic), mean(&a1c_other));
}

#[test]
fn codes_use_the_right_systems_and_statuses_agree() {
    const SNOMED: &str = "http://snomed.info/sct";
    const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    let g = Generator::new(SEED);
    let (mut classes, mut statuses, mut categories) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut cvx = HashSet::new();
    for n in 0..300 {
        let b = g.patient(n);
        for r in resources(&b) {
            let code_system = || codes(&r["code"]).next().unwrap().0;
            match kind(r) {
                "Condition" => {
                    assert_eq!(code_system(), SNOMED);
                    let (system, status) = codes(&r["clinicalStatus"]).next().unwrap();
                    assert_eq!(system, "http://terminology.hl7.org/CodeSystem/condition-clinical");
                    assert_eq!(status == "resolved", r.get("abatementDateTime").is_some(), "{r}");
                    assert!(status == "active" || status == "resolved");
                    assert_eq!(
                        codes(&r["verificationStatus"]).next().unwrap().0,
                        "http://terminology.hl7.org/CodeSystem/condition-ver-status"
                    );
                    assert!(r["onsetDateTime"].as_str().unwrap() <= r["recordedDate"].as_str().unwrap(), "{r}");
                    assert!(r["encounter"]["reference"].is_string());
                    statuses.insert(format!("Condition {status}"));
                }
                "Procedure" => {
                    assert_eq!(code_system(), SNOMED);
                    assert_eq!(r["status"], "completed");
                    assert!(r.get("performedDateTime").is_some() != r.get("performedPeriod").is_some());
                }
                "Observation" | "DiagnosticReport" => assert_eq!(code_system(), "http://loinc.org"),
                "Immunization" => {
                    let (system, code) = codes(&r["vaccineCode"]).next().unwrap();
                    assert_eq!(system, "http://hl7.org/fhir/sid/cvx");
                    assert_eq!(r["status"], "completed");
                    cvx.insert(code.to_owned());
                }
                "MedicationRequest" => {
                    assert_eq!(codes(&r["medicationCodeableConcept"]).next().unwrap().0, RXNORM);
                    assert_eq!(r["intent"], "order");
                    assert!(r["requester"]["reference"].as_str().unwrap().starts_with("Practitioner/"));
                    assert!(r["dosageInstruction"][0]["text"].is_string());
                    statuses.insert(format!("MedicationRequest {}", r["status"].as_str().unwrap()));
                }
                "AllergyIntolerance" => {
                    let (system, _) = codes(&r["code"]).next().unwrap();
                    let category = r["category"][0].as_str().unwrap();
                    assert_eq!(system, if category == "medication" { RXNORM } else { SNOMED }, "{r}");
                    assert_eq!(
                        codes(&r["clinicalStatus"]).next().unwrap().0,
                        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
                    );
                    assert_eq!(r["type"], "allergy");
                    assert!(r["criticality"] == "low" || r["criticality"] == "high");
                    assert_eq!(codes(&r["reaction"][0]["manifestation"][0]).next().unwrap().0, SNOMED);
                    categories.insert(category.to_owned());
                }
                "Encounter" => {
                    assert_eq!(r["class"]["system"], "http://terminology.hl7.org/CodeSystem/v3-ActCode");
                    classes.insert(r["class"]["code"].as_str().unwrap().to_owned());
                    assert_eq!(codes(&r["type"][0]).next().unwrap().0, SNOMED);
                    assert!(
                        r["participant"][0]["individual"]["reference"].as_str().unwrap().starts_with("Practitioner/")
                    );
                    assert!(r["serviceProvider"]["reference"].as_str().unwrap().starts_with("Organization/"));
                    assert!(r["period"]["start"].as_str() < r["period"]["end"].as_str());
                }
                "CareTeam" => {
                    let members = r["participant"].as_array().unwrap();
                    assert!((1..=3).contains(&members.len()));
                    assert!(
                        members.iter().all(|m| m["member"]["reference"].as_str().unwrap().starts_with("Practitioner/"))
                    );
                    assert!(r["status"] == "active" || r["status"] == "inactive");
                }
                _ => {}
            }
        }
    }
    assert_eq!(classes, ["AMB", "EMER", "IMP"].map(String::from).into());
    for s in [
        "Condition active",
        "Condition resolved",
        "MedicationRequest active",
        "MedicationRequest completed",
        "MedicationRequest stopped",
    ] {
        assert!(statuses.contains(s), "no {s} in {statuses:?}");
    }
    assert_eq!(categories, ["medication", "food", "environment"].map(String::from).into());
    for code in ["140", "208", "113", "08", "20"] {
        assert!(cvx.contains(code), "no CVX {code} in {cvx:?}");
    }
}

#[test]
fn ids_are_unique_across_1000_patients() {
    let g = Generator::new(SEED);
    let mut ids: HashSet<String> = resources(&g.directory()).map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    let mut total = 0;
    for n in 0..1000 {
        let b = g.patient(n);
        for r in resources(&b) {
            let id = r["id"].as_str().unwrap();
            assert!(fhir::is_id(id));
            assert!(ids.insert(id.to_owned()), "patient {n}: {} {id} again", kind(r));
            *per_type.entry(kind(r).to_owned()).or_default() += 1;
            total += 1;
        }
    }
    let per_patient: BTreeMap<&str, f64> = per_type.iter().map(|(k, v)| (k.as_str(), *v as f64 / 1000.0)).collect();
    eprintln!("1000 patients in {:?}: {total} resources, per patient {per_patient:?}", started.elapsed());
    assert_eq!(ids.len(), total + 44);
}
