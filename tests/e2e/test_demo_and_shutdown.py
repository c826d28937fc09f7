"""`plexus serve --demo` on a fresh data directory, and graceful shutdown.

The demo must create its data directory, print how to connect (URL, a fresh
admin API key, client snippets), require that key, and answer with it.
SIGTERM must let an in-flight call finish before the process exits, and the
audit log must verify afterwards.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import HOST, _http_ok, _passthrough_env, _stop, free_port

MODERN = "2026-07-28"


def modern_call(url: str, tool: str, args: dict, key: str | None, timeout: float = 10.0) -> tuple[int, dict | str]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
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
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    if key:
        headers["X-API-Key"] = key
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    out = open(log, "wb")  # noqa: SIM115 - the child keeps its own descriptor
    proc = subprocess.Popen(
        [*cmd, "--http", f"{HOST}:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**__import__("os").environ, **_passthrough_env()},
    )
    out.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _http_ok(f"http://{HOST}:{port}/healthz"):
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    return proc, port


def test_demo_prints_how_to_connect_and_requires_its_key(plexus_bin: str, tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    log = tmp_path / "demo.log"
    proc, port = start([plexus_bin, "serve", "--demo", "--data-dir", str(data)], log)
    try:
        url = f"http://{HOST}:{port}/mcp"
        text = log.read_text(errors="replace")
        assert f"MCP endpoint (Streamable HTTP): {url}" in text, text
        key = re.search(r"Admin API key \(shown once\):\s+(pk_[0-9a-f]{32})", text)
        assert key, text
        assert '"mcpServers"' in text and "mcp-inspector --cli" in text, text
        assert data.is_dir()

        status, _ = modern_call(url, "whoami", {}, key=None)
        assert status == 401
        status, _ = modern_call(url, "whoami", {}, key="pk_" + "0" * 32)
        assert status == 401
        status, reply = modern_call(url, "whoami", {}, key=key.group(1))
        assert status == 200, reply
        who = reply["result"]["structuredContent"]
        assert (who["subject"], who["method"], who["roles"], who["era"]) == ("demo-admin", "api_key", ["admin"], MODERN)
    finally:
        _stop(proc)
    # the key is not stored anywhere in the data directory
    for f in data.rglob("*"):
        if f.is_file():
            assert key.group(1) not in f.read_text(errors="replace"), f


def test_sigterm_drains_in_flight_calls_and_the_audit_log_verifies(plexus_bin: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "server.log"
    proc, port = start(
        [plexus_bin, "serve", "--modules", "system,conformance", "--allow-anonymous", "--data-dir", str(data)], log
    )
    url = f"http://{HOST}:{port}/mcp"
    result: dict = {}

    def slow_call() -> None:
        # test_reconnection takes about 100 ms
        result["answer"] = modern_call(url, "test_reconnection", {}, key=None)

    try:
        t = threading.Thread(target=slow_call)
        t.start()
        time.sleep(0.03)
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=10)
        assert proc.wait(timeout=15) == 0, log.read_text(errors="replace")
    finally:
        _stop(proc)
    status, reply = result["answer"]
    assert status == 200, reply
    assert "Reconnection test completed" in reply["result"]["content"][0]["text"]
    verify = subprocess.run(
        [plexus_bin, "audit", "verify", "--data-dir", str(data)], capture_output=True, text=True, timeout=30
    )
    assert verify.returncode == 0, verify.stderr
    assert "audit log intact: 1 records" in verify.stdout, verify.stdout
