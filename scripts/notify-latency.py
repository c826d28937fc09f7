"""Config change to client notification, end to end: a legacy MCP session
(Python SDK) subscribed to shared://config/interview-types.json, the file
rewritten on disk N times; the time from each write to the client's
notifications/resources/updated. Prints p50/p90/p99/max in ms.

usage: tests/e2e/.venv/bin/python scripts/notify-latency.py PLEXUS_BIN [EDITS]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import anyio
from mcp import Client

URI = "shared://config/interview-types.json"


def main() -> None:
    binary, edits = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100
    work = Path(tempfile.mkdtemp(prefix="plexus-notify-"))
    (work / "p.toml").write_text('[modules]\nenabled = ["ops"]\n', encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "serve", "--demo", "--config", str(work / "p.toml"), "--data-dir", str(work / "data"),
         "--allow-anonymous", "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        doc = work / "data" / "shared" / "config" / "interview-types.json"
        lat: list[float] = []

        async def run() -> None:
            got = anyio.Event()
            box = {"event": got}

            async def handler(message) -> None:
                root = getattr(message, "root", message)
                if getattr(root, "method", "") == "notifications/resources/updated":
                    box["event"].set()

            async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy", message_handler=handler) as client:
                await client.subscribe_resource(URI)
                for i in range(edits + 5):
                    box["event"] = anyio.Event()
                    items = [{"id": f"t{i}", "name": f"面談 {i}", "classification": "regular"}]
                    t0 = time.perf_counter()
                    doc.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
                    with anyio.fail_after(10):
                        await box["event"].wait()
                    if i >= 5:
                        lat.append((time.perf_counter() - t0) * 1000)
                    await anyio.sleep(0.05)

        anyio.run(run)
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, max(0, int(len(lat) * p + 0.999999) - 1))]  # noqa: E731 - nearest rank
        print(f"disk write -> client notification ({len(lat)} edits): p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, "
              f"p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms, mean {statistics.mean(lat):.1f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
