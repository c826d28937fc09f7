//! The audit layer: one durable, hash-chained record per call.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::{Layer, Service};

use super::{Call, Operation, Reply};
use crate::audit::{AuditEvent, digest_json};
use crate::error::ToolError;
use crate::ports::AuditSink;

/// Records every call (allowed, denied, failed) and returns the reply only
/// after the record is durable. If the record cannot be written the caller
/// gets an error, never an unaudited result.
///
/// Listings and completions are not audited: they reveal only what the
/// policy already lets the caller see, and would drown the log.
#[derive(Clone)]
pub struct AuditLayer {
    sink: Arc<dyn AuditSink>,
}

impl AuditLayer {
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self { sink }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuditService { sink: Arc::clone(&self.sink), inner }
    }
}

#[derive(Clone)]
pub struct AuditService<S> {
    sink: Arc<dyn AuditSink>,
    inner: S,
}

fn audited(op: &Operation) -> bool {
    !matches!(op, Operation::List { .. } | Operation::Complete { .. })
}

impl<S> Service<Call> for AuditService<S>
where
    S: Service<Call, Response = Reply, Error = ToolError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = ToolError;
    type Future = BoxFuture<'static, Result<Reply, ToolError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ToolError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !audited(&call.op) {
            return Box::pin(inner.call(call));
        }
        let sink = Arc::clone(&self.sink);
        Box::pin(async move {
            let started = Instant::now();
            let time = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
            let (operation, target) = (call.op.method(), call.op.target_name().to_owned());
            let args_digest = match &call.op {
                Operation::CallTool { args, .. } => digest_json(args),
                Operation::GetPrompt { args, .. } => {
                    digest_json(&serde_json::to_value(args).unwrap_or(serde_json::Value::Null))
                }
                _ => String::new(),
            };
            let trace = Arc::clone(&call.cx.trace);
            let request_id = call.cx.request_id.to_string();
            let session = call.cx.session.as_deref().map(str::to_owned);
            let client_addr = call.cx.client_addr.map(|a| a.to_string());
            let result = inner.call(call).await;
            let outcome = match (&result, trace.denied.get()) {
                (Err(_), Some(_)) => "denied".to_owned(),
                (Ok(Reply::Tool(out)), _) if out.is_error => "tool_error".to_owned(),
                (Ok(_), _) => "ok".to_owned(),
                (Err(e), None) => e.code().as_str().to_owned(),
            };
            let (principal, tenant) = match trace.principal.get() {
                Some(p) => (p.subject.clone(), p.tenant.to_string()),
                None => ("unauthenticated".to_owned(), String::new()),
            };
            let event = AuditEvent {
                time,
                request_id,
                session,
                principal,
                tenant,
                operation: operation.to_owned(),
                target,
                args_digest,
                outcome,
                latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                client_addr,
            };
            if let Err(e) = sink.append(event).await {
                tracing::error!(error = %e, "audit record could not be written; refusing the result");
                return Err(ToolError::unavailable("audit log unavailable"));
            }
            result
        })
    }
}
