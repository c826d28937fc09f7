//! Ports: what the pipeline needs from the outside, implemented by adapters
//! (plexus-store for durable state, the app for configuration-driven ones).

use std::time::Duration;

use crate::audit::AuditEvent;
use crate::context::{Credential, Principal, TenantId};
use crate::pipeline::Target;

/// Turns a transport credential into a principal.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, AuthError>;
}

/// Why a credential was refused. Messages never contain the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("no credential")]
    Missing,
    #[error("invalid credential: {0}")]
    Invalid(String),
    #[error("credential expired")]
    Expired,
    #[error("credential revoked")]
    Revoked,
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
}

/// What the pipeline knows about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    pub id: TenantId,
    pub tier: String,
    pub active: bool,
}

/// Resolves and checks the caller's tenant.
#[async_trait::async_trait]
pub trait TenantDirectory: Send + Sync + 'static {
    async fn tenant(&self, id: &TenantId) -> Option<TenantInfo>;
}

/// A tenant as its administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOverview {
    pub id: TenantId,
    pub name: String,
    pub tier: String,
    pub active: bool,
}

/// Lists every tenant (administration: `list_tenants`, the console's tenants page).
#[async_trait::async_trait]
pub trait TenantLister: Send + Sync + 'static {
    async fn tenants(&self) -> Result<Vec<TenantOverview>, String>;
}

/// Admits or refuses a call by rate and quota.
pub trait RateLimiter: Send + Sync + 'static {
    /// `Err(retry_after)` when over the limit.
    fn check(&self, principal: &Principal) -> Result<(), Duration>;
}

/// The decision of the policy for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the reason recorded in the audit log (never sent).
    Deny(String),
}

/// Who may do what.
pub trait Policy: Send + Sync + 'static {
    /// May the principal use the target at all (listings use this)?
    fn decide(&self, principal: &Principal, target: &Target<'_>) -> Decision;

    /// May the principal make this call, with these arguments, now?
    fn decide_call(&self, principal: &Principal, target: &Target<'_>, args: &serde_json::Value) -> Decision {
        let _ = args;
        self.decide(principal, target)
    }
}

/// Where audit records go. `append` returns only once the record is durable.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    async fn append(&self, event: AuditEvent) -> Result<(), AuditError>;
    /// Records accepted but not yet durable (for metrics).
    fn queue_depth(&self) -> usize {
        0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("audit log unavailable: {0}")]
pub struct AuditError(pub String);

/// Whose audit records a query reads. Reading every tenant's records is a
/// deliberate choice (platform administration), never a missing filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditScope {
    /// One tenant's records.
    Tenant(String),
    /// Every tenant's records.
    AllTenants,
}

/// Which audit records to read. Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub scope: AuditScope,
    /// First time included.
    pub from: Option<String>,
    /// First time excluded.
    pub to: Option<String>,
    pub principal: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// Most records returned (the newest first).
    pub limit: usize,
}

impl AuditQuery {
    /// Does a record match (time bounds compare as RFC 3339 UTC strings)?
    pub fn matches(&self, r: &crate::audit::AuditRecord) -> bool {
        let in_scope = match &self.scope {
            AuditScope::Tenant(t) => r.tenant == *t,
            AuditScope::AllTenants => true,
        };
        in_scope
            && self.from.as_deref().is_none_or(|f| r.time.as_str() >= f)
            && self.to.as_deref().is_none_or(|t| r.time.as_str() < t)
            && self.principal.as_deref().is_none_or(|p| r.principal == p)
            && self.target.as_deref().is_none_or(|t| r.target == t)
            && self.outcome.as_deref().is_none_or(|o| r.outcome == o)
    }
}

/// Reads the audit log back (for auditors).
#[async_trait::async_trait]
pub trait AuditReader: Send + Sync + 'static {
    async fn query(&self, q: &AuditQuery) -> Result<Vec<crate::audit::AuditRecord>, AuditError>;

    /// Every hash chain in full, named (the file; or one per node in the
    /// database), for verification.
    async fn chains(&self) -> Result<Vec<(String, Vec<crate::audit::AuditRecord>)>, AuditError> {
        Err(AuditError("this audit log cannot be read whole".into()))
    }
}

/// Keep the newest `limit` matches of `records`, newest first.
pub fn newest_matches(records: Vec<crate::audit::AuditRecord>, q: &AuditQuery) -> Vec<crate::audit::AuditRecord> {
    let mut hits: Vec<_> = records.into_iter().filter(|r| q.matches(r)).collect();
    hits.sort_by(|a, b| b.time.cmp(&a.time).then(b.seq.cmp(&a.seq)));
    hits.truncate(q.limit);
    hits
}

/// A legacy-era (2025-11-25) MCP session as kept for other nodes and
/// restarts: the client's handshake (an opaque string in the transport's
/// own format) and what the session has asked for since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRecord {
    pub handshake: String,
    /// Resource URIs the session subscribed to.
    pub subscriptions: Vec<String>,
    /// The log level the session set (`debug`, `info`, ...), if any.
    pub log_level: Option<String>,
    /// Whose session it is (an opaque digest of the principal that began
    /// it); requests of anyone else name an unknown session.
    pub owner: Option<String>,
}

/// Where legacy sessions are kept so that any node can carry one on after
/// the node that began it is gone. Errors are messages for the log.
#[async_trait::async_trait]
pub trait SessionRecords: Send + Sync + 'static {
    /// The session, unless unknown (never begun, ended, or expired).
    async fn load(&self, id: &str) -> Result<Option<SessionRecord>, String>;
    /// A new session after its handshake (no subscriptions, no log level,
    /// no owner yet).
    async fn begin(&self, id: &str, handshake: &str) -> Result<(), String>;
    /// Bind a session to its owner, once: a session already bound keeps
    /// its owner. Returns the owner in force, `None` for an unknown session.
    async fn bind(&self, id: &str, owner: &str) -> Result<Option<String>, String>;
    /// What the session asks for now; unknown sessions are left unknown.
    async fn update(&self, id: &str, subscriptions: &[String], log_level: Option<&str>) -> Result<(), String>;
    /// The client ended the session.
    async fn end(&self, id: &str) -> Result<(), String>;
}
