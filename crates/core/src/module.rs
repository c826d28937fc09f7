//! The module API: what a domain module implements, and typed tools on top.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::content::{PromptResult, ResourceContents, ToolOutput};
use crate::context::CallContext;
use crate::error::ToolError;
use crate::spec::{
    DataClass, JsonObject, PromptSpec, ResourceSpec, ResourceTemplateSpec, RouteSpec, ToolAnnotations, ToolSpec,
};

/// What a completion request refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionRef {
    Prompt(String),
    /// A resource template, by its URI template.
    Resource(String),
}

/// Candidate values for a completion request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    pub values: Vec<String>,
    pub total: Option<u32>,
    pub has_more: bool,
}

/// A domain module: registers specs and handles calls.
///
/// Implementations hold their engine and a [`Toolbox`]; `call` is usually
/// `self.toolbox.call(cx, tool, args)`.
#[async_trait::async_trait]
pub trait Module: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    fn tools(&self) -> Vec<ToolSpec> {
        Vec::new()
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        Vec::new()
    }

    fn resource_templates(&self) -> Vec<ResourceTemplateSpec> {
        Vec::new()
    }

    /// Resources that come and go while the server runs (documents in a
    /// watched directory), listed after the static ones on every
    /// `resources/list`. A module that changes them publishes
    /// `ResourceListChanged`; they are read through a template's URI.
    fn listed_resources(&self) -> Vec<ResourceSpec> {
        Vec::new()
    }

    /// REST routes served beside MCP (see [`RouteSpec`]).
    fn routes(&self) -> Vec<RouteSpec> {
        Vec::new()
    }

    fn prompts(&self) -> Vec<PromptSpec> {
        Vec::new()
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError>;

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<ResourceContents, ToolError> {
        Err(ToolError::unknown_resource(uri))
    }

    async fn prompt(
        &self,
        _cx: &CallContext,
        name: &str,
        _args: &BTreeMap<String, String>,
    ) -> Result<PromptResult, ToolError> {
        Err(ToolError::unknown_prompt(name))
    }

    /// Complete an argument value. `context` holds arguments already chosen.
    async fn complete(
        &self,
        _cx: &CallContext,
        _reference: &CompletionRef,
        _argument: &str,
        _prefix: &str,
        _context: &BTreeMap<String, String>,
    ) -> Result<Completion, ToolError> {
        Ok(Completion::default())
    }
}

type Handler = Arc<dyn Fn(CallContext, Value) -> BoxFuture<'static, Result<ToolOutput, ToolError>> + Send + Sync>;

/// Name, description and hints of a tool; the schemas come from the types.
#[derive(Debug, Clone)]
pub struct ToolDef {
    name: String,
    title: Option<String>,
    description: Option<String>,
    annotations: ToolAnnotations,
    data_class: DataClass,
}

impl ToolDef {
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            title: None,
            description: Some(description.into()),
            annotations: ToolAnnotations::default(),
            data_class: DataClass::default(),
        }
    }

    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = Some(t.into());
        self
    }

    /// The tool does not change anything.
    pub fn read_only(mut self) -> Self {
        self.annotations.read_only = Some(true);
        self.annotations.destructive = Some(false);
        self
    }

    pub fn destructive(mut self, yes: bool) -> Self {
        self.annotations.destructive = Some(yes);
        self
    }

    pub fn idempotent(mut self) -> Self {
        self.annotations.idempotent = Some(true);
        self
    }

    pub fn open_world(mut self, yes: bool) -> Self {
        self.annotations.open_world = Some(yes);
        self
    }

    pub fn data_class(mut self, c: DataClass) -> Self {
        self.data_class = c;
        self
    }

    fn into_spec(self, module: &'static str, input: JsonObject, output: Option<JsonObject>) -> ToolSpec {
        ToolSpec {
            name: self.name,
            title: self.title,
            description: self.description,
            input_schema: Arc::new(input),
            output_schema: output.map(Arc::new),
            annotations: self.annotations,
            data_class: self.data_class,
            module,
        }
    }
}

/// The JSON Schema (2020-12) of a type, as a JSON object.
pub fn schema_for<T: JsonSchema>() -> JsonObject {
    let schema = schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    match serde_json::to_value(schema) {
        Ok(Value::Object(mut m)) => {
            // MCP requires an object schema for tool arguments; unit-like
            // argument types derive `true` or a schema without a type.
            if !m.contains_key("type") {
                m.insert("type".into(), Value::String("object".into()));
            }
            m
        }
        _ => {
            let mut m = JsonObject::new();
            m.insert("type".into(), Value::String("object".into()));
            m
        }
    }
}

/// The tools of one module: typed handlers with derived schemas.
pub struct Toolbox {
    module: &'static str,
    specs: Vec<ToolSpec>,
    handlers: HashMap<String, Handler>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox").field("module", &self.module).field("tools", &self.specs.len()).finish()
    }
}

impl Toolbox {
    pub fn new(module: &'static str) -> Self {
        Self { module, specs: Vec::new(), handlers: HashMap::new() }
    }

    /// A typed tool: arguments are deserialized from `A`, the output is
    /// returned as `structuredContent` plus its JSON text rendering, and both
    /// schemas are derived from the types.
    pub fn typed<A, O, F, Fut>(self, def: ToolDef, f: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        self.structured_tool(def, f, |out: O| serde_json::to_value(&out))
    }

    /// A typed registration: `into` turns the output into
    /// `structuredContent`.
    fn structured_tool<A, O, F, Fut>(mut self, def: ToolDef, f: F, into: fn(O) -> serde_json::Result<Value>) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        O: JsonSchema + 'static,
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let spec = def.into_spec(self.module, schema_for::<A>(), Some(schema_for::<O>()));
        let f = Arc::new(f);
        let handler: Handler = Arc::new(move |cx, args| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let args: A = decode_args(args)?;
                let value = into(f(cx, args).await?).map_err(ToolError::internal)?;
                Ok(ToolOutput::structured(value))
            })
        });
        self.insert(spec, handler);
        self
    }

    /// A tool with a hand-written input schema that builds its own output.
    pub fn raw<F, Fut>(mut self, def: ToolDef, input_schema: JsonObject, f: F) -> Self
    where
        F: Fn(CallContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
    {
        let spec = def.into_spec(self.module, input_schema, None);
        let handler: Handler = Arc::new(move |cx, args| Box::pin(f(cx, args)));
        self.insert(spec, handler);
        self
    }

    /// A tool whose arguments are typed but whose output is built by hand
    /// (mixed content: images, resources, ...).
    pub fn typed_args<A, F, Fut>(mut self, def: ToolDef, f: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
    {
        let spec = def.into_spec(self.module, schema_for::<A>(), None);
        let f = Arc::new(f);
        let handler: Handler = Arc::new(move |cx, args| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let args: A = decode_args(args)?;
                f(cx, args).await
            })
        });
        self.insert(spec, handler);
        self
    }

    /// A typed tool that writes its own output's JSON text (see
    /// [`ToolOutput::json_text`]): the output schema is derived from `O`,
    /// the handler returns the text, written from parts it already had as
    /// text (stored documents), so no value tree is built for the answer.
    pub fn typed_rendered<A, O, F, Fut>(mut self, def: ToolDef, f: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        O: JsonSchema + 'static,
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, ToolError>> + Send + 'static,
    {
        let spec = def.into_spec(self.module, schema_for::<A>(), Some(schema_for::<O>()));
        let f = Arc::new(f);
        let handler: Handler = Arc::new(move |cx, args| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let args: A = decode_args(args)?;
                Ok(ToolOutput::json_text(f(cx, args).await?))
            })
        });
        self.insert(spec, handler);
        self
    }

    fn insert(&mut self, spec: ToolSpec, handler: Handler) {
        assert!(
            !self.handlers.contains_key(&spec.name),
            "tool `{}` registered twice in module `{}`",
            spec.name,
            self.module
        );
        self.handlers.insert(spec.name.clone(), handler);
        self.specs.push(spec);
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    pub async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        match self.handlers.get(tool) {
            Some(h) => h(cx.clone(), args).await,
            None => Err(ToolError::unknown_tool(tool)),
        }
    }
}

/// Decode tool arguments, turning serde's message into a precise error.
pub fn decode_args<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
    let args = if args.is_null() { Value::Object(JsonObject::new()) } else { args };
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    struct AddArgs {
        /// First addend.
        a: i64,
        b: i64,
    }

    #[derive(Serialize, JsonSchema)]
    struct Sum {
        sum: i64,
    }

    fn toolbox() -> Toolbox {
        Toolbox::new("math").typed(ToolDef::new("add", "add two numbers").read_only(), |_cx, a: AddArgs| async move {
            Ok(Sum { sum: a.a + a.b })
        })
    }

    #[tokio::test]
    async fn typed_tool_derives_schemas_and_structured_output() {
        let tb = toolbox();
        let spec = &tb.specs()[0];
        assert_eq!(spec.input_schema["type"], "object");
        assert_eq!(spec.input_schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(spec.input_schema["required"], serde_json::json!(["a", "b"]));
        assert_eq!(spec.input_schema["properties"]["a"]["description"], "First addend.");
        assert_eq!(spec.output_schema.as_ref().unwrap()["properties"]["sum"]["type"], "integer");
        assert_eq!(spec.annotations.read_only, Some(true));

        let cx = CallContext::detached("t");
        let out = tb.call(&cx, "add", serde_json::json!({"a": 2, "b": 40})).await.unwrap();
        assert_eq!(out.structured, Some(serde_json::json!({"sum": 42})));
        assert_eq!(out.content[0].as_text(), Some(r#"{"sum":42}"#));
    }

    #[tokio::test]
    async fn a_rendered_tool_gives_its_text_and_a_value_only_on_request() {
        let tb = Toolbox::new("math").typed_rendered::<_, Sum, _, _>(
            ToolDef::new("add_text", "add two numbers, answered as text"),
            |_cx, a: AddArgs| async move { Ok(format!(r#"{{"sum":{}}}"#, a.a + a.b)) },
        );
        assert_eq!(tb.specs()[0].output_schema.as_ref().unwrap()["properties"]["sum"]["type"], "integer");
        let out = tb.call(&CallContext::detached("t"), "add_text", serde_json::json!({"a": 2, "b": 40})).await.unwrap();
        assert_eq!(out.structured, None, "no value is built");
        assert_eq!(out.structured_text(), Some(r#"{"sum":42}"#));
        assert_eq!(out.structured_value().as_deref(), Some(&serde_json::json!({"sum": 42})));
        assert_eq!(out.into_structured(), Some(serde_json::json!({"sum": 42})));
        // A plain text answer has no structured content, in either form.
        let plain = ToolOutput::text("not json");
        assert_eq!((plain.structured_text(), plain.structured_value()), (None, None));
    }

    #[tokio::test]
    async fn bad_arguments_are_precise_errors() {
        let tb = toolbox();
        let cx = CallContext::detached("t");
        let err = tb.call(&cx, "add", serde_json::json!({"a": "x", "b": 1})).await.unwrap_err();
        assert!(matches!(&err, ToolError::InvalidArguments(m) if m.contains("invalid type")), "{err}");
        let err = tb.call(&cx, "nope", Value::Null).await.unwrap_err();
        assert_eq!(err.to_string(), "tool not found: nope");
    }
}
