//! The Unleash client specification suite, every test of every file listed in
//! its `index.json`, run against `plexus_ops::flags`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plexus_ops::flags::{ClientFeatures, Context, DeltaEvents, Engine};
use serde_json::Value;

/// The suite's size when this test was written; a smaller suite means files
/// went missing.
const KNOWN_CASES: usize = 279;

fn suite_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../shared/data/unleash-client-specification"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn cases<'a>(spec: &'a Value, key: &str) -> &'a [Value] {
    spec.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The engine for a file's `state`: a client features payload, or delta
/// events applied to an empty engine.
fn engine(state: &Value) -> Engine {
    let text = state.to_string();
    if state.get("events").is_some() {
        let mut engine = Engine::default();
        engine.apply(DeltaEvents::from_json(&text).expect("delta events"));
        engine
    } else {
        Engine::from_state(ClientFeatures::from_json(&text).expect("client features"))
    }
}

/// The SDKs have spelled the flag `featureEnabled` and `feature_enabled`.
fn normalize_variant(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut()
        && let Some(flag) = obj.remove("featureEnabled")
    {
        obj.insert("feature_enabled".to_owned(), flag);
    }
    v
}

#[test]
fn unleash_client_specification() {
    let dir = suite_dir();
    if !dir.is_dir() {
        eprintln!("unleash client specification not found at {}: skipped", dir.display());
        return;
    }
    let index = read_json(&dir.join("index.json"));
    let files: Vec<&str> =
        index.as_array().expect("index.json is a list").iter().map(|f| f.as_str().expect("file name")).collect();
    assert!(!files.is_empty(), "index.json lists no files");
    let specs: Vec<(&str, Value)> = files.iter().map(|f| (*f, read_json(&dir.join(f)))).collect();

    let expected: usize = specs.iter().map(|(_, s)| cases(s, "tests").len() + cases(s, "variantTests").len()).sum();
    eprintln!("unleash client specification: {} files, {expected} cases", files.len());
    assert!(expected >= KNOWN_CASES, "the suite has {expected} cases, fewer than the {KNOWN_CASES} known");

    let mut run = 0;
    let mut failures = Vec::new();
    let mut per_file = BTreeMap::new();
    for (file, spec) in &specs {
        let engine = engine(&spec["state"]);
        let (mut ran, mut passed) = (0, 0);
        for case in cases(spec, "tests") {
            let ctx: Context = serde_json::from_value(case["context"].clone()).expect("context");
            let name = case["toggleName"].as_str().expect("toggleName");
            let want = case["expectedResult"].as_bool().expect("expectedResult");
            let got = engine.is_enabled(name, &ctx);
            ran += 1;
            if got == want {
                passed += 1;
            } else {
                failures.push(format!("{file}: {}: expected {want}, got {got}", case["description"]));
            }
        }
        for case in cases(spec, "variantTests") {
            let ctx: Context = serde_json::from_value(case["context"].clone()).expect("context");
            let name = case["toggleName"].as_str().expect("toggleName");
            let want = normalize_variant(case["expectedResult"].clone());
            let got = serde_json::to_value(engine.variant(name, &ctx)).expect("variant serializes");
            ran += 1;
            if got == want {
                passed += 1;
            } else {
                failures.push(format!("{file}: {}: expected {want}, got {got}", case["description"]));
            }
        }
        eprintln!("  {file}: {passed}/{ran} passed");
        per_file.insert(*file, ran);
        run += ran;
    }
    assert_eq!(run, expected, "cases run: {per_file:?}");
    assert!(failures.is_empty(), "{} of {run} cases failed:\n{}", failures.len(), failures.join("\n"));
}
