//! The timeout layer: sets the call's deadline and enforces it, and stops the
//! call when the client cancels it.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::{Call, Reply};
use crate::error::ToolError;

#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService { timeout: self.timeout, inner }
    }
}

#[derive(Clone)]
pub struct TimeoutService<S> {
    timeout: Duration,
    inner: S,
}

impl<S> Service<Call> for TimeoutService<S>
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

    fn call(&mut self, mut call: Call) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let now = Instant::now();
        let deadline = match call.cx.deadline {
            Some(d) => d.min(now + self.timeout),
            None => now + self.timeout,
        };
        call.cx.deadline = Some(deadline);
        let cancel = call.cx.cancel.clone();
        let budget = deadline.saturating_duration_since(now);
        Box::pin(async move {
            tokio::select! {
                biased;
                r = inner.call(call) => r,
                () = cancel.cancelled() => Err(ToolError::Cancelled),
                () = tokio::time::sleep(budget) => {
                    cancel.cancel();
                    Err(ToolError::Timeout(budget))
                }
            }
        })
    }
}
