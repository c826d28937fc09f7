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
use plexus_core::pipeline::{Call, Operation, Reply};
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

/// The placeholder `structuredContent` that [`splice_structured`] replaces.
const RAW_MARK: &str = "\u{1}plexus:structured";
/// How the placeholder serializes: the control character is escaped, so no
/// string inside the answer can contain it unescaped, and a quote inside a
/// string is always escaped: only the real key can match.
const RAW_PATTERN: &str = "\"structuredContent\":\"\\u0001plexus:structured\"";

/// Put `raw` (a JSON document) where the placeholder is.
fn splice_structured(body: Vec<u8>, raw: Option<&str>) -> Vec<u8> {
    let Some(raw) = raw else { return body };
    let Some(at) = std::str::from_utf8(&body).ok().and_then(|s| s.rfind(RAW_PATTERN)) else {
        // Cannot happen: the placeholder was put there. Answer without it
        // rather than wrongly.
        tracing::error!("structured placeholder not found in the answer");
        return body;
    };
    let key = "\"structuredContent\":".len();
    let mut out = Vec::with_capacity(body.len() + raw.len());
    out.extend_from_slice(&body[..at + key]);
    out.extend_from_slice(raw.as_bytes());
    out.extend_from_slice(&body[at + RAW_PATTERN.len()..]);
    out
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

    let rpeer = RmcpPeer::stateless(peer::capabilities(Some(&caps)), shared.bus.clone());
    let mut cx = CallContext::new(request_id(&req.id), Era::Stateless, Arc::new(rpeer));
    apply_http(&mut cx, parts);
    let args = serde_json::Value::Object(params.arguments.clone().unwrap_or_default());
    let round = shared.codec.open(mrtr::binding("tools/call", &params.name, &args), None, None).ok()?;
    let op = Operation::CallTool { name: params.name.to_string(), args };
    let result = {
        let _in_flight = shared.in_flight_guard();
        shared.pipeline.clone().oneshot(Call { cx, op }).await
    };
    // A structured answer whose text block is its JSON goes out with that
    // text copied in as `structuredContent`, not serialized a second time.
    let mut raw: Option<String> = None;
    let result = match result {
        Ok(Reply::Tool(mut out)) if !out.is_error && out.structured_text().is_some() => {
            raw = out.structured_text().map(str::to_owned);
            out.structured = Some(serde_json::Value::String(RAW_MARK.to_owned()));
            Ok(Reply::Tool(out))
        }
        other => other,
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
        Ok(body) => Some(json(status, splice_structured(body, raw.as_deref()))),
        Err(e) => {
            tracing::error!(error = %e, "response could not be serialized");
            Some(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_replaced_by_the_text() {
        let mut r = m::CallToolResult::success(vec![m::ContentBlock::text(r#"{"a":"\u0001plexus:structured"}"#)]);
        r.structured_content = Some(serde_json::Value::String(RAW_MARK.to_owned()));
        let body = serde_json::to_vec(&r).unwrap();
        let out = splice_structured(body, Some(r#"{"a":"\u0001plexus:structured"}"#));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["structuredContent"], serde_json::json!({"a": "\u{1}plexus:structured"}));
        assert_eq!(v["content"][0]["text"], r#"{"a":"\u0001plexus:structured"}"#);
    }

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
