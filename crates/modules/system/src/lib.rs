//! The `system` module: tools every Plexus server has, whatever else it hosts.
//!
//! - `echo(text)`: returns its argument; the trivial tool the protocol
//!   benchmarks call on every server they compare.
//! - `whoami()`: the caller's principal, tenant, roles and protocol era, as
//!   the pipeline established them.
//! - `query_audit_log(...)`: audit records of the caller's own tenant, newest
//!   first (when the server gives the module an audit reader). Who may call
//!   it is the policy's business: grant it to an `auditor` role.
//! - `list_tenants()`: every tenant with its tier, state, rate limits and
//!   calls since the start (administrators only: it lists every tenant).
//! - `verify_audit_chain()`: checks every hash chain of the audit log from its
//!   first record; answers counts, heads and breaks, never record contents
//!   (it reads every tenant's records: grant it to administrators only).

use std::sync::Arc;

use plexus_core::context::Era;
use plexus_core::ports::{AuditQuery, AuditReader, AuditScope, TenantLister};
use plexus_core::ratelimit::{Limits, Quotas};
use plexus_core::telemetry::Telemetry;
use plexus_core::{CallContext, Module, ToolDef, ToolError, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The module's name.
pub const NAME: &str = "system";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// Text to return unchanged.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Who the server thinks the caller is.
#[derive(Debug, Serialize, JsonSchema)]
struct Identity {
    subject: String,
    tenant: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    /// Groups (from a token's groups claim).
    groups: Vec<String>,
    /// How the caller authenticated: `api_key`, `jwt`, `local` or `anonymous`.
    method: String,
    /// `2025-11-25` (sessions) or `2026-07-28` (stateless).
    era: String,
}

/// The rate limits of each tier (`[limits]` and `[limits.tiers.*]`).
#[derive(Debug, Clone, Default)]
pub struct TierQuotas {
    /// For tiers without their own.
    pub default: Quotas,
    pub tiers: std::collections::BTreeMap<String, Quotas>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TenantList {
    tenants: Vec<TenantEntry>,
    /// What the usage counts cover.
    usage_since: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TenantEntry {
    id: String,
    name: String,
    tier: String,
    /// Suspended tenants are refused every call.
    active: bool,
    quotas: QuotaView,
    usage: Usage,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct QuotaView {
    /// Calls per second per principal (none: unlimited).
    principal_per_second: Option<f64>,
    principal_burst: Option<u32>,
    /// Calls per second for the whole tenant.
    tenant_per_second: Option<f64>,
    tenant_burst: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Usage {
    calls: u64,
    errors: u64,
    rate_limited: u64,
}

/// The audit log's chains, verified.
#[derive(Debug, Serialize, JsonSchema)]
struct Verification {
    /// Every chain intact.
    intact: bool,
    chains: Vec<ChainReport>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ChainReport {
    /// The file, or `node <id>` in the database.
    name: String,
    records: u64,
    /// The last record's hash.
    head: String,
    /// Every break found (empty: intact).
    errors: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuditQueryArgs {
    /// First time included, RFC 3339 (e.g. 2026-11-01T00:00:00Z).
    from: Option<String>,
    /// First time excluded, RFC 3339.
    to: Option<String>,
    /// Only calls by this principal.
    principal: Option<String>,
    /// Only calls of this tool, prompt or resource.
    target: Option<String>,
    /// Only this outcome: ok, denied, tool_error, invalid_arguments, ...
    outcome: Option<String>,
    /// Most records returned, newest first (1 to 1000, default 100).
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AllTenantsAuditArgs {
    /// Only this tenant's records (default: every tenant).
    tenant: Option<String>,
    /// First time included, RFC 3339.
    from: Option<String>,
    /// First time excluded, RFC 3339.
    to: Option<String>,
    /// Only calls by this principal.
    principal: Option<String>,
    /// Only calls of this tool, prompt or resource.
    target: Option<String>,
    /// Only this outcome: ok, denied, tool_error, invalid_arguments, ...
    outcome: Option<String>,
    /// Most records returned, newest first (1 to 1000, default 100).
    limit: Option<u32>,
}

impl AllTenantsAuditArgs {
    /// The tenant scope and the filters.
    fn split(self) -> (AuditScope, AuditQueryArgs) {
        let scope = match self.tenant.as_deref().map(str::trim) {
            None | Some("") => AuditScope::AllTenants,
            Some(t) => AuditScope::Tenant(t.to_owned()),
        };
        let Self { from, to, principal, target, outcome, limit, .. } = self;
        (scope, AuditQueryArgs { from, to, principal, target, outcome, limit })
    }
}

/// One audit record as an auditor sees it.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditEntry {
    seq: u64,
    time: String,
    tenant: String,
    request_id: String,
    principal: String,
    operation: String,
    target: String,
    outcome: String,
    latency_us: u64,
    args_digest: String,
    hash: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct AuditPage {
    records: Vec<AuditEntry>,
}

fn check_time(field: &str, v: &Option<String>) -> Result<(), ToolError> {
    match v {
        Some(t) if time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_err() => {
            Err(ToolError::InvalidArguments(format!("`{field}` must be an RFC 3339 time such as 2026-11-01T00:00:00Z")))
        }
        _ => Ok(()),
    }
}

/// The newest records of `scope` that match `a`.
async fn audit_page(reader: &dyn AuditReader, scope: AuditScope, a: AuditQueryArgs) -> Result<AuditPage, ToolError> {
    check_time("from", &a.from)?;
    check_time("to", &a.to)?;
    let limit = a.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ToolError::InvalidArguments("`limit` must be between 1 and 1000".into()));
    }
    let q = AuditQuery {
        scope,
        from: a.from,
        to: a.to,
        principal: a.principal,
        target: a.target,
        outcome: a.outcome,
        limit: limit as usize,
    };
    let records = reader.query(&q).await.map_err(|e| ToolError::unavailable(e.to_string()))?;
    let records = records
        .into_iter()
        .map(|r| AuditEntry {
            seq: r.seq,
            time: r.time,
            tenant: r.tenant,
            request_id: r.request_id,
            principal: r.principal,
            operation: r.operation,
            target: r.target,
            outcome: r.outcome,
            latency_us: r.latency_us,
            args_digest: r.args_digest,
            hash: r.hash,
        })
        .collect();
    Ok(AuditPage { records })
}

/// The system module.
pub struct System {
    tools: Toolbox,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System").finish_non_exhaustive()
    }
}

impl Default for System {
    fn default() -> Self {
        let tools = Toolbox::new(NAME)
            .typed_args(
                ToolDef::new("echo", "Return the given text unchanged").title("Echo").read_only().idempotent(),
                |_cx: CallContext, a: EchoArgs| async move { Ok(ToolOutput::text(a.text)) },
            )
            .typed(
                ToolDef::new("whoami", "Show the caller's identity, tenant and roles as the server sees them")
                    .title("Who am I")
                    .read_only()
                    .idempotent(),
                |cx: CallContext, _: NoArgs| async move {
                    let p = &cx.principal;
                    Ok(Identity {
                        subject: p.subject.clone(),
                        tenant: p.tenant.to_string(),
                        roles: p.roles.clone(),
                        scopes: p.scopes.clone(),
                        groups: p.groups.clone(),
                        method: p.method.to_owned(),
                        era: match cx.era {
                            Era::Legacy => "2025-11-25",
                            Era::Stateless => "2026-07-28",
                        }
                        .to_owned(),
                    })
                },
            );
        Self { tools }
    }
}

/// The module, ready to register.
pub fn module() -> Arc<dyn Module> {
    Arc::new(System::default())
}

impl System {
    /// Add `list_tenants` over `lister`, with each tier's `quotas` and the
    /// usage `telemetry` counted.
    pub fn with_tenants(
        mut self,
        lister: Arc<dyn TenantLister>,
        quotas: TierQuotas,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Self {
        self.tools = self.tools.typed(
            ToolDef::new(
                "list_tenants",
                "Every tenant with its tier, whether it is active, its rate limits and its calls, errors and \
                 rate-limit refusals since the server started",
            )
            .title("List tenants")
            .read_only()
            .idempotent(),
            move |_cx: CallContext, _a: NoArgs| {
                let (lister, quotas, telemetry) = (Arc::clone(&lister), quotas.clone(), telemetry.clone());
                async move {
                    let list = lister.tenants().await.map_err(ToolError::unavailable)?;
                    let calls = telemetry.as_ref().map(|t| t.tenant_calls()).unwrap_or_default();
                    let limited = telemetry.as_ref().map(|t| t.rate_limited_by_tenant()).unwrap_or_default();
                    let limits = |l: Option<Limits>| (l.map(|l| l.rate()), l.map(|l| l.burst()));
                    let tenants = list
                        .into_iter()
                        .map(|t| {
                            let q = quotas.tiers.get(&t.tier).copied().unwrap_or(quotas.default);
                            let (pr, pb) = limits(q.principal);
                            let (tr, tb) = limits(q.tenant);
                            let (c, e) = calls.iter().find(|x| x.0 == t.id).map_or((0, 0), |x| (x.1, x.2));
                            let r = limited.iter().find(|x| x.0 == t.id).map_or(0, |x| x.1);
                            TenantEntry {
                                id: t.id.to_string(),
                                name: t.name,
                                tier: t.tier,
                                active: t.active,
                                quotas: QuotaView {
                                    principal_per_second: pr,
                                    principal_burst: pb,
                                    tenant_per_second: tr,
                                    tenant_burst: tb,
                                },
                                usage: Usage { calls: c, errors: e, rate_limited: r },
                            }
                        })
                        .collect();
                    Ok(TenantList { tenants, usage_since: "the server's start".into() })
                }
            },
        );
        self
    }

    /// Add `query_audit_log` and `verify_audit_chain`, reading from `reader`.
    pub fn with_audit(mut self, reader: Arc<dyn AuditReader>) -> Self {
        let whole = Arc::clone(&reader);
        self.tools = self.tools.typed(
            ToolDef::new(
                "verify_audit_chain",
                "Verify the audit log's hash chains from their first records: record counts, head hashes and any break \
                 (altered, missing or reordered records)",
            )
            .title("Verify the audit log")
            .read_only()
            .idempotent(),
            move |_cx: CallContext, _a: NoArgs| {
                let reader = Arc::clone(&whole);
                async move {
                    let chains = reader.chains().await.map_err(|e| ToolError::unavailable(e.to_string()))?;
                    let checked = tokio::task::spawn_blocking(move || {
                        chains
                            .into_iter()
                            .map(|(name, records)| match plexus_core::audit::verify(&records) {
                                Ok(s) => ChainReport { name, records: s.records, head: s.head, errors: Vec::new() },
                                Err(errors) => ChainReport {
                                    name,
                                    records: records.len() as u64,
                                    head: records.last().map(|r| r.hash.clone()).unwrap_or_default(),
                                    errors: errors.iter().map(ToString::to_string).collect(),
                                },
                            })
                            .collect::<Vec<_>>()
                    })
                    .await
                    .map_err(ToolError::internal)?;
                    Ok(Verification { intact: checked.iter().all(|c| c.errors.is_empty()), chains: checked })
                }
            },
        );
        let own = Arc::clone(&reader);
        self.tools = self.tools.typed(
            ToolDef::new(
                "query_audit_log",
                "Read the audit log of your own tenant: who called what, when, with which outcome (newest first)",
            )
            .title("Query the audit log")
            .read_only()
            .idempotent(),
            move |cx: CallContext, a: AuditQueryArgs| {
                let reader = Arc::clone(&own);
                async move { audit_page(&*reader, AuditScope::Tenant(cx.tenant().to_string()), a).await }
            },
        );
        self.tools = self.tools.typed(
            ToolDef::new(
                "query_audit_log_all_tenants",
                "Read the audit log across every tenant, or of one named tenant (platform administrators): who called \
                 what, when, with which outcome (newest first)",
            )
            .title("Query every tenant's audit log")
            .read_only()
            .idempotent(),
            move |_cx: CallContext, a: AllTenantsAuditArgs| {
                let reader = Arc::clone(&reader);
                async move {
                    let (scope, query) = a.split();
                    audit_page(&*reader, scope, query).await
                }
            },
        );
        self
    }
}

#[async_trait::async_trait]
impl Module for System {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        self.tools.call(cx, tool, args).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn echo_returns_text_and_rejects_extra_fields() {
        let m = System::default();
        let cx = CallContext::detached("t");
        let out = m.call(&cx, "echo", json!({"text": "こんにちは"})).await.unwrap();
        assert_eq!(out.content[0].as_text(), Some("こんにちは"));
        let err = m.call(&cx, "echo", json!({"text": "a", "x": 1})).await.unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
        let spec = m.tools().into_iter().find(|t| t.name == "echo").unwrap();
        assert_eq!(spec.input_schema["additionalProperties"], json!(false));
    }

    #[tokio::test]
    async fn whoami_reports_the_principal() {
        let m = System::default();
        let cx = CallContext::detached("t");
        let out = m.call(&cx, "whoami", json!({})).await.unwrap();
        let v = out.structured.unwrap();
        assert_eq!(v["subject"], "unauthenticated");
        assert_eq!(v["era"], "2026-07-28");
    }

    struct Log(Vec<plexus_core::audit::AuditRecord>);

    #[async_trait::async_trait]
    impl AuditReader for Log {
        async fn query(
            &self,
            q: &AuditQuery,
        ) -> Result<Vec<plexus_core::audit::AuditRecord>, plexus_core::ports::AuditError> {
            Ok(plexus_core::ports::newest_matches(self.0.clone(), q))
        }
    }

    #[tokio::test]
    async fn audit_queries_keep_to_their_tenant_unless_they_read_every_tenant() {
        let mut prev = String::new();
        let records: Vec<_> =
            [("default", "ann", "echo"), ("u", "bob", "echo"), ("u", "bob", "whoami"), ("default", "ann", "whoami")]
                .into_iter()
                .enumerate()
                .map(|(i, (tenant, principal, target))| {
                    let r = plexus_core::audit::AuditRecord::chain(
                        i as u64,
                        &prev,
                        plexus_core::audit::AuditEvent {
                            time: format!("2026-11-22T10:00:0{i}Z"),
                            request_id: format!("r{i}"),
                            session: None,
                            principal: principal.into(),
                            tenant: tenant.into(),
                            operation: "tools/call".into(),
                            target: target.into(),
                            args_digest: String::new(),
                            outcome: "ok".into(),
                            latency_us: 1,
                            client_addr: None,
                        },
                    );
                    prev = r.hash.clone();
                    r
                })
                .collect();
        let m = System::default().with_audit(Arc::new(Log(records)));
        let cx = CallContext::detached("r");
        assert_eq!(cx.tenant().as_str(), "default");
        let seen = |out: ToolOutput| {
            out.structured.unwrap()["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| format!("{}/{}/{}", r["tenant"].as_str().unwrap(), r["seq"], r["target"].as_str().unwrap()))
                .collect::<Vec<_>>()
        };
        let own = m.call(&cx, "query_audit_log", json!({})).await.unwrap();
        assert_eq!(seen(own), ["default/3/whoami", "default/0/echo"]);
        let err = m.call(&cx, "query_audit_log", json!({"tenant": "u"})).await.unwrap_err();
        assert!(err.to_string().contains("unknown field `tenant`"), "{err}");
        let all = m.call(&cx, "query_audit_log_all_tenants", json!({"target": "echo"})).await.unwrap();
        assert_eq!(seen(all), ["u/1/echo", "default/0/echo"]);
        let one = m.call(&cx, "query_audit_log_all_tenants", json!({"tenant": "u", "limit": 1})).await.unwrap();
        assert_eq!(seen(one), ["u/2/whoami"]);
        let blank = m.call(&cx, "query_audit_log_all_tenants", json!({"tenant": " "})).await.unwrap();
        assert_eq!(seen(blank).len(), 4, "a blank tenant is no filter");
    }

    struct Two;

    #[async_trait::async_trait]
    impl TenantLister for Two {
        async fn tenants(&self) -> Result<Vec<plexus_core::ports::TenantOverview>, String> {
            let t = |id: &str, tier: &str, active: bool| plexus_core::ports::TenantOverview {
                id: plexus_core::TenantId::new(id),
                name: id.to_uppercase(),
                tier: tier.into(),
                active,
            };
            Ok(vec![t("acme", "enterprise", true), t("globex", "free", false)])
        }
    }

    #[tokio::test]
    async fn list_tenants_shows_tiers_limits_and_use() {
        let telemetry = Arc::new(Telemetry::default());
        for ok in [true, true, false] {
            telemetry.record_tenant(&plexus_core::TenantId::new("acme"), ok);
        }
        telemetry.record_rate_limited(&plexus_core::TenantId::new("globex"));
        let free = Quotas { principal: Some(Limits::per_second(2.0, 4).unwrap()), tenant: None };
        let quotas = TierQuotas { default: Quotas::unlimited(), tiers: [("free".to_owned(), free)].into() };
        let m = System::default().with_tenants(Arc::new(Two), quotas, Some(telemetry));
        let v = m.call(&CallContext::detached("t"), "list_tenants", json!({})).await.unwrap().structured.unwrap();
        let acme = &v["tenants"][0];
        assert_eq!(
            (acme["id"].as_str(), acme["tier"].as_str(), acme["active"].as_bool()),
            (Some("acme"), Some("enterprise"), Some(true))
        );
        assert_eq!(acme["usage"], json!({"calls": 3, "errors": 1, "rateLimited": 0}));
        assert_eq!(
            acme["quotas"]["principalPerSecond"],
            json!(null),
            "enterprise has no tier of its own: the default, unlimited"
        );
        let globex = &v["tenants"][1];
        assert_eq!(globex["active"], false);
        assert_eq!(globex["quotas"]["principalPerSecond"].as_f64(), Some(2.0));
        assert_eq!(globex["quotas"]["principalBurst"], 4);
        assert_eq!(globex["usage"]["rateLimited"], 1);
    }
}
