//! `plexus serve`: build the server from the configuration and serve it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use plexus_core::bus::Bus;
use plexus_core::context::Credential;
use plexus_server::{HttpOptions, Server, ServerParts};
use plexus_store::JsonlAuditLog;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::{logging, wiring};

/// Address `--demo` serves on when `--http` is not given.
const DEMO_ADDR: &str = "127.0.0.1:8080";

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = super::load(&args.common)?;
    if let Some(id) = &args.node_id {
        config.set_node_id(id)?;
    }
    logging::init(&config.log_level, config.log_json);
    if !args.stdio && args.http.is_none() && !args.demo {
        anyhow::bail!("say how to serve: --stdio, or --http ADDR (for example --http 127.0.0.1:8080)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args, config))
}

/// Name of the key `--demo` issues; each demo run replaces the last one.
const DEMO_KEY_NAME: &str = "demo-admin";

/// Issue a fresh admin key in the store for this demo run (revoking the
/// previous run's) and return its secret, which is shown once.
async fn issue_demo_key(store: &plexus_store::Store) -> anyhow::Result<String> {
    let scope = store.tenant(&plexus_core::TenantId::default_tenant());
    for k in scope.list_keys().await? {
        if k.name == DEMO_KEY_NAME && k.revoked_at.is_none() {
            scope.revoke_key(&k.id).await?;
        }
    }
    let issued = scope.create_key(DEMO_KEY_NAME, &["admin".to_owned()]).await?;
    Ok(issued.secret.expose().to_owned())
}

fn demo_banner(config: &Config, addr: &str, key: &str) -> String {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "plexus".into());
    format!(
        "\nPlexus demo is running.\n\
         \n  MCP endpoint (Streamable HTTP): http://{addr}/mcp\
         \n  Admin API key (shown once):     {key}\
         \n  Modules:                        {modules}\
         \n  Data directory:                 {data}\
         \n  Master key (demo, in the data directory): {master}\
         \n\nTry it:\
         \n  curl -s http://{addr}/mcp -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\
         \n       -H 'X-API-Key: {key}' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: whoami' \\\
         \n       -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"whoami\",\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'\
         \n\nMCP Inspector:\
         \n  npx -y -p node@22 -p @modelcontextprotocol/inspector@2.12.0 mcp-inspector --cli --server-url http://{addr}/mcp \\\n       --transport http --header 'X-API-Key: {key}' --method tools/list\
         \n\nClaude Desktop (claude_desktop_config.json):\
         \n  {{\"mcpServers\": {{\"plexus\": {{\"command\": \"{exe}\", \"args\": [\"serve\", \"--stdio\", \"--data-dir\", \"{data}\"]}}}}}}\
         \n\nPress Ctrl-C to stop.\n",
        modules = config.modules.join(", "),
        data = config.data_dir.display(),
        master = config
            .master_key_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "PLEXUS_MASTER_KEY".into()),
    )
}

/// The project's own documentation, indexed by `--demo`.
const PROJECT_DOCS: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../../README.md")),
    ("README.ja.md", include_str!("../../../../README.ja.md")),
    ("ARCHITECTURE.md", include_str!("../../../../ARCHITECTURE.md")),
    ("BENCHMARKS.md", include_str!("../../../../BENCHMARKS.md")),
];

/// `--demo`'s knowledge sources: a generated corpus (for everyone, and
/// partners' notes for admins) and the project's own docs, written under
/// the data directory. Sources of the same names in the config win.
fn add_demo_sources(config: &mut Config) -> anyhow::Result<()> {
    let root = config.data_dir.join("demo");
    let corpus = root.join("knowledge");
    plexus_knowledge::demo::generate(&corpus, 2026).context("cannot write the demo corpus")?;
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs)?;
    for (name, text) in PROJECT_DOCS {
        std::fs::write(docs.join(name), text)?;
    }
    let demo = [
        ("demo-handbook", corpus.join("public"), "everyone"),
        ("demo-partners", corpus.join("partners"), "role:admin"),
        ("plexus-docs", docs, "everyone"),
    ];
    for (name, path, reader) in demo {
        if config.knowledge_sources.iter().any(|s| s.name == name && s.tenant == "default") {
            continue;
        }
        let source: plexus_knowledge::sources::SourceConfig = serde_json::from_value(serde_json::json!({
            "name": name, "kind": "filesystem", "path": path, "tenant": "default", "readers": [reader],
        }))?;
        config.knowledge_sources.push(source);
    }
    Ok(())
}

/// Sync the knowledge sources now and then every `interval` (never again
/// when it is zero), off the async workers; failures are logged per source.
fn spawn_knowledge_sync(syncer: Arc<plexus_knowledge::sources::Syncer>, interval: std::time::Duration) {
    if syncer.sources().is_empty() {
        return;
    }
    tokio::spawn(async move {
        loop {
            if !syncer.index().may_sync() {
                // Cluster mode: another node runs the syncs; take over when it is gone.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            let s = Arc::clone(&syncer);
            match tokio::task::spawn_blocking(move || s.sync(None, None, false, &|_, _, _| {})).await {
                Ok(outcomes) => {
                    for o in outcomes.iter().filter_map(|o| o.report.as_ref()) {
                        tracing::info!(
                            source = %o.source, files = o.files, indexed = o.indexed, deleted = o.deleted,
                            skipped = o.skipped, "knowledge source synced"
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "knowledge sync task failed"),
            }
            if interval.is_zero() {
                break;
            }
            tokio::time::sleep(interval).await;
        }
    });
}

/// Synthetic patients the demo shows (seeded: the same every time), stored
/// once in the default tenant.
const DEMO_PATIENTS: u64 = 50;

async fn seed_demo_patients(fhir: &plexus_health::FhirStore) -> anyhow::Result<()> {
    let tenant = plexus_core::TenantId::default_tenant();
    if fhir.counts(&tenant).await?.get("Patient").copied().unwrap_or(0) > 0 {
        return Ok(());
    }
    let report = plexus_health::load::generate(fhir, &tenant, 1, DEMO_PATIENTS, &|_, _, _| {}).await?;
    tracing::info!(
        patients = DEMO_PATIENTS,
        resources = report.per_type.values().sum::<usize>(),
        "demo: stored a synthetic patient population (seeded, not real people)"
    );
    Ok(())
}

async fn serve(args: ServeArgs, mut config: Config) -> anyhow::Result<ExitCode> {
    // The demo must work on a fresh machine: without a configured master
    // key it keeps one in its data directory (fine for a demo, not for
    // production, where the key belongs away from the data it protects).
    if args.demo && !config.has_master_key() {
        let path = config.data_dir.join("master.key");
        if !path.exists() {
            plexus_store::MasterKey::generate_file(&path)?;
        }
        // Relative to the data directory, as `crypto.master_key_file` is read
        // (`data_dir.join` again would double a relative `--data-dir`).
        config.master_key_file = Some(std::path::PathBuf::from("master.key"));
    }
    // The demo shows every module with data of its own.
    if args.demo {
        for m in ["knowledge", "health", "ops", "trading", "learning"] {
            if !config.modules.iter().any(|x| x == m) {
                config.modules.push(m.into());
            }
        }
        add_demo_sources(&mut config)?;
    }
    let store = wiring::open_store(&config).await?;
    // A data key the keyring cannot unwrap is found now, not by a call.
    store.check_master_keys().await.context("encryption at rest")?;
    match store.master_key_id() {
        Some(id) => tracing::info!(master_key = %id, "encryption at rest ready"),
        None => tracing::info!("no master key configured: modules cannot store sensitive fields"),
    }
    type Audit = (Arc<dyn plexus_core::ports::AuditSink>, Arc<dyn plexus_core::ports::AuditReader>);
    let (audit, audit_reader): Audit = if config.audit_in_database {
        let sink =
            plexus_store::AuditStore::open(&store, &config.node_id).await.context("cannot open the audit table")?;
        (Arc::new(sink), Arc::new(store.clone()))
    } else {
        let audit_path = super::audit_path(&config);
        let log = Arc::new(
            JsonlAuditLog::open_with(&audit_path, config.audit_durability)
                .with_context(|| format!("cannot open the audit log {}", audit_path.display()))?,
        );
        (log.clone(), log)
    };
    let knowledge = if config.modules.iter().any(|m| m == "knowledge") {
        let k = wiring::Knowledge::open(&config)?;
        if config.bus.is_some() && is_postgres(&config.storage_url()) {
            // Cluster mode: one node syncs, every node follows the shared documents.
            wiring::join_knowledge(&config, &k).await?;
        }
        spawn_knowledge_sync(k.syncer.clone(), config.knowledge_sync_interval);
        Some(k)
    } else {
        None
    };
    let health = if config.modules.iter().any(|m| m == "health") {
        let fhir = plexus_health::FhirStore::open(store.clone()).await.context("cannot open the FHIR store")?;
        if args.demo {
            seed_demo_patients(&fhir).await?;
        }
        Some(fhir)
    } else {
        None
    };
    let telemetry = Arc::new(plexus_core::telemetry::Telemetry::new(config.slow_call));
    store.count_writes(plexus_store::WriteCounters {
        writers: telemetry.counter(
            "plexus_sqlite_writers_total",
            "Write transactions that passed SQLite's write gates (every file of the store).",
        ),
        batches: telemetry
            .counter("plexus_sqlite_write_batches_total", "Group commits (batches of writers) on SQLite."),
        wait_us: telemetry.counter(
            "plexus_sqlite_write_wait_microseconds_total",
            "Time writers waited to enter SQLite's write gate.",
        ),
        held_us: telemetry.counter(
            "plexus_sqlite_write_held_microseconds_total",
            "Time writers held SQLite's write gate running their statements.",
        ),
        commit_us: telemetry.counter(
            "plexus_sqlite_commit_microseconds_total",
            "Time SQLite's write gate spent committing batches (writing the WAL; its fsync follows outside the gate).",
        ),
        syncs: telemetry.counter(
            "plexus_sqlite_wal_syncs_total",
            "fdatasyncs of SQLite's write-ahead logs that committed batches waited for, outside the write gate.",
        ),
        sync_us: telemetry.counter("plexus_sqlite_wal_sync_microseconds_total", "Time those fdatasyncs took."),
        restarts: telemetry.counter(
            "plexus_sqlite_wal_restarts_total",
            "Restarts of SQLite's write-ahead logs through the write gate (every 32,000 pages under sustained writes).",
        ),
        restart_us: telemetry.counter(
            "plexus_sqlite_wal_restart_microseconds_total",
            "Time those restarts held the write gate (two fdatasyncs and a short copy).",
        ),
    });
    let access = Arc::new(plexus_core::access::AccessList::default());
    let ops = if config.modules.iter().any(|m| m == "ops") {
        let shared_dir = config.shared_dir();
        if args.demo {
            plexus_ops::demo::seed(&shared_dir).await.context("cannot write the demo's shared documents")?;
        }
        let hub = plexus_ops::Hub::open(plexus_ops::OpsConfig {
            shared_dir,
            state_dir: config.data_dir.join("ops"),
            registry: Default::default(),
            access: Arc::clone(&access),
            audit_sink: Some(Arc::clone(&audit)),
            audit_reader: Some(Arc::clone(&audit_reader)),
            telemetry: Some(Arc::clone(&telemetry)),
            watch: true,
            webhooks: config
                .ops_webhooks
                .iter()
                .map(|w| match (&w.token, w.slack) {
                    (_, true) => plexus_ops::incidents::Target::slack(&w.name, &w.url),
                    (token, false) => plexus_ops::incidents::Target::webhook(
                        &w.name,
                        &w.url,
                        token.iter().map(|t| ("authorization".to_owned(), format!("Bearer {t}"))).collect(),
                    ),
                })
                .collect(),
            http: if config.ops_webhooks.is_empty() {
                None
            } else {
                Some(Arc::new(plexus_server::outbound::ReqwestClient::new().map_err(|e| anyhow::anyhow!(e))?))
            },
            notify_retry: None,
            alert_interval: None,
        })
        .await
        .context("cannot open the ops module's shared registry")?;
        if config.bus.is_some() && is_postgres(&config.storage_url()) {
            // Cluster mode: every node's registry holds the same versions.
            hub.join_cluster(&config.storage_url(), &config.node_id)
                .await
                .context("cannot join the cluster's shared registry and experiment events")?;
        }
        Some(hub)
    } else {
        None
    };
    // Cluster mode: this node's connection to the others. A node that
    // cannot reach the bus at start does not start.
    let nats = match &config.bus {
        Some(cluster) => Some(crate::cluster::connect(cluster, &config.node_id).await?),
        None => None,
    };
    let trading = if config.modules.iter().any(|m| m == "trading") {
        if args.demo {
            config.trading.simulate = true;
        }
        let desk = match (&config.bus, &nats) {
            // Cluster mode: one venue for all nodes, its journal in the
            // shared database, one leader (see plexus_trading::cluster).
            (Some(bus), Some(client)) if is_postgres(&config.storage_url()) => {
                let desk = wiring::open_shared_desk(&config, &config.storage_url(), client, bus)
                    .await
                    .context("cannot join the cluster's trading venue")?;
                crate::cluster::serve_desk(client, bus, &config.node_id, desk.clone()).await?;
                desk
            }
            _ => wiring::open_desk(&config).context("cannot open the trading desk")?,
        };
        if config.trading.simulate {
            plexus_trading::simulator::spawn(desk.clone(), plexus_trading::simulator::SimConfig::default());
        }
        Some(desk)
    } else {
        None
    };
    let trading_feeds = if trading.is_some() { wiring::start_feeds(&config)? } else { Vec::new() };
    let learning = if config.modules.iter().any(|m| m == "learning") {
        let learning = plexus_learning::Learning::open(store.clone(), config.learning.clone())
            .await
            .context("cannot open the learning module")?;
        if args.demo {
            // The demo's course, item bank and simulated learners (seeded
            // once; kept across restarts): in the tenant of the demo key
            // unless `[learning.demo] tenant` names another.
            let (tenant, demo) = match config.learning.demo.clone() {
                Some(d) => (plexus_core::TenantId::new(&d.tenant), d),
                None => (plexus_core::TenantId::default_tenant(), Default::default()),
            };
            if store.get_tenant(&tenant).await?.is_none() {
                let new =
                    plexus_store::NewTenant { id: tenant.clone(), name: tenant.to_string(), tier: "standard".into() };
                store.create_tenant(&new).await.context("cannot create the learning demo's tenant")?;
            }
            let summary =
                learning.seed_demo(&tenant, demo.seed, demo.learners).await.context("cannot seed the learning demo")?;
            tracing::info!(?summary, "learning demo ready");
        }
        Some(Arc::new(learning))
    } else {
        None
    };
    let health_remotes = if health.is_some() { wiring::health_remotes(&config)? } else { Vec::new() };
    let deps = wiring::ModuleDeps {
        health,
        health_remotes,
        bus: Bus::default(),
        audit: audit_reader,
        knowledge,
        telemetry: Some(Arc::clone(&telemetry)),
        ops,
        trading,
        trading_feeds,
        learning,
        tenants: Some(Arc::new(store.clone()) as Arc<dyn plexus_core::ports::TenantLister>),
    };
    let bus = deps.bus.clone();
    if let Some(learning) = &deps.learning {
        // A tenant's configuration changed on one node: every node's cache drops it.
        learning.follow(&bus);
    }
    // Cluster mode: this node's events go to the other nodes and theirs
    // come here. A node that cannot reach the bus at start does not start
    // (it would serve stale views unseen); later outages are reconnected.
    if let (Some(cluster), Some(client)) = (&config.bus, &nats) {
        crate::cluster::bridge_with(&bus, client, cluster, &config.node_id).await?;
    }
    let registry = wiring::registry(&config, wiring::modules(&config, &deps))?;
    let demo_key = if args.demo { Some(issue_demo_key(&store).await?) } else { None };
    // Legacy HTTP sessions live in the database: any node of a cluster
    // carries one on, and a restart does not end them.
    let kept_sessions = Arc::new(store.clone()) as Arc<dyn plexus_core::ports::SessionRecords>;
    let mut ports = wiring::Ports::from_config(&config, args.allow_anonymous, audit)
        .with_store(&config, args.allow_anonymous, store)
        .with_jwt(&config);
    // One telemetry for the pipeline, /metrics and the modules' counters.
    ports.telemetry = telemetry;
    // Bearer JWTs: the authorization server's keys, fetched now, every
    // refresh_seconds, and when a token names a key id not yet known.
    if let (Some(jwt), Some(keys)) = (&config.jwt, &ports.jwt_keys) {
        crate::jwks::spawn_refresher(jwt.jwks_url.clone(), Arc::clone(keys), jwt.refresh_every);
    }
    if let Some(url) = &config.otlp_traces_url {
        let exporter = crate::otlp::spawn(url.clone(), &config.name, env!("CARGO_PKG_VERSION"))?;
        ports.telemetry.set_exporter(exporter);
        tracing::info!(url = %url, "exporting call spans over OTLP/HTTP");
    }
    // The access lists of the ops hub apply on top of the roles.
    ports.access = Some(Arc::clone(&access));
    let pipeline = wiring::pipeline(&config, &registry, &ports);
    // Roles reload from the configuration file while serving.
    if let Some(path) = config.source.clone() {
        wiring::watch_policy(path, Arc::clone(&ports.policy), std::time::Duration::from_millis(500));
    }
    // Request state of input-required rounds is sealed with a key every
    // node derives from the master key, so a retry may reach any node.
    let state_key = match config.keyring()? {
        Some(keys) => keys.request_state_key(),
        None => {
            if config.bus.is_some() {
                tracing::warn!(
                    "no master key (crypto.master_key_file): a modern-era call that asks for input must be retried at the node that asked"
                );
            }
            wiring::random_key()
        }
    };
    let server = Server::new(ServerParts {
        registry,
        pipeline,
        bus,
        authenticator: Arc::clone(&ports.authenticator),
        name: config.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        instructions: Some("Plexus hosts domain modules as MCP tools, resources and prompts.".into()),
        state_key,
        telemetry: Some(Arc::clone(&ports.telemetry)),
        audit: Some(Arc::clone(&ports.audit)),
        access: Some(Arc::clone(&access)),
        sessions: Some(kept_sessions),
    });

    if args.stdio {
        let credential = match &config.stdio_api_key {
            Some(k) => Credential::ApiKey(k.clone()),
            None => Credential::Local,
        };
        tracing::info!(modules = %config.modules.join(","), "serving MCP over stdio");
        server.serve_stdio(credential).await?;
        return Ok(ExitCode::SUCCESS);
    }

    let addr_text = args.http.clone().unwrap_or_else(|| DEMO_ADDR.to_owned());
    let addr = Config::parse_addr(&addr_text)?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    if args.allow_anonymous {
        tracing::warn!(
            "serving WITHOUT authentication (--allow-anonymous): every caller gets roles {:?}",
            config.anonymous_roles
        );
        eprintln!(
            "WARNING: --allow-anonymous: anyone who can reach {bound} can call every tool. Use only on a trusted machine."
        );
    }
    if let Some(key) = &demo_key {
        eprintln!("{}", demo_banner(&config, &bound.to_string(), key));
    }
    tracing::info!(addr = %bound, modules = %config.modules.join(","), "serving MCP over Streamable HTTP at /mcp");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight calls");
        signal.cancel();
    });
    let opts = HttpOptions {
        allowed_hosts: config.allowed_hosts.clone(),
        allowed_origins: config.allowed_origins.clone(),
        max_body_bytes: config.max_body_bytes,
        allow_anonymous: args.allow_anonymous,
        shutdown,
        drain_timeout: config.drain_timeout,
        drain_delay: config.drain_delay,
        fast_path: config.fast_path,
        console: config.console,
        console_oidc: config.console_oidc.clone(),
        protected_resource: config.protected_resource.clone(),
    };
    server.serve_http(listener, opts).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
