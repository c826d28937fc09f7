//! Metrics and alert rules: process, host and pipeline metrics sampled over
//! windows; rules that fire after a duration.
//!
//! Four parts, plain Rust, no IO beyond reading `/proc`:
//! - [`host`]: process and host CPU and memory from Linux's `/proc`, parsed
//!   by functions that take the file's text (so they are tested on samples);
//!   every value is an `Option`, `None` where `/proc` is missing or odd.
//! - [`pipeline`]: request rate, error rate and latency percentiles of the
//!   pipeline over a window, from the cumulative counters and histograms of
//!   core's [`Telemetry`](plexus_core::telemetry::Telemetry).
//! - [`rules`]: alert rules read from a JSON document
//!   (`config/alert-rules.json`), with an error per rule and field.
//! - [`evaluator`]: the state machine that turns a sequence of [`Metrics`]
//!   into firing and resolved alerts; time is a parameter, never read here.
//!   [`alert_markdown`] renders a transition as the notice the module writes
//!   to `alerts/`.
//!
//! The module samples (on a blocking thread: `/proc` reads are file IO),
//! combines both samples into [`Metrics`], feeds them to the evaluator and
//! writes notices and incidents for the transitions it gets back.

pub mod evaluator;
pub mod host;
pub mod pipeline;
pub mod rules;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use plexus_core::telemetry::Telemetry;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use evaluator::{ActiveAlert, AlertEvaluator, AlertTransition, PendingAlert, alert_markdown, alert_notice_path};
pub use host::{HostMetrics, HostSampler, ProcTexts};
pub use pipeline::{PipelineSampler, PipelineWindow};
pub use rules::{AlertRule, MAX_FOR_SECONDS, MAX_RULES, Op, parse_duration, parse_rules, parse_threshold};

/// A metric a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Metric {
    /// Calls per second over the window.
    #[serde(rename = "request_rate")]
    RequestRate,
    /// Failed calls / calls over the window, a fraction from 0 to 1 (0
    /// without calls).
    #[serde(rename = "error_rate")]
    ErrorRate,
    /// Median latency over the window, in milliseconds.
    #[serde(rename = "latency_p50_ms")]
    LatencyP50Ms,
    /// 95th percentile latency over the window, in milliseconds.
    #[serde(rename = "latency_p95_ms")]
    LatencyP95Ms,
    /// 99th percentile latency over the window, in milliseconds.
    #[serde(rename = "latency_p99_ms")]
    LatencyP99Ms,
    /// CPU time of this process over the window, in percent of one core (it
    /// can exceed 100 on several cores, as in `top`).
    #[serde(rename = "process_cpu_percent")]
    ProcessCpuPercent,
    /// Resident memory of this process, in bytes.
    #[serde(rename = "process_memory_bytes")]
    ProcessMemoryBytes,
    /// Busy CPU time of the host over the window, in percent of all cores (0
    /// to 100).
    #[serde(rename = "host_cpu_percent")]
    HostCpuPercent,
    /// Host memory in use (total minus available), in percent (0 to 100).
    #[serde(rename = "host_memory_percent")]
    HostMemoryPercent,
}

/// The unit of a metric: how thresholds are read and values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Calls per second.
    PerSecond,
    /// A fraction from 0 to 1, shown and written as a percentage.
    Fraction,
    /// Milliseconds.
    Milliseconds,
    /// Percent (0 to 100, more for a process on several cores).
    Percent,
    /// Bytes.
    Bytes,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 9] = [
        Metric::RequestRate,
        Metric::ErrorRate,
        Metric::LatencyP50Ms,
        Metric::LatencyP95Ms,
        Metric::LatencyP99Ms,
        Metric::ProcessCpuPercent,
        Metric::ProcessMemoryBytes,
        Metric::HostCpuPercent,
        Metric::HostMemoryPercent,
    ];

    /// The name rules use: `error_rate`, `latency_p99_ms`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::RequestRate => "request_rate",
            Metric::ErrorRate => "error_rate",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP95Ms => "latency_p95_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::ProcessCpuPercent => "process_cpu_percent",
            Metric::ProcessMemoryBytes => "process_memory_bytes",
            Metric::HostCpuPercent => "host_cpu_percent",
            Metric::HostMemoryPercent => "host_memory_percent",
        }
    }

    /// The metric's unit.
    pub fn unit(self) -> Unit {
        match self {
            Metric::RequestRate => Unit::PerSecond,
            Metric::ErrorRate => Unit::Fraction,
            Metric::LatencyP50Ms | Metric::LatencyP95Ms | Metric::LatencyP99Ms => Unit::Milliseconds,
            Metric::ProcessCpuPercent | Metric::HostCpuPercent | Metric::HostMemoryPercent => Unit::Percent,
            Metric::ProcessMemoryBytes => Unit::Bytes,
        }
    }

    /// `value` in this metric's unit, for people: `1.25%`, `250.0 ms`,
    /// `512.0 MiB`, `12.50/s`.
    pub fn format_value(self, value: f64) -> String {
        match self.unit() {
            Unit::PerSecond => format!("{value:.2}/s"),
            Unit::Fraction => format!("{}%", trim_decimals(value * 100.0, 2)),
            Unit::Milliseconds => format!("{value:.1} ms"),
            Unit::Percent => format!("{value:.1}%"),
            Unit::Bytes => format_bytes(value),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`Metric::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?} (expected one of {names})", names = metric_names())]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| UnknownMetric(s.chars().take(64).collect()))
    }
}

/// `request_rate, error_rate, ...`
pub(crate) fn metric_names() -> String {
    Metric::ALL.map(Metric::as_str).join(", ")
}

/// `x` with at most `decimals` decimals and no trailing zeros: `1`, `1.5`,
/// `0.25`.
fn trim_decimals(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `812.3 MiB`, `2.0 GiB`.
fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes.abs() < 1024.0 {
        return format!("{bytes:.0} B");
    }
    let mut v = bytes / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if v.abs() < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = next;
    }
    format!("{v:.1} {unit}")
}

/// One sample of every metric; `None` where a value is unknown (no `/proc`,
/// no calls in the window for the latency percentiles, first sample for the
/// CPU percentages). Rules on a `None` metric neither fire nor resolve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    /// Length of the pipeline window, in seconds.
    pub window_seconds: Option<f64>,
    /// Calls finished in the window.
    pub calls: Option<u64>,
    /// Failed calls in the window.
    pub errors: Option<u64>,
    /// Calls per second over the window.
    pub request_rate: Option<f64>,
    /// `errors / calls`, a fraction from 0 to 1; 0 without calls.
    pub error_rate: Option<f64>,
    /// Median latency of the window's calls, in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency of the window's calls, in milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency of the window's calls, in milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// CPU of this process, in percent of one core.
    pub process_cpu_percent: Option<f64>,
    /// Resident memory of this process, in bytes.
    pub process_memory_bytes: Option<u64>,
    /// Busy CPU of the host, in percent of all cores.
    pub host_cpu_percent: Option<f64>,
    /// Host memory in use, in percent.
    pub host_memory_percent: Option<f64>,
}

impl Metrics {
    /// Both samples in one snapshot; `pipeline` is `None` when the process
    /// has no telemetry to read.
    pub fn from_parts(pipeline: Option<&PipelineWindow>, host: &HostMetrics) -> Self {
        Metrics {
            window_seconds: pipeline.map(|p| p.seconds),
            calls: pipeline.map(|p| p.calls),
            errors: pipeline.map(|p| p.errors),
            request_rate: pipeline.map(|p| p.request_rate),
            error_rate: pipeline.map(|p| p.error_rate),
            latency_p50_ms: pipeline.and_then(|p| p.latency_p50_ms),
            latency_p95_ms: pipeline.and_then(|p| p.latency_p95_ms),
            latency_p99_ms: pipeline.and_then(|p| p.latency_p99_ms),
            process_cpu_percent: host.process_cpu_percent,
            process_memory_bytes: host.process_memory_bytes,
            host_cpu_percent: host.host_cpu_percent,
            host_memory_percent: host.host_memory_percent,
        }
    }

    /// The value of `metric`, `None` when unknown or not a finite number.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        let v = match metric {
            Metric::RequestRate => self.request_rate,
            Metric::ErrorRate => self.error_rate,
            Metric::LatencyP50Ms => self.latency_p50_ms,
            Metric::LatencyP95Ms => self.latency_p95_ms,
            Metric::LatencyP99Ms => self.latency_p99_ms,
            Metric::ProcessCpuPercent => self.process_cpu_percent,
            // Exact up to 2^53 bytes (8 PiB).
            Metric::ProcessMemoryBytes => self.process_memory_bytes.map(|b| b as f64),
            Metric::HostCpuPercent => self.host_cpu_percent,
            Metric::HostMemoryPercent => self.host_memory_percent,
        };
        v.filter(|v| v.is_finite())
    }
}

/// A host sampler and a pipeline sampler together: one [`Metrics`] per call
/// to [`sample`](Self::sample). Reads `/proc`: call it on a blocking thread.
#[derive(Debug)]
pub struct MetricsSampler {
    host: HostSampler,
    pipeline: PipelineSampler,
}

impl MetricsSampler {
    /// Starts both windows now.
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        let mut host = HostSampler::new();
        // The first host sample only sets the CPU baselines.
        let _ = host.sample();
        Self { host, pipeline: PipelineSampler::new(telemetry) }
    }

    /// The metrics of the window since the previous call (or since `new`).
    pub fn sample(&mut self) -> Metrics {
        let host = self.host.sample();
        let pipeline = self.pipeline.sample();
        Metrics::from_parts(Some(&pipeline), &host)
    }
}
