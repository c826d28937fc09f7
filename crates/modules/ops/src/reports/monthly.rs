//! The operations report of a period: calls per system and tool, errors,
//! availability, latency percentiles, incidents and flag changes.
//!
//! Definitions (also printed in the Markdown's notes):
//! - A *system* is the audit record's `principal`: each team's system calls
//!   with its own API key.
//! - *Calls* in the totals, the operations table and the systems table are
//!   every audited operation (`tools/call`, `resources/read`,
//!   `prompts/get`, ...): all of them load the server and can fail. The
//!   tools table counts `tools/call` only, one row per (system, tool).
//! - *Errors* are calls whose outcome is not `ok`, denials included;
//!   *denied* shows how many of those were denials (a key without the
//!   right), which is a client's configuration problem rather than a fault.
//!   The error rate is `errors / calls`.
//! - *Availability* is the share of calls that did not fail for a
//!   server-side reason (`internal`, `unavailable`, `timeout`):
//!   `1 - server_errors / calls`; `None` without calls.
//! - *Latency* percentiles are exact over the period's records, by the
//!   nearest-rank method: the p-th percentile of `n` sorted latencies is the
//!   one at rank `ceil(p / 100 × n)` (1-based); so p50 of 1, 2, 3, 4 is 2
//!   and p99 of 100 calls is the 99th smallest. In milliseconds.
//! - Records are in the period when their `time` is in `[from, to)`; a
//!   record whose time does not parse is left out and counted in
//!   `skipped_records`.
//! - An incident is listed when it overlaps the period (created before its
//!   end, and unresolved or resolved after its start); its duration is from
//!   creation to resolution. Flag changes are listed when made in the
//!   period.

use std::collections::BTreeMap;

use plexus_core::audit::AuditRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::audit_export::push_row;
use super::period::Period;

/// Outcomes that count against availability.
const SERVER_SIDE: [&str; 3] = ["internal", "unavailable", "timeout"];
/// Warnings kept in a report; the rest are counted.
const MAX_WARNINGS: usize = 20;

/// An incident, as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentSummary {
    /// `INC-0001`.
    pub id: String,
    /// `sev1`..`sev4`.
    pub severity: String,
    /// One line.
    pub title: String,
    /// `investigating`, `identified`, `monitoring` or `resolved`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None` while unresolved.
    pub resolved_at: Option<String>,
}

/// A change to the feature flags (a new version of their state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FlagChange {
    /// RFC 3339.
    pub at: String,
    /// Who made it.
    pub author: String,
    /// The version it created.
    pub version: u64,
    /// What changed, in one line.
    pub summary: String,
}

/// Calls and their outcomes and latencies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallStats {
    /// Calls.
    pub calls: u64,
    /// Calls with outcome `ok`.
    pub ok: u64,
    /// Calls with any other outcome (denials included).
    pub errors: u64,
    /// Calls denied (outcome `denied`), a part of `errors`.
    pub denied: u64,
    /// Calls that failed for a server-side reason (`internal`,
    /// `unavailable`, `timeout`), a part of `errors`.
    pub server_errors: u64,
    /// `errors / calls` (0 to 1); 0 without calls.
    pub error_rate: f64,
    /// `1 - server_errors / calls` (0 to 1); `None` without calls.
    pub availability: Option<f64>,
    /// Median latency (nearest rank), in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency (nearest rank), in milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency (nearest rank), in milliseconds.
    pub latency_p99_ms: Option<f64>,
}

/// One system (principal), all its operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemRow {
    /// The principal.
    pub system: String,
    #[serde(flatten)]
    pub stats: CallStats,
}

/// One tool as called by one system (`tools/call` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolRow {
    /// The principal.
    pub system: String,
    /// The tool.
    pub tool: String,
    #[serde(flatten)]
    pub stats: CallStats,
}

/// Calls of one operation (`tools/call`, `resources/read`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperationRow {
    /// The operation.
    pub operation: String,
    /// Calls.
    pub calls: u64,
}

/// An incident of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentRow {
    /// `INC-0001`.
    pub id: String,
    /// `sev1`..`sev4`.
    pub severity: String,
    /// One line.
    pub title: String,
    /// Its status now.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None` while unresolved.
    pub resolved_at: Option<String>,
    /// From creation to resolution; `None` while unresolved.
    pub duration_seconds: Option<i64>,
}

/// The report of one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// `2026-11` or `2025-Q2`.
    pub period: String,
    /// Start, inclusive (RFC 3339).
    pub from: String,
    /// End, exclusive (RFC 3339).
    pub to: String,
    /// Every operation of every system.
    pub totals: CallStats,
    /// Calls per operation, by operation.
    pub operations: Vec<OperationRow>,
    /// Per system, by name.
    pub systems: Vec<SystemRow>,
    /// Per system and tool (`tools/call` only), by system then tool.
    pub tools: Vec<ToolRow>,
    /// Incidents overlapping the period, by creation time.
    pub incidents: Vec<IncidentRow>,
    /// Flag changes made in the period, by time.
    pub flag_changes: Vec<FlagChange>,
    /// Audit records left out because their time does not parse.
    pub skipped_records: u64,
    /// Data left out or odd, for people (at most 20, then a count).
    pub warnings: Vec<String>,
}

/// Counts and latencies while records are read.
#[derive(Debug, Default)]
struct Acc {
    calls: u64,
    ok: u64,
    errors: u64,
    denied: u64,
    server_errors: u64,
    latencies_us: Vec<u64>,
}

impl Acc {
    fn add(&mut self, r: &AuditRecord) {
        self.calls += 1;
        match r.outcome.as_str() {
            "ok" => self.ok += 1,
            outcome => {
                self.errors += 1;
                if outcome == "denied" {
                    self.denied += 1;
                }
                if SERVER_SIDE.contains(&outcome) {
                    self.server_errors += 1;
                }
            }
        }
        self.latencies_us.push(r.latency_us);
    }

    fn finish(mut self) -> CallStats {
        self.latencies_us.sort_unstable();
        let l = &self.latencies_us;
        CallStats {
            calls: self.calls,
            ok: self.ok,
            errors: self.errors,
            denied: self.denied,
            server_errors: self.server_errors,
            error_rate: if self.calls == 0 { 0.0 } else { ratio(self.errors, self.calls) },
            availability: (self.calls > 0).then(|| 1.0 - ratio(self.server_errors, self.calls)),
            latency_p50_ms: nearest_rank(l, 50).map(us_to_ms),
            latency_p95_ms: nearest_rank(l, 95).map(us_to_ms),
            latency_p99_ms: nearest_rank(l, 99).map(us_to_ms),
        }
    }
}

/// The `p`-th percentile (0 < p <= 100) of `sorted` by nearest rank: the
/// value at 1-based rank `ceil(p × n / 100)`.
fn nearest_rank(sorted: &[u64], p: u64) -> Option<u64> {
    let n = u128::try_from(sorted.len()).ok()?;
    let rank = (u128::from(p) * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

#[allow(clippy::cast_precision_loss)]
fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// Warnings, at most [`MAX_WARNINGS`] kept.
#[derive(Debug, Default)]
struct Warnings {
    kept: Vec<String>,
    dropped: usize,
}

impl Warnings {
    fn push(&mut self, w: String) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(w);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.kept.push(format!("and {} more warnings", self.dropped));
        }
        self.kept
    }
}

/// The report of `period` from audit records (any superset of the period's:
/// records outside it are ignored), incidents and flag changes.
pub fn monthly_report(
    period: Period,
    records: &[AuditRecord],
    incidents: &[IncidentSummary],
    flag_changes: &[FlagChange],
) -> Report {
    let (from, to) = (period.from(), period.to());
    let mut warnings = Warnings::default();
    let mut skipped_records = 0u64;
    let mut totals = Acc::default();
    let mut operations: BTreeMap<&str, u64> = BTreeMap::new();
    let mut systems: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut tools: BTreeMap<(&str, &str), Acc> = BTreeMap::new();
    for r in records {
        let Some(t) = parse_time(&r.time) else {
            skipped_records += 1;
            warnings.push(format!("audit record {}: time {:?} is not RFC 3339; left out", r.seq, clip(&r.time)));
            continue;
        };
        if t < from || t >= to {
            continue;
        }
        totals.add(r);
        *operations.entry(&r.operation).or_default() += 1;
        systems.entry(&r.principal).or_default().add(r);
        if r.operation == "tools/call" {
            tools.entry((&r.principal, &r.target)).or_default().add(r);
        }
    }

    let mut incident_rows = Vec::new();
    for i in incidents {
        let Some(created) = parse_time(&i.created_at) else {
            warnings.push(format!(
                "incident {}: created_at {:?} is not RFC 3339; left out",
                clip(&i.id),
                clip(&i.created_at)
            ));
            continue;
        };
        let resolved = match &i.resolved_at {
            None => None,
            Some(s) => match parse_time(s) {
                Some(t) if t >= created => Some(t),
                Some(_) => {
                    warnings
                        .push(format!("incident {}: resolved before it was created; duration unknown", clip(&i.id)));
                    None
                }
                None => {
                    warnings.push(format!("incident {}: resolved_at {:?} is not RFC 3339", clip(&i.id), clip(s)));
                    None
                }
            },
        };
        let overlaps = created < to && resolved.is_none_or(|r| r >= from);
        if !overlaps {
            continue;
        }
        incident_rows.push((
            created,
            IncidentRow {
                id: i.id.clone(),
                severity: i.severity.clone(),
                title: i.title.clone(),
                status: i.status.clone(),
                created_at: i.created_at.clone(),
                resolved_at: i.resolved_at.clone(),
                duration_seconds: resolved.map(|r| (r - created).whole_seconds()),
            },
        ));
    }
    incident_rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));

    let mut flags = Vec::new();
    for f in flag_changes {
        match parse_time(&f.at) {
            Some(t) if t >= from && t < to => flags.push((t, f.clone())),
            Some(_) => {}
            None => warnings.push(format!(
                "flag change version {}: time {:?} is not RFC 3339; left out",
                f.version,
                clip(&f.at)
            )),
        }
    }
    flags.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.version.cmp(&b.1.version)));

    let (from_text, to_text) = period.bounds();
    Report {
        period: period.to_string(),
        from: from_text,
        to: to_text,
        totals: totals.finish(),
        operations: operations
            .into_iter()
            .map(|(op, calls)| OperationRow { operation: op.to_owned(), calls })
            .collect(),
        systems: systems
            .into_iter()
            .map(|(system, acc)| SystemRow { system: system.to_owned(), stats: acc.finish() })
            .collect(),
        tools: tools
            .into_iter()
            .map(|((system, tool), acc)| ToolRow {
                system: system.to_owned(),
                tool: tool.to_owned(),
                stats: acc.finish(),
            })
            .collect(),
        incidents: incident_rows.into_iter().map(|(_, row)| row).collect(),
        flag_changes: flags.into_iter().map(|(_, f)| f).collect(),
        skipped_records,
        warnings: warnings.finish(),
    }
}

fn clip(s: &str) -> String {
    super::clip(s)
}

/// A Markdown table cell: one line, `|` and `\` escaped. Nothing is padded
/// to a width, so wide (Japanese) characters never misalign the source.
fn cell(s: &str) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    let escaped = one_line.replace('\\', "\\\\").replace('|', "\\|");
    if escaped.trim().is_empty() { "-".to_owned() } else { escaped }
}

/// `1.25%` (two decimals).
fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Availability in percent, rounded down at two decimals so that 99.999%
/// never shows as 100.00% (the epsilon keeps 0.95 from flooring to 94.99).
fn availability_percent(a: Option<f64>) -> String {
    match a {
        Some(a) => format!("{:.2}%", (a * 10_000.0 + 1e-6).floor() / 100.0),
        None => "-".to_owned(),
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// `1d 2h 3m`, `45s`.
fn human_seconds(total: i64) -> String {
    let total = total.max(0);
    let (d, h, m, s) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

fn stats_cells(s: &CallStats) -> String {
    format!(
        "{} | {} | {} | {} | {} | {} | {} | {} | {}",
        s.calls,
        s.errors,
        s.denied,
        s.server_errors,
        percent(s.error_rate),
        availability_percent(s.availability),
        ms(s.latency_p50_ms),
        ms(s.latency_p95_ms),
        ms(s.latency_p99_ms)
    )
}

const STATS_HEADER: &str = "Calls / 呼び出し | Errors / エラー | Denied / 拒否 | Server errors / サーバー障害 | \
     Error rate / エラー率 | Availability / 可用性 | p50 ms | p95 ms | p99 ms |";
const STATS_RULE: &str = "---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// The report as Markdown: summary, systems, tools, incidents, flag changes
/// and notes, headings in English and Japanese.
pub fn render_markdown(r: &Report) -> String {
    let mut md = String::with_capacity(4096);
    let line = |md: &mut String, s: &str| {
        md.push_str(s);
        md.push('\n');
    };
    line(&mut md, &format!("# Operations report / 運用レポート: {}", cell(&r.period)));
    line(&mut md, "");
    line(&mut md, &format!("Period / 対象期間: {} – {} (UTC; the end is excluded / 終了時刻を含まない)", r.from, r.to));
    line(&mut md, "");

    line(&mut md, "## Summary / 概要");
    line(&mut md, "");
    line(&mut md, "| Item / 項目 | Value / 値 |");
    line(&mut md, "|---|---:|");
    let t = &r.totals;
    line(&mut md, &format!("| Calls / 呼び出し数 | {} |", t.calls));
    line(&mut md, &format!("| Errors / エラー | {} ({}) |", t.errors, percent(t.error_rate)));
    line(&mut md, &format!("| Denied / 拒否 | {} |", t.denied));
    line(&mut md, &format!("| Server errors / サーバー障害 | {} |", t.server_errors));
    line(&mut md, &format!("| Availability / 可用性 | {} |", availability_percent(t.availability)));
    line(
        &mut md,
        &format!(
            "| Latency p50 / p95 / p99 (ms) / レイテンシ | {} / {} / {} |",
            ms(t.latency_p50_ms),
            ms(t.latency_p95_ms),
            ms(t.latency_p99_ms)
        ),
    );
    line(&mut md, &format!("| Systems / システム数 | {} |", r.systems.len()));
    line(&mut md, &format!("| Incidents / インシデント | {} |", r.incidents.len()));
    line(&mut md, &format!("| Flag changes / フラグ変更 | {} |", r.flag_changes.len()));
    line(&mut md, "");

    if !r.operations.is_empty() {
        line(&mut md, "### Operations / 操作別");
        line(&mut md, "");
        line(&mut md, "| Operation / 操作 | Calls / 呼び出し数 |");
        line(&mut md, "|---|---:|");
        for o in &r.operations {
            line(&mut md, &format!("| {} | {} |", cell(&o.operation), o.calls));
        }
        line(&mut md, "");
    }

    line(&mut md, "## Systems / システム別");
    line(&mut md, "");
    if r.systems.is_empty() {
        line(&mut md, "No calls. / 呼び出しなし。");
    } else {
        line(&mut md, &format!("| System / システム | {STATS_HEADER}"));
        line(&mut md, &format!("|---|{STATS_RULE}"));
        for s in &r.systems {
            line(&mut md, &format!("| {} | {} |", cell(&s.system), stats_cells(&s.stats)));
        }
    }
    line(&mut md, "");

    line(&mut md, "## Tools / ツール別 (tools/call)");
    line(&mut md, "");
    if r.tools.is_empty() {
        line(&mut md, "No tool calls. / ツール呼び出しなし。");
    } else {
        line(&mut md, &format!("| System / システム | Tool / ツール | {STATS_HEADER}"));
        line(&mut md, &format!("|---|---|{STATS_RULE}"));
        for s in &r.tools {
            line(&mut md, &format!("| {} | {} | {} |", cell(&s.system), cell(&s.tool), stats_cells(&s.stats)));
        }
    }
    line(&mut md, "");

    line(&mut md, "## Incidents / インシデント");
    line(&mut md, "");
    if r.incidents.is_empty() {
        line(&mut md, "None. / なし。");
    } else {
        line(
            &mut md,
            "| ID | Severity / 重大度 | Title / 件名 | Status / 状態 | Created / 発生 | Resolved / 解決 | Duration / 所要時間 |",
        );
        line(&mut md, "|---|---|---|---|---|---|---:|");
        for i in &r.incidents {
            line(
                &mut md,
                &format!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    cell(&i.id),
                    cell(&i.severity),
                    cell(&i.title),
                    cell(&i.status),
                    cell(&i.created_at),
                    i.resolved_at.as_deref().map_or_else(|| "-".to_owned(), cell),
                    i.duration_seconds.map_or_else(|| "ongoing / 対応中".to_owned(), human_seconds)
                ),
            );
        }
    }
    line(&mut md, "");

    line(&mut md, "## Flag changes / フラグ変更");
    line(&mut md, "");
    if r.flag_changes.is_empty() {
        line(&mut md, "None. / なし。");
    } else {
        line(&mut md, "| Time / 日時 | Version / バージョン | Author / 変更者 | Summary / 概要 |");
        line(&mut md, "|---|---:|---|---|");
        for f in &r.flag_changes {
            line(&mut md, &format!("| {} | {} | {} | {} |", cell(&f.at), f.version, cell(&f.author), cell(&f.summary)));
        }
    }
    line(&mut md, "");

    line(&mut md, "## Notes / 注記");
    line(&mut md, "");
    line(
        &mut md,
        "- Systems are API-key principals; totals and systems count every operation, the tools table `tools/call` only. / システムは API キーの主体。合計とシステム別は全操作、ツール別は `tools/call` のみ。",
    );
    line(
        &mut md,
        "- Errors are outcomes other than `ok`, denials included; error rate = errors / calls. / エラーは `ok` 以外の結果（拒否を含む）。",
    );
    line(
        &mut md,
        "- Availability = 1 − (internal + unavailable + timeout) / calls, rounded down. / 可用性はサーバー側の失敗を除いた割合（切り捨て）。",
    );
    line(
        &mut md,
        "- Latency percentiles are exact, nearest rank (rank ⌈p·n/100⌉). / レイテンシは最近順位法による正確な値。",
    );
    if r.skipped_records > 0 {
        line(
            &mut md,
            &format!(
                "- {} audit records had an unreadable time and were left out. / 時刻を読めない監査記録 {} 件を除外。",
                r.skipped_records, r.skipped_records
            ),
        );
    }
    for w in &r.warnings {
        line(&mut md, &format!("- {}", w.replace(['\r', '\n'], " ")));
    }
    md
}

/// The CSV header of [`render_csv`].
pub const REPORT_CSV_HEADER: [&str; 13] = [
    "period",
    "system",
    "tool",
    "calls",
    "ok",
    "errors",
    "denied",
    "server_errors",
    "error_rate",
    "availability",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
];

/// One row per (system, tool) with a header (RFC 4180, CRLF). Rates are
/// fractions with six decimals, latencies milliseconds with three; an
/// unknown value is an empty field.
pub fn render_csv(r: &Report) -> String {
    let mut out = String::with_capacity(256 + r.tools.len() * 128);
    push_row(&mut out, REPORT_CSV_HEADER);
    let opt = |x: Option<f64>, decimals: usize| x.map_or_else(String::new, |v| format!("{v:.decimals$}"));
    for row in &r.tools {
        let s = &row.stats;
        let fields = [
            r.period.clone(),
            row.system.clone(),
            row.tool.clone(),
            s.calls.to_string(),
            s.ok.to_string(),
            s.errors.to_string(),
            s.denied.to_string(),
            s.server_errors.to_string(),
            format!("{:.6}", s.error_rate),
            opt(s.availability, 6),
            opt(s.latency_p50_ms, 3),
            opt(s.latency_p95_ms, 3),
            opt(s.latency_p99_ms, 3),
        ];
        push_row(&mut out, fields.iter().map(String::as_str));
    }
    out
}
