//! One error type for every call, with one transport-neutral code.
//!
//! The server maps [`ErrorCode`] to JSON-RPC errors or to `isError` tool
//! results exactly once, at the edge. Messages are lowercase, without a
//! trailing period, and safe to show to a client: internal details travel in
//! the `#[source]` chain and are logged, never sent.

use std::time::Duration;

use crate::context::InputRequest;

/// Transport-neutral classification of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Arguments did not match the tool's input schema or its own checks.
    InvalidArguments,
    /// The request itself is malformed (bad cursor, bad URI, ...).
    InvalidRequest,
    /// No such tool, prompt or resource, or one the caller may not see.
    NotFound,
    /// No usable credential.
    Unauthenticated,
    /// Authenticated, but the credential lacks a scope the operation needs.
    InsufficientScope,
    /// Too many calls; retry after the given time.
    RateLimited,
    /// The tenant is unknown, suspended or over quota.
    TenantUnavailable,
    /// The call ran past its deadline.
    Timeout,
    /// The caller cancelled the call.
    Cancelled,
    /// The tool needs input from the client (sampling, elicitation) first.
    InputRequired,
    /// The client lacks a capability the tool needs (for example sampling).
    ClientCapability,
    /// A state conflict (already exists, wrong state for this action).
    Conflict,
    /// An upstream dependency failed or is unavailable.
    Unavailable,
    /// A bug or an unexpected fault inside the server.
    Internal,
}

impl ErrorCode {
    /// A short stable name, used in audit records and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArguments => "invalid_arguments",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TenantUnavailable => "tenant_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::InputRequired => "input_required",
            ErrorCode::ClientCapability => "client_capability",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// `kind` is "tool", "prompt" or "resource".
    #[error("{kind} not found: {name}")]
    NotFound { kind: &'static str, name: String },
    #[error("authentication required")]
    Unauthenticated { reason: String },
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    #[error("rate limit exceeded, retry after {} ms", retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    #[error("tenant unavailable: {0}")]
    TenantUnavailable(String),
    #[error("call timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("call cancelled")]
    Cancelled,
    /// Raised by `cx.client()` in the stateless era: the server answers with
    /// an input-required result and the retried call re-executes the tool.
    #[error("input required from the client")]
    InputRequired(Vec<InputRequest>),
    #[error("client does not support {0}")]
    ClientCapability(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The tool ran and reports a domain failure to the model (`isError`).
    #[error("{0}")]
    Failed(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ErrorCode {
    /// The HTTP status a REST route answers for this code. A tool the
    /// caller may not use is reported as not found over MCP; a REST route
    /// names one tool, so there it is 403.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArguments | ErrorCode::InvalidRequest | ErrorCode::ClientCapability => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::InsufficientScope | ErrorCode::NotFound => 403,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::TenantUnavailable | ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::Cancelled => 499,
            ErrorCode::InputRequired | ErrorCode::Internal => 500,
        }
    }
}

impl ToolError {
    /// The one mapping from error to code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ToolError::InvalidArguments(_) | ToolError::Failed(_) => ErrorCode::InvalidArguments,
            ToolError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ToolError::NotFound { .. } => ErrorCode::NotFound,
            ToolError::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            ToolError::InsufficientScope(_) => ErrorCode::InsufficientScope,
            ToolError::RateLimited { .. } => ErrorCode::RateLimited,
            ToolError::TenantUnavailable(_) => ErrorCode::TenantUnavailable,
            ToolError::Timeout(_) => ErrorCode::Timeout,
            ToolError::Cancelled => ErrorCode::Cancelled,
            ToolError::InputRequired(_) => ErrorCode::InputRequired,
            ToolError::ClientCapability(_) => ErrorCode::ClientCapability,
            ToolError::Conflict(_) => ErrorCode::Conflict,
            ToolError::Unavailable { .. } => ErrorCode::Unavailable,
            ToolError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Shorthand for a missing tool; a denied tool uses the same error.
    pub fn unknown_tool(name: impl Into<String>) -> Self {
        ToolError::NotFound { kind: "tool", name: name.into() }
    }

    pub fn unknown_resource(uri: impl Into<String>) -> Self {
        ToolError::NotFound { kind: "resource", name: uri.into() }
    }

    pub fn unknown_prompt(name: impl Into<String>) -> Self {
        ToolError::NotFound { kind: "prompt", name: name.into() }
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ToolError::Internal(e.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ToolError::Unavailable { message: message.into(), source: None }
    }

    /// Is this a failure the tool reports to the model as an `isError`
    /// result (rather than a protocol error)? Per SEP-1303, argument
    /// validation failures are tool results so the model can correct itself.
    pub fn is_tool_result(&self) -> bool {
        matches!(
            self,
            ToolError::InvalidArguments(_)
                | ToolError::Failed(_)
                | ToolError::Unavailable { .. }
                | ToolError::Timeout(_)
                | ToolError::Conflict(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_unpunctuated() {
        let cases = [
            ToolError::InvalidArguments("missing field `a`".into()),
            ToolError::unknown_tool("x"),
            ToolError::RateLimited { retry_after: Duration::from_millis(1500) },
            ToolError::Timeout(Duration::from_secs(2)),
            ToolError::internal("boom"),
        ];
        for e in cases {
            let m = e.to_string();
            assert!(m.chars().next().is_some_and(|c| !c.is_uppercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
        assert_eq!(
            ToolError::RateLimited { retry_after: Duration::from_millis(1500) }.to_string(),
            "rate limit exceeded, retry after 1500 ms"
        );
        // internal details never reach the message
        assert_eq!(ToolError::internal("db password wrong").to_string(), "internal error");
    }
}
