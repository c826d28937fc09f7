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
use crate::durability::Barrier;
use crate::error::ToolError;
use crate::ports::AuditSink;

/// Records every call (allowed, denied, failed) and returns the reply only
/// after the record is durable. If the record cannot be written the caller
/// gets an error, never an unaudited result.
///
/// The call runs in a [`Barrier`]'s scope: a write that handed its flush to
/// disk over to it ([`crate::durability`]) is awaited alongside the
/// record's append, and the reply waits for both. If that flush fails, the
/// caller gets an error and a second record of the same request says so
/// (outcome `unavailable`): the first was written before the failure was
/// known.
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
            let barrier = Barrier::default();
            let result = barrier.scope(inner.call(call)).await;
            let latency_us = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
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
                latency_us: latency_us(),
                client_addr,
            };
            if barrier.is_empty() {
                if let Err(e) = sink.append(event).await {
                    return Err(unaudited(&e));
                }
                return result;
            }
            let (appended, durable) = tokio::join!(sink.append(event.clone()), barrier.wait());
            if let Err(e) = appended {
                return Err(unaudited(&e));
            }
            match durable {
                Ok(()) => result,
                Err(reason) => {
                    tracing::error!(%reason, "a call's writes could not be made durable; refusing the result");
                    let error =
                        ToolError::unavailable(format!("the call's writes could not be made durable: {reason}"));
                    let followup =
                        AuditEvent { outcome: error.code().as_str().to_owned(), latency_us: latency_us(), ..event };
                    if let Err(e) = sink.append(followup).await {
                        tracing::error!(error = %e, "the record of a failed flush could not be written");
                    }
                    Err(error)
                }
            }
        })
    }
}

/// The caller's error when the call's record could not be written.
fn unaudited(e: &impl std::fmt::Display) -> ToolError {
    tracing::error!(error = %e, "audit record could not be written; refusing the result");
    ToolError::unavailable("audit log unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ToolOutput;
    use crate::context::CallContext;
    use crate::ports::AuditError;
    use tower::ServiceExt;

    #[derive(Default)]
    struct Recorded(parking_lot::Mutex<Vec<AuditEvent>>);

    #[async_trait::async_trait]
    impl AuditSink for Recorded {
        async fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
            self.0.lock().push(event);
            Ok(())
        }
    }

    /// A tool whose write hands its flush to the call's barrier: `flush`
    /// is that flush's result.
    async fn call_with_flush(flush: Result<(), String>) -> (Result<Reply, ToolError>, Vec<AuditEvent>, bool) {
        let sink = Arc::new(Recorded::default());
        let flushed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = flushed.clone();
        let inner = tower::service_fn(move |_call: Call| {
            let (flush, flushed) = (flush.clone(), flushed.clone());
            async move {
                let flag = flushed.clone();
                crate::durability::by_answer(async move {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    flush
                })
                .await
                .map_err(ToolError::unavailable)?;
                assert!(!flushed.load(std::sync::atomic::Ordering::SeqCst), "handed to the barrier, not run here");
                Ok::<_, ToolError>(Reply::Tool(ToolOutput::text("written")))
            }
        });
        let service = AuditLayer::new(sink.clone()).layer(inner);
        let op = Operation::CallTool { name: "write".into(), args: serde_json::json!({}) };
        let result = service.oneshot(Call { cx: CallContext::detached("r-1"), op }).await;
        let events = sink.0.lock().clone();
        (result, events, seen.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The answer waits for a flush handed to the barrier; one record.
    #[tokio::test]
    async fn a_handed_over_flush_is_awaited_before_the_answer() {
        let (result, events, flushed) = call_with_flush(Ok(())).await;
        assert!(matches!(result, Ok(Reply::Tool(_))), "{result:?}");
        assert!(flushed, "the flush ran before the answer");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, "ok");
    }

    /// A flush that fails turns the answer into an error, and a second
    /// record of the same request says so.
    #[tokio::test]
    async fn a_failed_flush_fails_the_call_and_is_recorded() {
        let (result, events, _) = call_with_flush(Err("fdatasync: EIO".into())).await;
        let err = result.expect_err("no answer for a write that is not durable");
        assert_eq!(err.to_string(), "the call's writes could not be made durable: fdatasync: EIO");
        let outcomes: Vec<(&str, &str)> = events.iter().map(|e| (e.request_id.as_str(), e.outcome.as_str())).collect();
        assert_eq!(outcomes, [("r-1", "ok"), ("r-1", err.code().as_str())]);
        assert_eq!(events[1].target, "write");
    }
}
