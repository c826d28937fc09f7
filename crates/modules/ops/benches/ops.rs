//! Benchmarks of the ops engines: flag evaluations per second in process,
//! and the time from a file written in the shared directory to the
//! registry's change event (what subscribers are notified from).
//!
//! `cargo bench -p plexus-ops --bench ops` (figures in BENCHMARKS.md).
//! Prints medians of several runs; the machine is shared and noisy.

// The report is the benchmark's output.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use plexus_ops::flags::{ClientFeatures, Context, Engine, parse_flags};
use plexus_ops::registry::{RegistryEvent, RegistryOptions, SharedRegistry};

const RUNS: usize = 7;
const EVALS: usize = 2_000_000;

/// The demo's simple flags, compiled as the hub compiles them.
fn simple_engine() -> Engine {
    let simple = serde_json::json!({
        "ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical", "voicedrive"]},
        "voice_transcription": {"enabled": true, "teams": ["voicedrive"]},
    });
    Engine::from_state(parse_flags(&simple).expect("the demo flags parse"))
}

/// An Unleash-format feature with two constraints (one semver) and two
/// variants with payloads.
fn unleash_engine() -> Engine {
    let state = serde_json::json!({"version": 2, "features": [
        {"name": "checkout", "enabled": true, "strategies": [
            {"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "checkout"},
             "constraints": [{"contextName": "environment", "operator": "IN", "values": ["production", "staging"]},
                             {"contextName": "appVersion", "operator": "SEMVER_GT", "value": "1.2.0"}]}],
         "variants": [{"name": "blue", "weight": 500, "stickiness": "userId", "payload": {"type": "string", "value": "blue"}},
                      {"name": "green", "weight": 500, "stickiness": "userId", "payload": {"type": "string", "value": "green"}}]}
    ]});
    Engine::from_state(ClientFeatures::from_json(&state.to_string()).expect("the feature parses"))
}

fn contexts() -> Vec<Context> {
    (0..1024)
        .map(|i| {
            let mut c = Context {
                user_id: Some(format!("user-{i}")),
                environment: Some("production".into()),
                ..Context::default()
            };
            c.properties.insert("team".into(), if i % 3 == 0 { "hr".into() } else { "medical".into() });
            c.properties.insert("appVersion".into(), "1.3.0".into());
            c
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn evals_per_second(engine: &Engine, ctxs: &[Context], flag: &str, threads: usize, full: bool) -> f64 {
    let per = EVALS / threads;
    let start = Instant::now();
    let on: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut on = 0usize;
                    for i in 0..per {
                        let ctx = &ctxs[(i * 7 + t) % ctxs.len()];
                        let yes = if full {
                            engine.evaluate_full(flag, ctx).is_some_and(|e| e.enabled)
                        } else {
                            engine.is_enabled(flag, ctx)
                        };
                        on += usize::from(yes);
                    }
                    on
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(on);
    (per * threads) as f64 / secs
}

async fn notification_latency(samples: usize) -> Vec<Duration> {
    let root = std::env::temp_dir().join(format!("plexus-ops-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let registry =
        SharedRegistry::open(PathBuf::from(&root), RegistryOptions::default()).await.expect("open the registry");
    let _watcher = registry.watch().await.expect("watch the directory");
    let mut events = registry.subscribe();
    let path = root.join("config").join("interview-types.json");
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples + 5 {
        let text = format!("[{{\"id\": \"t{i}\", \"name\": \"面談 {i}\", \"classification\": \"regular\"}}]\n");
        let start = Instant::now();
        std::fs::write(&path, text).expect("write the document");
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Ok(RegistryEvent::Changed { name, .. })) if name == "config/interview-types.json" => break,
                Ok(Ok(_)) => continue,
                other => panic!("no change event: {other:?}"),
            }
        }
        if i >= 5 {
            out.push(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&root);
    out
}

fn main() {
    let (simple, unleash) = (simple_engine(), unleash_engine());
    let ctxs = contexts();
    println!("flag evaluations in process ({EVALS} per run, median of {RUNS} runs)");
    for (engine, flag, threads, full) in [
        (&simple, "ai_assistant", 1, false),
        (&simple, "ai_assistant", 1, true),
        (&simple, "ai_assistant", 2, false),
        (&unleash, "checkout", 1, false),
        (&unleash, "checkout", 1, true),
    ] {
        let runs: Vec<f64> = (0..RUNS).map(|_| evals_per_second(engine, &ctxs, flag, threads, full)).collect();
        let api = if full { "evaluate_full" } else { "is_enabled" };
        println!("  {flag:<20} {api:<13} threads={threads}: {:>12.0} evals/s", median(runs));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let mut lat = rt.block_on(notification_latency(200));
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lat.len() - 1)];
    println!(
        "disk write -> registry change event ({} edits, 25 ms debounce): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        q(0.50).as_secs_f64() * 1e3,
        q(0.90).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
}
