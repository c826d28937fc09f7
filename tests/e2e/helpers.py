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


class UpdatesHeard:
    """A legacy client's message handler that keeps the URIs of
    `notifications/resources/updated` (create it inside the event loop)."""

    def __init__(self) -> None:
        import anyio

        self.uris: list[str] = []
        self.got = anyio.Event()

    async def __call__(self, message) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", "") == "notifications/resources/updated":
            self.uris.append(str(root.params.uri))
            self.got.set()


class Switch:
    """A TCP forwarder on a free loopback port whose target can be changed:
    a load balancer's failover, in small. Connections made after a change
    go to the new target; those open stay where they were."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target = target_port
        self._sock = socket.create_server((HOST, 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # like a balancer with no healthy backend
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


LEGACY = "2025-11-25"


def legacy_post(
    url: str, message: dict, session: str | None = None, timeout: float = 10.0, key: str | None = None
) -> tuple[int, dict | str, Message]:
    """One JSON-RPC message of the 2025-11-25 era over Streamable HTTP, with
    an optional API key: (HTTP status, JSON body or text, response headers)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if key:
        headers["X-API-Key"] = key
    if message.get("method") != "initialize":
        headers["MCP-Protocol-Version"] = LEGACY
    if session:
        headers["Mcp-Session-Id"] = session
    req = urllib.request.Request(url, data=json.dumps(message).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            text = resp.read().decode()
            if resp.headers.get_content_type() == "text/event-stream":
                # The answer is the stream's message that carries the request's id.
                answers = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
                answers = [a for a in answers if a.get("id") == message.get("id")]
                return resp.status, (answers[-1] if answers else ""), resp.headers
            return resp.status, (json.loads(text) if text.strip() else ""), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers


def legacy_session(url: str, name: str = "e2e", key: str | None = None) -> str:
    """Begin a 2025-11-25 session (initialize, then initialized): its id."""
    status, body, headers = legacy_post(
        url,
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": name, "version": "1"}},
        },
        key=key,
    )
    assert status == 200 and body["result"]["protocolVersion"] == LEGACY, body
    session = headers["Mcp-Session-Id"]
    status, _, _ = legacy_post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session, key=key)
    assert status == 202, status
    return session


class SseListener:
    """A session's standalone SSE stream (GET) read in a thread: the
    JSON-RPC messages that arrive, in order."""

    def __init__(self, url: str, session: str) -> None:
        import queue
        import threading

        self.messages: queue.Queue[dict] = queue.Queue()
        req = urllib.request.Request(
            url,
            headers={"Accept": "text/event-stream", "Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY},
            method="GET",
        )
        self._resp = urllib.request.urlopen(req, timeout=60)  # noqa: S310 - loopback only
        assert self._resp.status == 200, self._resp.status
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self._resp:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith("data:") and line[5:].strip():
                    try:
                        self.messages.put(json.loads(line[5:]))
                    except ValueError:
                        pass
        except (OSError, ValueError, AttributeError):
            pass  # closed (by close(), or by the server)

    def next_method(self, method: str, timeout: float) -> dict:
        """The next message of `method` within `timeout` seconds."""
        import queue

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if m.get("method") == method:
                return m
        raise AssertionError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self._resp.close()
