//! The hub: the engines of this crate wired to one shared registry, kept
//! in step with it, and announcing every change on the bus.
//!
//! One task follows the registry's events. A new version of
//! `config/feature-flags.json` recompiles the flag engine (swapped whole,
//! so evaluations never see half a change); `config/access-control.json`
//! replaces the access lists the edge and the pipeline enforce (and the
//! change is audited); every change becomes `ResourceChanged` for
//! `shared://<name>` subscribers, and a document that appears or goes away
//! also changes the resource list.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use plexus_core::access::AccessList;
use plexus_core::bus::Bus;
use plexus_core::context::Notification;
use plexus_core::ports::{AuditReader, AuditSink};
use plexus_core::telemetry::Telemetry;
use sha2::{Digest, Sha256};

use crate::access::{ACCESS_DOC, parse_access};
use crate::flags::{Engine, parse_flags};
use crate::registry::{RegistryError, RegistryEvent, RegistryOptions, SharedRegistry, Watcher};

/// The flag definitions' document in the registry.
pub const FLAGS_DOC: &str = "config/feature-flags.json";
/// The scheme of shared documents' resource URIs.
pub const URI_PREFIX: &str = "shared://";

/// What the hub is built from.
pub struct OpsConfig {
    /// The watched directory (`<data>/shared`).
    pub shared_dir: PathBuf,
    /// The hub's own state (experiment logs, dead letters): `<data>/ops`.
    pub state_dir: PathBuf,
    pub registry: RegistryOptions,
    /// The lists the server enforces; the hub keeps them in step with
    /// `config/access-control.json`.
    pub access: Arc<AccessList>,
    /// Where changes to the access lists are audited.
    pub audit_sink: Option<Arc<dyn AuditSink>>,
    /// Where reports and audit exports read.
    pub audit_reader: Option<Arc<dyn AuditReader>>,
    /// The pipeline's telemetry (metrics and alerts).
    pub telemetry: Option<Arc<Telemetry>>,
    /// Watch the directory (off in tests that drive changes by hand).
    pub watch: bool,
    /// Where incident notifications go (Slack incoming webhooks, generic
    /// webhooks), and the outbound client that sends them.
    pub webhooks: Vec<crate::incidents::Target>,
    pub http: Option<Arc<dyn plexus_core::http::HttpClient>>,
    /// Retries and timeouts of webhook deliveries (default: 5 tries from 1 s).
    pub notify_retry: Option<plexus_core::http::RetryPolicy>,
    /// How often metrics are sampled and alert rules evaluated (default
    /// [`crate::ops_reports::ALERT_INTERVAL`], 10 s).
    pub alert_interval: Option<std::time::Duration>,
}

/// The compiled flag definitions in force.
#[derive(Debug, Default)]
pub struct FlagSet {
    pub engine: Engine,
    /// The registry version they come from (0: no flag document).
    pub version: u64,
    /// SHA-256 of the document (empty: none).
    pub sha256: String,
}

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Experiments(#[from] crate::experiments::ExperimentError),
    #[error("incident documents: {0}")]
    Incidents(#[from] crate::incidents::IncidentError),
    #[error("webhooks: {0}")]
    Webhooks(#[from] crate::incidents::NotifyError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The hub. Shared by the tools and the event task.
pub struct Hub {
    pub registry: SharedRegistry,
    flags: RwLock<Arc<FlagSet>>,
    access: Arc<AccessList>,
    audit_sink: Option<Arc<dyn AuditSink>>,
    pub(crate) audit_reader: Option<Arc<dyn AuditReader>>,
    pub(crate) telemetry: Option<Arc<Telemetry>>,
    pub(crate) experiments: Arc<crate::experiments::ExperimentLog>,
    pub(crate) incidents: tokio::sync::Mutex<crate::incidents::IncidentBook>,
    pub(crate) notifier: Option<crate::incidents::Notifier>,
    alerts: Arc<crate::ops_reports::AlertState>,
    bus: OnceLock<Bus>,
    _watcher: Option<Watcher>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("registry", &self.registry).finish_non_exhaustive()
    }
}

impl Hub {
    /// Cluster mode: the same registry versions on every node, and every
    /// node's experiment events counted everywhere, through the PostgreSQL
    /// database at `url`. Call once, before serving.
    ///
    /// # Errors
    /// The database cannot be reached or refuses the tables.
    pub async fn join_cluster(&self, url: &str, node: &str) -> Result<(), OpsError> {
        self.registry.join(url, node).await?;
        self.experiments.share(url, node).await?;
        Ok(())
    }

    /// Open the registry, load what it holds, and start following it.
    pub async fn open(cfg: OpsConfig) -> Result<Arc<Self>, OpsError> {
        tokio::fs::create_dir_all(&cfg.state_dir)
            .await
            .map_err(|source| OpsError::Io { path: cfg.state_dir.display().to_string(), source })?;
        let registry = SharedRegistry::open(cfg.shared_dir, cfg.registry).await?;
        registry.add_validator(FLAGS_DOC, Arc::new(|v| parse_flags(v).map(|_| ())))?;
        registry.add_validator(ACCESS_DOC, Arc::new(|v| parse_access(v).map(|_| ())))?;
        registry.add_validator(
            crate::ops_reports::ALERT_RULES_DOC,
            Arc::new(|v| crate::alerts::parse_rules(v).map(|_| ())),
        )?;
        let experiments_dir = cfg.state_dir.join("experiments");
        let experiments = tokio::task::spawn_blocking(move || crate::experiments::ExperimentLog::open(experiments_dir))
            .await
            .map_err(|e| OpsError::Io { path: "experiments".into(), source: std::io::Error::other(e) })??;
        let incident_docs: Vec<String> = registry
            .list()
            .into_iter()
            .filter(|d| d.name.starts_with("incidents/") && d.name.ends_with(".json"))
            .filter_map(|d| registry.get(&d.name).ok().map(|doc| doc.text.to_string()))
            .collect();
        let incidents = crate::incidents::IncidentBook::from_documents(incident_docs.iter().map(String::as_str))?;
        let notifier = match (&cfg.http, cfg.webhooks.is_empty()) {
            (Some(http), false) => {
                let mut options = crate::incidents::NotifyOptions::new(cfg.state_dir.join("dead-letters.jsonl"));
                if let Some(r) = cfg.notify_retry {
                    options.retry = r;
                }
                Some(crate::incidents::Notifier::new(Arc::clone(http), cfg.webhooks, options)?)
            }
            _ => None,
        };
        let cfg_interval = cfg.alert_interval;
        let events = registry.subscribe();
        let watcher = if cfg.watch { Some(registry.watch().await?) } else { None };
        let hub = Arc::new(Hub {
            registry,
            flags: RwLock::default(),
            access: cfg.access,
            audit_sink: cfg.audit_sink,
            audit_reader: cfg.audit_reader,
            telemetry: cfg.telemetry,
            experiments: Arc::new(experiments),
            incidents: tokio::sync::Mutex::new(incidents),
            notifier,
            alerts: Arc::default(),
            bus: OnceLock::new(),
            _watcher: watcher,
        });
        hub.reload_flags();
        hub.reload_access(None).await;
        tokio::spawn(follow(Arc::downgrade(&hub), events));
        if let Some(t) = &hub.telemetry {
            let every = cfg_interval.unwrap_or(crate::ops_reports::ALERT_INTERVAL);
            tokio::spawn(crate::ops_reports::alert_loop(
                Arc::downgrade(&hub),
                Arc::clone(&hub.alerts),
                Arc::clone(t),
                every,
            ));
        }
        Ok(hub)
    }

    /// Announce changes on `bus` from now on.
    pub fn notify_on(&self, bus: Bus) {
        let _ = self.bus.set(bus);
    }

    pub(crate) fn alert_state(&self) -> &Arc<crate::ops_reports::AlertState> {
        &self.alerts
    }

    /// The flag definitions in force.
    pub fn flags(&self) -> Arc<FlagSet> {
        Arc::clone(&self.flags.read())
    }

    fn publish(&self, n: Notification) {
        if let Some(bus) = self.bus.get() {
            bus.publish(n);
        }
    }

    fn reload_flags(&self) {
        let set = match self.registry.get(FLAGS_DOC) {
            Ok(doc) => match doc.value.as_deref().map(parse_flags) {
                Some(Ok(state)) => {
                    FlagSet { engine: Engine::from_state(state), version: doc.version, sha256: doc.sha256 }
                }
                // The validator refused anything else; a document that was
                // live before the validator existed keeps nothing.
                _ => {
                    tracing::warn!(doc = FLAGS_DOC, "the live flag document does not parse; serving no flags");
                    FlagSet::default()
                }
            },
            Err(_) => FlagSet::default(),
        };
        tracing::info!(version = set.version, flags = set.engine.feature_names().count(), "feature flags loaded");
        *self.flags.write() = Arc::new(set);
    }

    async fn reload_access(&self, author: Option<&str>) {
        let (rules, version, sha) = match self.registry.get(ACCESS_DOC) {
            Ok(doc) => match doc.value.as_deref().map(parse_access) {
                Some(Ok(r)) => (r, doc.version, doc.sha256),
                _ => {
                    tracing::warn!(doc = ACCESS_DOC, "the live access-control document does not parse; lists emptied");
                    (Default::default(), doc.version, doc.sha256)
                }
            },
            Err(_) => (Default::default(), 0, String::new()),
        };
        tracing::info!(
            version,
            admins = rules.admin_users.len(),
            readonly = rules.readonly_users.len(),
            blocked = rules.blocked_ips.len(),
            "access-control lists in force"
        );
        self.access.set(rules);
        if let (Some(sink), Some(author)) = (&self.audit_sink, author) {
            let event = plexus_core::audit::AuditEvent {
                time: now_rfc3339(),
                request_id: format!("access-control-v{version}"),
                session: None,
                principal: author.to_owned(),
                tenant: "default".into(),
                operation: "config/apply".into(),
                target: format!("{URI_PREFIX}{ACCESS_DOC}"),
                args_digest: if sha.is_empty() { hex::encode(Sha256::digest(b"")) } else { sha },
                outcome: "ok".into(),
                latency_us: 0,
                client_addr: None,
            };
            if let Err(e) = sink.append(event).await {
                tracing::error!(error = %e, "the access-control change could not be audited");
            }
        }
    }

    async fn on_event(&self, event: RegistryEvent) {
        match event {
            RegistryEvent::Changed { name, previous, author, .. } => {
                self.apply(&name, Some(&author)).await;
                self.publish(Notification::ResourceUpdated(format!("{URI_PREFIX}{name}")));
                if previous.is_none() {
                    self.publish(Notification::ResourceListChanged);
                }
            }
            RegistryEvent::Removed { name, source, .. } => {
                self.apply(&name, Some(source.as_str())).await;
                self.publish(Notification::ResourceUpdated(format!("{URI_PREFIX}{name}")));
                self.publish(Notification::ResourceListChanged);
            }
            RegistryEvent::Rejected { name, errors } => {
                tracing::warn!(doc = %name, errors = %errors.join("; "), "a change on disk was refused; the last good version stays live");
            }
        }
    }

    async fn apply(&self, name: &str, author: Option<&str>) {
        match name {
            FLAGS_DOC => self.reload_flags(),
            ACCESS_DOC => self.reload_access(author).await,
            _ => {}
        }
    }
}

async fn follow(hub: std::sync::Weak<Hub>, mut events: tokio::sync::broadcast::Receiver<RegistryEvent>) {
    loop {
        match events.recv().await {
            Ok(event) => match hub.upgrade() {
                Some(hub) => hub.on_event(event).await,
                None => return,
            },
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Missed events: reload everything derived, tell everyone.
                tracing::warn!(missed = n, "registry events were missed; reloading");
                let Some(hub) = hub.upgrade() else { return };
                hub.reload_flags();
                hub.reload_access(None).await;
                hub.publish(Notification::ResourceListChanged);
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Now, RFC 3339 UTC.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
