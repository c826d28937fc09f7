//! The module end to end on SQLite with encryption at rest: the shared
//! Synthea data imported through `load::import_paths`, then every tool
//! called as each role would, with the values checked against the files.

use plexus_testkit::postgres::PgSchema;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use plexus_core::{CallContext, Module, Principal, TenantId, ToolError};
use plexus_health::store::FhirStore;
use plexus_health::{Health, load};
use plexus_store::{Keyring, MasterKey, NewTenant, Store};
use serde_json::{Value, json};

const CRIS: &str = "d4519c92-d241-b2b2-7360-291d60be699e";
/// Dr. Bo157 Stanton715: the primary performer of Cris's encounters.
const DR_STANTON: &str = "87416e57-79f3-3b42-a8d3-c3aaa33bce75";
const BULK_ASPIRIN_PATIENT: &str = "cbc86e51-9eca-3855-76ec-c058f72c5761";

use crate::data;

pub(crate) async fn store() -> (Store, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "plexus-health-it-{}-{}",
        std::process::id(),
        plexus_testkit::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.join("plexus.db").display())).await.unwrap();
    store.set_keyring(Some(Keyring::new(MasterKey::generate().unwrap().0, [])));
    for t in ["general", "mercy"] {
        store
            .create_tenant(&NewTenant { id: TenantId::new(t), name: t.into(), tier: "standard".into() })
            .await
            .unwrap();
    }
    (store, dir)
}

pub(crate) fn who(tenant: &str, subject: &str, roles: &[&str]) -> CallContext {
    let mut cx = CallContext::detached(format!("req-{subject}-{}", plexus_testkit::unique_suffix()));
    cx.principal = Arc::new(Principal {
        subject: subject.into(),
        tenant: TenantId::new(tenant),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        scopes: Vec::new(),
        groups: Vec::new(),
        method: "api_key",
    });
    cx
}

pub(crate) async fn call(m: &Health, cx: &CallContext, tool: &str, args: Value) -> Result<Value, ToolError> {
    let out = m.call(cx, tool, args).await?;
    // get_patient_data gives its answer as text only: the value is parsed from it.
    Ok(out.into_structured().unwrap_or(Value::Null))
}

/// Every string in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn file_resources(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir.join("synthea-r4")).unwrap() {
        let b: Value = serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap();
        out.extend(b["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()));
    }
    for f in std::fs::read_dir(dir.join("bulk-ndjson-10-patients")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        out.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    out
}

/// The database behind the store's back, to check what is at rest.
enum Raw<'a> {
    Sqlite(sqlx::SqlitePool),
    Postgres(&'a PgSchema),
}

impl Raw<'_> {
    async fn rows(&self, sql: &str) -> Vec<(String, String, String)> {
        match self {
            Raw::Sqlite(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(pool).await.unwrap(),
            Raw::Postgres(pg) => {
                let sql = sql.replace("FROM ", &format!("FROM {}.", pg.role()));
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pg.admin()).await.unwrap()
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthea_through_the_tools_by_role_on_sqlite() {
    let Some(dir) = data() else { return };
    let (store, tmp) = store().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", tmp.join("plexus.db").display())).await.unwrap();
    through_the_tools(&dir, store, Raw::Sqlite(pool)).await;
    let _ = std::fs::remove_dir_all(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthea_through_the_tools_by_role_on_postgres() {
    let Some(dir) = data() else { return };
    let Some(pg) = PgSchema::start("plexus_health", "the health module").await else { return };
    let store = Store::open(&pg.url).await.unwrap();
    assert_eq!(store.backend(), plexus_store::Backend::Postgres);
    store.set_keyring(Some(Keyring::new(MasterKey::generate().unwrap().0, [])));
    for t in ["general", "mercy"] {
        store
            .create_tenant(&NewTenant { id: TenantId::new(t), name: t.into(), tier: "standard".into() })
            .await
            .unwrap();
    }
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(through_the_tools(
        &dir,
        store,
        Raw::Postgres(&pg),
    )))
    .await;
    pg.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Import the shared data into `store`, then every tool as each role would
/// call it, values checked against the files.
async fn through_the_tools(dir: &std::path::Path, store: Store, raw: Raw<'_>) {
    let fhir = FhirStore::open(store.clone()).await.unwrap();
    let general = TenantId::new("general");
    // Import, in an order that needs the retry pass (patients before practitioners).
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir.join("synthea-r4")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort_by_key(|p| p.file_name().unwrap().to_string_lossy().starts_with("hospital"));
    paths.push(dir.join("bulk-ndjson-10-patients"));
    let report = load::import_paths(&fhir, &general, &paths, &|_, _, _| {}).await.unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    // Counted by (type, id): a resource given twice is stored once.
    let mut in_files: BTreeMap<String, i64> = BTreeMap::new();
    let resources = file_resources(dir);
    let unique: std::collections::BTreeSet<(String, String)> = resources
        .iter()
        .map(|r| (r["resourceType"].as_str().unwrap().to_owned(), r["id"].as_str().unwrap().to_owned()))
        .collect();
    for (kind, _) in &unique {
        *in_files.entry(kind.clone()).or_default() += 1;
    }
    assert_eq!((in_files["Organization"], in_files["Practitioner"], in_files["Patient"]), (60, 60, 23));
    assert_eq!(fhir.counts(&general).await.unwrap(), in_files, "stored counts per type equal the files'");
    assert_eq!(report.stored.created, unique.len());
    // Idempotent: a second import changes nothing. (The patient bundles
    // repeat 34 of the hospital and practitioner bundles' organizations and
    // practitioners, with other content: one version is kept, written once.)
    assert_eq!(report.repeated, 34);
    let snapshot = || raw.rows("SELECT kind, id, digest FROM health_resources ORDER BY kind, id");
    let before = snapshot().await;
    let again = load::import_paths(&fhir, &general, &paths, &|_, _, _| {}).await.unwrap();
    assert_eq!((again.stored.created, again.stored.updated, again.stored.unchanged), (0, 0, resources.len()));
    assert_eq!(snapshot().await, before);
    // Encrypted at rest: no patient name in the database file.
    let bodies = raw.rows("SELECT kind, id, body FROM health_resources WHERE kind = 'Patient'").await;
    assert_eq!(bodies.len(), 23);
    assert!(bodies.iter().all(|(_, _, b)| b.starts_with("pxe1.") && !b.contains("Rath779")));

    let m = Health::new(fhir.clone(), Vec::new());
    let admin = who("general", "root", &["admin"]);
    // A known name, allergy and lab value, from the files.
    let d =
        call(&m, &admin, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["demographics", "observations"]}))
            .await
            .unwrap();
    assert_eq!(d["data"]["demographics"][0]["name"][0]["family"], "Rath779");
    assert!(d["data"].get("medications").is_none(), "minimum necessary: only the types asked for");
    let temp = d["data"]["observations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "8310-5" && o["effectiveDateTime"] == "2020-02-29T05:57:27-08:00")
        .unwrap();
    assert_eq!(temp["valueQuantity"]["value"], 38.699);
    let n_obs = resources
        .iter()
        .filter(|r| r["resourceType"] == "Observation" && r["subject"]["reference"] == format!("urn:uuid:{CRIS}"))
        .count();
    assert_eq!(d["data"]["observations"].as_array().unwrap().len(), n_obs);
    assert_eq!(d["integrity"]["resources"], n_obs + 1);
    // The digest is the documented recipe over the resources the answer holds.
    let shown: Vec<&Value> = d["data"].as_object().unwrap().values().flat_map(|l| l.as_array().unwrap()).collect();
    assert_eq!(d["integrity"]["digest"].as_str().unwrap(), plexus_health::clinical::digest(shown.iter().copied()));
    // The answer carries the stored texts as they are: every resource in
    // it is there in its canonical JSON, byte for byte.
    let out = m
        .call(&admin, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["demographics", "observations"]}))
        .await
        .unwrap();
    let text = out.structured_text().unwrap();
    assert!(shown.iter().all(|r| text.contains(&plexus_health::clinical::canonical_json(r))));
    // What the store holds is canonical JSON, for every resource of every
    // patient of the files: the text read without parsing equals the
    // parsed resource written canonically.
    let kinds: Vec<&str> = plexus_health::fhir::INDEXED.to_vec();
    for (_, patient) in unique.iter().filter(|(k, _)| k == "Patient") {
        let texts = fhir.record_texts(&general, patient, &kinds).await.unwrap();
        let values = fhir.record(&general, patient, &kinds).await.unwrap();
        assert_eq!(texts.keys().collect::<Vec<_>>(), values.keys().collect::<Vec<_>>());
        for (kind, list) in &texts {
            for ((id, text), value) in list.iter().zip(&values[kind]) {
                assert_eq!(value["id"], id.as_str());
                assert_eq!(text, &plexus_health::clinical::canonical_json(value), "{kind}/{id}");
            }
        }
    }
    assert_eq!(d["sources"][0]["name"], "local");
    let a =
        call(&m, &admin, "get_patient_data", json!({"patientId": BULK_ASPIRIN_PATIENT, "dataTypes": ["allergies"]}))
            .await
            .unwrap();
    let allergies: Vec<String> = a["data"]["allergies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["code"]["coding"][0]["display"].as_str().map(str::to_owned))
        .collect();
    assert!(allergies.iter().any(|x| x.contains("Aspirin")), "{allergies:?}");
    // Lab results: the fever is flagged high against the table range.
    let labs = call(&m, &admin, "get_lab_results", json!({"patientId": CRIS, "code": "8310-5"})).await.unwrap();
    let text = labs.to_string();
    assert!(text.contains("38.699"), "{text}");
    // Care summary by identifier (system|value).
    let s = call(
        &m,
        &admin,
        "create_care_summary",
        json!({"patientId": format!("http://hospital.smarthealthit.org|{CRIS}")}),
    )
    .await
    .unwrap();
    assert_eq!(s["patientId"], CRIS);
    assert!(s["text"].as_str().unwrap().contains("Rath779") || s["text"].as_str().unwrap().contains("Cris921"));
    // Search: a condition by words, across patients.
    let found = call(&m, &admin, "search_medical_records", json!({"query": "COVID-19"})).await.unwrap();
    assert!(!found["hits"].as_array().unwrap().is_empty(), "{found}");

    // Care relationship: Dr. Stanton (an Encounter participant) sees Cris; a stranger does not.
    let dr = who("general", DR_STANTON, &["clinician"]);
    let ok = call(&m, &dr, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["conditions"]})).await.unwrap();
    assert!(ok["access"].as_str().unwrap().contains("Encounter/"), "{}", ok["access"]);
    let stranger = who("general", "dr-nobody", &["clinician"]);
    let denied = call(&m, &stranger, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["conditions"]}))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("no care relationship"), "{denied}");
    // The search never shows what the stranger may not see.
    let none = call(&m, &stranger, "search_medical_records", json!({"query": "COVID-19"})).await.unwrap();
    assert!(none["hits"].as_array().unwrap().is_empty() && none["withheld"].as_u64().unwrap() > 0, "{none}");
    // Break-the-glass: a reason is required; with one, access for a while.
    let short = call(&m, &stranger, "break_the_glass", json!({"patientId": CRIS, "reason": "   "})).await.unwrap_err();
    assert!(short.to_string().contains("reason"), "{short}");
    let missing = m.call(&stranger, "break_the_glass", json!({"patientId": CRIS})).await.unwrap_err();
    assert!(matches!(missing, ToolError::InvalidArguments(_)), "{missing}");
    let g =
        call(&m, &stranger, "break_the_glass", json!({"patientId": CRIS, "reason": "unconscious in the ER, no chart"}))
            .await
            .unwrap();
    assert_eq!(g["grant"]["kind"], "break-the-glass");
    let now =
        call(&m, &stranger, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["allergies"]})).await.unwrap();
    assert!(now["access"].as_str().unwrap().starts_with("emergency access"));
    // Researchers: de-identified, none of the 18 identifiers.
    let researcher = who("general", "res-1", &["researcher"]);
    let all_types = json!([
        "demographics",
        "medications",
        "allergies",
        "conditions",
        "observations",
        "immunizations",
        "encounters"
    ]);
    let r =
        call(&m, &researcher, "get_patient_data", json!({"patientId": CRIS, "dataTypes": all_types})).await.unwrap();
    assert_eq!(r["deidentified"], true);
    let patient = resources.iter().find(|x| x["resourceType"] == "Patient" && x["id"] == CRIS).unwrap();
    let mut forbidden = vec![CRIS.to_owned(), "Rath779".into(), "Cris921".into()];
    forbidden.push(patient["birthDate"].as_str().unwrap().to_owned());
    for t in patient["telecom"].as_array().into_iter().flatten() {
        forbidden.push(t["value"].as_str().unwrap().to_owned());
    }
    for a in patient["address"].as_array().into_iter().flatten() {
        forbidden.extend(a["line"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()));
        forbidden.push(a["city"].as_str().unwrap().to_owned());
    }
    for i in patient["identifier"].as_array().unwrap() {
        forbidden.push(i["value"].as_str().unwrap().to_owned());
    }
    for (tool, args) in [
        ("get_patient_data", json!({"patientId": CRIS, "dataTypes": all_types})),
        ("get_lab_results", json!({"patientId": CRIS})),
        ("create_care_summary", json!({"patientId": CRIS})),
        ("search_medical_records", json!({"filters": {"patientId": CRIS}, "limit": 100})),
    ] {
        let out = call(&m, &researcher, tool, args).await.unwrap();
        let mut all = Vec::new();
        strings(&out, &mut all);
        for f in &forbidden {
            assert!(!all.iter().any(|s| s.contains(f.as_str())), "{tool} shows {f} to a researcher");
        }
    }
    // Auditors read disclosures, not data.
    let auditor = who("general", "aud-1", &["auditor"]);
    assert!(
        call(&m, &auditor, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["allergies"]})).await.is_err()
    );
    let log = call(&m, &auditor, "get_patient_disclosures", json!({"patientId": CRIS})).await.unwrap();
    let list = log["disclosures"].as_array().unwrap();
    assert!(list.iter().any(|d| d["subject"] == "dr-nobody" && d["outcome"] == "denied"));
    assert!(
        list.iter().any(|d| d["subject"] == "dr-nobody" && d["break_glass"] == true && d["tool"] == "get_patient_data")
    );
    assert!(list.iter().any(|d| d["subject"] == DR_STANTON && d["purpose"].as_str().unwrap().contains("Encounter/")));
    assert!(list.iter().any(|d| d["subject"] == "res-1" && d["purpose"] == "research (de-identified)"));
    assert!(log.get("audit_events").is_none());
    // The same log as IHE BALP AuditEvents: one per row, in order.
    let balp = call(&m, &auditor, "get_patient_disclosures", json!({"patientId": CRIS, "format": "auditevent"}))
        .await
        .unwrap();
    let events = balp["audit_events"]["entry"].as_array().unwrap();
    assert_eq!(events.len(), balp["disclosures"].as_array().unwrap().len());
    let glass = events
        .iter()
        .map(|e| &e["resource"])
        .find(|e| e["purposeOfEvent"].to_string().contains("ETREAT"))
        .expect("the break-the-glass read as an AuditEvent");
    assert_eq!(glass["resourceType"], "AuditEvent");
    assert_eq!(glass["entity"][0]["what"]["reference"], format!("Patient/{CRIS}"));
    assert_eq!(glass["source"]["observer"]["display"], "plexus");
    let bad = call(&m, &auditor, "get_patient_disclosures", json!({"format": "csv"})).await.unwrap_err();
    assert!(bad.to_string().contains("format: `csv`"), "{bad}");
    // Another hospital's tenant sees none of it, not even as an administrator.
    let mercy = who("mercy", "root", &["admin"]);
    let other = call(&m, &mercy, "get_patient_data", json!({"patientId": CRIS, "dataTypes": ["demographics"]})).await;
    match other {
        Ok(v) => assert!(v["data"]["demographics"].as_array().unwrap().is_empty(), "{v}"),
        Err(e) => assert!(e.to_string().contains("not found"), "{e}"),
    }
    let mercy_search = call(&m, &mercy, "search_medical_records", json!({"query": "COVID-19"})).await.unwrap();
    assert!(mercy_search["hits"].as_array().unwrap().is_empty());
    assert!(fhir.counts(&TenantId::new("mercy")).await.unwrap().is_empty());
    // Bad input: specific errors, nothing changes.
    for (tool, args, says) in [
        ("get_patient_data", json!({"patientId": "../etc", "dataTypes": ["allergies"]}), "not a FHIR id"),
        ("get_patient_data", json!({"patientId": CRIS, "dataTypes": ["dna"]}), "`dna` is not one of"),
        ("get_patient_data", json!({"patientId": CRIS, "dataTypes": []}), "at least one"),
        ("get_lab_results", json!({"patientId": CRIS, "from": "yesterday"}), "from"),
        ("search_medical_records", json!({"filters": {"types": ["Claim'; DROP TABLE x"]}}), "not a clinical type"),
    ] {
        let e = call(&m, &admin, tool, args).await.unwrap_err();
        assert!(matches!(e, ToolError::InvalidArguments(_)) && e.to_string().contains(says), "{tool}: {e}");
    }
    assert_eq!(fhir.counts(&general).await.unwrap(), in_files);
    store.close().await;
}

/// Disclosures are group-committed: many concurrent callers, of two
/// tenants, each get their own rows committed before they return, and a
/// caller whose rows cannot be written (an outcome the log does not know)
/// fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_disclosures_commit_together_and_fail_alone() {
    let (st, tmp) = store().await;
    let fhir = FhirStore::open(st.clone()).await.unwrap();
    let row = |patient: String, outcome: &str| plexus_health::store::Disclosure {
        at: "2026-11-21T10:00:00Z".into(),
        request_id: format!("req-{patient}"),
        subject: "dr-a".into(),
        roles: vec!["clinician".into()],
        patient,
        tool: "get_patient_data".into(),
        action: "read".into(),
        types: vec!["allergies".into()],
        purpose: "care".into(),
        break_glass: false,
        outcome: outcome.into(),
        client: String::new(),
    };
    let calls = (0..60).map(|i| {
        let fhir = fhir.clone();
        let (tenant, outcome) = match i % 3 {
            0 => ("general", "success"),
            1 => ("mercy", "partial"),
            _ => ("general", "no-such-outcome"),
        };
        let rows = vec![row(format!("p{i}"), "success"), row(format!("p{i}-again"), outcome)];
        async move { (i, fhir.disclose(&TenantId::new(tenant), &rows).await) }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in &results {
        assert_eq!(r.is_ok(), i % 3 != 2, "caller {i}: {r:?}");
    }
    for (tenant, first) in [("general", 0), ("mercy", 1)] {
        let list = fhir.disclosures(&TenantId::new(tenant), None, None, None, 1000).await.unwrap();
        assert_eq!(list.len(), 40, "{tenant}");
        assert!(list.iter().any(|d| d.patient == format!("p{first}")));
        assert!(list.iter().all(|d| d.patient[1..].split('-').next().unwrap().parse::<usize>().unwrap() % 3 == first));
    }
    st.close().await;
    let _ = std::fs::remove_dir_all(tmp);
}

/// Rows of the disclosure log written straight into `store`'s
/// `health_disclosures`, with sequence numbers `seqs`.
async fn write_old_disclosures(store: &Store, seqs: std::ops::RangeInclusive<i64>) {
    let scope = store.tenant(&TenantId::new("general"));
    let done: Result<(), plexus_store::StoreError> = async {
        plexus_store::tenant_tx!(&scope, write, conn => {
            for seq in seqs {
                sqlx::query(
                    "INSERT INTO health_disclosures (tenant_id, seq, at, request_id, subject, roles, patient, tool, \
                     action, types, purpose, break_glass, outcome, client) VALUES ($1, $2, $3, $4, 'dr-a', \
                     'clinician', $5, 'get_patient_data', 'read', 'allergies', 'care', 0, 'success', '')",
                )
                .bind(scope.id().as_str())
                .bind(seq)
                .bind(format!("2026-11-{:02}T10:00:00Z", 1 + seq % 20))
                .bind(format!("req-{seq}"))
                .bind(format!("p{seq}"))
                .execute(&mut *conn)
                .await?;
            }
        });
        Ok(())
    }
    .await;
    done.unwrap();
}

/// How many rows `store`'s own `health_disclosures` holds.
async fn disclosure_rows(store: &Store) -> i64 {
    let scope = store.tenant(&TenantId::new("general"));
    let n: Result<i64, plexus_store::StoreError> = async {
        Ok(plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar("SELECT count(*) FROM health_disclosures WHERE tenant_id = $1")
                .bind(scope.id().as_str())
                .fetch_one(&mut *conn)
                .await?
        }))
    }
    .await;
    n.unwrap()
}

/// On SQLite the disclosure log is a file of its own beside the main one
/// (its commits, every few calls, would otherwise empty the readers' page
/// caches of the clinical data). Rows an older build wrote into the main
/// file move there when the store opens: all of them, in order, once, even
/// after a move that was cut off between its copy and its delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disclosure_log_has_a_file_of_its_own_and_older_rows_move_there() {
    use plexus_health::store::{LOG_MIGRATIONS, LOG_STORE, MIGRATIONS};
    let (st, dir) = store().await;
    st.migrate(&MIGRATIONS).await.unwrap();
    // An older build's 1,200 rows (more than one batch of the move) ...
    write_old_disclosures(&st, 1..=1200).await;
    // ... of which the first 300 were copied before a crash.
    let log = st.beside(LOG_STORE).await.unwrap();
    log.migrate(&LOG_MIGRATIONS).await.unwrap();
    write_old_disclosures(&log, 1..=300).await;
    log.close().await;

    let fhir = FhirStore::open(st.clone()).await.unwrap();
    assert!(dir.join("plexus-health-log.db").exists(), "the log's file is beside plexus.db");
    assert_eq!(disclosure_rows(&st).await, 0, "nothing left in the main file");
    let general = TenantId::new("general");
    let list = fhir.disclosures(&general, None, None, None, 5000).await.unwrap();
    let ids: Vec<String> = list.iter().map(|d| d.request_id.clone()).collect();
    let expected: Vec<String> = (1..=1200).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids, expected, "every row once, in the order written");

    // New disclosures go to the log's file, after the moved ones.
    let mut fresh = list[0].clone();
    fresh.request_id = "req-new".into();
    fhir.disclose(&general, &[fresh]).await.unwrap();
    assert_eq!(disclosure_rows(&st).await, 0);
    drop(fhir);
    let again = FhirStore::open(st.clone()).await.unwrap();
    let list = again.disclosures(&general, None, None, None, 5000).await.unwrap();
    assert_eq!(list.len(), 1201, "opening again moves nothing twice");
    assert_eq!(list.last().unwrap().request_id, "req-new");
    st.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The caller's practitioner keys are cached between calls; writing a
/// Practitioner empties the cache, so an identifier given to a practitioner
/// counts on the next call, not after the cache's time to live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practitioner_identifier_counts_on_the_next_call() {
    let (st, dir) = store().await;
    let fhir = FhirStore::open(st.clone()).await.unwrap();
    let general = TenantId::new("general");
    let import = |name: &str, entries: Value| {
        let path = dir.join(name);
        std::fs::write(&path, json!({"resourceType": "Bundle", "type": "batch", "entry": entries}).to_string())
            .unwrap();
        let fhir = fhir.clone();
        let general = general.clone();
        async move {
            let report = load::import_paths(&fhir, &general, &[path], &|_, _, _| {}).await.unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        }
    };
    let practitioner = |identifier: Value| {
        json!({"resource": {"resourceType": "Practitioner", "id": "dr-sato", "name": [{"family": "佐藤"}],
                            "identifier": identifier},
               "request": {"method": "PUT", "url": "Practitioner/dr-sato"}})
    };
    import(
        "first.json",
        json!([
            {"resource": {"resourceType": "Patient", "id": "p1", "name": [{"family": "鈴木", "given": ["一郎"]}]},
             "request": {"method": "PUT", "url": "Patient/p1"}},
            practitioner(json!([])),
            {"resource": {"resourceType": "CareTeam", "id": "ct1", "subject": {"reference": "Patient/p1"},
                          "participant": [{"member": {"reference": "Practitioner/dr-sato"}}]},
             "request": {"method": "PUT", "url": "CareTeam/ct1"}}
        ]),
    )
    .await;
    let m = Health::new(fhir.clone(), Vec::new());
    let sato = who("general", "sato@hospital.example.jp", &["clinician"]);
    let args = json!({"patientId": "p1", "dataTypes": ["demographics"]});
    let refused = call(&m, &sato, "get_patient_data", args.clone()).await.unwrap_err();
    assert!(refused.to_string().contains("no care relationship"), "{refused}");

    import(
        "second.json",
        json!([practitioner(json!([{"system": "urn:example:staff", "value": "sato@hospital.example.jp"}]))]),
    )
    .await;
    let out = call(&m, &sato, "get_patient_data", args).await.unwrap();
    assert_eq!(out["access"], "treatment (care relationship: CareTeam/ct1)");
    assert_eq!(out["data"]["demographics"][0]["name"][0]["family"], "鈴木");
    let _ = std::fs::remove_dir_all(&dir);
}
