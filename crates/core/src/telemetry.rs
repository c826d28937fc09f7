//! Per-target call statistics (counts, errors and an HDR latency histogram)
//! and rate-limit rejections, in total and per tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};

use crate::context::TenantId;

/// Statistics of one tool, prompt or resource family.
#[derive(Debug)]
pub struct TargetStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    latency: Mutex<Latency>,
}

/// The latency histogram and the exact sum of what it recorded.
#[derive(Debug)]
struct Latency {
    us: Histogram<u64>,
    sum_us: u64,
}

/// Latency quantiles, count and sum of one target, read at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySummary {
    /// `(q, microseconds)` for each quantile asked for.
    pub quantiles_us: Vec<(f64, u64)>,
    /// Calls recorded.
    pub count: u64,
    /// Sum of the recorded latencies, in microseconds.
    pub sum_us: u64,
}

impl TargetStats {
    fn new() -> Self {
        // 1 us .. 60 s at 3 significant digits.
        let h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid");
        Self { calls: AtomicU64::new(0), errors: AtomicU64::new(0), latency: Mutex::new(Latency { us: h, sum_us: 0 }) }
    }

    /// Latency at quantile `q` (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.latency.lock().us.value_at_quantile(q)
    }

    pub fn histogram(&self) -> Histogram<u64> {
        self.latency.lock().us.clone()
    }

    /// The latency at each of `quantiles` (0..=1), with count and sum, all
    /// read under one lock so they agree with each other.
    pub fn latency_summary(&self, quantiles: &[f64]) -> LatencySummary {
        let l = self.latency.lock();
        LatencySummary {
            quantiles_us: quantiles.iter().map(|&q| (q, l.us.value_at_quantile(q))).collect(),
            count: l.us.len(),
            sum_us: l.sum_us,
        }
    }
}

/// Statistics of every target, rate-limit rejections, and the slow-call
/// threshold.
#[derive(Debug)]
pub struct Telemetry {
    targets: RwLock<HashMap<String, Arc<TargetStats>>>,
    rate_limited: AtomicU64,
    /// Only tenants that passed the tenancy gate get here, so the map is
    /// bounded by the configured tenants.
    rate_limited_by_tenant: Mutex<HashMap<TenantId, u64>>,
    pub slow_call: Duration,
    exporter: OnceLock<Arc<dyn SpanExporter>>,
    /// Counters modules register (`plexus_knowledge_cache_hits_total`, ...).
    counters: Mutex<Vec<Counter>>,
}

/// A named counter a module owns and `/metrics` shows.
#[derive(Debug, Clone)]
pub struct Counter {
    /// The metric name (`plexus_<module>_<what>_total`).
    pub name: &'static str,
    /// One line of help (no backslash or newline).
    pub help: &'static str,
    pub value: Arc<AtomicU64>,
}

/// One finished call, as a trace span (for an exporter such as OTLP).
#[derive(Debug, Clone)]
pub struct CallSpan {
    /// `tools/call`, `resources/read`, ...
    pub method: &'static str,
    /// Tool or prompt name, or resource URI.
    pub target: String,
    pub request_id: Arc<str>,
    /// The caller's tenant, once authenticated.
    pub tenant: Option<TenantId>,
    /// `None` when the call succeeded; else the error code (`tool_error`
    /// for a tool's own `isError` result).
    pub error: Option<&'static str>,
    pub start: SystemTime,
    pub duration: Duration,
    /// The caller's W3C `traceparent`, if any.
    pub traceparent: Option<Arc<str>>,
}

/// Receives every finished call. Must not block: it runs on the request
/// path (queue and return).
pub trait SpanExporter: std::fmt::Debug + Send + Sync + 'static {
    fn export(&self, span: CallSpan);
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(Duration::from_millis(100))
    }
}

impl Telemetry {
    pub fn new(slow_call: Duration) -> Self {
        Self {
            targets: RwLock::new(HashMap::new()),
            rate_limited: AtomicU64::new(0),
            rate_limited_by_tenant: Mutex::new(HashMap::new()),
            slow_call,
            exporter: OnceLock::new(),
            counters: Mutex::new(Vec::new()),
        }
    }

    /// A counter shown on `/metrics` under `name`; registering a name twice
    /// returns the same counter.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Arc<AtomicU64> {
        let mut counters = self.counters.lock();
        if let Some(c) = counters.iter().find(|c| c.name == name) {
            return Arc::clone(&c.value);
        }
        let value = Arc::new(AtomicU64::new(0));
        counters.push(Counter { name, help, value: Arc::clone(&value) });
        value
    }

    /// The registered counters, in registration order.
    pub fn counters(&self) -> Vec<Counter> {
        self.counters.lock().clone()
    }

    /// Send a span per call to `exporter` from now on (once; later calls are ignored).
    pub fn set_exporter(&self, exporter: Arc<dyn SpanExporter>) {
        let _ = self.exporter.set(exporter);
    }

    /// The span exporter, if one is set.
    pub fn exporter(&self) -> Option<&Arc<dyn SpanExporter>> {
        self.exporter.get()
    }

    fn stats(&self, target: &str) -> Arc<TargetStats> {
        if let Some(s) = self.targets.read().get(target) {
            return Arc::clone(s);
        }
        Arc::clone(self.targets.write().entry(target.to_owned()).or_insert_with(|| Arc::new(TargetStats::new())))
    }

    /// Record one finished call.
    pub fn record(&self, target: &str, elapsed: Duration, ok: bool) {
        let s = self.stats(target);
        s.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            s.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        let mut l = s.latency.lock();
        l.us.saturating_record(us);
        l.sum_us = l.sum_us.saturating_add(us);
    }

    /// Record one call refused by the rate limit gate.
    pub fn record_rate_limited(&self, tenant: &TenantId) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        *self.rate_limited_by_tenant.lock().entry(tenant.clone()).or_insert(0) += 1;
    }

    /// Calls refused by the rate limit gate, in total.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Calls refused by the rate limit gate, per tenant, sorted by tenant.
    pub fn rate_limited_by_tenant(&self) -> Vec<(TenantId, u64)> {
        let mut v: Vec<_> = self.rate_limited_by_tenant.lock().iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A snapshot of every target, sorted by name.
    pub fn snapshot(&self) -> Vec<(String, Arc<TargetStats>)> {
        let mut v: Vec<_> = self.targets.read().iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_counts_errors_and_percentiles() {
        let t = Telemetry::default();
        for i in 1..=100u64 {
            t.record("echo", Duration::from_micros(i * 10), i % 10 != 0);
        }
        let snap = t.snapshot();
        let (name, s) = &snap[0];
        assert_eq!(name, "echo");
        assert_eq!(s.calls.load(Ordering::Relaxed), 100);
        assert_eq!(s.errors.load(Ordering::Relaxed), 10);
        let p50 = s.quantile_us(0.5);
        assert!((495..=505).contains(&p50), "{p50}");
        assert!(s.quantile_us(0.99) >= 985);
        let summary = s.latency_summary(&[0.5]);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.sum_us, (1..=100u64).map(|i| i * 10).sum::<u64>());
        assert_eq!(summary.quantiles_us.len(), 1);
    }

    #[test]
    fn counts_rate_limited_calls_in_total_and_per_tenant() {
        let t = Telemetry::default();
        assert_eq!(t.rate_limited(), 0);
        t.record_rate_limited(&TenantId::new("globex"));
        t.record_rate_limited(&TenantId::new("acme"));
        t.record_rate_limited(&TenantId::new("globex"));
        assert_eq!(t.rate_limited(), 3);
        assert_eq!(t.rate_limited_by_tenant(), vec![(TenantId::new("acme"), 1), (TenantId::new("globex"), 2)]);
    }
}
