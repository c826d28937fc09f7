//! A bare rmcp server with one tool, `echo`, for side-by-side benchmarks.
//!
//! usage: rmcp-echo PORT [default|tuned]
//! - default: rmcp's StreamableHttpServerConfig defaults (SSE responses) on
//!   axum's defaults (Nagle on);
//! - tuned: JSON responses where no stream is needed, and TCP_NODELAY.

use std::sync::Arc;

use axum::serve::ListenerExt;
use rmcp::model as m;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

#[derive(Clone)]
struct Echo {
    tool: m::Tool,
}

impl ServerHandler for Echo {
    fn get_info(&self) -> m::ServerConfig {
        m::ServerConfig::new(m::ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<m::PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<m::ListToolsResult, ErrorData> {
        Ok(m::ListToolsResult::with_all_items(vec![self.tool.clone()]))
    }

    async fn call_tool(
        &self,
        req: m::CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<m::CallToolResponse, ErrorData> {
        let text = req
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| ErrorData::invalid_params("`text` is required", None))?;
        Ok(m::CallToolResult::success(vec![m::ContentBlock::text(text.to_owned())]).into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "18090".into()).parse()?;
    let tuned = args.next().as_deref() == Some("tuned");
    let schema: m::JsonObject = serde_json::from_value(serde_json::json!({
        "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]
    }))?;
    let handler = Echo { tool: m::Tool::new("echo", "Return the given text", Arc::new(schema)) };
    let config = StreamableHttpServerConfig::default().with_json_response(tuned);
    let service =
        StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(LocalSessionManager::default()), config);
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("rmcp-echo ({}) listening on http://127.0.0.1:{port}/mcp", if tuned { "tuned" } else { "default" });
    if tuned {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
    } else {
        axum::serve(listener, app).await?;
    }
    Ok(())
}
