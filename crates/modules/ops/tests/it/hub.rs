//! The hub: engines wired to the registry, changes on the bus, the alert
//! loop acting on its rules.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::access::AccessList;
use plexus_core::bus::Bus;
use plexus_core::context::Notification;
use plexus_core::telemetry::Telemetry;
use plexus_ops::{Hub, OpsConfig};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("plexus-ops-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(root: &std::path::Path, access: Arc<AccessList>) -> OpsConfig {
    OpsConfig {
        shared_dir: root.join("shared"),
        state_dir: root.join("ops"),
        registry: Default::default(),
        access,
        audit_sink: None,
        audit_reader: None,
        telemetry: Some(Arc::new(Telemetry::new(Duration::from_secs(1)))),
        watch: false,
        webhooks: Vec::new(),
        http: None,
        notify_retry: None,
        alert_interval: Some(Duration::from_millis(200)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_bus_flags_and_access_lists() {
    let root = dir("bus");
    let access = Arc::new(AccessList::default());
    let hub = Hub::open(config(&root, Arc::clone(&access))).await.expect("open the hub");
    let bus = Bus::default();
    let mut rx = bus.subscribe();
    hub.notify_on(bus);

    hub.registry
        .put("config/feature-flags.json", r#"{"ai_assistant": {"enabled": true}}"#, "sato", None)
        .await
        .unwrap();
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a notification").unwrap();
        heard.push(n);
    }
    assert!(heard.contains(&Notification::ResourceUpdated("shared://config/feature-flags.json".into())), "{heard:?}");
    assert!(heard.contains(&Notification::ResourceListChanged), "a new document changes the list: {heard:?}");
    let set = hub.flags();
    assert_eq!(set.version, 1);
    assert!(set.engine.contains("ai_assistant"));

    // A malformed flag definition is refused; the flags in force stay.
    let err = hub.registry.put("config/feature-flags.json", r#"{"ai_assistant": {"enabled": 1}}"#, "sato", None).await;
    assert!(err.unwrap_err().to_string().contains("`enabled` must be true or false"));
    assert_eq!(hub.flags().version, 1);

    hub.registry
        .put("config/access-control.json", r#"{"readonly_users": ["bi"], "blocked_ips": ["10.0.0.0/8"]}"#, "sato", None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !access.ip_blocked("10.1.2.3".parse().unwrap()) {
        assert!(tokio::time::Instant::now() < deadline, "the access list was not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(access.current().readonly_users.contains("bi"));
    assert!(!access.ip_blocked("192.168.1.1".parse().unwrap()));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_rule_writes_a_notice_and_opens_an_incident() {
    let root = dir("alerts");
    let rules = r#"{"rules": [{"name": "memory-in-use", "metric": "process_memory_bytes", "op": ">", "threshold": 0,
        "for": 0, "severity": "sev3", "open_incident": true, "teams": ["ops"], "description": "テスト用の規則"}]}"#;
    std::fs::create_dir_all(root.join("shared/config")).unwrap();
    std::fs::write(root.join("shared/config/alert-rules.json"), rules).unwrap();
    let hub = Hub::open(config(&root, Arc::default())).await.expect("open the hub");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (notice, incident) = loop {
        let names: Vec<String> = hub.registry.list().into_iter().map(|d| d.name).collect();
        let notice = names.iter().find(|n| n.starts_with("alerts/") && n.contains("memory-in-use")).cloned();
        let incident = names.iter().find(|n| n.starts_with("incidents/INC-")).cloned();
        if let (Some(n), Some(i)) = (notice.clone(), incident.clone()) {
            break (n, i);
        }
        assert!(tokio::time::Instant::now() < deadline, "no alert after 20 s: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = hub.registry.get(&notice).unwrap().text.to_string();
    assert!(text.contains("memory-in-use"), "{text}");
    let inc = hub.registry.get(&incident).unwrap().text.to_string();
    assert!(inc.contains("テスト用の規則") && inc.contains("\"investigating\""), "{inc}");
    // It fires once, not at every sample.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let incidents = hub.registry.list().into_iter().filter(|d| d.name.starts_with("incidents/INC-")).count();
    assert_eq!(incidents, 1);
    let _ = std::fs::remove_dir_all(&root);
}
