//! Per-worker counters and latency histogram, and the final report (text or JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::rpc::ErrorKind;

/// Longest latency the histogram tells apart (longer ones are recorded as this), in µs.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// What one worker measured (after warmup).
#[derive(Debug)]
pub(crate) struct Stats {
    /// Latency of successful requests, in microseconds.
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) errors: BTreeMap<ErrorKind, u64>,
    /// Open loop: slots that found no free worker at their scheduled time.
    pub(crate) late: u64,
    /// Open loop: slots scheduled within the run that could not be sent before its end.
    pub(crate) dropped: u64,
    pub(crate) reconnects: u64,
    /// When the last recorded request finished.
    pub(crate) last_done: Option<Instant>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            latency_us: new_histogram(),
            errors: BTreeMap::new(),
            late: 0,
            dropped: 0,
            reconnects: 0,
            last_done: None,
        }
    }

    pub(crate) fn record(&mut self, outcome: Result<(), ErrorKind>, start: Instant, done: Instant) {
        match outcome {
            Ok(()) => {
                let us = u64::try_from(done.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(us.max(1));
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        self.last_done = self.last_done.max(Some(done));
    }

    pub(crate) fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail; saturate per value if it ever did.
        if self.latency_us.add(&other.latency_us).is_err() {
            for v in other.latency_us.iter_recorded() {
                self.latency_us.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
        self.late += other.late;
        self.dropped += other.dropped;
        self.reconnects += other.reconnects;
        self.last_done = self.last_done.max(other.last_done);
    }

    pub(crate) fn ok(&self) -> u64 {
        self.latency_us.len()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

/// Latency summary, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        })
    }
}

/// Everything printed at the end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) era: &'static str,
    pub(crate) tool: String,
    pub(crate) concurrency: usize,
    /// Open loop target, requests per second.
    pub(crate) rate: Option<f64>,
    pub(crate) warmup: Duration,
    /// From the end of warmup to the last recorded response.
    pub(crate) elapsed: Duration,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) late: u64,
    pub(crate) dropped: u64,
    pub(crate) reconnects: u64,
    pub(crate) stopped_by_max_requests: bool,
    pub(crate) latency: Option<Percentiles>,
    /// A scenario's calls that are not the measured one (the starts of assessments).
    pub(crate) side: Option<Side>,
}

/// Calls a scenario makes besides the measured ones.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Side {
    pub(crate) tool: String,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) latency: Option<Percentiles>,
}

impl Report {
    pub(crate) fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    fn per_second(&self, n: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }

    pub(crate) fn throughput(&self) -> f64 {
        self.per_second(self.requests())
    }

    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        let mode = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s, at most {} in flight", self.concurrency),
            None => format!("closed loop, {} connections", self.concurrency),
        };
        let _ = writeln!(s, "{} era={} tool={} ({mode})", self.url, self.era, self.tool);
        let _ = writeln!(
            s,
            "  duration   {:.3} s measured (warmup {:.3} s excluded){}",
            self.elapsed.as_secs_f64(),
            self.warmup.as_secs_f64(),
            if self.stopped_by_max_requests { ", stopped by --max-requests" } else { "" }
        );
        let errors = self.requests() - self.ok;
        let _ = writeln!(s, "  requests   {} (ok {}, errors {errors})", self.requests(), self.ok);
        if !self.errors.is_empty() {
            let list: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(s, "  errors     {}", list.join(", "));
        }
        let _ = writeln!(s, "  throughput {:.1} req/s (ok {:.1} req/s)", self.throughput(), self.per_second(self.ok));
        match &self.latency {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "  latency ms p50 {} p90 {} p99 {} p99.9 {} max {} mean {}",
                    ms(p.p50),
                    ms(p.p90),
                    ms(p.p99),
                    ms(p.p999),
                    ms(p.max),
                    ms_f(p.mean)
                );
            }
            None => {
                let _ = writeln!(s, "  latency    no successful request");
            }
        }
        if let Some(side) = &self.side {
            let errors: u64 = side.errors.values().sum();
            let latency = side.latency.map_or_else(
                || "no successful call".to_owned(),
                |p| format!("latency ms p50 {} p99 {} max {}", ms(p.p50), ms(p.p99), ms(p.max)),
            );
            let _ = writeln!(s, "  also       {}: ok {}, errors {errors}; {latency}", side.tool, side.ok);
            if !side.errors.is_empty() {
                let list: Vec<String> = side.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
                let _ = writeln!(s, "             errors {}", list.join(", "));
            }
        }
        if self.rate.is_some() {
            let _ = writeln!(
                s,
                "  schedule   late {} (no free connection at the scheduled time), dropped {} (not sent before the end)",
                self.late, self.dropped
            );
        }
        if self.reconnects > 0 {
            let _ = writeln!(s, "  reconnects {}", self.reconnects);
        }
        s
    }

    pub(crate) fn json(&self) -> Value {
        let latency = self.latency.map(latency_json);
        let side = self.side.as_ref().map(|side| {
            json!({
                "tool": side.tool,
                "ok": side.ok,
                "errors": side.errors,
                "latency_ms": side.latency.map(latency_json),
            })
        });
        json!({
            "url": self.url,
            "era": self.era,
            "tool": self.tool,
            "mode": if self.rate.is_some() { "open" } else { "closed" },
            "concurrency": self.concurrency,
            "rate": self.rate,
            "warmup_s": round3(self.warmup.as_secs_f64()),
            "duration_s": round3(self.elapsed.as_secs_f64()),
            "requests": self.requests(),
            "ok": self.ok,
            "errors": { "total": self.requests() - self.ok, "by_kind": self.errors },
            "throughput_rps": round3(self.throughput()),
            "ok_rps": round3(self.per_second(self.ok)),
            "latency_ms": latency,
            "late": self.late,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "stopped_by_max_requests": self.stopped_by_max_requests,
            "also": side,
        })
    }
}

fn latency_json(p: Percentiles) -> Value {
    json!({
        "p50": ms_value(p.p50),
        "p90": ms_value(p.p90),
        "p99": ms_value(p.p99),
        "p99_9": ms_value(p.p999),
        "max": ms_value(p.max),
        "mean": round3(p.mean / 1000.0),
    })
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn ms_f(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn ms_value(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut stats = Stats::new();
        let t0 = Instant::now();
        for us in 1..=1000u64 {
            stats.record(Ok(()), t0, t0 + Duration::from_micros(us * 10));
        }
        let mut other = Stats::new();
        other.record(Err(ErrorKind::Status(503)), t0, t0);
        other.record(Err(ErrorKind::Timeout), t0, t0);
        other.late = 2;
        stats.merge(&other);
        Report {
            url: "http://127.0.0.1:8080/mcp".into(),
            era: "modern",
            tool: "echo".into(),
            concurrency: 4,
            rate: Some(500.0),
            warmup: Duration::from_secs(1),
            elapsed: Duration::from_secs(2),
            ok: stats.ok(),
            errors: stats.errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            late: stats.late,
            dropped: stats.dropped,
            reconnects: 0,
            stopped_by_max_requests: false,
            latency: Percentiles::of(&stats.latency_us),
            side: None,
        }
    }

    #[test]
    fn percentiles_from_histogram() {
        let report = sample_report();
        let p = report.latency.expect("has samples");
        // 3 significant digits: values are exact to 0.1 %.
        assert!((4990..=5010).contains(&p.p50), "{p:?}");
        assert!((8990..=9010).contains(&p.p90), "{p:?}");
        assert!((9890..=9910).contains(&p.p99), "{p:?}");
        assert!((9980..=10010).contains(&p.p999), "{p:?}");
        assert!((9990..=10010).contains(&p.max), "{p:?}");
        assert!(Percentiles::of(&new_histogram()).is_none());
    }

    #[test]
    fn json_report() {
        let v = sample_report().json();
        assert_eq!(v["requests"], 1002);
        assert_eq!(v["ok"], 1000);
        assert_eq!(v["errors"]["total"], 2);
        assert_eq!(v["errors"]["by_kind"]["http_503"], 1);
        assert_eq!(v["errors"]["by_kind"]["timeout"], 1);
        assert_eq!(v["throughput_rps"], 501.0);
        assert_eq!(v["mode"], "open");
        assert_eq!(v["late"], 2);
        let p50 = v["latency_ms"]["p50"].as_f64().expect("number");
        assert!((4.99..=5.01).contains(&p50));
    }

    #[test]
    fn text_report() {
        let text = sample_report().text();
        assert!(text.contains("requests   1002 (ok 1000, errors 2)"), "{text}");
        assert!(text.contains("errors     http_503 1, timeout 1"), "{text}");
        assert!(text.contains("throughput 501.0 req/s"), "{text}");
        assert!(text.contains("latency ms p50 5.0"), "{text}");
        assert!(text.contains("late 2"), "{text}");

        let mut closed = sample_report();
        closed.rate = None;
        closed.latency = None;
        let text = closed.text();
        assert!(text.contains("closed loop, 4 connections"), "{text}");
        assert!(text.contains("no successful request"), "{text}");
        assert!(!text.contains("schedule"), "{text}");
        assert!(!text.contains("also"), "{text}");
    }

    #[test]
    fn a_scenarios_other_calls_are_reported_apart() {
        let mut report = sample_report();
        let mut starts = Stats::new();
        let t0 = Instant::now();
        starts.record(Ok(()), t0, t0 + Duration::from_micros(2500));
        starts.record(Err(ErrorKind::ToolError), t0, t0);
        report.side = Some(Side {
            tool: "generate_assessment".into(),
            ok: starts.ok(),
            errors: starts.errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            latency: Percentiles::of(&starts.latency_us),
        });
        let text = report.text();
        assert!(text.contains("also       generate_assessment: ok 1, errors 1; latency ms p50 2.5"), "{text}");
        assert!(text.contains("errors tool_error 1"), "{text}");
        let v = report.json();
        assert_eq!(v["also"]["tool"], "generate_assessment");
        assert_eq!(v["also"]["errors"]["tool_error"], 1);
        let p50 = v["also"]["latency_ms"]["p50"].as_f64().expect("a number");
        assert!((2.49..=2.51).contains(&p50), "{p50}");
        assert!(sample_report().json()["also"].is_null());
    }
}
