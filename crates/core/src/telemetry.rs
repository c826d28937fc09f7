//! Per-target call statistics: counts, errors and an HDR latency histogram.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};

/// Statistics of one tool, prompt or resource family.
#[derive(Debug)]
pub struct TargetStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl TargetStats {
    fn new() -> Self {
        // 1 us .. 60 s at 3 significant digits.
        let h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid");
        Self { calls: AtomicU64::new(0), errors: AtomicU64::new(0), latency_us: Mutex::new(h) }
    }

    /// Latency at quantile `q` (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.latency_us.lock().value_at_quantile(q)
    }

    pub fn histogram(&self) -> Histogram<u64> {
        self.latency_us.lock().clone()
    }
}

/// Statistics of every target, plus the slow-call threshold.
#[derive(Debug)]
pub struct Telemetry {
    targets: RwLock<HashMap<String, Arc<TargetStats>>>,
    pub slow_call: Duration,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(Duration::from_millis(100))
    }
}

impl Telemetry {
    pub fn new(slow_call: Duration) -> Self {
        Self { targets: RwLock::new(HashMap::new()), slow_call }
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
        s.latency_us.lock().saturating_record(us);
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
    }
}
