//! The registry: every module's specs merged, indexed and validated once.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::ToolError;
use crate::module::Module;
use crate::spec::{PromptSpec, ResourceSpec, ResourceTemplateSpec, RouteSpec, ToolSpec};
use crate::uri_template::UriTemplate;

/// A registry that cannot be built: two modules claim the same name, or a
/// schema does not compile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("{kind} `{name}` is registered by both `{first}` and `{second}`")]
    Duplicate { kind: &'static str, name: String, first: &'static str, second: &'static str },
    #[error("input schema of tool `{tool}` is not a valid JSON Schema: {message}")]
    BadSchema { tool: String, message: String },
    #[error("resource template `{0}` is not a valid URI template")]
    BadTemplate(String),
    #[error("route {method} {path} of `{module}` calls `{tool}`, which is not one of its tools")]
    RouteTool { method: &'static str, path: String, module: &'static str, tool: String },
}

struct ToolEntry {
    spec: Arc<ToolSpec>,
    module: usize,
    validator: jsonschema::Validator,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<Arc<T>>,
    pub next_cursor: Option<String>,
}

/// All modules' tools, resources and prompts, with their owners.
pub struct Registry {
    modules: Vec<Arc<dyn Module>>,
    tools: Vec<Arc<ToolSpec>>,
    tool_index: HashMap<String, ToolEntry>,
    resources: Vec<Arc<ResourceSpec>>,
    resource_index: HashMap<String, usize>,
    templates: Vec<Arc<ResourceTemplateSpec>>,
    template_matchers: Vec<(UriTemplate, usize)>,
    prompts: Vec<Arc<PromptSpec>>,
    prompt_index: HashMap<String, usize>,
    routes: Vec<Arc<RouteSpec>>,
    page_size: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("modules", &self.modules.iter().map(|m| m.name()).collect::<Vec<_>>())
            .field("tools", &self.tools.len())
            .field("resources", &self.resources.len())
            .field("prompts", &self.prompts.len())
            .finish()
    }
}

/// Default number of items in one page of a listing.
pub const DEFAULT_PAGE_SIZE: usize = 100;

impl Registry {
    /// Index every module's specs. Listing order is registration order:
    /// modules in the order given, items in the order each module lists them.
    pub fn new(modules: Vec<Arc<dyn Module>>) -> Result<Self, RegistryError> {
        let mut r = Registry {
            modules: Vec::new(),
            tools: Vec::new(),
            tool_index: HashMap::new(),
            resources: Vec::new(),
            resource_index: HashMap::new(),
            templates: Vec::new(),
            template_matchers: Vec::new(),
            prompts: Vec::new(),
            prompt_index: HashMap::new(),
            routes: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
        };
        for (mi, module) in modules.into_iter().enumerate() {
            let owner = module.name();
            for mut spec in module.tools() {
                spec.module = owner;
                if let Some(prev) = r.tool_index.get(&spec.name) {
                    return Err(RegistryError::Duplicate {
                        kind: "tool",
                        name: spec.name,
                        first: prev.spec.module,
                        second: owner,
                    });
                }
                let schema = Value::Object((*spec.input_schema).clone());
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&schema)
                    .map_err(|e| RegistryError::BadSchema { tool: spec.name.clone(), message: e.to_string() })?;
                let spec = Arc::new(spec);
                r.tools.push(Arc::clone(&spec));
                r.tool_index.insert(spec.name.clone(), ToolEntry { spec, module: mi, validator });
            }
            for mut spec in module.resources() {
                spec.module = owner;
                if let Some(&prev) = r.resource_index.get(&spec.uri) {
                    return Err(RegistryError::Duplicate {
                        kind: "resource",
                        name: spec.uri,
                        first: r.resources[prev].module,
                        second: owner,
                    });
                }
                r.resource_index.insert(spec.uri.clone(), r.resources.len());
                r.resources.push(Arc::new(spec));
            }
            for mut spec in module.resource_templates() {
                spec.module = owner;
                let t = UriTemplate::parse(&spec.uri_template)
                    .ok_or_else(|| RegistryError::BadTemplate(spec.uri_template.clone()))?;
                r.template_matchers.push((t, mi));
                r.templates.push(Arc::new(spec));
            }
            for mut spec in module.prompts() {
                spec.module = owner;
                if let Some(&prev) = r.prompt_index.get(&spec.name) {
                    return Err(RegistryError::Duplicate {
                        kind: "prompt",
                        name: spec.name,
                        first: r.prompts[prev].module,
                        second: owner,
                    });
                }
                r.prompt_index.insert(spec.name.clone(), r.prompts.len());
                r.prompts.push(Arc::new(spec));
            }
            for mut spec in module.routes() {
                spec.module = owner;
                if r.tool_index.get(&spec.tool).is_none_or(|e| e.spec.module != owner) {
                    return Err(RegistryError::RouteTool {
                        method: spec.method.as_str(),
                        path: spec.path,
                        module: owner,
                        tool: spec.tool,
                    });
                }
                if let Some(prev) = r.routes.iter().find(|p| p.method == spec.method && p.path == spec.path) {
                    return Err(RegistryError::Duplicate {
                        kind: "route",
                        name: format!("{} {}", spec.method.as_str(), spec.path),
                        first: prev.module,
                        second: owner,
                    });
                }
                r.routes.push(Arc::new(spec));
            }
            r.modules.push(module);
        }
        Ok(r)
    }

    /// Set the listing page size (at least 1).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    pub fn module_names(&self) -> Vec<&'static str> {
        self.modules.iter().map(|m| m.name()).collect()
    }

    pub fn tools(&self) -> &[Arc<ToolSpec>] {
        &self.tools
    }

    pub fn resources(&self) -> &[Arc<ResourceSpec>] {
        &self.resources
    }

    /// Static resources followed by every module's listed (dynamic) ones.
    pub fn all_resources(&self) -> Vec<Arc<ResourceSpec>> {
        let mut all = self.resources.clone();
        for m in &self.modules {
            for mut spec in m.listed_resources() {
                spec.module = m.name();
                all.push(Arc::new(spec));
            }
        }
        all
    }

    /// Every module's REST routes.
    pub fn routes(&self) -> &[Arc<RouteSpec>] {
        &self.routes
    }

    pub fn resource_templates(&self) -> &[Arc<ResourceTemplateSpec>] {
        &self.templates
    }

    pub fn prompts(&self) -> &[Arc<PromptSpec>] {
        &self.prompts
    }

    pub fn tool(&self, name: &str) -> Option<&Arc<ToolSpec>> {
        self.tool_index.get(name).map(|e| &e.spec)
    }

    pub fn prompt(&self, name: &str) -> Option<&Arc<PromptSpec>> {
        self.prompt_index.get(name).map(|&i| &self.prompts[i])
    }

    /// The module owning a tool.
    pub fn tool_module(&self, name: &str) -> Option<&Arc<dyn Module>> {
        self.tool_index.get(name).map(|e| &self.modules[e.module])
    }

    /// The module owning a prompt.
    pub fn prompt_module(&self, name: &str) -> Option<&Arc<dyn Module>> {
        let p = self.prompt(name)?;
        self.modules.iter().find(|m| m.name() == p.module)
    }

    /// The module serving a URI: a static resource first, then templates in
    /// registration order.
    pub fn resource_module(&self, uri: &str) -> Option<&Arc<dyn Module>> {
        if let Some(&i) = self.resource_index.get(uri) {
            let owner = self.resources[i].module;
            return self.modules.iter().find(|m| m.name() == owner);
        }
        self.template_matchers.iter().find(|(t, _)| t.matches(uri).is_some()).map(|(_, mi)| &self.modules[*mi])
    }

    /// The module owning a resource template.
    pub fn template_module(&self, uri_template: &str) -> Option<&Arc<dyn Module>> {
        let t = self.templates.iter().find(|t| t.uri_template == uri_template)?;
        self.modules.iter().find(|m| m.name() == t.module)
    }

    /// Check arguments against the tool's input schema. Every violation is
    /// reported with its JSON pointer, in schema order.
    pub fn validate(&self, tool: &str, args: &Value) -> Result<(), ToolError> {
        let entry = self.tool_index.get(tool).ok_or_else(|| ToolError::unknown_tool(tool))?;
        if entry.validator.is_valid(args) {
            return Ok(());
        }
        let messages: Vec<String> = entry
            .validator
            .iter_errors(args)
            .take(8)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() { e.to_string() } else { format!("{path}: {e}") }
            })
            .collect();
        Err(ToolError::InvalidArguments(messages.join("; ")))
    }

    /// One page of `items`, starting at the opaque `cursor`.
    pub fn page<T>(&self, items: &[Arc<T>], cursor: Option<&str>) -> Result<Page<T>, ToolError> {
        page(items, cursor, self.page_size)
    }
}

/// Cursors are the offset of the next item, written as `o<offset>`.
pub fn page<T>(items: &[Arc<T>], cursor: Option<&str>, size: usize) -> Result<Page<T>, ToolError> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= items.len())
            .ok_or_else(|| ToolError::InvalidRequest(format!("invalid cursor `{c}`")))?,
    };
    let end = (start + size).min(items.len());
    Ok(Page { items: items[start..end].to_vec(), next_cursor: (end < items.len()).then(|| format!("o{end}")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_deterministic_and_cursors_checked() {
        let items: Vec<Arc<u32>> = (0..5).map(Arc::new).collect();
        let p1 = page(&items, None, 2).unwrap();
        assert_eq!(p1.items.iter().map(|i| **i).collect::<Vec<_>>(), [0, 1]);
        let p2 = page(&items, p1.next_cursor.as_deref(), 2).unwrap();
        let p3 = page(&items, p2.next_cursor.as_deref(), 2).unwrap();
        assert_eq!(p3.items.iter().map(|i| **i).collect::<Vec<_>>(), [4]);
        assert_eq!(p3.next_cursor, None);
        for bad in ["", "x", "o-1", "o6", "o99999999999999999999999"] {
            assert!(page(&items, Some(bad), 2).is_err(), "{bad}");
        }
    }
}
