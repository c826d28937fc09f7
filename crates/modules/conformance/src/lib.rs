//! plexus-conformance: the fixtures of the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`), as a Plexus module.
//!
//! The suite calls tools, reads resources and gets prompts by fixed names and
//! checks the shapes (and some exact values) of what comes back. This module
//! exposes every fixture both protocol eras need:
//!
//! - content tools (`test_simple_text`, `test_image_content`, ...), logging,
//!   progress and error tools;
//! - client round trips (`test_sampling`, `test_elicitation`, the SEP-1034 and
//!   SEP-1330 elicitation schemas) that the server turns into real
//!   server-to-client requests in the legacy era;
//! - the `test_input_required_result_*` tools of the stateless era (MRTR),
//!   which ask under fixed keys and complete once the answers are present;
//! - diagnostic tools for the stateless-era rules (`test_missing_capability`,
//!   `test_streaming_elicitation`, `test_logging_tool`, list-change triggers);
//! - static resources, one resource template and the test prompts.
//!
//! Tool input schemas are hand-written and served verbatim (the suite compares
//! `json_schema_2020_12_tool`'s schema key by key). There is no engine here:
//! the fixtures are the whole module.

use std::collections::BTreeMap;
use std::sync::Arc;

use plexus_core::module::{Completion, CompletionRef};
use plexus_core::{
    CallContext, Module, PromptResult, PromptSpec, ResourceContents, ResourceSpec, ResourceTemplateSpec, ToolError,
    ToolOutput, ToolSpec, Toolbox,
};
use serde_json::Value;

mod catalog;
mod tools;

/// The module's name, as listed and audited.
pub const NAME: &str = "conformance";

/// A 1x1 red PNG, base64 (the TS everything-server's constant).
pub const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, base64 (the TS everything-server's constant).
pub const WAV_B64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// The conformance fixtures: tools, resources, a resource template and prompts.
pub struct Conformance {
    toolbox: Toolbox,
}

impl std::fmt::Debug for Conformance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conformance").field("toolbox", &self.toolbox).finish()
    }
}

impl Conformance {
    /// Build the module with every fixture registered.
    pub fn new() -> Self {
        Self { toolbox: tools::toolbox() }
    }
}

impl Default for Conformance {
    fn default() -> Self {
        Self::new()
    }
}

/// The conformance module, ready to hand to the registry.
pub fn module() -> Arc<dyn Module> {
    Arc::new(Conformance::new())
}

#[async_trait::async_trait]
impl Module for Conformance {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.toolbox.specs()
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        catalog::resources()
    }

    fn resource_templates(&self) -> Vec<ResourceTemplateSpec> {
        catalog::resource_templates()
    }

    fn prompts(&self) -> Vec<PromptSpec> {
        catalog::prompts()
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        self.toolbox.call(cx, tool, args).await
    }

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<ResourceContents, ToolError> {
        catalog::read(uri)
    }

    async fn prompt(
        &self,
        cx: &CallContext,
        name: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<PromptResult, ToolError> {
        catalog::prompt(cx, name, args).await
    }

    async fn complete(
        &self,
        _cx: &CallContext,
        reference: &CompletionRef,
        argument: &str,
        prefix: &str,
        _context: &BTreeMap<String, String>,
    ) -> Result<Completion, ToolError> {
        Ok(catalog::complete(reference, argument, prefix))
    }
}
