//! Gates: the layers that admit or refuse a call before it goes in.
//!
//! Authenticate, tenant, rate limit, authorize and validate all have the same
//! shape (look at the call, maybe refuse, maybe enrich it), so they share one
//! `Layer`/`Service` pair, [`GateLayer`], over the [`Gate`] trait. A refusing
//! gate returns its error without calling the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::{Call, Operation, Reply, Target};
use crate::context::{Credential, Principal};
use crate::error::ToolError;
use crate::ports::{AuthError, Authenticator, Decision, Policy, RateLimiter, TenantDirectory};
use crate::registry::{Page, Registry};
use crate::telemetry::Telemetry;

/// A check a call must pass.
#[async_trait::async_trait]
pub trait Gate: Send + Sync + 'static {
    /// Admit the call (possibly enriching it) or refuse it.
    async fn admit(&self, call: &mut Call) -> Result<(), ToolError>;

    /// Whether [`Gate::filter`] must see the reply.
    fn filters(&self) -> bool {
        false
    }

    /// Trim the reply for the caller (listings).
    fn filter(&self, _principal: &Principal, reply: Reply) -> Reply {
        reply
    }
}

/// Wraps a service with a [`Gate`].
pub struct GateLayer<G> {
    gate: Arc<G>,
}

impl<G> GateLayer<G> {
    pub fn new(gate: G) -> Self {
        Self { gate: Arc::new(gate) }
    }
}

impl<G> Clone for GateLayer<G> {
    fn clone(&self) -> Self {
        Self { gate: Arc::clone(&self.gate) }
    }
}

impl<G, S> Layer<S> for GateLayer<G> {
    type Service = GateService<G, S>;
    fn layer(&self, inner: S) -> Self::Service {
        GateService { gate: Arc::clone(&self.gate), inner }
    }
}

pub struct GateService<G, S> {
    gate: Arc<G>,
    inner: S,
}

impl<G, S: Clone> Clone for GateService<G, S> {
    fn clone(&self) -> Self {
        Self { gate: Arc::clone(&self.gate), inner: self.inner.clone() }
    }
}

impl<G, S> Service<Call> for GateService<G, S>
where
    G: Gate,
    S: Service<Call, Response = Reply, Error = ToolError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = ToolError;
    type Future = BoxFuture<'static, Result<Reply, ToolError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ToolError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        // The inner service was polled ready; take it and leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            gate.admit(&mut call).await?;
            if gate.filters() {
                let principal = Arc::clone(&call.cx.principal);
                let reply = inner.call(call).await?;
                Ok(gate.filter(&principal, reply))
            } else {
                inner.call(call).await
            }
        })
    }
}

/// Establishes the principal from the transport credential.
pub struct Authenticate {
    authenticator: Arc<dyn Authenticator>,
}

impl Authenticate {
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        Self { authenticator }
    }
}

#[async_trait::async_trait]
impl Gate for Authenticate {
    async fn admit(&self, call: &mut Call) -> Result<(), ToolError> {
        let principal = match std::mem::take(&mut call.cx.credential) {
            Credential::Verified(p) => *p,
            credential => self.authenticator.authenticate(&credential).await.map_err(|e| match e {
                AuthError::InsufficientScope(s) => ToolError::InsufficientScope(s),
                other => ToolError::Unauthenticated { reason: other.to_string() },
            })?,
        };
        let _ = call.cx.trace.principal.set(principal.clone());
        call.cx.principal = Arc::new(principal);
        // The credential is not kept past this point.
        call.cx.credential = Credential::None;
        Ok(())
    }
}

/// Resolves the tenant and refuses unknown or suspended ones.
pub struct Tenancy {
    directory: Arc<dyn TenantDirectory>,
}

impl Tenancy {
    pub fn new(directory: Arc<dyn TenantDirectory>) -> Self {
        Self { directory }
    }
}

#[async_trait::async_trait]
impl Gate for Tenancy {
    async fn admit(&self, call: &mut Call) -> Result<(), ToolError> {
        let id = call.cx.principal.tenant.clone();
        match self.directory.tenant(&id).await {
            Some(t) if t.active => Ok(()),
            Some(_) => Err(ToolError::TenantUnavailable(format!("tenant `{id}` is suspended"))),
            None => Err(ToolError::TenantUnavailable(format!("tenant `{id}` is unknown"))),
        }
    }
}

/// Per-principal and per-tenant rate limits.
///
/// The gate, not the limiter, counts refusals (with
/// [`RateLimit::with_telemetry`]): every [`RateLimiter`] gets counted the same
/// way, and a module's own `RateLimited` error (an upstream's limit) is not
/// mistaken for one of ours.
pub struct RateLimit {
    limiter: Arc<dyn RateLimiter>,
    telemetry: Option<Arc<Telemetry>>,
}

impl RateLimit {
    pub fn new(limiter: Arc<dyn RateLimiter>) -> Self {
        Self { limiter, telemetry: None }
    }

    /// Count refused calls (total and per tenant) in `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }
}

#[async_trait::async_trait]
impl Gate for RateLimit {
    async fn admit(&self, call: &mut Call) -> Result<(), ToolError> {
        self.limiter.check(&call.cx.principal).map_err(|retry_after| {
            if let Some(t) = &self.telemetry {
                t.record_rate_limited(&call.cx.principal.tenant);
            }
            ToolError::RateLimited { retry_after }
        })
    }
}

/// Default-deny policy: a denied target looks exactly like a missing one, and
/// listings only show what the caller may use.
pub struct Authorize {
    policy: Arc<dyn Policy>,
}

impl Authorize {
    pub fn new(policy: Arc<dyn Policy>) -> Self {
        Self { policy }
    }
}

fn trim<T>(page: Page<T>, keep: impl Fn(&T) -> bool) -> Page<T> {
    Page { items: page.items.into_iter().filter(|i| keep(i)).collect(), next_cursor: page.next_cursor }
}

#[async_trait::async_trait]
impl Gate for Authorize {
    async fn admit(&self, call: &mut Call) -> Result<(), ToolError> {
        let target = call.op.target();
        if matches!(target, Target::Listing(_)) {
            return Ok(());
        }
        let decision = match &call.op {
            Operation::CallTool { args, .. } => self.policy.decide_call(&call.cx.principal, &target, args),
            _ => self.policy.decide(&call.cx.principal, &target),
        };
        match decision {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                let _ = call.cx.trace.denied.set(reason);
                Err(match target {
                    Target::Tool(n) => ToolError::unknown_tool(n),
                    Target::Prompt(n) => ToolError::unknown_prompt(n),
                    Target::Resource(u) => ToolError::unknown_resource(u),
                    Target::Listing(_) => ToolError::InvalidRequest("listing denied".into()),
                })
            }
        }
    }

    fn filters(&self) -> bool {
        true
    }

    fn filter(&self, p: &Principal, reply: Reply) -> Reply {
        let allowed = |t: Target<'_>| self.policy.decide(p, &t) == Decision::Allow;
        match reply {
            Reply::Tools(page) => Reply::Tools(trim(page, |s| allowed(Target::Tool(&s.name)))),
            Reply::Prompts(page) => Reply::Prompts(trim(page, |s| allowed(Target::Prompt(&s.name)))),
            Reply::Resources(page) => Reply::Resources(trim(page, |s| allowed(Target::Resource(&s.uri)))),
            Reply::ResourceTemplates(page) => {
                Reply::ResourceTemplates(trim(page, |s| allowed(Target::Resource(&s.uri_template))))
            }
            other => other,
        }
    }
}

/// Checks tool arguments against the tool's input schema before any module
/// code runs; an invalid call changes nothing.
pub struct Validate {
    registry: Arc<Registry>,
}

impl Validate {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

/// Largest accepted size of a single string argument, in bytes.
const MAX_STRING_ARG: usize = 1 << 20;

fn has_oversized_or_control(v: &serde_json::Value) -> Option<&'static str> {
    match v {
        serde_json::Value::String(s) if s.len() > MAX_STRING_ARG => Some("a string argument exceeds 1 MiB"),
        serde_json::Value::String(s) if s.contains('\0') => Some("a string argument contains a NUL character"),
        serde_json::Value::Array(a) => a.iter().find_map(has_oversized_or_control),
        serde_json::Value::Object(o) => o.values().find_map(has_oversized_or_control),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Gate for Validate {
    async fn admit(&self, call: &mut Call) -> Result<(), ToolError> {
        match &mut call.op {
            Operation::CallTool { name, args } => {
                if args.is_null() {
                    *args = serde_json::Value::Object(serde_json::Map::new());
                }
                if !args.is_object() {
                    return Err(ToolError::InvalidArguments("arguments must be a JSON object".into()));
                }
                if let Some(problem) = has_oversized_or_control(args) {
                    return Err(ToolError::InvalidArguments(problem.into()));
                }
                self.registry.validate(name, args)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::context::{CallContext, TenantId};
    use crate::ratelimit::{Limits, ManualClock, Quotas, TokenBucketLimiter};

    fn call(tenant: &str) -> Call {
        let mut cx = CallContext::detached("test-request");
        cx.principal = Arc::new(Principal {
            subject: "alice".into(),
            tenant: TenantId::new(tenant),
            roles: Vec::new(),
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "test",
        });
        Call { cx, op: Operation::CallTool { name: "echo".into(), args: serde_json::Value::Null } }
    }

    #[tokio::test]
    async fn rate_limit_refusals_are_counted_per_tenant() {
        let limits = Limits::per_second(1.0, 1).expect("valid limits");
        let limiter = TokenBucketLimiter::new(Quotas { principal: Some(limits), tenant: None })
            .with_clock(Arc::new(ManualClock::new()));
        let telemetry = Arc::new(Telemetry::default());
        let gate = RateLimit::new(Arc::new(limiter)).with_telemetry(Arc::clone(&telemetry));
        assert!(gate.admit(&mut call("acme")).await.is_ok());
        match gate.admit(&mut call("acme")).await {
            Err(ToolError::RateLimited { retry_after }) => assert_eq!(retry_after, Duration::from_secs(1)),
            other => panic!("expected a rate limit refusal, got {other:?}"),
        }
        assert!(gate.admit(&mut call("acme")).await.is_err());
        assert!(gate.admit(&mut call("globex")).await.is_ok());
        assert_eq!(telemetry.rate_limited(), 2);
        assert_eq!(telemetry.rate_limited_by_tenant(), vec![(TenantId::new("acme"), 2)]);
    }
}
