//! The module through `Module::call` on a real store, as each role would
//! call it: configuration (caching, validation, invalidation), imports,
//! the CAT flow to its end with values checked against simulated learners,
//! refusals, limits under concurrency, recommendations, analytics on the
//! seeded demo, the xAPI routes, roles, Japanese text, and isolation
//! between tenants. Every flow runs on SQLite, and on PostgreSQL (as a
//! role subject to row-level security) when `PLEXUS_TEST_POSTGRES_URL` is
//! set.
#![allow(clippy::unwrap_used)]

use plexus_testkit::postgres::PgSchema;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use plexus_core::spec::{RestRequest, RouteMethod};
use plexus_core::{CallContext, Module, Principal, TenantId, ToolError};
use plexus_learning::cat::{RandomSource, SplitMix64};
use plexus_learning::irt::ItemBank;
use plexus_learning::settings::TierLimits;
use plexus_learning::sim::{BankSpec, synthetic_bank};
use plexus_learning::{Learning, LearningSettings};
use plexus_store::{NewTenant, Store};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

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

fn admin(t: &str) -> CallContext {
    who(t, "root", &["admin"])
}

fn teacher(t: &str) -> CallContext {
    who(t, "sensei", &["teacher"])
}

fn learner(t: &str, name: &str) -> CallContext {
    who(t, name, &["learner"])
}

async fn call(m: &Learning, cx: &CallContext, tool: &str, args: Value) -> Result<Value, ToolError> {
    let out = m.call(cx, tool, args).await?;
    assert!(!out.is_error, "{tool}: an error result: {:?}", out.content);
    Ok(out.structured.clone().unwrap_or(Value::Null))
}

async fn ok(m: &Learning, cx: &CallContext, tool: &str, args: Value) -> Value {
    match call(m, cx, tool, args.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{tool}({args}) failed: {e}"),
    }
}

async fn err(m: &Learning, cx: &CallContext, tool: &str, args: Value) -> ToolError {
    match call(m, cx, tool, args.clone()).await {
        Ok(v) => panic!("{tool}({args}) succeeded: {v}"),
        Err(e) => e,
    }
}

/// Tenants: `acme` and `globex` (standard), `tiny-co` (tier `tiny`: 20
/// learners, 40 statements, 50 items), `free-co` (free).
fn settings() -> LearningSettings {
    let mut s = LearningSettings::default();
    s.tiers.insert("tiny".into(), TierLimits { max_learners: 20, max_statements: 40, max_items: 50 });
    s
}

async fn prepare(store: &Store) {
    for (t, tier) in [("acme", "standard"), ("globex", "standard"), ("tiny-co", "tiny"), ("free-co", "free")] {
        store.create_tenant(&NewTenant { id: TenantId::new(t), name: t.into(), tier: tier.into() }).await.unwrap();
    }
}

async fn open(store: &Store) -> Learning {
    Learning::open(store.clone(), settings()).await.unwrap()
}

/// A small course: 代数 (algebra) alg-1 → alg-2 → alg-3, and geo-1 needing
/// alg-1; two content items per skill in different formats.
fn course_json() -> Value {
    json!({
        "skills": [
            {"id": "alg-1", "name": "Integers", "subject": "algebra", "translations": {"ja": "整数"}},
            {"id": "alg-2", "name": "Fractions", "subject": "algebra", "prerequisites": ["alg-1"]},
            {"id": "alg-3", "name": "Equations", "subject": "algebra", "prerequisites": ["alg-2"]},
            {"id": "geo-1", "name": "Angles", "subject": "geometry", "prerequisites": ["alg-1"]}
        ],
        "content": [
            {"id": "alg-1-v", "title": "Integers (video)", "skill": "alg-1", "difficulty": 0.0, "duration_minutes": 10, "format": "video",
             "translations": {"ja": "整数（動画）"}},
            {"id": "alg-1-t", "title": "Integers (text)", "skill": "alg-1", "difficulty": 0.05, "duration_minutes": 8, "format": "text"},
            {"id": "alg-2-v", "title": "Fractions (video)", "skill": "alg-2", "difficulty": 0.5, "duration_minutes": 12, "format": "video"},
            {"id": "alg-2-x", "title": "Fractions (exercise)", "skill": "alg-2", "difficulty": 0.5, "duration_minutes": 15, "format": "exercise"},
            {"id": "alg-3-t", "title": "Equations (text)", "skill": "alg-3", "difficulty": 1.0, "duration_minutes": 9, "format": "text"},
            {"id": "geo-1-v", "title": "Angles (video)", "skill": "geo-1", "difficulty": 0.2, "duration_minutes": 7, "format": "video"}
        ]
    })
}

const SKILLS: [&str; 4] = ["alg-1", "alg-2", "alg-3", "geo-1"];

/// A synthetic 2PL bank over the course's skills, and content for each
/// item: four options, the key `C`.
fn bank(items: usize, seed: u64) -> (ItemBank, Value, Vec<Value>) {
    let spec = BankSpec {
        items,
        b_sd: 1.0,
        areas: SKILLS.iter().map(|s| (*s).to_owned()).collect(),
        seed,
        ..BankSpec::default()
    };
    let bank = synthetic_bank(&spec).unwrap();
    let json: Value = serde_json::from_str(&bank.to_json()).unwrap();
    let content = bank
        .items()
        .iter()
        .map(
            |i| json!({"id": i.id, "stem": format!("{} の問題", i.id), "options": ["1", "2", "3", "4"], "answer": "C"}),
        )
        .collect();
    (bank, json, content)
}

async fn import_course(m: &Learning, t: &str, items: usize) -> ItemBank {
    let (bank, json, content) = bank(items, 7);
    ok(m, &admin(t), "import_learning_course", json!({"course": course_json(), "bank": json, "items": content})).await;
    bank
}

/// Every string in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// A simulated learner answers the item presented: correct with the IRT
/// probability at `theta`.
fn respond(bank: &ItemBank, item: &Value, theta: f64, rng: &mut SplitMix64) -> Value {
    let id = item["id"].as_str().unwrap();
    let p = bank.by_id(id).unwrap().probability(theta);
    if rng.next_f64() < p { json!("C") } else { json!("A") }
}

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "plexus-learning-it-{}-{}",
        std::process::id(),
        plexus_testkit::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.join("plexus.db").display())).await.unwrap();
    prepare(&store).await;
    test(store.clone()).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn on_postgres<F, Fut>(what: &str, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(pg) = PgSchema::start("plexus_learning", &format!("the learning module ({what})")).await else { return };
    let store = Store::open(&pg.url).await.unwrap();
    assert_eq!(store.backend(), plexus_store::Backend::Postgres);
    prepare(&store).await;
    // Run the test as its own task so the role is dropped even if it fails.
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    pg.stop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The store that holds `tenant`'s learning rows (see `Shards`).
async fn place(m: &Learning, tenant: &str) -> Store {
    m.service().shards().of(&TenantId::new(tenant)).await.unwrap().clone()
}

/// Run `sql` in a transaction of `tenant` (behind the module's back).
async fn exec(store: &Store, tenant: &str, sql: &str) -> Result<u64, plexus_store::StoreError> {
    let scope = store.tenant(&TenantId::new(tenant));
    let n = plexus_store::tenant_tx!(&scope, write, conn => {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn).await?.rows_affected()
    });
    Ok(n)
}

/// `SELECT count(*) FROM table` with no filter, in `tenant`'s transaction.
async fn count(store: &Store, tenant: &str, table: &str) -> Result<i64, plexus_store::StoreError> {
    let scope = store.tenant(&TenantId::new(tenant));
    let n: i64 = plexus_store::tenant_tx!(&scope, read, conn => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(&mut *conn).await?
    });
    Ok(n)
}

// ------------------------------------------------------------ settings

#[test]
fn settings_validate_with_precise_errors_and_tiers_fall_back() {
    let s = LearningSettings::default();
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(s.limits("free").max_learners, 100);
    assert_eq!(s.limits("enterprise").max_learners, 1_000_000);
    assert_eq!(s.limits("gold"), s.limits("standard"));
    assert_eq!(s.effective_tier("gold"), "standard");
    let t = settings();
    assert_eq!(t.limits("tiny").max_learners, 20);

    let mut bad = LearningSettings::default();
    bad.defaults.target_se = 3.0;
    assert_eq!(bad.validate(), Err("learning.defaults.target_se: must be in (0, 2], got 3".to_owned()));
    let mut bad = LearningSettings::default();
    bad.defaults.min_items = 30;
    assert_eq!(bad.validate(), Err("learning.defaults.min_items: must be an integer from 1 to 20, got 30".to_owned()));
    let bad = LearningSettings { home_page: "ftp://x".into(), ..LearningSettings::default() };
    assert!(bad.validate().unwrap_err().starts_with("learning.home_page: must be an http(s) URL"));

    // TOML: snake_case, unknown fields refused.
    let parsed: LearningSettings = toml_like(json!({
        "tiers": {"free": {"max_learners": 5, "max_statements": 10, "max_items": 10}},
        "defaults": {"target_se": 0.25, "branding": {"name": "学びの森", "welcome": "ようこそ"}}
    }));
    assert_eq!(parsed.limits("free").max_learners, 5);
    assert_eq!(parsed.defaults.target_se, 0.25);
    assert_eq!(parsed.defaults.branding.welcome, "ようこそ");
    let e = serde_json::from_value::<LearningSettings>(json!({"defaults": {"target_sd": 0.2}})).unwrap_err();
    assert!(e.to_string().contains("unknown field `target_sd`"), "{e}");
}

fn toml_like(v: Value) -> LearningSettings {
    serde_json::from_value(v).unwrap()
}

/// The registry compiles every tool's schema and the pipeline's
/// validation accepts the arguments the tools take (and refuses what they
/// refuse before any module code runs).
async fn registry_flow(store: Store) {
    let m: Arc<dyn Module> = Arc::new(open(&store).await);
    let registry = plexus_core::registry::Registry::new(vec![Arc::clone(&m)]).unwrap();
    let names: BTreeSet<&str> = registry.tools().iter().map(|t| t.name.as_str()).collect();
    for tool in [
        "track_learning_progress",
        "generate_assessment",
        "submit_assessment_response",
        "get_personalized_content",
        "get_learning_recommendations",
        "analyze_learning_data",
        "get_learning_settings",
        "configure_learning",
        "import_learning_course",
        "fit_mastery_model",
        "xapi_post_statements",
        "xapi_put_statement",
        "xapi_get_statements",
    ] {
        assert!(names.contains(tool), "{tool} missing");
        assert!(registry.tool(tool).unwrap().output_schema.is_some(), "{tool}");
    }
    assert_eq!(registry.routes().len(), 3);
    let good = [
        (
            "track_learning_progress",
            json!({"userId": "a", "activityData": {"type": "answer", "skillId": "s", "success": true}}),
        ),
        (
            "track_learning_progress",
            json!({"userId": "a", "activityData": {"type": "content", "contentId": "c", "durationSeconds": 5}}),
        ),
        (
            "track_learning_progress",
            json!({"userId": "a", "activityData": {"type": "statement", "statement": {"verb": {}}}}),
        ),
        (
            "generate_assessment",
            json!({"userId": "a", "topic": "t", "assessmentType": "practice", "targetDifficulty": "hard"}),
        ),
        (
            "generate_assessment",
            json!({"userId": "a", "topic": "t", "assessmentType": "practice", "targetDifficulty": 0.5}),
        ),
        ("submit_assessment_response", json!({"assessmentId": "x", "itemId": "i", "response": true})),
        ("submit_assessment_response", json!({"assessmentId": "x", "itemId": "i", "response": "B"})),
        ("get_personalized_content", json!({"userId": "a", "subject": "s", "learningStyle": "visual"})),
        ("analyze_learning_data", json!({"scope": "cohort", "from": "2025-01-01"})),
        (
            "configure_learning",
            json!({"targetSe": 0.2, "exposure": {"method": "randomesque", "k": 4}, "atRisk": {"inactiveDays": 3}}),
        ),
        ("import_learning_course", json!({"course": {}, "bank": "id,a,b\n", "items": [{"id": "q", "stem": "?"}]})),
        ("xapi_get_statements", json!({"params": [{"name": "limit", "value": "1"}]})),
        ("get_learning_settings", json!({})),
    ];
    for (tool, args) in good {
        registry.validate(tool, &args).unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
    }
    let bad = [
        ("track_learning_progress", json!({"userId": "a", "activityData": {"type": "dance"}})),
        ("track_learning_progress", json!({"userId": "a", "activityData": {"type": "answer", "skillId": "s"}})),
        ("generate_assessment", json!({"userId": "a", "topic": "t"})),
        ("configure_learning", json!({"targetSe": "low"})),
        ("configure_learning", json!({"exposure": {"method": "randomesque"}})),
        ("get_learning_recommendations", json!({"userId": "a", "extra": 1})),
    ];
    for (tool, args) in bad {
        assert!(registry.validate(tool, &args).is_err(), "{tool} {args} passed validation");
    }
}

#[tokio::test]
async fn the_registry_compiles_the_schemas_and_validates_arguments() {
    on_sqlite(registry_flow).await;
}

// -------------------------------------------------------- configuration

async fn configuration_flow(store: Store) {
    let m = open(&store).await;
    let a = admin("acme");
    let v = ok(&m, &a, "get_learning_settings", json!({})).await;
    assert_eq!(v["version"], 0);
    assert_eq!(v["tier"], "standard");
    assert_eq!(v["limits"]["maxLearners"], 10_000);
    assert_eq!(v["settings"]["targetSe"], 0.3);
    assert_eq!(v["settings"]["masteryThreshold"], 0.95);

    // Refused with the field named; nothing changes.
    let e = err(&m, &a, "configure_learning", json!({"targetSe": 3})).await;
    assert_eq!(e.to_string(), "invalid arguments: targetSe: must be in (0, 2], got 3");
    let e = err(&m, &a, "configure_learning", json!({"atRisk": {"minAnswers": 50}})).await;
    assert_eq!(e.to_string(), "invalid arguments: atRisk.minAnswers: must be an integer from 2 to 20, got 50");
    let e = err(&m, &a, "configure_learning", json!({"targetSE": 0.2})).await;
    assert!(e.to_string().contains("unknown field `targetSE`"), "{e}");
    let e = err(&m, &a, "configure_learning", json!({})).await;
    assert!(e.to_string().contains("give at least one setting"), "{e}");
    assert_eq!(ok(&m, &a, "get_learning_settings", json!({})).await["version"], 0);

    // Roles: teachers read, only administrators change.
    let e = err(&m, &teacher("acme"), "configure_learning", json!({"targetSe": 0.2})).await;
    assert_eq!(e.to_string(), "forbidden: configure_learning is for administrators");
    assert_eq!(ok(&m, &teacher("acme"), "get_learning_settings", json!({})).await["version"], 0);
    let e = err(&m, &learner("acme", "ann"), "get_learning_settings", json!({})).await;
    assert_eq!(e.to_string(), "forbidden: get_learning_settings is for teachers and administrators");

    let v = ok(
        &m,
        &a,
        "configure_learning",
        json!({"targetSe": 0.25, "maxItems": 30, "branding": {"welcome": "ようこそ、学びへ"},
               "exposure": {"method": "sympsonHetter"}, "preferredFormats": ["video", "text"]}),
    )
    .await;
    assert_eq!(v["version"], 1);
    assert_eq!(v["settings"]["targetSe"], 0.25);
    assert_eq!(v["settings"]["branding"]["welcome"], "ようこそ、学びへ");
    assert_eq!(v["settings"]["branding"]["name"], "Plexus Learning");
    let changed: BTreeSet<String> =
        v["changed"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect();
    let want: BTreeSet<String> = ["targetSe", "maxItems", "branding.welcome", "exposure", "preferredFormats"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(changed, want);
    assert_eq!(v["updatedBy"], "root");

    // The other tenant keeps the defaults.
    assert_eq!(ok(&m, &admin("globex"), "get_learning_settings", json!({})).await["settings"]["targetSe"], 0.3);

    // Cached: a change behind the module's back (another node) is not seen
    // here until the cache expires...
    exec(
        &place(&m, "acme").await,
        "acme",
        r#"UPDATE learning_config SET config = '{"targetSe": 0.5}', version = 7 WHERE tenant_id = 'acme'"#,
    )
    .await
    .unwrap();
    assert_eq!(ok(&m, &a, "get_learning_settings", json!({})).await["settings"]["targetSe"], 0.25);
    // ... and a change through the module reads the stored configuration
    // and replaces the cached one at once.
    let v = ok(&m, &a, "configure_learning", json!({"maxItems": 25})).await;
    assert_eq!(v["version"], 8);
    assert_eq!(v["settings"]["targetSe"], 0.5);
    assert_eq!(v["settings"]["maxItems"], 25);
    assert_eq!(ok(&m, &a, "get_learning_settings", json!({})).await["settings"]["maxItems"], 25);

    // A new module (a restart) reads what is stored.
    let again = open(&store).await;
    assert_eq!(ok(&again, &a, "get_learning_settings", json!({})).await["version"], 8);
}

#[tokio::test]
async fn configuration_is_validated_cached_and_invalidated() {
    on_sqlite(configuration_flow).await;
}

// --------------------------------------------------------------- import

async fn import_flow(store: Store) {
    let m = open(&store).await;
    let a = admin("acme");
    let (_, bank_json, content) = bank(40, 3);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"course": {"skills": [
                {"id": "x", "name": "X", "prerequisites": ["y"]}, {"id": "y", "name": "Y", "prerequisites": ["x"]}]}}),
            "invalid arguments: course: prerequisite cycle: x → y → x (each skill requires the next)",
        ),
        (
            json!({"course": course_json(), "bank": "id,a,b,skill\nq1,1.2,0.3,alg-1\nq2,-1,0,alg-1\n"}),
            "invalid arguments: bank: line 3, column 2 (`a`): must be a positive finite number, got -1",
        ),
        (
            json!({"course": course_json(), "bank": "id,a,b,skill\nq1,1.2,0.3,trig-9\n"}),
            "invalid arguments: bank: item `q1` (position 0) assesses skill `trig-9`, which the course does not have",
        ),
        (
            json!({"course": course_json(), "bank": bank_json.clone(), "items": [{"id": "item-00000", "stem": "?", "options": ["a", "b"], "answer": "D"}]}),
            "invalid arguments: items[0] (item `item-00000`): answer `D` is neither an option label (A to B) nor the text of an option",
        ),
        (
            json!({"course": course_json(), "bank": bank_json.clone(), "items": [{"id": "nope", "stem": "?"}]}),
            "invalid arguments: items[0]: `nope` is not an item of the bank",
        ),
        (
            json!({"course": course_json(), "bank": bank_json.clone(), "bankFormat": "xml"}),
            "invalid arguments: bankFormat: `xml` is not csv or json",
        ),
    ];
    for (args, want) in cases {
        let e = err(&m, &a, "import_learning_course", args).await;
        assert_eq!(e.to_string(), want);
    }
    // The tier's item limit (tiny: 50).
    let (_, big, _) = bank(60, 3);
    let e = err(&m, &admin("tiny-co"), "import_learning_course", json!({"course": course_json(), "bank": big})).await;
    assert_eq!(e.to_string(), "tenant tiny-co is limited to 50 items in its bank (tier tiny); this bank has 60");
    // Only administrators import.
    let e = err(&m, &teacher("acme"), "import_learning_course", json!({"course": course_json()})).await;
    assert_eq!(e.to_string(), "forbidden: import_learning_course is for administrators");
    // Nothing was stored.
    let e = m.read(&admin("acme"), "learning://course").await.unwrap_err();
    assert_eq!(e.to_string(), "resource not found: learning://course");
    let e = err(&m, &learner("acme", "ann"), "get_learning_recommendations", json!({"userId": "ann"})).await;
    assert!(e.to_string().starts_with("this tenant has no course yet"), "{e}");

    let v = ok(&m, &a, "import_learning_course", json!({"course": course_json(), "bank": bank_json, "items": content}))
        .await;
    assert_eq!((v["version"].as_i64(), v["skills"].as_u64(), v["items"].as_u64()), (Some(1), Some(4), Some(40)));
    assert_eq!(v["itemsWithContent"], 40);
    assert_eq!(v["subjects"], json!(["algebra", "geometry"]));
    // CSV works too, and a new import is a new version.
    let csv = "id,a,b,skill,name\n代数-1,1.1,-0.2,alg-1,整数の足し算\n代数-2,0.9,0.4,alg-1,整数の引き算\n";
    let v = ok(&m, &a, "import_learning_course", json!({"course": course_json(), "bank": csv})).await;
    assert_eq!(
        (v["version"].as_i64(), v["items"].as_u64(), v["itemsWithoutContent"].as_u64()),
        (Some(2), Some(2), Some(2))
    );
    let r = m.read(&learner("acme", "ann"), "learning://course").await.unwrap();
    let text = match &r.contents[0] {
        plexus_core::content::ResourceContent::Text { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    let course: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(course["version"], 2);
    assert_eq!(course["items"], 2);
    assert_eq!(course["skills"][0]["translations"]["ja"], "整数");
    assert_eq!(course["content"][0]["translations"]["ja"], "整数（動画）");
}

#[tokio::test]
async fn imports_are_checked_and_all_or_nothing() {
    on_sqlite(import_flow).await;
}

// ------------------------------------------------------------------ CAT

/// Simulated learners with known abilities take adaptive assessments to
/// the end through the tools.
async fn cat_flow(store: Store) {
    let m = open(&store).await;
    let a = admin("acme");
    let bank = import_course(&m, "acme", 400).await;
    ok(&m, &a, "configure_learning", json!({"maxItems": 40, "targetSe": 0.3, "exposure": {"method": "none"}})).await;
    let mut rng = SplitMix64::new(2024);
    let mut squared = 0.0;
    let mut total_items = 0;
    let n = 12;
    for l in 0..n {
        let theta = rng.standard_normal();
        let user = format!("sim-{l:02}");
        let cx = learner("acme", &user);
        let start =
            ok(&m, &cx, "generate_assessment", json!({"userId": user, "topic": "all", "assessmentType": "adaptive"}))
                .await;
        assert_eq!(start["maxItems"], 40);
        assert_eq!(start["targetSe"], 0.3);
        assert_eq!(start["skills"], json!(SKILLS));
        let id = start["assessmentId"].as_str().unwrap().to_owned();
        let mut item = start["item"].clone();
        assert_eq!(item["position"], 1);
        assert_eq!(item["responseFormat"], "choice");
        assert_eq!(item["options"][2], json!({"label": "C", "text": "3"}));
        let mut ses: Vec<f64> = vec![1.0];
        let mut seen = BTreeSet::new();
        let mut answers: Vec<(String, bool)> = Vec::new();
        let result = loop {
            // Never the key or the IRT parameters.
            let mut words = Vec::new();
            strings(&item, &mut words);
            for k in ["answer", "a", "b", "c", "d", "exposure"] {
                assert!(!words.iter().any(|w| w == k), "the item shows `{k}`: {item}");
            }
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "an item came twice");
            let response = respond(&bank, &item, theta, &mut rng);
            let v = ok(
                &m,
                &cx,
                "submit_assessment_response",
                json!({"assessmentId": id, "itemId": item["id"], "response": response, "durationSeconds": 20}),
            )
            .await;
            assert_eq!(v["correct"], response == json!("C"));
            assert_eq!(v["answered"].as_u64(), Some(seen.len() as u64));
            answers.push((item["id"].as_str().unwrap().to_owned(), response == json!("C")));
            let se = v["estimate"]["se"].as_f64().unwrap();
            ses.push(se);
            assert!(v["mastery"]["skill"].is_string(), "{v}");
            if v["finished"] == true {
                assert!(v["nextItem"].is_null());
                break v["result"].clone();
            }
            item = v["nextItem"].clone();
            assert_eq!(item["position"].as_u64(), Some(seen.len() as u64 + 1));
        };
        // The standard error falls: rarely up after a surprising answer,
        // never above where it started, and at the target at the end.
        let ups = ses.windows(2).filter(|w| w[1] > w[0] + 1e-12).count();
        assert!(ups * 5 <= ses.len(), "SE rose too often: {ses:?}");
        assert!(ses.iter().all(|s| *s <= 1.0 + 1e-12), "{ses:?}");
        let se = result["se"].as_f64().unwrap();
        let used = result["itemsUsed"].as_u64().unwrap();
        assert_eq!(result["stopReason"], "se_target", "{result}");
        assert!(se <= 0.3, "{result}");
        assert!((12..=30).contains(&used), "{used} items for θ = {theta}");
        total_items += used;
        assert_eq!(result["responses"].as_array().unwrap().len() as u64, used);
        // Every answer is an xAPI statement of the assessment's
        // registration, in the order given, with its item and outcome.
        let lrs = who("acme", "lms-connector", &["xapi"]);
        let query = [("registration", id.as_str()), ("ascending", "true")];
        let (status, _, body) = rest(&m, &lrs, RouteMethod::Get, &query, "", Some("1.0.3")).await;
        assert_eq!(status, 200, "{body}");
        let stored: Vec<(String, bool)> = body["statements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|st| {
                let object = st["object"]["id"].as_str().unwrap();
                (object.rsplit('/').next().unwrap().to_owned(), st["result"]["success"].as_bool().unwrap())
            })
            .collect();
        assert_eq!(stored, answers);
        let est = result["theta"].as_f64().unwrap();
        assert!((est - theta).abs() < 4.0 * se, "θ = {theta}, estimate {est} ± {se}");
        squared += (est - theta).powi(2);
        // The learner's ability is now what the assessment found.
        let rec = ok(&m, &cx, "get_learning_recommendations", json!({"userId": user})).await;
        assert_eq!(rec["ability"]["theta"].as_f64(), Some(est));
    }
    let rmse = (squared / f64::from(n)).sqrt();
    eprintln!("CAT through the tools: {n} simulated learners, {total_items} items in all, RMSE {rmse:.3}");
    assert!(rmse < 0.45, "RMSE {rmse}");

    // Practice: fixed length, items near the target difficulty.
    let cx = learner("acme", "practice-pat");
    let start = ok(
        &m,
        &cx,
        "generate_assessment",
        json!({"userId": "practice-pat", "topic": "alg-2", "assessmentType": "practice", "targetDifficulty": 1.5}),
    )
    .await;
    assert_eq!(start["targetDifficulty"], 1.5);
    assert_eq!(start["skills"], json!(["alg-2"]));
    let id = start["assessmentId"].as_str().unwrap().to_owned();
    // As stored (read from the database, not this node's copy).
    let row = m.service().session(&TenantId::new("acme"), &id).await.unwrap().expect("the session is stored");
    assert_eq!(
        (row.user_id.as_str(), row.kind.as_str(), row.topic.as_str(), row.target, row.version, row.status.as_str()),
        ("practice-pat", "practice", "alg-2", Some(1.5), 1, "active")
    );
    assert_eq!(row.presented.as_deref(), start["item"]["id"].as_str());
    let mut item = start["item"].clone();
    let mut count = 0;
    let mut distances = Vec::new();
    loop {
        count += 1;
        let b = bank.by_id(item["id"].as_str().unwrap()).unwrap();
        assert_eq!(b.skill, "alg-2");
        distances.push((b.b - 1.5).abs());
        let v = ok(
            &m,
            &cx,
            "submit_assessment_response",
            json!({"assessmentId": id, "itemId": item["id"], "response": "B"}),
        )
        .await;
        if v["finished"] == true {
            assert_eq!(v["result"]["stopReason"], "max_items");
            break;
        }
        item = v["nextItem"].clone();
    }
    assert_eq!(count, 10);
    // The ten closest alg-2 items to b = 1.5 (randomesque among the 3 closest at each step).
    let mut all: Vec<f64> = bank.items().iter().filter(|i| i.skill == "alg-2").map(|i| (i.b - 1.5).abs()).collect();
    all.sort_by(f64::total_cmp);
    let worst = distances.iter().copied().fold(0.0, f64::max);
    assert!(worst <= all[12], "practice drifted from its target: {distances:?}");

    // Diagnostic: every skill of the subject, two items each.
    let start = ok(
        &m,
        &cx,
        "generate_assessment",
        json!({"userId": "practice-pat", "topic": "algebra", "assessmentType": "diagnostic"}),
    )
    .await;
    assert_eq!(start["maxItems"], 6);
    assert_eq!(start["skills"], json!(["alg-1", "alg-2", "alg-3"]));
    let e = err(
        &m,
        &cx,
        "generate_assessment",
        json!({"userId": "practice-pat", "topic": "algebra", "assessmentType": "adaptive", "targetDifficulty": "hard"}),
    )
    .await;
    assert!(e.to_string().contains("only practice assessments take a target difficulty"), "{e}");
    let e = err(
        &m,
        &cx,
        "generate_assessment",
        json!({"userId": "practice-pat", "topic": "trig", "assessmentType": "adaptive"}),
    )
    .await;
    assert!(e.to_string().starts_with("invalid arguments: topic: `trig` is not a skill, a subject"), "{e}");
    let e = err(
        &m,
        &cx,
        "generate_assessment",
        json!({"userId": "practice-pat", "topic": "all", "assessmentType": "exam"}),
    )
    .await;
    assert_eq!(e.to_string(), "invalid arguments: assessmentType: `exam` is not adaptive, diagnostic or practice");
}

#[tokio::test]
async fn adaptive_assessments_reach_the_target_near_the_true_ability() {
    on_sqlite(cat_flow).await;
}

// ------------------------------------------------------------- refusals

async fn refusal_flow(store: Store) {
    let m = open(&store).await;
    import_course(&m, "acme", 60).await;
    ok(&m, &admin("acme"), "configure_learning", json!({"practiceItems": 2})).await;
    let ann = learner("acme", "ann");
    let start =
        ok(&m, &ann, "generate_assessment", json!({"userId": "ann", "topic": "all", "assessmentType": "practice"}))
            .await;
    let id = start["assessmentId"].as_str().unwrap().to_owned();
    let first = start["item"]["id"].as_str().unwrap().to_owned();
    let submit = |item: &str, response: Value| json!({"assessmentId": id, "itemId": item, "response": response});

    // Not the item presented.
    let other = if first == "item-00000" { "item-00001" } else { "item-00000" };
    let e = err(&m, &ann, "submit_assessment_response", submit(other, json!("C"))).await;
    assert_eq!(
        e.to_string(),
        format!("conflict: item `{other}` is not the item assessment {id} presents now (`{first}`): answer that one")
    );
    // Not an item of the bank; a bad response.
    let e = err(&m, &ann, "submit_assessment_response", submit("zz-9", json!("C"))).await;
    assert_eq!(e.to_string(), format!("invalid arguments: itemId: `zz-9` is not an item of assessment {id}"));
    let e = err(&m, &ann, "submit_assessment_response", submit(&first, json!(true))).await;
    assert!(e.to_string().contains("is a choice: answer with an option label (A to D)"), "{e}");
    let e = err(&m, &ann, "submit_assessment_response", submit(&first, json!("E"))).await;
    assert!(e.to_string().contains("`E` is not an option of item"), "{e}");
    // Accepted once (by the option's text), then refused.
    let v = ok(&m, &ann, "submit_assessment_response", submit(&first, json!("3"))).await;
    assert_eq!(v["correct"], true);
    let next = v["nextItem"]["id"].as_str().unwrap().to_owned();
    let e = err(&m, &ann, "submit_assessment_response", submit(&first, json!("3"))).await;
    assert_eq!(e.to_string(), format!("conflict: item `{first}` was already answered in assessment {id}"));
    let v = ok(&m, &ann, "submit_assessment_response", submit(&next, json!("a"))).await;
    assert_eq!((v["correct"].as_bool(), v["finished"].as_bool()), (Some(false), Some(true)));
    // After the end.
    let e = err(&m, &ann, "submit_assessment_response", submit(&next, json!("C"))).await;
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: assessment {id} has ended (the maximum number of items was answered): it takes no more answers"
        )
    );
    // Unknown, malformed, and someone else's assessment: the same words as unknown.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let e =
        err(&m, &ann, "submit_assessment_response", json!({"assessmentId": unknown, "itemId": first, "response": "C"}))
            .await;
    assert_eq!(e.to_string(), format!("unknown assessment {unknown}"));
    let e =
        err(&m, &ann, "submit_assessment_response", json!({"assessmentId": "42", "itemId": first, "response": "C"}))
            .await;
    assert!(e.to_string().starts_with("invalid arguments: assessmentId: `42` is not an assessment id"), "{e}");
    let e = err(&m, &learner("acme", "bea"), "submit_assessment_response", submit(&next, json!("C"))).await;
    assert_eq!(e.to_string(), format!("unknown assessment {id}"));
    // A learner cannot start one for someone else (decided before any lookup).
    let e1 =
        err(&m, &ann, "generate_assessment", json!({"userId": "bea", "topic": "all", "assessmentType": "adaptive"}))
            .await;
    let e2 =
        err(&m, &ann, "generate_assessment", json!({"userId": "nobody", "topic": "all", "assessmentType": "adaptive"}))
            .await;
    assert_eq!(e1.to_string(), e2.to_string());
    assert!(e1.to_string().starts_with("forbidden: learners act only on their own record (userId must be `ann`)"));
    // Items without a key take true/false; a re-import ends open sessions.
    let csv = "id,a,b,skill\nk1,1,0,alg-1\nk2,1,0.5,alg-1\n";
    ok(&m, &admin("acme"), "import_learning_course", json!({"course": course_json(), "bank": csv})).await;
    let e = err(&m, &ann, "submit_assessment_response", submit(&next, json!("C"))).await;
    assert!(e.to_string().contains("a new import"), "{e}");
    let start =
        ok(&m, &ann, "generate_assessment", json!({"userId": "ann", "topic": "alg-1", "assessmentType": "adaptive"}))
            .await;
    assert_eq!(start["item"]["responseFormat"], "selfScored");
    let id2 = start["assessmentId"].as_str().unwrap();
    let e = err(
        &m,
        &ann,
        "submit_assessment_response",
        json!({"assessmentId": id2, "itemId": start["item"]["id"], "response": "C"}),
    )
    .await;
    assert!(e.to_string().contains("has no answer key: say whether the answer was correct"), "{e}");
    let v = ok(
        &m,
        &ann,
        "submit_assessment_response",
        json!({"assessmentId": id2, "itemId": start["item"]["id"], "response": {"correct": true}}),
    )
    .await;
    assert_eq!(v["correct"], true);
}

#[tokio::test]
async fn answers_are_refused_twice_off_turn_after_the_end_and_for_unknown_ids() {
    on_sqlite(refusal_flow).await;
}

/// Concurrent answers to one session: exactly one is accepted.
async fn concurrent_answers_flow(store: Store) {
    let m = Arc::new(open(&store).await);
    import_course(&m, "acme", 60).await;
    let ann = learner("acme", "ann");
    for round in 0..3 {
        let start =
            ok(&m, &ann, "generate_assessment", json!({"userId": "ann", "topic": "all", "assessmentType": "adaptive"}))
                .await;
        let args = json!({"assessmentId": start["assessmentId"], "itemId": start["item"]["id"], "response": "C"});
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (m, cx, mut args) = (Arc::clone(&m), ann.clone(), args.clone());
                if round == 2 && i % 2 == 1 {
                    args["response"] = json!("A"); // different answers race too
                }
                tokio::spawn(async move { call(&m, &cx, "submit_assessment_response", args).await })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => accepted += 1,
                Err(e) => assert!(matches!(e, ToolError::Conflict(_)), "{e}"),
            }
        }
        assert_eq!(accepted, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_to_one_assessment_cannot_both_succeed() {
    on_sqlite(concurrent_answers_flow).await;
}

/// Two nodes on one store, answering one assessment in turn. Each node
/// keeps the sessions it wrote in memory, so a node whose copy another node
/// overtook must notice (the versioned update fails) and answer from the
/// stored row: its answers to the item presented now succeed, and its
/// refusals (an item the other node already took) are the stored row's.
async fn two_nodes_flow(store: Store) {
    let a = open(&store).await;
    let b = open(&store).await;
    import_course(&a, "acme", 60).await;
    let ann = learner("acme", "ann");
    let start =
        ok(&a, &ann, "generate_assessment", json!({"userId": "ann", "topic": "all", "assessmentType": "adaptive"}))
            .await;
    let id = start["assessmentId"].clone();
    let mut item = start["item"]["id"].clone();
    let mut taken = Vec::new();
    let acme = TenantId::new("acme");
    let before = a.service().xapi().count(&acme).await.unwrap();
    // a, b, a, a, b, a: every switch finds the other node's copy stale.
    for (turn, node) in [&a, &b, &a, &a, &b, &a].into_iter().enumerate() {
        let v =
            ok(node, &ann, "submit_assessment_response", json!({"assessmentId": id, "itemId": item, "response": "C"}))
                .await;
        assert_eq!(v["answered"], turn + 1, "turn {turn}: {v}");
        taken.push(item.clone());
        if v["finished"] == true {
            break;
        }
        item = v["nextItem"]["id"].clone();
        // The node that did not answer is refused the item just taken, for
        // the stored row's reason (answered), not its stale copy's.
        let other = if std::ptr::eq(node, &a) { &b } else { &a };
        let e = err(
            other,
            &ann,
            "submit_assessment_response",
            json!({"assessmentId": id, "itemId": taken[turn], "response": "C"}),
        )
        .await;
        assert!(e.to_string().contains("was already answered"), "turn {turn}: {e}");
    }
    assert!(taken.len() >= 4, "{taken:?}");
    // Every answer is stored once, whichever node took it, and no refusal
    // stored anything.
    let after = b.service().xapi().count(&acme).await.unwrap();
    assert_eq!(after - before, taken.len() as u64);
}

#[tokio::test]
async fn two_nodes_answer_one_assessment_in_turn_from_the_stored_row() {
    on_sqlite(two_nodes_flow).await;
    on_postgres("two nodes answering one assessment", two_nodes_flow).await;
}

// ----------------------------------------------------------------- limits

async fn learner_limit_flow(store: Store) {
    let m = Arc::new(open(&store).await);
    import_course(&m, "tiny-co", 20).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                let user = format!("kid-{i:02}");
                call(
                    &m,
                    &learner("tiny-co", &user),
                    "track_learning_progress",
                    json!({"userId": user, "activityData": {"type": "answer", "skillId": "alg-1", "success": true}}),
                )
                .await
            })
        })
        .collect();
    let (mut yes, mut no) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => yes += 1,
            Err(e) => {
                assert_eq!(e.to_string(), "tenant tiny-co is at its limit of 20 learners (tier tiny)");
                no += 1;
            }
        }
    }
    assert_eq!((yes, no), (20, 30));
    let v = ok(&m, &admin("tiny-co"), "get_learning_settings", json!({})).await;
    assert_eq!(v["usage"]["learners"], 20);
    assert_eq!(v["usage"]["statements"], 20);
    assert_eq!(v["limits"], json!({"maxLearners": 20, "maxStatements": 40, "maxItems": 50}));

    // Statements: 40 at most; 60 concurrent answers by known learners → 20 more.
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                let user = format!("kid-{:02}", i % 50);
                call(
                    &m,
                    &teacher("tiny-co"),
                    "track_learning_progress",
                    json!({"userId": user, "activityData": {"type": "answer", "skillId": "alg-1", "success": false}}),
                )
                .await
            })
        })
        .collect();
    let mut yes = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => yes += 1,
            Err(e) => {
                let s = e.to_string();
                assert!(
                    s == "tenant tiny-co is at its limit of 40 statements (tier tiny)"
                        || s == "tenant tiny-co is at its limit of 20 learners (tier tiny)",
                    "{s}"
                );
            }
        }
    }
    assert!(yes <= 20, "{yes}");
    let v = ok(&m, &admin("tiny-co"), "get_learning_settings", json!({})).await;
    assert_eq!(v["usage"]["statements"], 40);
    let stored = m.service().xapi().count(&TenantId::new("tiny-co")).await.unwrap();
    assert_eq!(stored, 40);
    // Other tenants are not affected.
    ok(
        &m,
        &learner("acme", "kid-99"),
        "track_learning_progress",
        json!({"userId": "kid-99", "activityData": {"type": "statement", "statement": {
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"}, "object": {"id": "https://example.org/x"}}}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tier_limits_hold_under_concurrent_first_uses() {
    on_sqlite(learner_limit_flow).await;
}

// ------------------------------------------------------ recommendations

async fn recommendation_flow(store: Store) {
    let m = open(&store).await;
    import_course(&m, "acme", 40).await;
    let ann = learner("acme", "ann");
    // A new learner: at the priors; only alg-1 is open.
    let v = ok(&m, &ann, "get_learning_recommendations", json!({"userId": "ann"})).await;
    assert!(v["ability"].is_null());
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps[0]["skill"], "alg-1");
    assert_eq!(v["nextAssessment"]["topic"], "alg-1");
    assert_eq!(v["nextAssessment"]["assessmentType"], "adaptive");
    // The path follows the prerequisites: alg-2 after alg-1, alg-3 after alg-2.
    let order: Vec<&str> = steps.iter().map(|s| s["skill"].as_str().unwrap()).collect();
    let pos = |s: &str| order.iter().position(|x| *x == s);
    assert!(pos("alg-1") < pos("alg-2") && pos("alg-2") < pos("alg-3"), "{order:?}");
    let blocked: BTreeMap<&str, Vec<&str>> = v["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["skill"].as_str().unwrap(),
                b["missing"].as_array().unwrap().iter().map(|x| x["skill"].as_str().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(blocked.get("alg-2"), Some(&vec!["alg-1"]));
    assert_eq!(blocked.get("alg-3"), Some(&vec!["alg-2"]));
    assert_eq!(blocked.get("geo-1"), Some(&vec!["alg-1"]));
    assert!(v["totalMinutes"].as_f64().unwrap() > 0.0);

    // Style as a tie-break: alg-1's video and text are 0.05 apart (within
    // the tolerance): reading prefers the text, visual the video.
    let v = ok(
        &m,
        &ann,
        "get_personalized_content",
        json!({"userId": "ann", "subject": "algebra", "learningStyle": "reading"}),
    )
    .await;
    assert_eq!(v["steps"][0]["content"]["id"], "alg-1-t");
    assert_eq!(v["steps"][0]["preferredFormat"], true);
    let v = ok(
        &m,
        &ann,
        "get_personalized_content",
        json!({"userId": "ann", "subject": "algebra", "learningStyle": "visual"}),
    )
    .await;
    assert_eq!(v["steps"][0]["content"]["id"], "alg-1-v");
    assert_eq!(v["steps"][0]["content"]["translations"]["ja"], "整数（動画）");
    let e = err(&m, &ann, "get_personalized_content", json!({"userId": "ann", "subject": "music"})).await;
    assert_eq!(
        e.to_string(),
        "invalid arguments: subject: `music` is not a subject of this tenant's course (subjects: algebra, geometry; or `all`)"
    );
    let e = err(
        &m,
        &ann,
        "get_personalized_content",
        json!({"userId": "ann", "subject": "algebra", "learningStyle": "smell"}),
    )
    .await;
    assert!(e.to_string().contains("unknown learning style `smell`"), "{e}");

    // Mastering alg-1 (BKT over tracked answers) opens alg-2 and geo-1;
    // completing content removes it from the path.
    let mut last = json!(null);
    for _ in 0..8 {
        last = ok(
            &m,
            &ann,
            "track_learning_progress",
            json!({"userId": "ann", "activityData": {"type": "answer", "skillId": "alg-1", "success": true, "durationSeconds": 30}}),
        )
        .await;
    }
    assert_eq!(last["mastery"]["skill"], "alg-1");
    assert_eq!(last["mastery"]["mastered"], true);
    assert_eq!(last["mastery"]["attempts"], 8);
    assert!(last["mastery"]["pKnown"].as_f64().unwrap() >= 0.95);
    let done = ok(
        &m,
        &ann,
        "track_learning_progress",
        json!({"userId": "ann", "activityData": {"type": "content", "contentId": "alg-2-v", "durationSeconds": 600}}),
    )
    .await;
    assert_eq!(done["recorded"]["kind"], "completed");
    assert_eq!(done["masteryUpdated"], false);
    let v = ok(&m, &teacher("acme"), "get_learning_recommendations", json!({"userId": "ann"})).await;
    let order: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["skill"].as_str().unwrap()).collect();
    assert!(!order.contains(&"alg-1"), "{order:?}");
    assert_eq!(v["mastered"][0]["skill"], "alg-1");
    let contents: Vec<&str> =
        v["steps"].as_array().unwrap().iter().map(|s| s["content"]["id"].as_str().unwrap()).collect();
    assert!(!contents.contains(&"alg-2-v"), "{contents:?}");
    assert!(v["blocked"].as_array().unwrap().iter().all(|b| b["skill"] != "geo-1"));
    // Staff asking about an unknown learner are told so.
    let e = err(&m, &teacher("acme"), "get_learning_recommendations", json!({"userId": "ghost"})).await;
    assert_eq!(e.to_string(), "no learner `ghost` in this tenant");
}

#[tokio::test]
async fn recommendations_follow_prerequisites_mastery_and_style() {
    on_sqlite(recommendation_flow).await;
}

// ------------------------------------------------------------ analytics

async fn analytics_flow(store: Store) {
    use plexus_learning::analytics::{self, ResponseMatrix};
    use plexus_learning::demo::{self, ActivitySpec, DemoSpec};
    let m = open(&store).await;
    let acme = TenantId::new("acme");
    let summary = m.seed_demo(&acme, 11, 30).await.unwrap();
    assert!(!summary.already_seeded);
    assert_eq!((summary.skills, summary.learners), (16, 30));
    let again = m.seed_demo(&acme, 11, 30).await.unwrap();
    assert!(again.already_seeded);
    let e = m.seed_demo(&TenantId::new("globex"), 11, 30).await.map(|_| ());
    assert!(e.is_ok());
    import_course(&m, "free-co", 10).await;
    let e = m.seed_demo(&TenantId::new("free-co"), 11, 30).await.unwrap_err();
    assert!(e.to_string().contains("has a course of its own"), "{e}");

    // The same simulation, recomputed here: completions and first answers
    // do not depend on the dates.
    let d = demo::generate(&DemoSpec { seed: 11, learners: 30, ..DemoSpec::default() }).unwrap();
    let log = demo::simulate_activity(&d, &ActivitySpec { seed: 11 ^ 0x5eed_1e55, ..ActivitySpec::default() }).unwrap();
    assert_eq!(summary.statements, log.events.len());
    let learners: Vec<String> = d.learners.iter().map(|l| l.id.clone()).collect();
    let content: Vec<String> = d.course.content().iter().map(|c| c.id.clone()).collect();
    let want = analytics::completion_rates(&log.events, &learners, &content).unwrap();

    let t = teacher("acme");
    let v = ok(&m, &t, "analyze_learning_data", json!({"scope": "cohort"})).await;
    assert_eq!(v["learners"], 30);
    assert_eq!(v["events"].as_u64(), Some(log.events.len() as u64));
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9;
    assert!(close(&v["completion"]["cohortMean"], want.cohort_mean.unwrap()), "{}", v["completion"]);
    assert!(close(&v["completion"]["cohortMedian"], want.cohort_median.unwrap()));
    assert_eq!(v["completion"]["learners"].as_array().unwrap().len(), 30);
    assert!(v["atRisk"]["learners"].is_array());
    let dropouts = d.learners.iter().filter(|l| l.dropout_after.is_some()).count();
    let inactive = v["atRisk"]["learners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["risks"].as_array().unwrap().iter().any(|r| r == "inactive"))
        .count();
    assert!(inactive >= dropouts.min(1), "{} dropouts, {inactive} inactive", dropouts);
    let mastery = v["mastery"].as_array().unwrap();
    assert!(!mastery.is_empty());
    for s in mastery {
        let n: u64 = s["histogram"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(Some(n), s["learners"].as_u64());
    }
    let total: f64 = log.events.iter().map(|e| e.activity.duration_seconds()).sum();
    assert!(close(&v["timeOnTask"]["totalSeconds"], total));

    // Course: item statistics for authors, as the engine computes them.
    let v = ok(&m, &admin("acme"), "analyze_learning_data", json!({"scope": "course"})).await;
    let matrix = ResponseMatrix::from_events(&log.events);
    let stats = analytics::item_statistics(&matrix, &analytics::ItemFlagOptions::default()).unwrap();
    let got = v["itemStatistics"].as_array().unwrap();
    assert_eq!(got.len(), stats.len());
    for (g, w) in got.iter().zip(&stats) {
        assert_eq!(g["item"].as_str(), Some(w.item.as_str()));
        assert_eq!(g["responses"].as_u64(), Some(w.responses as u64));
        assert_eq!(g["pValue"].as_f64(), w.p_value);
        match w.point_biserial {
            Some(r) => assert!(close(&g["pointBiserial"], r)),
            None => assert!(g["pointBiserial"].is_null()),
        }
    }
    assert_eq!(v["completion"]["content"].as_array().unwrap().len(), content.len());
    assert!(v.get("atRisk").is_none());

    // One learner: their mastery, traced with the parameters fitted to the demo.
    let one = &learners[0];
    let v = ok(&m, &learner("acme", one), "analyze_learning_data", json!({"scope": "learner"})).await;
    let sequences = analytics::answer_sequences(&log.events);
    let params: BTreeMap<String, plexus_learning::bkt::BktParams> = sequences
        .iter()
        .map(|(s, seqs)| (s.clone(), plexus_learning::bkt::fit_or_default(seqs, &Default::default()).params))
        .collect();
    let traced = analytics::trace_mastery(&log.events, &params, &Default::default()).unwrap();
    let mine = traced.get(one).cloned().unwrap_or_default();
    let got = v["learnerMastery"].as_array().unwrap();
    assert_eq!(got.len(), mine.len());
    for g in got {
        let want = mine[g["skill"].as_str().unwrap()];
        assert!(close(&g["pKnown"], want), "{g} vs {want}");
    }
    let mine_events = log.events.iter().filter(|e| e.learner == *one).count();
    assert_eq!(v["events"].as_u64(), Some(mine_events as u64));
    // Learners see their own scope only.
    let e = err(&m, &learner("acme", one), "analyze_learning_data", json!({"scope": "cohort"})).await;
    assert_eq!(e.to_string(), "forbidden: cohort and course analytics is for teachers and administrators");
    let e = err(&m, &learner("acme", one), "analyze_learning_data", json!({"scope": "learner", "userId": learners[1]}))
        .await;
    assert!(e.to_string().starts_with("forbidden: learners act only on their own record"), "{e}");
    // Windows and skills narrow the data.
    let v = ok(
        &m,
        &t,
        "analyze_learning_data",
        json!({"scope": "cohort", "skill": "algebra-01", "from": "2000-01-01", "to": "2000-12-31"}),
    )
    .await;
    assert_eq!((v["events"].as_u64(), v["learners"].as_u64()), (Some(0), Some(0)));
    let e = err(&m, &t, "analyze_learning_data", json!({"scope": "cohort", "from": "yesterday"})).await;
    assert_eq!(e.to_string(), "invalid arguments: from: `yesterday` is not an RFC 3339 time or a date");
    let e = err(&m, &t, "analyze_learning_data", json!({"scope": "everyone"})).await;
    assert_eq!(e.to_string(), "invalid arguments: scope: `everyone` is not learner, cohort or course");

    // The fitted parameters are stored; refitting is for administrators.
    let v = ok(&m, &admin("acme"), "fit_mastery_model", json!({})).await;
    let fitted: BTreeMap<&str, (f64, bool)> = v["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["skill"].as_str().unwrap(), (s["learn"].as_f64().unwrap(), s["fitted"].as_bool().unwrap())))
        .collect();
    for (skill, p) in &params {
        let (learn, was_fitted) = fitted[skill.as_str()];
        assert!((learn - p.learn).abs() < 1e-9, "{skill}");
        assert_eq!(was_fitted, sequences[skill].iter().map(Vec::len).sum::<usize>() >= 50);
    }
    // What was stored (on the SQLite file through the write gate's
    // synchronous connection, on PostgreSQL through sqlx) reads back as
    // returned, on a fresh service.
    let stored = Learning::open(store.clone(), settings()).await.unwrap().service().skill_fits(&acme).await.unwrap();
    assert_eq!(stored.len(), fitted.len());
    for f in &stored {
        let (learn, was_fitted) = fitted[f.skill.as_str()];
        assert_eq!((f.learn, f.fitted), (learn, was_fitted), "{}", f.skill);
        assert!(f.observations > 0 || !f.fitted, "{}", f.skill);
    }
    let e = err(&m, &t, "fit_mastery_model", json!({})).await;
    assert_eq!(e.to_string(), "forbidden: fit_mastery_model is for administrators");
}

#[tokio::test]
async fn analytics_on_the_seeded_demo_match_the_engines() {
    on_sqlite(analytics_flow).await;
}

// ----------------------------------------------------------------- xAPI

fn route(m: &Learning, method: RouteMethod) -> plexus_core::spec::RouteSpec {
    m.routes().into_iter().find(|r| r.method == method).unwrap()
}

/// A request through a route: its args, the tool, its reply.
async fn rest(
    m: &Learning,
    cx: &CallContext,
    method: RouteMethod,
    query: &[(&str, &str)],
    body: &str,
    version: Option<&str>,
) -> (u16, BTreeMap<String, String>, Value) {
    let r = route(m, method);
    let mut headers = vec![("host".to_owned(), "lrs.example".to_owned())];
    if let Some(v) = version {
        headers.push(("x-experience-api-version".to_owned(), v.to_owned()));
    }
    let req = RestRequest {
        params: BTreeMap::new(),
        query: query.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        headers,
        body: body.as_bytes().to_vec(),
    };
    let resp = match (r.args)(&req) {
        Ok(args) => (r.reply)(&req, m.call(cx, &r.tool, args).await),
        Err(resp) => resp,
    };
    let headers = resp.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
    let body = if resp.body.is_empty() { Value::Null } else { serde_json::from_slice(&resp.body).unwrap() };
    (resp.status, headers, body)
}

async fn xapi_flow(store: Store) {
    use RouteMethod::{Get, Post, Put};
    let m = open(&store).await;
    import_course(&m, "acme", 20).await;
    let lrs = who("acme", "lms-connector", &["xapi"]);
    let home = m.service().home(&TenantId::new("acme"));
    let paths: Vec<(RouteMethod, String, String)> =
        m.routes().iter().map(|r| (r.method, r.path.clone(), r.tool.clone())).collect();
    assert_eq!(
        paths,
        vec![
            (Post, "/xapi/statements".into(), "xapi_post_statements".into()),
            (Put, "/xapi/statements".into(), "xapi_put_statement".into()),
            (Get, "/xapi/statements".into(), "xapi_get_statements".into()),
        ]
    );
    let answered = |user: &str, item: &str, success: bool| {
        json!({
            "actor": {"account": {"homePage": home, "name": user}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"ja": "回答した"}},
            "object": {"id": format!("{home}/items/{item}")},
            "result": {"success": success, "duration": "PT30S"}
        })
    };

    // The version header.
    let (status, headers, body) = rest(&m, &lrs, Get, &[], "", None).await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-experience-api-version"], "1.0.3");
    assert_eq!(body["error"]["message"], "X-Experience-API-Version: is required (1.0.3)");
    let (status, _, _) = rest(&m, &lrs, Get, &[], "", Some("2.0.0")).await;
    assert_eq!(status, 400);

    // POST: ids, headers; the statements update the learner's mastery.
    let batch = json!([answered("花子", "item-00000", true), answered("花子", "item-00004", true)]);
    let (status, headers, body) = rest(&m, &lrs, Post, &[], &batch.to_string(), Some("1.0.3")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-experience-api-version"], "1.0.3");
    assert!(headers.contains_key("x-experience-api-consistent-through"));
    let ids: Vec<String> = body.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2);
    let progress = m.read(&teacher("acme"), "learning://learners/%E8%8A%B1%E5%AD%90/progress").await.unwrap();
    let text = match &progress.contents[0] {
        plexus_core::content::ResourceContent::Text { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    let p: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(p["userId"], "花子");
    assert_eq!(p["mastery"][0]["skill"], "alg-1");
    assert_eq!(p["mastery"][0]["attempts"], 2);
    // Both answers of one POST traced in turn from the prior (no fit yet).
    let d = plexus_learning::bkt::BktParams::default();
    let want = d.update(d.update(d.prior, true), true);
    let got = p["mastery"][0]["pKnown"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-12, "pKnown {got}, want {want}");
    let mastery_before_put = mastery_of(&m, "%E8%8A%B1%E5%AD%90").await;

    // PUT: 204; the same again: 204 (idempotent); different content: 409.
    let id = "2f3e4d5c-6b7a-4988-8776-655443322110";
    let s = answered("花子", "item-00001", false);
    let (status, headers, body) = rest(&m, &lrs, Put, &[("statementId", id)], &s.to_string(), Some("1.0.3")).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(headers["x-experience-api-version"], "1.0.3");
    let (status, _, _) = rest(&m, &lrs, Put, &[("statementId", id)], &s.to_string(), Some("1.0.3")).await;
    assert_eq!(status, 204);
    let (status, _, body) =
        rest(&m, &lrs, Put, &[("statementId", id)], &answered("花子", "item-00001", true).to_string(), Some("1.0.3"))
            .await;
    assert_eq!(status, 409, "{body}");
    let (status, _, body) = rest(&m, &lrs, Put, &[], &s.to_string(), Some("1.0.3")).await;
    assert_eq!((status, body["error"]["message"].as_str()), (400, Some("statementId: is required")));
    let mismatched = json!({"id": "11111111-1111-4111-8111-111111111111", "actor": s["actor"], "verb": s["verb"], "object": s["object"]});
    let (status, _, body) = rest(&m, &lrs, Put, &[("statementId", id)], &mismatched.to_string(), Some("1.0.3")).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("statement.id: does not match the statementId parameter"))
    );

    // Invalid statements: 400 with the path; nothing stored.
    let bad = json!([answered("x", "item-00000", true), {"actor": {"mbox": "hanako@example.jp"}, "verb": {"id": "http://x.org/v"}, "object": {"id": "http://x.org/a"}}]);
    let (status, _, body) = rest(&m, &lrs, Post, &[], &bad.to_string(), Some("1.0.3")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "statement[1].actor.mbox: must be a mailto IRI (mailto:name@example.com)");
    let (status, _, body) = rest(&m, &lrs, Post, &[], r#"{"actor": {}, "actor": {}}"#, Some("1.0.3")).await;
    assert_eq!(status, 400, "{body}");

    // GET: one statement; unknown: 404; a page with `more`.
    let (status, headers, body) = rest(&m, &lrs, Get, &[("statementId", id)], "", Some("1.0.3")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id);
    assert_eq!(body["authority"]["account"]["name"], "lms-connector");
    assert!(headers.contains_key("x-experience-api-consistent-through"));
    let (status, _, body) =
        rest(&m, &lrs, Get, &[("statementId", "00000000-0000-4000-8000-000000000009")], "", Some("1.0.3")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, page) = rest(&m, &lrs, Get, &[("limit", "2")], "", Some("1.0.3")).await;
    assert_eq!(status, 200);
    assert_eq!(page["statements"].as_array().unwrap().len(), 2);
    let more = page["more"].as_str().unwrap();
    let token = more.split_once("more=").unwrap().1;
    let (status, _, page2) = rest(&m, &lrs, Get, &[("more", token)], "", Some("1.0.3")).await;
    assert_eq!(status, 200);
    assert_eq!(page2["statements"].as_array().unwrap().len(), 1);
    assert_eq!(page2["more"], "");
    let (status, _, body) = rest(&m, &lrs, Get, &[("since", "soon")], "", Some("1.0.3")).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("since: must be an ISO 8601 timestamp with a time zone (RFC 3339)"))
    );

    // Learners use track_learning_progress, not the LRS.
    let (status, _, body) = rest(&m, &learner("acme", "花子"), Get, &[], "", Some("1.0.3")).await;
    assert_eq!(status, 403);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("forbidden: the xAPI statement resource is for"));
    // Tracked activity is stored as statements, readable through the LRS.
    let tracked = ok(
        &m,
        &learner("acme", "花子"),
        "track_learning_progress",
        json!({"userId": "花子", "activityData": {"type": "content", "contentId": "alg-1-v", "durationSeconds": 95.5}}),
    )
    .await;
    let sid = tracked["statementId"].as_str().unwrap();
    let (_, _, st) = rest(&m, &lrs, Get, &[("statementId", sid)], "", Some("1.0.3")).await;
    assert_eq!(st["actor"]["account"]["name"], "花子");
    assert_eq!(st["verb"]["id"], "http://adlnet.gov/expapi/verbs/completed");
    assert_eq!(st["result"]["duration"], "PT95.5S");
    assert_eq!(st["object"]["id"], format!("{home}/content/alg-1-v"));

    // Voiding the PUT answer takes it out of the learner's mastery: the
    // mastery is again what it was before that answer.
    let after_put = mastery_of(&m, "%E8%8A%B1%E5%AD%90").await;
    assert_ne!(after_put, mastery_before_put, "the wrong answer changed the mastery");
    let void = json!({
        "actor": {"account": {"homePage": home, "name": "lms-connector"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": id},
    });
    let (status, _, body) = rest(&m, &lrs, Post, &[], &void.to_string(), Some("1.0.3")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mastery_of(&m, "%E8%8A%B1%E5%AD%90").await, mastery_before_put);
    let (status, _, _) = rest(&m, &lrs, Get, &[("statementId", id)], "", Some("1.0.3")).await;
    assert_eq!(status, 404, "a voided statement is read by voidedStatementId");
}

/// A learner's mastery per skill as (skill, pKnown, attempts, correct), from the progress resource.
async fn mastery_of(m: &Learning, user: &str) -> Vec<(String, f64, i64, i64)> {
    let progress = m.read(&teacher("acme"), &format!("learning://learners/{user}/progress")).await.unwrap();
    let plexus_core::content::ResourceContent::Text { text, .. } = &progress.contents[0] else { panic!("not text") };
    let p: Value = serde_json::from_str(text).unwrap();
    let mut out: Vec<(String, f64, i64, i64)> = p["mastery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let f = |k: &str| x[k].as_f64().unwrap_or_else(|| panic!("{k} in {x}"));
            #[allow(clippy::cast_possible_truncation)]
            let n = |k: &str| f(k) as i64;
            (x["skill"].as_str().unwrap().to_owned(), f("pKnown"), n("attempts"), n("correct"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn the_xapi_routes_follow_the_specification() {
    on_sqlite(xapi_flow).await;
}

/// Two posts at once, each an answer of one learner and the voiding of the
/// other learner's answer: each locks both learners in one sorted round, so
/// neither waits for the other in a cycle (PostgreSQL would abort one with a
/// deadlock), and every learner's mastery counts exactly its answers left.
#[tokio::test]
async fn crossed_answers_and_voids_never_deadlock_on_postgres() {
    on_postgres("crossed answers and voids", |store| async move {
        use RouteMethod::Post;
        let m = open(&store).await;
        import_course(&m, "acme", 20).await;
        let lrs = who("acme", "lms-connector", &["xapi"]);
        let home = m.service().home(&TenantId::new("acme"));
        let answered = |user: &str, item: usize| {
            json!({
                "actor": {"account": {"homePage": home, "name": user}},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
                "object": {"id": format!("{home}/items/item-{item:05}")},
                "result": {"success": true, "duration": "PT30S"}
            })
        };
        let void = |id: &str| {
            json!({
                "actor": {"account": {"homePage": home, "name": "lms-connector"}},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
                "object": {"objectType": "StatementRef", "id": id},
            })
        };
        let post = |body: Value| {
            let (m, lrs) = (&m, &lrs);
            async move {
                let (status, _, body) = rest(m, lrs, Post, &[], &body.to_string(), Some("1.0.3")).await;
                assert_eq!(status, 200, "{body}");
                body.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect::<Vec<_>>()
            }
        };
        for round in 0..20 {
            let ids = post(json!([answered("ann", round % 4), answered("bob", round % 4)])).await;
            let (ann, bob) = (&ids[0], &ids[1]);
            tokio::join!(
                post(json!([answered("ann", 4 + round % 4), void(bob)])),
                post(json!([answered("bob", 4 + round % 4), void(ann)])),
            );
        }
        for user in ["ann", "bob"] {
            let attempts: i64 = mastery_of(&m, user).await.iter().map(|x| x.2).sum();
            assert_eq!(attempts, 20, "{user}: the 20 answers not voided");
        }
    })
    .await;
}

// ------------------------------------------------------------- Japanese

async fn japanese_flow(store: Store) {
    let m = open(&store).await;
    let course = json!({
        "skills": [{"id": "分数", "name": "分数の計算", "subject": "算数"}],
        "content": [{"id": "分数-動画", "title": "分数をはじめよう", "skill": "分数", "difficulty": 0, "duration_minutes": 5, "format": "video"}]
    });
    let csv = "id,a,b,skill\n問1,1.2,0,分数\n問2,1.0,0.5,分数\n";
    let items = json!([
        {"id": "問1", "stem": "1/2 + 1/3 は？", "options": ["5/6", "2/5", "1/6"], "answer": "5/6"},
        {"id": "問2", "stem": "3/4 を小数で書くと？", "answer": "０．７５"}
    ]);
    ok(&m, &admin("acme"), "import_learning_course", json!({"course": course, "bank": csv, "items": items})).await;
    ok(
        &m,
        &admin("acme"),
        "configure_learning",
        json!({"branding": {"name": "まなびの森", "welcome": "がんばろう！"}, "exposure": {"method": "none"}}),
    )
    .await;
    let me = learner("acme", "山田花子");
    let start = ok(
        &m,
        &me,
        "generate_assessment",
        json!({"userId": "山田花子", "topic": "算数", "assessmentType": "practice", "targetDifficulty": 0}),
    )
    .await;
    assert_eq!((start["platform"].as_str(), start["welcome"].as_str()), (Some("まなびの森"), Some("がんばろう！")));
    assert_eq!(start["item"]["id"], "問1");
    assert_eq!(start["item"]["stem"], "1/2 + 1/3 は？");
    let v = ok(
        &m,
        &me,
        "submit_assessment_response",
        json!({"assessmentId": start["assessmentId"], "itemId": "問1", "response": "5/6"}),
    )
    .await;
    assert_eq!(v["correct"], true);
    assert_eq!(v["nextItem"]["stem"], "3/4 を小数で書くと？");
    assert_eq!(v["nextItem"]["responseFormat"], "text");
    assert_eq!(v["mastery"]["skill"], "分数");
    let v = ok(
        &m,
        &me,
        "submit_assessment_response",
        json!({"assessmentId": start["assessmentId"], "itemId": "問2", "response": " ０．７５ "}),
    )
    .await;
    assert_eq!(v["correct"], true);
    let rec = ok(&m, &me, "get_personalized_content", json!({"userId": "山田花子", "subject": "算数"})).await;
    assert_eq!(rec["steps"][0]["content"]["title"], "分数をはじめよう");
    let r = m.read(&me, "learning://learners/山田花子/progress").await.unwrap();
    let text = match &r.contents[0] {
        plexus_core::content::ResourceContent::Text { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    let p: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(p["mastery"][0]["name"], "分数の計算");
    assert_eq!(p["mastery"][0]["attempts"], 2);
}

#[tokio::test]
async fn japanese_text_round_trips() {
    on_sqlite(japanese_flow).await;
}

// ------------------------------------------------------------ isolation

/// Everything tenant B has is invisible from tenant A, whatever the role:
/// ids of B read exactly like ids that exist nowhere.
async fn isolation_flow(store: Store) {
    let m = open(&store).await;
    let bank = import_course(&m, "globex", 40).await;
    import_course(&m, "acme", 40).await;
    ok(&m, &admin("globex"), "configure_learning", json!({"branding": {"name": "Globex Academy"}})).await;
    // B's learner `bob` (only in B) and `sam` (in both) with data.
    let bob = learner("globex", "bob");
    let start =
        ok(&m, &bob, "generate_assessment", json!({"userId": "bob", "topic": "all", "assessmentType": "adaptive"}))
            .await;
    let b_assessment = start["assessmentId"].as_str().unwrap().to_owned();
    let b_item = start["item"]["id"].as_str().unwrap().to_owned();
    let _ = bank;
    let tracked = ok(
        &m,
        &bob,
        "track_learning_progress",
        json!({"userId": "bob", "activityData": {"type": "answer", "skillId": "geo-1", "success": true}}),
    )
    .await;
    let b_statement = tracked["statementId"].as_str().unwrap().to_owned();
    ok(
        &m,
        &learner("globex", "sam"),
        "track_learning_progress",
        json!({"userId": "sam", "activityData": {"type": "content", "contentId": "alg-1-t"}}),
    )
    .await;
    ok(
        &m,
        &learner("acme", "sam"),
        "track_learning_progress",
        json!({"userId": "sam", "activityData": {"type": "answer", "skillId": "alg-1", "success": false}}),
    )
    .await;

    let unknown_uuid = "00000000-0000-4000-8000-0000000000ab";
    for cx in [admin("acme"), teacher("acme"), learner("acme", "bob"), who("acme", "lms", &["xapi", "admin"])] {
        let role = cx.principal.roles.join(",");
        // Learners of B by id: like nobody.
        if role != "learner" {
            for tool in ["get_learning_recommendations", "get_personalized_content"] {
                let mut args = json!({"userId": "bob"});
                if tool == "get_personalized_content" {
                    args["subject"] = json!("algebra");
                }
                let e_bob = err(&m, &cx, tool, args.clone()).await.to_string();
                args["userId"] = json!("nobody-at-all");
                let e_none = err(&m, &cx, tool, args).await.to_string();
                assert_eq!(e_bob, e_none.replace("nobody-at-all", "bob"), "{role} {tool}");
            }
            let e_bob =
                err(&m, &cx, "analyze_learning_data", json!({"scope": "learner", "userId": "bob"})).await.to_string();
            let e_none =
                err(&m, &cx, "analyze_learning_data", json!({"scope": "learner", "userId": "zed"})).await.to_string();
            assert_eq!(e_bob, e_none.replace("zed", "bob"), "{role}");
            let r_bob = m.read(&cx, "learning://learners/bob/progress").await.unwrap_err().to_string();
            let r_none = m.read(&cx, "learning://learners/zed/progress").await.unwrap_err().to_string();
            assert_eq!(r_bob, r_none.replace("zed", "bob"), "{role}");
        } else {
            // A learner `bob` of A is a different person: A's data only.
            let v = ok(&m, &cx, "get_learning_recommendations", json!({"userId": "bob"})).await;
            assert!(v["ability"].is_null());
            assert!(v["mastered"].as_array().unwrap().is_empty());
            let v = ok(&m, &cx, "analyze_learning_data", json!({"scope": "learner"})).await;
            assert_eq!(v["events"], 0);
        }
        // B's assessment: like an unknown one.
        let e_b = err(
            &m,
            &cx,
            "submit_assessment_response",
            json!({"assessmentId": b_assessment, "itemId": b_item, "response": "C"}),
        )
        .await
        .to_string();
        let e_none = err(
            &m,
            &cx,
            "submit_assessment_response",
            json!({"assessmentId": unknown_uuid, "itemId": b_item, "response": "C"}),
        )
        .await
        .to_string();
        assert_eq!(e_b, e_none.replace(unknown_uuid, &b_assessment), "{role}");
        // The course resource is A's.
        let r = m.read(&cx, "learning://course").await.unwrap();
        let text = match &r.contents[0] {
            plexus_core::content::ResourceContent::Text { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        };
        assert!(!text.contains("globex"), "{text}");
        // xAPI: B's statement is not found, like one that does not exist; no list shows B's.
        if role.contains("xapi") || role.contains("admin") || role.contains("teacher") {
            let (s_b, _, b_b) =
                rest(&m, &cx, RouteMethod::Get, &[("statementId", &b_statement)], "", Some("1.0.3")).await;
            let (s_n, _, b_n) =
                rest(&m, &cx, RouteMethod::Get, &[("statementId", unknown_uuid)], "", Some("1.0.3")).await;
            assert_eq!((s_b, s_n), (404, 404));
            assert_eq!(
                b_b["error"]["message"].as_str().unwrap(),
                b_n["error"]["message"].as_str().unwrap().replace(unknown_uuid, &b_statement)
            );
            let (status, _, page) = rest(&m, &cx, RouteMethod::Get, &[], "", Some("1.0.3")).await;
            assert_eq!(status, 200);
            let mut words = Vec::new();
            strings(&page, &mut words);
            assert!(words.iter().all(|w| !w.contains("globex") && w != "bob" && w != &b_statement), "{page}");
        }
        // Analytics of A never count B.
        if role != "learner" {
            let v = ok(&m, &cx, "analyze_learning_data", json!({"scope": "cohort"})).await;
            let mut words = Vec::new();
            strings(&v, &mut words);
            assert!(!words.iter().any(|w| w == "bob"), "{v}");
            assert_eq!(v["learners"], 1, "{role}: only A's sam");
            let v = ok(&m, &cx, "analyze_learning_data", json!({"scope": "course"})).await;
            assert_eq!(v["answers"], 1, "{role}");
            let v = ok(&m, &cx, "get_learning_settings", json!({})).await;
            assert_eq!(v["settings"]["branding"]["name"], "Plexus Learning");
            assert_eq!(v["usage"]["learners"], 1);
        }
    }
    // A statement posted in A with B's home page stays in A and teaches B's bob nothing.
    let home_b = m.service().home(&TenantId::new("globex"));
    let s = json!({"actor": {"account": {"homePage": home_b, "name": "bob"}}, "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                   "object": {"id": format!("{home_b}/skills/geo-1")}, "result": {"success": true}});
    let (status, _, _) = rest(&m, &admin("acme"), RouteMethod::Post, &[], &s.to_string(), Some("1.0.3")).await;
    assert_eq!(status, 200);
    let v = ok(&m, &admin("globex"), "analyze_learning_data", json!({"scope": "learner", "userId": "bob"})).await;
    assert_eq!(v["learnerMastery"][0]["skill"], "geo-1");
    assert_eq!(v["answers"], 1);
    // B still has exactly its own.
    let v = ok(&m, &admin("globex"), "analyze_learning_data", json!({"scope": "cohort"})).await;
    assert_eq!(v["learners"], 2);
    let v = ok(&m, &admin("globex"), "get_learning_settings", json!({})).await;
    assert_eq!(v["usage"]["learners"], 2);
    assert_eq!(v["usage"]["statements"], 2);
    // B's assessment still works for bob.
    ok(
        &m,
        &bob,
        "submit_assessment_response",
        json!({"assessmentId": b_assessment, "itemId": b_item, "response": "C"}),
    )
    .await;
}

#[tokio::test]
async fn tenants_see_nothing_of_each_other() {
    on_sqlite(isolation_flow).await;
}

// ----------------------------------------------------------------- roles

async fn roles_flow(store: Store) {
    let m = open(&store).await;
    import_course(&m, "acme", 20).await;
    let ann = learner("acme", "ann");
    ok(
        &m,
        &ann,
        "track_learning_progress",
        json!({"userId": "ann", "activityData": {"type": "answer", "skillId": "alg-1", "success": true}}),
    )
    .await;
    // A learner acting on someone else: refused alike whether they exist or not.
    for tool in
        ["track_learning_progress", "get_learning_recommendations", "get_personalized_content", "generate_assessment"]
    {
        let args = |u: &str| match tool {
            "track_learning_progress" => {
                json!({"userId": u, "activityData": {"type": "answer", "skillId": "alg-1", "success": true}})
            }
            "get_personalized_content" => json!({"userId": u, "subject": "algebra"}),
            "generate_assessment" => json!({"userId": u, "topic": "all", "assessmentType": "adaptive"}),
            _ => json!({"userId": u}),
        };
        let bea = learner("acme", "bea");
        let e1 = err(&m, &bea, tool, args("ann")).await.to_string();
        let e2 = err(&m, &bea, tool, args("nobody")).await.to_string();
        assert_eq!(e1, e2, "{tool}");
        assert!(e1.starts_with("forbidden: learners act only on their own record (userId must be `bea`)"), "{e1}");
    }
    let e = m.read(&learner("acme", "bea"), "learning://learners/ann/progress").await.unwrap_err();
    assert_eq!(e.to_string(), "resource not found: learning://learners/ann/progress");
    assert!(m.read(&ann, "learning://learners/ann/progress").await.is_ok());
    // Teachers act on any learner of their tenant.
    let v = ok(
        &m,
        &teacher("acme"),
        "track_learning_progress",
        json!({"userId": "ann", "activityData": {"type": "answer", "skillId": "alg-1", "success": true}}),
    )
    .await;
    assert_eq!(v["mastery"]["attempts"], 2);
    assert!(m.read(&teacher("acme"), "learning://learners/ann/progress").await.is_ok());
    // Bad activity data, precisely.
    let cases = [
        (
            json!({"type": "answer", "success": true}),
            "invalid arguments: activityData: an answer needs itemId or skillId",
        ),
        (
            json!({"type": "answer", "itemId": "nope", "success": true}),
            "invalid arguments: activityData.itemId: `nope` is not an item of the bank",
        ),
        (
            json!({"type": "answer", "itemId": "item-00000", "skillId": "geo-1", "success": true}),
            "invalid arguments: activityData.skillId: item `item-00000` assesses `alg-1`, not `geo-1`",
        ),
        (
            json!({"type": "content", "contentId": "zzz"}),
            "invalid arguments: activityData.contentId: `zzz` is not content of this tenant's course",
        ),
        (
            json!({"type": "content", "contentId": "alg-1-v", "score": 2}),
            "invalid arguments: activityData.score: must be in [0, 1], got 2",
        ),
        (
            json!({"type": "content", "contentId": "alg-1-v", "durationSeconds": -1}),
            "invalid arguments: activityData.durationSeconds: must be a number of seconds ≥ 0, got -1",
        ),
        (
            json!({"type": "statement", "statement": {"actor": {"mbox": "mailto:x@example.org"}, "verb": {"id": "http://x.org/v"}, "object": {"id": "http://x.org/a"}}}),
            "invalid arguments: activityData.statement.actor: must be the learner",
        ),
        (
            json!({"type": "statement", "statement": {"verb": {"id": "nope"}, "object": {"id": "http://x.org/a"}}}),
            "invalid arguments: activityData.statement.verb.id: must be an absolute IRI",
        ),
    ];
    for (data, want) in cases {
        let e = err(&m, &ann, "track_learning_progress", json!({"userId": "ann", "activityData": data})).await;
        assert!(e.to_string().starts_with(want), "{e} / {want}");
    }
    let e = err(
        &m,
        &ann,
        "track_learning_progress",
        json!({"userId": "", "activityData": {"type": "answer", "skillId": "alg-1", "success": true}}),
    )
    .await;
    assert_eq!(
        e.to_string(),
        "invalid arguments: userId: a learner id is 1 to 256 characters without control characters"
    );
}

#[tokio::test]
async fn roles_decide_before_anything_is_looked_up() {
    on_sqlite(roles_flow).await;
}

/// A server started after the learners were written (by `plexus learning
/// seed`, or before a restart) finds them in the store, not in its caches:
/// the seeded learners take assessments and get content.
async fn cold_cache_flow(store: Store) {
    let seeded = open(&store).await;
    seeded.seed_demo(&TenantId::new("acme"), 3, 4).await.unwrap();
    drop(seeded);
    let m = open(&store).await;
    let cx = learner("acme", "learner-001");
    let start = ok(
        &m,
        &cx,
        "generate_assessment",
        json!({"userId": "learner-001", "topic": "all", "assessmentType": "adaptive"}),
    )
    .await;
    let id = start["assessmentId"].as_str().unwrap().to_owned();
    let item = start["item"]["id"].as_str().unwrap().to_owned();
    let answered =
        ok(&m, &cx, "submit_assessment_response", json!({"assessmentId": id, "itemId": item, "response": "A"})).await;
    assert_eq!(answered["answered"], 1);
    assert_eq!(answered["itemId"], item.as_str());
    let content = ok(&m, &cx, "get_personalized_content", json!({"userId": "learner-001", "subject": "algebra"})).await;
    assert!(content.is_object(), "{content}");
    // The learner had history from the seed: the answer is recorded beside it.
    let mine = count(&place(&m, "acme").await, "acme", "learning_events").await.unwrap();
    assert!(mine > 1, "{mine}");
}

#[tokio::test]
async fn a_fresh_server_finds_the_learners_already_stored() {
    on_sqlite(cold_cache_flow).await;
    on_postgres("cold caches", cold_cache_flow).await;
}

// ------------------------------------------------------------ shards

const TENANTS: [&str; 4] = ["acme", "globex", "tiny-co", "free-co"];
const TABLES: [&str; 5] =
    ["learning_catalog", "learning_learners", "learning_events", "learning_usage", "learning_xapi_statements"];

/// A course and one tracked answer for `t`.
async fn some_learning(m: &Learning, t: &str) {
    import_course(m, t, 20).await;
    ok(
        m,
        &learner(t, "bob"),
        "track_learning_progress",
        json!({"userId": "bob", "activityData": {"type": "answer", "skillId": "alg-1", "success": true}}),
    )
    .await;
}

/// `tenant`'s rows in `table` of `store`.
async fn rows_of(store: &Store, tenant: &str, table: &str) -> i64 {
    let scope = store.tenant(&TenantId::new(tenant));
    let n: Result<i64, plexus_store::StoreError> = async {
        Ok(plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table} WHERE tenant_id = $1")))
                .bind(tenant)
                .fetch_one(&mut *conn)
                .await?
        }))
    }
    .await;
    n.unwrap()
}

/// Every tenant's rows are in its place.
async fn rows_are_in_place(m: &Learning) -> Vec<usize> {
    let shards = m.service().shards();
    let mut places = Vec::new();
    for t in TENANTS {
        let k = shards.place(&TenantId::new(t)).await.unwrap();
        for table in TABLES {
            let here = rows_of(shards.of(&TenantId::new(t)).await.unwrap(), t, table).await;
            assert!(here >= 1, "{t}: no {table} rows in its place {k}");
        }
        places.push(k);
    }
    places
}

/// With `shards = N` new tenants' rows spread over N SQLite files, each
/// tenant's all in one; a tenant with rows from before keeps them where
/// they are, and a later, smaller N moves nobody.
async fn shards_flow(store: Store) {
    let file = store.sqlite_file().unwrap().to_path_buf();
    let beside = |k: usize| file.with_file_name(format!("plexus-learning-{k}.db"));
    // One file first: acme's rows in the main one.
    let one = Learning::open(store.clone(), LearningSettings { shards: 1, ..settings() }).await.unwrap();
    assert_eq!(one.service().shards().files(), 1);
    some_learning(&one, "acme").await;
    let v = ok(&one, &admin("acme"), "configure_learning", json!({"maxItems": 17})).await;
    assert_eq!(v["settings"]["maxItems"], 17);
    assert!(!beside(1).exists());
    drop(one);

    // Four: acme stays, the others spread by their ids' hashes.
    let m = Learning::open(store.clone(), LearningSettings { shards: 4, ..settings() }).await.unwrap();
    assert_eq!(m.service().shards().files(), 4);
    assert!((1..4).all(|k| beside(k).exists()) && !beside(4).exists());
    for t in &TENANTS[1..] {
        some_learning(&m, t).await;
    }
    let places = rows_are_in_place(&m).await;
    assert_eq!(places[0], 0, "acme moved");
    assert!(places[1..].iter().any(|k| *k > 0), "every tenant in the main file: {places:?}");
    assert!(places.iter().all(|k| *k < 4), "{places:?}");
    // The other files know nothing of a tenant that is not theirs.
    for (t, k) in TENANTS.iter().zip(&places) {
        for other in (0..4).filter(|o| o != k) {
            let s = if other == 0 { store.clone() } else { store.beside(&format!("learning-{other}")).await.unwrap() };
            for table in TABLES {
                assert_eq!(rows_of(&s, t, table).await, 0, "{t}'s {table} rows in file {other}");
            }
        }
    }
    // acme's configuration from before is still its own, globex has the defaults.
    assert_eq!(ok(&m, &admin("acme"), "get_learning_settings", json!({})).await["settings"]["maxItems"], 17);
    assert_eq!(ok(&m, &admin("globex"), "get_learning_settings", json!({})).await["settings"]["maxItems"], 20);
    // A tenant the directory does not know has no place.
    let e = m.service().shards().place(&TenantId::new("nobody")).await.unwrap_err();
    assert!(matches!(e, plexus_store::StoreError::UnknownTenant(_)), "{e:?}");
    drop(m);

    // Two: every file is still opened, everybody is where they were, and
    // their learners' answers continue.
    let two = Learning::open(store.clone(), LearningSettings { shards: 2, ..settings() }).await.unwrap();
    assert_eq!(two.service().shards().files(), 4);
    assert_eq!(rows_are_in_place(&two).await, places);
    for t in TENANTS {
        let progress = two.read(&teacher(t), "learning://learners/bob/progress").await.unwrap();
        let plexus_core::content::ResourceContent::Text { text, .. } = &progress.contents[0] else {
            panic!("not text")
        };
        let p: Value = serde_json::from_str(text).unwrap();
        let alg = p["mastery"].as_array().unwrap().iter().find(|x| x["skill"] == "alg-1").cloned();
        assert_eq!(alg.as_ref().map(|x| x["attempts"].clone()), Some(json!(1)), "{t}: {p}");
    }

    // Out of range: a precise error.
    let e = LearningSettings { shards: 0, ..settings() }.validate().unwrap_err();
    assert_eq!(e, "learning.shards: must be from 1 to 64, got 0");
}

#[tokio::test]
async fn shards_keep_each_tenant_in_one_file_across_restarts() {
    on_sqlite(shards_flow).await;
}

// ------------------------------------------------------------ PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_configuration_and_cat() {
    on_postgres("configuration, CAT", |store| async move {
        configuration_flow(store.clone()).await;
        cat_flow(store.clone()).await;
        refusal_flow(store).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_limits_and_concurrency() {
    on_postgres("limits", |store| async move {
        learner_limit_flow(store.clone()).await;
        concurrent_answers_flow(store).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_isolation_xapi_and_analytics() {
    on_postgres("isolation", |store| async move {
        isolation_flow(store).await;
    })
    .await;
    on_postgres("xapi", xapi_flow).await;
    on_postgres("analytics", analytics_flow).await;
    on_postgres("recommendations", recommendation_flow).await;
}

/// Row-level security holds under the module's tables: an unfiltered
/// read in tenant A's transaction sees none of B's rows, and a write into
/// B from A's transaction fails.
async fn rls_flow(store: Store) {
    let m = open(&store).await;
    import_course(&m, "globex", 20).await;
    ok(
        &m,
        &learner("globex", "bob"),
        "track_learning_progress",
        json!({"userId": "bob", "activityData": {"type": "answer", "skillId": "alg-1", "success": true}}),
    )
    .await;
    for table in [
        "learning_catalog",
        "learning_learners",
        "learning_mastery",
        "learning_events",
        "learning_usage",
        "learning_xapi_statements",
    ] {
        assert_eq!(count(&store, "acme", table).await.unwrap(), 0, "{table}");
        assert!(count(&store, "globex", table).await.unwrap() >= 1, "{table}");
    }
    let e = exec(
        &store,
        "acme",
        "INSERT INTO learning_learners (tenant_id, user_id, created_at) VALUES ('globex', 'mallory', 'x')",
    )
    .await;
    assert!(e.is_err(), "a write into another tenant passed");
}

#[tokio::test]
async fn postgres_row_level_security_covers_the_module_tables() {
    on_postgres("row-level security", rls_flow).await;
}
