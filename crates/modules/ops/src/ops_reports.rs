//! Tools over reports, the audit export, metrics and alerts, and the loop
//! that samples metrics and evaluates `config/alert-rules.json`.
//!
//! Reports and exports read the audit log of the caller's tenant: every
//! system the hub serves is a principal there. The alert loop samples
//! every [`ALERT_INTERVAL`] (`OpsConfig::alert_interval`); a rule that fires writes a notice to
//! `alerts/` (a resource, announced to subscribers) and, when the rule
//! says so, opens an incident (which notifies the webhooks).

use std::sync::Arc;
use std::time::Duration;

use plexus_core::content::Content;
use plexus_core::ports::{AuditQuery, AuditScope};
use plexus_core::{ToolDef, ToolError, ToolOutput, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::alerts::{
    ActiveAlert, AlertEvaluator, AlertTransition, Metrics, MetricsSampler, alert_markdown, alert_notice_path,
    parse_rules,
};
use crate::hub::{Hub, URI_PREFIX};
use crate::reports::{
    FlagChange, IncidentSummary, Period, audit_csv, monthly_report, parse_date_range, render_csv, render_markdown,
};

/// The alert rules' document in the registry.
pub(crate) const ALERT_RULES_DOC: &str = "config/alert-rules.json";
/// How often the alert loop samples.
pub const ALERT_INTERVAL: Duration = Duration::from_secs(10);
/// Most audit records one report or export reads.
const MAX_RECORDS: usize = 5_000_000;

fn unavailable(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> ToolError {
    ToolError::Unavailable { message: format!("{what} failed"), source: Some(Box::new(e)) }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReportArgs {
    /// A month (`2026-11`) or a quarter (`2026-Q4`).
    period: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ReportOut {
    markdown: String,
    csv: String,
    calls: u64,
    error_rate: Option<f64>,
    availability: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExportArgs {
    /// First day, `YYYY-MM-DD`.
    start_date: String,
    /// Last day (included), `YYYY-MM-DD`.
    end_date: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct MetricsOut {
    metrics: Metrics,
    active_alerts: Vec<ActiveAlert>,
}

/// The shared state of the alert loop, read by `get_ops_metrics`.
#[derive(Default)]
pub(crate) struct AlertState {
    latest: parking_lot::Mutex<Option<Metrics>>,
    active: parking_lot::Mutex<Vec<ActiveAlert>>,
}

pub(crate) async fn report(
    hub: &Hub,
    tenant: &str,
    period: Period,
) -> Result<(String, String, crate::reports::Report), ToolError> {
    let (from, to) = period.bounds();
    let records = audit_records(hub, tenant, &from, &to).await?;
    let incidents: Vec<IncidentSummary> = hub
        .incidents
        .lock()
        .await
        .iter()
        .map(|i| IncidentSummary {
            id: i.id.clone(),
            severity: i.severity.as_str().into(),
            title: i.title.clone(),
            status: i.status.as_str().into(),
            created_at: rfc3339(i.created_at),
            resolved_at: i.resolved_at.map(rfc3339),
        })
        .collect();
    let flag_changes: Vec<FlagChange> = hub
        .registry
        .history(crate::hub::FLAGS_DOC)
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.time >= from && v.time < to)
        .map(|v| FlagChange {
            at: v.time,
            author: v.author,
            version: v.version,
            summary: format!(
                "{} ({} bytes, {})",
                if v.deleted { "deleted" } else { "changed" },
                v.size,
                v.source.as_str()
            ),
        })
        .collect();
    let report = monthly_report(period, &records, &incidents, &flag_changes);
    let (md_name, csv_name) = period.report_paths();
    hub.registry
        .put_generated(&md_name, &render_markdown(&report))
        .await
        .map_err(|e| unavailable("writing the report", e))?;
    hub.registry
        .put_generated(&csv_name, &render_csv(&report))
        .await
        .map_err(|e| unavailable("writing the report", e))?;
    Ok((md_name, csv_name, report))
}

/// The audit records of `tenant` in `[from, to)`.
async fn audit_records(
    hub: &Hub,
    tenant: &str,
    from: &str,
    to: &str,
) -> Result<Vec<plexus_core::audit::AuditRecord>, ToolError> {
    let reader = hub
        .audit_reader
        .as_ref()
        .ok_or_else(|| ToolError::Unavailable { message: "no audit log is attached".into(), source: None })?;
    let q = AuditQuery {
        scope: AuditScope::Tenant(tenant.to_owned()),
        from: Some(from.to_owned()),
        to: Some(to.to_owned()),
        principal: None,
        target: None,
        outcome: None,
        limit: MAX_RECORDS,
    };
    reader.query(&q).await.map_err(|e| unavailable("reading the audit log", e))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub(crate) fn report_tools(tb: Toolbox, hub: &Arc<Hub>, state: &Arc<AlertState>) -> Toolbox {
    let (h1, h2, s3) = (Arc::clone(hub), Arc::clone(hub), Arc::clone(state));
    tb.typed(
        ToolDef::new("generate_report", "Write the operations report of a month (2026-11) or quarter (2026-Q4) to reports/: calls per system and tool, error rate, availability, latency percentiles, incidents and flag changes (Markdown and CSV); also written on the first of each month")
            .title("Generate an operations report")
            .idempotent(),
        move |cx, a: ReportArgs| {
            let hub = h1.clone();
            async move {
                let period: Period = a.period.parse().map_err(|e: crate::reports::ReportError| ToolError::Failed(e.to_string()))?;
                let (md, csv, report) = report(&hub, cx.principal.tenant.as_str(), period).await?;
                Ok(ReportOut {
                    markdown: format!("{URI_PREFIX}{md}"),
                    csv: format!("{URI_PREFIX}{csv}"),
                    calls: report.totals.calls,
                    error_rate: Some(report.totals.error_rate),
                    availability: report.totals.availability,
                })
            }
        },
    )
    .raw(
        ToolDef::new("export_audit_logs", "Export every system's audit records between two dates (inclusive) as CSV into audit/ (audit/Q2_2025.csv for a calendar quarter) and return a link to it").title("Export audit logs"),
        plexus_core::module::schema_for::<ExportArgs>(),
        move |cx, args| {
            let hub = h2.clone();
            async move {
                let a: ExportArgs = serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
                let range = parse_date_range(&a.start_date, &a.end_date).map_err(|e| ToolError::Failed(e.to_string()))?;
                let (from, to) = range.bounds();
                let records = audit_records(&hub, cx.principal.tenant.as_str(), &from, &to).await?;
                let name = range.export_name();
                let csv = audit_csv(&records);
                hub.registry.put_generated(&name, &csv).await.map_err(|e| unavailable("writing the export", e))?;
                let uri = format!("{URI_PREFIX}{name}");
                let mut out = ToolOutput::contents(vec![
                    Content::text(format!("{} audit records from {} to {} written to {uri}", records.len(), a.start_date, a.end_date)),
                    Content::ResourceLink { uri: uri.clone(), name, description: Some(format!("{} audit records", records.len())), mime_type: Some("text/csv".into()) },
                ]);
                out.structured = Some(serde_json::json!({"uri": uri, "records": records.len(), "bytes": csv.len()}));
                Ok(out)
            }
        },
    )
    .typed(
        ToolDef::new("get_ops_metrics", "Process and host metrics (CPU, memory) and the pipeline's request rate, error rate and latency over the last window, with the alerts firing").title("Operations metrics").read_only(),
        move |_cx, _a: crate::workflows::NoArgs| {
            let state = s3.clone();
            async move {
                let metrics = state.latest.lock().clone().unwrap_or_default();
                Ok(MetricsOut { metrics, active_alerts: state.active.lock().clone() })
            }
        },
    )
}

/// Sample, evaluate the rules, act on transitions; write the monthly
/// report when a month has begun.
pub(crate) async fn alert_loop(
    hub: std::sync::Weak<Hub>,
    state: Arc<AlertState>,
    telemetry: Arc<plexus_core::telemetry::Telemetry>,
    interval: Duration,
) {
    let mut sampler = MetricsSampler::new(telemetry);
    let mut evaluator = AlertEvaluator::new(Vec::new());
    let mut rules_sha = String::new();
    let mut next_report = crate::reports::next_monthly_run(time::OffsetDateTime::now_utc());
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let (s, metrics) = match tokio::task::spawn_blocking(move || {
            let m = sampler.sample();
            (sampler, m)
        })
        .await
        {
            Ok(v) => v,
            Err(_) => return,
        };
        sampler = s;
        let doc = hub.registry.get(ALERT_RULES_DOC).ok();
        let sha = doc.as_ref().map(|d| d.sha256.clone()).unwrap_or_default();
        let mut transitions = Vec::new();
        if sha != rules_sha {
            let rules = doc.and_then(|d| d.value.as_deref().map(parse_rules)).and_then(Result::ok).unwrap_or_default();
            transitions.extend(evaluator.replace_rules(rules));
            rules_sha = sha;
        }
        let now = time::OffsetDateTime::now_utc();
        transitions.extend(evaluator.observe(now, &metrics));
        *state.latest.lock() = Some(metrics);
        *state.active.lock() = evaluator.active();
        for t in transitions {
            act(&hub, &t, now).await;
        }
        if now >= next_report {
            let period = Period::previous_month(now.date());
            if let Err(e) = report(&hub, "default", period).await {
                tracing::error!(error = %e, "the monthly report could not be written");
            }
            next_report = crate::reports::next_monthly_run(now);
        }
    }
}

async fn act(hub: &Hub, t: &AlertTransition, now: time::OffsetDateTime) {
    let path = alert_notice_path(t, now);
    if let Err(e) = hub.registry.put_generated(&path, &alert_markdown(t, now)).await {
        tracing::error!(error = %e, notice = %path, "an alert notice could not be written");
    }
    tracing::warn!(rule = %t.rule().name, state = t.state(), "alert");
    if let AlertTransition::Firing { rule, value, .. } = t
        && rule.open_incident
    {
        let new = crate::incidents::NewIncident {
            severity: rule.severity,
            title: format!("Alert {}: {} is {}", rule.name, rule.metric.as_str(), rule.metric.format_value(*value)),
            affected: Vec::new(),
            teams: if rule.teams.is_empty() { vec!["ops".into()] } else { rule.teams.clone() },
            author: "plexus-alerts".into(),
            note: if rule.description.is_empty() { rule.condition_text() } else { rule.description.clone() },
        };
        if let Err(e) = crate::workflows::open_incident(hub, new, now).await {
            tracing::error!(error = %e, "an alert could not open an incident");
        }
    }
}
