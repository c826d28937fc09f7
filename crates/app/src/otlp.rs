//! The optional OTLP exporter: one span per call, sent to an OpenTelemetry
//! collector as OTLP/HTTP with JSON encoding (`POST {endpoint}/v1/traces`).
//!
//! The pipeline's telemetry layer hands each finished call to
//! [`OtlpExporter::export`], which only queues it (bounded; a full queue drops
//! the span and counts it, so a slow collector never slows calls). A
//! background task sends what has queued every second or every
//! [`MAX_BATCH`] spans. A call that carried a W3C `traceparent` header becomes
//! a child span in the caller's trace; otherwise it starts a trace.
//!
//! Attributes follow the OpenTelemetry semantic conventions for MCP where
//! they exist (`mcp.method.name`, `gen_ai.tool.name`, `mcp.resource.uri`,
//! `jsonrpc.request.id`, `error.type`), plus `plexus.tenant`. Arguments,
//! results and credentials are never exported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use plexus_core::telemetry::{CallSpan, SpanExporter};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Spans waiting to be sent at most; more are dropped (and counted).
const QUEUE: usize = 16_384;
/// Spans per request at most.
pub const MAX_BATCH: usize = 512;
/// Longest a span waits in the queue.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// SPAN_KIND_SERVER.
const KIND_SERVER: u8 = 2;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

/// Queues spans for the background sender.
#[derive(Debug)]
pub struct OtlpExporter {
    tx: mpsc::Sender<CallSpan>,
    dropped: AtomicU64,
}

impl SpanExporter for OtlpExporter {
    fn export(&self, span: CallSpan) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl OtlpExporter {
    /// Spans dropped because the queue was full or the sender stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The traces URL for an OTLP/HTTP base endpoint (`http://host:4318` →
/// `http://host:4318/v1/traces`); a URL already ending in `/v1/traces` is kept.
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        anyhow::bail!(
            "telemetry.otlp_endpoint `{endpoint}` must be an http(s) URL (OTLP/HTTP, e.g. http://127.0.0.1:4318)"
        );
    }
    Ok(if e.ends_with("/v1/traces") { e.to_owned() } else { format!("{e}/v1/traces") })
}

/// Start the sender task (in the current runtime) and return the exporter
/// to give the telemetry.
pub fn spawn(url: String, service: &str, version: &str) -> anyhow::Result<Arc<OtlpExporter>> {
    let client = reqwest::Client::builder().timeout(SEND_TIMEOUT).build()?;
    let (tx, mut rx) = mpsc::channel::<CallSpan>(QUEUE);
    let resource = json!({ "attributes": [
        attr("service.name", service),
        attr("service.version", version),
        attr("telemetry.sdk.name", "plexus"),
    ]});
    let scope = json!({ "name": "plexus", "version": version });
    tokio::spawn(async move {
        let mut last_warning: Option<Instant> = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                break;
            }
            // Let the batch fill for up to a second.
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            while batch.len() < MAX_BATCH {
                let room = MAX_BATCH - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let body = request(&resource, &scope, &batch);
            let n = batch.len();
            batch.clear();
            let result = client.post(&url).json(&body).send().await.and_then(|r| r.error_for_status());
            if let Err(e) = result
                && last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(30))
            {
                tracing::warn!(error = %e, url = %url, spans = n, "OTLP export failed; spans dropped");
                last_warning = Some(Instant::now());
            }
        }
    });
    Ok(Arc::new(OtlpExporter { tx, dropped: AtomicU64::new(0) }))
}

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let u = uuid::Uuid::new_v4();
    let bytes = u.as_bytes();
    b.copy_from_slice(&bytes[..N]);
    b
}

/// Trace id and parent span id of a valid W3C `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
pub fn parse_traceparent(header: &str) -> Option<(String, String)> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if version == "ff" || !hex(version, 2) || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    Some((trace.to_owned(), parent.to_owned()))
}

fn nanos(t: std::time::SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// One span in OTLP JSON (ids hex, 64-bit times as decimal strings).
fn span(s: &CallSpan) -> Value {
    let (trace_id, parent) = match s.traceparent.as_deref().and_then(parse_traceparent) {
        Some((t, p)) => (t, Some(p)),
        None => (plexus_core::audit::to_hex(&random::<16>()), None),
    };
    let start = nanos(s.start);
    let mut attributes = vec![attr("mcp.method.name", s.method), attr("jsonrpc.request.id", &s.request_id)];
    match s.method {
        "tools/call" => attributes.push(attr("gen_ai.tool.name", &s.target)),
        "resources/read" | "resources/subscribe" => attributes.push(attr("mcp.resource.uri", &s.target)),
        "prompts/get" => attributes.push(attr("gen_ai.prompt.name", &s.target)),
        _ => {}
    }
    if let Some(t) = &s.tenant {
        attributes.push(attr("plexus.tenant", t.as_str()));
    }
    if let Some(e) = s.error {
        attributes.push(attr("error.type", e));
    }
    let name = if s.method.ends_with("/list") { s.method.to_owned() } else { format!("{} {}", s.method, s.target) };
    let mut span = json!({
        "traceId": trace_id,
        "spanId": plexus_core::audit::to_hex(&random::<8>()),
        "name": name,
        "kind": KIND_SERVER,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + s.duration.as_nanos()).to_string(),
        "attributes": attributes,
        "status": match s.error {
            None => json!({ "code": STATUS_OK }),
            Some(e) => json!({ "code": STATUS_ERROR, "message": e }),
        },
    });
    if let Some(p) = parent {
        span["parentSpanId"] = Value::String(p);
    }
    span
}

/// An `ExportTraceServiceRequest` in OTLP JSON.
fn request(resource: &Value, scope: &Value, spans: &[CallSpan]) -> Value {
    json!({ "resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{ "scope": scope, "spans": spans.iter().map(span).collect::<Vec<_>>() }],
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_strictly() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse_traceparent(tp), Some(("4bf92f3577b34da6a3ce929d0e0e4736".into(), "00f067aa0ba902b7".into())));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn endpoints_get_the_traces_path_once() {
        assert_eq!(traces_url("http://c:4318").unwrap(), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/").unwrap(), "http://c:4318/v1/traces");
        assert_eq!(traces_url("https://c/v1/traces").unwrap(), "https://c/v1/traces");
        assert!(traces_url("c:4318").is_err());
    }
}
