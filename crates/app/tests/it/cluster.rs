//! Cluster mode's event bus against the real NATS server (the CI machine
//! runs one on 127.0.0.1:4222; `PLEXUS_TEST_NATS_URL` names another).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;

use plexus::cluster::{BridgeStats, bridge};
use plexus::config::BusConfig;
use plexus_core::bus::Bus;
use plexus_core::context::Notification;
use tokio::sync::broadcast::Receiver;

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A subject of this test run only, so runs sharing the server never meet.
fn config() -> BusConfig {
    BusConfig {
        servers: vec![nats_url()],
        subject: format!("plexus.test.{}.{}", std::process::id(), plexus_testkit::unique_suffix()),
    }
}

async fn next(rx: &mut Receiver<Notification>) -> Notification {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the bus is open")
}

fn count(s: &BridgeStats) -> (u64, u64, u64, u64) {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    (l(&s.sent), l(&s.received), l(&s.dropped), l(&s.malformed))
}

#[tokio::test]
async fn events_cross_nodes_once_each_and_strangers_are_ignored() {
    let cfg = config();
    let (a, b) = (Bus::default(), Bus::default());
    let stats_a = match bridge(&a, &cfg, "node-a").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: cluster bus test: NATS is not reachable at {} ({e:#})", nats_url());
            return;
        }
    };
    let stats_b = bridge(&b, &cfg, "node-b").await.unwrap();
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());

    let x = Notification::ResourceUpdated("shared://config/設定.json".into());
    let y = Notification::ResourceListChanged;
    let z = Notification::ResourceUpdated("kb://documents/a%20b".into());
    a.publish(x.clone());
    assert_eq!(next(&mut rx_a).await, x, "a node's own subscribers get its event at once");
    assert_eq!(next(&mut rx_b).await, x, "and the other node's");
    b.publish(y.clone());
    assert_eq!(next(&mut rx_a).await, y);
    a.publish(z.clone());
    assert_eq!(next(&mut rx_b).await, y);
    assert_eq!(next(&mut rx_b).await, z);
    assert_eq!(next(&mut rx_a).await, z);
    // Nobody got an echo of its own event back from NATS.
    assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());
    assert_eq!(count(&stats_a), (2, 1, 0, 0));
    assert_eq!(count(&stats_b), (1, 2, 0, 0));

    // Messages on the subject that are not Plexus events change nothing.
    let raw = async_nats::connect(nats_url()).await.unwrap();
    // `flush` only writes the socket, and NATS orders messages per
    // connection, not across them: the strangers are known to be routed
    // (to node a's connection too) once they come back to a subscription
    // of their own connection, which the server handles in order.
    let mut echo = raw.subscribe(cfg.subject.clone()).await.unwrap();
    raw.publish(cfg.subject.clone(), "not json".into()).await.unwrap();
    raw.publish(cfg.subject.clone(), r#"{"event":"resource_list_changed"}"#.into()).await.unwrap(); // no node header
    let mut h = async_nats::HeaderMap::new();
    h.insert("Plexus-Node", "node-x");
    raw.publish_with_headers(cfg.subject.clone(), h, r#"{"event":"reboot"}"#.into()).await.unwrap();
    raw.flush().await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), echo.next()).await.expect("the strangers routed").unwrap();
    }
    // A real event after them: once it is in, the strangers were seen first.
    b.publish(Notification::ToolListChanged);
    assert_eq!(next(&mut rx_a).await, Notification::ToolListChanged);
    assert_eq!(count(&stats_a), (2, 2, 0, 3));
    assert!(rx_a.try_recv().is_err());

    // One bridge per bus.
    let e = bridge(&a, &cfg, "node-a").await.unwrap_err().to_string();
    assert!(e.contains("already bridged"), "{e}");
}

#[tokio::test]
async fn an_unreachable_bus_is_a_clear_error() {
    let cfg = BusConfig { servers: vec!["nats://127.0.0.1:9".into()], subject: "plexus.events".into() };
    let e = bridge(&Bus::default(), &cfg, "node-a").await.unwrap_err();
    assert!(format!("{e:#}").contains("cannot reach the cluster bus at nats://127.0.0.1:9"), "{e:#}");
}
