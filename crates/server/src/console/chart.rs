//! Server-side SVG charts: no script, no external service, nothing to load.

use std::fmt::Write as _;

use maud::{Markup, html};
use plexus_core::telemetry::TargetSeries;

const W: f64 = 600.0;
const H: f64 = 150.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 18.0;

/// A "nice" axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|x| *x >= v).unwrap_or(10.0 * p)
}

/// The `points` attribute of a polyline over the minutes that had calls.
fn points(series: &TargetSeries, pick: impl Fn(&plexus_core::telemetry::MinutePoint) -> u64, max_ms: f64) -> String {
    let n = series.minutes.len().max(2) - 1;
    let mut out = String::new();
    for (i, m) in series.minutes.iter().enumerate().filter(|(_, m)| m.calls > 0) {
        #[allow(clippy::cast_precision_loss)]
        let x = LEFT + (W - LEFT) * i as f64 / n as f64;
        #[allow(clippy::cast_precision_loss)]
        let ms = pick(m) as f64 / 1000.0;
        let y = (H - BOTTOM) * (1.0 - (ms / max_ms).min(1.0));
        let _ = write!(out, "{x:.1},{y:.1} ");
    }
    out
}

/// p50, p95 and p99 per minute over the last hour, in milliseconds.
pub(crate) fn latency(series: &TargetSeries, label: &str, ago: &str, now: &str) -> Markup {
    #[allow(clippy::cast_precision_loss)]
    let top = series.minutes.iter().map(|m| m.p99_us).max().unwrap_or(0) as f64 / 1000.0;
    let max_ms = nice(top);
    html! {
        svg class="chart" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) data-testid="latency-chart" {
            title { (label) }
            line class="axis" x1=(LEFT) y1="0" x2=(LEFT) y2=(H - BOTTOM) {}
            line class="axis" x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) {}
            line class="grid" x1=(LEFT) y1=((H - BOTTOM) / 2.0) x2=(W) y2=((H - BOTTOM) / 2.0) {}
            text class="tick" x=(LEFT - 4.0) y="10" text-anchor="end" { (max_ms) " ms" }
            text class="tick" x=(LEFT - 4.0) y=((H - BOTTOM) / 2.0 + 4.0) text-anchor="end" { (max_ms / 2.0) }
            text class="tick" x=(LEFT) y=(H - 4.0) { (ago) }
            text class="tick" x=(W) y=(H - 4.0) text-anchor="end" { (now) }
            polyline class="p99" points=(points(series, |m| m.p99_us, max_ms)) {}
            polyline class="p95" points=(points(series, |m| m.p95_us, max_ms)) {}
            polyline class="p50" points=(points(series, |m| m.p50_us, max_ms)) {}
            // Dots too: a minute alone (no neighbour to draw a line to) still shows.
            @for (class, pts) in [("p99", points(series, |m| m.p99_us, max_ms)), ("p95", points(series, |m| m.p95_us, max_ms)), ("p50", points(series, |m| m.p50_us, max_ms))] {
                @for (x, y) in pts.split_whitespace().filter_map(|p| p.split_once(',')) {
                    circle class=(class) cx=(x) cy=(y) r="2" {}
                }
            }
            g class="legend" {
                text class="p50" x=(W - 150.0) y="12" { "p50" }
                text class="p95" x=(W - 100.0) y="12" { "p95" }
                text class="p99" x=(W - 50.0) y="12" { "p99" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_core::telemetry::MinutePoint;

    #[test]
    fn axes_are_nice_and_lines_skip_idle_minutes() {
        assert_eq!(
            [nice(0.0), nice(0.7), nice(1.0), nice(3.2), nice(7.0), nice(120.0)],
            [1.0, 1.0, 1.0, 5.0, 10.0, 200.0]
        );
        let minute = |i: u64, calls: u64, p99: u64| MinutePoint {
            start_unix: i * 60,
            calls,
            errors: 0,
            p50_us: p99 / 4,
            p95_us: p99 / 2,
            p99_us: p99,
        };
        let series = TargetSeries {
            target: "<script>".into(),
            minutes: (0..60).map(|i| if i % 2 == 0 { minute(i, 1, 4_000) } else { minute(i, 0, 0) }).collect(),
        };
        let svg = latency(&series, "a <b> label", "-60", "now").into_string();
        assert!(svg.contains("5 ms"), "{svg}");
        assert!(svg.contains("a &lt;b&gt; label") && !svg.contains("<b>"));
        let p99 = svg.split("class=\"p99\" points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(p99.split_whitespace().count(), 30, "only the minutes with calls");
        // 4 ms on a 5 ms axis: 80% of the plot's height up.
        assert!(p99.starts_with("48.0,26.4 "), "{p99}");
    }
}
