//! The stateless fast path: a 2026-07-28 `tools/call` that needs no stream
//! is served straight from the front door, with rmcp's model types but
//! without its per-request session machinery (a service instance, a peer,
//! several tasks and channels per call).
//!
//! It takes only the plain case: every header and `_meta` check below must
//! pass, the call must not ask for progress or log messages, and it must not
//! be an input-required retry. Anything else falls through to rmcp, which
//! answers the precise error or streams. Both paths run the same pipeline
//! and map results with the same function, so a client cannot tell them apart.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use plexus_core::context::{CallContext, Era};
use plexus_core::pipeline::{Call, Operation};
use rmcp::model as m;
use tower::ServiceExt;

use crate::handler::{Shared, apply_http, request_id, tool_response};
use crate::mrtr;
use crate::peer::{self, RmcpPeer};

const MODERN: &str = "2026-07-28";

fn single<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut it = h.get_all(name).iter();
    let v = it.next()?.to_str().ok()?;
    it.next().is_none().then_some(v)
}

fn host_allowed(h: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(host) = single(h, "host") else { return false };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Whether this request may take the fast path, judged on headers alone.
pub(crate) fn eligible(h: &HeaderMap, allowed_hosts: &[String]) -> bool {
    single(h, "mcp-protocol-version") == Some(MODERN)
        && single(h, "mcp-method") == Some("tools/call")
        && h.get(header::ORIGIN).is_none()
        && h.get("mcp-session-id").is_none()
        && single(h, "content-type").is_some_and(|c| c.starts_with("application/json"))
        && single(h, "accept").is_some_and(|a| a.contains("application/json") && a.contains("text/event-stream"))
        && host_allowed(h, allowed_hosts)
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Serve the call, or `None` to let rmcp handle it.
pub(crate) async fn serve(shared: &Arc<Shared>, parts: &http::request::Parts, body: &Bytes) -> Option<Response> {
    let req: m::JsonRpcRequest<m::CallToolRequest> = serde_json::from_slice(body).ok()?;
    let params = &req.request.params;
    if params.input_responses.is_some() || params.request_state.is_some() {
        return None;
    }
    if single(&parts.headers, "mcp-name") != Some(params.name.as_ref()) {
        return None;
    }
    let meta = req.request.extensions.get::<m::RequestMetaObject>()?;
    if meta.protocol_version().map(|v| v.as_str() == MODERN) != Some(true) {
        return None;
    }
    let caps = meta.client_capabilities()?;
    if meta.get_progress_token().is_some() || meta.log_level().is_some() {
        return None;
    }

    let rpeer = RmcpPeer {
        peer: None,
        era: Era::Stateless,
        progress_token: None,
        log_threshold: None,
        capabilities: peer::capabilities(Some(&caps)),
        bus: shared.bus.clone(),
    };
    let mut cx = CallContext::new(request_id(&req.id), Era::Stateless, Arc::new(rpeer));
    apply_http(&mut cx, parts);
    let args = serde_json::Value::Object(params.arguments.clone().unwrap_or_default());
    let round = shared.codec.open(mrtr::binding("tools/call", &params.name, &args), None, None).ok()?;
    let op = Operation::CallTool { name: params.name.to_string(), args };
    let result = {
        let _in_flight = shared.in_flight_guard();
        shared.pipeline.clone().oneshot(Call { cx, op }).await
    };
    let message = match tool_response(shared, result, Some(round)) {
        Ok(r) => m::ServerJsonRpcMessage::response(m::ServerResult::from(r), req.id),
        Err(e) => m::ServerJsonRpcMessage::error(e, Some(req.id)),
    };
    // The same status mapping as rmcp's stateless path.
    let status = match &message {
        m::ServerJsonRpcMessage::Error(e) => match e.error.code {
            m::ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | m::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | m::ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            m::ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    match serde_json::to_vec(&message) {
        Ok(body) => Some(json(status, body)),
        Err(e) => {
            tracing::error!(error = %e, "response could not be serialized");
            Some(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const OK: &[(&str, &str)] = &[
        ("host", "127.0.0.1:8080"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];

    #[test]
    fn only_plain_modern_tool_calls_are_eligible() {
        let allowed = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        assert!(eligible(&headers(OK), &allowed));
        let with = |extra: (&'static str, &'static str)| {
            let mut v = OK.to_vec();
            v.push(extra);
            headers(&v)
        };
        assert!(!eligible(&with(("origin", "http://localhost")), &allowed));
        assert!(!eligible(&with(("mcp-method", "tools/call")), &allowed), "duplicate header");
        assert!(!eligible(&with(("mcp-session-id", "abc")), &allowed));
        let mut evil = OK.to_vec();
        evil[0] = ("host", "evil.example.com");
        assert!(!eligible(&headers(&evil), &allowed));
        let mut v6 = OK.to_vec();
        v6[0] = ("host", "[::1]:9000");
        assert!(eligible(&headers(&v6), &allowed));
        let mut legacy = OK.to_vec();
        legacy[1] = ("mcp-protocol-version", "2025-11-25");
        assert!(!eligible(&headers(&legacy), &allowed));
    }
}
