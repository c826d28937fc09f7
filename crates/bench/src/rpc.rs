//! JSON-RPC side: request bodies and headers per era, finding and judging the response.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::cli::{Era, Header};

pub(crate) const MODERN_VERSION: &str = "2026-07-28";
pub(crate) const LEGACY_VERSION: &str = "2025-11-25";

pub(crate) const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub(crate) const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// Why a request did not count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ErrorKind {
    /// TCP connect or HTTP handshake failed.
    Connect,
    /// The connection failed while sending or receiving.
    Io,
    /// No complete response within `--timeout`.
    Timeout,
    /// HTTP status other than 200.
    Status(u16),
    /// JSON-RPC `error` response.
    JsonRpc,
    /// `result.isError == true`.
    ToolError,
    /// `resultType` other than `complete` (for example a server asking for more input).
    Incomplete,
    /// Unparsable body, no JSON-RPC response for our id, or no `result`.
    BadResponse,
    /// The echo tool did not return the text it was sent.
    Mismatch,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Io => f.write_str("io"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Status(code) => write!(f, "http_{code}"),
            ErrorKind::JsonRpc => f.write_str("jsonrpc_error"),
            ErrorKind::ToolError => f.write_str("tool_error"),
            ErrorKind::Incomplete => f.write_str("incomplete"),
            ErrorKind::BadResponse => f.write_str("bad_response"),
            ErrorKind::Mismatch => f.write_str("mismatch"),
        }
    }
}

/// A `tools/call` body with everything but the id serialised once.
#[derive(Debug)]
pub(crate) struct CallTemplate {
    suffix: Vec<u8>,
}

const BODY_PREFIX: &[u8] = br#"{"jsonrpc":"2.0","id":"#;

impl CallTemplate {
    pub(crate) fn new(era: Era, tool: &str, arguments: &Value) -> Self {
        let mut params = json!({ "name": tool, "arguments": arguments });
        if era == Era::Modern {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        let suffix = format!(r#","method":"tools/call","params":{params}}}"#).into_bytes();
        CallTemplate { suffix }
    }

    pub(crate) fn body(&self, id: u64) -> Bytes {
        let id = id.to_string();
        let mut body = BytesMut::with_capacity(BODY_PREFIX.len() + id.len() + self.suffix.len());
        body.put_slice(BODY_PREFIX);
        body.put_slice(id.as_bytes());
        body.put_slice(&self.suffix);
        body.freeze()
    }
}

/// Body of the legacy `initialize` request (id 0).
pub(crate) fn initialize_body() -> Bytes {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "plexus-bench", "version": env!("CARGO_PKG_VERSION") },
        },
    });
    Bytes::from(body.to_string())
}

pub(crate) fn initialized_notification_body() -> Bytes {
    Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
}

/// Headers of every request: the transport's required pair, the era's headers, the session
/// (legacy), then the user's `--header`s, which override anything before them.
pub(crate) fn request_headers(
    era: Era,
    tool: &str,
    authority: &HeaderValue,
    protocol_version: Option<&str>,
    session: Option<&HeaderValue>,
    user: &[Header],
) -> Result<HeaderMap, http::header::InvalidHeaderValue> {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, authority.clone());
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    if let Some(version) = protocol_version {
        h.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_str(version)?);
    }
    if era == Era::Modern {
        h.insert(MCP_METHOD, HeaderValue::from_static("tools/call"));
        h.insert(MCP_NAME, HeaderValue::from_str(tool)?);
    }
    if let Some(session) = session {
        h.insert(MCP_SESSION_ID, session.clone());
    }
    for Header { name, value } in user {
        h.insert(name.clone(), value.clone());
    }
    Ok(h)
}

/// The text an `echo` call must return, when the call is an echo with a string `text`.
pub(crate) fn expected_echo(tool: &str, arguments: &Value) -> Option<String> {
    if tool != "echo" {
        return None;
    }
    arguments.get("text")?.as_str().map(str::to_owned)
}

/// The parts of a JSON-RPC message the load generator judges. Everything
/// else (`structuredContent`, the text of the content blocks) is skipped
/// unparsed, so that the client spends its share of the machine's cores
/// sending load rather than building trees of the server's answers.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Message {
    id: Option<Value>,
    pub(crate) result: Option<Outcome>,
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Outcome {
    is_error: Option<bool>,
    result_type: Option<String>,
    /// Parsed only when a response text is expected (`echo`).
    content: Option<Box<RawValue>>,
    /// Parsed only by scenarios that follow the server's answers.
    pub(crate) structured_content: Option<Box<RawValue>>,
    /// `initialize` results.
    pub(crate) protocol_version: Option<String>,
}

#[derive(Deserialize)]
struct Block {
    text: Option<String>,
}

/// Looks at one JSON-RPC message (a JSON body or one SSE event's data).
/// `None`: a message that is not the response to `id` (a notification or a server request
/// on an SSE stream); `Some(Err)`: not JSON at all.
pub(crate) fn match_response(payload: &str, id: u64) -> Option<Result<Message, ErrorKind>> {
    let message: Message = match serde_json::from_str(payload) {
        Ok(message) => message,
        Err(_) => return Some(Err(ErrorKind::BadResponse)),
    };
    let is_ours = message.id.as_ref().and_then(Value::as_u64) == Some(id)
        && (message.result.is_some() || message.error.is_some());
    is_ours.then_some(Ok(message))
}

/// Judges a `tools/call` response.
pub(crate) fn check_call_result(response: &Message, expect_text: Option<&str>) -> Result<(), ErrorKind> {
    if response.error.is_some() {
        return Err(ErrorKind::JsonRpc);
    }
    let result = response.result.as_ref().ok_or(ErrorKind::BadResponse)?;
    if result.is_error == Some(true) {
        return Err(ErrorKind::ToolError);
    }
    if let Some(kind) = &result.result_type
        && kind != "complete"
    {
        return Err(ErrorKind::Incomplete);
    }
    if let Some(expected) = expect_text {
        let blocks: Vec<Block> = match &result.content {
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| ErrorKind::BadResponse)?,
            None => Vec::new(),
        };
        if !blocks.iter().filter_map(|b| b.text.as_deref()).any(|text| text.contains(expected)) {
            return Err(ErrorKind::Mismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_body_carries_the_envelope() {
        let template = CallTemplate::new(Era::Modern, "echo", &json!({"text": "hi"}));
        let body: Value = serde_json::from_slice(&template.body(42)).expect("valid JSON");
        assert_eq!(
            body,
            json!({
                "jsonrpc": "2.0", "id": 42, "method": "tools/call",
                "params": {
                    "name": "echo", "arguments": {"text": "hi"},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            })
        );
    }

    #[test]
    fn legacy_body_has_no_meta() {
        let template = CallTemplate::new(Era::Legacy, "echo", &json!({"text": "hi"}));
        let body: Value = serde_json::from_slice(&template.body(7)).expect("valid JSON");
        assert_eq!(body["id"], 7);
        assert!(body["params"].get("_meta").is_none());
        let init: Value = serde_json::from_slice(&initialize_body()).expect("valid JSON");
        assert_eq!(init["params"]["protocolVersion"], LEGACY_VERSION);
    }

    #[test]
    fn headers_per_era_and_user_override() {
        let authority = HeaderValue::from_static("127.0.0.1:8080");
        let user = [crate::cli::parse_header("X-API-Key: pk_1").expect("valid")];
        let h = request_headers(Era::Modern, "echo", &authority, Some(MODERN_VERSION), None, &user).expect("valid");
        assert_eq!(h["mcp-protocol-version"], "2026-07-28");
        assert_eq!(h["mcp-method"], "tools/call");
        assert_eq!(h["mcp-name"], "echo");
        assert_eq!(h["accept"], "application/json, text/event-stream");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["host"], "127.0.0.1:8080");
        assert_eq!(h["x-api-key"], "pk_1");

        let session = HeaderValue::from_static("s-1");
        let over = [crate::cli::parse_header("MCP-Protocol-Version: 2025-06-18").expect("valid")];
        let h = request_headers(Era::Legacy, "echo", &authority, Some(LEGACY_VERSION), Some(&session), &over)
            .expect("valid");
        assert_eq!(h["mcp-session-id"], "s-1");
        assert_eq!(h["mcp-protocol-version"], "2025-06-18");
        assert!(h.get("mcp-method").is_none());
    }

    #[test]
    fn matching_responses() {
        assert!(match_response(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3).is_some_and(|r| r.is_ok()));
        assert!(match_response(r#"{"jsonrpc":"2.0","id":3,"error":{"code":1}}"#, 3).is_some_and(|r| r.is_ok()));
        assert!(match_response(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3).is_none());
        assert!(match_response(r#"{"jsonrpc":"2.0","method":"notifications/message"}"#, 3).is_none());
        assert_eq!(match_response("not json", 3).map(|r| r.err()), Some(Some(ErrorKind::BadResponse)));
    }

    #[test]
    fn judging_results() {
        let msg = |v: Value| -> Message { serde_json::from_str(&v.to_string()).expect("a message") };
        let ok = msg(json!({"id":1,"result":{"content":[{"type":"text","text":"hello"}],"isError":false}}));
        assert_eq!(check_call_result(&ok, Some("hello")), Ok(()));
        assert_eq!(check_call_result(&ok, None), Ok(()));
        assert_eq!(check_call_result(&ok, Some("bye")), Err(ErrorKind::Mismatch));
        let modern = msg(json!({"id":1,"result":{"resultType":"complete","content":[{"type":"text","text":"hello"}]}}));
        assert_eq!(check_call_result(&modern, Some("hello")), Ok(()));
        let pending = msg(json!({"id":1,"result":{"resultType":"input_required"}}));
        assert_eq!(check_call_result(&pending, None), Err(ErrorKind::Incomplete));
        let tool_err = msg(json!({"id":1,"result":{"content":[],"isError":true}}));
        assert_eq!(check_call_result(&tool_err, None), Err(ErrorKind::ToolError));
        let rpc_err = msg(json!({"id":1,"error":{"code":-32602,"message":"x"}}));
        assert_eq!(check_call_result(&rpc_err, None), Err(ErrorKind::JsonRpc));
        assert_eq!(check_call_result(&msg(json!({"id":1})), None), Err(ErrorKind::BadResponse));
    }

    #[test]
    fn echo_expectation_and_labels() {
        assert_eq!(expected_echo("echo", &json!({"text":"hi"})).as_deref(), Some("hi"));
        assert_eq!(expected_echo("echo", &json!({"text":1})), None);
        assert_eq!(expected_echo("other", &json!({"text":"hi"})), None);
        assert_eq!(ErrorKind::Status(503).to_string(), "http_503");
        assert_eq!(ErrorKind::JsonRpc.to_string(), "jsonrpc_error");
    }
}
