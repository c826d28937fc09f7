"""Benchmark peer: the official MCP Python SDK (mcp 2.x) in stateless Streamable HTTP mode.

`MCPServer` (the v2 name of FastMCP) with `stateless_http=True, json_response=True`:
no Mcp-Session-Id, no initialize required, every answer is one application/json body.
The same app also answers 2026-07-28 (stateless-era) requests: the SDK routes any
`MCP-Protocol-Version` outside the handshake versions to its 2026-07-28 entry.

One tool, `echo` ({"text": string}) -> text content with that text.

    PORT=8082 .venv/bin/python server.py          # POST http://127.0.0.1:8082/mcp
    HOST=0.0.0.0 PORT=8082 .venv/bin/python server.py

GET /healthz answers 200 "ok" for readiness polling by the load harness.
Extra env: WORKERS (uvicorn worker processes, default 1), LOG_LEVEL (default warning).
"""

from __future__ import annotations

import os

import uvicorn
from mcp.server import MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8082"))
WORKERS = int(os.environ.get("WORKERS", "1"))
LOG_LEVEL = os.environ.get("LOG_LEVEL", "warning")

mcp = MCPServer("bench-peer-python", version="1.0.0", log_level=LOG_LEVEL.upper())


# structured_output=False: plain `content: [{type: text}]` only, same shape as the TS peer
# (otherwise a `-> str` tool also emits structuredContent {"result": ...}).
@mcp.tool(structured_output=False)
def echo(text: str) -> str:
    """Echo the given text back as text content."""
    return text


@mcp.custom_route("/healthz", methods=["GET"])
async def healthz(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app():
    # host= only decides whether the SDK auto-enables DNS-rebinding protection
    # (it does for 127.0.0.1 / localhost / ::1).
    return mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        host=HOST,
    )


app = create_app()

if __name__ == "__main__":
    if WORKERS > 1:
        uvicorn.run(
            "server:app",
            app_dir=os.path.dirname(os.path.abspath(__file__)),
            host=HOST,
            port=PORT,
            workers=WORKERS,
            log_level=LOG_LEVEL,
            access_log=False,
        )
    else:
        uvicorn.run(app, host=HOST, port=PORT, log_level=LOG_LEVEL, access_log=False)
