//! Architecture invariants, checked from `cargo metadata`.

use std::collections::BTreeMap;
use std::process::Command;

struct Dep {
    name: String,
    dev: bool,
}

fn workspace() -> BTreeMap<String, (String, Vec<Dep>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path", manifest])
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut map = BTreeMap::new();
    for p in v["packages"].as_array().expect("packages") {
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| Dep { name: d["name"].as_str().unwrap_or_default().to_owned(), dev: d["kind"] == "dev" })
            .collect();
        let path = p["manifest_path"].as_str().unwrap_or_default().to_owned();
        map.insert(p["name"].as_str().unwrap_or_default().to_owned(), (path, deps));
    }
    map
}

const PROTOCOL: &[&str] = &["rmcp", "axum", "hyper", "hyper-util", "http", "tower-http", "reqwest"];
const SQL: &[&str] = &["sqlx", "rusqlite", "tokio-postgres", "postgres", "diesel"];

#[test]
fn dependency_directions_hold() {
    let ws = workspace();
    let modules: Vec<&String> =
        ws.iter().filter(|(_, (path, _))| path.contains("/crates/modules/")).map(|(n, _)| n).collect();
    assert!(modules.len() >= 2, "modules found: {modules:?}");
    let mut violations = Vec::new();
    for (name, (_, deps)) in &ws {
        for d in deps {
            let n = d.name.as_str();
            if n == "plexus" {
                violations.push(format!("{name} depends on the app"));
            }
            if n == "plexus-testkit" && !d.dev {
                violations.push(format!("{name} depends on testkit outside [dev-dependencies]"));
            }
            if d.dev {
                continue;
            }
            if name == "plexus-core" && (PROTOCOL.contains(&n) || SQL.contains(&n) || n.starts_with("plexus-")) {
                violations.push(format!("core depends on {n}"));
            }
            if name == "plexus-server" && (n == "plexus-store" || modules.iter().any(|m| *m == n)) {
                violations.push(format!("server depends on {n}"));
            }
            if modules.contains(&name) {
                let allowed = n == "plexus-core" || n == "plexus-store" || !n.starts_with("plexus-");
                if !allowed || PROTOCOL.contains(&n) {
                    violations.push(format!("module {name} depends on {n}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "architecture invariants broken:\n{}", violations.join("\n"));
}

#[test]
fn only_the_server_names_the_protocol_crates() {
    let ws = workspace();
    for (name, (_, deps)) in &ws {
        if matches!(name.as_str(), "plexus-server" | "plexus-bench") {
            continue;
        }
        let named: Vec<&str> = deps.iter().filter(|d| !d.dev && d.name == "rmcp").map(|d| d.name.as_str()).collect();
        assert!(named.is_empty(), "{name} depends on rmcp");
    }
}
