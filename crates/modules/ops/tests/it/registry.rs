//! The shared config registry: versions, history, validation, bad input, the
//! directory watcher and restarts, on real directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plexus_ops::registry::{
    Format, ProblemKind, RegistryError, RegistryEvent, RegistryOptions, SharedRegistry, Source, Validator,
};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("plexus-registry-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The registry root inside (a subdirectory, so escapes are visible).
    fn root(&self) -> PathBuf {
        self.0.join("shared")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(dir: &TempDir) -> SharedRegistry {
    open_with(dir, RegistryOptions::default()).await
}

async fn open_with(dir: &TempDir, options: RegistryOptions) -> SharedRegistry {
    SharedRegistry::open(dir.root(), options).await.expect("open registry")
}

fn write(root: &Path, name: &str, content: impl AsRef<[u8]>) {
    let path = root.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, content).expect("write file");
}

/// The next event matching `pred`, skipping others; fails after 5 s.
async fn wait_for(
    rx: &mut broadcast::Receiver<RegistryEvent>,
    what: &str,
    pred: impl Fn(&RegistryEvent) -> bool,
) -> RegistryEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("no {what} within 5 s"),
        }
    }
}

const INTERVIEW_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["items"],
  "properties": {
    "items": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["id", "name", "classification"],
        "properties": {
          "id": {"type": "string", "pattern": "^[a-z_]+$"},
          "name": {"type": "string", "minLength": 1},
          "classification": {"enum": ["general", "special"]}
        },
        "additionalProperties": false
      }
    }
  }
}"#;

const INTERVIEWS: &str = "config/interview-types.json";
const INTERVIEWS_V1: &str = r#"{
  "items": [
    {"id": "regular", "name": "定期面談", "classification": "general"},
    {"id": "return_to_work", "name": "復職面談", "classification": "special"}
  ]
}
"#;

fn interviews_with(extra: serde_json::Value) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(INTERVIEWS_V1).expect("fixture parses");
    if let Some(items) = doc["items"].as_array_mut() {
        items.push(extra);
    }
    serde_json::to_string_pretty(&doc).expect("serializes") + "\n"
}

async fn with_interview_schema(registry: &SharedRegistry) {
    registry.put("schemas/interview-types.schema.json", INTERVIEW_SCHEMA, "admin", None).await.expect("schema put");
    let change = registry.put(INTERVIEWS, INTERVIEWS_V1, "alice", None).await.expect("first version");
    assert_eq!(change.version.version, 1);
}

#[tokio::test]
async fn put_get_versions_and_history() {
    let dir = TempDir::new("put");
    let registry = open(&dir).await;
    for sub in ["config", "alerts", "reports", "experiments", "audit", "compliance", "incidents", "security", "schemas"]
    {
        assert!(registry.root().join(sub).is_dir(), "{sub} created");
    }
    let name = "config/limits.json";
    let first = registry.put(name, "{\n  \"max\": 3,\n  \"team\": \"a\"\n}\n", "alice", None).await.expect("v1");
    assert_eq!((first.version.version, first.previous, first.recorded), (1, None, true));
    assert_eq!(first.version.source, Source::Api);
    let second = registry.put(name, "{\n  \"max\": 5,\n  \"team\": \"a\"\n}\n", "bob", None).await.expect("v2");
    assert_eq!((second.version.version, second.previous), (2, Some(1)));
    let diff = second.diff.expect("small documents have a diff");
    assert!(diff.contains("-  \"max\": 3,"), "{diff}");
    assert!(diff.contains("+  \"max\": 5,"), "{diff}");
    assert!(diff.contains("a/config/limits.json@v1") && diff.contains("b/config/limits.json@v2"), "{diff}");

    let live = registry.get(name).expect("live");
    assert_eq!((live.version, live.author.as_str(), live.format), (2, "bob", Format::Json));
    assert_eq!(live.value.as_deref(), Some(&json!({"max": 5, "team": "a"})));
    assert_eq!(live.format.mime(), "application/json");
    assert_eq!(std::fs::read_to_string(registry.root().join(name)).expect("file"), &*live.text);
    assert_eq!(live.sha256.len(), 64);

    let history = registry.history(name).expect("history");
    let who: Vec<(u64, &str, Source)> = history.iter().map(|v| (v.version, v.author.as_str(), v.source)).collect();
    assert_eq!(who, [(1, "alice", Source::Api), (2, "bob", Source::Api)]);
    assert!(history.iter().all(|v| !v.deleted && v.size > 0 && v.time.contains('T')));
    let diff = registry.diff(name, 1, 2).await.expect("diff");
    assert!(diff.contains("+  \"max\": 5,") && diff.contains("-  \"max\": 3,"), "{diff}");
    assert_eq!(&*registry.version(name, 1).await.expect("v1 text"), "{\n  \"max\": 3,\n  \"team\": \"a\"\n}\n");

    // The same content again records nothing.
    let same = registry.put(name, &live.text, "carol", None).await.expect("no-op");
    assert_eq!((same.version.version, same.recorded, same.version.author.as_str()), (2, false, "bob"));
    assert_eq!(registry.history(name).expect("history").len(), 2);

    // Every format, listed by name.
    registry.put("alerts/rules.yaml", "rules:\n  - name: cpu\n", "alice", None).await.expect("yaml");
    registry.put("compliance/checklist.md", "# Checklist\n- [ ] one\n", "alice", None).await.expect("md");
    registry.put_generated("reports/weekly.csv", "team,count\na,3\n").await.expect("csv");
    let listed: Vec<(String, u64, Format)> =
        registry.list().into_iter().map(|d| (d.name, d.version, d.format)).collect();
    assert_eq!(
        listed,
        [
            ("alerts/rules.yaml".to_owned(), 1, Format::Yaml),
            ("compliance/checklist.md".to_owned(), 1, Format::Markdown),
            ("config/limits.json".to_owned(), 2, Format::Json),
            ("reports/weekly.csv".to_owned(), 1, Format::Csv),
        ]
    );
    assert_eq!(
        registry.get("alerts/rules.yaml").expect("yaml").value.as_deref(),
        Some(&json!({"rules": [{"name": "cpu"}]}))
    );
    let report = registry.get("reports/weekly.csv").expect("csv");
    assert_eq!((report.author.as_str(), report.source, report.value), ("plexus", Source::System, None));
    assert!(matches!(registry.get("config/none.json"), Err(RegistryError::NotFound(n)) if n == "config/none.json"));
}

#[tokio::test]
async fn schema_violations_name_the_path_and_keep_the_last_good_version() {
    let dir = TempDir::new("schema");
    let registry = open(&dir).await;
    with_interview_schema(&registry).await;
    let bad = INTERVIEWS_V1.replace(r#""classification": "special""#, r#""classification": "secret""#);
    let err = registry.put(INTERVIEWS, &bad, "mallory", None).await.expect_err("schema violation");
    let RegistryError::Schema { name, schema, errors } = &err else { panic!("expected a schema error, got {err}") };
    assert_eq!((name.as_str(), schema.as_str()), (INTERVIEWS, "schemas/interview-types.schema.json"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("/items/1/classification: "), "{errors:?}");
    assert!(errors[0].contains("secret"), "{errors:?}");
    assert!(err.to_string().contains("/items/1/classification"), "{err}");

    // Several violations are all listed, each with its pointer.
    let worse = r#"{"items": [{"id": "Bad Id", "name": "", "classification": "general", "extra": 1}]}"#;
    let err = registry.put(INTERVIEWS, worse, "mallory", None).await.expect_err("violations");
    let messages = err.messages();
    assert!(messages.iter().any(|m| m.starts_with("/items/0/id: ")), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("/items/0/name: ")), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("/items/0: ") && m.contains("extra")), "{messages:?}");
    let err = registry.put(INTERVIEWS, "[]", "mallory", None).await.expect_err("wrong type");
    assert!(err.messages()[0].starts_with("(root): "), "{err}");

    let live = registry.get(INTERVIEWS).expect("live");
    assert_eq!((live.version, &*live.text), (1, INTERVIEWS_V1));
    assert_eq!(std::fs::read_to_string(registry.root().join(INTERVIEWS)).expect("file"), INTERVIEWS_V1);
    assert_eq!(registry.history(INTERVIEWS).expect("history").len(), 1);

    // A schema beside the document's directory wins over the shared one.
    let strict = r#"{"type": "object", "required": ["owner"]}"#;
    registry.put("schemas/config/interview-types.schema.json", strict, "admin", None).await.expect("dir schema");
    let err = registry.put(INTERVIEWS, INTERVIEWS_V1.replace("定期", "通常").as_str(), "alice", None).await;
    assert!(
        matches!(&err, Err(RegistryError::Schema { schema, .. }) if schema == "schemas/config/interview-types.schema.json"),
        "{err:?}"
    );
    // The live version does not meet the new schema: kept, and listed.
    let problems = registry.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].name.as_str(), problems[0].kind, problems[0].live_version),
        (INTERVIEWS, ProblemKind::Stale, Some(1))
    );
    assert!(problems[0].errors[0].contains("owner"), "{problems:?}");
    assert_eq!(registry.get(INTERVIEWS).expect("still live").version, 1);
}

#[tokio::test]
async fn japanese_values_and_names_round_trip() {
    let dir = TempDir::new("japanese");
    let registry = open(&dir).await;
    with_interview_schema(&registry).await;
    let v2 = interviews_with(json!({"id": "mental_health", "name": "メンタルヘルス面談", "classification": "special"}));
    let change = registry.put(INTERVIEWS, &v2, "山田", Some(1)).await.expect("valid change");
    assert_eq!(change.version.version, 2);
    assert!(change.diff.as_deref().is_some_and(|d| d.contains("+") && d.contains("メンタルヘルス面談")));
    let live = registry.get(INTERVIEWS).expect("live");
    assert_eq!(live.value.as_ref().map(|v| v["items"][2]["name"].clone()), Some(json!("メンタルヘルス面談")));
    assert_eq!(live.author, "山田");
    assert_eq!(&*live.text, v2);

    let name = "config/面談種別.yaml";
    registry.put(name, "種別:\n  - 定期面談\n  - メンタルヘルス面談\n", "山田", None).await.expect("unicode name");
    assert_eq!(
        registry.get(name).expect("live").value.as_deref(),
        Some(&json!({"種別": ["定期面談", "メンタルヘルス面談"]}))
    );
    assert!(registry.root().join(name).is_file());
    drop(registry);

    let reopened = open(&dir).await;
    assert_eq!(
        reopened.get(INTERVIEWS).expect("after restart").value.as_ref().map(|v| v["items"][2]["id"].clone()),
        Some(json!("mental_health"))
    );
    assert_eq!(reopened.get(name).expect("after restart").version, 1);
    assert!(reopened.problems().is_empty(), "{:?}", reopened.problems());
}

#[tokio::test]
async fn broken_json_and_yaml_report_line_and_column() {
    let dir = TempDir::new("parse");
    let registry = open(&dir).await;
    registry.put("config/a.json", "{\"ok\": true}", "alice", None).await.expect("v1");
    let err =
        registry.put("config/a.json", "{\n  \"a\": 1,\n  \"b\": \n}", "alice", None).await.expect_err("broken json");
    let RegistryError::Parse { format, line, column, message, .. } = &err else {
        panic!("expected parse error: {err}")
    };
    assert_eq!((*format, *line, *column), (Format::Json, Some(4), Some(1)));
    assert!(message.contains("expected value"), "{message}");
    assert!(!message.contains("line"), "the position is in fields: {message}");
    assert_eq!(err.to_string(), "document `config/a.json` is not valid json at line 4 column 1: expected value");

    registry.put("alerts/a.yaml", "a: 1\n", "alice", None).await.expect("v1");
    let err = registry.put("alerts/a.yaml", "a: 1\nb: [1, 2\nc: 3\n", "alice", None).await.expect_err("broken yaml");
    let RegistryError::Parse { format, line, column, .. } = &err else { panic!("expected parse error: {err}") };
    assert_eq!(*format, Format::Yaml);
    assert!(line.is_some_and(|l| l >= 2) && column.is_some(), "{err}");
    let err = registry.put("alerts/a.yaml", "a: 1\n  b: 2\n", "alice", None).await.expect_err("bad indentation");
    assert!(matches!(err, RegistryError::Parse { line: Some(2), .. }), "{err}");
    let err = registry.put("config/a.json", " \n", "alice", None).await.expect_err("empty json");
    assert_eq!(err.to_string(), "document `config/a.json` is not valid json: the document is empty");

    assert_eq!(&*registry.get("config/a.json").expect("live").text, "{\"ok\": true}");
    assert_eq!(&*registry.get("alerts/a.yaml").expect("live").text, "a: 1\n");
    assert_eq!(registry.history("alerts/a.yaml").expect("history").len(), 1);
}

#[tokio::test]
async fn oversized_and_binary_content_is_refused() {
    let dir = TempDir::new("limits");
    let options = RegistryOptions { max_size: 64, max_generated_size: 256, ..RegistryOptions::default() };
    let registry = open_with(&dir, options).await;
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(60));
    let err = registry.put("config/big.json", &big, "alice", None).await.expect_err("too large");
    assert!(matches!(err, RegistryError::TooLarge { size: 69, limit: 64, .. }), "{err}");
    assert_eq!(err.to_string(), "document `config/big.json` is 69 bytes, over the limit of 64 bytes");
    // Generated documents have the larger limit, and their own.
    let report = "x,y\n".repeat(50);
    assert_eq!(registry.put_generated("reports/r.csv", &report).await.expect("generated").version.size, 200);
    let err = registry.put_generated("reports/r.csv", &"x,y\n".repeat(65)).await.expect_err("over generated limit");
    assert!(matches!(err, RegistryError::TooLarge { size: 260, limit: 256, .. }), "{err}");
    assert!(!registry.root().join("config/big.json").exists());

    let err = registry.put("config/nul.json", "{\"a\":\"x\u{0}y\"}", "alice", None).await.expect_err("NUL");
    assert!(matches!(&err, RegistryError::Binary { reason, .. } if reason == "NUL byte at byte offset 7"), "{err}");

    // Binary and oversized files on disk are listed as problems at startup.
    drop(registry);
    write(&dir.root(), "reports/logo.csv", [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]);
    write(&dir.root(), "config/huge.md", "#".repeat(100));
    // Links could point anywhere: they are not followed.
    std::os::unix::fs::symlink("/etc/hostname", dir.root().join("config/link.json")).expect("symlink");
    write(&dir.0, "outside/secret.json", "{}");
    std::os::unix::fs::symlink(dir.0.join("outside"), dir.root().join("security/linked")).expect("dir symlink");
    let options = RegistryOptions { max_size: 64, max_generated_size: 256, ..RegistryOptions::default() };
    let registry = open_with(&dir, options).await;
    let problems = registry.problems();
    let find = |name: &str| problems.iter().find(|p| p.name == name).map(|p| p.errors.join("; "));
    assert_eq!(
        find("reports/logo.csv").as_deref(),
        Some("document `reports/logo.csv` is not text: invalid UTF-8 at byte offset 0")
    );
    assert_eq!(
        find("config/huge.md").as_deref(),
        Some("document `config/huge.md` is 100 bytes, over the limit of 64 bytes")
    );
    assert_eq!(
        find("config/link.json").as_deref(),
        Some("invalid document name `config/link.json`: symbolic links are not followed")
    );
    assert!(matches!(registry.get("reports/logo.csv"), Err(RegistryError::NotFound(_))));
    assert!(matches!(registry.get("security/linked/secret.json"), Err(RegistryError::NotFound(_))));
    let err = registry.put("security/linked/secret.json", "{\"x\": 1}", "alice", None).await.expect_err("through link");
    assert!(err.to_string().contains("`security/linked` is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.0.join("outside/secret.json")).expect("untouched"), "{}");
    let problems = registry.revalidate("security/linked/secret.json").await.expect("revalidate");
    assert!(problems[0].errors[0].contains("`security/linked` is a symbolic link"), "{problems:?}");
    assert_eq!(registry.get("reports/r.csv").expect("kept").version, 1);
}

#[tokio::test]
async fn bad_names_are_refused_with_the_reason() {
    let dir = TempDir::new("names");
    let registry = open(&dir).await;
    let cases = [
        ("../etc/passwd", "`..` components are not allowed"),
        ("../x.json", "`..` components are not allowed"),
        ("config/../../x.json", "`..` components are not allowed"),
        ("/abs.json", "absolute paths are not allowed"),
        ("/etc/passwd", "absolute paths are not allowed"),
        (".hidden.json", "hidden components are not allowed"),
        ("config/.env.yaml", "hidden components are not allowed"),
        (".history/config/x.json/1.json", "hidden components are not allowed"),
        ("./x.json", "`.` components are not allowed"),
        ("", "the name is empty"),
        ("config//x.json", "empty path component"),
        ("config/", "empty path component"),
        ("config\\x.json", "backslashes are not allowed"),
        ("..\\x.json", "backslashes are not allowed"),
        ("config/x\u{7}.json", "control character U+0007"),
        ("config/x\n.json", "control character U+000A"),
        ("config/x.txt", "unsupported extension `.txt`"),
        ("config/x.JSON", "unsupported extension `.JSON`"),
        ("config/x", "no extension"),
        ("config/a.json/b.json", "directory `a.json` must not end with a document extension"),
    ];
    for (name, reason) in cases {
        let err = registry.put(name, "{}", "alice", None).await.expect_err(name);
        match &err {
            RegistryError::InvalidName { name: n, reason: r } => {
                assert_eq!(n, name);
                assert!(r.contains(reason), "{name:?}: {r}");
            }
            other => panic!("{name:?}: expected InvalidName, got {other}"),
        }
        assert!(matches!(registry.get(name), Err(RegistryError::InvalidName { .. })), "{name:?}");
        assert!(matches!(registry.history(name), Err(RegistryError::InvalidName { .. })), "{name:?}");
    }
    let long = format!("config/{}.json", "x".repeat(300));
    assert!(matches!(registry.put(&long, "{}", "a", None).await, Err(RegistryError::InvalidName { .. })));
    assert!(!dir.0.join("x.json").exists() && !dir.0.join("etc").exists());
    assert!(registry.list().is_empty());
    assert!(matches!(registry.put("config/ok.json", "{}", " ", None).await, Err(RegistryError::InvalidAuthor(_))));
}

#[tokio::test]
async fn stale_writes_are_refused_as_conflicts() {
    let dir = TempDir::new("conflict");
    let registry = open(&dir).await;
    let name = "config/flags.json";
    registry.put(name, "{\"v\": 1}", "alice", Some(0)).await.expect("create when new");
    let err = registry.put(name, "{\"v\": 2}", "bob", Some(0)).await.expect_err("already exists");
    assert!(matches!(err, RegistryError::Conflict { expected: 0, actual: 1, .. }), "{err}");
    assert_eq!(err.to_string(), "version conflict on `config/flags.json`: expected version 0, the latest is 1");
    registry.put(name, "{\"v\": 2}", "bob", Some(1)).await.expect("up to date");
    let err = registry.put(name, "{\"v\": 3}", "carol", Some(1)).await.expect_err("stale");
    assert!(matches!(err, RegistryError::Conflict { expected: 1, actual: 2, .. }), "{err}");
    assert_eq!(registry.get(name).expect("live").value.as_deref(), Some(&json!({"v": 2})));
}

#[tokio::test]
async fn concurrent_puts_get_distinct_increasing_versions() {
    let dir = TempDir::new("concurrent");
    let registry = open(&dir).await;
    let name = "config/counter.json";
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.put(name, &format!("{{\"n\": {i}}}"), &format!("w{i}"), None).await })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.expect("task").expect("put").version.version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<u64>>());
    let history: Vec<u64> = registry.history(name).expect("history").iter().map(|v| v.version).collect();
    assert_eq!(history, (1..=16).collect::<Vec<u64>>());
    let live = registry.get(name).expect("live");
    assert_eq!(live.version, 16);
    assert_eq!(std::fs::read_to_string(registry.root().join(name)).expect("file"), &*live.text);
}

#[tokio::test]
async fn rollback_makes_a_new_version_with_the_old_content() {
    let dir = TempDir::new("rollback");
    let registry = open(&dir).await;
    let name = "alerts/thresholds.yaml";
    registry.put(name, "cpu: 80\n", "alice", None).await.expect("v1");
    registry.put(name, "cpu: 95\n", "bob", None).await.expect("v2");
    let change = registry.rollback(name, 1, "carol").await.expect("rollback");
    assert_eq!((change.version.version, change.version.source, change.previous), (3, Source::Rollback, Some(2)));
    let live = registry.get(name).expect("live");
    assert_eq!((&*live.text, live.version, live.author.as_str()), ("cpu: 80\n", 3, "carol"));
    assert_eq!(live.sha256, registry.history(name).expect("history")[0].sha256);
    assert_eq!(std::fs::read_to_string(registry.root().join(name)).expect("file"), "cpu: 80\n");
    assert!(matches!(registry.rollback(name, 9, "carol").await, Err(RegistryError::UnknownVersion { version: 9, .. })));

    let mut events = registry.subscribe();
    let deleted = registry.delete(name, "dave").await.expect("delete");
    assert!(deleted.version.deleted && deleted.version.version == 4);
    assert_eq!(
        events.recv().await.ok(),
        Some(RegistryEvent::Removed { name: name.to_owned(), version: 4, source: Source::Api })
    );
    assert!(!registry.root().join(name).exists());
    assert!(matches!(registry.get(name), Err(RegistryError::NotFound(_))));
    assert!(registry.list().is_empty());
    assert!(matches!(registry.rollback(name, 4, "x").await, Err(RegistryError::DeletedVersion { version: 4, .. })));
    let restored = registry.rollback(name, 2, "erin").await.expect("restore");
    assert_eq!((restored.version.version, restored.previous), (5, None));
    assert_eq!(std::fs::read_to_string(registry.root().join(name)).expect("restored file"), "cpu: 95\n");
    let sources: Vec<(u64, Source, bool)> =
        registry.history(name).expect("history").iter().map(|v| (v.version, v.source, v.deleted)).collect();
    assert_eq!(
        sources,
        [
            (1, Source::Api, false),
            (2, Source::Api, false),
            (3, Source::Rollback, false),
            (4, Source::Api, true),
            (5, Source::Rollback, false)
        ]
    );

    // A rollback to content the current schema refuses is refused.
    registry
        .put("schemas/thresholds.schema.json", r#"{"properties": {"cpu": {"maximum": 90}}}"#, "admin", None)
        .await
        .expect("schema");
    let err = registry.rollback(name, 1, "x").await.map(|c| c.version.version);
    assert_eq!(err.ok(), Some(6), "cpu 80 passes");
    let err = registry.rollback(name, 2, "x").await.expect_err("cpu 95 fails");
    assert!(err.messages()[0].starts_with("/cpu: "), "{err}");
}

#[tokio::test]
async fn schema_changes_must_compile_and_leave_documents_live() {
    let dir = TempDir::new("schemachange");
    let registry = open(&dir).await;
    with_interview_schema(&registry).await;
    let schema = "schemas/interview-types.schema.json";
    let err = registry.put(schema, r#"{"type": 12}"#, "admin", None).await.expect_err("does not compile");
    assert!(matches!(&err, RegistryError::InvalidSchema { name, .. } if name == schema), "{err}");
    let err = registry.put(schema, "{\"type\": ", "admin", None).await.expect_err("not json");
    assert!(matches!(err, RegistryError::Parse { .. }), "{err}");
    assert_eq!(registry.get(schema).expect("old schema live").version, 1);

    let stricter = INTERVIEW_SCHEMA.replace(r#"["general", "special"]"#, r#"["general"]"#);
    registry.put(schema, &stricter, "admin", None).await.expect("stricter schema");
    assert_eq!(registry.get(INTERVIEWS).expect("still live").version, 1);
    let problems = registry.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].kind, problems[0].name.as_str()), (ProblemKind::Stale, INTERVIEWS));
    assert!(problems[0].errors[0].starts_with("/items/1/classification: "), "{problems:?}");
    // The schema applies to later changes.
    assert!(registry.put(INTERVIEWS, &INTERVIEWS_V1.replace("復職", "再"), "alice", None).await.is_err());
    // Relaxing it again clears the problem.
    registry.rollback(schema, 1, "admin").await.expect("relax");
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
}

#[tokio::test]
async fn validators_refuse_what_the_schema_allows() {
    let dir = TempDir::new("validator");
    let registry = open(&dir).await;
    let name = "config/feature-flags.json";
    let validator: Validator = Arc::new(|value: &serde_json::Value| {
        let flags =
            value.get("flags").and_then(|f| f.as_array()).ok_or_else(|| vec!["`flags` must be an array".to_owned()])?;
        let bad: Vec<String> = flags
            .iter()
            .filter(|f| f.get("name").and_then(|n| n.as_str()).is_none_or(str::is_empty))
            .map(|f| format!("flag without a name: {f}"))
            .collect();
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    });
    registry.add_validator(name, validator).expect("valid name");
    registry.put(name, r#"{"flags": [{"name": "beta"}]}"#, "alice", None).await.expect("valid");
    let err = registry.put(name, r#"{"flags": [{"name": ""}]}"#, "alice", None).await.expect_err("refused");
    assert!(
        matches!(&err, RegistryError::Rejected { errors, .. } if errors == &[r#"flag without a name: {"name":""}"#.to_owned()]),
        "{err}"
    );
    let panicking: Validator = Arc::new(|_| panic!("validator bug"));
    registry.add_validator("compliance/list.md", panicking).expect("valid name");
    let err = registry.put("compliance/list.md", "# list\n", "alice", None).await.expect_err("panic is a rejection");
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(registry.get(name).expect("live").version, 1);
    assert_eq!(registry.revalidate(name).await.expect("revalidate"), []);
}

#[tokio::test]
async fn disk_edits_are_picked_up_by_the_watcher() {
    let dir = TempDir::new("watch");
    let registry = open(&dir).await;
    let root = registry.root().to_owned();
    let name = "config/limits.yaml";
    registry.put(name, "max: 3\n", "alice", None).await.expect("v1");
    // Written before the watch starts: picked up when it does.
    write(&root, "config/early.md", "# early\n");
    let mut events = registry.subscribe();
    let _watcher = registry.watch().await.expect("watch");
    wait_for(
        &mut events,
        "the early file",
        |e| matches!(e, RegistryEvent::Changed { name, version: 1, .. } if name == "config/early.md"),
    )
    .await;

    write(&root, name, "max: 4\n");
    let event =
        wait_for(&mut events, "the disk edit", |e| matches!(e, RegistryEvent::Changed { name: n, .. } if n == name))
            .await;
    // Version 2: the registry's own write of version 1 was not taken as a change.
    let RegistryEvent::Changed { version, previous, source, author, .. } = event else { unreachable!() };
    assert_eq!((version, previous, source, author.as_str()), (2, Some(1), Source::Disk, "disk"));
    let live = registry.get(name).expect("live");
    assert_eq!((&*live.text, live.value.as_deref()), ("max: 4\n", Some(&json!({"max": 4}))));

    // Hidden files and editor leftovers are not documents.
    write(&root, "config/.secret.json", "{");
    write(&root, "config/limits.yaml.swp", [0u8, 1, 2]);
    write(&root, "config/4913", "");
    write(&root, "config/limits.yaml~", "max: 1\n");
    // An editor's save: a temporary file renamed over the document.
    write(&root, "config/limits.yaml.tmp", "max: 5\n");
    std::fs::rename(root.join("config/limits.yaml.tmp"), root.join(name)).expect("rename");
    wait_for(
        &mut events,
        "the renamed save",
        |e| matches!(e, RegistryEvent::Changed { name: n, version: 3, .. } if n == name),
    )
    .await;
    assert_eq!(&*registry.get(name).expect("live").text, "max: 5\n");

    // An API change after disk edits continues the numbering; its own file
    // write is not picked up again.
    let change = registry.put(name, "max: 6\n", "bob", None).await.expect("api");
    assert_eq!(change.version.version, 4);

    // New files in new directories, and deletions.
    write(&root, "incidents/2024/INC-1.md", "# INC-1\n");
    wait_for(
        &mut events,
        "a file in a new directory",
        |e| matches!(e, RegistryEvent::Changed { name, version: 1, .. } if name == "incidents/2024/INC-1.md"),
    )
    .await;
    std::fs::remove_file(root.join("config/early.md")).expect("remove");
    let removed = wait_for(&mut events, "the removal", |e| matches!(e, RegistryEvent::Removed { .. })).await;
    assert_eq!(removed, RegistryEvent::Removed { name: "config/early.md".into(), version: 2, source: Source::Disk });
    assert!(matches!(registry.get("config/early.md"), Err(RegistryError::NotFound(_))));
    std::fs::remove_dir_all(root.join("incidents/2024")).expect("remove dir");
    let removed = wait_for(&mut events, "the directory removal", |e| matches!(e, RegistryEvent::Removed { .. })).await;
    let expected = RegistryEvent::Removed { name: "incidents/2024/INC-1.md".into(), version: 2, source: Source::Disk };
    assert_eq!(removed, expected);
    let names: Vec<String> = registry.list().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["config/limits.yaml"]);
    let history = registry.history(name).expect("history");
    let sources: Vec<(u64, &str, Source)> = history.iter().map(|v| (v.version, v.author.as_str(), v.source)).collect();
    assert_eq!(
        sources,
        [(1, "alice", Source::Api), (2, "disk", Source::Disk), (3, "disk", Source::Disk), (4, "bob", Source::Api)]
    );
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
}

#[tokio::test]
async fn invalid_disk_edits_are_rejected_until_fixed() {
    let dir = TempDir::new("watchbad");
    let registry = open(&dir).await;
    with_interview_schema(&registry).await;
    let root = registry.root().to_owned();
    let mut events = registry.subscribe();
    let _watcher = registry.watch().await.expect("watch");

    let bad = INTERVIEWS_V1.replace(r#""classification": "general""#, r#""classification": "secret""#);
    write(&root, INTERVIEWS, &bad);
    let event = wait_for(&mut events, "the rejection", |e| {
        matches!(e, RegistryEvent::Rejected { name, errors } if name == INTERVIEWS && errors.iter().any(|m| m.starts_with("/items/0/classification: ")))
    })
    .await;
    let RegistryEvent::Rejected { errors, .. } = event else { unreachable!() };
    let problems = registry.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].name.as_str(), problems[0].kind, problems[0].live_version),
        (INTERVIEWS, ProblemKind::Rejected, Some(1))
    );
    assert_eq!(problems[0].errors, errors);
    assert_eq!(&*registry.get(INTERVIEWS).expect("last good").text, INTERVIEWS_V1);

    // A malformed file elsewhere does not stop the watcher.
    write(&root, "alerts/broken.json", "{ nope");
    wait_for(
        &mut events,
        "the broken file",
        |e| matches!(e, RegistryEvent::Rejected { name, .. } if name == "alerts/broken.json"),
    )
    .await;
    write(&root, "security/binary.md", [0xff, 0xfe, 0x00]);
    let event = wait_for(
        &mut events,
        "the binary file",
        |e| matches!(e, RegistryEvent::Rejected { name, .. } if name == "security/binary.md"),
    )
    .await;
    assert_eq!(
        event,
        RegistryEvent::Rejected {
            name: "security/binary.md".into(),
            errors: vec!["document `security/binary.md` is not text: invalid UTF-8 at byte offset 0".into()]
        }
    );

    let fixed =
        interviews_with(json!({"id": "mental_health", "name": "メンタルヘルス面談", "classification": "special"}));
    write(&root, INTERVIEWS, &fixed);
    wait_for(
        &mut events,
        "the fix",
        |e| matches!(e, RegistryEvent::Changed { name, version: 2, .. } if name == INTERVIEWS),
    )
    .await;
    assert_eq!(&*registry.get(INTERVIEWS).expect("fixed").text, fixed);
    let names: Vec<String> = registry.problems().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["alerts/broken.json", "security/binary.md"]);

    // Deleting a refused file clears its problem.
    std::fs::remove_file(root.join("alerts/broken.json")).expect("remove");
    std::fs::remove_file(root.join("security/binary.md")).expect("remove");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !registry.problems().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "problems not cleared: {:?}", registry.problems());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reopening_keeps_versions_and_reconciles_the_disk() {
    let dir = TempDir::new("reopen");
    let root = dir.root();
    {
        let registry = open(&dir).await;
        with_interview_schema(&registry).await;
        registry.put("config/limits.json", "{\"max\": 1}", "alice", None).await.expect("v1");
        registry.put("config/limits.json", "{\"max\": 2}", "bob", None).await.expect("v2");
        registry.put("compliance/old.md", "# old\n", "alice", None).await.expect("v1");
        assert!(root.join(".history/config/limits.json/log.jsonl").is_file());
        assert!(root.join(".history/config/limits.json/2.json").is_file());
    }
    // While the server is down: an edit, an invalid edit, a deletion, a new file.
    write(&root, "config/limits.json", "{\"max\": 3}");
    write(&root, INTERVIEWS, "{\"items\": [{\"id\": \"x\"}]}");
    std::fs::remove_file(root.join("compliance/old.md")).expect("remove");
    write(&root, "experiments/new.yaml", "arms: [a, b]\n");
    write(&root, "experiments/.swap.yaml.swp", "ignored");

    let registry = open(&dir).await;
    let limits = registry.get("config/limits.json").expect("limits");
    assert_eq!((limits.version, limits.source, limits.value.as_deref()), (3, Source::Disk, Some(&json!({"max": 3}))));
    let authors: Vec<String> =
        registry.history("config/limits.json").expect("history").into_iter().map(|v| v.author).collect();
    assert_eq!(authors, ["alice", "bob", "disk"]);
    assert!(registry.diff("config/limits.json", 1, 3).await.expect("diff").contains("+{\"max\": 3}"));

    let interviews = registry.get(INTERVIEWS).expect("last good version");
    assert_eq!((interviews.version, &*interviews.text), (1, INTERVIEWS_V1));
    let problems = registry.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].name.as_str(), problems[0].kind), (INTERVIEWS, ProblemKind::Rejected));
    assert!(problems[0].errors.iter().any(|e| e.starts_with("/items/0: ") && e.contains("name")), "{problems:?}");

    assert!(matches!(registry.get("compliance/old.md"), Err(RegistryError::NotFound(_))));
    let old = registry.history("compliance/old.md").expect("history kept");
    assert_eq!(
        old.iter().map(|v| (v.version, v.deleted, v.source)).collect::<Vec<_>>(),
        [(1, false, Source::Api), (2, true, Source::Disk)]
    );
    registry.rollback("compliance/old.md", 1, "alice").await.expect("restore");
    assert_eq!(std::fs::read_to_string(root.join("compliance/old.md")).expect("restored"), "# old\n");
    assert_eq!(registry.get("experiments/new.yaml").expect("new").version, 1);

    // An API put of the live content puts the good file back on disk.
    let change = registry.put(INTERVIEWS, INTERVIEWS_V1, "alice", None).await.expect("restore file");
    assert!(!change.recorded);
    assert_eq!(std::fs::read_to_string(root.join(INTERVIEWS)).expect("file"), INTERVIEWS_V1);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    drop(registry);

    // A third start changes nothing.
    let registry = open(&dir).await;
    assert_eq!(registry.get("config/limits.json").expect("limits").version, 3);
    assert_eq!(registry.get("compliance/old.md").expect("restored").version, 3);
    assert_eq!(registry.history(INTERVIEWS).expect("history").len(), 1);
    assert!(registry.problems().is_empty());
}
