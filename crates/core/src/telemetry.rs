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

/// The latency histogram and the exact sum of what it recorded, and the
/// last hour minute by minute.
#[derive(Debug)]
struct Latency {
    us: Histogram<u64>,
    sum_us: u64,
    minutes: Box<[Minute; MINUTES]>,
}

/// Minutes of history kept per target (the console's last hour).
pub const MINUTES: usize = 60;

/// Calls the pipeline refused before they reached a tool (unknown or
/// denied names, no credential, no tenant, over the rate): one series, so
/// that names a client makes up never become series of their own.
pub const REFUSED_TARGET: &str = "(refused)";

/// Most distinct targets kept; calls of any further target count under
/// [`OTHER_TARGETS`] (resource URIs are open-ended).
pub const MAX_TARGETS: usize = 1000;

/// The series of the targets past [`MAX_TARGETS`].
pub const OTHER_TARGETS: &str = "(other)";
/// Latency buckets per minute: bucket `i` holds latencies in
/// `[2^(i/4), 2^((i+1)/4))` µs (19% wide), the last one everything from
/// 2^24 µs (16.8 s) up.
const BUCKETS: usize = 96;

/// One minute of one target: calls, errors and a coarse latency histogram
/// (a few hundred bytes, so an hour of every target stays small).
#[derive(Debug, Clone, Copy)]
struct Minute {
    /// Minutes since the Unix epoch this slot holds (slots are reused round-robin).
    minute: u64,
    calls: u32,
    errors: u32,
    buckets: [u32; BUCKETS],
}

impl Minute {
    const EMPTY: Self = Self { minute: 0, calls: 0, errors: 0, buckets: [0; BUCKETS] };
}

fn bucket_of(us: u64) -> usize {
    // floor(4 * log2(us)), from the bit length and the next two bits.
    let us = us.max(1);
    let exp = 63 - us.leading_zeros() as usize;
    let frac = if exp >= 2 { ((us >> (exp - 2)) & 0b11) as usize } else { ((us << (2 - exp)) & 0b11) as usize };
    (exp * 4 + frac).min(BUCKETS - 1)
}

/// The upper edge of bucket `i` in µs (what a quantile in it reports).
fn bucket_upper_us(i: usize) -> u64 {
    let exp = i / 4;
    let frac = (i % 4) as u64 + 1;
    // (4 + frac) / 4 * 2^exp, rounded up
    ((4 + frac) << exp).div_ceil(4)
}

/// One minute of a target (or of all of them), for charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinutePoint {
    /// The minute's start, seconds since the Unix epoch.
    pub start_unix: u64,
    pub calls: u64,
    pub errors: u64,
    /// Latency quantiles in µs, as the upper edge of the bucket they fall in
    /// (at most 19% above the true value); 0 in a minute without calls.
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
}

/// The last hour of one target, oldest minute first (minutes without calls included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSeries {
    pub target: String,
    pub minutes: Vec<MinutePoint>,
}

impl TargetSeries {
    pub fn calls(&self) -> u64 {
        self.minutes.iter().map(|m| m.calls).sum()
    }
    pub fn errors(&self) -> u64 {
        self.minutes.iter().map(|m| m.errors).sum()
    }
}

fn quantile_of(buckets: &[u64; BUCKETS], total: u64, q: f64) -> u64 {
    if total == 0 {
        return 0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return bucket_upper_us(i);
        }
    }
    bucket_upper_us(BUCKETS - 1)
}

fn unix_minute(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
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
        let latency = Latency { us: h, sum_us: 0, minutes: Box::new([Minute::EMPTY; MINUTES]) };
        Self { calls: AtomicU64::new(0), errors: AtomicU64::new(0), latency: Mutex::new(latency) }
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
    /// Calls and errors per tenant since the start (only tenants the
    /// tenancy gate admitted, so bounded by the configured tenants).
    tenant_calls: RwLock<HashMap<TenantId, Arc<(AtomicU64, AtomicU64)>>>,
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
            tenant_calls: RwLock::new(HashMap::new()),
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
        let mut targets = self.targets.write();
        // Names come from clients: past the cap, new ones share one series.
        let name = if targets.len() >= MAX_TARGETS && !targets.contains_key(target) { OTHER_TARGETS } else { target };
        Arc::clone(targets.entry(name.to_owned()).or_insert_with(|| Arc::new(TargetStats::new())))
    }

    /// Record one finished call.
    pub fn record(&self, target: &str, elapsed: Duration, ok: bool) {
        self.record_at(target, elapsed, ok, SystemTime::now());
    }

    /// Record one call that finished at `at` (tests replay time with it).
    pub fn record_at(&self, target: &str, elapsed: Duration, ok: bool, at: SystemTime) {
        let s = self.stats(target);
        s.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            s.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        let minute = unix_minute(at);
        let mut l = s.latency.lock();
        l.us.saturating_record(us);
        l.sum_us = l.sum_us.saturating_add(us);
        #[allow(clippy::cast_possible_truncation)]
        let slot = &mut l.minutes[(minute % MINUTES as u64) as usize];
        if slot.minute != minute {
            *slot = Minute { minute, ..Minute::EMPTY };
        }
        slot.calls = slot.calls.saturating_add(1);
        if !ok {
            slot.errors = slot.errors.saturating_add(1);
        }
        let b = &mut slot.buckets[bucket_of(us)];
        *b = b.saturating_add(1);
    }

    /// The last hour up to `now`, minute by minute: one series per target
    /// that had calls in it (sorted by calls, most first), and the sum of
    /// all targets first, named `*`.
    pub fn series(&self, now: SystemTime) -> Vec<TargetSeries> {
        let last = unix_minute(now);
        let first = last.saturating_sub(MINUTES as u64 - 1);
        let mut total = vec![(0u64, 0u64, [0u64; BUCKETS]); MINUTES];
        let mut out = Vec::new();
        for (name, stats) in self.snapshot() {
            let l = stats.latency.lock();
            let mut mine = vec![(0u64, 0u64, [0u64; BUCKETS]); MINUTES];
            let mut any = false;
            for slot in l.minutes.iter().filter(|m| m.calls > 0 && (first..=last).contains(&m.minute)) {
                #[allow(clippy::cast_possible_truncation)]
                let i = (slot.minute - first) as usize;
                for acc in [&mut mine[i], &mut total[i]] {
                    acc.0 += u64::from(slot.calls);
                    acc.1 += u64::from(slot.errors);
                    for (a, b) in acc.2.iter_mut().zip(slot.buckets.iter()) {
                        *a += u64::from(*b);
                    }
                }
                any = true;
            }
            drop(l);
            if any {
                out.push(TargetSeries { target: name, minutes: points(first, &mine) });
            }
        }
        out.sort_by(|a, b| b.calls().cmp(&a.calls()).then_with(|| a.target.cmp(&b.target)));
        out.insert(0, TargetSeries { target: "*".into(), minutes: points(first, &total) });
        out
    }

    /// Count one finished call of an admitted tenant.
    pub fn record_tenant(&self, tenant: &TenantId, ok: bool) {
        // The read guard must be gone before the write lock is taken.
        let known = self.tenant_calls.read().get(tenant).map(Arc::clone);
        let counts = known.unwrap_or_else(|| Arc::clone(self.tenant_calls.write().entry(tenant.clone()).or_default()));
        counts.0.fetch_add(1, Ordering::Relaxed);
        if !ok {
            counts.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls and errors per tenant since the start, sorted by tenant.
    pub fn tenant_calls(&self) -> Vec<(TenantId, u64, u64)> {
        let mut v: Vec<_> = self
            .tenant_calls
            .read()
            .iter()
            .map(|(t, c)| (t.clone(), c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
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

fn points(first: u64, acc: &[(u64, u64, [u64; BUCKETS])]) -> Vec<MinutePoint> {
    acc.iter()
        .enumerate()
        .map(|(i, (calls, errors, buckets))| MinutePoint {
            start_unix: (first + i as u64) * 60,
            calls: *calls,
            errors: *errors,
            p50_us: quantile_of(buckets, *calls, 0.50),
            p95_us: quantile_of(buckets, *calls, 0.95),
            p99_us: quantile_of(buckets, *calls, 0.99),
        })
        .collect()
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
    fn targets_past_the_cap_share_one_series() {
        let t = Telemetry::default();
        for i in 0..MAX_TARGETS + 50 {
            t.record(&format!("kb://documents/{i}"), Duration::from_micros(5), true);
        }
        // A target seen before the cap keeps its own series.
        t.record("kb://documents/0", Duration::from_micros(5), false);
        let snap = t.snapshot();
        assert_eq!(snap.len(), MAX_TARGETS + 1);
        let calls = |name: &str| {
            let s = &snap.iter().find(|(n, _)| n == name).unwrap().1;
            (s.calls.load(Ordering::Relaxed), s.errors.load(Ordering::Relaxed))
        };
        assert_eq!(calls(OTHER_TARGETS), (50, 0));
        assert_eq!(calls("kb://documents/0"), (2, 1));
        assert!(!snap.iter().any(|(n, _)| n == &format!("kb://documents/{MAX_TARGETS}")));
    }

    #[test]
    fn buckets_are_a_quarter_octave_wide_and_quantiles_land_within_one() {
        for us in [1u64, 2, 3, 5, 7, 100, 1_000, 12_345, 999_999, 16_000_000] {
            let i = bucket_of(us);
            let lower = if i == 0 { 0 } else { bucket_upper_us(i - 1) };
            assert!(
                lower <= us && us < bucket_upper_us(i).max(2),
                "{us} in bucket {i}: [{lower}, {})",
                bucket_upper_us(i)
            );
            assert!(bucket_upper_us(i) as f64 <= (us as f64) * 1.19 + 1.0, "{us}: upper {}", bucket_upper_us(i));
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn the_last_hour_minute_by_minute_per_target_and_in_total() {
        let t = Telemetry::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 * 60);
        let at = |minute: u64, s: u64| t0 + Duration::from_secs(minute * 60 + s);
        // Minute 0: 100 echo calls of 1..100 ms (10 errors); minute 30: 3 slow add calls.
        for i in 1..=100u64 {
            t.record_at("echo", Duration::from_millis(i), i % 10 != 0, at(0, i % 60));
        }
        for _ in 0..3 {
            t.record_at("add", Duration::from_secs(2), true, at(30, 5));
        }
        let series = t.series(at(59, 30));
        assert_eq!(series.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(), ["*", "echo", "add"]);
        let echo = &series[1];
        assert_eq!(echo.minutes.len(), MINUTES);
        assert_eq!(echo.minutes[0].start_unix, 1_000 * 60);
        assert_eq!((echo.minutes[0].calls, echo.minutes[0].errors), (100, 10));
        let p = &echo.minutes[0];
        // True p50 = 50 ms, p95 = 95 ms, p99 = 99 ms; the buckets report at most 19% above.
        for (got, exact) in [(p.p50_us, 50_000.0), (p.p95_us, 95_000.0), (p.p99_us, 99_000.0)] {
            assert!((exact..=exact * 1.19).contains(&(got as f64)), "{got} vs {exact}");
        }
        assert_eq!(echo.minutes[1..].iter().map(|m| m.calls).sum::<u64>(), 0);
        assert_eq!((series[2].minutes[30].calls, series[0].minutes[30].calls, series[0].calls()), (3, 3, 103));
        // An hour later the first minute has left the window; its slot is reused by minute 60.
        t.record_at("echo", Duration::from_millis(1), true, at(60, 0));
        let later = t.series(at(60, 1));
        let echo = later.iter().find(|s| s.target == "echo").unwrap();
        assert_eq!(echo.calls(), 1, "minute 0 is gone, minute 60 counts once");
        assert_eq!(later[0].calls(), 4);
    }

    #[test]
    fn counts_calls_per_tenant() {
        let t = Telemetry::default();
        t.record_tenant(&TenantId::new("globex"), true);
        t.record_tenant(&TenantId::new("acme"), false);
        t.record_tenant(&TenantId::new("globex"), true);
        assert_eq!(t.tenant_calls(), vec![(TenantId::new("acme"), 1, 1), (TenantId::new("globex"), 2, 0)]);
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
