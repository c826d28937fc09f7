//! The conformance fixtures, called through the public module API.

// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use plexus_conformance::{PNG_B64, WAV_B64};
use plexus_core::content::ResourceContent;
use plexus_core::context::{
    ClientCapabilities, ClientPeer, ClientRequest, ClientResponse, ElicitAction, ElicitResult, LogLevel, Notification,
    SamplingResult,
};
use plexus_core::module::CompletionRef;
use plexus_core::registry::Registry;
use plexus_core::{CallContext, Content, Era, Module, Role, ToolError, ToolOutput};
use serde_json::{Value, json};

/// A client that declares chosen capabilities, records everything the
/// server sends it and, in the legacy era, answers requests as the
/// conformance harness does.
/// A log message as the peer received it.
type LogRecord = (LogLevel, Option<String>, Value);

/// A progress report as the peer received it.
type ProgressRecord = (f64, Option<f64>, Option<String>);

#[derive(Default)]
struct TestPeer {
    caps: ClientCapabilities,
    logs: Mutex<Vec<LogRecord>>,
    progress: Mutex<Vec<ProgressRecord>>,
    requests: Mutex<Vec<ClientRequest>>,
    notifications: Mutex<Vec<Notification>>,
}

impl TestPeer {
    fn with(caps: ClientCapabilities) -> Arc<Self> {
        Arc::new(Self { caps, ..Self::default() })
    }

    fn capable() -> Arc<Self> {
        Self::with(ClientCapabilities { sampling: true, elicitation: true, roots: true })
    }
}

#[async_trait::async_trait]
impl ClientPeer for TestPeer {
    fn capabilities(&self) -> ClientCapabilities {
        self.caps
    }

    async fn progress(&self, done: f64, total: Option<f64>, message: Option<String>) {
        self.progress.lock().unwrap().push((done, total, message));
    }

    async fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        self.logs.lock().unwrap().push((level, logger.map(str::to_owned), data));
    }

    async fn request(&self, request: ClientRequest) -> Result<ClientResponse, ToolError> {
        self.requests.lock().unwrap().push(request.clone());
        Ok(match request {
            ClientRequest::Sampling(_) => ClientResponse::Sampling(sampled("This is a test response from the client")),
            ClientRequest::Elicitation(_) => {
                ClientResponse::Elicitation(accept(json!({"username": "testuser", "email": "test@example.com"})))
            }
            ClientRequest::ListRoots => {
                ClientResponse::Roots(vec![("file:///test/root".into(), Some("Test Root".into()))])
            }
        })
    }

    fn notify(&self, notification: Notification) {
        self.notifications.lock().unwrap().push(notification);
    }
}

fn sampled(text: &str) -> SamplingResult {
    SamplingResult {
        role: Role::Assistant,
        content: Content::text(text),
        model: "test-model".into(),
        stop_reason: Some("endTurn".into()),
    }
}

fn accept(content: Value) -> ElicitResult {
    let Value::Object(map) = content else { panic!("content must be an object") };
    ElicitResult { action: ElicitAction::Accept, content: Some(map) }
}

fn module() -> Arc<dyn Module> {
    plexus_conformance::module()
}

fn stateless(peer: &Arc<TestPeer>) -> CallContext {
    CallContext::new("req-1", Era::Stateless, Arc::clone(peer) as Arc<dyn ClientPeer>)
}

fn legacy(peer: &Arc<TestPeer>) -> CallContext {
    CallContext::new("req-1", Era::Legacy, Arc::clone(peer) as Arc<dyn ClientPeer>)
}

fn inputs(pairs: Vec<(&str, ClientResponse)>) -> HashMap<String, ClientResponse> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn call(cx: &CallContext, tool: &str) -> Result<ToolOutput, ToolError> {
    module().call(cx, tool, json!({})).await
}

fn text(out: &ToolOutput) -> &str {
    out.content[0].as_text().expect("first content is text")
}

/// The keys and requests of an input-required error.
fn input_required(result: Result<ToolOutput, ToolError>) -> Vec<(String, ClientRequest)> {
    match result {
        Err(ToolError::InputRequired(reqs)) => reqs.into_iter().map(|r| (r.key, r.request)).collect(),
        other => panic!("expected input required, got {other:?}"),
    }
}

fn elicitation_schema(r: &ClientRequest) -> (&str, Value) {
    match r {
        ClientRequest::Elicitation(e) => (e.message.as_str(), Value::Object(e.requested_schema.clone())),
        other => panic!("expected an elicitation, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// listing

#[test]
fn every_tool_has_a_description_and_an_object_schema() {
    let m = module();
    assert_eq!(m.name(), "conformance");
    let tools = m.tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in [
        "test_simple_text",
        "test_image_content",
        "test_audio_content",
        "test_embedded_resource",
        "test_multiple_content_types",
        "test_tool_with_logging",
        "test_tool_with_progress",
        "test_error_handling",
        "test_sampling",
        "test_elicitation",
        "test_elicitation_sep1034_defaults",
        "test_elicitation_sep1330_enums",
        "json_schema_2020_12_tool",
        "test_reconnection",
        "test_missing_capability",
        "test_streaming_elicitation",
        "test_logging_tool",
        "test_trigger_tool_change",
        "test_trigger_prompt_change",
        "test_input_required_result_elicitation",
        "test_input_required_result_sampling",
        "test_input_required_result_list_roots",
        "test_input_required_result_request_state",
        "test_input_required_result_multiple_inputs",
        "test_input_required_result_multi_round",
        "test_input_required_result_tampered_state",
        "test_input_required_result_capabilities",
    ] {
        assert!(names.contains(&expected), "missing tool {expected}");
    }
    assert_eq!(names.len(), 27);
    for t in &tools {
        assert!(t.description.as_deref().is_some_and(|d| !d.is_empty()), "{} lacks a description", t.name);
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert!(t.output_schema.is_none(), "{}", t.name);
        let valid_name =
            t.name.len() <= 128 && t.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        assert!(valid_name, "{}", t.name);
    }
    let simple = tools.iter().find(|t| t.name == "test_simple_text").unwrap();
    assert_eq!(Value::Object((*simple.input_schema).clone()), json!({"type": "object", "properties": {}}));
    let sampling = tools.iter().find(|t| t.name == "test_sampling").unwrap();
    assert_eq!(
        Value::Object((*sampling.input_schema).clone()),
        json!({"type":"object","properties":{"prompt":{"type":"string","description":"The prompt to send to the LLM"}},"required":["prompt"]})
    );
}

#[test]
fn json_schema_2020_12_tool_schema_is_served_verbatim() {
    let tools = module().tools();
    let tool = tools.iter().find(|t| t.name == "json_schema_2020_12_tool").unwrap();
    assert_eq!(tool.description.as_deref(), Some("Tool with JSON Schema 2020-12 features"));
    let expected = json!({"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
     "$defs":{"address":{"$anchor":"addressDef","type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},
     "properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"},
                   "contactMethod":{"type":"string","enum":["phone","email"]},"phone":{"type":"string"},"email":{"type":"string"}},
     "allOf":[{"anyOf":[{"required":["phone"]},{"required":["email"]}]}],
     "if":{"properties":{"contactMethod":{"const":"phone"}},"required":["contactMethod"]},
     "then":{"required":["phone"]},"else":{"required":["email"]},
     "additionalProperties":false});
    assert_eq!(Value::Object((*tool.input_schema).clone()), expected);
}

#[test]
fn the_registry_accepts_the_module_and_validates_arguments() {
    let registry = Registry::new(vec![module()]).expect("every schema compiles");
    registry.validate("test_sampling", &json!({"prompt": "hi"})).unwrap();
    assert!(registry.validate("test_sampling", &json!({})).is_err());
    registry.validate("json_schema_2020_12_tool", &json!({"name": "a", "email": "a@example.com"})).unwrap();
    // the conditional: contactMethod phone requires phone
    assert!(registry.validate("json_schema_2020_12_tool", &json!({"contactMethod": "phone", "email": "x"})).is_err());
    assert!(registry.validate("json_schema_2020_12_tool", &json!({"email": "x", "extra": 1})).is_err());
}

// ---------------------------------------------------------------------------
// content tools

#[tokio::test]
async fn content_tools_return_the_reference_values() {
    let cx = CallContext::detached("r");
    let m = module();

    // called without an `arguments` key
    let out = m.call(&cx, "test_simple_text", Value::Null).await.unwrap();
    assert_eq!(out.content, vec![Content::text("This is a simple text response for testing.")]);
    assert!(!out.is_error);

    let out = call(&cx, "test_image_content").await.unwrap();
    assert_eq!(out.content, vec![Content::Image { data: PNG_B64.into(), mime_type: "image/png".into() }]);

    let out = call(&cx, "test_audio_content").await.unwrap();
    assert_eq!(out.content, vec![Content::Audio { data: WAV_B64.into(), mime_type: "audio/wav".into() }]);

    let out = call(&cx, "test_embedded_resource").await.unwrap();
    assert_eq!(
        out.content,
        vec![Content::Resource(ResourceContent::Text {
            uri: "test://embedded-resource".into(),
            mime_type: Some("text/plain".into()),
            text: "This is an embedded resource content.".into(),
        })]
    );

    let out = call(&cx, "test_multiple_content_types").await.unwrap();
    assert_eq!(out.content.len(), 3);
    assert_eq!(out.content[0].as_text(), Some("Multiple content types test:"));
    assert!(matches!(&out.content[1], Content::Image { mime_type, .. } if mime_type == "image/png"));
    match &out.content[2] {
        Content::Resource(ResourceContent::Text { uri, mime_type, text }) => {
            assert_eq!(uri, "test://mixed-content-resource");
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            assert_eq!(serde_json::from_str::<Value>(text).unwrap(), json!({"test": "data", "value": 123}));
        }
        other => panic!("expected a text resource, got {other:?}"),
    }
}

#[test]
fn the_blobs_are_valid_png_and_wav() {
    // Decode the base64 by hand: PNG and RIFF/WAVE magic numbers.
    fn decode(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64 character") as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        out
    }
    assert_eq!(&decode(PNG_B64)[..8], b"\x89PNG\r\n\x1a\n");
    let wav = decode(WAV_B64);
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
}

#[tokio::test]
async fn error_tool_reports_a_tool_error_result() {
    let out = call(&CallContext::detached("r"), "test_error_handling").await.unwrap();
    assert!(out.is_error);
    assert_eq!(text(&out), "This tool intentionally returns an error for testing");
}

#[tokio::test]
async fn unknown_tool_is_not_found() {
    let err = call(&CallContext::detached("r"), "no_such_tool").await.unwrap_err();
    assert_eq!(err.to_string(), "tool not found: no_such_tool");
}

// ---------------------------------------------------------------------------
// notifications

#[tokio::test]
async fn logging_tool_sends_three_info_messages() {
    let peer = TestPeer::capable();
    let out = call(&legacy(&peer), "test_tool_with_logging").await.unwrap();
    assert_eq!(text(&out), "Tool with logging executed successfully");
    let logs = peer.logs.lock().unwrap();
    let data: Vec<&Value> = logs.iter().map(|(_, _, d)| d).collect();
    assert_eq!(
        data,
        [&json!("Tool execution started"), &json!("Tool processing data"), &json!("Tool execution completed")]
    );
    assert!(logs.iter().all(|(level, logger, _)| *level == LogLevel::Info && logger.as_deref() == Some("conformance")));
}

#[tokio::test]
async fn progress_tool_reports_0_50_100() {
    let peer = TestPeer::capable();
    let out = call(&stateless(&peer), "test_tool_with_progress").await.unwrap();
    assert_eq!(text(&out), "Progress test completed");
    let progress = peer.progress.lock().unwrap().clone();
    assert_eq!(
        progress,
        vec![
            (0.0, Some(100.0), Some("Completed step 0 of 100".to_owned())),
            (50.0, Some(100.0), Some("Completed step 50 of 100".to_owned())),
            (100.0, Some(100.0), Some("Completed step 100 of 100".to_owned())),
        ]
    );
}

#[tokio::test]
async fn progress_tool_echoes_a_token_from_meta() {
    let mut cx = CallContext::detached("r");
    cx.meta = Arc::new(BTreeMap::from([("progressToken".to_owned(), json!("progress-test-1"))]));
    let out = call(&cx, "test_tool_with_progress").await.unwrap();
    assert_eq!(text(&out), "progress-test-1");
}

#[tokio::test]
async fn diagnostic_tools_log_and_notify() {
    let peer = TestPeer::capable();
    let cx = stateless(&peer);
    assert_eq!(text(&call(&cx, "test_logging_tool").await.unwrap()), "logged");
    assert_eq!(peer.logs.lock().unwrap().len(), 1);
    assert_eq!(peer.logs.lock().unwrap()[0].0, LogLevel::Info);

    call(&cx, "test_trigger_tool_change").await.unwrap();
    call(&cx, "test_trigger_prompt_change").await.unwrap();
    assert_eq!(
        *peer.notifications.lock().unwrap(),
        vec![Notification::ToolListChanged, Notification::PromptListChanged]
    );

    let out = call(&cx, "test_reconnection").await.unwrap();
    assert!(text(&out).starts_with("Reconnection test completed successfully."));
    let out = call(&cx, "json_schema_2020_12_tool").await.unwrap();
    assert!(!out.is_error);
}

#[tokio::test]
async fn a_cancelled_call_stops_at_its_next_pause() {
    let cx = CallContext::detached("r");
    cx.cancel.cancel();
    let err = call(&cx, "test_reconnection").await.unwrap_err();
    assert!(matches!(err, ToolError::Cancelled), "{err:?}");
}

// ---------------------------------------------------------------------------
// legacy-era round trips

#[tokio::test]
async fn legacy_sampling_sends_the_prompt_and_returns_the_answer() {
    let peer = TestPeer::capable();
    let out =
        module().call(&legacy(&peer), "test_sampling", json!({"prompt": "Test prompt for sampling"})).await.unwrap();
    assert_eq!(text(&out), "LLM response: This is a test response from the client");
    let requests = peer.requests.lock().unwrap();
    match &requests[..] {
        [ClientRequest::Sampling(s)] => {
            assert_eq!(s.max_tokens, 100);
            assert_eq!(s.messages.len(), 1);
            assert_eq!(s.messages[0].role, Role::User);
            assert_eq!(s.messages[0].content, Content::text("Test prompt for sampling"));
        }
        other => panic!("unexpected requests {other:?}"),
    }
}

#[tokio::test]
async fn sampling_tool_rejects_missing_prompt() {
    let peer = TestPeer::capable();
    let err = module().call(&legacy(&peer), "test_sampling", json!({})).await.unwrap_err();
    assert!(matches!(&err, ToolError::InvalidArguments(m) if m.contains("prompt")), "{err:?}");
    assert!(peer.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn legacy_elicitation_sends_the_username_email_form() {
    let peer = TestPeer::capable();
    let out = module()
        .call(&legacy(&peer), "test_elicitation", json!({"message": "Please provide your information"}))
        .await
        .unwrap();
    let t = text(&out);
    assert!(t.starts_with("User response: action=accept, content={"), "{t}");
    assert!(t.contains(r#""username":"testuser""#) && t.contains(r#""email":"test@example.com""#), "{t}");
    let requests = peer.requests.lock().unwrap();
    let (message, schema) = elicitation_schema(&requests[0]);
    assert_eq!(message, "Please provide your information");
    assert_eq!(
        schema,
        json!({"type":"object","properties":{"username":{"type":"string","description":"User's response"},
            "email":{"type":"string","description":"User's email address"}},"required":["username","email"]})
    );
}

#[tokio::test]
async fn sep1034_defaults_schema_is_exact() {
    let peer = TestPeer::capable();
    let out = call(&legacy(&peer), "test_elicitation_sep1034_defaults").await.unwrap();
    assert!(text(&out).starts_with("Elicitation completed: action=accept, content="));
    let requests = peer.requests.lock().unwrap();
    let (message, schema) = elicitation_schema(&requests[0]);
    assert_eq!(message, "Please review and update the form fields with defaults");
    assert_eq!(
        schema,
        json!({"type":"object","properties":{
          "name":    {"type":"string","description":"User name","default":"John Doe"},
          "age":     {"type":"integer","description":"User age","default":30},
          "score":   {"type":"number","description":"User score","default":95.5},
          "status":  {"type":"string","description":"User status","enum":["active","inactive","pending"],"default":"active"},
          "verified":{"type":"boolean","description":"Verification status","default":true}
         },"required":[]})
    );
    // the integer default is a JSON integer, not 30.0
    assert_eq!(schema["properties"]["age"]["default"].as_u64(), Some(30));
    assert_eq!(serde_json::to_string(&schema["properties"]["age"]["default"]).unwrap(), "30");
}

#[tokio::test]
async fn sep1330_enum_schema_is_exact() {
    let peer = TestPeer::capable();
    call(&legacy(&peer), "test_elicitation_sep1330_enums").await.unwrap();
    let requests = peer.requests.lock().unwrap();
    let (message, schema) = elicitation_schema(&requests[0]);
    assert_eq!(message, "Please select options from the enum fields");
    assert_eq!(
        schema,
        json!({"type":"object","properties":{
         "untitledSingle":{"type":"string","description":"Select one option","enum":["option1","option2","option3"]},
         "titledSingle":{"type":"string","description":"Select one option with titles",
             "oneOf":[{"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},{"const":"value3","title":"Third Option"}]},
         "legacyEnum":{"type":"string","description":"Select one option (legacy)","enum":["opt1","opt2","opt3"],
             "enumNames":["Option One","Option Two","Option Three"]},
         "untitledMulti":{"type":"array","description":"Select multiple options","minItems":1,"maxItems":3,
             "items":{"type":"string","enum":["option1","option2","option3"]}},
         "titledMulti":{"type":"array","description":"Select multiple options with titles","minItems":1,"maxItems":3,
             "items":{"anyOf":[{"const":"value1","title":"First Choice"},{"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}
        },"required":[]})
    );
}

// ---------------------------------------------------------------------------
// stateless-era rules

#[tokio::test]
async fn missing_capability_propagates_the_capability_error() {
    let err = call(&CallContext::detached("r"), "test_missing_capability").await.unwrap_err();
    assert!(matches!(err, ToolError::ClientCapability("sampling")), "{err:?}");
    // with the capability it asks instead
    let reqs = input_required(call(&stateless(&TestPeer::capable()), "test_missing_capability").await);
    assert!(matches!(reqs[..], [(_, ClientRequest::Sampling(_))]));
}

#[tokio::test]
async fn streaming_elicitation_returns_an_input_request_without_sending_one() {
    let peer = TestPeer::with(ClientCapabilities { elicitation: true, ..Default::default() });
    let reqs = input_required(call(&stateless(&peer), "test_streaming_elicitation").await);
    assert_eq!(reqs[0].0, "confirm");
    assert!(matches!(reqs[0].1, ClientRequest::Elicitation(_)));
    assert!(peer.requests.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// input-required results (MRTR)

#[tokio::test]
async fn basic_elicitation_asks_user_name_then_greets() {
    let peer = TestPeer::capable();
    let reqs = input_required(call(&stateless(&peer), "test_input_required_result_elicitation").await);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, "user_name");
    let (message, schema) = elicitation_schema(&reqs[0].1);
    assert_eq!(message, "What is your name?");
    assert_eq!(schema, json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}));

    let answered = stateless(&peer)
        .with_inputs(inputs(vec![("user_name", ClientResponse::Elicitation(accept(json!({"name": "Alice"}))))]));
    let out = call(&answered, "test_input_required_result_elicitation").await.unwrap();
    assert_eq!(text(&out), "Hello, Alice!");
    assert!(peer.requests.lock().unwrap().is_empty(), "the stateless era never sends requests");
}

#[tokio::test]
async fn wrong_keys_are_ignored_and_the_question_is_asked_again() {
    let peer = TestPeer::capable();
    let wrong = stateless(&peer)
        .with_inputs(inputs(vec![("wrong_key", ClientResponse::Elicitation(accept(json!({"data": "wrong"}))))]));
    let reqs = input_required(call(&wrong, "test_input_required_result_elicitation").await);
    assert_eq!(reqs[0].0, "user_name");

    let extra = stateless(&peer).with_inputs(inputs(vec![
        ("user_name", ClientResponse::Elicitation(accept(json!({"name": "Alice"})))),
        ("unknown_extra_key", ClientResponse::Elicitation(accept(json!({"x": 1})))),
    ]));
    assert_eq!(text(&call(&extra, "test_input_required_result_elicitation").await.unwrap()), "Hello, Alice!");
}

#[tokio::test]
async fn malformed_answers_are_protocol_errors_not_results() {
    let peer = TestPeer::capable();
    for bad in [
        ClientResponse::Elicitation(accept(json!({"name": 12345}))),
        ClientResponse::Elicitation(accept(json!({}))),
        ClientResponse::Sampling(sampled("not a form")),
    ] {
        let cx = stateless(&peer).with_inputs(inputs(vec![("user_name", bad)]));
        let err = call(&cx, "test_input_required_result_elicitation").await.unwrap_err();
        assert!(matches!(err, ToolError::InvalidRequest(_)), "{err:?}");
        assert!(!err.is_tool_result());
    }
    // a declined form completes without a name
    let declined = ElicitResult { action: ElicitAction::Decline, content: None };
    let cx = stateless(&peer).with_inputs(inputs(vec![("user_name", ClientResponse::Elicitation(declined))]));
    let out = call(&cx, "test_input_required_result_elicitation").await.unwrap();
    assert_eq!(text(&out), "The user did not give a name.");
}

#[tokio::test]
async fn basic_sampling_and_roots() {
    let peer = TestPeer::capable();
    let reqs = input_required(call(&stateless(&peer), "test_input_required_result_sampling").await);
    assert_eq!(reqs[0].0, "capital_question");
    match &reqs[0].1 {
        ClientRequest::Sampling(s) => {
            assert_eq!(s.max_tokens, 100);
            assert_eq!(s.messages[0].content, Content::text("What is the capital of France?"));
        }
        other => panic!("{other:?}"),
    }
    let cx = stateless(&peer).with_inputs(inputs(vec![(
        "capital_question",
        ClientResponse::Sampling(sampled("The capital of France is Paris.")),
    )]));
    assert_eq!(
        text(&call(&cx, "test_input_required_result_sampling").await.unwrap()),
        "The capital of France is Paris."
    );

    let reqs = input_required(call(&stateless(&peer), "test_input_required_result_list_roots").await);
    assert_eq!(reqs, vec![("client_roots".to_owned(), ClientRequest::ListRoots)]);
    let cx = stateless(&peer).with_inputs(inputs(vec![(
        "client_roots",
        ClientResponse::Roots(vec![("file:///test/root".into(), Some("Test Root".into()))]),
    )]));
    let out = call(&cx, "test_input_required_result_list_roots").await.unwrap();
    assert_eq!(text(&out), "Client roots: file:///test/root (Test Root)");
}

#[tokio::test]
async fn request_state_and_tampered_state_tools_ask_confirm() {
    let peer = TestPeer::capable();
    for tool in ["test_input_required_result_request_state", "test_input_required_result_tampered_state"] {
        let reqs = input_required(call(&stateless(&peer), tool).await);
        assert_eq!(reqs[0].0, "confirm", "{tool}");
        let (message, schema) = elicitation_schema(&reqs[0].1);
        assert_eq!(message, "Please confirm");
        assert_eq!(schema, json!({"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}));
    }
    let cx = stateless(&peer)
        .with_inputs(inputs(vec![("confirm", ClientResponse::Elicitation(accept(json!({"ok": true}))))]));
    let out = call(&cx, "test_input_required_result_request_state").await.unwrap();
    assert!(text(&out).contains("state-ok"), "{}", text(&out));
    assert!(text(&out).contains("confirmed=true"));
    let out = call(&cx, "test_input_required_result_tampered_state").await.unwrap();
    assert!(text(&out).contains("confirmed=true"));
}

#[tokio::test]
async fn multiple_inputs_are_asked_together() {
    let peer = TestPeer::capable();
    let reqs = input_required(call(&stateless(&peer), "test_input_required_result_multiple_inputs").await);
    let keys: Vec<&str> = reqs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["user_name", "greeting", "client_roots"]);
    assert!(matches!(reqs[0].1, ClientRequest::Elicitation(_)));
    match &reqs[1].1 {
        ClientRequest::Sampling(s) => {
            assert_eq!(s.max_tokens, 50);
            assert_eq!(s.messages[0].content, Content::text("Generate a greeting"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reqs[2].1, ClientRequest::ListRoots);

    // a partial answer re-asks only what is missing
    let partial = stateless(&peer)
        .with_inputs(inputs(vec![("user_name", ClientResponse::Elicitation(accept(json!({"name": "Alice"}))))]));
    let reqs = input_required(call(&partial, "test_input_required_result_multiple_inputs").await);
    let keys: Vec<&str> = reqs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["greeting", "client_roots"]);

    let all = stateless(&peer).with_inputs(inputs(vec![
        ("user_name", ClientResponse::Elicitation(accept(json!({"name": "Alice"})))),
        ("greeting", ClientResponse::Sampling(sampled("Hello there!"))),
        ("client_roots", ClientResponse::Roots(vec![("file:///test/root".into(), Some("Test Root".into()))])),
    ]));
    let out = call(&all, "test_input_required_result_multiple_inputs").await.unwrap();
    assert_eq!(text(&out), "Name: Alice; greeting: Hello there!; roots: file:///test/root (Test Root)");
}

#[tokio::test]
async fn multi_round_asks_step1_then_step2_then_completes() {
    let peer = TestPeer::capable();
    let tool = "test_input_required_result_multi_round";
    let r1 = input_required(call(&stateless(&peer), tool).await);
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0].0, "step1");
    assert_eq!(elicitation_schema(&r1[0].1).0, "Step 1: What is your name?");

    let step1 = ("step1", ClientResponse::Elicitation(accept(json!({"name": "Alice"}))));
    let r2 = input_required(call(&stateless(&peer).with_inputs(inputs(vec![step1.clone()])), tool).await);
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].0, "step2");
    let (message, schema) = elicitation_schema(&r2[0].1);
    assert_eq!(message, "Step 2: What is your favorite color?");
    assert_eq!(schema, json!({"type":"object","properties":{"color":{"type":"string"}},"required":["color"]}));

    let step2 = ("step2", ClientResponse::Elicitation(accept(json!({"color": "blue"}))));
    let out = call(&stateless(&peer).with_inputs(inputs(vec![step1, step2])), tool).await.unwrap();
    assert_eq!(text(&out), "Hello, Alice! Your favorite color is blue.");
}

#[tokio::test]
async fn capabilities_tool_asks_only_for_declared_capabilities() {
    let tool = "test_input_required_result_capabilities";
    let sampling_only = TestPeer::with(ClientCapabilities { sampling: true, ..Default::default() });
    let reqs = input_required(call(&stateless(&sampling_only), tool).await);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, "capital_question");
    assert!(matches!(reqs[0].1, ClientRequest::Sampling(_)));

    let keys = |peer| async move {
        input_required(call(&stateless(&peer), tool).await).into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    assert_eq!(keys(TestPeer::capable()).await, ["capital_question", "user_name", "client_roots"]);
    let elicit_roots = TestPeer::with(ClientCapabilities { elicitation: true, roots: true, ..Default::default() });
    assert_eq!(keys(elicit_roots).await, ["user_name", "client_roots"]);

    let out = call(&CallContext::detached("r"), tool).await.unwrap();
    assert!(text(&out).contains("no sampling, elicitation or roots"));

    let cx = stateless(&sampling_only).with_inputs(inputs(vec![(
        "capital_question",
        ClientResponse::Sampling(sampled("The capital of France is Paris.")),
    )]));
    assert_eq!(text(&call(&cx, tool).await.unwrap()), "Answered: capital_question");
}

// ---------------------------------------------------------------------------
// resources

#[test]
fn resources_and_template_are_listed() {
    let m = module();
    let resources = m.resources();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["test://static-text", "test://static-binary", "test://watched-resource"]);
    assert!(resources.iter().all(|r| !r.name.is_empty() && r.description.is_some() && r.mime_type.is_some()));

    let templates = m.resource_templates();
    assert_eq!(templates.len(), 1);
    let t = &templates[0];
    assert_eq!(t.uri_template, "test://template/{id}/data");
    assert_eq!(t.name, "template");
    assert_eq!(t.description.as_deref(), Some("A resource template with parameter substitution"));
    assert_eq!(t.mime_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn resources_read_with_reference_contents() {
    let m = module();
    let cx = CallContext::detached("r");
    assert_eq!(
        m.read(&cx, "test://static-text").await.unwrap().contents,
        vec![ResourceContent::Text {
            uri: "test://static-text".into(),
            mime_type: Some("text/plain".into()),
            text: "This is the content of the static text resource.".into(),
        }]
    );
    assert_eq!(
        m.read(&cx, "test://static-binary").await.unwrap().contents,
        vec![ResourceContent::Blob {
            uri: "test://static-binary".into(),
            mime_type: Some("image/png".into()),
            blob: PNG_B64.into(),
        }]
    );
    assert_eq!(
        m.read(&cx, "test://watched-resource").await.unwrap().contents,
        vec![ResourceContent::Text {
            uri: "test://watched-resource".into(),
            mime_type: Some("text/plain".into()),
            text: "Watched resource content".into(),
        }]
    );
    // every listed resource is readable
    for r in m.resources() {
        assert!(m.read(&cx, &r.uri).await.is_ok(), "{}", r.uri);
    }
}

#[tokio::test]
async fn template_reads_substitute_the_id() {
    let m = module();
    let cx = CallContext::detached("r");
    let contents = m.read(&cx, "test://template/123/data").await.unwrap().contents;
    assert_eq!(
        contents,
        vec![ResourceContent::Text {
            uri: "test://template/123/data".into(),
            mime_type: Some("application/json".into()),
            text: r#"{"id":"123","templateTest":true,"data":"Data for ID: 123"}"#.into(),
        }]
    );
    // ids are JSON-escaped
    let contents = m.read(&cx, r#"test://template/a"b/data"#).await.unwrap().contents;
    let ResourceContent::Text { text, .. } = &contents[0] else { panic!("text expected") };
    assert_eq!(serde_json::from_str::<Value>(text).unwrap()["id"], r#"a"b"#);
}

#[tokio::test]
async fn unknown_resources_are_not_found() {
    let m = module();
    let cx = CallContext::detached("r");
    for uri in [
        "test://nonexistent-resource-for-conformance-testing",
        "test://template//data",
        "test://template/1/2/data",
        "test://static-text/extra",
    ] {
        match m.read(&cx, uri).await {
            Err(ToolError::NotFound { kind: "resource", name }) => assert_eq!(name, uri),
            other => panic!("{uri}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// prompts

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn prompts_are_listed_with_descriptions_and_arguments() {
    let prompts = module().prompts();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
            "test_input_required_result_prompt"
        ]
    );
    assert!(prompts.iter().all(|p| p.description.as_deref().is_some_and(|d| !d.is_empty())));
    let with_args = &prompts[1];
    let a: Vec<(&str, Option<&str>, bool)> =
        with_args.arguments.iter().map(|a| (a.name.as_str(), a.description.as_deref(), a.required)).collect();
    assert_eq!(a, [("arg1", Some("First test argument"), true), ("arg2", Some("Second test argument"), true)]);
    assert_eq!(prompts[2].arguments[0].name, "resourceUri");
    assert!(prompts[2].arguments[0].required);
}

#[tokio::test]
async fn prompts_render_the_reference_messages() {
    let m = module();
    let cx = CallContext::detached("r");

    let p = m.prompt(&cx, "test_simple_prompt", &BTreeMap::new()).await.unwrap();
    assert_eq!(p.messages.len(), 1);
    assert_eq!(p.messages[0].role, Role::User);
    assert_eq!(p.messages[0].content, Content::text("This is a simple prompt for testing."));

    let p = m
        .prompt(&cx, "test_prompt_with_arguments", &args(&[("arg1", "testValue1"), ("arg2", "testValue2")]))
        .await
        .unwrap();
    assert_eq!(p.messages[0].content, Content::text("Prompt with arguments: arg1='testValue1', arg2='testValue2'"));
    let err = m.prompt(&cx, "test_prompt_with_arguments", &args(&[("arg1", "x")])).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid arguments: missing required argument `arg2`");

    let p = m
        .prompt(&cx, "test_prompt_with_embedded_resource", &args(&[("resourceUri", "test://example-resource")]))
        .await
        .unwrap();
    assert_eq!(
        p.messages[0].content,
        Content::Resource(ResourceContent::Text {
            uri: "test://example-resource".into(),
            mime_type: Some("text/plain".into()),
            text: "Embedded resource content for testing.".into(),
        })
    );
    assert_eq!(p.messages[1].content, Content::text("Please process the embedded resource above."));

    let p = m.prompt(&cx, "test_prompt_with_image", &BTreeMap::new()).await.unwrap();
    assert_eq!(p.messages[0].content, Content::Image { data: PNG_B64.into(), mime_type: "image/png".into() });
    assert_eq!(p.messages[1].content, Content::text("Please analyze the image above."));

    let err = m.prompt(&cx, "no_such_prompt", &BTreeMap::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "prompt not found: no_such_prompt");
}

#[tokio::test]
async fn input_required_prompt_asks_user_context() {
    let m = module();
    let peer = TestPeer::capable();
    let err = m.prompt(&stateless(&peer), "test_input_required_result_prompt", &BTreeMap::new()).await.unwrap_err();
    let ToolError::InputRequired(reqs) = err else { panic!("expected input required, got {err:?}") };
    assert_eq!(reqs[0].key, "user_context");
    let (message, schema) = elicitation_schema(&reqs[0].request);
    assert_eq!(message, "What context should the prompt use?");
    assert_eq!(schema, json!({"type":"object","properties":{"context":{"type":"string"}},"required":["context"]}));

    let cx = stateless(&peer).with_inputs(inputs(vec![(
        "user_context",
        ClientResponse::Elicitation(accept(json!({"context": "test context"}))),
    )]));
    let p = m.prompt(&cx, "test_input_required_result_prompt", &BTreeMap::new()).await.unwrap();
    assert!(!p.messages.is_empty());
    assert!(p.messages[0].content.as_text().unwrap().contains("test context"));
}

// ---------------------------------------------------------------------------
// completion

#[tokio::test]
async fn completion_filters_candidates_by_prefix() {
    let m = module();
    let cx = CallContext::detached("r");
    let prompt = CompletionRef::Prompt("test_prompt_with_arguments".into());
    let c = m.complete(&cx, &prompt, "arg1", "test", &BTreeMap::new()).await.unwrap();
    assert_eq!(c.values, ["test", "testing", "tested", "testValue1"]);
    assert_eq!(c.total, Some(4));
    assert!(!c.has_more);
    let c = m.complete(&cx, &prompt, "arg1", "", &BTreeMap::new()).await.unwrap();
    assert_eq!(c.values.len(), 5);
    let c = m.complete(&cx, &prompt, "arg2", "val", &BTreeMap::new()).await.unwrap();
    assert_eq!(c.values, ["value2"]);
    let c = m.complete(&cx, &prompt, "nope", "", &BTreeMap::new()).await.unwrap();
    assert!(c.values.is_empty());

    let template = CompletionRef::Resource("test://template/{id}/data".into());
    let c = m.complete(&cx, &template, "id", "1", &BTreeMap::new()).await.unwrap();
    assert_eq!(c.values, ["123"]);
    let other = CompletionRef::Prompt("test_simple_prompt".into());
    assert!(m.complete(&cx, &other, "arg1", "", &BTreeMap::new()).await.unwrap().values.is_empty());
}
