//! Descriptions of what a module offers: tools, resources, templates, prompts.

use std::sync::Arc;

use serde_json::{Map, Value};

/// A JSON object (a JSON Schema, for example).
pub type JsonObject = Map<String, Value>;

/// Hints about a tool's behaviour, as MCP defines them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolAnnotations {
    pub title: Option<String>,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

impl ToolAnnotations {
    pub fn is_empty(&self) -> bool {
        *self == ToolAnnotations::default()
    }
}

/// How sensitive the data a tool touches is; drives audit detail and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataClass {
    #[default]
    Internal,
    Public,
    Confidential,
    /// Protected health information.
    Phi,
    Financial,
}

/// One tool as listed by `tools/list`.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// JSON Schema (2020-12) of the arguments object.
    pub input_schema: Arc<JsonObject>,
    /// JSON Schema of `structuredContent`, when the tool returns one.
    pub output_schema: Option<Arc<JsonObject>>,
    pub annotations: ToolAnnotations,
    pub data_class: DataClass,
    /// Free-form `_meta` and icons are left to the server; modules name the
    /// module that owns the tool.
    pub module: &'static str,
}

/// A static resource.
#[derive(Debug, Clone)]
pub struct ResourceSpec {
    pub uri: String,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mime_type: Option<String>,
    pub size: Option<u64>,
    pub module: &'static str,
}

impl ResourceSpec {
    pub fn new(uri: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            name: name.into(),
            title: None,
            description: None,
            mime_type: None,
            size: None,
            module: "",
        }
    }

    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    pub fn mime_type(mut self, m: impl Into<String>) -> Self {
        self.mime_type = Some(m.into());
        self
    }

    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = Some(t.into());
        self
    }
}

/// A family of resources named by an RFC 6570 URI template.
#[derive(Debug, Clone)]
pub struct ResourceTemplateSpec {
    pub uri_template: String,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mime_type: Option<String>,
    pub module: &'static str,
}

impl ResourceTemplateSpec {
    pub fn new(uri_template: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uri_template: uri_template.into(),
            name: name.into(),
            title: None,
            description: None,
            mime_type: None,
            module: "",
        }
    }

    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    pub fn mime_type(mut self, m: impl Into<String>) -> Self {
        self.mime_type = Some(m.into());
        self
    }
}

/// One argument of a prompt.
#[derive(Debug, Clone)]
pub struct PromptArgument {
    pub name: String,
    pub description: Option<String>,
    pub required: bool,
}

/// A prompt as listed by `prompts/list`.
#[derive(Debug, Clone)]
pub struct PromptSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub arguments: Vec<PromptArgument>,
    pub module: &'static str,
}

impl PromptSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), title: None, description: None, arguments: Vec::new(), module: "" }
    }

    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    pub fn argument(mut self, name: impl Into<String>, description: impl Into<String>, required: bool) -> Self {
        self.arguments.push(PromptArgument { name: name.into(), description: Some(description.into()), required });
        self
    }
}
