//! reports tests: the monthly report over hand-built audit records with
//! answers worked out by hand, its Markdown and CSV, the audit CSV read back
//! by a CSV reader, periods, date ranges and export names.

use plexus_core::audit::{AuditRecord, GENESIS};
use plexus_ops::reports::{
    AUDIT_CSV_HEADER, CallStats, DateRange, FlagChange, IncidentSummary, Period, ReportError, audit_csv,
    audit_export_name, csv_field, monthly_report, next_monthly_run, parse_date_range, render_csv, render_markdown,
};
use time::macros::{date, datetime};

fn record(
    seq: u64,
    time: &str,
    principal: &str,
    operation: &str,
    target: &str,
    outcome: &str,
    latency_us: u64,
) -> AuditRecord {
    AuditRecord {
        seq,
        time: time.to_owned(),
        request_id: format!("req-{seq}"),
        session: None,
        principal: principal.to_owned(),
        tenant: "hospital".to_owned(),
        operation: operation.to_owned(),
        target: target.to_owned(),
        args_digest: "d".repeat(8),
        outcome: outcome.to_owned(),
        latency_us,
        client_addr: None,
        prev_hash: GENESIS.to_owned(),
        hash: format!("h{seq}"),
    }
}

/// June 2025: medical calls get_staff 10 times (1..=10 ms; one `internal`,
/// one `denied`), list_shifts 3 times (one `timeout`) and reads a resource
/// twice; voicedrive calls transcribe 4 times (one `invalid_arguments`, one
/// `unavailable`). Plus records outside the month and one with a bad time.
fn june() -> Vec<AuditRecord> {
    let mut v = Vec::new();
    let mut seq = 0;
    let mut add = |time: &str, who: &str, op: &str, target: &str, outcome: &str, us: u64| {
        seq += 1;
        v.push(record(seq, time, who, op, target, outcome, us));
    };
    for i in 1..=10u64 {
        let outcome = match i {
            3 => "internal",
            7 => "denied",
            _ => "ok",
        };
        add(&format!("2025-06-{:02}T09:00:00Z", i + 1), "medical", "tools/call", "get_staff", outcome, i * 1000);
    }
    add("2025-06-15T10:00:00Z", "medical", "resources/read", "plexus://staff/1", "ok", 500);
    add("2025-06-15T10:00:01Z", "medical", "resources/read", "plexus://staff/2", "ok", 700);
    add("2025-06-16T10:00:00Z", "medical", "tools/call", "list_shifts", "ok", 100);
    add("2025-06-16T10:00:01Z", "medical", "tools/call", "list_shifts", "timeout", 30_000);
    add("2025-06-16T10:00:02+09:00", "medical", "tools/call", "list_shifts", "ok", 200);
    add("2025-06-20T08:00:00Z", "voicedrive", "tools/call", "transcribe", "ok", 4000);
    add("2025-06-20T08:00:01Z", "voicedrive", "tools/call", "transcribe", "ok", 1000);
    add("2025-06-20T08:00:02Z", "voicedrive", "tools/call", "transcribe", "invalid_arguments", 3000);
    add("2025-06-30T23:59:59.999Z", "voicedrive", "tools/call", "transcribe", "unavailable", 2000);
    // Outside the month (the end is exclusive), and unreadable.
    add("2025-07-01T00:00:00Z", "voicedrive", "tools/call", "transcribe", "internal", 99_000);
    add("2025-05-31T23:59:59Z", "medical", "tools/call", "get_staff", "internal", 99_000);
    add("2025-07-01T09:30:00+09:00", "medical", "tools/call", "get_staff", "ok", 1);
    add("yesterday", "medical", "tools/call", "get_staff", "internal", 99_000);
    v
}

fn incidents() -> Vec<IncidentSummary> {
    let inc = |id: &str, title: &str, created: &str, resolved: Option<&str>| IncidentSummary {
        id: id.to_owned(),
        severity: "sev2".to_owned(),
        title: title.to_owned(),
        status: if resolved.is_some() { "resolved" } else { "investigating" }.to_owned(),
        created_at: created.to_owned(),
        resolved_at: resolved.map(str::to_owned),
    };
    vec![
        inc("INC-0003", "音声認識の遅延", "2025-06-20T12:00:00Z", None),
        inc("INC-0002", "夜勤|シフト表の取得失敗", "2025-06-10T10:00:00Z", Some("2025-06-10T10:45:00Z")),
        inc("INC-0001", "Database failover", "2025-05-30T23:00:00Z", Some("2025-06-01T01:00:00Z")),
        inc("INC-0000", "May only", "2025-05-01T00:00:00Z", Some("2025-05-02T00:00:00Z")),
        inc("INC-0005", "July", "2025-07-02T00:00:00Z", None),
        inc("INC-0006", "Bad time", "June 3rd", None),
    ]
}

fn flag_changes() -> Vec<FlagChange> {
    let f = |at: &str, version: u64, summary: &str| FlagChange {
        at: at.to_owned(),
        author: "tanaka".to_owned(),
        version,
        summary: summary.to_owned(),
    };
    vec![
        f("2025-06-25T09:00:00Z", 12, "new-voice-model: rollout 50%"),
        f("2025-06-03T09:00:00Z", 11, "shift-export: on for medical"),
        f("2025-07-03T09:00:00Z", 13, "later"),
    ]
}

fn stats(calls: u64, ok: u64, errors: u64, denied: u64, server: u64, ms: [f64; 3]) -> CallStats {
    #[allow(clippy::cast_precision_loss)]
    let (c, e, s) = (calls as f64, errors as f64, server as f64);
    CallStats {
        calls,
        ok,
        errors,
        denied,
        server_errors: server,
        error_rate: e / c,
        availability: Some(1.0 - s / c),
        latency_p50_ms: Some(ms[0]),
        latency_p95_ms: Some(ms[1]),
        latency_p99_ms: Some(ms[2]),
    }
}

#[test]
fn monthly_report_known_answers() {
    let period: Period = "2025-06".parse().expect("period");
    let r = monthly_report(period, &june(), &incidents(), &flag_changes());
    assert_eq!(
        (r.period.as_str(), r.from.as_str(), r.to.as_str()),
        ("2025-06", "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z")
    );
    assert_eq!(r.skipped_records, 1);

    // 19 calls; sorted latencies 0.1 0.2 0.5 0.7 1 1 2 2 3 3 4 4 5 6 7 8 9 10 30 ms:
    // p50 at rank ceil(9.5) = 10 (3 ms), p95 at ceil(18.05) = 19, p99 at ceil(18.81) = 19.
    assert_eq!(r.totals, stats(19, 14, 5, 1, 3, [3.0, 30.0, 30.0]));
    assert_eq!(
        r.operations.iter().map(|o| (o.operation.as_str(), o.calls)).collect::<Vec<_>>(),
        [("resources/read", 2), ("tools/call", 17)]
    );

    // medical: 15 calls, every operation. Latencies 0.1 0.2 0.5 0.7 1..10 30:
    // p50 at rank 8 (4 ms), p95 and p99 at rank 15.
    assert_eq!(r.systems.len(), 2);
    assert_eq!(r.systems[0].system, "medical");
    assert_eq!(r.systems[0].stats, stats(15, 12, 3, 1, 2, [4.0, 30.0, 30.0]));
    assert_eq!(r.systems[1].system, "voicedrive");
    assert_eq!(r.systems[1].stats, stats(4, 2, 2, 0, 1, [2.0, 4.0, 4.0]));

    let tools: Vec<(&str, &str)> = r.tools.iter().map(|t| (t.system.as_str(), t.tool.as_str())).collect();
    assert_eq!(tools, [("medical", "get_staff"), ("medical", "list_shifts"), ("voicedrive", "transcribe")]);
    // get_staff: 1..=10 ms, p50 at rank 5, p95 at rank ceil(9.5) = 10, p99 at rank 10.
    assert_eq!(r.tools[0].stats, stats(10, 8, 2, 1, 1, [5.0, 10.0, 10.0]));
    assert_eq!(r.tools[0].stats.error_rate, 0.2);
    assert_eq!(r.tools[0].stats.availability, Some(0.9));
    // list_shifts: 0.1, 0.2, 30 ms: p50 at rank 2.
    assert_eq!(r.tools[1].stats, stats(3, 2, 1, 0, 1, [0.2, 30.0, 30.0]));
    assert_eq!(r.tools[2].stats, stats(4, 2, 2, 0, 1, [2.0, 4.0, 4.0]));
    assert_eq!(r.tools[2].stats.availability, Some(0.75));

    // Incidents overlapping June, by creation; durations from creation to resolution.
    let inc: Vec<(&str, Option<i64>)> = r.incidents.iter().map(|i| (i.id.as_str(), i.duration_seconds)).collect();
    assert_eq!(inc, [("INC-0001", Some(26 * 3600)), ("INC-0002", Some(45 * 60)), ("INC-0003", None)]);
    assert_eq!(r.flag_changes.iter().map(|f| f.version).collect::<Vec<_>>(), [11, 12]);
    assert_eq!(
        r.warnings,
        [
            "audit record 23: time \"yesterday\" is not RFC 3339; left out",
            "incident INC-0006: created_at \"June 3rd\" is not RFC 3339; left out",
        ]
    );
}

#[test]
fn nearest_rank_percentiles_of_one_to_a_hundred() {
    let period = Period::month(2025, 6).expect("period");
    let records: Vec<AuditRecord> = (1..=100u64)
        .rev()
        .map(|i| record(i, "2025-06-10T00:00:00Z", "hr", "tools/call", "t", "ok", i * 1000))
        .collect();
    let r = monthly_report(period, &records, &[], &[]);
    let t = &r.tools[0].stats;
    assert_eq!((t.latency_p50_ms, t.latency_p95_ms, t.latency_p99_ms), (Some(50.0), Some(95.0), Some(99.0)));
    assert_eq!((t.error_rate, t.availability), (0.0, Some(1.0)));
    // One call: every percentile is that call.
    let one = monthly_report(period, &records[..1], &[], &[]);
    assert_eq!(one.totals.latency_p50_ms, Some(100.0));
    assert_eq!(one.totals.latency_p99_ms, Some(100.0));
    // No calls at all.
    let none = monthly_report(period, &[], &[], &[]);
    assert_eq!(none.totals, CallStats::default());
    assert!(none.systems.is_empty() && none.tools.is_empty());
    let md = render_markdown(&none);
    assert!(md.contains("No calls. / 呼び出しなし。"), "{md}");
    assert!(md.contains("| Availability / 可用性 | - |"), "{md}");
    assert_eq!(
        render_csv(&none),
        "period,system,tool,calls,ok,errors,denied,server_errors,error_rate,availability,latency_p50_ms,\
         latency_p95_ms,latency_p99_ms\r\n"
    );
}

#[test]
fn markdown_of_the_report() {
    let r = monthly_report(Period::month(2025, 6).expect("period"), &june(), &incidents(), &flag_changes());
    let md = render_markdown(&r);
    assert!(md.starts_with("# Operations report / 運用レポート: 2025-06\n"), "{md}");
    for want in [
        "Period / 対象期間: 2025-06-01T00:00:00Z – 2025-07-01T00:00:00Z",
        "| Calls / 呼び出し数 | 19 |",
        "| Errors / エラー | 5 (26.32%) |",
        "| Denied / 拒否 | 1 |",
        "| Server errors / サーバー障害 | 3 |",
        // 16/19 = 84.2105...%, rounded down.
        "| Availability / 可用性 | 84.21% |",
        "| Latency p50 / p95 / p99 (ms) / レイテンシ | 3.0 / 30.0 / 30.0 |",
        "| resources/read | 2 |",
        "| medical | 15 | 3 | 1 | 2 | 20.00% | 86.66% | 4.0 | 30.0 | 30.0 |",
        "| medical | get_staff | 10 | 2 | 1 | 1 | 20.00% | 90.00% | 5.0 | 10.0 | 10.0 |",
        "| voicedrive | transcribe | 4 | 2 | 0 | 1 | 50.00% | 75.00% | 2.0 | 4.0 | 4.0 |",
        "| INC-0001 | sev2 | Database failover | resolved | 2025-05-30T23:00:00Z | 2025-06-01T01:00:00Z | 1d 2h |",
        "| INC-0002 | sev2 | 夜勤\\|シフト表の取得失敗 | resolved | 2025-06-10T10:00:00Z | 2025-06-10T10:45:00Z | 45m |",
        "| INC-0003 | sev2 | 音声認識の遅延 | investigating | 2025-06-20T12:00:00Z | - | ongoing / 対応中 |",
        "| 2025-06-03T09:00:00Z | 11 | tanaka | shift-export: on for medical |",
        "- 1 audit records had an unreadable time and were left out.",
        "- incident INC-0006: created_at \"June 3rd\" is not RFC 3339; left out",
    ] {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
    }
    // Every table row has as many cells as its header.
    let mut columns = None;
    for line in md.lines() {
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let cells = line.replace("\\|", "").matches('|').count();
        match columns {
            None => columns = Some(cells),
            Some(n) => assert_eq!(cells, n, "{line}"),
        }
    }
    let json = serde_json::to_value(&r).expect("serializes");
    assert_eq!(json["tools"][0]["calls"], 10, "stats are flattened into rows");
    assert_eq!(json["systems"][1]["system"], "voicedrive");
}

#[test]
fn csv_of_the_report() {
    let r = monthly_report(Period::month(2025, 6).expect("period"), &june(), &[], &[]);
    let csv = render_csv(&r);
    let want = "period,system,tool,calls,ok,errors,denied,server_errors,error_rate,availability,latency_p50_ms,latency_p95_ms,latency_p99_ms\r\n\
                2025-06,medical,get_staff,10,8,2,1,1,0.200000,0.900000,5.000,10.000,10.000\r\n\
                2025-06,medical,list_shifts,3,2,1,0,1,0.333333,0.666667,0.200,30.000,30.000\r\n\
                2025-06,voicedrive,transcribe,4,2,2,0,1,0.500000,0.750000,2.000,4.000,4.000\r\n";
    assert_eq!(csv, want);
    // Names with commas are quoted.
    let odd = vec![record(1, "2025-06-01T00:00:00Z", "勤怠, 給与", "tools/call", "say \"hi\"", "ok", 1000)];
    let csv = render_csv(&monthly_report(Period::month(2025, 6).expect("period"), &odd, &[], &[]));
    assert!(
        csv.ends_with("2025-06,\"勤怠, 給与\",\"say \"\"hi\"\"\",1,1,0,0,0,0.000000,1.000000,1.000,1.000,1.000\r\n"),
        "{csv}"
    );
}

// ---- the audit export ----

/// A small RFC 4180 reader: quoted fields, doubled quotes, CRLF or LF rows.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            c => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The same text read by Python's `csv` module, when python3 is there.
fn python_csv(text: &str) -> Option<Vec<Vec<String>>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script =
        "import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8')))))";
    let path = std::env::temp_dir().join(format!("plexus-ops-audit-{}.csv", std::process::id()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes())).expect("temp file");
    let out = Command::new("python3").arg("-c").arg(script).arg(&path).stderr(Stdio::inherit()).output();
    let _ = std::fs::remove_file(&path);
    match out {
        Ok(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).expect("python printed JSON")),
        Ok(out) => panic!("python3 csv failed: {:?}", out.status),
        Err(e) => {
            eprintln!("python3 not available ({e}): the audit CSV is checked by the test's own reader only");
            None
        }
    }
}

fn fields(r: &AuditRecord) -> Vec<String> {
    vec![
        r.seq.to_string(),
        r.time.clone(),
        r.request_id.clone(),
        r.session.clone().unwrap_or_default(),
        r.principal.clone(),
        r.tenant.clone(),
        r.operation.clone(),
        r.target.clone(),
        r.args_digest.clone(),
        r.outcome.clone(),
        r.latency_us.to_string(),
        r.client_addr.clone().unwrap_or_default(),
        r.prev_hash.clone(),
        r.hash.clone(),
    ]
}

#[test]
fn audit_csv_escapes_and_reads_back() {
    let mut tricky = record(3, "2025-04-02T00:00:00Z", "医療スタッフ管理", "tools/call", "a,b", "ok", 12);
    tricky.session = Some("say \"hello\"".to_owned());
    tricky.client_addr = Some("line1\nline2\r\nline3".to_owned());
    tricky.request_id = "\"".to_owned();
    let mut plain = record(1, "2025-04-01T00:00:00Z", "voicedrive", "resources/read", "plexus://x", "denied", 5);
    plain.client_addr = Some("10.0.0.1:5000".to_owned());
    let cr = record(2, "2025-04-01T12:00:00Z", "hr", "prompts/get", "only\rcr", "internal", 7);
    let spaced = record(4, "2025-04-03T00:00:00Z", " 勤怠 ", "tools/call", "", "timeout", 0);
    // Out of order on purpose: the CSV is in seq order.
    let records = vec![tricky.clone(), spaced.clone(), plain.clone(), cr.clone()];
    let csv = audit_csv(&records);
    assert!(csv.starts_with(
        "seq,time,request_id,session,principal,tenant,operation,target,args_digest,outcome,latency_us,client_addr,prev_hash,hash\r\n"
    ));
    assert!(csv.contains(",医療スタッフ管理,"), "Japanese is written as is");
    assert!(csv.contains(",\"say \"\"hello\"\"\","), "{csv}");
    assert!(csv.contains(",\"line1\nline2\r\nline3\","), "{csv}");

    let mut want = vec![AUDIT_CSV_HEADER.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()];
    want.extend([&plain, &cr, &tricky, &spaced].map(fields));
    assert_eq!(read_csv(&csv), want);
    if let Some(py) = python_csv(&csv) {
        assert_eq!(py, want, "python's csv module reads the same fields");
    }
    assert_eq!(audit_csv(&[]), format!("{}\r\n", AUDIT_CSV_HEADER.join(",")));
}

#[test]
fn csv_fields() {
    let cases = [
        ("plain", "plain"),
        ("", ""),
        ("a,b", "\"a,b\""),
        ("\"", "\"\"\"\""),
        ("x\ny", "\"x\ny\""),
        ("x\ry", "\"x\ry\""),
        ("夜勤シフト", "夜勤シフト"),
        (" spaced ", " spaced "),
        ("=1+1", "=1+1"),
    ];
    for (input, want) in cases {
        assert_eq!(csv_field(input), want, "{input:?}");
    }
}

// ---- periods, schedule, ranges ----

#[test]
fn periods_parse_and_bound() {
    let check = |input: &str, display: &str, from: &str, to: &str| {
        let p: Period = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(p.to_string(), display, "{input}");
        assert_eq!(p.bounds(), (from.to_owned(), to.to_owned()), "{input}");
    };
    check("2026-11", "2026-11", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    check("2026-12", "2026-12", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z");
    check("2024-02", "2024-02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z");
    check("2025-Q2", "2025-Q2", "2025-04-01T00:00:00Z", "2025-07-01T00:00:00Z");
    check(" 2025-q4 ", "2025-Q4", "2025-10-01T00:00:00Z", "2026-01-01T00:00:00Z");
    check("2025-Q1", "2025-Q1", "2025-01-01T00:00:00Z", "2025-04-01T00:00:00Z");

    let q2: Period = "2025-Q2".parse().expect("quarter");
    assert_eq!((q2.quarter_number(), q2.month_number()), (Some(2), None));
    assert!(q2.contains(datetime!(2025-06-30 23:59:59 UTC)));
    assert!(!q2.contains(datetime!(2025-07-01 00:00:00 UTC)));
    assert!(q2.contains(datetime!(2025-07-01 08:59:59 +09:00)), "a time in another offset is compared as an instant");
    assert_eq!(
        q2.report_paths(),
        ("reports/quarterly/2025-Q2.md".to_owned(), "reports/quarterly/2025-Q2.csv".to_owned())
    );
    let nov = Period::month(2026, 11).expect("month");
    assert_eq!(nov.report_paths(), ("reports/monthly/2026-11.md".to_owned(), "reports/monthly/2026-11.csv".to_owned()));

    assert_eq!(Period::previous_month(date!(2026 - 01 - 15)).to_string(), "2025-12");
    assert_eq!(Period::previous_month(date!(2026 - 12 - 01)).to_string(), "2026-11");
    assert_eq!(Period::month_of(date!(2026 - 03 - 31)).to_string(), "2026-03");
}

#[test]
fn period_errors_are_precise() {
    let cases = [
        ("2025-13", "invalid period \"2025-13\": the month must be 01 to 12"),
        ("2025-00", "invalid period \"2025-00\": the month must be 01 to 12"),
        ("2025-1", "invalid period \"2025-1\": expected a month YYYY-MM (two-digit month) or a quarter YYYY-Qn"),
        ("25-01", "invalid period \"25-01\": the year must be four digits"),
        ("2025-Q5", "invalid period \"2025-Q5\": the quarter must be Q1 to Q4"),
        ("2025-Q", "invalid period \"2025-Q\": the quarter must be Q1 to Q4"),
        ("2025/01", "invalid period \"2025/01\": expected a month YYYY-MM or a quarter YYYY-Qn"),
        ("", "invalid period \"\": expected a month YYYY-MM or a quarter YYYY-Qn"),
        ("1969-12", "invalid period \"1969-12\": the year must be 1970 to 9998"),
        ("２０２５-01", "invalid period \"２０２５-01\": the year must be four digits"),
    ];
    for (input, want) in cases {
        let e = input.parse::<Period>().expect_err(input);
        assert!(matches!(e, ReportError::InvalidPeriod { .. }), "{e:?}");
        assert_eq!(e.to_string(), want);
    }
    assert_eq!(
        Period::quarter(2025, 0).expect_err("q0").to_string(),
        "invalid period \"2025-Q0\": the quarter must be Q1 to Q4"
    );
}

#[test]
fn the_monthly_run_is_the_first_at_five_past_midnight() {
    let cases = [
        (datetime!(2025-06-15 12:00 UTC), datetime!(2025-07-01 00:05 UTC)),
        (datetime!(2025-12-31 23:59:59 UTC), datetime!(2026-01-01 00:05 UTC)),
        (datetime!(2025-07-01 00:02 UTC), datetime!(2025-07-01 00:05 UTC)),
        (datetime!(2025-07-01 00:05 UTC), datetime!(2025-08-01 00:05 UTC)),
        // 08:00 in Tokyo on 1 July is still 30 June in UTC.
        (datetime!(2025-07-01 08:00 +09:00), datetime!(2025-07-01 00:05 UTC)),
        (datetime!(2024-02-29 10:00 UTC), datetime!(2024-03-01 00:05 UTC)),
    ];
    for (now, want) in cases {
        assert_eq!(next_monthly_run(now), want, "{now}");
    }
    // And the run reports on the month before.
    assert_eq!(Period::previous_month(datetime!(2025-07-01 00:05 UTC).date()).to_string(), "2025-06");
}

#[test]
fn date_ranges_and_export_names() {
    let name = |start: &str, end: &str| parse_date_range(start, end).map(|r| r.export_name());
    assert_eq!(name("2025-04-01", "2025-06-30"), Ok("audit/Q2_2025.csv".to_owned()));
    assert_eq!(name("2025-10-01", "2025-12-31"), Ok("audit/Q4_2025.csv".to_owned()));
    assert_eq!(name("2025-04-01", "2025-04-30"), Ok("audit/2025-04.csv".to_owned()));
    assert_eq!(name("2024-02-01", "2024-02-29"), Ok("audit/2024-02.csv".to_owned()));
    assert_eq!(name("2025-02-01", "2025-02-27"), Ok("audit/2025-02-01_2025-02-27.csv".to_owned()));
    assert_eq!(name("2025-04-01", "2025-05-15"), Ok("audit/2025-04-01_2025-05-15.csv".to_owned()));
    assert_eq!(name("2025-04-02", "2025-06-30"), Ok("audit/2025-04-02_2025-06-30.csv".to_owned()));
    assert_eq!(name("2025-05-07", "2025-05-07"), Ok("audit/2025-05-07.csv".to_owned()));
    assert_eq!(audit_export_name(date!(2025 - 07 - 01), date!(2025 - 09 - 30)), "audit/Q3_2025.csv");

    let r = parse_date_range("2025-04-01", "2025-06-30").expect("range");
    assert_eq!(r, DateRange { start: date!(2025 - 04 - 01), end: date!(2025 - 06 - 30) });
    assert_eq!(r.days(), 91);
    assert_eq!(r.bounds(), ("2025-04-01T00:00:00Z".to_owned(), "2025-07-01T00:00:00Z".to_owned()));
    assert!(r.contains_time("2025-06-30T23:59:59Z"), "the end date is included");
    assert!(r.contains_time("2025-04-01T00:00:00Z"));
    assert!(!r.contains_time("2025-07-01T00:00:00Z"));
    assert!(!r.contains_time("2025-03-31T23:59:59Z"));
    assert!(!r.contains_time("not a time"));
    // A leap year is the longest export.
    assert_eq!(parse_date_range("2024-01-01", "2024-12-31").map(|r| r.days()), Ok(366));
}

#[test]
fn date_range_errors_are_precise() {
    let cases = [
        (("2025-06-30", "2025-04-01"), "end date 2025-04-01 is before start date 2025-06-30"),
        (
            ("2025-02-30", "2025-03-01"),
            "invalid start date \"2025-02-30\": no such day (the 'day' component could not be created)",
        ),
        (("2025-04-01", "2025-13-01"), "invalid end date \"2025-13-01\": the month must be 01 to 12"),
        (("2025/04/01", "2025-05-01"), "invalid start date \"2025/04/01\": expected YYYY-MM-DD"),
        (("2025-4-1", "2025-05-01"), "invalid start date \"2025-4-1\": expected YYYY-MM-DD"),
        (("2025-04-01", ""), "invalid end date \"\": expected YYYY-MM-DD"),
        (("2025-04-01T00:00:00Z", "2025-05-01"), "invalid start date \"2025-04-01T00:00:00Z\": expected YYYY-MM-DD"),
        (("1900-01-01", "1900-01-02"), "invalid start date \"1900-01-01\": the year must be 1970 to 9998"),
        (
            ("2024-01-01", "2025-01-01"),
            "the range 2024-01-01 to 2025-01-01 covers 367 days, more than the 366 an export may cover",
        ),
    ];
    for ((start, end), want) in cases {
        let e = parse_date_range(start, end).expect_err(want);
        let text = e.to_string();
        if want.contains("no such day") {
            assert!(text.starts_with("invalid start date \"2025-02-30\": no such day"), "{text}");
        } else {
            assert_eq!(text, want);
        }
        assert!(!text.ends_with('.'), "{text}");
    }
    assert!(matches!(parse_date_range("2025-06-30", "2025-04-01"), Err(ReportError::EndBeforeStart { .. })));
    assert!(matches!(
        parse_date_range("2024-01-01", "2025-06-01"),
        Err(ReportError::RangeTooLong { days: 518, max: 366, .. })
    ));
}

#[test]
fn the_report_has_a_json_schema_matching_its_json() {
    let schema = serde_json::to_value(schemars::schema_for!(plexus_ops::reports::Report)).expect("schema serializes");
    let text = schema.to_string();
    // The flattened stats appear as properties of the rows.
    for field in ["systems", "tools", "incidents", "flag_changes", "latency_p99_ms", "availability", "server_errors"] {
        assert!(text.contains(&format!("\"{field}\"")), "{field} in {text}");
    }
    let r = monthly_report(Period::month(2025, 6).expect("period"), &june(), &incidents(), &flag_changes());
    let json = serde_json::to_value(&r).expect("serializes");
    let props = schema["properties"].as_object().expect("properties");
    for key in json.as_object().expect("object").keys() {
        assert!(props.contains_key(key), "{key} is in the schema");
    }
}
