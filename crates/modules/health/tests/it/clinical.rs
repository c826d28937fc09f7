//! Clinical logic: lab results (ranges, flags, trends, filters), the care
//! summary and the data digest — on the shared Synthea data where it has
//! the values, on hand-built Observations for the edges.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use plexus_health::clinical::{
    self, CareSummary, Direction, Flag, LabFilter, LabResults, LabValue, PatientContext, RangeSource, Sex,
};
use plexus_health::{fhir, import};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::macros::date;

use crate::data;

/// Every Synthea bundle imported (organizations and practitioners first),
/// the resources grouped by patient id.
fn bundle_patients(dir: &Path) -> HashMap<String, Vec<Value>> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("synthea-r4")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        (!(n.starts_with("hospital") || n.starts_with("practitioner")), n)
    });
    let mut known: HashMap<String, String> = HashMap::new();
    let mut by_patient: HashMap<String, Vec<Value>> = HashMap::new();
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let entries = import::bundle(&v, &f.display().to_string(), &|id| known.get(id).cloned()).unwrap();
        for e in entries {
            known.insert(e.id.clone(), e.kind.clone());
            if let Some(p) = fhir::patient_of(&e.resource) {
                by_patient.entry(p).or_default().push(e.resource);
            }
        }
    }
    by_patient
}

/// The bulk NDJSON export's resources of one patient.
fn bulk_patient(dir: &Path, patient: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir.join("bulk-ndjson-10-patients")).unwrap() {
        let f = f.unwrap().path();
        let (ok, rejected) = import::ndjson(&std::fs::read_to_string(&f).unwrap(), "x");
        assert!(rejected.is_empty());
        out.extend(ok.into_iter().map(|e| e.resource).filter(|r| fhir::patient_of(r).as_deref() == Some(patient)));
    }
    out
}

const BIBI: &str = "475d72ca-91c7-7211-97e3-f000af33fc04";
const LETA: &str = "5a67c244-3dae-770c-1a41-85790f73b1b1";
const AUGUSTUS: &str = "cbc86e51-9eca-3855-76ec-c058f72c5761";

fn filter(code: Option<&str>, from: Option<&str>, to: Option<&str>) -> LabFilter {
    LabFilter::parse(code, from, to).unwrap()
}

fn only(r: &LabResults, code: &str) -> LabValue {
    let s = r.series.iter().find(|s| s.code == code).unwrap_or_else(|| panic!("no series {code}: {r:#?}"));
    assert_eq!(s.values.len(), 1, "{code}");
    s.latest.clone()
}

#[test]
fn synthea_vital_signs_flagged_as_the_file_values_imply() {
    let Some(dir) = data() else { return };
    let patients = bundle_patients(&dir);
    let bibi = &patients[BIBI];
    // No patient context: the adult table applies.
    let t = clinical::lab_results(bibi, &filter(Some("8310-5"), None, None));
    assert_eq!(t.series.len(), 1);
    let temp = only(&t, "8310-5");
    assert_eq!((temp.value, temp.unit.as_deref()), (Some(40.894), Some("Cel")));
    assert_eq!(temp.effective.as_deref(), Some("2020-03-06T20:20:23-08:00"));
    assert_eq!(temp.category.as_deref(), Some("vital-signs"));
    let range = temp.range.clone().unwrap();
    assert_eq!((range.low, range.high, range.source), (Some(36.1), Some(37.2), RangeSource::Table));
    assert_eq!(temp.flag, Some(Flag::H), "40.894 > 37.2, above the NEWS2 critical low only");
    assert!(t.series[0].trend.is_none(), "a single value has no trend");

    let expect = [
        ("9279-1", 38.641, Flag::HH), // ≥ 25/min
        ("8867-4", 106.98, Flag::H),  // > 100, < 131
        ("2708-6", 85.76, Flag::LL),  // ≤ 91 %
        ("8462-4", 72.0, Flag::N),    // 60–79
        ("8480-6", 116.0, Flag::N),   // 90–119
    ];
    for (code, value, flag) in expect {
        let v = only(&clinical::lab_results(bibi, &filter(Some(code), None, None)), code);
        assert_eq!((v.value, v.flag), (Some(value), Some(flag)), "{code}");
    }
    // Body weight: no range anywhere, and it says so.
    let w = only(&clinical::lab_results(bibi, &filter(Some("29463-7"), None, None)), "29463-7");
    assert_eq!((w.value, w.unit.as_deref(), w.flag), (Some(36.0), Some("kg"), None));
    assert!(w.range_unavailable.unwrap().contains("no reference range"));
    // The blood-pressure panel by its own code: both components.
    let bp = clinical::lab_results(bibi, &filter(Some("85354-9"), None, None));
    let codes: Vec<&str> = bp.series.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(codes, ["8462-4", "8480-6"]);
    assert!(bp.series.iter().all(|s| s.latest.panel_code.as_deref() == Some("85354-9")));

    // Heart rate across the nine patients with vitals, by the file's values:
    // 131.1 and 133.64 cross NEWS2's ≥ 131, 130.61 does not.
    let hr: [(&str, f64, Flag); 9] = [
        (BIBI, 106.98, Flag::H),
        ("d4519c92-d241-b2b2-7360-291d60be699e", 107.55, Flag::H),
        ("6a93e0ad-9bd0-6d85-34a7-015186f7880a", 131.1, Flag::HH),
        ("6b9c211c-2c38-3955-43a0-4d285c714fab", 81.245, Flag::N),
        ("4f1ad84a-f8a2-2de6-343d-007efe781585", 97.311, Flag::N),
        (LETA, 133.64, Flag::HH),
        ("ea2dd5fa-0e9e-4d5b-6384-13f67dc0c142", 91.091, Flag::N),
        ("c59c86ae-4a63-26e3-bd4b-fa19c3f4f521", 73.472, Flag::N),
        ("6aea0b29-c091-8809-bf10-f926c27e1bb7", 130.61, Flag::H),
    ];
    for (p, value, flag) in hr {
        let v = only(&clinical::lab_results(&patients[p], &filter(Some("8867-4"), None, None)), "8867-4");
        assert_eq!((v.value, v.unit.as_deref(), v.flag), (Some(value), Some("/min"), Some(flag)), "{p}");
    }
    // Cris921's respiratory rate 24.09 is high but under NEWS2's 25.
    let rr =
        clinical::lab_results(&patients["d4519c92-d241-b2b2-7360-291d60be699e"], &filter(Some("9279-1"), None, None));
    assert_eq!(only(&rr, "9279-1").flag, Some(Flag::H));
}

#[test]
fn synthea_children_get_no_adult_table_ranges() {
    let Some(dir) = data() else { return };
    let patients = bundle_patients(&dir);
    let bibi = &patients[BIBI];
    let patient = bibi.iter().find(|r| r["resourceType"] == "Patient").unwrap();
    let ctx = PatientContext::from_patient(patient);
    assert_eq!((ctx.birth_date, ctx.sex), (Some(date!(2009 - 04 - 29)), Some(Sex::Female)));
    let r = clinical::lab_results(bibi, &filter(Some("8310-5"), None, None).for_patient(ctx));
    let temp = only(&r, "8310-5");
    assert_eq!((temp.value, temp.range.as_ref(), temp.flag), (Some(40.894), None, None));
    assert!(temp.range_unavailable.unwrap().contains("10 years old"), "she was 10 on 2020-03-06");
}

#[test]
fn synthea_lab_results_are_laboratory_by_default() {
    let Some(dir) = data() else { return };
    let patients = bundle_patients(&dir);
    // The whole record is passed: other resource types are ignored.
    let r = clinical::lab_results(&patients[BIBI], &LabFilter::default());
    assert_eq!(r.filter.categories, ["laboratory"]);
    assert_eq!(r.series.len(), 10, "nine respiratory-virus panels and SARS-CoV-2");
    assert!(r.series.iter().all(|s| s.latest.category.as_deref() == Some("laboratory")));
    assert!(r.series.iter().all(|s| !["8310-5", "8867-4", "85354-9", "8480-6"].contains(&s.code.as_str())));
    let covid = only(&r, "94531-1");
    assert_eq!(covid.value_text.as_deref(), Some("Detected (qualifier value)"));
    assert_eq!((covid.flag, covid.effective.as_deref()), (Some(Flag::A), Some("2020-03-06T21:09:23-08:00")));
    let flu = only(&r, "92142-9");
    assert_eq!((flu.value_text.as_deref(), flu.flag), (Some("Negative (qualifier value)"), Some(Flag::N)));
    assert_eq!((r.total_values, r.abnormal_values, r.critical_values), (10, 1, 0));
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    // Leta870's SARS-CoV-2 test was negative.
    let leta = clinical::lab_results(&patients[LETA], &filter(Some("94531-1"), None, None));
    let v = only(&leta, "94531-1");
    assert_eq!((v.value_text.as_deref(), v.flag), (Some("Not detected (qualifier value)"), Some(Flag::N)));
    // Every patient has one value per code in these files: never a trend.
    for obs in patients.values() {
        for code in ["8310-5", "8867-4", "2708-6"] {
            assert!(
                clinical::lab_results(obs, &filter(Some(code), None, None)).series.iter().all(|s| s.trend.is_none())
            );
        }
    }
}

#[test]
fn synthea_date_filters_use_the_recorded_local_date_or_the_instant() {
    let Some(dir) = data() else { return };
    let patients = bundle_patients(&dir);
    let bibi = &patients[BIBI];
    let codes = |r: &LabResults| r.series.iter().map(|s| s.code.clone()).collect::<Vec<_>>();
    // 21:09 at -08:00 on 6 March is 05:09 UTC on the 7th: a date bound
    // reads the local date as recorded.
    assert_eq!(clinical::lab_results(bibi, &filter(None, None, Some("2020-03-06"))).total_values, 10);
    assert_eq!(clinical::lab_results(bibi, &filter(None, Some("2020-03-06"), Some("2020-03-06"))).total_values, 10);
    assert_eq!(clinical::lab_results(bibi, &filter(None, Some("2020-03-07"), None)).total_values, 0);
    assert_eq!(clinical::lab_results(bibi, &filter(None, None, Some("2020-03-05"))).total_values, 0);
    assert_eq!(clinical::lab_results(bibi, &filter(None, Some("2020-03"), Some("2020"))).total_values, 10);
    // A dateTime bound compares instants, whatever the zone it is written in.
    let late = clinical::lab_results(bibi, &filter(None, Some("2020-03-06T21:00:00-08:00"), None));
    assert_eq!(codes(&late), ["94531-1"]);
    let same = clinical::lab_results(bibi, &filter(None, Some("2020-03-07T05:00:00Z"), None));
    assert_eq!(codes(&same), ["94531-1"]);
    let early = clinical::lab_results(bibi, &filter(None, None, Some("2020-03-06T20:32:23-08:00")));
    assert_eq!(early.total_values, 9, "the nine panels at 20:32:23, not SARS-CoV-2 at 21:09");
    // With a vital code and a window that ends before it was taken: nothing.
    assert!(
        clinical::lab_results(bibi, &filter(Some("8310-5"), None, Some("2020-03-06T20:20:22-08:00"))).series.is_empty()
    );
}

fn summary_of(resources: &[Value]) -> CareSummary {
    clinical::care_summary(resources, date!(2026 - 01 - 15))
}

#[test]
fn synthea_care_summary_of_a_bundle_patient() {
    let Some(dir) = data() else { return };
    let patients = bundle_patients(&dir);
    let s = summary_of(&patients[BIBI]);
    assert_eq!(s.patient.name.as_deref(), Some("Bibi254 Schowalter414"));
    assert_eq!((s.patient.gender.as_deref(), s.patient.birth_date.as_deref()), (Some("female"), Some("2009-04-29")));
    assert_eq!(s.patient.age_years, Some(16));
    assert!(s.problems.is_empty(), "every condition of hers is resolved: {:?}", s.problems);
    assert!(s.allergies.no_known_allergies && s.allergies.items.is_empty());
    assert!(s.allergies.statement.contains("No known allergies"));
    // Labs: the latest per code, the detected SARS-CoV-2 first.
    assert_eq!(s.labs.len(), 10);
    assert_eq!((s.labs[0].code.as_str(), s.labs[0].flag), ("94531-1", Some(Flag::A)));
    assert!(s.labs[1..].iter().all(|l| l.flag == Some(Flag::N)));
    assert_eq!(s.counts.abnormal_latest_labs, 1);
    // Vitals: temperature, respiratory rate, heart rate, SpO2, both BP
    // components, weight; she was 10, so no adult ranges.
    assert_eq!(s.vital_signs.len(), 7);
    let temp = s.vital_signs.iter().find(|v| v.code == "8310-5").unwrap();
    assert_eq!((temp.value, temp.flag), (Some(40.894), None));
    assert!(temp.range_unavailable.as_deref().unwrap().contains("adults"));
    // Immunizations: influenza ten times, the last on 2020-05-13.
    let flu = s.immunizations.iter().find(|i| i.coded.code.as_deref() == Some("140")).unwrap();
    assert_eq!((flu.doses, flu.date.as_deref()), (10, Some("2020-05-13T21:20:23-07:00")));
    assert_eq!(s.immunizations.len(), 9);
    assert_eq!(s.immunizations[0].coded.display, "HPV, quadrivalent", "ties on the date go by name");
    // Encounters: the last five of thirteen, most recent first.
    assert_eq!((s.encounters.len(), s.counts.encounters), (5, 13));
    assert_eq!(s.encounters[0].start.as_deref(), Some("2020-05-13T21:20:23-07:00"));
    assert_eq!(s.encounters[0].kind.as_deref(), Some("Well child visit (procedure)"));
    assert_eq!(s.encounters[1].start.as_deref(), Some("2020-03-06T20:20:23-08:00"));
    assert_eq!(s.encounters[1].class.as_deref(), Some("AMB"));
    let text = clinical::summary_text(&s);
    assert!(text.starts_with("# Care summary: Bibi254 Schowalter414\n"), "{text}");
    assert!(text.contains("No known allergies"));
    assert!(
        text.contains("- SARS-CoV-2 RNA Pnl Resp NAA+probe: Detected (qualifier value) **A**, 2020-03-06"),
        "{text}"
    );

    // Leta870: cough and fever still active.
    let s = summary_of(&patients[LETA]);
    let problems: Vec<(&str, Option<&str>)> =
        s.problems.iter().map(|p| (p.coded.display.as_str(), p.onset.as_deref())).collect();
    assert_eq!(
        problems,
        [
            ("Cough (finding)", Some("2020-03-09T06:32:28-07:00")),
            ("Fever (finding)", Some("2020-03-09T06:32:28-07:00"))
        ]
    );
}

#[test]
fn synthea_care_summary_of_a_bulk_patient_lists_his_allergies() {
    let Some(dir) = data() else { return };
    let mine = bulk_patient(&dir, AUGUSTUS);
    // The export holds every patient: the others' resources are left out.
    let mut all = mine.clone();
    all.extend(bulk_patient(&dir, "fb7c882a-f897-e7c5-67e0-825e7fd55d15"));
    let s = summary_of(&all);
    assert_eq!(s.patient.id.as_deref(), Some(AUGUSTUS), "the first Patient by id");
    assert!(s.counts.other_patients > 0);
    assert_eq!(s, {
        let mut alone = summary_of(&mine);
        alone.counts.other_patients = s.counts.other_patients;
        alone.skipped.clone_from(&s.skipped);
        alone
    });
    assert_eq!(s.patient.name.as_deref(), Some("Augustus49 Neville893 Emmerich580"));
    assert_eq!((s.patient.birth_date.as_deref(), s.patient.age_years), (Some("1995-12-30"), Some(30)));

    let allergies: Vec<&str> = s.allergies.items.iter().map(|a| a.coded.display.as_str()).collect();
    assert_eq!(
        allergies,
        [
            "Animal dander (substance)",
            "Aspirin",
            "Bee venom (substance)",
            "Eggs (edible) (substance)",
            "House dust mite (organism)",
            "Latex (substance)",
            "Mold (organism)",
            "Tree pollen (substance)",
        ]
    );
    assert!(!s.allergies.no_known_allergies);
    let aspirin = &s.allergies.items[1];
    assert!(aspirin.id.as_deref().unwrap().starts_with("1b2ce4a9"));
    assert_eq!(aspirin.coded.code.as_deref(), Some("1191"));
    assert_eq!(
        (aspirin.category.as_slice(), aspirin.criticality.as_deref()),
        (&["medication".to_owned()][..], Some("low"))
    );
    assert_eq!(
        s.allergies.items[0].reactions,
        ["Wheal (finding)", "Dyspnea (finding)", "Rhinoconjunctivitis (disorder)"]
    );

    let problems: Vec<&str> = s.problems.iter().map(|p| p.coded.display.as_str()).collect();
    assert_eq!(
        problems,
        [
            "Full-time employment (finding)",
            "Limited social contact (finding)",
            "Misuses drugs (finding)",
            "Victim of intimate partner abuse (finding)",
            "Received higher education (finding)",
            "Social isolation (finding)",
        ],
        "active ones only, latest onset first"
    );
    let meds: Vec<(&str, Option<&str>)> =
        s.medications.iter().map(|m| (m.coded.display.as_str(), m.dosage.as_deref())).collect();
    assert_eq!(
        meds,
        [
            ("Fexofenadine hydrochloride 30 MG Oral Tablet", Some("Take as needed.")),
            ("NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", Some("Take as needed.")),
        ],
        "two active of four"
    );
    let vaccines: Vec<(&str, usize, &str)> = s
        .immunizations
        .iter()
        .map(|i| (i.coded.code.as_deref().unwrap(), i.doses, &i.date.as_deref().unwrap()[..10]))
        .collect();
    assert_eq!(
        vaccines,
        [
            ("208", 2, "2021-05-23"),
            ("140", 5, "2021-03-06"),
            ("43", 2, "2018-03-03"),
            ("113", 1, "2018-03-03"),
            ("114", 1, "2018-03-03")
        ]
    );
    assert_eq!((s.encounters.len(), s.counts.encounters), (5, 15));
    let starts: Vec<&str> = s.encounters.iter().map(|e| &e.start.as_deref().unwrap()[..10]).collect();
    assert_eq!(starts, ["2021-05-23", "2021-05-02", "2021-03-06", "2018-08-11", "2018-03-03"]);
    assert_eq!(s.encounters[3].class.as_deref(), Some("EMER"));
    assert!(s.labs.is_empty() && s.vital_signs.is_empty(), "the export has no Observations");

    let text = clinical::summary_text(&s);
    assert!(text.contains("8 allergies or intolerances recorded."), "{text}");
    assert!(text.contains("- **Aspirin** — medication allergy, criticality low, active"), "{text}");
    assert!(text.contains("## Active problems (6)"));
    assert!(
        text.contains("Fexofenadine hydrochloride 30 MG Oral Tablet — active; Take as needed.; prescribed 1996-12-27")
    );
    assert!(!text.contains("No known allergies"));
}

#[test]
fn synthea_digest_is_order_free_and_edit_sensitive() {
    let Some(dir) = data() else { return };
    let patients = bundle_patients(&dir);
    let mut r = patients[BIBI].clone();
    let d = clinical::digest(&r);
    r.reverse();
    assert_eq!(clinical::digest(&r), d);
    let i = r.iter().position(|x| x["code"]["coding"][0]["code"] == "8310-5").unwrap();
    r[i]["valueQuantity"]["value"] = json!(40.895);
    assert_ne!(clinical::digest(&r), d);
    // The documented Python recipe, run over the same 60 NDJSON resources of
    // Augustus49, gave this digest.
    let mut mine = bulk_patient(&dir, AUGUSTUS);
    assert_eq!(mine.len(), 60);
    let expect = "sha256:b5c58b42744349bcfecd6c4ef40e1e628b29d72f05f5bd0a77dfad376ebaf96b";
    assert_eq!(clinical::digest(&mine), expect);
    mine.rotate_left(17);
    assert_eq!(clinical::digest(&mine), expect);
}

// ---------------------------------------------------------------- hand-built

fn obs(id: &str, code: &str, when: &str, value: Value) -> Value {
    let category = if ["8867-4", "9279-1", "8480-6", "8462-4", "85354-9", "2708-6", "8310-5"].contains(&code) {
        "vital-signs"
    } else {
        "laboratory"
    };
    let mut o = json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": format!("test {code}")}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
    });
    if let Value::Object(m) = value {
        o.as_object_mut().unwrap().extend(m);
    }
    o
}

fn qty(value: f64, unit: &str) -> Value {
    json!({"valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}})
}

fn flag_of(code: &str, value: f64, unit: &str) -> Option<Flag> {
    let o = obs("o", code, "2024-01-01T10:00:00Z", qty(value, unit));
    clinical::lab_results(&[o], &filter(Some(code), None, None)).series[0].latest.flag
}

#[test]
fn flags_at_the_range_and_critical_edges() {
    type Case = (&'static str, &'static str, &'static [(f64, Flag)]);
    let cases: &[Case] = &[
        // Potassium: 3.5–5.1, critical < 2.8 or > 6.2 mmol/L.
        (
            "2823-3",
            "mmol/L",
            &[
                (2.7, Flag::LL),
                (2.8, Flag::L),
                (3.49, Flag::L),
                (3.5, Flag::N),
                (5.1, Flag::N),
                (5.2, Flag::H),
                (6.2, Flag::H),
                (6.21, Flag::HH),
            ],
        ),
        // Glucose: 70–99, critical < 40 or > 500 mg/dL.
        (
            "2339-0",
            "mg/dL",
            &[
                (39.9, Flag::LL),
                (40.0, Flag::L),
                (69.0, Flag::L),
                (99.0, Flag::N),
                (100.0, Flag::H),
                (500.0, Flag::H),
                (501.0, Flag::HH),
            ],
        ),
        // Sodium 135–145, critical < 120 or > 160; mEq/L is the same.
        (
            "2951-2",
            "meq/L",
            &[(119.0, Flag::LL), (120.0, Flag::L), (140.0, Flag::N), (160.0, Flag::H), (161.0, Flag::HH)],
        ),
        // Hemoglobin (either sex 12.0–17.5), critical < 7 g/dL.
        ("718-7", "g/dL", &[(6.9, Flag::LL), (7.0, Flag::L), (13.0, Flag::N), (17.6, Flag::H)]),
        // Heart rate: NEWS2's inclusive ≤ 40 and ≥ 131.
        (
            "8867-4",
            "/min",
            &[
                (40.0, Flag::LL),
                (41.0, Flag::L),
                (60.0, Flag::N),
                (100.0, Flag::N),
                (130.9, Flag::H),
                (131.0, Flag::HH),
            ],
        ),
        // Systolic: < 90 and > 180 critical.
        (
            "8480-6",
            "mm[Hg]",
            &[(89.0, Flag::LL), (90.0, Flag::N), (120.0, Flag::H), (180.0, Flag::H), (181.0, Flag::HH)],
        ),
        // Leukocytes in 10*9/L, the table's 10*3/uL by another name.
        ("6690-2", "10*9/L", &[(1.9, Flag::LL), (4.4, Flag::L), (7.0, Flag::N), (11.1, Flag::H), (30.1, Flag::HH)]),
    ];
    for (code, unit, values) in cases {
        for (v, expect) in *values {
            assert_eq!(flag_of(code, *v, unit), Some(*expect), "{code} {v} {unit}");
        }
    }
}

#[test]
fn a_unit_mismatch_is_reported_never_compared() {
    // Glucose in mmol/L against the table's mg/dL: 5.5 would be "L" and 600
    // "HH" if compared; neither is flagged.
    for v in [5.5, 600.0] {
        let o = obs("g", "2339-0", "2024-01-01T10:00:00Z", qty(v, "mmol/L"));
        let r = clinical::lab_results(&[o], &LabFilter::default());
        let g = &r.series[0].latest;
        assert_eq!((g.value, g.range.as_ref(), g.flag), (Some(v), None, None));
        assert_eq!(
            g.range_unavailable.as_deref(),
            Some("unit mismatch: the value is in mmol/L but the table's range is in mg/dL")
        );
    }
    // A value without a unit is not compared either.
    let o = obs("k", "2823-3", "2024-01-01T10:00:00Z", json!({"valueInteger": 9}));
    let k = clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone();
    assert_eq!((k.value, k.flag), (Some(9.0), None));
    assert!(k.range_unavailable.unwrap().contains("no unit"));
    // The Observation's own range in mmol/L is used, and beats the table.
    let mut o = obs("g2", "2339-0", "2024-01-01T10:00:00Z", qty(12.0, "mmol/L"));
    o["referenceRange"] = json!([{"low": {"value": 3.9, "unit": "mmol/L", "code": "mmol/L"}, "high": {"value": 5.5, "unit": "mmol/L", "code": "mmol/L"}}]);
    let g = clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone();
    assert_eq!(g.flag, Some(Flag::H));
    let range = g.range.unwrap();
    assert_eq!((range.low, range.high, range.source), (Some(3.9), Some(5.5), RangeSource::Observation));
    // ... but not when its unit differs from the value's: then the table.
    let mut o = obs("k2", "2823-3", "2024-01-01T10:00:00Z", qty(5.3, "mmol/L"));
    o["referenceRange"] = json!([{"low": {"value": 13.7, "code": "mg/dL"}, "high": {"value": 21.5, "code": "mg/dL"}}]);
    let k = clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone();
    assert_eq!((k.flag, k.range.unwrap().source), (Some(Flag::H), RangeSource::Table));
    assert!(k.notes.iter().any(|n| n.contains("not used")), "{:?}", k.notes);
    // The laboratory's wider range makes 5.3 normal where the table says H.
    let mut o = obs("k3", "2823-3", "2024-01-01T10:00:00Z", qty(5.3, "mmol/L"));
    o["referenceRange"] = json!([{"low": {"value": 3.5}, "high": {"value": 5.5}}]);
    let k = clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone();
    assert_eq!((k.flag, k.range.unwrap().source), (Some(Flag::N), RangeSource::Observation));
}

#[test]
fn coded_interpretation_is_reported_and_never_downgrades() {
    let with = |v: f64, interp: &str| {
        let mut o = obs("k", "2823-3", "2024-01-01T10:00:00Z", qty(v, "mmol/L"));
        o["interpretation"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": interp}]}]);
        clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone()
    };
    let k = with(6.5, "H");
    assert_eq!(
        (k.flag, k.computed_flag, k.interpretation, k.flags_disagree),
        (Some(Flag::HH), Some(Flag::HH), Some(Flag::H), true)
    );
    let k = with(4.0, "H");
    assert_eq!(
        (k.flag, k.computed_flag, k.interpretation, k.flags_disagree),
        (Some(Flag::H), Some(Flag::N), Some(Flag::H), true)
    );
    let k = with(4.0, "N");
    assert_eq!((k.flag, k.flags_disagree), (Some(Flag::N), false));
    assert!(k.notes.is_empty());
    // An interpretation alone (no range known) is the flag.
    let mut o = obs("x", "9999-9", "2024-01-01T10:00:00Z", qty(1.0, "U/L"));
    o["interpretation"] = json!([{"coding": [{"code": "LL"}]}]);
    let x = clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone();
    assert_eq!((x.flag, x.computed_flag), (Some(Flag::LL), None));
}

#[test]
fn sex_specific_ranges_and_bounds() {
    let hb = || obs("h", "718-7", "2024-01-01T10:00:00Z", qty(13.0, "g/dL"));
    let ctx = |sex| PatientContext { birth_date: Some(date!(1980 - 01 - 01)), sex };
    let run = |c| clinical::lab_results(&[hb()], &LabFilter::default().for_patient(c)).series[0].latest.clone();
    let m = run(ctx(Some(Sex::Male)));
    assert_eq!((m.flag, m.range.as_ref().unwrap().low), (Some(Flag::L), Some(13.5)));
    assert_eq!(m.range.unwrap().text.as_deref(), Some("adult male"));
    let f = run(ctx(Some(Sex::Female)));
    assert_eq!((f.flag, f.range.unwrap().high), (Some(Flag::N), Some(15.5)));
    assert_eq!(run(ctx(None)).range.unwrap().text.as_deref(), Some("adult, either sex"));
    // A minor: no adult range, no flag.
    let child = PatientContext { birth_date: Some(date!(2010 - 06 - 01)), sex: Some(Sex::Male) };
    assert_eq!(run(child).flag, None);

    // Values given as bounds are flagged only when the bound settles it.
    let bound = |cmp: &str, v: f64| {
        let o = obs(
            "b",
            "2339-0",
            "2024-01-01T10:00:00Z",
            json!({"valueQuantity": {"value": v, "comparator": cmp, "code": "mg/dL"}}),
        );
        clinical::lab_results(&[o], &LabFilter::default()).series[0].latest.clone()
    };
    assert_eq!(bound("<", 30.0).flag, Some(Flag::LL));
    assert_eq!(bound(">", 600.0).flag, Some(Flag::HH));
    assert_eq!(bound(">", 120.0).flag, Some(Flag::H));
    let b = bound("<", 100.0);
    assert_eq!((b.flag, b.comparator.as_deref()), (None, Some("<")));
    assert!(b.notes.iter().any(|n| n.contains("bound")));
    assert_eq!(bound(">", 80.0).flag, None);
}

#[test]
fn a_blood_pressure_panel_gives_one_value_per_component() {
    let mut bp = obs("bp", "85354-9", "2024-05-01T08:00:00+02:00", json!({}));
    bp["component"] = json!([
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic"}]},
         "valueQuantity": {"value": 185, "unit": "mmHg", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic"}]},
         "valueQuantity": {"value": 95, "code": "mm[Hg]"},
         "interpretation": [{"coding": [{"code": "H"}]}]},
        {"code": {"text": "no coding"}, "valueQuantity": {"value": 1}},
    ]);
    let r = clinical::lab_results(std::slice::from_ref(&bp), &filter(Some("85354-9"), None, None));
    let got: Vec<(&str, Option<f64>, Option<Flag>)> =
        r.series.iter().map(|s| (s.code.as_str(), s.latest.value, s.latest.flag)).collect();
    assert_eq!(got, [("8462-4", Some(95.0), Some(Flag::H)), ("8480-6", Some(185.0), Some(Flag::HH))]);
    assert!(r.series.iter().all(|s| s.latest.panel_code.as_deref() == Some("85354-9")));
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    assert!(r.skipped[0].reason.contains("component 2"));
    // A component's code selects that component only.
    let r = clinical::lab_results(std::slice::from_ref(&bp), &filter(Some("http://loinc.org|8480-6"), None, None));
    assert_eq!(r.series.len(), 1);
    assert_eq!((r.series[0].code.as_str(), r.series[0].display.as_deref()), ("8480-6", Some("Systolic")));
    // Vital signs are not lab results unless asked for by code.
    assert!(clinical::lab_results(&[bp], &LabFilter::default()).series.is_empty());
}

#[test]
fn trends_are_computed_in_time_order() {
    // Given out of order; HbA1c 6.0 → 6.5 → 7.2 % is rising by 0.7 (10.77 %).
    let a1c = [
        obs("a3", "4548-4", "2024-09-01", qty(7.2, "%")),
        obs("a1", "4548-4", "2023-09-01T09:00:00-04:00", qty(6.0, "%")),
        obs("a2", "4548-4", "2024-03-01T09:00:00-05:00", qty(6.5, "%")),
    ];
    let r = clinical::lab_results(&a1c, &LabFilter::default());
    let s = &r.series[0];
    let ids: Vec<&str> = s.values.iter().map(|v| v.observation_id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["a1", "a2", "a3"]);
    assert_eq!(s.latest.observation_id.as_deref(), Some("a3"));
    let t = s.trend.clone().unwrap();
    assert_eq!((t.latest, t.previous, t.change, t.percent_change), (7.2, 6.5, 0.7, Some(10.77)));
    assert_eq!((t.direction, t.stable_below_percent), (Direction::Rising, 5.0));
    assert_eq!(s.abnormal_count, 3, "all above 5.6 %");
    // Creatinine 1.00 → 1.04 mg/dL: 4 % is stable; hemoglobin 14 → 12 falls.
    let mixed = [
        obs("c1", "2160-0", "2024-01-01", qty(1.0, "mg/dL")),
        obs("c2", "2160-0", "2024-02-01", qty(1.04, "mg/dL")),
        obs("h1", "718-7", "2024-01-01", qty(14.0, "g/dL")),
        obs("h2", "718-7", "2024-02-01", qty(12.0, "g/dL")),
        obs("h3", "718-7", "2024-03-01", qty(120.0, "g/L")),
    ];
    let r = clinical::lab_results(&mixed, &LabFilter::default());
    let codes: Vec<&str> = r.series.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(codes, ["2160-0", "718-7"]);
    let c = r.series[0].trend.clone().unwrap();
    assert_eq!((c.change, c.percent_change, c.direction), (0.04, Some(4.0), Direction::Stable));
    // The latest hemoglobin is in g/L: compared with nothing (no earlier g/L).
    let h = &r.series[1];
    assert_eq!(h.latest.unit.as_deref(), Some("g/L"));
    assert!(h.trend.is_none());
    assert!(h.latest.range_unavailable.as_deref().unwrap().contains("unit mismatch"));
    // Without it, 14 → 12 g/dL falls by 14.29 %.
    let r = clinical::lab_results(&mixed[..4], &filter(Some("718-7"), None, None));
    let t = r.series[0].trend.clone().unwrap();
    assert_eq!((t.change, t.percent_change, t.direction), (-2.0, Some(-14.29), Direction::Falling));
    // Deterministic: the same output for any input order.
    let mut reversed = mixed.to_vec();
    reversed.reverse();
    assert_eq!(
        clinical::lab_results(&reversed, &LabFilter::default()),
        clinical::lab_results(&mixed, &LabFilter::default())
    );
}

#[test]
fn filters_are_validated() {
    use clinical::FilterError;
    assert!(matches!(LabFilter::parse(None, Some("2024-13"), None), Err(FilterError::BadTime(_))));
    assert!(matches!(LabFilter::parse(None, Some("2024-03-01T10:00"), None), Err(FilterError::BadTime(_))));
    assert!(matches!(LabFilter::parse(None, Some("2024-02-30"), None), Err(FilterError::BadTime(_))));
    assert!(matches!(LabFilter::parse(None, Some("yesterday"), None), Err(FilterError::BadTime(_))));
    assert!(matches!(
        LabFilter::parse(None, Some("2024-03-02"), Some("2024-03-01")),
        Err(FilterError::Reversed { .. })
    ));
    assert_eq!(LabFilter::parse(Some("  "), None, None), Err(FilterError::EmptyCode));
    assert!(LabFilter::parse(Some("2339-0"), Some("2024"), Some("2024-03-01T10:00:00.123+05:30")).is_ok());
    // Same day from and to is fine; a date's span covers the whole day.
    let f = LabFilter::parse(None, Some("2024-03-01"), Some("2024-03-01")).unwrap();
    let os = [
        obs("early", "2339-0", "2024-03-01T00:00:00+14:00", qty(90.0, "mg/dL")),
        obs("late", "2339-0", "2024-03-01T23:59:59-12:00", qty(91.0, "mg/dL")),
        obs("next", "2339-0", "2024-03-02T00:00:00-12:00", qty(92.0, "mg/dL")),
        obs("month", "2339-0", "2024-03", qty(93.0, "mg/dL")),
    ];
    let ids: Vec<String> =
        clinical::lab_results(&os, &f).series[0].values.iter().map(|v| v.observation_id.clone().unwrap()).collect();
    assert_eq!(ids, ["early", "month", "late"], "by instant; a partial date overlapping the window is kept");
}

#[test]
fn malformed_input_is_skipped_and_reported() {
    let inputs = vec![
        Value::Null,
        json!([1, 2]),
        json!({"resourceType": "Patient", "id": "p1"}),
        json!({"id": "typeless", "valueQuantity": {"value": 1}}),
        json!({"resourceType": "Observation", "id": "nocode", "status": "final",
               "category": [{"coding": [{"code": "laboratory"}]}], "code": {"text": "sugar"}}),
        json!({"resourceType": "Observation", "id": "err", "status": "entered-in-error",
               "category": [{"coding": [{"code": "laboratory"}]}], "code": {"coding": [{"code": "2339-0"}]}}),
        obs("str", "2339-0", "2024-01-01", json!({"valueQuantity": {"value": "high", "code": "mg/dL"}})),
        obs("baddate", "2339-0", "yesterday", qty(250.0, "mg/dL")),
        obs("noval", "2339-0", "2024-01-02", json!({"valueQuantity": {"code": "mg/dL"}})),
        obs("absent", "2339-0", "2024-01-03", json!({"dataAbsentReason": {"text": "sample hemolyzed"}})),
        obs("period", "2339-0", "2024-01-04", json!({"valueRatio": {"numerator": {"value": 1}}})),
        json!({"resourceType": "Observation", "id": "weird", "status": "final", "category": "laboratory",
               "code": {"coding": "2339-0"}, "valueQuantity": 5, "effectiveDateTime": 20240101}),
    ];
    let r = clinical::lab_results(&inputs, &filter(Some("2339-0"), None, None));
    let skipped: Vec<(&str, &str)> = r.skipped.iter().map(|s| (s.resource.as_str(), s.reason.as_str())).collect();
    assert_eq!(
        skipped,
        [
            ("Observation/err", "status entered-in-error"),
            ("resource", "not a JSON object"),
            ("resource", "not a JSON object"),
            ("resource/typeless", "no resourceType"),
        ],
        "what does not match the code is passed over, however malformed"
    );
    let s = &r.series[0];
    let by_id = |id: &str| s.values.iter().find(|v| v.observation_id.as_deref() == Some(id)).unwrap();
    assert_eq!((by_id("str").value, by_id("str").value_text.as_deref()), (None, Some("high")));
    assert!(by_id("str").notes.iter().any(|n| n.contains("not a number")));
    let bad = by_id("baddate");
    assert_eq!((bad.value, bad.flag), (Some(250.0), Some(Flag::H)));
    assert!(bad.notes.iter().any(|n| n.contains("not a FHIR dateTime")));
    assert_eq!(s.values[0].observation_id.as_deref(), Some("baddate"), "no time sorts first");
    assert_eq!(by_id("absent").value_text.as_deref(), Some("no value: sample hemolyzed"));
    assert!(by_id("period").notes.iter().any(|n| n.contains("valueRatio")));
    assert!(by_id("noval").value.is_none());
    assert_eq!(s.values.len(), 5);
    // Without a code filter (laboratory only), the code-less one is reported.
    let r = clinical::lab_results(&inputs, &LabFilter::default());
    assert!(r.skipped.iter().any(|s| s.resource == "Observation/nocode" && s.reason == "no coded code"));
    assert!(r.skipped.iter().any(|s| s.resource == "Observation/err" && s.reason == "status entered-in-error"));
    // A date filter leaves out what has no readable time.
    let r = clinical::lab_results(&inputs, &filter(Some("2339-0"), Some("2000"), None));
    assert!(r.series[0].values.iter().all(|v| v.observation_id.as_deref() != Some("baddate")));
    // The summary takes the same input without panicking.
    let s = clinical::care_summary(&inputs, date!(2026 - 01 - 15));
    assert_eq!(s.patient.id.as_deref(), Some("p1"));
    assert_eq!(s.patient.name, None);
    let _ = clinical::summary_text(&s);
    let _ = clinical::digest(&inputs);
}

fn patient(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "male", "birthDate": "1960-02-29",
           "name": [{"use": "nickname", "given": ["Bo"]}, {"use": "official", "given": ["Robert", "J*"], "family": "Doe_"}]})
}

#[test]
fn care_summary_sections_follow_status_rules() {
    let p = "Patient/p1";
    let resources = vec![
        patient("p1"),
        json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": p},
               "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"text": "Hypertension"}, "onsetDateTime": "2015-04"}),
        json!({"resourceType": "Condition", "id": "c2", "subject": {"reference": p},
               "clinicalStatus": {"coding": [{"code": "resolved"}]}, "code": {"text": "Otitis"}}),
        json!({"resourceType": "Condition", "id": "c3", "subject": {"reference": p},
               "clinicalStatus": {"coding": [{"code": "recurrence"}]}, "code": {"text": "Gout"}, "onsetDateTime": "2020-01-01"}),
        json!({"resourceType": "Condition", "id": "c4", "subject": {"reference": p},
               "clinicalStatus": {"coding": [{"code": "active"}]}, "verificationStatus": {"coding": [{"code": "refuted"}]},
               "code": {"text": "Asthma"}}),
        json!({"resourceType": "MedicationRequest", "id": "m1", "subject": {"reference": p}, "status": "on-hold",
               "intent": "order", "medicationReference": {"reference": "#med"},
               "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "Lisinopril 10 MG"}}],
               "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                                      "doseAndRate": [{"doseQuantity": {"value": 1.0, "unit": "tablet"}}]}]}),
        json!({"resourceType": "MedicationRequest", "id": "m2", "subject": {"reference": p}, "status": "stopped",
               "intent": "order", "medicationCodeableConcept": {"text": "Ibuprofen"}}),
        json!({"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": p},
               "clinicalStatus": {"coding": [{"code": "resolved"}]}, "code": {"text": "Penicillin"}}),
        json!({"resourceType": "AllergyIntolerance", "id": "a2", "patient": {"reference": p},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "716186003", "display": "No known allergy"}]}}),
        json!({"resourceType": "Condition", "id": "other", "subject": {"reference": "Patient/p2"},
               "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"text": "Not his"}}),
        json!({"resourceType": "Immunization", "id": "i1", "patient": {"reference": p}, "status": "not-done",
               "vaccineCode": {"text": "Flu"}, "occurrenceDateTime": "2024-10-01"}),
        {
            let mut k = obs("k1", "2823-3", "2025-01-01T08:00:00Z", qty(6.5, "mmol/L"));
            k["subject"] = json!({"reference": p});
            k
        },
        {
            let mut g = obs("g1", "2339-0", "2025-02-01T08:00:00Z", qty(90.0, "mg/dL"));
            g["subject"] = json!({"reference": p});
            g
        },
        {
            let mut h = obs("h1", "718-7", "2024-02-01T08:00:00Z", qty(12.9, "g/dL"));
            h["subject"] = json!({"reference": p});
            h
        },
    ];
    let s = clinical::care_summary(&resources, date!(2026 - 02 - 28));
    assert_eq!(s.patient.name.as_deref(), Some("Robert J* Doe_"));
    assert_eq!(s.patient.age_years, Some(65), "born 29 Feb 1960: not 66 until 1 March");
    let problems: Vec<&str> = s.problems.iter().map(|p| p.coded.display.as_str()).collect();
    assert_eq!(problems, ["Gout", "Hypertension"]);
    assert_eq!(s.counts.other_patients, 1);
    assert_eq!(s.medications.len(), 1);
    assert_eq!(s.medications[0].coded.display, "Lisinopril 10 MG");
    assert_eq!(s.medications[0].dosage.as_deref(), Some("1 tablet, 1 time(s) every 1 d"));
    assert!(s.allergies.no_known_allergies && s.allergies.items.is_empty());
    assert_eq!(s.allergies.statement, "No known allergies (recorded as such).");
    assert!(s.immunizations.is_empty());
    // Labs: critical potassium, then the male-low hemoglobin, then glucose.
    let labs: Vec<(&str, Option<Flag>)> = s.labs.iter().map(|l| (l.code.as_str(), l.flag)).collect();
    assert_eq!(labs, [("2823-3", Some(Flag::HH)), ("718-7", Some(Flag::L)), ("2339-0", Some(Flag::N))]);
    assert_eq!(s.counts.abnormal_latest_labs, 2);
    let text = clinical::summary_text(&s);
    assert!(text.starts_with("# Care summary: Robert J\\* Doe\\_\n"), "{text}");
    assert!(text.contains("male · born 1960-02-29 · age 65 · Patient/p1 · as of 2026-02-28"), "{text}");
    assert!(text.contains("- test 2823-3: 6.5 mmol/L **HH** (range 3.5–5.1 mmol/L, table), 2025-01-01"), "{text}");
    assert!(text.contains("- Gout — since 2020-01-01"));
    assert!(text.contains("## Immunizations (most recent per vaccine)\n\nNone recorded."));
    // Order does not matter.
    let mut shuffled = resources.clone();
    shuffled.rotate_left(5);
    assert_eq!(clinical::care_summary(&shuffled, date!(2026 - 02 - 28)), s);
    // And with nothing at all recorded, allergies still say so.
    let empty = clinical::care_summary(&[patient("p1")], date!(2026 - 02 - 28));
    assert_eq!(empty.allergies.statement, "No known allergies: no allergy or intolerance is recorded.");
}

#[test]
fn digest_is_canonical_order_free_and_edit_sensitive() {
    let a = json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe"}], "active": true});
    let b = json!({"resourceType": "Observation", "id": "o1", "status": "final", "valueQuantity": {"value": 1.5, "unit": "mg"}});
    let c = json!({"resourceType": "Observation", "id": "o0", "note": [{"text": "é \"q\"\n"}]});
    let d = clinical::digest(&[a.clone(), b.clone(), c.clone()]);
    // The documented recipe, by hand: sorted by (type, id), keys sorted, no spaces.
    let canonical = concat!(
        r#"[{"id":"o0","note":[{"text":"é \"q\"\n"}],"resourceType":"Observation"},"#,
        r#"{"id":"o1","resourceType":"Observation","status":"final","valueQuantity":{"unit":"mg","value":1.5}},"#,
        r#"{"active":true,"id":"p1","name":[{"family":"Doe"}],"resourceType":"Patient"}]"#
    );
    assert_eq!(d, format!("sha256:{}", hex::encode(Sha256::digest(canonical.as_bytes()))));
    assert_eq!(d.len(), 7 + 64);
    for order in [[&b, &c, &a], [&c, &a, &b], [&a, &c, &b]] {
        assert_eq!(clinical::digest(&order.map(Clone::clone)), d);
    }
    // Any edit changes it: a value, a key, an added or removed resource.
    let mut edited = b.clone();
    edited["valueQuantity"]["value"] = json!(1.50001);
    assert_ne!(clinical::digest(&[a.clone(), edited, c.clone()]), d);
    let mut renamed = a.clone();
    renamed["name"][0] = json!({"family ": "Doe"});
    assert_ne!(clinical::digest(&[renamed, b.clone(), c.clone()]), d);
    assert_ne!(clinical::digest(&[a.clone(), b.clone()]), d);
    assert_ne!(clinical::digest(&[a.clone(), b.clone(), c.clone(), c.clone()]), d);
    assert_eq!(clinical::digest(&[]), format!("sha256:{}", hex::encode(Sha256::digest(b"[]"))));
}
