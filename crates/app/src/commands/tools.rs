//! `plexus tools list`: what a server with this configuration would expose.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::wiring;

pub(crate) fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let registry = wiring::registry(config, wiring::modules(config, &wiring::ModuleDeps::offline()))?;
    let mut out = std::io::stdout().lock();
    if json {
        let tools: Vec<serde_json::Value> = registry
            .tools()
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "title": t.title,
                    "description": t.description,
                    "module": t.module,
                    "inputSchema": *t.input_schema,
                    "outputSchema": t.output_schema.as_deref(),
                    "readOnly": t.annotations.read_only,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({ "tools": tools }))?)?;
    } else {
        let width = registry.tools().iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
        writeln!(out, "{:<width$}  {:<12}  DESCRIPTION", "TOOL", "MODULE")?;
        for t in registry.tools() {
            writeln!(out, "{:<width$}  {:<12}  {}", t.name, t.module, t.description.as_deref().unwrap_or(""))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
