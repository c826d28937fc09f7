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

/// The HTTP method of a module's REST route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteMethod {
    Get,
    Post,
    Put,
}

impl RouteMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Get => "GET",
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
        }
    }
}

/// A REST request to a module route, as the edge hands it over: already
/// authenticated (the credential travels in the call context, and the
/// credential headers are not included here), body capped.
#[derive(Debug, Clone, Default)]
pub struct RestRequest {
    /// Path parameters by name (`{key}` in the route's path).
    pub params: std::collections::BTreeMap<String, String>,
    /// Query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Header names in lowercase; `authorization`, `x-api-key` and `cookie`
    /// removed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RestRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A REST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RestResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// An answer with no body.
    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// Turns a REST request into a tool's arguments, or answers it at once
/// (a malformed request).
pub type RestArgs = Arc<dyn Fn(&RestRequest) -> Result<serde_json::Value, RestResponse> + Send + Sync>;
/// Turns the tool's outcome into the REST answer.
pub type RestReply = Arc<
    dyn Fn(&RestRequest, Result<crate::content::ToolOutput, crate::error::ToolError>) -> RestResponse + Send + Sync,
>;

/// A REST route of a module: a protocol some clients speak instead of MCP
/// (OFREP for OpenFeature SDKs, FHIR REST, xAPI). Each request becomes one
/// call of the module's tool `tool` through the whole pipeline, so it is
/// authenticated, rate limited, authorized, validated, audited and measured
/// like any MCP call; only the translation at both ends is the route's own.
#[derive(Clone)]
pub struct RouteSpec {
    pub method: RouteMethod,
    /// The path, with `{name}` parameters: `/ofrep/v1/evaluate/flags/{key}`.
    pub path: String,
    /// The tool each request calls (it must belong to the same module).
    pub tool: String,
    pub args: RestArgs,
    pub reply: RestReply,
    pub module: &'static str,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("tool", &self.tool)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}
