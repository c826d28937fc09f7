"""Helpers shared by the end-to-end tests: start a server, make a stateless call."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
import subprocess

from conftest import HOST, _http_ok, _passthrough_env, free_port

MODERN = "2026-07-28"


def api_keys_toml(keys: list[tuple[str, str, str, str]]) -> str:
    """`[[auth.api_keys]]` entries for `(name, key, tenant, role)`: the key stored as its SHA-256."""
    return "".join(
        f'[[auth.api_keys]]\nname = "{name}"\nsha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
        f'tenant = "{tenant}"\nroles = ["{role}"]\n'
        for name, key, tenant, role in keys
    )


def rpc(
    url: str,
    tool: str,
    args: dict,
    headers: dict[str, str] | None = None,
    request_id: int | str = 1,
    timeout: float = 15.0,
) -> tuple[int, dict | str, Message]:
    """A 2026-07-28 `tools/call`: (HTTP status, JSON body or error text, response headers)."""
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": args,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    all_headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        **(headers or {}),
    }
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers


def modern_call(url: str, tool: str, args: dict, key: str | None, timeout: float = 10.0) -> tuple[int, dict | str]:
    """A 2026-07-28 `tools/call` with an optional API key: (HTTP status, body)."""
    status, body, _ = rpc(url, tool, args, {"X-API-Key": key} if key else None, timeout=timeout)
    return status, body


def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start `cmd --http 127.0.0.1:PORT` on a free port; wait for /healthz."""
    port = free_port()
    out = open(log, "wb")  # noqa: SIM115 - the child keeps its own descriptor
    proc = subprocess.Popen(
        [*cmd, "--http", f"{HOST}:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **_passthrough_env()},
    )
    out.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _http_ok(f"http://{HOST}:{port}/healthz"):
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    return proc, port
