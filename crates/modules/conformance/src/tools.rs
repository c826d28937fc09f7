//! The conformance tools: hand-written schemas served verbatim, one async fn
//! per tool.

use std::time::Duration;

use plexus_core::content::ResourceContent;
use plexus_core::context::{
    ClientRequest, ElicitAction, ElicitRequest, ElicitResult, LogLevel, Notification, SamplingRequest, SamplingResult,
    expect_elicitation, expect_roots, expect_sampling,
};
use plexus_core::module::decode_args;
use plexus_core::spec::JsonObject;
use plexus_core::{CallContext, Content, ToolDef, ToolError, ToolOutput, Toolbox};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{NAME, PNG_B64, WAV_B64};

/// Logger name of the log messages the tools send.
const LOGGER: &str = "conformance";

/// The final text of `test_reconnection` (the TS reference's wording).
const RECONNECTION_TEXT: &str = "Reconnection test completed successfully. If you received this, the client \
                                 properly reconnected after stream closure.";

/// Every tool, in listing order.
pub(crate) fn toolbox() -> Toolbox {
    Toolbox::new(NAME)
        // content
        .raw(def("test_simple_text", "Returns a simple text response"), no_args(), simple_text)
        .raw(def("test_image_content", "Returns an image (a 1x1 PNG)"), no_args(), image_content)
        .raw(def("test_audio_content", "Returns audio content (a minimal WAV file)"), no_args(), audio_content)
        .raw(def("test_embedded_resource", "Returns an embedded text resource"), no_args(), embedded_resource)
        .raw(
            def("test_multiple_content_types", "Returns text, an image and an embedded resource together"),
            no_args(),
            multiple_content_types,
        )
        // notifications and errors
        .raw(
            def("test_tool_with_logging", "Sends three log messages while it runs, about 50 ms apart"),
            no_args(),
            tool_with_logging,
        )
        .raw(
            def("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100, about 50 ms apart"),
            no_args(),
            tool_with_progress,
        )
        .raw(def("test_error_handling", "Always fails with a tool error (isError: true)"), no_args(), error_handling)
        // client round trips
        .raw(
            def("test_sampling", "Asks the client's model to complete a prompt and returns its answer"),
            sampling_schema(),
            sampling,
        )
        .raw(
            def("test_elicitation", "Asks the user, through the client, for a username and an email address"),
            elicitation_tool_schema(),
            elicitation,
        )
        .raw(
            def(
                "test_elicitation_sep1034_defaults",
                "Asks the user to review a form whose fields have default values (SEP-1034)",
            ),
            no_args(),
            elicitation_sep1034_defaults,
        )
        .raw(
            def(
                "test_elicitation_sep1330_enums",
                "Asks the user to pick from titled, untitled, legacy and multi-select enums (SEP-1330)",
            ),
            no_args(),
            elicitation_sep1330_enums,
        )
        .raw(
            def("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features"),
            json_schema_2020_12(),
            json_schema_2020_12_tool,
        )
        .raw(
            def("test_reconnection", "Takes about 100 ms, so a client can reconnect to the stream meanwhile"),
            no_args(),
            reconnection,
        )
        // stateless-era diagnostics
        .raw(
            def("test_missing_capability", "Needs the client's sampling capability and fails without it"),
            no_args(),
            missing_capability,
        )
        .raw(
            def("test_streaming_elicitation", "Asks for a confirmation; never sends a request on the response stream"),
            no_args(),
            streaming_elicitation,
        )
        .raw(def("test_logging_tool", "Sends one info log message and returns"), no_args(), logging_tool)
        .raw(
            def("test_trigger_tool_change", "Tells subscribers that the tool list changed"),
            no_args(),
            trigger_tool_change,
        )
        .raw(
            def("test_trigger_prompt_change", "Tells subscribers that the prompt list changed"),
            no_args(),
            trigger_prompt_change,
        )
        // input-required results (MRTR)
        .raw(
            def("test_input_required_result_elicitation", "Asks the user's name (key user_name), then greets them"),
            no_args(),
            irr_elicitation,
        )
        .raw(
            def(
                "test_input_required_result_sampling",
                "Asks the client's model for the capital of France (key capital_question)",
            ),
            no_args(),
            irr_sampling,
        )
        .raw(
            def("test_input_required_result_list_roots", "Asks the client for its roots (key client_roots)"),
            no_args(),
            irr_list_roots,
        )
        .raw(
            def(
                "test_input_required_result_request_state",
                "Asks for a confirmation (key confirm); the answer travels with request state",
            ),
            no_args(),
            irr_request_state,
        )
        .raw(
            def(
                "test_input_required_result_multiple_inputs",
                "Asks for an elicitation, a sampling and the roots at once",
            ),
            no_args(),
            irr_multiple_inputs,
        )
        .raw(
            def("test_input_required_result_multi_round", "Asks two questions in two rounds (keys step1, step2)"),
            no_args(),
            irr_multi_round,
        )
        .raw(
            def(
                "test_input_required_result_tampered_state",
                "Asks for a confirmation (key confirm); a tampered request state must be rejected",
            ),
            no_args(),
            irr_tampered_state,
        )
        .raw(
            def(
                "test_input_required_result_capabilities",
                "Asks only for what the client declared: sampling, elicitation and roots",
            ),
            no_args(),
            irr_capabilities,
        )
}

fn def(name: &str, description: &str) -> ToolDef {
    ToolDef::new(name, description).data_class(plexus_core::spec::DataClass::Public)
}

/// A JSON object from a `json!` literal (every caller passes an object).
pub(crate) fn object(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        _ => JsonObject::new(),
    }
}

/// The schema of a tool without arguments.
fn no_args() -> JsonObject {
    object(json!({"type": "object", "properties": {}}))
}

fn sampling_schema() -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
        "required": ["prompt"]
    }))
}

fn elicitation_tool_schema() -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {"message": {"type": "string", "description": "The message to show the user"}},
        "required": ["message"]
    }))
}

/// The input schema of `json_schema_2020_12_tool` (SEP-1613 and SEP-2106
/// keywords: `$schema`, `$defs`, `$anchor`, `allOf`/`anyOf`, `if`/`then`/`else`).
pub(crate) fn json_schema_2020_12() -> JsonObject {
    object(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    }))
}

/// The requested schema of `test_elicitation`.
fn user_info_schema() -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"}
        },
        "required": ["username", "email"]
    }))
}

/// The requested schema of `test_elicitation_sep1034_defaults` (SEP-1034).
pub(crate) fn sep1034_schema() -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": true}
        },
        "required": []
    }))
}

/// The requested schema of `test_elicitation_sep1330_enums` (SEP-1330).
pub(crate) fn sep1330_schema() -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"}
                ]
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}
                    ]
                }
            }
        },
        "required": []
    }))
}

/// A form with one required property of the given type.
fn one_field_schema(field: &str, ty: &str) -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {field: {"type": ty}},
        "required": [field]
    }))
}

fn elicit(message: &str, requested_schema: JsonObject) -> ClientRequest {
    ClientRequest::Elicitation(ElicitRequest { message: message.to_owned(), requested_schema })
}

fn sample(prompt: &str, max_tokens: u32) -> ClientRequest {
    ClientRequest::Sampling(SamplingRequest::prompt(prompt, max_tokens))
}

/// The question of `test_input_required_result_elicitation` (key `user_name`).
fn name_question() -> ClientRequest {
    elicit("What is your name?", one_field_schema("name", "string"))
}

/// The question of the confirm-style tools (key `confirm`).
fn confirm_question() -> ClientRequest {
    elicit("Please confirm", one_field_schema("ok", "boolean"))
}

fn capital_question() -> ClientRequest {
    sample("What is the capital of France?", 100)
}

/// Sleep, then stop if the call was cancelled or ran out of time meanwhile.
async fn pause(cx: &CallContext, ms: u64) -> Result<(), ToolError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if cx.is_cancelled() { Err(ToolError::Cancelled) } else { Ok(()) }
}

fn action_name(action: ElicitAction) -> &'static str {
    match action {
        ElicitAction::Accept => "accept",
        ElicitAction::Decline => "decline",
        ElicitAction::Cancel => "cancel",
    }
}

/// `action=accept, content={...}` as the reference servers render it.
fn describe_elicitation(r: &ElicitResult) -> String {
    let content = r.content.as_ref().map_or_else(|| "null".to_owned(), |c| Value::Object(c.clone()).to_string());
    format!("action={}, content={content}", action_name(r.action))
}

/// The text of a sampling answer, or a placeholder for non-text content.
fn sampled_text(r: &SamplingResult) -> &str {
    r.content.as_text().unwrap_or("<non-text content>")
}

/// `Some(value)` of an accepted form's field; `None` if the user declined
/// or cancelled. An accepted form without the field is a protocol error.
pub(crate) fn accepted_field<'a>(r: &'a ElicitResult, key: &str, field: &str) -> Result<Option<&'a Value>, ToolError> {
    if r.action != ElicitAction::Accept {
        return Ok(None);
    }
    r.content
        .as_ref()
        .and_then(|c| c.get(field))
        .map(Some)
        .ok_or_else(|| ToolError::InvalidRequest(format!("the answer to `{key}` lacks the field `{field}`")))
}

/// An accepted form's string field (see [`accepted_field`]).
pub(crate) fn accepted_string(r: &ElicitResult, key: &str, field: &str) -> Result<Option<String>, ToolError> {
    match accepted_field(r, key, field)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ToolError::InvalidRequest(format!("the answer to `{key}` has a non-string `{field}`"))),
    }
}

fn roots_text(roots: &[(String, Option<String>)]) -> String {
    if roots.is_empty() {
        return "no roots".to_owned();
    }
    roots
        .iter()
        .map(|(uri, name)| match name {
            Some(n) => format!("{uri} ({n})"),
            None => uri.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// content

async fn simple_text(_cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::text("This is a simple text response for testing."))
}

async fn image_content(_cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::contents(vec![png()]))
}

async fn audio_content(_cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::contents(vec![Content::Audio { data: WAV_B64.to_owned(), mime_type: "audio/wav".to_owned() }]))
}

async fn embedded_resource(_cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::contents(vec![Content::Resource(ResourceContent::Text {
        uri: "test://embedded-resource".to_owned(),
        mime_type: Some("text/plain".to_owned()),
        text: "This is an embedded resource content.".to_owned(),
    })]))
}

async fn multiple_content_types(_cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::contents(vec![
        Content::text("Multiple content types test:"),
        png(),
        Content::Resource(ResourceContent::Text {
            uri: "test://mixed-content-resource".to_owned(),
            mime_type: Some("application/json".to_owned()),
            text: json!({"test": "data", "value": 123}).to_string(),
        }),
    ]))
}

pub(crate) fn png() -> Content {
    Content::Image { data: PNG_B64.to_owned(), mime_type: "image/png".to_owned() }
}

// ---------------------------------------------------------------------------
// notifications and errors

async fn tool_with_logging(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let steps = ["Tool execution started", "Tool processing data", "Tool execution completed"];
    for (i, msg) in steps.into_iter().enumerate() {
        if i > 0 {
            pause(&cx, 50).await?;
        }
        cx.log_data(LogLevel::Info, Some(LOGGER), json!(msg)).await;
    }
    Ok(ToolOutput::text("Tool with logging executed successfully"))
}

async fn tool_with_progress(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    for (i, step) in [0u32, 50, 100].into_iter().enumerate() {
        if i > 0 {
            pause(&cx, 50).await?;
        }
        let message = format!("Completed step {step} of 100");
        cx.progress(f64::from(step), Some(100.0), Some(&message)).await;
    }
    // The reference echoes the progress token; the server may pass it in `_meta`.
    let text = match cx.meta.get("progressToken") {
        Some(Value::String(token)) => token.clone(),
        Some(token @ Value::Number(_)) => token.to_string(),
        _ => "Progress test completed".to_owned(),
    };
    Ok(ToolOutput::text(text))
}

async fn error_handling(_cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::error("This tool intentionally returns an error for testing"))
}

// ---------------------------------------------------------------------------
// client round trips

#[derive(Deserialize)]
struct PromptArgs {
    prompt: String,
}

#[derive(Deserialize)]
struct MessageArgs {
    message: String,
}

async fn sampling(cx: CallContext, args: Value) -> Result<ToolOutput, ToolError> {
    let PromptArgs { prompt } = decode_args(args)?;
    let answer = cx.client().sample(SamplingRequest::prompt(prompt, 100)).await?;
    Ok(ToolOutput::text(format!("LLM response: {}", sampled_text(&answer))))
}

async fn elicitation(cx: CallContext, args: Value) -> Result<ToolOutput, ToolError> {
    let MessageArgs { message } = decode_args(args)?;
    let answer = cx.client().elicit(ElicitRequest { message, requested_schema: user_info_schema() }).await?;
    Ok(ToolOutput::text(format!("User response: {}", describe_elicitation(&answer))))
}

async fn elicitation_sep1034_defaults(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let request = ElicitRequest {
        message: "Please review and update the form fields with defaults".to_owned(),
        requested_schema: sep1034_schema(),
    };
    let answer = cx.client().elicit(request).await?;
    Ok(ToolOutput::text(format!("Elicitation completed: {}", describe_elicitation(&answer))))
}

async fn elicitation_sep1330_enums(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let request = ElicitRequest {
        message: "Please select options from the enum fields".to_owned(),
        requested_schema: sep1330_schema(),
    };
    let answer = cx.client().elicit(request).await?;
    Ok(ToolOutput::text(format!("Elicitation completed: {}", describe_elicitation(&answer))))
}

async fn json_schema_2020_12_tool(_cx: CallContext, args: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::text(format!("JSON Schema 2020-12 tool called with: {args}")))
}

async fn reconnection(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    pause(&cx, 100).await?;
    Ok(ToolOutput::text(RECONNECTION_TEXT))
}

// ---------------------------------------------------------------------------
// stateless-era diagnostics

async fn missing_capability(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    // Without the sampling capability this fails before asking; the server
    // maps the error to -32021 with `requiredCapabilities.sampling`.
    let answer = cx.client().sample(SamplingRequest::prompt("Say hello", 20)).await?;
    Ok(ToolOutput::text(format!("Sampling is available: {}", sampled_text(&answer))))
}

async fn streaming_elicitation(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let request = elicit("Please confirm to continue", one_field_schema("confirmed", "boolean"));
    let answer = expect_elicitation(cx.client().ask("confirm", request).await?)?;
    Ok(ToolOutput::text(format!("Streaming elicitation completed: {}", describe_elicitation(&answer))))
}

async fn logging_tool(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    cx.log_data(LogLevel::Info, Some(LOGGER), json!("test_logging_tool was called")).await;
    Ok(ToolOutput::text("logged"))
}

async fn trigger_tool_change(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    cx.notify(Notification::ToolListChanged);
    Ok(ToolOutput::text("Tool list change notification sent"))
}

async fn trigger_prompt_change(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    cx.notify(Notification::PromptListChanged);
    Ok(ToolOutput::text("Prompt list change notification sent"))
}

// ---------------------------------------------------------------------------
// input-required results (MRTR)

fn greeting(name: Option<String>) -> String {
    match name {
        Some(name) => format!("Hello, {name}!"),
        None => "The user did not give a name.".to_owned(),
    }
}

async fn irr_elicitation(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let answer = expect_elicitation(cx.client().ask("user_name", name_question()).await?)?;
    Ok(ToolOutput::text(greeting(accepted_string(&answer, "user_name", "name")?)))
}

async fn irr_sampling(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let answer = expect_sampling(cx.client().ask("capital_question", capital_question()).await?)?;
    Ok(ToolOutput::text(sampled_text(&answer)))
}

async fn irr_list_roots(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let roots = expect_roots(cx.client().ask("client_roots", ClientRequest::ListRoots).await?)?;
    Ok(ToolOutput::text(format!("Client roots: {}", roots_text(&roots))))
}

/// Confirm-style round trip shared by the request-state and tampered-state
/// tools: the server seals the answers into request state between rounds.
async fn confirm(cx: &CallContext) -> Result<Option<bool>, ToolError> {
    let answer = expect_elicitation(cx.client().ask("confirm", confirm_question()).await?)?;
    match accepted_field(&answer, "confirm", "ok")? {
        None => Ok(None),
        Some(Value::Bool(ok)) => Ok(Some(*ok)),
        Some(_) => Err(ToolError::InvalidRequest("the answer to `confirm` has a non-boolean `ok`".into())),
    }
}

async fn irr_request_state(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let text = match confirm(&cx).await? {
        Some(ok) => format!("state-ok: confirmed={ok}"),
        None => "state-ok: the user did not confirm".to_owned(),
    };
    Ok(ToolOutput::text(text))
}

async fn irr_tampered_state(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let text = match confirm(&cx).await? {
        Some(ok) => format!("Request state verified: confirmed={ok}"),
        None => "Request state verified: the user did not confirm".to_owned(),
    };
    Ok(ToolOutput::text(text))
}

async fn irr_multiple_inputs(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let mut answers = cx
        .client()
        .ask_all(vec![
            ("user_name".to_owned(), name_question()),
            ("greeting".to_owned(), sample("Generate a greeting", 50)),
            ("client_roots".to_owned(), ClientRequest::ListRoots),
        ])
        .await?
        .into_iter();
    let missing = || ToolError::InvalidRequest("the client answered fewer requests than asked".into());
    let name = expect_elicitation(answers.next().ok_or_else(missing)?)?;
    let greeting_answer = expect_sampling(answers.next().ok_or_else(missing)?)?;
    let roots = expect_roots(answers.next().ok_or_else(missing)?)?;
    let name = accepted_string(&name, "user_name", "name")?.unwrap_or_else(|| "(no name)".to_owned());
    Ok(ToolOutput::text(format!(
        "Name: {name}; greeting: {}; roots: {}",
        sampled_text(&greeting_answer),
        roots_text(&roots)
    )))
}

async fn irr_multi_round(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let step1 = elicit("Step 1: What is your name?", one_field_schema("name", "string"));
    let name = expect_elicitation(cx.client().ask("step1", step1).await?)?;
    let name = accepted_string(&name, "step1", "name")?.unwrap_or_else(|| "(no name)".to_owned());

    let step2 = elicit("Step 2: What is your favorite color?", one_field_schema("color", "string"));
    let color = expect_elicitation(cx.client().ask("step2", step2).await?)?;
    let color = accepted_string(&color, "step2", "color")?.unwrap_or_else(|| "(no color)".to_owned());

    Ok(ToolOutput::text(format!("Hello, {name}! Your favorite color is {color}.")))
}

async fn irr_capabilities(cx: CallContext, _args: Value) -> Result<ToolOutput, ToolError> {
    let caps = cx.client().capabilities();
    let mut requests = Vec::new();
    if caps.sampling {
        requests.push(("capital_question".to_owned(), capital_question()));
    }
    if caps.elicitation {
        requests.push(("user_name".to_owned(), name_question()));
    }
    if caps.roots {
        requests.push(("client_roots".to_owned(), ClientRequest::ListRoots));
    }
    if requests.is_empty() {
        return Ok(ToolOutput::text("The client declared no sampling, elicitation or roots capability."));
    }
    let keys: Vec<String> = requests.iter().map(|(k, _)| k.clone()).collect();
    cx.client().ask_all(requests).await?;
    Ok(ToolOutput::text(format!("Answered: {}", keys.join(", "))))
}
