//! The telemetry layer: a trace span per call, latency histograms per target,
//! and a warning for slow calls.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use super::{Call, Reply};
use crate::error::ToolError;
use crate::telemetry::{CallSpan, REFUSED_TARGET, Telemetry};

#[derive(Clone)]
pub struct TelemetryLayer {
    telemetry: Arc<Telemetry>,
}

impl TelemetryLayer {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TelemetryService { telemetry: Arc::clone(&self.telemetry), inner }
    }
}

#[derive(Clone)]
pub struct TelemetryService<S> {
    telemetry: Arc<Telemetry>,
    inner: S,
}

impl<S> Service<Call> for TelemetryService<S>
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
        let telemetry = Arc::clone(&self.telemetry);
        let method = call.op.method();
        let target = call.op.target_name().to_owned();
        let span = tracing::debug_span!("call", method, target = %target, request_id = %call.cx.request_id);
        let trace = Arc::clone(&call.cx.trace);
        // What a span exporter needs once the call is done.
        let export = telemetry.exporter().is_some().then(|| {
            (
                Arc::clone(&call.cx.trace),
                Arc::clone(&call.cx.request_id),
                call.cx.traceparent.clone(),
                SystemTime::now(),
            )
        });
        Box::pin(
            async move {
                let started = Instant::now();
                let result = inner.call(call).await;
                let elapsed = started.elapsed();
                let error = match &result {
                    Ok(Reply::Tool(out)) if out.is_error => Some("tool_error"),
                    Ok(_) => None,
                    Err(e) => Some(e.code().as_str()),
                };
                let refused = matches!(
                    &result,
                    Err(ToolError::NotFound { .. }
                        | ToolError::Unauthenticated { .. }
                        | ToolError::TenantUnavailable(_)
                        | ToolError::InsufficientScope(_)
                        | ToolError::RateLimited { .. })
                );
                telemetry.record(if refused { REFUSED_TARGET } else { &target }, elapsed, error.is_none());
                // Per tenant: only calls the tenancy gate admitted.
                if let Some(p) = trace.principal.get()
                    && !matches!(&result, Err(ToolError::Unauthenticated { .. } | ToolError::TenantUnavailable(_)))
                {
                    telemetry.record_tenant(&p.tenant, error.is_none());
                }
                if let (Some(exporter), Some((trace, request_id, traceparent, start))) = (telemetry.exporter(), export)
                {
                    exporter.export(CallSpan {
                        method,
                        target: target.clone(),
                        request_id,
                        tenant: trace.principal.get().map(|p| p.tenant.clone()),
                        error,
                        start,
                        duration: elapsed,
                        traceparent,
                    });
                }
                if elapsed > telemetry.slow_call {
                    tracing::warn!(method, target = %target, elapsed_ms = elapsed.as_millis() as u64, "slow call");
                }
                if let Err(e) = &result {
                    tracing::debug!(method, target = %target, error = %e, code = e.code().as_str(), "call failed");
                }
                result
            }
            .instrument(span),
        )
    }
}
