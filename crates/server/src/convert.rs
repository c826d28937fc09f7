//! Conversions between plexus-core's transport-neutral types and rmcp's wire
//! model, and the one mapping from [`ToolError`] to a JSON-RPC error.
#![allow(deprecated)] // sampling, roots and logging types are deprecated by SEP-2577 but still on the wire

use std::borrow::Cow;

use plexus_core::content::ResourceContent;
use plexus_core::context::{
    ClientRequest, ClientResponse, ElicitAction, ElicitRequest, ElicitResult, LogLevel, SamplingRequest, SamplingResult,
};
use plexus_core::module::Completion;
use plexus_core::spec::{PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolSpec};
use plexus_core::{Content, PromptResult, ResourceContents, Role, ToolError, ToolOutput};
use rmcp::model as m;
use serde_json::{Value, json};

/// Plexus's own JSON-RPC error codes (the implementation-defined range).
pub(crate) mod codes {
    /// No usable credential.
    pub(crate) const UNAUTHENTICATED: i32 = -32001;
    /// The credential lacks a scope.
    pub(crate) const FORBIDDEN: i32 = -32003;
    /// Too many calls; `data.retryAfterMs` says when to retry.
    pub(crate) const RATE_LIMITED: i32 = -32029;
    /// The tenant is unknown, suspended or over quota.
    pub(crate) const TENANT_UNAVAILABLE: i32 = -32030;
    /// The request was cancelled (as in LSP).
    pub(crate) const CANCELLED: i32 = -32800;
}

/// Where an error surfaced: tool-call failures the model should see become
/// `isError` results; everything else is a JSON-RPC error.
pub(crate) fn tool_error_result(e: &ToolError) -> Option<m::CallToolResult> {
    e.is_tool_result().then(|| m::CallToolResult::error(vec![m::ContentBlock::text(e.to_string())]))
}

/// The one mapping from [`ToolError`] to a JSON-RPC error.
pub(crate) fn error_data(e: &ToolError) -> m::ErrorData {
    use m::ErrorCode as C;
    let msg = e.to_string();
    match e {
        ToolError::InvalidArguments(_) | ToolError::Failed(_) | ToolError::InvalidRequest(_) => {
            m::ErrorData::invalid_params(msg, None)
        }
        ToolError::NotFound { kind: "resource", name } => {
            m::ErrorData::invalid_params("Resource not found", Some(json!({ "uri": name })))
        }
        ToolError::NotFound { .. } => m::ErrorData::invalid_params(msg, None),
        ToolError::Unauthenticated { .. } => m::ErrorData::new(C(codes::UNAUTHENTICATED), msg, None),
        ToolError::InsufficientScope(_) => m::ErrorData::new(C(codes::FORBIDDEN), msg, None),
        ToolError::RateLimited { retry_after } => m::ErrorData::new(
            C(codes::RATE_LIMITED),
            msg,
            Some(json!({ "retryAfterMs": u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX) })),
        ),
        ToolError::TenantUnavailable(_) => m::ErrorData::new(C(codes::TENANT_UNAVAILABLE), msg, None),
        ToolError::Cancelled => m::ErrorData::new(C(codes::CANCELLED), msg, None),
        ToolError::ClientCapability(cap) => {
            let mut caps = m::ClientCapabilities::default();
            match *cap {
                "sampling" => caps.sampling = Some(Default::default()),
                "elicitation" => caps.elicitation = Some(Default::default()),
                "roots" => caps.roots = Some(Default::default()),
                _ => {}
            }
            let mut d = m::ErrorData::missing_required_client_capability(caps);
            d.message = Cow::Owned(msg);
            d
        }
        ToolError::Timeout(_) | ToolError::Unavailable { .. } | ToolError::Conflict(_) => {
            m::ErrorData::new(C::INTERNAL_ERROR, msg, None)
        }
        ToolError::InputRequired(_) => m::ErrorData::invalid_request(
            "input required: this client negotiated a protocol version without input-required results",
            None,
        ),
        _ => m::ErrorData::internal_error("internal error", None),
    }
}

pub(crate) fn role(r: Role) -> m::Role {
    match r {
        Role::User => m::Role::User,
        Role::Assistant => m::Role::Assistant,
    }
}

fn core_role(r: &m::Role) -> Role {
    match r {
        m::Role::Assistant => Role::Assistant,
        _ => Role::User,
    }
}

fn resource_contents(r: &ResourceContent) -> m::ResourceContents {
    match r {
        ResourceContent::Text { uri, mime_type, text } => m::ResourceContents::TextResourceContents {
            uri: uri.clone(),
            mime_type: mime_type.clone(),
            text: text.clone(),
            meta: None,
        },
        ResourceContent::Blob { uri, mime_type, blob } => m::ResourceContents::BlobResourceContents {
            uri: uri.clone(),
            mime_type: mime_type.clone(),
            blob: blob.clone(),
            meta: None,
        },
    }
}

pub(crate) fn content(c: &Content) -> m::ContentBlock {
    match c {
        Content::Text(t) => m::ContentBlock::text(t.clone()),
        Content::Image { data, mime_type } => m::ContentBlock::image(data.clone(), mime_type.clone()),
        Content::Audio { data, mime_type } => m::ContentBlock::audio(data.clone(), mime_type.clone()),
        Content::Resource(r) => m::ContentBlock::resource(resource_contents(r)),
        Content::ResourceLink { uri, name, description, mime_type } => {
            let mut r = m::Resource::new(uri.clone(), name.clone());
            r.description = description.clone();
            r.mime_type = mime_type.clone();
            m::ContentBlock::resource_link(r)
        }
    }
}

pub(crate) fn tool_result(o: ToolOutput) -> m::CallToolResult {
    // A tool that gave its structured content only as text: parsed here,
    // for the paths that send a value (the fast path splices the text).
    let structured = match o.structured {
        Some(v) => Some(v),
        None if !o.is_error => o.structured_text().and_then(|t| serde_json::from_str(t).ok()),
        None => None,
    };
    // Moved, not cloned: a tool's text block can be as large as its answer.
    let blocks = o
        .content
        .into_iter()
        .map(|c| match c {
            Content::Text(t) => m::ContentBlock::text(t),
            other => content(&other),
        })
        .collect();
    let mut r = if o.is_error { m::CallToolResult::error(blocks) } else { m::CallToolResult::success(blocks) };
    r.structured_content = structured;
    r
}

pub(crate) fn read_result(r: ResourceContents) -> m::ReadResourceResult {
    m::ReadResourceResult::new(r.contents.iter().map(resource_contents).collect())
}

pub(crate) fn prompt_result(p: PromptResult) -> m::GetPromptResult {
    let messages = p.messages.iter().map(|msg| m::PromptMessage::new(role(msg.role), content(&msg.content))).collect();
    let mut r = m::GetPromptResult::new(messages);
    r.description = p.description;
    r
}

pub(crate) fn completion(c: Completion) -> m::CompleteResult {
    let mut values = c.values;
    values.truncate(100);
    let info = m::CompletionInfo::with_pagination(values, c.total, c.has_more).unwrap_or_default();
    m::CompleteResult::new(info)
}

pub(crate) fn tool(s: &ToolSpec) -> m::Tool {
    let mut t = m::Tool::new_with_raw(
        s.name.clone(),
        s.description.clone().map(Cow::Owned),
        std::sync::Arc::clone(&s.input_schema),
    );
    t.title = s.title.clone();
    t.output_schema = s.output_schema.clone();
    if !s.annotations.is_empty() {
        let mut a = m::ToolAnnotations::new();
        a.title = s.annotations.title.clone();
        a.read_only_hint = s.annotations.read_only;
        a.destructive_hint = s.annotations.destructive;
        a.idempotent_hint = s.annotations.idempotent;
        a.open_world_hint = s.annotations.open_world;
        t.annotations = Some(a);
    }
    t
}

pub(crate) fn resource(s: &ResourceSpec) -> m::Resource {
    let mut r = m::Resource::new(s.uri.clone(), s.name.clone());
    r.title = s.title.clone();
    r.description = s.description.clone();
    r.mime_type = s.mime_type.clone();
    r.size = s.size;
    r
}

pub(crate) fn resource_template(s: &ResourceTemplateSpec) -> m::ResourceTemplate {
    let mut r = m::ResourceTemplate::new(s.uri_template.clone(), s.name.clone());
    r.title = s.title.clone();
    r.description = s.description.clone();
    r.mime_type = s.mime_type.clone();
    r
}

pub(crate) fn prompt(s: &PromptSpec) -> m::Prompt {
    let args = s
        .arguments
        .iter()
        .map(|a| {
            let mut p = m::PromptArgument::new(a.name.clone()).with_required(a.required);
            if let Some(d) = &a.description {
                p = p.with_description(d.clone());
            }
            p
        })
        .collect::<Vec<_>>();
    let mut p = m::Prompt::new(s.name.clone(), s.description.clone(), (!args.is_empty()).then_some(args));
    p.title = s.title.clone();
    p
}

pub(crate) fn log_level(l: LogLevel) -> m::LoggingLevel {
    match l {
        LogLevel::Debug => m::LoggingLevel::Debug,
        LogLevel::Info => m::LoggingLevel::Info,
        LogLevel::Notice => m::LoggingLevel::Notice,
        LogLevel::Warning => m::LoggingLevel::Warning,
        LogLevel::Error => m::LoggingLevel::Error,
        LogLevel::Critical => m::LoggingLevel::Critical,
        LogLevel::Alert => m::LoggingLevel::Alert,
        LogLevel::Emergency => m::LoggingLevel::Emergency,
    }
}

pub(crate) fn core_log_level(l: &m::LoggingLevel) -> LogLevel {
    match l {
        m::LoggingLevel::Debug => LogLevel::Debug,
        m::LoggingLevel::Info => LogLevel::Info,
        m::LoggingLevel::Notice => LogLevel::Notice,
        m::LoggingLevel::Warning => LogLevel::Warning,
        m::LoggingLevel::Error => LogLevel::Error,
        m::LoggingLevel::Critical => LogLevel::Critical,
        m::LoggingLevel::Alert => LogLevel::Alert,
        m::LoggingLevel::Emergency => LogLevel::Emergency,
    }
}

fn sampling_params(r: &SamplingRequest) -> m::CreateMessageRequestParams {
    let messages = r
        .messages
        .iter()
        .filter_map(|msg| {
            let block = match &msg.content {
                Content::Text(t) => m::SamplingMessageContentBlock::text(t.clone()),
                Content::Image { data, mime_type } => {
                    m::SamplingMessageContentBlock::Image(m::ImageContent::new(data.clone(), mime_type.clone()))
                }
                Content::Audio { data, mime_type } => {
                    m::SamplingMessageContentBlock::Audio(m::AudioContent::new(data.clone(), mime_type.clone()))
                }
                _ => return None,
            };
            Some(m::SamplingMessage::new(role(msg.role), block))
        })
        .collect();
    let mut p = m::CreateMessageRequestParams::new(messages, r.max_tokens);
    if let Some(s) = &r.system_prompt {
        p = p.with_system_prompt(s.clone());
    }
    if let Some(t) = r.temperature {
        p = p.with_temperature(t as f32);
    }
    if !r.stop_sequences.is_empty() {
        p = p.with_stop_sequences(r.stop_sequences.clone());
    }
    p
}

fn elicit_params(r: &ElicitRequest) -> Result<m::ElicitRequestParams, ToolError> {
    let schema = serde_json::from_value(Value::Object(r.requested_schema.clone()))
        .map_err(|e| ToolError::internal(format!("elicitation schema not accepted: {e}")))?;
    Ok(m::ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: r.message.clone(),
        requested_schema: schema,
    })
}

/// A core client request as an MRTR input request.
pub(crate) fn input_request(r: &ClientRequest) -> Result<m::InputRequest, ToolError> {
    Ok(match r {
        ClientRequest::Sampling(s) => m::InputRequest::CreateMessage(m::CreateMessageRequest::new(sampling_params(s))),
        ClientRequest::Elicitation(e) => m::InputRequest::Elicitation(m::ElicitRequest::new(elicit_params(e)?)),
        ClientRequest::ListRoots => m::InputRequest::ListRoots(m::ListRootsRequest {
            method: Default::default(),
            extensions: Default::default(),
        }),
    })
}

fn sampling_result(r: m::CreateMessageResult) -> SamplingResult {
    let content = r
        .message
        .content
        .into_vec()
        .into_iter()
        .find_map(|b| match b {
            m::SamplingMessageContentBlock::Text(t) => Some(Content::Text(t.text)),
            m::SamplingMessageContentBlock::Image(i) => Some(Content::Image { data: i.data, mime_type: i.mime_type }),
            m::SamplingMessageContentBlock::Audio(a) => Some(Content::Audio { data: a.data, mime_type: a.mime_type }),
            _ => None,
        })
        .unwrap_or_else(|| Content::text(""));
    SamplingResult { role: core_role(&r.message.role), content, model: r.model, stop_reason: r.stop_reason }
}

fn elicit_result(r: m::ElicitResult) -> Result<ElicitResult, ToolError> {
    let action = match r.action {
        m::ElicitationAction::Accept => ElicitAction::Accept,
        m::ElicitationAction::Decline => ElicitAction::Decline,
        _ => ElicitAction::Cancel,
    };
    let content = match r.content {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => return Err(ToolError::InvalidRequest("elicitation content must be an object".into())),
    };
    Ok(ElicitResult { action, content })
}

fn roots(r: m::ListRootsResult) -> Vec<(String, Option<String>)> {
    r.roots.into_iter().map(|r| (r.uri, r.name)).collect()
}

/// Send a core client request over a legacy session and await the answer.
pub(crate) async fn send_request(
    peer: &rmcp::Peer<rmcp::RoleServer>,
    r: ClientRequest,
) -> Result<ClientResponse, ToolError> {
    let failed = |e: rmcp::ServiceError| ToolError::unavailable(format!("client request failed: {e}"));
    Ok(match r {
        ClientRequest::Sampling(s) => {
            ClientResponse::Sampling(sampling_result(peer.create_message(sampling_params(&s)).await.map_err(failed)?))
        }
        ClientRequest::Elicitation(e) => ClientResponse::Elicitation(elicit_result(
            peer.create_elicitation(elicit_params(&e)?).await.map_err(failed)?,
        )?),
        ClientRequest::ListRoots => ClientResponse::Roots(roots(peer.list_roots().await.map_err(failed)?)),
    })
}

/// Which kind of answer an input response must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum AnswerKind {
    Sampling,
    Elicitation,
    Roots,
}

impl AnswerKind {
    pub(crate) fn of(r: &ClientRequest) -> Self {
        match r {
            ClientRequest::Sampling(_) => AnswerKind::Sampling,
            ClientRequest::Elicitation(_) => AnswerKind::Elicitation,
            ClientRequest::ListRoots => AnswerKind::Roots,
        }
    }

    /// Guess the kind from the answer's shape (for answers to requests the
    /// server has no state about).
    pub(crate) fn guess(v: &Value) -> Option<Self> {
        let o = v.as_object()?;
        if o.contains_key("action") {
            Some(AnswerKind::Elicitation)
        } else if o.contains_key("roots") {
            Some(AnswerKind::Roots)
        } else if o.contains_key("model") || o.contains_key("content") {
            Some(AnswerKind::Sampling)
        } else {
            None
        }
    }
}

/// Decode one MRTR input response of a known kind.
pub(crate) fn decode_answer(kind: AnswerKind, v: Value) -> Result<ClientResponse, String> {
    Ok(match kind {
        AnswerKind::Sampling => ClientResponse::Sampling(sampling_result(
            serde_json::from_value::<m::CreateMessageResult>(v).map_err(|e| format!("not a sampling result: {e}"))?,
        )),
        AnswerKind::Elicitation => ClientResponse::Elicitation(
            elicit_result(
                serde_json::from_value::<m::ElicitResult>(v).map_err(|e| format!("not an elicitation result: {e}"))?,
            )
            .map_err(|e| e.to_string())?,
        ),
        AnswerKind::Roots => ClientResponse::Roots(roots(
            serde_json::from_value::<m::ListRootsResult>(v).map_err(|e| format!("not a roots result: {e}"))?,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elicitation_schemas_survive_the_typed_model() {
        // The SEP-1034 and SEP-1330 schemas must reach the client unchanged.
        let schemas = [
            json!({"type":"object","properties":{
                "name":{"type":"string","description":"User name","default":"John Doe"},
                "age":{"type":"integer","description":"User age","default":30},
                "score":{"type":"number","description":"User score","default":95.5},
                "status":{"type":"string","description":"User status","enum":["active","inactive","pending"],"default":"active"},
                "verified":{"type":"boolean","description":"Verification status","default":true}},"required":[]}),
            json!({"type":"object","properties":{
                "untitledSingle":{"type":"string","description":"Select one option","enum":["option1","option2","option3"]},
                "titledSingle":{"type":"string","description":"Select one option with titles","oneOf":[{"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"}]},
                "legacyEnum":{"type":"string","description":"Select one option (legacy)","enum":["opt1","opt2"],"enumNames":["Option One","Option Two"]},
                "untitledMulti":{"type":"array","description":"Select multiple options","minItems":1,"maxItems":3,"items":{"type":"string","enum":["option1","option2"]}},
                "titledMulti":{"type":"array","description":"Select multiple options with titles","minItems":1,"maxItems":3,"items":{"anyOf":[{"const":"value1","title":"First Choice"}]}}},"required":[]}),
        ];
        for s in schemas {
            let req = ElicitRequest { message: "m".into(), requested_schema: s.as_object().cloned().unwrap() };
            let params = elicit_params(&req).unwrap();
            let wire = serde_json::to_value(&params).unwrap();
            assert_eq!(wire["requestedSchema"]["properties"], s["properties"], "{wire}");
        }
    }

    #[test]
    fn answers_decode_by_kind_and_reject_garbage() {
        let e = decode_answer(AnswerKind::Elicitation, json!({"action":"accept","content":{"name":"Alice"}})).unwrap();
        assert!(
            matches!(e, ClientResponse::Elicitation(ElicitResult { action: ElicitAction::Accept, content: Some(c) }) if c["name"] == "Alice")
        );
        assert!(decode_answer(AnswerKind::Elicitation, json!(12345)).is_err());
        let s = decode_answer(
            AnswerKind::Sampling,
            json!({"role":"assistant","content":{"type":"text","text":"Paris"},"model":"m","stopReason":"endTurn"}),
        )
        .unwrap();
        assert!(
            matches!(s, ClientResponse::Sampling(SamplingResult { content: Content::Text(t), .. }) if t == "Paris")
        );
        let r = decode_answer(AnswerKind::Roots, json!({"roots":[{"uri":"file:///a","name":"A"}]})).unwrap();
        assert_eq!(r, ClientResponse::Roots(vec![("file:///a".into(), Some("A".into()))]));
        assert_eq!(AnswerKind::guess(&json!(12345)), None);
    }
}
