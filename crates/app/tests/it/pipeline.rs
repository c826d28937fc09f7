//! The full pipeline, in process: every layer as the app wires it.

use std::sync::Arc;
use std::time::Duration;

use plexus::config::Config;
use plexus::wiring::{self, Ports};
use plexus_core::ToolError;
use plexus_core::context::Credential;
use plexus_core::pipeline::{ListKind, Operation, Pipeline, Reply};
use plexus_core::ports::AuditSink;
use plexus_testkit::{BrokenAudit, CountingLimiter, RecordingAudit, call, tool};
use serde_json::json;
use tower::ServiceExt;

const CONFIG: &str = r#"
[modules]
enabled = ["system", "conformance"]
[server]
call_timeout_ms = 50
[auth]
local_roles = ["reader"]
[roles.reader]
tools = ["echo", "test_*"]
resources = ["test://static-*"]
"#;

fn build(audit: Arc<dyn AuditSink>, tweak: impl FnOnce(&mut Ports)) -> Pipeline {
    build_with(CONFIG, audit, tweak)
}

fn build_with(text: &str, audit: Arc<dyn AuditSink>, tweak: impl FnOnce(&mut Ports)) -> Pipeline {
    let config = Config::parse(text, &std::collections::HashMap::new()).unwrap();
    let registry = wiring::registry(&config, wiring::modules(&config, &wiring::ModuleDeps::offline())).unwrap();
    let mut ports = Ports::from_config(&config, false, audit);
    tweak(&mut ports);
    wiring::pipeline(&config, &registry, &ports)
}

async fn run(p: &Pipeline, credential: Credential, op: Operation) -> Result<Reply, ToolError> {
    p.clone().oneshot(call(credential, op)).await
}

#[tokio::test]
async fn a_denied_tool_looks_exactly_like_a_missing_one_but_is_audited_as_denied() {
    let audit = RecordingAudit::default();
    let p = build(Arc::new(audit.clone()), |_| {});
    let denied = run(&p, Credential::Local, tool("whoami", json!({}))).await.unwrap_err();
    // `test_*` is granted, so this one passes the policy and is really missing
    let missing = run(&p, Credential::Local, tool("test_no_such_tool", json!({}))).await.unwrap_err();
    assert_eq!(denied.code(), missing.code());
    assert_eq!(denied.to_string(), "tool not found: whoami");
    assert_eq!(missing.to_string(), "tool not found: test_no_such_tool");
    assert_eq!(audit.last_outcome("whoami").as_deref(), Some("denied"));
    assert_eq!(audit.last_outcome("test_no_such_tool").as_deref(), Some("not_found"));
    // a tool nobody granted is denied whether or not it exists
    run(&p, Credential::Local, tool("no_such_tool", json!({}))).await.unwrap_err();
    assert_eq!(audit.last_outcome("no_such_tool").as_deref(), Some("denied"));
}

#[tokio::test]
async fn names_a_client_makes_up_never_become_series_of_their_own() {
    let mut telemetry = None;
    let p = build(Arc::new(RecordingAudit::default()), |ports| telemetry = Some(Arc::clone(&ports.telemetry)));
    let telemetry = telemetry.unwrap();
    run(&p, Credential::Local, tool("echo", json!({"text": "x"}))).await.unwrap();
    for name in ["<script>alert(1)</script>", "whoami", "test_no_such_tool"] {
        run(&p, Credential::Local, tool(name, json!({}))).await.unwrap_err();
    }
    // schema-invalid arguments reached a real tool: they count under it
    run(&p, Credential::Local, tool("echo", json!({"text": 1}))).await.unwrap_err();
    let series: Vec<_> = telemetry
        .snapshot()
        .into_iter()
        .map(|(name, s)| {
            (
                name,
                s.calls.load(std::sync::atomic::Ordering::Relaxed),
                s.errors.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    assert_eq!(series, [("(refused)".to_owned(), 3, 3), ("echo".to_owned(), 2, 1)]);
}

#[tokio::test]
async fn listings_show_only_what_the_role_may_use() {
    let p = build(Arc::new(RecordingAudit::default()), |_| {});
    let Reply::Tools(page) =
        run(&p, Credential::Local, Operation::List { kind: ListKind::Tools, cursor: None }).await.unwrap()
    else {
        panic!("expected tools")
    };
    let names: Vec<&str> = page.items.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"test_simple_text"), "{names:?}");
    assert!(!names.contains(&"whoami") && !names.contains(&"json_schema_2020_12_tool"), "{names:?}");
    let Reply::Resources(page) =
        run(&p, Credential::Local, Operation::List { kind: ListKind::Resources, cursor: None }).await.unwrap()
    else {
        panic!("expected resources")
    };
    let uris: Vec<&str> = page.items.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["test://static-text", "test://static-binary"]);
}

#[tokio::test]
async fn invalid_arguments_are_refused_before_the_module_runs() {
    let audit = RecordingAudit::default();
    let p = build(Arc::new(audit.clone()), |_| {});
    let err = run(&p, Credential::Local, tool("echo", json!({"text": 5}))).await.unwrap_err();
    assert!(matches!(&err, ToolError::InvalidArguments(m) if m.contains("/text") && m.contains("string")), "{err}");
    let err = run(&p, Credential::Local, tool("echo", json!({"text": "a", "extra": 1}))).await.unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
    let err = run(&p, Credential::Local, tool("echo", json!([1, 2]))).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid arguments: arguments must be a JSON object");
    assert_eq!(audit.last_outcome("echo").as_deref(), Some("invalid_arguments"));
    // a valid call goes through, with Japanese text intact
    let Reply::Tool(out) = run(&p, Credential::Local, tool("echo", json!({"text": "東京の天気"}))).await.unwrap()
    else {
        panic!("expected a tool result")
    };
    assert_eq!(out.content[0].as_text(), Some("東京の天気"));
}

#[tokio::test]
async fn unknown_callers_are_refused_and_audited() {
    let audit = RecordingAudit::default();
    let p = build(Arc::new(audit.clone()), |_| {});
    let err = run(&p, Credential::None, tool("echo", json!({"text": "x"}))).await.unwrap_err();
    assert!(matches!(err, ToolError::Unauthenticated { .. }), "{err:?}");
    let err = run(&p, Credential::ApiKey("pk_nope".into()), tool("echo", json!({"text": "x"}))).await.unwrap_err();
    assert!(matches!(err, ToolError::Unauthenticated { ref reason } if reason.contains("unknown API key")), "{err:?}");
    let events = audit.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.principal == "unauthenticated" && e.outcome == "unauthenticated"));
    // the audit keeps a digest of the arguments, never the arguments
    assert!(events.iter().all(|e| e.args_digest.len() == 64 && !e.args_digest.contains('x')));
}

#[tokio::test]
async fn calls_past_their_deadline_time_out() {
    let audit = RecordingAudit::default();
    let p = build(Arc::new(audit.clone()), |_| {});
    // test_reconnection sleeps 100 ms; the configured timeout is 50 ms
    let started = std::time::Instant::now();
    let err = run(&p, Credential::Local, tool("test_reconnection", json!({}))).await.unwrap_err();
    assert!(matches!(err, ToolError::Timeout(d) if d <= Duration::from_millis(50)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(100), "the timeout did not cut the call short");
    assert_eq!(audit.last_outcome("test_reconnection").as_deref(), Some("timeout"));
}

#[tokio::test]
async fn no_result_leaves_the_server_unaudited() {
    let p = build(Arc::new(BrokenAudit), |_| {});
    let err = run(&p, Credential::Local, tool("echo", json!({"text": "x"}))).await.unwrap_err();
    assert_eq!(err.to_string(), "audit log unavailable");
}

#[tokio::test]
async fn rate_limits_refuse_with_a_retry_time() {
    let audit = RecordingAudit::default();
    let p = build(Arc::new(audit.clone()), |ports| ports.limiter = Arc::new(CountingLimiter::new(2)));
    for _ in 0..2 {
        run(&p, Credential::Local, tool("echo", json!({"text": "x"}))).await.unwrap();
    }
    let err = run(&p, Credential::Local, tool("echo", json!({"text": "x"}))).await.unwrap_err();
    assert_eq!(err.to_string(), "rate limit exceeded, retry after 250 ms");
    assert_eq!(audit.last_outcome("echo").as_deref(), Some("rate_limited"));
}

#[tokio::test]
async fn listings_page_through_every_item_in_a_stable_order() {
    let config = "[modules]\nenabled = [\"system\", \"conformance\"]\n[server]\npage_size = 4\n";
    let p = build_with(config, Arc::new(RecordingAudit::default()), |_| {});
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (mut names, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let op = Operation::List { kind: ListKind::Tools, cursor: cursor.take() };
            let Reply::Tools(page) = run(&p, Credential::Local, op).await.unwrap() else { panic!("expected tools") };
            assert!(page.items.len() <= 4);
            names.extend(page.items.iter().map(|t| t.name.clone()));
            pages += 1;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert!(pages > 2, "{pages}");
        runs.push(names);
    }
    assert_eq!(runs[0], runs[1]);
    let mut unique = runs[0].clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), runs[0].len(), "a tool appeared twice");
    assert_eq!(runs[0][..2], ["echo".to_string(), "whoami".to_string()]);
    assert!(runs[0].iter().any(|n| n == "test_input_required_result_multi_round"));
    let err = run(&p, Credential::Local, Operation::List { kind: ListKind::Tools, cursor: Some("o999".into()) })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid request: invalid cursor `o999`");
}

/// `[storage] durability` reaches the store the app opens, and a
/// PostgreSQL URL with `os` is refused at start with the reason.
#[tokio::test]
async fn the_storage_durability_setting_reaches_the_store() {
    let dir = std::env::temp_dir().join(format!("plexus-app-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let no_env: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let text = format!("[data]\ndir = {:?}\n[storage]\ndurability = \"os\"\n", dir.display().to_string());
    let config = Config::parse(&text, &no_env).unwrap();
    let store = wiring::open_store(&config).await.unwrap();
    assert_eq!(store.commit(), plexus_store::Commit::Os);
    store.close().await;
    let default = Config::parse(&format!("[data]\ndir = {:?}\n", dir.display().to_string()), &no_env);
    let store = wiring::open_store(&default.unwrap()).await.unwrap();
    assert_eq!(store.commit(), plexus_store::Commit::Fsync);
    store.close().await;
    let text = format!("{text}url = \"postgres://postgres@127.0.0.1:5432/test\"\n");
    let e = wiring::open_store(&Config::parse(&text, &no_env).unwrap()).await.unwrap_err();
    assert!(format!("{e:#}").contains("`os` applies to SQLite"), "{e:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
