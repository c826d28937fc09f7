//! Resources, the resource template, prompts and argument completion.

use std::collections::BTreeMap;

use plexus_core::content::{PromptMessage, ResourceContent};
use plexus_core::context::{ClientRequest, ElicitRequest, expect_elicitation};
use plexus_core::module::{Completion, CompletionRef};
use plexus_core::uri_template::UriTemplate;
use plexus_core::{
    CallContext, Content, PromptResult, PromptSpec, ResourceContents, ResourceSpec, ResourceTemplateSpec, ToolError,
};
use serde_json::{Value, json};

use crate::PNG_B64;
use crate::tools::{accepted_string, object, png};

const STATIC_TEXT_URI: &str = "test://static-text";
const STATIC_BINARY_URI: &str = "test://static-binary";
const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";

/// Static resources. The first one must be readable: the caching scenario
/// reads `resources[0]`.
pub(crate) fn resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec::new(STATIC_TEXT_URI, "Static Text Resource")
            .description("A static text resource for testing")
            .mime_type("text/plain"),
        ResourceSpec::new(STATIC_BINARY_URI, "Static Binary Resource")
            .description("A static binary resource (a 1x1 PNG) for testing")
            .mime_type("image/png"),
        ResourceSpec::new(WATCHED_URI, "Watched Resource")
            .description("A resource clients may subscribe to")
            .mime_type("text/plain"),
    ]
}

pub(crate) fn resource_templates() -> Vec<ResourceTemplateSpec> {
    vec![
        ResourceTemplateSpec::new(TEMPLATE, "template")
            .description("A resource template with parameter substitution")
            .mime_type("application/json"),
    ]
}

pub(crate) fn read(uri: &str) -> Result<ResourceContents, ToolError> {
    match uri {
        STATIC_TEXT_URI => {
            Ok(ResourceContents::text(uri, Some("text/plain"), "This is the content of the static text resource."))
        }
        STATIC_BINARY_URI => Ok(ResourceContents {
            contents: vec![ResourceContent::Blob {
                uri: uri.to_owned(),
                mime_type: Some("image/png".to_owned()),
                blob: PNG_B64.to_owned(),
            }],
        }),
        WATCHED_URI => Ok(ResourceContents::text(uri, Some("text/plain"), "Watched resource content")),
        _ => {
            let id = UriTemplate::parse(TEMPLATE)
                .and_then(|t| t.matches(uri))
                .and_then(|mut vars| vars.remove("id"))
                .ok_or_else(|| ToolError::unknown_resource(uri))?;
            Ok(ResourceContents::text(uri, Some("application/json"), template_text(&id)))
        }
    }
}

/// `{"id":"<id>","templateTest":true,"data":"Data for ID: <id>"}`, keys in
/// the reference order whatever the JSON map implementation.
fn template_text(id: &str) -> String {
    let quoted_id = Value::String(id.to_owned());
    let data = Value::String(format!("Data for ID: {id}"));
    format!(r#"{{"id":{quoted_id},"templateTest":true,"data":{data}}}"#)
}

pub(crate) fn prompts() -> Vec<PromptSpec> {
    vec![
        PromptSpec::new("test_simple_prompt").description("A simple prompt without arguments"),
        PromptSpec::new("test_prompt_with_arguments")
            .description("A prompt with required arguments")
            .argument("arg1", "First test argument", true)
            .argument("arg2", "Second test argument", true),
        PromptSpec::new("test_prompt_with_embedded_resource")
            .description("A prompt that includes an embedded resource")
            .argument("resourceUri", "URI of the resource to embed", true),
        PromptSpec::new("test_prompt_with_image").description("A prompt that includes an image"),
        PromptSpec::new("test_input_required_result_prompt")
            .description("A prompt that asks the user for context (key user_context) before it renders"),
    ]
}

fn required<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .map(String::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("missing required argument `{name}`")))
}

fn user_text(text: impl Into<String>) -> PromptMessage {
    PromptMessage::user(Content::text(text))
}

pub(crate) async fn prompt(
    cx: &CallContext,
    name: &str,
    args: &BTreeMap<String, String>,
) -> Result<PromptResult, ToolError> {
    let (description, messages) = match name {
        "test_simple_prompt" => {
            ("A simple prompt without arguments", vec![user_text("This is a simple prompt for testing.")])
        }
        "test_prompt_with_arguments" => {
            let arg1 = required(args, "arg1")?;
            let arg2 = required(args, "arg2")?;
            (
                "A prompt with required arguments",
                vec![user_text(format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))],
            )
        }
        "test_prompt_with_embedded_resource" => {
            let uri = required(args, "resourceUri")?;
            (
                "A prompt that includes an embedded resource",
                vec![
                    PromptMessage::user(Content::Resource(ResourceContent::Text {
                        uri: uri.to_owned(),
                        mime_type: Some("text/plain".to_owned()),
                        text: "Embedded resource content for testing.".to_owned(),
                    })),
                    user_text("Please process the embedded resource above."),
                ],
            )
        }
        "test_prompt_with_image" => (
            "A prompt that includes an image",
            vec![PromptMessage::user(png()), user_text("Please analyze the image above.")],
        ),
        "test_input_required_result_prompt" => {
            let question = ClientRequest::Elicitation(ElicitRequest {
                message: "What context should the prompt use?".to_owned(),
                requested_schema: object(json!({
                    "type": "object",
                    "properties": {"context": {"type": "string"}},
                    "required": ["context"]
                })),
            });
            let answer = expect_elicitation(cx.client().ask("user_context", question).await?)?;
            let text = match accepted_string(&answer, "user_context", "context")? {
                Some(context) => format!("Answer the question using this context: {context}"),
                None => "Answer the question without any extra context.".to_owned(),
            };
            ("A prompt rendered with the context the user gave", vec![user_text(text)])
        }
        _ => return Err(ToolError::unknown_prompt(name)),
    };
    Ok(PromptResult { description: Some(description.to_owned()), messages })
}

/// Candidate values for an argument, filtered by prefix.
pub(crate) fn complete(reference: &CompletionRef, argument: &str, prefix: &str) -> Completion {
    let candidates: &[&str] = match (reference, argument) {
        (CompletionRef::Prompt(p), "arg1") if p == "test_prompt_with_arguments" => {
            &["test", "testing", "tested", "testValue1", "value1"]
        }
        (CompletionRef::Prompt(p), "arg2") if p == "test_prompt_with_arguments" => {
            &["test", "testValue2", "value2", "example"]
        }
        (CompletionRef::Prompt(p), "resourceUri") if p == "test_prompt_with_embedded_resource" => {
            &["test://example-resource", STATIC_TEXT_URI, WATCHED_URI]
        }
        (CompletionRef::Resource(t), "id") if t == TEMPLATE => &["123", "456", "789"],
        _ => &[],
    };
    let values: Vec<String> = candidates.iter().filter(|c| c.starts_with(prefix)).map(|c| (*c).to_owned()).collect();
    Completion { total: u32::try_from(values.len()).ok(), values, has_more: false }
}
