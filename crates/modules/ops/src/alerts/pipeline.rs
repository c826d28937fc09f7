//! The pipeline's request rate, error rate and latency over a window.
//!
//! Core's [`Telemetry`] keeps cumulative counts and an HDR latency histogram
//! per target since the process started. A [`PipelineSampler`] keeps the sum
//! of them at its previous sample; a window is the difference. Latency
//! percentiles come from the difference of the histograms, so they are
//! exact to the histogram's precision (3 significant digits) for the calls
//! of the window alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hdrhistogram::Histogram;
use plexus_core::telemetry::Telemetry;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The pipeline over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PipelineWindow {
    /// Length of the window, in seconds.
    pub seconds: f64,
    /// Calls finished in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub errors: u64,
    /// `calls / seconds`; 0 for an empty window.
    pub request_rate: f64,
    /// `errors / calls`, from 0 to 1; 0 without calls.
    pub error_rate: f64,
    /// Median latency, in milliseconds; `None` without calls.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, in milliseconds; `None` without calls.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency, in milliseconds; `None` without calls.
    pub latency_p99_ms: Option<f64>,
}

/// Cumulative totals over every target.
#[derive(Debug, Clone)]
struct Totals {
    calls: u64,
    errors: u64,
    /// `None` when the telemetry has no target yet.
    latency_us: Option<Histogram<u64>>,
}

/// Yields a [`PipelineWindow`] per sample.
#[derive(Debug)]
pub struct PipelineSampler {
    telemetry: Arc<Telemetry>,
    prev: Totals,
    at: Instant,
}

impl PipelineSampler {
    /// The first window starts now.
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        Self::new_at(telemetry, Instant::now())
    }

    /// The first window starts at `at`, with the totals as they are now.
    pub fn new_at(telemetry: Arc<Telemetry>, at: Instant) -> Self {
        let prev = totals(&telemetry);
        Self { telemetry, prev, at }
    }

    /// The window since the previous sample, ending now.
    pub fn sample(&mut self) -> PipelineWindow {
        self.sample_at(Instant::now())
    }

    /// The window since the previous sample, ending at `at`.
    pub fn sample_at(&mut self, at: Instant) -> PipelineWindow {
        let now = totals(&self.telemetry);
        let seconds = at.saturating_duration_since(self.at).as_secs_f64();
        let calls = now.calls.saturating_sub(self.prev.calls);
        let errors = now.errors.saturating_sub(self.prev.errors).min(calls);
        let window = window_histogram(now.latency_us.as_ref(), self.prev.latency_us.as_ref());
        let quantile_ms =
            |q: f64| window.as_ref().filter(|h| !h.is_empty() && calls > 0).map(|h| us_to_ms(h.value_at_quantile(q)));
        let w = PipelineWindow {
            seconds,
            calls,
            errors,
            request_rate: if seconds > 0.0 { to_f64(calls) / seconds } else { 0.0 },
            error_rate: if calls > 0 { to_f64(errors) / to_f64(calls) } else { 0.0 },
            latency_p50_ms: quantile_ms(0.50),
            latency_p95_ms: quantile_ms(0.95),
            latency_p99_ms: quantile_ms(0.99),
        };
        self.prev = now;
        self.at = at;
        w
    }
}

/// Sum of every target's counters and histogram. Errors are read before
/// calls: the telemetry counts a call before its error, so a window never
/// has more errors than calls.
fn totals(telemetry: &Telemetry) -> Totals {
    let mut t = Totals { calls: 0, errors: 0, latency_us: None };
    for (_, stats) in telemetry.snapshot() {
        let errors = stats.errors.load(Ordering::Relaxed);
        let calls = stats.calls.load(Ordering::Relaxed);
        t.errors = t.errors.saturating_add(errors);
        t.calls = t.calls.saturating_add(calls);
        let h = stats.histogram();
        match &mut t.latency_us {
            None => t.latency_us = Some(h),
            // Every target's histogram has the same bounds, so adding cannot
            // fail; if it ever did, that target's latencies are left out.
            Some(sum) => {
                let _ = sum.add(&h);
            }
        }
    }
    t
}

/// `now - prev`; all of `now` when there is no `prev` or the subtraction
/// fails (counts went down: not the same telemetry).
fn window_histogram(now: Option<&Histogram<u64>>, prev: Option<&Histogram<u64>>) -> Option<Histogram<u64>> {
    let now = now?;
    let mut window = now.clone();
    if let Some(prev) = prev
        && window.subtract(prev).is_err()
    {
        window = now.clone();
    }
    Some(window)
}

#[allow(clippy::cast_precision_loss)]
fn to_f64(n: u64) -> f64 {
    n as f64
}

fn us_to_ms(us: u64) -> f64 {
    to_f64(us) / 1000.0
}
