//! The practical ceiling: an axum handler that parses the JSON-RPC body and
//! answers a fixed `tools/call` result, with TCP_NODELAY. No MCP semantics.
//!
//! usage: axum-ceiling PORT

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;

async fn handle(body: Bytes) -> impl IntoResponse {
    let id = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v.get("id").cloned());
    let id = id.unwrap_or(serde_json::Value::Null);
    let reply = serde_json::json!({
        "jsonrpc": "2.0", "id": id,
        "result": {"resultType": "complete", "content": [{"type": "text", "text": "hello"}], "isError": false}
    });
    ([(header::CONTENT_TYPE, "application/json")], reply.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args().nth(1).unwrap_or_else(|| "18091".into()).parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("axum-ceiling listening on http://127.0.0.1:{port}/mcp");
    axum::serve(listener, axum::Router::new().route("/mcp", axum::routing::post(handle))).await?;
    Ok(())
}
