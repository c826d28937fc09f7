//! alerts tests: rule parsing, the evaluator over synthetic metric
//! sequences, `/proc` parsing on sample texts and on the real `/proc`, and
//! the pipeline sampler over a real `Telemetry`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plexus_core::telemetry::Telemetry;
use plexus_ops::alerts::host::{
    CpuTimes, parse_host_cpu, parse_meminfo_used_percent, parse_process_cpu_ticks, parse_statm_rss_bytes,
    parse_status_rss_bytes,
};
use plexus_ops::alerts::{
    AlertEvaluator, AlertRule, AlertTransition, HostSampler, Metric, Metrics, MetricsSampler, PipelineSampler,
    ProcTexts, alert_markdown, alert_notice_path, parse_rules,
};
use plexus_ops::incidents::Severity;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2025-06-01 10:00:00 UTC);

fn rules(doc: Value) -> Vec<AlertRule> {
    match parse_rules(&doc) {
        Ok(rules) => rules,
        Err(errors) => panic!("rules rejected: {errors:#?}"),
    }
}

fn error_rule(for_: &str) -> Vec<AlertRule> {
    rules(json!({"rules": [{"name": "high-error-rate", "metric": "error_rate", "op": ">", "threshold": "1%",
        "for": for_, "severity": "sev2", "open_incident": true, "teams": ["medical"],
        "description": "More than 1% of calls fail"}]}))
}

fn error_rate(v: Option<f64>) -> Metrics {
    Metrics { error_rate: v, ..Metrics::default() }
}

/// One line per transition: `firing high-error-rate 0.02 since+0`,
/// `resolved high-error-rate 0.001 since+0`, `withdrawn ...`.
fn describe(t: &AlertTransition) -> String {
    format!("{} {} {} since+{}", t.state(), t.rule().name, t.value(), (t.since() - T0).whole_seconds())
}

/// Feeds `(seconds after T0, metrics)` to a fresh evaluator; returns the
/// transitions as `t=<seconds> <describe>`.
fn run(evaluator: &mut AlertEvaluator, steps: &[(i64, Metrics)]) -> Vec<String> {
    let mut out = Vec::new();
    for (at, metrics) in steps {
        for t in evaluator.observe(T0 + time::Duration::seconds(*at), metrics) {
            out.push(format!("t={at} {}", describe(&t)));
        }
    }
    out
}

fn check(rules: Vec<AlertRule>, steps: &[(i64, Option<f64>)], expect: &[&str]) {
    let mut e = AlertEvaluator::new(rules);
    let steps: Vec<(i64, Metrics)> = steps.iter().map(|(at, v)| (*at, error_rate(*v))).collect();
    assert_eq!(run(&mut e, &steps), expect, "steps {steps:?}");
}

#[test]
fn fires_only_after_the_duration_once_and_resolves() {
    check(
        error_rule("5m"),
        &[
            (0, Some(0.02)),
            (60, Some(0.05)),
            (299, Some(0.02)),
            (300, Some(0.03)),
            (360, Some(0.5)),
            (600, Some(0.02)),
            (660, Some(0.001)),
            (720, Some(0.001)),
        ],
        &["t=300 firing high-error-rate 0.03 since+0", "t=660 resolved high-error-rate 0.001 since+0"],
    );
}

#[test]
fn a_flap_shorter_than_the_duration_never_fires() {
    check(
        error_rule("5m"),
        &[(0, Some(0.02)), (120, Some(0.02)), (240, Some(0.0)), (260, Some(0.02)), (500, Some(0.02)), (540, Some(0.0))],
        &[],
    );
    // Held again from 260: fires at 560, not earlier.
    check(
        error_rule("5m"),
        &[
            (0, Some(0.02)),
            (240, Some(0.01)),
            (260, Some(0.02)),
            (500, Some(0.02)),
            (559, Some(0.02)),
            (560, Some(0.02)),
        ],
        &["t=560 firing high-error-rate 0.02 since+260"],
    );
}

#[test]
fn a_missing_value_neither_fires_nor_resolves() {
    check(
        error_rule("5m"),
        &[(0, Some(0.02)), (100, None), (200, None), (300, Some(0.02)), (400, None), (500, None), (600, Some(0.0))],
        &["t=300 firing high-error-rate 0.02 since+0", "t=600 resolved high-error-rate 0 since+0"],
    );
    // Nothing but gaps: nothing happens.
    check(error_rule("0s"), &[(0, None), (1000, None)], &[]);
    // NaN counts as missing.
    check(error_rule("0s"), &[(0, Some(f64::NAN))], &[]);
}

#[test]
fn zero_duration_fires_on_the_first_sample_and_thresholds_are_strict() {
    check(
        error_rule("0s"),
        &[(0, Some(0.01)), (10, Some(0.0101)), (20, Some(0.0101)), (30, Some(0.01))],
        &["t=10 firing high-error-rate 0.0101 since+10", "t=30 resolved high-error-rate 0.01 since+10"],
    );
    let low_traffic = rules(json!({"rules": [{"name": "no-traffic", "metric": "request_rate", "op": "<=",
        "threshold": 0, "for": 60}]}));
    let mut e = AlertEvaluator::new(low_traffic);
    let rate = |v: f64| Metrics { request_rate: Some(v), ..Metrics::default() };
    assert_eq!(
        run(&mut e, &[(0, rate(0.0)), (59, rate(0.0)), (60, rate(0.0)), (61, rate(3.0))]),
        ["t=60 firing no-traffic 0 since+0", "t=61 resolved no-traffic 3 since+0"]
    );
}

#[test]
fn active_and_pending_list_the_states() {
    let both = rules(json!({"rules": [
        {"name": "errors", "metric": "error_rate", "op": ">", "threshold": 0.01, "for": "1m", "severity": "high"},
        {"name": "slow", "metric": "latency_p99_ms", "op": ">=", "threshold": "250ms", "for": "5m", "teams": ["voice"]}]}));
    let mut e = AlertEvaluator::new(both);
    let m = Metrics { error_rate: Some(0.2), latency_p99_ms: Some(300.0), ..Metrics::default() };
    assert!(e.observe(T0, &m).is_empty());
    assert_eq!(
        e.pending().iter().map(|p| (p.rule.as_str(), p.fires_at.as_str())).collect::<Vec<_>>(),
        [("errors", "2025-06-01T10:01:00Z"), ("slow", "2025-06-01T10:05:00Z")]
    );
    assert!(e.active().is_empty());
    let fired = e.observe(T0 + time::Duration::minutes(1), &m);
    assert_eq!(fired.len(), 1);
    assert!(!fired[0].opens_incident(), "open_incident defaults to false");
    let active = e.active();
    assert_eq!(active.len(), 1);
    let a = &active[0];
    assert_eq!((a.rule.as_str(), a.severity, a.value), ("errors", Severity::Sev2, 0.2));
    assert_eq!((a.since.as_str(), a.fired_at.as_str()), ("2025-06-01T10:00:00Z", "2025-06-01T10:01:00Z"));
    assert_eq!(a.condition, "error_rate > 1% for 1m");
    let json = serde_json::to_value(&active).expect("serializes");
    assert_eq!(json[0]["metric"], "error_rate");
    assert_eq!(json[0]["op"], ">");
    assert_eq!(json[0]["severity"], "sev2");
    assert_eq!(e.pending().len(), 1, "slow is still pending");
}

#[test]
fn replace_rules_keeps_the_state_of_unchanged_conditions() {
    let doc = |errors_threshold: &str, errors_for: &str, slow: bool| {
        let mut list = vec![json!({"name": "errors", "metric": "error_rate", "op": ">", "threshold": errors_threshold,
            "for": errors_for, "severity": "sev2"})];
        if slow {
            list.push(json!({"name": "slow", "metric": "latency_p99_ms", "op": ">", "threshold": 100, "for": "1m"}));
        }
        rules(json!({"rules": list}))
    };
    let m = |err: f64, p99: f64| Metrics { error_rate: Some(err), latency_p99_ms: Some(p99), ..Metrics::default() };
    let at = |s: i64| T0 + time::Duration::seconds(s);

    // Pending carries over: the alert fires at the time first scheduled.
    let mut e = AlertEvaluator::new(doc("1%", "5m", false));
    assert!(e.observe(at(0), &m(0.05, 0.0)).is_empty());
    let edited = rules(json!({"rules": [{"name": "errors", "metric": "error_rate", "op": ">", "threshold": 0.01,
        "for": 300, "severity": "sev1", "description": "now sev1", "teams": ["medical", "voice"]}]}));
    assert!(e.replace_rules(edited).is_empty());
    let fired = e.observe(at(300), &m(0.05, 0.0));
    assert_eq!(fired.iter().map(describe).collect::<Vec<_>>(), ["firing errors 0.05 since+0"]);
    assert_eq!(fired[0].rule().severity, Severity::Sev1, "the new rule text is used");

    // Firing carries over without repeating; a longer `for` does not unfire.
    assert!(e.replace_rules(doc("1%", "10m", true)).is_empty());
    assert_eq!(e.active().len(), 1);
    assert!(e.observe(at(360), &m(0.05, 0.0)).is_empty(), "no repeat after a reload");
    let resolved = e.observe(at(420), &m(0.0, 0.0));
    assert_eq!(resolved.iter().map(describe).collect::<Vec<_>>(), ["resolved errors 0 since+0"]);

    // A changed threshold resets the state: firing is withdrawn, pending dropped.
    let mut e = AlertEvaluator::new(doc("1%", "1m", true));
    e.observe(at(0), &m(0.05, 500.0));
    let fired = e.observe(at(60), &m(0.05, 500.0));
    assert_eq!(fired.len(), 2);
    let withdrawn = e.replace_rules(doc("2%", "1m", false));
    assert_eq!(
        withdrawn.iter().map(describe).collect::<Vec<_>>(),
        ["withdrawn errors 0.05 since+0", "withdrawn slow 500 since+0"]
    );
    assert!(e.active().is_empty());
    assert!(e.observe(at(61), &m(0.05, 500.0)).is_empty(), "pending again under the new condition");
    let refired = e.observe(at(121), &m(0.05, 500.0));
    assert_eq!(refired.iter().map(describe).collect::<Vec<_>>(), ["firing errors 0.05 since+61"]);

    // A pending rule whose condition changed starts over.
    let mut e = AlertEvaluator::new(doc("1%", "5m", false));
    e.observe(at(0), &m(0.05, 0.0));
    assert!(e.replace_rules(doc("3%", "5m", false)).is_empty());
    assert!(e.observe(at(300), &m(0.05, 0.0)).is_empty(), "since was reset by the change");
    assert!(e.observe(at(599), &m(0.05, 0.0)).is_empty());
    assert_eq!(
        e.observe(at(600), &m(0.05, 0.0)).iter().map(describe).collect::<Vec<_>>(),
        ["firing errors 0.05 since+300"]
    );
}

#[test]
fn parses_the_documented_rule() {
    let parsed = error_rule("5m");
    assert_eq!(parsed.len(), 1);
    let r = &parsed[0];
    assert_eq!(r.name, "high-error-rate");
    assert_eq!(r.metric, Metric::ErrorRate);
    assert_eq!(r.threshold, 0.01);
    assert_eq!(r.for_seconds, 300);
    assert_eq!(r.severity, Severity::Sev2);
    assert!(r.open_incident);
    assert_eq!(r.teams, ["medical"]);
    assert_eq!(r.condition_text(), "error_rate > 1% for 5m");
    // The serialized form parses back to the same rules.
    let round_trip = json!({"rules": serde_json::to_value(&parsed).expect("serializes")});
    assert_eq!(round_trip["rules"][0]["for"], 300);
    assert_eq!(rules(round_trip), parsed);
}

#[test]
fn thresholds_and_durations_in_every_unit() {
    let cases: &[(&str, Value, f64)] = &[
        ("error_rate", json!("1%"), 0.01),
        ("error_rate", json!("0.5 %"), 0.005),
        ("error_rate", json!(0.01), 0.01),
        ("error_rate", json!("0.25"), 0.25),
        ("host_cpu_percent", json!("80%"), 80.0),
        ("host_memory_percent", json!(90), 90.0),
        ("process_cpu_percent", json!(150), 150.0),
        ("latency_p99_ms", json!("250ms"), 250.0),
        ("latency_p95_ms", json!("1.5s"), 1500.0),
        ("latency_p50_ms", json!(20), 20.0),
        ("process_memory_bytes", json!("512MiB"), 536_870_912.0),
        ("process_memory_bytes", json!("1GB"), 1e9),
        ("process_memory_bytes", json!(1024), 1024.0),
        ("request_rate", json!("50/s"), 50.0),
    ];
    for (metric, threshold, want) in cases {
        let r = rules(json!({"rules": [{"name": "r", "metric": metric, "op": ">", "threshold": threshold}]}));
        assert_eq!(r[0].threshold, *want, "{metric} {threshold}");
        assert_eq!(r[0].for_seconds, 0);
        assert_eq!(r[0].severity, Severity::Sev3, "default severity");
    }
    for (for_, want) in
        [(json!("30s"), 30), (json!("5m"), 300), (json!("1h"), 3600), (json!(90), 90), (json!(" 2m "), 120)]
    {
        let r =
            rules(json!({"rules": [{"name": "r", "metric": "error_rate", "op": ">", "threshold": 0.1, "for": for_}]}));
        assert_eq!(r[0].for_seconds, want, "{for_}");
    }
}

fn errors_of(doc: Value) -> Vec<String> {
    match parse_rules(&doc) {
        Ok(rules) => panic!("accepted {rules:?}"),
        Err(errors) => errors,
    }
}

#[test]
fn rule_errors_name_the_rule_and_field() {
    let base = json!({"name": "r", "metric": "error_rate", "op": ">", "threshold": 0.1});
    let with = |key: &str, value: Value| {
        let mut rule = base.clone();
        rule[key] = value;
        json!({"rules": [rule]})
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with("metric", json!("error_rat")),
            "rules[0] \"r\": metric: unknown metric \"error_rat\" (expected one of request_rate, error_rate, \
             latency_p50_ms, latency_p95_ms, latency_p99_ms, process_cpu_percent, process_memory_bytes, \
             host_cpu_percent, host_memory_percent)",
        ),
        (with("op", json!("=>")), "rules[0] \"r\": op: unknown operator \"=>\" (expected one of >, >=, <, <=)"),
        (with("op", json!("==")), "rules[0] \"r\": op: unknown operator \"==\" (expected one of >, >=, <, <=)"),
        (with("op", json!(1)), "rules[0] \"r\": op: must be a string, not a number"),
        (with("for", json!("5x")), "rules[0] \"r\": for: \"5x\" has an unknown unit \"x\" (expected s, m or h)"),
        (
            with("for", json!("300")),
            "rules[0] \"r\": for: \"300\" has no unit (write \"300s\", or the number 300 for seconds)",
        ),
        (
            with("for", json!("five minutes")),
            "rules[0] \"r\": for: \"five minutes\" is not a duration (write \"30s\", \"5m\", \"1h\" or seconds as a number)",
        ),
        (with("for", json!(-5)), "rules[0] \"r\": for: -5 is not a whole, non-negative number of seconds"),
        (with("for", json!(1.5)), "rules[0] \"r\": for: 1.5 is not a whole, non-negative number of seconds"),
        (with("for", json!("2d")), "rules[0] \"r\": for: \"2d\" has an unknown unit \"d\" (expected s, m or h)"),
        (with("for", json!("25h")), "rules[0] \"r\": for: 25h is longer than the maximum of 24h"),
        (
            with("for", json!(true)),
            "rules[0] \"r\": for: must be a string such as \"5m\" or a number of seconds, not a boolean",
        ),
        (
            with("threshold", json!(5)),
            "rules[0] \"r\": threshold: error_rate is a fraction from 0 to 1: write 0.05 or \"5%\"",
        ),
        (with("threshold", json!("150%")), "rules[0] \"r\": threshold: \"150%\": a rate above 100%"),
        (with("threshold", json!("abc%")), "rules[0] \"r\": threshold: \"abc%\": not a number"),
        (with("threshold", json!(-0.1)), "rules[0] \"r\": threshold: must not be negative"),
        (
            with("threshold", json!(null)),
            "rules[0] \"r\": threshold: must be a number or a string such as \"1%\", not null",
        ),
        (
            with("severity", json!("urgent")),
            "rules[0] \"r\": severity: unknown severity \"urgent\" (expected sev1, sev2, sev3 or sev4)",
        ),
        (with("open_incident", json!("yes")), "rules[0] \"r\": open_incident: must be true or false, not a string"),
        (with("teams", json!("medical")), "rules[0] \"r\": teams: must be a list of team names, not a string"),
        (with("teams", json!(["ok", 3])), "rules[0] \"r\": teams: [1] must be a string, not a number"),
        (
            with("name", json!("bad name")),
            "rules[0] \"bad name\": name: \"bad name\" may hold only ASCII letters, digits, '-', '_' and '.', and must start with a letter or digit",
        ),
        (with("name", json!("")), "rules[0] \"\": name: must not be empty"),
        (
            with("thresold", json!(1)),
            "rules[0] \"r\": unknown field \"thresold\" (expected one of name, metric, op, threshold, for, severity, \
             open_incident, teams, description)",
        ),
        (
            json!({"rules": [{"metric": "error_rate", "op": ">", "threshold": 0.1}]}),
            "rules[0]: name: missing (required)",
        ),
        (json!({"rules": [7]}), "rules[0]: a rule must be an object, not a number"),
        (json!({"rules": {}}), "\"rules\" must be a list, not an object"),
        (json!({}), "missing field \"rules\" (a list of rules)"),
        (json!([]), "the document must be an object with a \"rules\" list, not a list"),
    ];
    for (doc, want) in cases {
        assert_eq!(errors_of(doc.clone()), [want], "{doc}");
    }
    // A latency threshold as a percentage, a percentage on bytes.
    let e = errors_of(json!({"rules": [{"name": "p", "metric": "latency_p99_ms", "op": ">", "threshold": "5%"}]}));
    assert_eq!(e, ["rules[0] \"p\": threshold: \"5%\": a percentage, but latency_p99_ms is not a rate or percentage"]);
    let e =
        errors_of(json!({"rules": [{"name": "m", "metric": "process_memory_bytes", "op": ">", "threshold": "1TB"}]}));
    assert_eq!(
        e,
        ["rules[0] \"m\": threshold: \"1TB\": unknown unit \"TB\" (expected B, KB, MB, GB, KiB, MiB or GiB)"]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors_of(json!({"rule": 1, "rules": [
        {"name": "a", "metric": "error_rate", "op": ">", "threshold": 0.1},
        {"name": "b", "metric": "nope", "op": "!", "for": "1y", "extra": 1},
        {"name": "A", "metric": "error_rate", "op": ">", "threshold": 0.2}]}));
    assert_eq!(
        e,
        [
            "unknown field \"rule\" at the top level (expected \"rules\")",
            "rules[1] \"b\": unknown field \"extra\" (expected one of name, metric, op, threshold, for, severity, \
         open_incident, teams, description)",
            "rules[1] \"b\": metric: unknown metric \"nope\" (expected one of request_rate, error_rate, latency_p50_ms, \
         latency_p95_ms, latency_p99_ms, process_cpu_percent, process_memory_bytes, host_cpu_percent, \
         host_memory_percent)",
            "rules[1] \"b\": op: unknown operator \"!\" (expected one of >, >=, <, <=)",
            "rules[1] \"b\": threshold: missing (required)",
            "rules[1] \"b\": for: \"1y\" has an unknown unit \"y\" (expected s, m or h)",
            "rules[2] \"A\": name: duplicate of rules[0] (names are unique, ignoring case)",
        ]
    );
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"name": format!("r{i}"), "metric": "error_rate", "op": ">", "threshold": 0.1}))
        .collect();
    assert_eq!(errors_of(json!({"rules": many})), ["too many rules: 501 (at most 500)"]);
    let long = "x".repeat(1000);
    let e = errors_of(json!({"rules": [{"name": "r", "metric": long, "op": ">", "threshold": 1}]}));
    assert!(e[0].len() < 400, "outside text is clipped: {}", e[0]);
    assert_eq!(parse_rules(&json!({"rules": []})), Ok(vec![]));
}

#[test]
fn metric_names_values_and_formats() {
    for m in Metric::ALL {
        assert_eq!(serde_json::to_value(m).expect("serializes"), m.as_str());
        assert_eq!(m.as_str().parse::<Metric>(), Ok(m));
    }
    let m = Metrics {
        request_rate: Some(12.5),
        error_rate: Some(0.025),
        latency_p99_ms: Some(f64::INFINITY),
        process_memory_bytes: Some(3 * 1024 * 1024),
        ..Metrics::default()
    };
    assert_eq!(m.value(Metric::RequestRate), Some(12.5));
    assert_eq!(m.value(Metric::ErrorRate), Some(0.025));
    assert_eq!(m.value(Metric::LatencyP99Ms), None, "not finite");
    assert_eq!(m.value(Metric::LatencyP50Ms), None);
    assert_eq!(m.value(Metric::ProcessMemoryBytes), Some(3_145_728.0));
    assert_eq!(Metric::ErrorRate.format_value(0.025), "2.5%");
    assert_eq!(Metric::ErrorRate.format_value(0.01), "1%");
    assert_eq!(Metric::ProcessMemoryBytes.format_value(3_145_728.0), "3.0 MiB");
    assert_eq!(Metric::LatencyP95Ms.format_value(250.0), "250.0 ms");
    assert_eq!(Metric::RequestRate.format_value(12.5), "12.50/s");
    assert_eq!(Metric::HostCpuPercent.format_value(85.26), "85.3%");
}

#[test]
fn notices_in_markdown() {
    let rule = error_rule("5m").remove(0);
    let firing = AlertTransition::Firing { rule: rule.clone(), value: 0.025, since: T0 };
    let now = T0 + time::Duration::minutes(5);
    let md = alert_markdown(&firing, now);
    assert!(md.starts_with("# FIRING / 発報中: high-error-rate\n"), "{md}");
    for want in [
        "| Severity / 重大度 | SEV2 (high) |",
        "| Condition / 条件 | error_rate > 1% for 5m |",
        "| Value / 現在値 | 2.5% |",
        "| Since / 発生時刻 | 2025-06-01T10:00:00Z |",
        "| Held for / 継続時間 | 5m |",
        "| Teams / 担当チーム | medical |",
        "| Incident / インシデント | opened / 起票 |",
        "## Description / 説明\n\nMore than 1% of calls fail\n",
    ] {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
    }
    assert!(firing.opens_incident());
    assert_eq!(alert_notice_path(&firing, now), "alerts/20250601T100500Z-high-error-rate-firing.md");

    let resolved = AlertTransition::Resolved { rule, value: 0.001, firing_since: T0 };
    let later = T0 + time::Duration::seconds(3725);
    let md = alert_markdown(&resolved, later);
    assert!(md.starts_with("# RESOLVED / 解消: high-error-rate\n"), "{md}");
    assert!(md.contains("| Value at resolution / 解消時の値 | 0.1% |"), "{md}");
    assert!(md.contains("| Ended / 終了時刻 | 2025-06-01T11:02:05Z |"), "{md}");
    assert!(md.contains("| Duration / 継続時間 | 1h2m5s |"), "{md}");
    assert!(!resolved.opens_incident());
    let json = serde_json::to_value(&resolved).expect("serializes");
    assert_eq!(json["state"], "resolved");
    assert_eq!(json["firing_since"], "2025-06-01T10:00:00Z");
    assert_eq!(json["rule"]["threshold"], 0.01);

    let piped = rules(json!({"rules": [{"name": "p", "metric": "host_cpu_percent", "op": ">", "threshold": 90,
        "teams": ["a|b"], "description": "夜勤|シフト"}]}))
    .remove(0);
    let md = alert_markdown(&AlertTransition::Firing { rule: piped, value: 95.0, since: T0 }, T0);
    assert!(md.contains("| Teams / 担当チーム | a\\|b |"), "{md}");
    assert!(md.contains("夜勤|シフト"), "the description is prose, not a cell: {md}");
}

// ---- /proc parsing on sample texts ----

#[test]
fn parses_process_stat_even_with_odd_command_names() {
    let stat = "12988 (cat) R 12983 12983 11880 0 -1 4194304 101 0 0 0 250 31 0 0 20 0 1 0 66613 3133440 383 \
                18446744073709551615 94776963608576 0";
    assert_eq!(parse_process_cpu_ticks(stat), Some(281));
    let odd = "77 (my (weird) cmd) S 1 77 77 0 -1 4194560 500 0 0 0 1000 200 0 0 20 0 4 0 100 1000 50";
    assert_eq!(parse_process_cpu_ticks(odd), Some(1200));
    for bad in ["", "12988 (cat", "12988 (cat) R 1 2", "1 (x) R 1 1 1 0 -1 0 0 0 0 0 abc 3", "garbage"] {
        assert_eq!(parse_process_cpu_ticks(bad), None, "{bad:?}");
    }
}

#[test]
fn parses_memory_of_the_process() {
    assert_eq!(parse_statm_rss_bytes("765 426 398 5 0 123 0\n"), Some(426 * 4096));
    assert_eq!(parse_statm_rss_bytes("765"), None);
    assert_eq!(parse_statm_rss_bytes("765 x"), None);
    let status = "Name:\tcat\nVmPeak:\t    3060 kB\nVmRSS:\t    1960 kB\nThreads:\t1\n";
    assert_eq!(parse_status_rss_bytes(status), Some(1960 * 1024));
    assert_eq!(parse_status_rss_bytes("Name:\tkthreadd\nThreads:\t1\n"), None, "kernel threads have no VmRSS");
    assert_eq!(parse_status_rss_bytes("VmRSS:\t 12 MB\n"), None, "unexpected unit");
}

#[test]
fn parses_host_cpu_and_memory() {
    let stat = "cpu  50711 0 9905 70013 896 0 167 806 0 0\ncpu0 23210 0 4085 38367 155 0 12 401 0 0\nintr 1 2 3\n";
    assert_eq!(
        parse_host_cpu(stat),
        Some(CpuTimes { total: 50711 + 9905 + 70013 + 896 + 167 + 806, idle: 70013 + 896 })
    );
    assert_eq!(parse_host_cpu("cpu  1 2 3 4\n"), Some(CpuTimes { total: 10, idle: 4 }), "old kernels: 4 columns");
    for bad in ["", "cpu0 1 2 3 4 5", "cpu 1 2 x 4", "cpu 1 2", "intr 5"] {
        assert_eq!(parse_host_cpu(bad), None, "{bad:?}");
    }
    let meminfo = "MemTotal:       24684096 kB\nMemFree:        22799420 kB\nMemAvailable:   18513072 kB\n";
    let used = parse_meminfo_used_percent(meminfo).expect("parses");
    assert!((used - 25.0).abs() < 1e-9, "{used}");
    let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
    let used = parse_meminfo_used_percent(old).expect("parses without MemAvailable");
    assert!((used - 60.0).abs() < 1e-9, "{used}");
    for bad in ["", "MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal: 1000 kB\n", "MemTotal: x kB\nMemAvailable: 1 kB"]
    {
        assert_eq!(parse_meminfo_used_percent(bad), None, "{bad:?}");
    }
}

#[test]
fn host_sampler_computes_cpu_over_the_window() {
    let texts = |proc_ticks: u64, user: u64, idle: u64| ProcTexts {
        self_stat: Some(format!("1 (plexus) S 0 1 1 0 -1 0 0 0 0 0 {proc_ticks} 0 0 0 20 0 1 0 1 1 1")),
        self_statm: Some("100 50 10 1 0 20 0".into()),
        self_status: None,
        stat: Some(format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n")),
        meminfo: Some("MemTotal: 1000 kB\nMemAvailable: 250 kB\n".into()),
    };
    let start = Instant::now();
    let mut s = HostSampler::new();
    let first = s.sample_texts(&texts(100, 1000, 1000), start);
    assert_eq!(first.process_cpu_percent, None, "no window yet");
    assert_eq!(first.host_cpu_percent, None);
    assert_eq!(first.process_memory_bytes, Some(50 * 4096), "statm fallback");
    assert_eq!(first.host_memory_percent, Some(75.0));
    // 2 s later: 150 ticks (1.5 s of CPU) for the process, 300 busy of 400.
    let second = s.sample_texts(&texts(250, 1300, 1100), start + Duration::from_secs(2));
    assert_eq!(second.process_cpu_percent, Some(75.0));
    assert_eq!(second.host_cpu_percent, Some(75.0));
    // Counters that went backwards (not the same process) give nothing.
    let third = s.sample_texts(&texts(10, 1300, 1100), start + Duration::from_secs(3));
    assert_eq!((third.process_cpu_percent, third.host_cpu_percent), (None, None));
    // Nothing readable: every value is None.
    let none = s.sample_texts(&ProcTexts::default(), start + Duration::from_secs(4));
    assert_eq!(none, Default::default());
}

#[test]
fn real_proc_values_are_plausible() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        eprintln!("no /proc on this system: the real /proc read is not checked here");
        assert!(HostSampler::new().sample().process_memory_bytes.is_none());
        return;
    }
    let mut s = HostSampler::new();
    let first = s.sample();
    // Burn some CPU so that the window has ticks to count.
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(120) {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    let second = s.sample();
    eprintln!("first {first:?}\nsecond {second:?}");
    let rss = second.process_memory_bytes.expect("rss");
    assert!(rss > 1024 * 1024, "rss {rss}");
    let mem = second.host_memory_percent.expect("host memory");
    assert!(mem > 0.0 && mem < 100.0, "host memory {mem}");
    let host = second.host_cpu_percent.expect("host cpu over 120 ms");
    assert!((0.0..=100.0).contains(&host), "host cpu {host}");
    let process = second.process_cpu_percent.expect("process cpu");
    assert!(process >= 0.0 && process.is_finite(), "process cpu {process}");

    // The combined sampler over a real telemetry.
    let mut sampler = MetricsSampler::new(Arc::new(Telemetry::default()));
    let m = sampler.sample();
    assert_eq!((m.calls, m.error_rate), (Some(0), Some(0.0)));
    assert!(m.process_memory_bytes.is_some_and(|b| b > 1024 * 1024));
}

// ---- the pipeline sampler ----

/// `got` is `want_ms` up to the histogram's 3 significant digits.
fn close(got: Option<f64>, want_ms: f64) -> bool {
    got.is_some_and(|g| (g - want_ms).abs() <= want_ms * 0.001 + 1e-9)
}

#[test]
fn pipeline_windows_count_exactly() {
    let telemetry = Arc::new(Telemetry::new(Duration::from_secs(1)));
    // Before the sampler: not in any window.
    for _ in 0..7 {
        telemetry.record("tool_a", Duration::from_millis(900), false);
    }
    let start = Instant::now();
    let mut sampler = PipelineSampler::new_at(Arc::clone(&telemetry), start);
    for _ in 0..90 {
        telemetry.record("tool_a", Duration::from_millis(5), true);
    }
    for _ in 0..10 {
        telemetry.record("tool_b", Duration::from_millis(20), false);
    }
    let w = sampler.sample_at(start + Duration::from_secs(10));
    assert_eq!((w.calls, w.errors), (100, 10));
    assert_eq!(w.error_rate, 0.1);
    assert_eq!(w.request_rate, 10.0);
    assert_eq!(w.seconds, 10.0);
    assert!(close(w.latency_p50_ms, 5.0), "p50 {:?}", w.latency_p50_ms);
    assert!(close(w.latency_p95_ms, 20.0), "p95 {:?}", w.latency_p95_ms);
    assert!(close(w.latency_p99_ms, 20.0), "p99 {:?}", w.latency_p99_ms);

    // The next window sees only its own calls.
    for _ in 0..3 {
        telemetry.record("tool_a", Duration::from_millis(1), true);
    }
    telemetry.record("tool_c", Duration::from_millis(2), false);
    let w = sampler.sample_at(start + Duration::from_secs(12));
    assert_eq!((w.calls, w.errors), (4, 1));
    assert_eq!(w.error_rate, 0.25);
    assert_eq!(w.request_rate, 2.0);
    assert!(close(w.latency_p50_ms, 1.0), "p50 {:?}", w.latency_p50_ms);
    assert!(close(w.latency_p99_ms, 2.0), "p99 {:?}", w.latency_p99_ms);

    // An empty window: no latency, error rate 0.
    let w = sampler.sample_at(start + Duration::from_secs(22));
    assert_eq!((w.calls, w.errors, w.error_rate, w.request_rate), (0, 0, 0.0, 0.0));
    assert_eq!((w.latency_p50_ms, w.latency_p99_ms), (None, None));

    // The window feeds a rule.
    let m = Metrics::from_parts(Some(&w), &Default::default());
    assert_eq!(m.value(Metric::ErrorRate), Some(0.0));
    assert_eq!(m.value(Metric::LatencyP99Ms), None);
    assert_eq!(m.value(Metric::HostCpuPercent), None);
}

#[test]
fn a_sampler_over_an_empty_telemetry() {
    let telemetry = Arc::new(Telemetry::new(Duration::from_secs(1)));
    let start = Instant::now();
    let mut sampler = PipelineSampler::new_at(Arc::clone(&telemetry), start);
    let w = sampler.sample_at(start);
    assert_eq!((w.calls, w.request_rate, w.latency_p50_ms), (0, 0.0, None), "zero-length window");
    // Targets that appear after the sampler started count in full.
    telemetry.record("late", Duration::from_micros(1500), true);
    let w = sampler.sample_at(start + Duration::from_secs(1));
    assert_eq!((w.calls, w.errors), (1, 0));
    assert!(close(w.latency_p99_ms, 1.5), "{:?}", w.latency_p99_ms);
}

#[test]
fn outputs_have_json_schemas() {
    for (name, schema) in [
        ("Metrics", schemars::schema_for!(Metrics)),
        ("ActiveAlert", schemars::schema_for!(plexus_ops::alerts::ActiveAlert)),
        ("PendingAlert", schemars::schema_for!(plexus_ops::alerts::PendingAlert)),
        ("AlertTransition", schemars::schema_for!(AlertTransition)),
        ("AlertRule", schemars::schema_for!(AlertRule)),
    ] {
        let text = serde_json::to_string(&schema).expect("schema serializes");
        assert!(text.contains("\"type\"") || text.contains("oneOf"), "{name}: {text}");
    }
    let schema = serde_json::to_value(schemars::schema_for!(AlertTransition)).expect("schema serializes");
    let text = schema.to_string();
    for state in ["firing", "resolved", "withdrawn"] {
        assert!(text.contains(state), "{state} in {text}");
    }
}
