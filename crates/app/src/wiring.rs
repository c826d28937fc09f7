//! The composition root: modules, registry, ports and the pipeline, in the
//! one place that knows them all.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use plexus_core::Module;
use plexus_core::bus::Bus;
use plexus_core::pipeline::{
    AuditLayer, Authenticate, Authorize, GateLayer, Pipeline, RateLimit, Router, TelemetryLayer, Tenancy, TimeoutLayer,
    Validate,
};
use plexus_core::policy::{Pattern, RoleGrants, RolePolicy, SharedPolicy};
use plexus_core::ports::{AuditSink, Authenticator, RateLimiter, TenantDirectory};
use plexus_core::registry::Registry;
use plexus_core::telemetry::Telemetry;
use tower::ServiceBuilder;

use crate::config::Config;
use crate::trust::{ConfigAuthenticator, ConfiguredTenants};
use plexus_core::ratelimit::TokenBucketLimiter;

/// Instantiate the enabled modules, in the configured order.
/// The shared parts modules are built from.
pub struct ModuleDeps {
    /// Modules that publish changes outside calls take the bus.
    pub bus: Bus,
    /// Where `query_audit_log` reads.
    pub audit: Arc<dyn plexus_core::ports::AuditReader>,
    /// The knowledge index and the syncer of its sources, when serving it.
    pub knowledge: Option<Knowledge>,
    /// Where modules register their counters for `/metrics`.
    pub telemetry: Option<Arc<Telemetry>>,
    /// The health module's FHIR store, when serving it.
    pub health: Option<plexus_health::FhirStore>,
    /// The other FHIR servers the health module asks (`[[health.servers]]`).
    pub health_remotes: Vec<Arc<dyn plexus_health::Remote>>,
    /// The ops hub, when serving it.
    pub ops: Option<Arc<plexus_ops::Hub>>,
    /// The trading desk, when serving it.
    pub trading: Option<plexus_trading::desk::Desk>,
    /// The trading module's external market-data feeds (`[[trading.feeds]]`), started.
    pub trading_feeds: Vec<Arc<plexus_trading::feeds::FeedHandle>>,
    /// The learning module, when serving it (open: its tables migrated).
    pub learning: Option<Arc<plexus_learning::Learning>>,
    /// Every tenant, for `list_tenants` (the store; absent offline).
    pub tenants: Option<Arc<dyn plexus_core::ports::TenantLister>>,
}

/// The configured FHIR servers (`[[health.servers]]`), key files read
/// relative to the configuration file, bearer tokens from the environment
/// variables checked when the configuration was read.
pub fn health_remotes(config: &Config) -> anyhow::Result<Vec<Arc<dyn plexus_health::Remote>>> {
    if config.health_servers.is_empty() {
        return Ok(Vec::new());
    }
    let dir = config.source.as_deref().and_then(std::path::Path::parent).unwrap_or(std::path::Path::new("."));
    let http: Arc<dyn plexus_core::http::HttpClient> =
        Arc::new(plexus_server::outbound::ReqwestClient::new().map_err(|e| anyhow::anyhow!(e))?);
    let secrets = &config.health_secrets.0;
    let clients = config
        .health_servers
        .iter()
        .map(|s| {
            let resolved = s.resolve(dir, &|var| secrets.get(var).cloned())?;
            plexus_health::client::FhirClient::new(resolved, Arc::clone(&http))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let router = plexus_health::client::Router::new(clients).map_err(|e| anyhow::anyhow!(e))?;
    Ok(plexus_health::remote::remotes(router))
}

/// The knowledge module's shared parts.
#[derive(Clone)]
pub struct Knowledge {
    pub index: Arc<plexus_knowledge::Index>,
    pub syncer: Arc<plexus_knowledge::sources::Syncer>,
}

impl Knowledge {
    /// Open the index in the configured directory (creating it). Fails if
    /// another process (a running server) holds it.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let dir = config.knowledge_dir().join("index");
        let index = plexus_knowledge::Index::open(&dir).map_err(|e| match e {
            plexus_knowledge::SearchError::Index(tantivy_error) if tantivy_error.to_string().contains("LockBusy") => {
                anyhow::anyhow!(
                    "the knowledge index {} is in use by another process (a running server?): \
                     it syncs its sources itself, or call its sync_knowledge tool",
                    dir.display()
                )
            }
            other => anyhow::anyhow!("cannot open the knowledge index {}: {other}", dir.display()),
        })?;
        let index = Arc::new(index);
        let mut secrets = config.knowledge_secrets.0.clone();
        for s in &config.knowledge_sources {
            if let Some(file) = &s.token_file {
                let path = config.data_dir.join(file);
                let secret = std::fs::read_to_string(&path).with_context(|| {
                    format!("knowledge source `{}`: cannot read its token_file {}", s.name, path.display())
                })?;
                secrets.insert(format!("{}/{}", s.tenant, s.name), secret.trim().to_owned());
            }
        }
        let needs_http =
            config.knowledge_sources.iter().any(|s| plexus_knowledge::sources::HTTP_KINDS.contains(&s.kind.as_str()));
        let http: Option<Arc<dyn plexus_core::http::HttpClient>> = if needs_http {
            Some(Arc::new(plexus_server::outbound::ReqwestClient::new().map_err(|e| anyhow::anyhow!(e))?))
        } else {
            None
        };
        let wiring = plexus_knowledge::sources::Wiring { http, secrets };
        let syncer = Arc::new(
            plexus_knowledge::sources::Syncer::new(
                Arc::clone(&index),
                config.knowledge_sources.clone(),
                config.knowledge_dir().join("cursors.json"),
                &wiring,
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        );
        Ok(Self { index, syncer })
    }
}

impl ModuleDeps {
    /// For offline commands (`tools list`, `config check`): nothing is called.
    pub fn offline() -> Self {
        Self {
            bus: Bus::default(),
            audit: Arc::new(OfflineAudit),
            knowledge: None,
            telemetry: None,
            health: None,
            health_remotes: Vec::new(),
            ops: None,
            trading: None,
            trading_feeds: Vec::new(),
            learning: None,
            tenants: None,
        }
    }
}

struct OfflineAudit;

#[async_trait::async_trait]
impl plexus_core::ports::AuditReader for OfflineAudit {
    async fn query(
        &self,
        _: &plexus_core::ports::AuditQuery,
    ) -> Result<Vec<plexus_core::audit::AuditRecord>, plexus_core::ports::AuditError> {
        Err(plexus_core::ports::AuditError("the audit log is not open".into()))
    }
}

pub fn modules(config: &Config, deps: &ModuleDeps) -> Vec<Arc<dyn Module>> {
    config
        .modules
        .iter()
        .filter_map(|name| match name.as_str() {
            "system" => {
                let mut system = plexus_system::System::default().with_audit(Arc::clone(&deps.audit));
                if let Some(lister) = &deps.tenants {
                    let quotas = plexus_system::TierQuotas {
                        default: config.quotas,
                        tiers: config.tier_quotas.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    };
                    system = system.with_tenants(Arc::clone(lister), quotas, deps.telemetry.clone());
                }
                Some(Arc::new(system) as Arc<dyn Module>)
            }
            "conformance" => Some(plexus_conformance::module()),
            "knowledge" => match &deps.knowledge {
                Some(k) => Some({
                    k.syncer.notify_on(deps.bus.clone());
                    plexus_knowledge::module(
                        Arc::clone(&k.index),
                        Some(Arc::clone(&k.syncer)),
                        deps.telemetry.as_deref(),
                    )
                }),
                // Offline listings: the same tools over an empty index in memory.
                None => {
                    plexus_knowledge::Index::in_memory().ok().map(|i| plexus_knowledge::module(Arc::new(i), None, None))
                }
            },
            // Offline listings have no store: the health tools are listed by a serving process.
            "health" => deps.health.as_ref().map(|store| {
                Arc::new(plexus_health::Health::observed_by(
                    store.clone(),
                    deps.health_remotes.clone(),
                    &config.node_id,
                )) as Arc<dyn Module>
            }),
            // Offline listings have no registry: the ops tools are listed by a serving process.
            "ops" => deps.ops.as_ref().map(|hub| {
                hub.notify_on(deps.bus.clone());
                Arc::new(plexus_ops::Ops::new(Arc::clone(hub))) as Arc<dyn Module>
            }),
            // Offline listings have no desk: the trading tools are listed by a serving process.
            "trading" => {
                deps.trading.as_ref().and_then(|desk| trading_module(config, desk, &deps.trading_feeds, &deps.bus).ok())
            }
            // Offline listings have no store: the learning tools are listed by a serving process.
            "learning" => deps.learning.clone().map(|l| l as Arc<dyn Module>),
            _ => None,
        })
        .collect()
}

pub fn registry(config: &Config, modules: Vec<Arc<dyn Module>>) -> anyhow::Result<Arc<Registry>> {
    Ok(Arc::new(Registry::new(modules).context("modules do not fit together")?.with_page_size(config.page_size)))
}

pub fn policy(config: &Config) -> RolePolicy {
    let pats = |v: &[String]| v.iter().filter_map(|p| Pattern::parse(p)).collect::<Vec<_>>();
    let roles: HashMap<String, RoleGrants> = config
        .roles
        .iter()
        .map(|(name, r)| {
            let grants = RoleGrants {
                tools: pats(&r.tools),
                resources: pats(&r.resources),
                prompts: pats(&r.prompts),
                conditions: r.conditions.clone(),
                windows: r.windows.clone(),
            };
            (name.clone(), grants)
        })
        .collect();
    RolePolicy::new(roles)
}

/// The ports the pipeline runs on.
pub struct Ports {
    pub authenticator: Arc<dyn Authenticator>,
    pub tenants: Arc<dyn TenantDirectory>,
    pub limiter: Arc<dyn RateLimiter>,
    /// The policy in force; `reload_policy` swaps it while serving.
    pub policy: Arc<SharedPolicy>,
    pub audit: Arc<dyn AuditSink>,
    pub telemetry: Arc<Telemetry>,
    /// The JWT verification keys, when `[auth.jwt]` is configured (the JWKS refresher fills them).
    pub jwt_keys: Option<Arc<plexus_core::jwt::JwtKeys>>,
    /// Live access lists applied over the policy (the ops hub keeps them).
    pub access: Option<Arc<plexus_core::access::AccessList>>,
}

impl Ports {
    pub fn from_config(config: &Config, allow_anonymous: bool, audit: Arc<dyn AuditSink>) -> Self {
        Self {
            authenticator: Arc::new(ConfigAuthenticator::new(config, allow_anonymous)),
            tenants: Arc::new(ConfiguredTenants::new(config)),
            limiter: limiter(config, Arc::new(|_: &plexus_core::TenantId| Some("standard".to_owned()))),
            policy: Arc::new(SharedPolicy::new(Arc::new(policy(config)))),
            audit,
            telemetry: Arc::new(Telemetry::new(config.slow_call)),
            jwt_keys: None,
            access: None,
        }
    }

    /// Bearer JWTs verified in front of the other credentials, when `[auth.jwt]`
    /// is configured. Call after `with_store` (it wraps the authenticator in force).
    pub fn with_jwt(mut self, config: &Config) -> Self {
        if let Some(jwt) = &config.jwt {
            let (authenticator, keys) = crate::jwks::authenticator(jwt, Arc::clone(&self.authenticator));
            self.authenticator = authenticator;
            self.jwt_keys = Some(keys);
        }
        self
    }

    /// Keys and tenants from the store as well as from the configuration.
    pub fn with_store(mut self, config: &Config, allow_anonymous: bool, store: plexus_store::Store) -> Self {
        self.authenticator = Arc::new(ConfigAuthenticator::new(config, allow_anonymous).with_store(store.clone()));
        let tenants = Arc::new(crate::trust::CachedTenants::new(Arc::new(store), TENANT_CACHE_TTL));
        // The tenant gate runs before the rate limit and leaves the tenant
        // (and so its tier) in the cache the limiter reads.
        let cached = Arc::clone(&tenants);
        self.limiter = limiter(config, Arc::new(move |t: &plexus_core::TenantId| cached.cached_tier(t)));
        self.tenants = tenants;
        self
    }
}

/// The rate limiter: the default quotas, and per-tier ones when any are
/// configured (a tenant's tier comes from `tier_of`).
fn limiter(config: &Config, tier_of: plexus_core::ratelimit::TierOf) -> Arc<dyn RateLimiter> {
    let limiter = TokenBucketLimiter::new(config.quotas);
    if config.tier_quotas.is_empty() {
        return Arc::new(limiter);
    }
    Arc::new(limiter.with_tiers(config.tier_quotas.clone(), tier_of))
}

/// How long a tenant lookup is trusted; a suspension applies within this.
pub const TENANT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Open the database and make sure every tenant the configuration names
/// exists in it (`default`, the local principal's, the API keys').
pub async fn open_store(config: &Config) -> anyhow::Result<plexus_store::Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let url = config.storage_url();
    let store = plexus_store::Store::open_with(&url, config.storage_durability)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    store.set_keyring(config.keyring()?);
    let mut wanted: Vec<&str> = config.api_keys.iter().map(|k| k.tenant.as_str()).collect();
    wanted.push(&config.local_tenant);
    wanted.push("default");
    if let Some(jwt) = &config.jwt {
        wanted.push(&jwt.settings.default_tenant);
    }
    for id in wanted {
        let id = plexus_core::TenantId::new(id);
        if store.get_tenant(&id).await?.is_none() {
            let new = plexus_store::NewTenant { id: id.clone(), name: id.to_string(), tier: "standard".into() };
            match store.create_tenant(&new).await {
                Ok(_) | Err(plexus_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(store)
}

/// The call pipeline. The order is declared here and only here:
///
/// 1. telemetry: outermost, so the latency it records is what the caller saw,
///    audit included, and failed or refused calls are counted too;
/// 2. audit: sees every call that reaches the server, refused ones included,
///    and holds the reply until its record is durable;
/// 3. authenticate: nothing below runs for an unknown caller;
/// 4. tenant: resolve and check the caller's tenant before spending on it;
/// 5. rate limit: per principal and tenant, before the more costly checks;
/// 6. authorize: default deny; a denied target looks like a missing one;
/// 7. validate: arguments against the tool's schema, before any module code;
/// 8. timeout: bounds only the module's own work;
/// 9. router: dispatch to the module.
pub fn pipeline(config: &Config, registry: &Arc<Registry>, ports: &Ports) -> Pipeline {
    if !config.trust_layers {
        // Benchmarks only: what the pipeline costs without the trust layers.
        tracing::warn!("serving WITHOUT authentication, policy, limits or audit (server.trust_layers = false)");
        let svc = ServiceBuilder::new()
            .layer(TelemetryLayer::new(Arc::clone(&ports.telemetry)))
            .layer(GateLayer::new(Validate::new(Arc::clone(registry))))
            .layer(TimeoutLayer::new(config.call_timeout))
            .service(Router::new(Arc::clone(registry)));
        return Pipeline::new(svc);
    }
    let svc = ServiceBuilder::new()
        .layer(TelemetryLayer::new(Arc::clone(&ports.telemetry)))
        .layer(AuditLayer::new(Arc::clone(&ports.audit)))
        .layer(GateLayer::new(Authenticate::new(Arc::clone(&ports.authenticator))))
        .layer(GateLayer::new(Tenancy::new(Arc::clone(&ports.tenants))))
        .layer(GateLayer::new(RateLimit::new(Arc::clone(&ports.limiter)).with_telemetry(Arc::clone(&ports.telemetry))))
        .layer(GateLayer::new(Authorize::new(authorize_policy(registry, ports))))
        .layer(GateLayer::new(Validate::new(Arc::clone(registry))))
        .layer(TimeoutLayer::new(config.call_timeout))
        .service(Router::new(Arc::clone(registry)));
    Pipeline::new(svc)
}

/// 32 random bytes (for sealing request state).
pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    k
}

/// The policy the authorize gate asks: the roles, with the access lists on
/// top when there are any.
fn authorize_policy(registry: &Arc<Registry>, ports: &Ports) -> Arc<dyn plexus_core::ports::Policy> {
    let roles = Arc::clone(&ports.policy) as Arc<dyn plexus_core::ports::Policy>;
    match &ports.access {
        Some(access) => {
            Arc::new(plexus_core::access::AccessPolicy::new(roles, Arc::clone(access), Arc::clone(registry)))
        }
        None => roles,
    }
}

/// Reload the roles of the configuration file into the running policy. An
/// invalid file changes nothing; the error says why.
pub fn reload_policy(path: &std::path::Path, policy: &SharedPolicy) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = Config::parse(&text, &crate::config::ProcessEnv)
        .with_context(|| format!("invalid configuration in {}; the policy in force is unchanged", path.display()))?;
    policy.replace(Arc::new(self::policy(&config)));
    Ok(config.roles.len())
}

/// Watch the configuration file and reload the policy when it changes
/// (checked every `every`; a change takes effect within that time).
pub fn watch_policy(path: std::path::PathBuf, policy: Arc<SharedPolicy>, every: std::time::Duration) {
    tokio::spawn(async move {
        let stamp = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut last = stamp(&path);
        loop {
            tokio::time::sleep(every).await;
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            match reload_policy(&path, &policy) {
                Ok(n) => tracing::info!(path = %path.display(), roles = n, "policy reloaded"),
                Err(e) => tracing::error!(error = format!("{e:#}"), "policy reload refused"),
            }
        }
    });
}

/// The trading module over an open desk, its market data announced on `bus`.
fn trading_module(
    config: &Config,
    desk: &plexus_trading::desk::Desk,
    feeds: &[Arc<plexus_trading::feeds::FeedHandle>],
    bus: &Bus,
) -> anyhow::Result<Arc<dyn Module>> {
    let checked = config.trading.check().map_err(|e| anyhow::anyhow!(e))?;
    plexus_trading::tools::notify_on(desk, feeds, bus.clone(), std::time::Duration::from_millis(50));
    Ok(Arc::new(plexus_trading::Trading::new(plexus_trading::tools::Ctx {
        desk: desk.clone(),
        traders: checked.traders,
        history: plexus_trading::history::History::simulated(&checked.volatility),
        sectors: checked.sectors,
        simulated: config.trading.simulate,
        feeds: feeds.to_vec(),
    })))
}

/// Start the external market-data feeds of `[[trading.feeds]]` (they connect
/// in the background and keep reconnecting; a feed that is down only marks
/// its own data).
pub fn start_feeds(config: &Config) -> anyhow::Result<Vec<Arc<plexus_trading::feeds::FeedHandle>>> {
    let checked = config.trading.check().map_err(|e| anyhow::anyhow!(e))?;
    checked
        .feeds
        .into_iter()
        .map(|f| {
            let name = f.name.clone();
            plexus_trading::feeds::FeedHandle::start(f)
                .map(Arc::new)
                .with_context(|| format!("cannot start the trading feed `{name}`"))
        })
        .collect()
}

/// Cluster mode: share the knowledge index's syncs through the database
/// (one node syncs, every node applies the shared documents). Where this
/// node's index stands is kept beside it, so a restart applies only what
/// is new.
pub async fn join_knowledge(config: &Config, k: &Knowledge) -> anyhow::Result<()> {
    let mark = config.knowledge_dir().join("shared.seq");
    let applied = std::fs::read_to_string(&mark).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let keep = mark.clone();
    plexus_knowledge::cluster::join(
        &k.index,
        &config.storage_url(),
        &config.node_id,
        applied,
        Box::new(move |seq| {
            if let Err(e) = std::fs::write(&keep, seq.to_string()) {
                tracing::warn!(error = %e, path = %keep.display(), "cannot keep where the knowledge index stands");
            }
        }),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot join the cluster's knowledge index: {e}"))?;
    Ok(())
}

/// The desk's configuration.
fn desk_config(config: &Config) -> anyhow::Result<plexus_trading::desk::DeskConfig> {
    let checked = config.trading.check().map_err(|e| anyhow::anyhow!(e))?;
    let dir = config.data_dir.join("trading");
    Ok(plexus_trading::desk::DeskConfig {
        journal: dir.join("journal"),
        sync: checked.sync,
        instruments: checked.instruments,
        accounts: checked.accounts,
        roles: checked.roles,
        restricted: config.trading.restricted.clone(),
        pretrade: checked.pretrade,
        surveillance: plexus_trading::surveillance::SurveillanceConfig {
            otr_limit: config.trading.otr_limit,
            otr_min_orders: config.trading.otr_min_orders,
            otr_window_ns: config.trading.otr_window_seconds.saturating_mul(1_000_000_000),
            ..plexus_trading::surveillance::SurveillanceConfig::default()
        },
        max_batch: config.trading.max_batch,
    })
}

/// Open the trading desk (its journal under the data directory), replaying
/// the journal.
pub fn open_desk(config: &Config) -> anyhow::Result<plexus_trading::desk::Desk> {
    let desk_config = desk_config(config)?;
    if let Some(dir) = desk_config.journal.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    plexus_trading::desk::Desk::open(desk_config).map_err(|e| anyhow::anyhow!(e))
}

/// Join the cluster's trading venue: its journal in the shared database,
/// order entry forwarded to its leader over the cluster bus.
pub async fn open_shared_desk(
    config: &Config,
    url: &str,
    client: &async_nats::Client,
    bus: &crate::config::BusConfig,
) -> anyhow::Result<plexus_trading::desk::Desk> {
    let venue =
        plexus_trading::cluster::SharedVenue::connect(url, &config.node_id, plexus_trading::cluster::VENUE).await?;
    let forward = Arc::new(crate::cluster::NatsForwarder::new(client.clone(), bus));
    Ok(plexus_trading::desk::Desk::open_shared(desk_config(config)?, Arc::new(venue), forward).await?)
}
