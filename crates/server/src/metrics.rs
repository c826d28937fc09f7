//! `/metrics`: the server's statistics in the Prometheus text exposition
//! format (version 0.0.4).
//!
//! The text is rendered by hand from [`Telemetry`], not through the
//! `prometheus-client` crate. The numbers already live in core's
//! [`Telemetry`] (atomics and an HDR histogram per target, recorded by the
//! telemetry layer); `prometheus-client` would want its own metric objects
//! registered up front and updated on the request path, or a custom collector
//! that does the same conversion as this file, for a format that is a few lines
//! of `# HELP`, `# TYPE` and `name{labels} value`. Rendering a snapshot at
//! scrape time costs nothing per call and adds no dependency.
//!
//! Families:
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `plexus_calls_total` | counter | `target` |
//! | `plexus_call_errors_total` | counter | `target` |
//! | `plexus_call_duration_seconds` | summary (0.5, 0.9, 0.99; since start) | `target` |
//! | `plexus_rate_limited_total` | counter | |
//! | `plexus_tenant_rate_limited_total` | counter | `tenant` |
//! | `plexus_in_flight_calls` | gauge | |
//! | `plexus_audit_queue_depth` | gauge | |
//! | `plexus_uptime_seconds` | gauge | |
//!
//! The call and rate-limit families appear only when the server was given the
//! pipeline's [`Telemetry`], the audit queue only when it was given the audit
//! sink ([`crate::ServerParts`]). Quantiles are computed from all calls since
//! the server started (an HDR histogram is not windowed).
//!
//! The endpoint is always on and needs no MCP credential, like `/healthz`. It
//! names tools, prompts, resources and tenants, so an operator who must not
//! show those keeps the port off public networks (or filters `/metrics` in the
//! reverse proxy).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plexus_core::ports::AuditSink;
use plexus_core::telemetry::Telemetry;

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Quantiles of the latency summary, with their label values.
const QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")];

const MICROS_PER_SEC: f64 = 1e6;

/// What `/metrics` reads, held by the server.
pub(crate) struct Metrics {
    telemetry: Option<Arc<Telemetry>>,
    audit: Option<Arc<dyn AuditSink>>,
    in_flight: Arc<AtomicUsize>,
    started: Instant,
}

impl Metrics {
    pub(crate) fn new(
        telemetry: Option<Arc<Telemetry>>,
        audit: Option<Arc<dyn AuditSink>>,
        in_flight: Arc<AtomicUsize>,
    ) -> Self {
        Self { telemetry, audit, in_flight, started: Instant::now() }
    }

    /// The telemetry the pipeline records into, if any.
    pub(crate) fn telemetry(&self) -> Option<&Arc<Telemetry>> {
        self.telemetry.as_ref()
    }

    /// Calls in flight, the audit queue and the uptime, now.
    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            audit_queue_depth: self.audit.as_ref().map(|a| a.queue_depth()),
            uptime: self.started.elapsed(),
        }
    }

    /// The current metrics as exposition text.
    pub(crate) fn render(&self) -> String {
        let gauges = Gauges {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            audit_queue_depth: self.audit.as_ref().map(|a| a.queue_depth()),
            uptime: self.started.elapsed(),
        };
        render(self.telemetry.as_deref(), &gauges)
    }
}

/// The point-in-time values that do not come from [`Telemetry`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub(crate) in_flight: usize,
    pub(crate) audit_queue_depth: Option<usize>,
    pub(crate) uptime: Duration,
}

/// Render the exposition text.
pub(crate) fn render(telemetry: Option<&Telemetry>, gauges: &Gauges) -> String {
    let mut out = String::with_capacity(4096);
    if let Some(t) = telemetry {
        render_telemetry(&mut out, t);
    }
    header(&mut out, "plexus_in_flight_calls", "gauge", "Calls running now.");
    sample(&mut out, "plexus_in_flight_calls", &[], gauges.in_flight);
    if let Some(depth) = gauges.audit_queue_depth {
        header(&mut out, "plexus_audit_queue_depth", "gauge", "Audit records accepted but not yet durable.");
        sample(&mut out, "plexus_audit_queue_depth", &[], depth);
    }
    header(&mut out, "plexus_uptime_seconds", "gauge", "Seconds since the server started.");
    sample(&mut out, "plexus_uptime_seconds", &[], gauges.uptime.as_secs_f64());
    out
}

fn render_telemetry(out: &mut String, t: &Telemetry) {
    let targets = t.snapshot();
    let summaries: Vec<_> = targets.iter().map(|(_, s)| s.latency_summary(&QUANTILES.map(|(q, _)| q))).collect();

    header(out, "plexus_calls_total", "counter", "Calls finished, per target.");
    for (name, s) in &targets {
        sample(out, "plexus_calls_total", &[("target", name)], s.calls.load(Ordering::Relaxed));
    }
    header(out, "plexus_call_errors_total", "counter", "Calls that failed or returned a tool error, per target.");
    for (name, s) in &targets {
        sample(out, "plexus_call_errors_total", &[("target", name)], s.errors.load(Ordering::Relaxed));
    }
    header(
        out,
        "plexus_call_duration_seconds",
        "summary",
        "Call latency as the caller saw it, per target, since the server started.",
    );
    for ((name, _), summary) in targets.iter().zip(&summaries) {
        for ((_, label), (_, us)) in QUANTILES.iter().zip(&summary.quantiles_us) {
            let labels = [("target", name.as_str()), ("quantile", label)];
            sample(out, "plexus_call_duration_seconds", &labels, *us as f64 / MICROS_PER_SEC);
        }
        let sum = summary.sum_us as f64 / MICROS_PER_SEC;
        sample(out, "plexus_call_duration_seconds_sum", &[("target", name)], sum);
        sample(out, "plexus_call_duration_seconds_count", &[("target", name)], summary.count);
    }

    for c in t.counters() {
        header(out, c.name, "counter", c.help);
        sample(out, c.name, &[], c.value.load(Ordering::Relaxed));
    }

    header(out, "plexus_rate_limited_total", "counter", "Calls refused by the rate limit.");
    sample(out, "plexus_rate_limited_total", &[], t.rate_limited());
    header(out, "plexus_tenant_rate_limited_total", "counter", "Calls refused by the rate limit, per tenant.");
    for (tenant, n) in t.rate_limited_by_tenant() {
        sample(out, "plexus_tenant_rate_limited_total", &[("tenant", tenant.as_str())], n);
    }
}

/// `# HELP` and `# TYPE` lines. Help texts are constants without `\` or
/// newlines, so they need no escaping.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{label="value",...} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        out.push('}');
    }
    // Display of f64 never uses exponent notation, which the format accepts either way.
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and line feed, and nothing else.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use plexus_core::context::TenantId;

    use super::*;

    #[test]
    fn renders_a_known_snapshot_exactly() {
        let t = Telemetry::default();
        for us in [100, 200, 300, 400] {
            t.record("echo", Duration::from_micros(us), true);
        }
        t.record("whoami", Duration::from_millis(2), false);
        t.record_rate_limited(&TenantId::new("acme"));
        t.record_rate_limited(&TenantId::new("acme"));
        t.record_rate_limited(&TenantId::new("globex"));
        let gauges = Gauges { in_flight: 3, audit_queue_depth: Some(7), uptime: Duration::from_millis(12_500) };
        let expected = "\
# HELP plexus_calls_total Calls finished, per target.
# TYPE plexus_calls_total counter
plexus_calls_total{target=\"echo\"} 4
plexus_calls_total{target=\"whoami\"} 1
# HELP plexus_call_errors_total Calls that failed or returned a tool error, per target.
# TYPE plexus_call_errors_total counter
plexus_call_errors_total{target=\"echo\"} 0
plexus_call_errors_total{target=\"whoami\"} 1
# HELP plexus_call_duration_seconds Call latency as the caller saw it, per target, since the server started.
# TYPE plexus_call_duration_seconds summary
plexus_call_duration_seconds{target=\"echo\",quantile=\"0.5\"} 0.0002
plexus_call_duration_seconds{target=\"echo\",quantile=\"0.9\"} 0.0004
plexus_call_duration_seconds{target=\"echo\",quantile=\"0.99\"} 0.0004
plexus_call_duration_seconds_sum{target=\"echo\"} 0.001
plexus_call_duration_seconds_count{target=\"echo\"} 4
plexus_call_duration_seconds{target=\"whoami\",quantile=\"0.5\"} 0.002
plexus_call_duration_seconds{target=\"whoami\",quantile=\"0.9\"} 0.002
plexus_call_duration_seconds{target=\"whoami\",quantile=\"0.99\"} 0.002
plexus_call_duration_seconds_sum{target=\"whoami\"} 0.002
plexus_call_duration_seconds_count{target=\"whoami\"} 1
# HELP plexus_rate_limited_total Calls refused by the rate limit.
# TYPE plexus_rate_limited_total counter
plexus_rate_limited_total 3
# HELP plexus_tenant_rate_limited_total Calls refused by the rate limit, per tenant.
# TYPE plexus_tenant_rate_limited_total counter
plexus_tenant_rate_limited_total{tenant=\"acme\"} 2
plexus_tenant_rate_limited_total{tenant=\"globex\"} 1
# HELP plexus_in_flight_calls Calls running now.
# TYPE plexus_in_flight_calls gauge
plexus_in_flight_calls 3
# HELP plexus_audit_queue_depth Audit records accepted but not yet durable.
# TYPE plexus_audit_queue_depth gauge
plexus_audit_queue_depth 7
# HELP plexus_uptime_seconds Seconds since the server started.
# TYPE plexus_uptime_seconds gauge
plexus_uptime_seconds 12.5
";
        assert_eq!(render(Some(&t), &gauges), expected);
    }

    #[test]
    fn without_telemetry_or_audit_only_the_server_gauges_remain() {
        let gauges = Gauges { in_flight: 0, audit_queue_depth: None, uptime: Duration::from_secs(1) };
        let expected = "\
# HELP plexus_in_flight_calls Calls running now.
# TYPE plexus_in_flight_calls gauge
plexus_in_flight_calls 0
# HELP plexus_uptime_seconds Seconds since the server started.
# TYPE plexus_uptime_seconds gauge
plexus_uptime_seconds 1
";
        assert_eq!(render(None, &gauges), expected);
    }

    #[test]
    fn label_values_are_escaped() {
        let t = Telemetry::default();
        t.record("a\"b\\c\nd", Duration::from_micros(1), true);
        t.record("ツール/日本語", Duration::from_micros(1), true);
        let text = render(Some(&t), &Gauges { in_flight: 0, audit_queue_depth: None, uptime: Duration::ZERO });
        assert!(text.contains("plexus_calls_total{target=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
        assert!(text.contains("plexus_calls_total{target=\"ツール/日本語\"} 1\n"), "{text}");
        // Every line is a comment or one sample; no raw newline leaked out of a label.
        for line in text.lines() {
            assert!(line.starts_with('#') || line.starts_with("plexus_"), "{line}");
        }
    }

    #[test]
    fn metrics_reads_the_live_gauges() {
        let in_flight = Arc::new(AtomicUsize::new(2));
        let m = Metrics::new(Some(Arc::new(Telemetry::default())), None, Arc::clone(&in_flight));
        assert!(m.render().contains("\nplexus_in_flight_calls 2\n"));
        in_flight.store(0, Ordering::Relaxed);
        assert!(m.render().contains("\nplexus_in_flight_calls 0\n"));
        assert!(!m.render().contains("plexus_audit_queue_depth"));
    }
}
