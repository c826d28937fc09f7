//! incidents tests: the lifecycle rules, the stored documents, the
//! postmortem draft, and notifications to real local webhook receivers
//! (axum on 127.0.0.1) through the server crate's real outbound client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use plexus_core::http::{HttpClient, RetryPolicy};
use plexus_ops::incidents::{
    DeadLetter, DeliveryResult, Event, EventKind, Incident, IncidentBook, IncidentError, NewIncident, Notifier,
    NotifyOptions, Severity, Status, Target, Update, postmortem_markdown,
};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

// ---------------------------------------------------------------------------
// Lifecycle.

const T0: OffsetDateTime = datetime!(2026-11-21 09:00:00 +09:00);

fn at(minutes: i64) -> OffsetDateTime {
    T0 + time::Duration::minutes(minutes)
}

fn declare(title: &str) -> NewIncident {
    NewIncident {
        severity: Severity::Sev1,
        title: title.to_owned(),
        affected: vec!["ehr".into(), "patient-portal".into()],
        teams: vec!["platform".into(), "病棟システム".into()],
        author: "sato".into(),
        note: "ログインエラーが多発 / login errors spiking".into(),
    }
}

/// A book with one incident, INC-0001, moved through `path`.
fn book_at(path: &[Status]) -> IncidentBook {
    let mut book = IncidentBook::new();
    book.create(declare("電子カルテにログインできない"), T0).expect("a valid declaration");
    for (n, s) in path.iter().enumerate() {
        book.update("INC-0001", Update::status("sato", *s, ""), at(n as i64 + 1)).expect("an allowed path");
    }
    book
}

#[test]
fn a_full_run_builds_the_timeline() {
    let mut book = IncidentBook::new();
    let i = book.create(declare("電子カルテにログインできない"), T0).unwrap();
    assert_eq!((i.id.as_str(), i.status, i.resolved_at), ("INC-0001", Status::Investigating, None));
    let steps = [
        (Some(Status::Identified), "DB の接続プールが枯渇 / connection pool exhausted", 10),
        (None, "pool size raised from 20 to 50", 20),
        (Some(Status::Monitoring), "エラー率は正常に戻った", 30),
        (Some(Status::Resolved), "", 90),
    ];
    for (status, note, minute) in steps {
        let update = Update { status, note: note.to_owned(), author: "tanaka".into() };
        book.update("INC-0001", update, at(minute)).unwrap();
    }
    let i = book.get("INC-0001").unwrap();
    let timeline: Vec<(OffsetDateTime, &str, Status, &str)> =
        i.timeline.iter().map(|e| (e.at, e.author.as_str(), e.status, e.note.as_str())).collect();
    assert_eq!(
        timeline,
        vec![
            (T0, "sato", Status::Investigating, "ログインエラーが多発 / login errors spiking"),
            (at(10), "tanaka", Status::Identified, "DB の接続プールが枯渇 / connection pool exhausted"),
            (at(20), "tanaka", Status::Identified, "pool size raised from 20 to 50"),
            (at(30), "tanaka", Status::Monitoring, "エラー率は正常に戻った"),
            (at(90), "tanaka", Status::Resolved, ""),
        ]
    );
    assert_eq!((i.status, i.created_at, i.updated_at, i.resolved_at), (Status::Resolved, T0, at(90), Some(at(90))));
    assert_eq!(i.duration(), Some(time::Duration::minutes(90)));
    assert_eq!(i.latest_note().map(|e| e.note.as_str()), Some("エラー率は正常に戻った"));

    // After resolution: notes only, resolvedAt unchanged.
    book.update("INC-0001", Update::note("sato", "postmortem: https://wiki/pm/1"), at(200)).unwrap();
    let i = book.get("INC-0001").unwrap();
    assert_eq!((i.status, i.resolved_at, i.timeline.len()), (Status::Resolved, Some(at(90)), 6));
}

#[test]
fn skipping_ahead_and_falling_back_from_monitoring_are_allowed() {
    for path in [
        vec![Status::Monitoring],
        vec![Status::Resolved],
        vec![Status::Identified, Status::Resolved],
        vec![Status::Monitoring, Status::Investigating, Status::Identified, Status::Monitoring, Status::Resolved],
        vec![Status::Identified, Status::Monitoring, Status::Identified],
    ] {
        let book = book_at(&path);
        assert_eq!(book.get("INC-0001").map(|i| i.status), path.last().copied(), "{path:?}");
    }
    // Regression clears nothing that was set: resolvedAt is only set on resolution.
    let book = book_at(&[Status::Monitoring, Status::Investigating]);
    assert_eq!(book.get("INC-0001").and_then(|i| i.resolved_at), None);
}

/// `update` applied to INC-0001 after `path` fails with `expect` and
/// changes nothing.
fn check_refused(path: &[Status], update: Update, expect: &str) {
    let mut book = book_at(path);
    let before = book.get("INC-0001").cloned();
    let err = book.update("INC-0001", update, at(100)).expect_err("refused");
    assert_eq!(err.to_string(), expect, "after {path:?}");
    assert_eq!(book.get("INC-0001").cloned(), before, "unchanged after {path:?}");
}

#[test]
fn invalid_updates_are_refused_precisely_and_change_nothing() {
    use Status::*;
    let closed = "a resolved incident takes notes only; open a new incident if it recurs";
    let back = "only monitoring may go back (to investigating or identified)";
    let cases: Vec<(&[Status], Update, String)> = vec![
        (
            &[Resolved],
            Update::status("a", Investigating, "again"),
            format!("cannot move INC-0001 from resolved to investigating: {closed}"),
        ),
        (
            &[Resolved],
            Update::status("a", Monitoring, ""),
            format!("cannot move INC-0001 from resolved to monitoring: {closed}"),
        ),
        (
            &[Identified, Resolved],
            Update::status("a", Identified, ""),
            format!("cannot move INC-0001 from resolved to identified: {closed}"),
        ),
        (
            &[Identified],
            Update::status("a", Investigating, ""),
            format!("cannot move INC-0001 from identified to investigating: {back}"),
        ),
        (&[], Update::note("a", "   "), "an update needs a new status or a note".into()),
        (&[Monitoring], Update::status("a", Monitoring, ""), "an update needs a new status or a note".into()),
        (&[], Update::note("", "x"), "the author is empty".into()),
        (&[], Update::note("a\nb", "x"), "the author must be one line".into()),
        (&[], Update::note("a", "ノ".repeat(10_001)), "note is 10001 characters long, over the limit of 10000".into()),
    ];
    for (path, update, expect) in cases {
        check_refused(path, update, &expect);
    }
    let mut book = book_at(&[]);
    let err = book.update("INC-0099", Update::note("a", "x"), at(1)).unwrap_err();
    assert_eq!(err.to_string(), "no incident `INC-0099`");
    let err = book.update("nonsense", Update::note("a", "x"), at(1)).unwrap_err();
    assert_eq!(err.to_string(), "no incident `nonsense`");
}

#[test]
fn bad_declarations_are_refused_precisely() {
    let with = |f: &dyn Fn(&mut NewIncident)| {
        let mut n = declare("title");
        f(&mut n);
        n
    };
    let cases: Vec<(NewIncident, &str)> = vec![
        (with(&|n| n.title = "  ".into()), "the title is empty"),
        (with(&|n| n.title = "one\ntwo".into()), "the title must be one line"),
        (with(&|n| n.title = "障".repeat(201)), "title is 201 characters long, over the limit of 200"),
        (with(&|n| n.teams.clear()), "an incident needs at least one team"),
        (with(&|n| n.teams = vec!["ok".into(), " ".into()]), "teams has an empty or multi-line entry"),
        (with(&|n| n.affected = vec!["x".repeat(101)]), "affected is 101 characters long, over the limit of 100"),
        (
            with(&|n| n.affected = (0..51).map(|i| i.to_string()).collect()),
            "affected has 51 entries, over the limit of 50",
        ),
        (with(&|n| n.author = String::new()), "the author is empty"),
        (with(&|n| n.note = "x".repeat(10_001)), "note is 10001 characters long, over the limit of 10000"),
    ];
    let mut book = IncidentBook::new();
    for (new, expect) in cases {
        let err = book.create(new, T0).unwrap_err();
        assert_eq!(err.to_string(), expect);
    }
    assert!(book.is_empty());
    assert_eq!(book.next_id(), "INC-0001", "refused declarations use no id");

    // 200 Japanese characters (600 bytes) is within the limit; lists are
    // trimmed and deduplicated.
    let i = book
        .create(
            with(&|n| {
                n.title = "障".repeat(200);
                n.teams = vec![" platform ".into(), "platform".into(), "病棟".into()];
            }),
            T0,
        )
        .unwrap();
    assert_eq!(i.teams, vec!["platform", "病棟"]);
}

#[test]
fn severities_read_both_spellings() {
    for (text, sev) in [
        ("sev1", Severity::Sev1),
        ("SEV-2", Severity::Sev2),
        ("Sev 3", Severity::Sev3),
        ("critical", Severity::Sev1),
        ("High", Severity::Sev2),
        ("medium", Severity::Sev3),
        (" low ", Severity::Sev4),
    ] {
        assert_eq!(text.parse::<Severity>().unwrap(), sev, "{text}");
    }
    let err = "sev5".parse::<Severity>().unwrap_err();
    assert!(matches!(err, IncidentError::UnknownSeverity(_)));
    assert_eq!(
        err.to_string(),
        "unknown severity `sev5`: expected sev1, sev2, sev3, sev4 or critical, high, medium, low"
    );
    assert_eq!("RESOLVED".parse::<Status>().unwrap(), Status::Resolved);
    assert_eq!(
        "closed".parse::<Status>().unwrap_err().to_string(),
        "unknown status `closed`: expected investigating, identified, monitoring or resolved"
    );
    // The stored form is sev1..sev4; documents written with words read back.
    assert_eq!(serde_json::to_value(Severity::Sev2).unwrap(), "sev2");
    assert_eq!(serde_json::from_value::<Severity>("critical".into()).unwrap(), Severity::Sev1);
}

#[test]
fn japanese_round_trips_through_the_document() {
    let mut book = book_at(&[]);
    book.update("INC-0001", Update::status("佐藤", Status::Identified, "原因：接続プール枯渇｜再起動で復旧 🚑"), at(5))
        .unwrap();
    let i = book.get("INC-0001").unwrap();
    let json = i.to_json();
    assert!(json.contains("電子カルテにログインできない"), "stored unescaped: {json}");
    assert!(json.contains("\"createdAt\": \"2026-11-21T09:00:00+09:00\""), "{json}");
    assert_eq!(&Incident::from_json(&json).unwrap(), i);
    assert_eq!(i.document_path(), "incidents/INC-0001.json");
}

#[test]
fn outputs_have_json_schemas() {
    let schema = serde_json::to_value(schemars::schema_for!(Incident)).unwrap();
    assert_eq!(schema["properties"]["createdAt"]["type"], "string");
    assert_eq!(schema["properties"]["severity"]["$ref"], "#/$defs/Severity");
    assert_eq!(schema["$defs"]["Severity"]["enum"], serde_json::json!(["sev1", "sev2", "sev3", "sev4"]));
    let stats = serde_json::to_value(schemars::schema_for!(plexus_ops::incidents::DeliveryStats)).unwrap();
    assert!(stats["properties"]["deadLettered"].is_object(), "{stats}");
}

#[test]
fn rebuilding_from_documents_keeps_ids_monotonic() {
    let mut book = IncidentBook::new();
    for n in 0..3 {
        book.create(declare(&format!("incident {n}")), at(n)).unwrap();
    }
    book.update("INC-0002", Update::status("a", Status::Resolved, "done"), at(10)).unwrap();
    // INC-0002's document is gone (deleted, say); INC-0003 comes first.
    let docs: Vec<String> = ["INC-0003", "INC-0001"].iter().map(|id| book.get(id).unwrap().to_json()).collect();
    let mut rebuilt = IncidentBook::from_documents(docs.iter().map(String::as_str)).unwrap();
    assert_eq!(rebuilt.len(), 2);
    assert_eq!(rebuilt.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["INC-0001", "INC-0003"]);
    assert_eq!(rebuilt.next_id(), "INC-0004");
    assert_eq!(rebuilt.create(declare("next"), at(20)).unwrap().id, "INC-0004");
    assert_eq!(rebuilt.open().count(), 3);

    // A book rebuilt with the resolved one back still counts it closed.
    let all: Vec<String> = book.iter().map(Incident::to_json).collect();
    let rebuilt = IncidentBook::from_documents(all.iter().map(String::as_str)).unwrap();
    assert_eq!(rebuilt.open().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["INC-0001", "INC-0003"]);
    assert_eq!(rebuilt.get("INC-0002").map(|i| i.status), Some(Status::Resolved));

    // Past 9999 the number just grows.
    let mut big: Value = serde_json::from_str(&docs[0]).unwrap();
    big["id"] = "INC-12345".into();
    let rebuilt = IncidentBook::from_documents([big.to_string().as_str()]).unwrap();
    assert_eq!(rebuilt.next_id(), "INC-12346");
}

#[test]
fn bad_documents_are_refused() {
    let book = book_at(&[Status::Resolved]);
    let good = book.get("INC-0001").unwrap().to_json();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&good).unwrap();
        f(&mut v);
        v.to_string()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![good.clone(), good.clone()], "incident INC-0001 appears in two documents"),
        (vec![good.clone(), "{".into()], "incident document 1 is not valid JSON for an incident"),
        (
            vec![edit(&|v| v["id"] = "INC-1".into())],
            "`INC-1` is not an incident id: expected INC- and digits, e.g. INC-0001",
        ),
        (
            vec![edit(&|v| v["status"] = "monitoring".into())],
            "incident document INC-0001 is inconsistent: the status is not the last timeline entry's",
        ),
        (
            vec![edit(&|v| v["resolvedAt"] = Value::Null)],
            "incident document INC-0001 is inconsistent: resolvedAt is set exactly when the status is resolved",
        ),
        (
            vec![edit(&|v| v["timeline"] = serde_json::json!([]))],
            "incident document INC-0001 is inconsistent: the timeline is empty",
        ),
    ];
    for (docs, expect) in cases {
        let err = IncidentBook::from_documents(docs.iter().map(String::as_str)).unwrap_err();
        assert_eq!(err.to_string(), expect);
    }
}

#[test]
fn a_clock_that_steps_back_keeps_the_timeline_ordered() {
    let mut book = book_at(&[Status::Identified]);
    book.update("INC-0001", Update::note("a", "late"), T0 - time::Duration::minutes(5)).unwrap();
    let i = book.get("INC-0001").unwrap();
    assert!(i.timeline.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(i.updated_at, at(1));
}

#[test]
fn the_postmortem_draft_has_the_facts_and_the_blank_sections() {
    let mut book = book_at(&[]);
    book.update(
        "INC-0001",
        Update::status("田中", Status::Identified, "接続プール枯渇 | pool exhausted\n2 行目"),
        at(15),
    )
    .unwrap();
    book.update("INC-0001", Update::status("tanaka", Status::Monitoring, "pool raised to 50"), at(45)).unwrap();
    let i = book
        .update("INC-0001", Update::status("tanaka", Status::Resolved, "error rate normal for 45 min"), at(90))
        .unwrap();
    let md = postmortem_markdown(i);
    for expected in [
        "# Postmortem / ポストモーテム: INC-0001 — 電子カルテにログインできない",
        "| Severity / 重大度 | SEV1 (critical) |",
        "| Duration / 所要時間 | 1h 30m |",
        "| Started / 発生 | 2026-11-21T09:00:00+09:00 |",
        "| Resolved / 解決 | 2026-11-21T10:30:00+09:00 |",
        "| Affected systems / 影響システム | ehr, patient-portal |",
        "| Teams / 対応チーム | platform, 病棟システム |",
        "## Timeline / タイムライン",
        "| 2026-11-21T09:00:00+09:00 | investigating (declared / 宣言) | sato | ログインエラーが多発 / login errors spiking |",
        "| 2026-11-21T09:15:00+09:00 | investigating → identified | 田中 | 接続プール枯渇 \\| pool exhausted<br>2 行目 |",
        "| 2026-11-21T09:45:00+09:00 | identified → monitoring | tanaka | pool raised to 50 |",
        "| 2026-11-21T10:30:00+09:00 | monitoring → resolved | tanaka | error rate normal for 45 min |",
        "## Impact / 影響",
        "## Root cause / 根本原因",
        "## What went well / うまくいったこと",
        "## What went poorly / うまくいかなかったこと",
        "## Action items / アクションアイテム",
        "blameless",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in:\n{md}");
    }
    let open = book_at(&[Status::Identified]);
    assert!(postmortem_markdown(open.get("INC-0001").unwrap()).contains("| Duration / 所要時間 | ongoing / 対応中 |"));
}

#[test]
fn events_name_what_happened() {
    let mut book = book_at(&[Status::Monitoring]);
    let i = book.get("INC-0001").unwrap();
    assert_eq!(Event::created(i, at(5)).kind, EventKind::Created);
    assert_eq!(Event::updated(i, at(5)).kind, EventKind::Updated);
    let i = book.update("INC-0001", Update::status("a", Status::Resolved, ""), at(6)).unwrap();
    assert_eq!(Event::updated(i, at(6)).kind, EventKind::Resolved);
    let i = book.update("INC-0001", Update::note("a", "postmortem scheduled"), at(7)).unwrap();
    assert_eq!(Event::updated(i, at(7)).kind, EventKind::Updated);
}

// ---------------------------------------------------------------------------
// Notifications, against real receivers.

const SLACK_SECRET: &str = "XoXoSeCrEtT0KeN4242";
const HEADER_SECRET: &str = "Bearer sk-live-HeaderSecret-777";

fn http() -> Arc<dyn HttpClient> {
    Arc::new(plexus_server::outbound::ReqwestClient::new().expect("an outbound client"))
}

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy { attempts, base: Duration::from_millis(10), max_wait: Duration::from_millis(50) }
}

/// A fresh dead-letter path for one test.
fn dead_letter_path(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("incidents-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("dead-letters.jsonl")
}

fn options(test: &str, attempts: u32, timeout: Duration) -> NotifyOptions {
    NotifyOptions { retry: fast(attempts), timeout, dead_letter_path: dead_letter_path(test) }
}

async fn dead_letters(options: &NotifyOptions) -> (String, Vec<DeadLetter>) {
    let text = tokio::fs::read_to_string(&options.dead_letter_path).await.unwrap_or_default();
    let letters = text.lines().map(|l| serde_json::from_str(l).expect("a dead-letter record")).collect();
    (text, letters)
}

/// How a receiver answers.
#[derive(Clone, Copy)]
struct Script {
    /// Requests answered with `fail` (or hung on) before the first 200.
    fail_first: usize,
    fail: u16,
    hang: Option<Duration>,
    /// Echo the request's path and authorization header in failures.
    echo: bool,
}

impl Script {
    fn fails(n: usize, status: u16) -> Self {
        Self { fail_first: n, fail: status, hang: None, echo: false }
    }
}

#[derive(Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct Receiver {
    script: Script,
    hits: Arc<parking_lot::Mutex<Vec<Received>>>,
}

async fn answer(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let echo = format!("{} {:?}", uri.path(), headers.get("authorization"));
    let n = {
        let mut hits = r.hits.lock();
        hits.push(Received { path: uri.path().to_owned(), headers, body });
        hits.len()
    };
    if n > r.script.fail_first {
        return (StatusCode::OK, "ok".into());
    }
    if let Some(d) = r.script.hang {
        tokio::time::sleep(d).await;
    }
    let status = StatusCode::from_u16(r.script.fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, if r.script.echo { format!("refused {echo}") } else { "down".into() })
}

/// A receiver on 127.0.0.1 answering per `script`; its base URL and what it
/// received.
async fn receiver(script: Script) -> (String, Arc<parking_lot::Mutex<Vec<Received>>>) {
    let hits = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback(answer).with_state(Receiver { script, hits: Arc::clone(&hits) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the receiver serves") });
    (format!("http://{addr}"), hits)
}

/// A URL nothing listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    format!("http://{addr}")
}

fn slack_url(base: &str) -> String {
    format!("{base}/services/T0001/B0002/{SLACK_SECRET}")
}

fn incident() -> Incident {
    book_at(&[]).get("INC-0001").cloned().expect("INC-0001")
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_on_the_third_try() {
    let (slack, slack_hits) = receiver(Script::fails(2, 500)).await;
    let (hook, hook_hits) = receiver(Script::fails(2, 503)).await;
    let opts = options("third-try", 4, Duration::from_secs(5));
    let targets = vec![
        Target::slack("ops-slack", slack_url(&slack)),
        Target::webhook(
            "pager",
            format!("{hook}/hooks/incidents"),
            vec![("authorization".into(), HEADER_SECRET.into())],
        ),
    ];
    let notifier = Notifier::new(http(), targets, opts.clone()).unwrap();
    let event = Event::created(&incident(), at(1));
    let outcomes = notifier.notify_and_wait(&event).await;

    let summary: Vec<(&str, u32, &DeliveryResult)> =
        outcomes.iter().map(|o| (o.target.as_str(), o.attempts, &o.result)).collect();
    let ok = DeliveryResult::Delivered { status: 200 };
    assert_eq!(summary, vec![("ops-slack", 3, &ok), ("pager", 3, &ok)]);
    assert!(outcomes.iter().all(|o| o.event_type == EventKind::Created && o.incident_id == "INC-0001"));
    let stats = notifier.stats();
    assert_eq!((stats.delivered, stats.retried, stats.dead_lettered, stats.pending), (2, 4, 0, 0));
    assert_eq!(dead_letters(&opts).await.1, vec![]);

    // Slack: three identical bodies, in the incoming-webhook format.
    let hits = slack_hits.lock().clone();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.body == hits[0].body && h.path == format!("/services/T0001/B0002/{SLACK_SECRET}")));
    assert_eq!(hits[0].headers.get("content-type").unwrap(), "application/json");
    let body = &hits[0].body;
    assert_eq!(body, &event.slack_payload());
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("[SEV1] INC-0001 investigating") && text.contains("電子カルテにログインできない"), "{text}");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["type"], "plain_text");
    assert_eq!(body["blocks"][0]["text"]["text"], "🔴 SEV1 INC-0001: 電子カルテにログインできない");
    let fields: Vec<&str> =
        body["blocks"][1]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        vec![
            "*Severity / 重大度*\nSEV1 (critical)",
            "*Status / 状態*\ninvestigating",
            "*Affected / 影響範囲*\nehr, patient-portal",
            "*Teams / チーム*\nplatform, 病棟システム",
        ]
    );
    let note = body["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(note.contains("ログインエラーが多発 / login errors spiking") && note.contains("sato"), "{note}");
    assert_eq!(body["blocks"][3]["type"], "context");

    // Generic: the event, the token header as configured.
    let hits = hook_hits.lock().clone();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[2].path, "/hooks/incidents");
    assert_eq!(hits[2].headers.get("authorization").unwrap(), HEADER_SECRET);
    let body = &hits[2].body;
    assert_eq!(body["type"], "incident.created");
    assert_eq!(body["sentAt"], "2026-11-21T09:01:00+09:00");
    assert_eq!(body["incident"]["id"], "INC-0001");
    assert_eq!(body["incident"]["severity"], "sev1");
    assert_eq!(body["incident"]["status"], "investigating");
    assert_eq!(body["incident"]["title"], "電子カルテにログインできない");
    assert_eq!(serde_json::from_value::<Incident>(body["incident"].clone()).unwrap(), event.incident);
}

#[tokio::test]
async fn a_receiver_that_is_down_or_refuses_is_dead_lettered() {
    let down = closed_port().await;
    let (failing, failing_hits) = receiver(Script::fails(usize::MAX, 500)).await;
    let (refusing, refusing_hits) = receiver(Script::fails(usize::MAX, 400)).await;
    let opts = options("down", 3, Duration::from_secs(5));
    let targets = vec![
        Target::webhook("down", format!("{down}/hook"), vec![]),
        Target::webhook("failing", format!("{failing}/hook"), vec![]),
        Target::slack("refusing", slack_url(&refusing)),
    ];
    let notifier = Notifier::new(http(), targets, opts.clone()).unwrap();
    let event = Event::created(&incident(), at(1));
    let outcomes = notifier.notify_and_wait(&event).await;

    let summary: Vec<(&str, u32, bool)> =
        outcomes.iter().map(|o| (o.target.as_str(), o.attempts, o.is_delivered())).collect();
    assert_eq!(summary, vec![("down", 3, false), ("failing", 3, false), ("refusing", 1, false)]);
    assert_eq!(failing_hits.lock().len(), 3);
    assert_eq!(refusing_hits.lock().len(), 1, "a 400 is not retried");

    let (_, letters) = dead_letters(&opts).await;
    let mut rows: Vec<(&str, u32, &str)> =
        letters.iter().map(|l| (l.target.as_str(), l.attempts, l.error.as_str())).collect();
    rows.sort();
    assert_eq!(rows[1], ("failing", 3, "server error (500) after 3 attempts"));
    assert_eq!(rows[2], ("refusing", 1, "request refused (400): down"));
    assert_eq!((rows[0].0, rows[0].1), ("down", 3));
    assert!(rows[0].2.starts_with("unreachable after 3 attempts"), "{}", rows[0].2);
    for l in &letters {
        assert_eq!((l.event_type, l.incident_id.as_str()), (EventKind::Created, "INC-0001"));
        let expected = if l.target == "refusing" { event.slack_payload() } else { event.webhook_payload() };
        assert_eq!(l.payload, expected, "the payload as sent, to replay");
        assert!(l.host.starts_with("127.0.0.1:"));
    }
    for (o, l) in outcomes.iter().zip(["down", "failing", "refusing"]) {
        let DeliveryResult::DeadLettered { error } = &o.result else { panic!("{o:?}") };
        assert_eq!(letters.iter().find(|d| d.target == l).map(|d| &d.error), Some(error));
    }
    let stats = notifier.stats();
    assert_eq!((stats.delivered, stats.retried, stats.dead_lettered, stats.lost), (0, 4, 3, 0));
}

#[tokio::test]
async fn a_receiver_that_hangs_is_timed_out_retried_and_dead_lettered() {
    let (hanging, hits) =
        receiver(Script { fail_first: usize::MAX, fail: 200, hang: Some(Duration::from_secs(30)), echo: false }).await;
    let opts = options("hang", 2, Duration::from_millis(300));
    let notifier = Notifier::new(http(), vec![Target::webhook("slowpoke", hanging, vec![])], opts.clone()).unwrap();

    let started = tokio::time::Instant::now();
    let delivery = notifier.notify(&Event::created(&incident(), at(1)));
    assert!(started.elapsed() < Duration::from_millis(300), "notify does not wait for the receiver");
    assert_eq!(delivery.len(), 1);
    let outcomes = delivery.outcomes().await;
    assert!(started.elapsed() < Duration::from_secs(10));

    assert_eq!(outcomes[0].attempts, 2);
    let DeliveryResult::DeadLettered { error } = &outcomes[0].result else { panic!("{outcomes:?}") };
    assert!(error.starts_with("unreachable after 2 attempts"), "{error}");
    assert_eq!(hits.lock().len(), 2, "the receiver saw both tries");
    let (_, letters) = dead_letters(&opts).await;
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].target.as_str(), letters[0].attempts), ("slowpoke", 2));
    assert_eq!(notifier.stats().dead_lettered, 1);
}

#[tokio::test]
async fn a_receiver_that_recovers_gets_events_in_order_and_the_replayed_dead_letter() {
    // Down for the first 4 requests: the first event's 3 tries all fail,
    // the second event's first try fails and its second succeeds.
    let (flaky, hits) = receiver(Script::fails(4, 502)).await;
    let opts = options("recovers", 3, Duration::from_secs(5));
    let notifier = Notifier::new(http(), vec![Target::webhook("flaky", flaky, vec![])], opts.clone()).unwrap();
    let mut book = book_at(&[]);
    let created = Event::created(book.get("INC-0001").unwrap(), at(1));
    let i = book.update("INC-0001", Update::status("a", Status::Resolved, "復旧しました"), at(2)).unwrap();
    let resolved = Event::updated(i, at(2));
    assert_eq!(resolved.kind, EventKind::Resolved);

    // Raised back to back, without waiting: one target's events stay in order.
    let first = notifier.notify(&created);
    let second = notifier.notify(&resolved);
    let first = first.outcomes().await;
    let second = second.outcomes().await;
    assert_eq!((first[0].attempts, first[0].is_delivered()), (3, false));
    assert_eq!((second[0].attempts, &second[0].result), (2, &DeliveryResult::Delivered { status: 200 }));
    let types: Vec<Value> = hits.lock().iter().map(|h| h.body["type"].clone()).collect();
    assert_eq!(
        types,
        ["incident.created", "incident.created", "incident.created", "incident.resolved", "incident.resolved"]
    );

    // Now up: the replay delivers the dead letter and empties the file.
    let report = notifier.replay_dead_letters().await.unwrap();
    assert_eq!((report.delivered, report.failed, report.unknown_target, report.unreadable), (1, 0, 0, 0));
    let last = hits.lock().last().cloned().unwrap();
    assert_eq!(last.body, created.webhook_payload());
    assert!(!tokio::fs::try_exists(&opts.dead_letter_path).await.unwrap());
    let stats = notifier.stats();
    assert_eq!((stats.delivered, stats.dead_lettered, stats.replayed, stats.retried), (1, 1, 1, 3));
}

#[tokio::test]
async fn replay_keeps_what_still_fails_and_what_it_cannot_place() {
    let down = closed_port().await;
    let opts = options("replay-keeps", 2, Duration::from_secs(5));
    let notifier = Notifier::new(http(), vec![Target::webhook("down", down.clone(), vec![])], opts.clone()).unwrap();
    notifier.notify_and_wait(&Event::created(&incident(), at(1))).await;
    let mut text = dead_letters(&opts).await.0;
    text.push_str("not json\n");
    tokio::fs::write(&opts.dead_letter_path, &text).await.unwrap();
    // A notifier configured without "down" any more sees an unknown target.
    let other = Notifier::new(http(), vec![Target::webhook("other", down, vec![])], opts.clone()).unwrap();
    let report = other.replay_dead_letters().await.unwrap();
    assert_eq!((report.delivered, report.failed, report.unknown_target, report.unreadable), (0, 0, 1, 1));
    let report = notifier.replay_dead_letters().await.unwrap();
    assert_eq!((report.delivered, report.failed, report.unknown_target, report.unreadable), (0, 1, 0, 1));
    let text = tokio::fs::read_to_string(&opts.dead_letter_path).await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let letter: DeadLetter = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(letter.attempts, 4, "two tries, then two more on replay");
    assert_eq!(lines[1], "not json");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_errors_and_dead_letters() {
    // The receivers fail, echoing the secret path and the token header in
    // their error bodies; a closed port gives a transport error.
    let echo = |status| Script { fail_first: usize::MAX, fail: status, hang: None, echo: true };
    let (refusing, _) = receiver(echo(400)).await;
    let (missing, _) = receiver(echo(404)).await;
    let (failing, _) = receiver(echo(500)).await;
    let down = closed_port().await;
    let token = vec![("authorization".to_owned(), HEADER_SECRET.to_owned())];
    let targets = vec![
        Target::slack("slack-refusing", slack_url(&refusing)),
        Target::slack("slack-gone", slack_url(&missing)),
        Target::slack("slack-down", slack_url(&down)),
        Target::webhook("hook-refusing", format!("{refusing}/h?key={SLACK_SECRET}"), token.clone()),
        Target::webhook("hook-failing", format!("{failing}/h"), token.clone()),
    ];
    for t in &targets {
        let debug = format!("{t:?}");
        assert!(!debug.contains(SLACK_SECRET) && !debug.contains("sk-live") && !debug.contains("services"), "{debug}");
        assert!(debug.contains(t.name()) && debug.contains("127.0.0.1:"), "{debug}");
    }
    let opts = options("secrets", 2, Duration::from_secs(5));
    let notifier = Notifier::new(http(), targets, opts.clone()).unwrap();
    assert!(!format!("{notifier:?}").contains(SLACK_SECRET));
    let outcomes = notifier.notify_and_wait(&Event::created(&incident(), at(1))).await;
    assert!(outcomes.iter().all(|o| !o.is_delivered()));

    let (text, letters) = dead_letters(&opts).await;
    assert_eq!(letters.len(), 5);
    for secret in [SLACK_SECRET, "sk-live-HeaderSecret-777", "/services/T0001"] {
        assert!(!text.contains(secret), "{secret} in the dead letters:\n{text}");
        for o in &outcomes {
            assert!(!format!("{o:?}").contains(secret), "{o:?}");
        }
    }
    let error = |name: &str| letters.iter().find(|l| l.target == name).map(|l| l.error.clone()).unwrap();
    assert_eq!(error("slack-gone"), "not found (404)");
    assert!(
        error("slack-refusing").starts_with("request refused (400): refused [redacted]"),
        "{}",
        error("slack-refusing")
    );
    assert!(error("hook-refusing").contains("[redacted]"), "{}", error("hook-refusing"));
    assert_eq!(error("hook-failing"), "server error (500) after 2 attempts");
    assert!(error("slack-down").starts_with("unreachable after 2 attempts"));
}

#[test]
fn bad_targets_are_refused_without_showing_the_url() {
    let client = http();
    let opts = || NotifyOptions::new(dead_letter_path("bad-targets"));
    let err = Notifier::new(
        Arc::clone(&client),
        vec![Target::slack("s", format!("hooks.slack.com/services/{SLACK_SECRET}"))],
        opts(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "notification target `s`: the url must be http:// or https:// with a host");
    let twice = vec![Target::slack("s", "https://a.example/x"), Target::webhook("s", "https://b.example/y", vec![])];
    let err = Notifier::new(Arc::clone(&client), twice, opts()).unwrap_err();
    assert_eq!(err.to_string(), "two notification targets are named `s`");
    let bad_header = vec![Target::webhook("w", "https://b.example/y", vec![("x token".into(), "v".into())])];
    assert!(Notifier::new(client, bad_header, opts()).is_err());
}
