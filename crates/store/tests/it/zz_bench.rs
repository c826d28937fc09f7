use plexus_core::ports::AuditSink;
use plexus_store::{AuditStore, Store};
use std::sync::Arc;
use std::time::Instant;

async fn go(url: &str) {
    let store = Store::open(url).await.unwrap();
    let log = Arc::new(AuditStore::open(&store, "bench").await.unwrap());
    for (tasks, per) in [(1usize, 200usize), (64, 200), (256, 100)] {
        let t = Instant::now();
        let hs: Vec<_> = (0..tasks)
            .map(|k| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for i in 0..per {
                        log.append(plexus_core::audit::AuditEvent {
                            time: "2026-11-21T00:00:00Z".into(),
                            request_id: format!("{k}-{i}"),
                            session: None,
                            principal: "p".into(),
                            tenant: "t".into(),
                            operation: "tools/call".into(),
                            target: "echo".into(),
                            args_digest: "0".repeat(64),
                            outcome: "ok".into(),
                            latency_us: 1,
                            client_addr: None,
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        let n = tasks * per;
        let el = t.elapsed();
        eprintln!(
            "{url}: {tasks} tasks x {per}: {n} records in {:?} = {:.0}/s, {:.0} us per append",
            el,
            n as f64 / el.as_secs_f64(),
            el.as_micros() as f64 * tasks as f64 / n as f64
        );
    }
    let n = store.audit_records("bench", 0, u64::MAX).await.unwrap();
    plexus_core::audit::verify(&n).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn zz_bench() {
    let dir = "/work/tmp-store-bench";
    let _ = std::fs::remove_dir_all(dir);
    go(&format!("{dir}/plexus.db")).await;
    let _ = std::fs::remove_dir_all(dir);
    if let Ok(u) = std::env::var("BENCH_PG") {
        go(&u).await;
    }
}
