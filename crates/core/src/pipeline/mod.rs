//! The call pipeline: one tower service type, and the layers every call passes.
//!
//! The service type is `Service<Call, Response = Reply, Error = ToolError>`.
//! The order of the layers is declared once, in the app's composition root;
//! the layers themselves are here, each a plain tower `Layer`:
//!
//! - [`TelemetryLayer`]: trace span, per-target latency histogram, slow-call warning
//! - [`AuditLayer`]: one durable, hash-chained record per call, denials included
//! - [`GateLayer`] with a [`Gate`]: authenticate, tenant, rate limit, authorize, validate
//! - [`TimeoutLayer`]: deadline and cancellation
//! - [`Router`]: dispatch to the module (the innermost service)

mod audit;
mod gates;
mod router;
mod telemetry;
mod timeout;

use std::collections::BTreeMap;

use serde_json::Value;

pub use self::audit::AuditLayer;
pub use self::gates::{Authenticate, Authorize, Gate, GateLayer, RateLimit, Tenancy, Validate};
pub use self::router::Router;
pub use self::telemetry::TelemetryLayer;
pub use self::timeout::TimeoutLayer;
use crate::content::{PromptResult, ResourceContents, ToolOutput};
use crate::context::CallContext;
use crate::error::ToolError;
use crate::module::{Completion, CompletionRef};
use crate::registry::Page;
use crate::spec::{PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolSpec};

/// What is being listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Resources,
    ResourceTemplates,
    Prompts,
}

/// What a call asks for.
#[derive(Debug, Clone)]
pub enum Operation {
    CallTool { name: String, args: Value },
    ReadResource { uri: String },
    GetPrompt { name: String, args: BTreeMap<String, String> },
    Complete { reference: CompletionRef, argument: String, value: String, context: BTreeMap<String, String> },
    List { kind: ListKind, cursor: Option<String> },
    Subscribe { uri: String },
}

/// The thing an operation touches, as policy and audit see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Tool(&'a str),
    Resource(&'a str),
    Prompt(&'a str),
    /// Listings are filtered item by item rather than allowed or denied.
    Listing(ListKind),
}

impl Operation {
    /// The MCP method name of the operation.
    pub fn method(&self) -> &'static str {
        match self {
            Operation::CallTool { .. } => "tools/call",
            Operation::ReadResource { .. } => "resources/read",
            Operation::GetPrompt { .. } => "prompts/get",
            Operation::Complete { .. } => "completion/complete",
            Operation::List { kind: ListKind::Tools, .. } => "tools/list",
            Operation::List { kind: ListKind::Resources, .. } => "resources/list",
            Operation::List { kind: ListKind::ResourceTemplates, .. } => "resources/templates/list",
            Operation::List { kind: ListKind::Prompts, .. } => "prompts/list",
            Operation::Subscribe { .. } => "resources/subscribe",
        }
    }

    pub fn target(&self) -> Target<'_> {
        match self {
            Operation::CallTool { name, .. } => Target::Tool(name),
            Operation::ReadResource { uri } | Operation::Subscribe { uri } => Target::Resource(uri),
            Operation::GetPrompt { name, .. } => Target::Prompt(name),
            Operation::Complete { reference: CompletionRef::Prompt(p), .. } => Target::Prompt(p),
            Operation::Complete { reference: CompletionRef::Resource(r), .. } => Target::Resource(r),
            Operation::List { kind, .. } => Target::Listing(*kind),
        }
    }

    /// The name a metric or audit record files the operation under.
    pub fn target_name(&self) -> &str {
        match self.target() {
            Target::Tool(n) | Target::Resource(n) | Target::Prompt(n) => n,
            Target::Listing(_) => self.method(),
        }
    }
}

/// One call through the pipeline.
#[derive(Debug, Clone)]
pub struct Call {
    pub cx: CallContext,
    pub op: Operation,
}

/// The answer to a [`Call`].
#[derive(Debug, Clone)]
pub enum Reply {
    Tool(ToolOutput),
    Resource(ResourceContents),
    Prompt(PromptResult),
    Completion(Completion),
    Tools(Page<ToolSpec>),
    Resources(Page<ResourceSpec>),
    ResourceTemplates(Page<ResourceTemplateSpec>),
    Prompts(Page<PromptSpec>),
    Done,
}

/// The built pipeline, as the server receives it.
pub type Pipeline = tower::util::BoxCloneSyncService<Call, Reply, ToolError>;
