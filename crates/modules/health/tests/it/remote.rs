//! The module over other FHIR servers (the fixture servers of
//! `client.rs`): a patient known here by identifiers that route to three
//! servers, one answering (but failing one type), one hanging, one down.
//! `get_patient_data` must answer within the call's deadline with what the
//! store and the answering server gave, and one error per type and source
//! that failed.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_core::TenantId;
use plexus_health::client::{Auth, FhirClient, Router, ServerConfig};
use plexus_health::{FhirStore, Health, load, remote};
use serde_json::{Value, json};

use crate::client::{Access, Fault, Fixture, MRN_NORTH, MRN_SOUTH, config, dataset, http, patient};
use crate::module::{call, store, who};

const ALL: [&str; 7] =
    ["demographics", "medications", "allergies", "conditions", "observations", "immunizations", "encounters"];

/// The local patient `loc1` (identified in both systems), with one
/// Condition and one AllergyIntolerance.
async fn local_patient(fhir: &FhirStore, dir: &std::path::Path) {
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "id": "loc1", "gender": "female", "birthDate": "1970-01-01",
                      "name": [{"family": "山田", "given": ["花子"]}],
                      "identifier": [{"system": MRN_NORTH, "value": "123"}, {"system": MRN_SOUTH, "value": "123"}]},
         "request": {"method": "PUT", "url": "Patient/loc1"}},
        {"resource": {"resourceType": "Condition", "id": "loc-cond", "subject": {"reference": "Patient/loc1"},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}], "text": "Diabetes"}},
         "request": {"method": "PUT", "url": "Condition/loc-cond"}},
        {"resource": {"resourceType": "AllergyIntolerance", "id": "loc-allergy", "patient": {"reference": "Patient/loc1"},
                      "code": {"text": "Peanut"}},
         "request": {"method": "PUT", "url": "AllergyIntolerance/loc-allergy"}}
    ]});
    let path = dir.join("local.json");
    std::fs::write(&path, bundle.to_string()).unwrap();
    let report = load::import_paths(fhir, &TenantId::new("general"), &[path], &|_, _, _| {}).await.unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

fn by_type(out: &Value) -> BTreeMap<String, Vec<String>> {
    out["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()))
        .collect()
}

fn errors_of(out: &Value, source: &str) -> Vec<(String, String)> {
    out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == source)
        .map(|e| (e["dataType"].as_str().unwrap().to_owned(), e["error"].as_str().unwrap().to_owned()))
        .collect()
}

fn status_of(out: &Value, source: &str) -> String {
    let s = out["sources"].as_array().unwrap().iter().find(|s| s["name"] == source);
    s.map_or_else(|| "absent".into(), |s| s["status"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_or_slow_gives_partial_results_per_type_within_the_deadline() {
    let (st, dir) = store().await;
    let fhir = FhirStore::open(st).await.unwrap();
    local_patient(&fhir, &dir).await;

    // north holds p1 (MRN_NORTH|123): 23 Observations, 3 Conditions, 4
    // MedicationRequests; its Condition search fails with 500 on every try.
    let north = Fixture::start(dataset(), Access::Open).await;
    north.fault("/fhir/Condition?patient=p1", Fault::Status(500, None), 10);
    // slow holds s9 (MRN_SOUTH|123) but never answers in time.
    let slow = Fixture::start(vec![patient("s9", MRN_SOUTH, "123")], Access::Open).await;
    slow.fault("/fhir/", Fault::Hang, 50);
    // down: nothing listens on its port.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down_url = format!("http://{}/fhir", closed.local_addr().unwrap());
    drop(closed);
    let router = Router::new(vec![
        FhirClient::new(config("north", &north, Auth::None), http()).unwrap(),
        FhirClient::new(ServerConfig { systems: vec![MRN_SOUTH.into()], ..config("slow", &slow, Auth::None) }, http())
            .unwrap(),
        FhirClient::new(
            ServerConfig {
                systems: vec![MRN_SOUTH.into()],
                retry: plexus_core::http::RetryPolicy {
                    attempts: 3,
                    base: Duration::from_millis(10),
                    max_wait: Duration::from_millis(100),
                },
                ..ServerConfig::new("down", &down_url)
            },
            http(),
        )
        .unwrap(),
    ])
    .unwrap();
    let health = Health::new(fhir.clone(), remote::remotes(router));

    let mut cx = who("general", "admin-1", &["admin"]);
    let budget = Duration::from_millis(1500);
    cx.deadline = Some(std::time::Instant::now() + budget);
    let started = std::time::Instant::now();
    let out = call(&health, &cx, "get_patient_data", json!({"patientId": "loc1", "dataTypes": ALL})).await.unwrap();
    let took = started.elapsed();

    // What answered is there: the store's records and north's, north's
    // marked with their source.
    let data = by_type(&out);
    assert_eq!(data["demographics"], ["loc1", "p1"]);
    assert_eq!(data["conditions"], ["loc-cond"], "north's Conditions failed");
    assert_eq!(data["allergies"], ["loc-allergy"]);
    assert_eq!(data["observations"].len(), 23);
    assert!(data["observations"].iter().all(|id| id.starts_with("obs-p1-")));
    assert_eq!(data["medications"].len(), 4);
    let obs = &out["data"]["observations"][0];
    assert_eq!(obs["meta"]["source"], north.fhir.as_str());

    // One error per failed type and source, naming the cause.
    let north_errors = errors_of(&out, "north");
    assert_eq!(north_errors.len(), 1, "{north_errors:?}");
    assert_eq!(north_errors[0].0, "conditions");
    assert!(north_errors[0].1.contains("500"), "{}", north_errors[0].1);
    let slow_errors = errors_of(&out, "slow");
    assert_eq!(slow_errors.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ALL);
    assert!(slow_errors.iter().all(|(_, e)| e.contains("no answer before the deadline")), "{slow_errors:?}");
    let down_errors = errors_of(&out, "down");
    assert_eq!(down_errors.len(), ALL.len());
    assert!(down_errors.iter().all(|(_, e)| e.contains("FHIR server `down`")), "{down_errors:?}");
    assert!(errors_of(&out, "local").is_empty());

    assert_eq!(status_of(&out, "local"), "answered");
    assert_eq!(status_of(&out, "north"), "partial");
    assert_eq!(status_of(&out, "slow"), "failed");
    assert_eq!(status_of(&out, "down"), "failed");
    // The hanging server answers after 30 s: the call did not wait for it.
    assert!(took < budget + Duration::from_secs(3), "took {took:?}");
    assert!(slow.hits("GET /fhir/Patient?identifier=") >= 1);

    // Minimum necessary: only the types asked for are fetched.
    let before = north.log().len();
    let mut cx = who("general", "admin-1", &["admin"]);
    cx.deadline = Some(std::time::Instant::now() + budget);
    let out =
        call(&health, &cx, "get_patient_data", json!({"patientId": "loc1", "dataTypes": ["allergies"]})).await.unwrap();
    assert_eq!(by_type(&out).keys().collect::<Vec<_>>(), ["allergies"]);
    let asked: Vec<String> = north.log()[before..].iter().filter(|l| !l.contains("identifier=")).cloned().collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].starts_with("GET /fhir/AllergyIntolerance?patient=p1"), "{asked:?}");
}
