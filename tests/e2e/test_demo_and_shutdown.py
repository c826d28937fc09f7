"""`plexus serve --demo` on a fresh data directory, and graceful shutdown.

The demo must create its data directory, print how to connect (URL, a fresh
admin API key, client snippets), require that key, and answer with it.
SIGTERM must let an in-flight call finish before the process exits, and the
audit log must verify afterwards.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import HOST, _stop
from helpers import MODERN, modern_call, start

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

        # The demo indexes a generated corpus and the project's own docs.
        status, reply = modern_call(url, "sync_knowledge", {}, key=key.group(1), timeout=60)
        assert status == 200 and "result" in reply, reply
        outcomes = {o["source"]: o.get("report") for o in reply["result"]["structuredContent"]["outcomes"]}
        assert set(outcomes) >= {"demo-handbook", "demo-partners", "plexus-docs"}, outcomes
        status, reply = modern_call(url, "search_knowledge", {"query": "データ移行", "limit": 3}, key=key.group(1))
        found = reply["result"]["structuredContent"]
        assert found["facets"]["demo-handbook"] == 5 and found["facets"]["demo-partners"] == 1, found
        assert any("data migration" in h["title"] for h in found["hits"]), found
        status, reply = modern_call(url, "search_knowledge", {"query": "architecture invariant"}, key=key.group(1))
        assert any(h["id"] == "plexus-docs:ARCHITECTURE.md" for h in reply["result"]["structuredContent"]["hits"]), reply
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
