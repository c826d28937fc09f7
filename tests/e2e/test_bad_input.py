"""Bad input over Streamable HTTP: raw requests against the real binary.

Every case sends one request with httpx and asserts the precise HTTP status and,
where the answer is a JSON-RPC message, the precise error code and id. After every
case the server must still be serving: it answers a valid `tools/call echo`, its
process is alive and its stderr has no "panicked".

Servers (one per module, each on a free loopback port, own data directory):

    plexus serve --http 127.0.0.1:PORT --modules system,conformance --allow-anonymous
    plexus serve --http 127.0.0.1:PORT --modules system,conformance                    (401)
    plexus serve --http ... --allow-anonymous -c restricted.toml                        (denied tool)

Each case asserts what the MCP / JSON-RPC specifications require.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # mcp 2.x ships the client as `httpx2`; plain `httpx` works the same
    import httpx
except ModuleNotFoundError:  # pragma: no cover - depends on the venv
    import httpx2 as httpx  # type: ignore[no-redef]

from conftest import HOST, _http_ok, _passthrough_env, _startup_timeout, _stop, _tail, free_port

MODULES = "system,conformance"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
BASE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
TIMEOUT = 30.0  # seconds per request: a hang is a failure, not a stuck run
MAX_BODY = 4 * 1024 * 1024  # the default server.max_body_bytes


# ---------------------------------------------------------------------------- servers


@dataclasses.dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        return f"--- stdout ---\n{_tail(self.stdout_path)}\n--- stderr ---\n{_tail(self.stderr_path)}"


def start_server(plexus_bin: str, workdir: Path, extra: list[str], attempts: int = 3) -> Server:
    """`plexus serve --http` on a free port with `extra` args; waits for /healthz 200."""
    last = ""
    for attempt in range(1, attempts + 1):
        port = free_port()
        out, err = workdir / f"stdout-{port}.log", workdir / f"stderr-{port}.log"
        cmd = [
            plexus_bin,
            "serve",
            "--http",
            f"{HOST}:{port}",
            "--modules",
            MODULES,
            "--data-dir",
            str(workdir / f"data-{port}"),
            *extra,
        ]
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=o,
                stderr=e,
                env={**os.environ, **_passthrough_env()},
                cwd=workdir,
            )
        server = Server(proc, port, out, err)
        deadline = time.monotonic() + _startup_timeout()
        while time.monotonic() < deadline and proc.poll() is None:
            if _http_ok(f"{server.base_url}/healthz"):
                return server
            time.sleep(0.1)
        exited = proc.poll()
        _stop(proc)
        last = f"attempt {attempt}: {cmd} {'exited ' + str(exited) if exited is not None else 'not healthy'}\n{server.logs()}"
        if exited is None:
            break
    pytest.fail(f"Plexus did not become ready.\n{last}", pytrace=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plexus-bad-input")


def _serve(plexus_bin: str, workdir: Path, extra: list[str]) -> Iterator[Server]:
    server = start_server(plexus_bin, workdir, extra)
    try:
        yield server
    finally:
        _stop(server.process)
        assert "panicked" not in server.stderr(), server.logs()


@pytest.fixture(scope="module")
def server(plexus_bin: str, workdir: Path) -> Iterator[Server]:
    yield from _serve(plexus_bin, workdir, ["--allow-anonymous"])


@pytest.fixture(scope="module")
def auth_server(plexus_bin: str, workdir: Path) -> Iterator[Server]:
    """Started WITHOUT --allow-anonymous and without API keys."""
    yield from _serve(plexus_bin, workdir, [])


@pytest.fixture(scope="module")
def restricted_server(plexus_bin: str, workdir: Path) -> Iterator[Server]:
    """Anonymous callers may call `echo` only: `whoami` exists but is denied."""
    config = workdir / "restricted.toml"
    config.write_text('[auth]\nanonymous_roles = ["limited"]\n\n[roles.limited]\ntools = ["echo"]\n')
    yield from _serve(plexus_bin, workdir, ["--allow-anonymous", "--config", str(config)])


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as c:
        yield c


# ---------------------------------------------------------------------------- requests


def meta(version: str = MODERN) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def modern(
    method: str,
    params: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    id: Any = 1,
    meta_version: str = MODERN,
    header_version: str = MODERN,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of a 2026-07-28 request (`Mcp-Name` only when `name` is given)."""
    body = {"jsonrpc": "2.0", "id": id, "method": method, "params": {**(params or {}), "_meta": meta(meta_version)}}
    headers = {**BASE_HEADERS, "MCP-Protocol-Version": header_version, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return headers, body


def call(tool: str, arguments: dict[str, Any], **kw: Any) -> tuple[dict[str, str], dict[str, Any]]:
    return modern("tools/call", {"name": tool, "arguments": arguments}, name=tool, **kw)


def echo_request(text: str = "still here") -> tuple[dict[str, str], bytes]:
    headers, body = call("echo", {"text": text})
    return headers, json.dumps(body).encode()


def post(client: httpx.Client, url: str, headers: dict[str, str], body: bytes | Any) -> httpx.Response:
    return client.post(url, headers=headers, content=body)


def describe(r: httpx.Response) -> str:
    return f"HTTP {r.status_code} {dict(r.headers)} {r.text[:500]!r}"


def rpc_error(r: httpx.Response, status: int, code: int, id: Any = 1) -> dict[str, Any]:
    """Assert an application/json JSON-RPC error with this status, code and id."""
    assert r.status_code == status, describe(r)
    assert r.headers.get("content-type", "").startswith("application/json"), describe(r)
    msg = r.json()
    assert msg.get("jsonrpc") == "2.0", describe(r)
    assert "result" not in msg, describe(r)
    assert msg["error"]["code"] == code, describe(r)
    assert isinstance(msg["error"]["message"], str) and msg["error"]["message"], describe(r)
    assert msg["id"] == id, describe(r)
    return msg["error"]


def sse_messages(r: httpx.Response) -> list[dict[str, Any]]:
    """JSON-RPC messages in a text/event-stream body (empty priming events skipped)."""
    out = []
    for event in r.text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if data.strip():
            out.append(json.loads(data))
    return out


def legacy_response(r: httpx.Response) -> dict[str, Any]:
    """The one JSON-RPC response of a legacy-session POST (SSE or JSON)."""
    assert r.status_code == 200, describe(r)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [m for m in sse_messages(r) if "id" in m and ("result" in m or "error" in m)]
        assert len(messages) == 1, describe(r)
        return messages[0]
    return r.json()


def assert_still_serving(server: Server, client: httpx.Client) -> None:
    """The server answers a valid call, is alive and has not panicked."""
    headers, body = echo_request()
    r = post(client, server.mcp_url, headers, body)
    assert r.status_code == 200, describe(r)
    result = r.json()["result"]
    assert result["isError"] is False, describe(r)
    assert result["content"] == [{"type": "text", "text": "still here"}], describe(r)
    assert server.process.poll() is None, f"server exited with {server.process.returncode}\n{server.logs()}"
    assert "panicked" not in server.stderr(), server.logs()


@pytest.fixture
def serving(server: Server, client: httpx.Client) -> Iterator[Callable[[], None]]:
    """`serving()` at the end of a case; checked again at teardown (also when the case failed)."""
    yield lambda: assert_still_serving(server, client)
    assert_still_serving(server, client)


# ---------------------------------------------------------------------------- sanity


def test_valid_call_is_answered(server: Server, client: httpx.Client) -> None:
    assert_still_serving(server, client)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes(server: Server, client: httpx.Client, path: str, serving) -> None:
    r = client.get(server.base_url + path)
    assert r.status_code == 200, describe(r)
    assert r.text == {"/healthz": "ok", "/readyz": "ready"}[path]
    serving()


# ---------------------------------------------------------------------------- JSON-RPC shape (front door)

SHAPE_CASES = {
    # name: (raw body, HTTP status, JSON-RPC code, id in the answer)
    "malformed-json": (b"{not json", 400, -32700, None),
    "empty-body": (b"", 400, -32700, None),
    "batch-array": (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', 400, -32600, None),
    "empty-batch": (b"[]", 400, -32600, None),
    "not-an-object": (b"42", 400, -32600, None),
    "jsonrpc-1.0": (b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}', 400, -32600, 1),
    "jsonrpc-missing": (b'{"id":1,"method":"tools/list"}', 400, -32600, 1),
    "method-missing": (b'{"jsonrpc":"2.0","id":1}', 400, -32600, 1),
    "method-not-a-string": (b'{"jsonrpc":"2.0","id":1,"method":7}', 400, -32600, 1),
    "id-object": (b'{"jsonrpc":"2.0","id":{},"method":"tools/list"}', 400, -32600, None),
    "id-boolean": (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', 400, -32600, None),
    "duplicate-member": (b'{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/list"}', 400, -32600, None),
    "params-array": (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}', 400, -32602, 1),
    "tools-call-without-name": (
        b'{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"arguments":{"text":"x"}}}',
        400,
        -32602,
        "c1",
    ),
    "tools-call-name-not-a-string": (
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":5}}',
        400,
        -32602,
        2,
    ),
    "resources-read-without-uri": (b'{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{}}', 400, -32602, 3),
    "invalid-utf8": (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"\xff\xfe"}}', 400, -32700, None),
}


@pytest.mark.parametrize("case", list(SHAPE_CASES))
@pytest.mark.parametrize("era", ["modern", "no-headers"])
def test_jsonrpc_shape(server: Server, client: httpx.Client, serving, case: str, era: str) -> None:
    body, status, code, id = SHAPE_CASES[case]
    headers = dict(BASE_HEADERS)
    if era == "modern":
        headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
    rpc_error(post(client, server.mcp_url, headers, body), status, code, id)
    serving()


# ---------------------------------------------------------------------------- methods and tools (2026-07-28)


def test_unknown_method_modern(server: Server, client: httpx.Client, serving) -> None:
    headers, body = modern("foo/bar")
    rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 404, -32601)
    serving()


def test_unknown_tool_modern(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("no_such_tool", {})
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 200, -32602)
    assert err["message"] == "tool not found: no_such_tool"
    serving()


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"text": 5}, '/text: 5 is not of type "string"'),
        ({"text": "a", "extra": 1}, "Additional properties are not allowed ('extra' was unexpected)"),
        ({}, '"text" is a required property'),
    ],
    ids=["wrong-type", "extra-field", "missing-field"],
)
def test_schema_invalid_arguments_are_tool_errors(
    server: Server, client: httpx.Client, serving, arguments: dict[str, Any], problem: str
) -> None:
    """SEP-1303: argument validation failures are `isError` results the model can read."""
    headers, body = call("echo", arguments)
    r = post(client, server.mcp_url, headers, json.dumps(body).encode())
    assert r.status_code == 200, describe(r)
    msg = r.json()
    assert msg["id"] == 1 and "error" not in msg, describe(r)
    result = msg["result"]
    assert result["isError"] is True, describe(r)
    assert len(result["content"]) == 1 and result["content"][0]["type"] == "text", describe(r)
    text = result["content"][0]["text"]
    assert text.startswith("invalid arguments: "), text
    assert problem in text, text
    serving()


def test_string_argument_over_one_mib_is_a_tool_error(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "a" * (MAX_BODY - 1024)})
    r = post(client, server.mcp_url, headers, json.dumps(body).encode())
    assert r.status_code == 200, describe(r)
    result = r.json()["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"] == "invalid arguments: a string argument exceeds 1 MiB"
    serving()


def test_jsonrpc_response_to_stateless_server(server: Server, client: httpx.Client, serving) -> None:
    headers = {**BASE_HEADERS, "MCP-Protocol-Version": MODERN}
    r = post(client, server.mcp_url, headers, b'{"jsonrpc":"2.0","id":99,"result":{}}')
    assert r.status_code == 400, describe(r)
    err = r.json()["error"]
    assert err["code"] == -32600, describe(r)
    serving()


def test_modern_notification_is_accepted(server: Server, client: httpx.Client, serving) -> None:
    headers, body = modern("notifications/cancelled", {"requestId": 5})
    del body["id"]
    r = post(client, server.mcp_url, headers, json.dumps(body).encode())
    assert r.status_code == 202 and r.content == b"", describe(r)
    serving()


# ---------------------------------------------------------------------------- 2026-07-28 headers


def test_unsupported_protocol_version_header(server: Server, client: httpx.Client, serving) -> None:
    """Header 1999-01-01 with `_meta` 2026-07-28: the two disagree, so -32020 (header mismatch)."""
    headers, body = call("echo", {"text": "x"}, header_version="1999-01-01")
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32020)
    assert "1999-01-01" in err["message"]
    serving()


def test_unsupported_protocol_version_header_and_meta(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "x"}, header_version="1999-01-01", meta_version="1999-01-01")
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32022)
    assert err["data"]["requested"] == "1999-01-01"
    assert MODERN in err["data"]["supported"] and LEGACY in err["data"]["supported"]
    serving()


@pytest.mark.parametrize("value", ["1999-01-01", "garbage"])
def test_unsupported_protocol_version_header_without_meta(
    server: Server, client: httpx.Client, serving, value: str
) -> None:
    """A request without `_meta` is a legacy one; a bad version header is a plain 400."""
    headers = {**BASE_HEADERS, "MCP-Protocol-Version": value}
    r = post(client, server.mcp_url, headers, b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}')
    assert r.status_code == 400, describe(r)
    assert f"Unsupported MCP-Protocol-Version: {value}" in r.text, describe(r)
    serving()


def test_header_meta_version_mismatch(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "x"}, meta_version=LEGACY)
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32020)
    assert MODERN in err["message"] and LEGACY in err["message"]
    serving()


def test_mcp_name_mismatch(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "x"})
    headers["Mcp-Name"] = "whoami"
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32020)
    assert "whoami" in err["message"] and "echo" in err["message"]
    serving()


@pytest.mark.parametrize("header", ["Mcp-Method", "Mcp-Name"])
def test_missing_routing_header(server: Server, client: httpx.Client, serving, header: str) -> None:
    headers, body = call("echo", {"text": "x"})
    del headers[header]
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32020)
    assert header in err["message"]
    serving()


def test_mcp_method_mismatch(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "x"})
    headers["Mcp-Method"] = "tools/list"
    rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32020)
    serving()


def test_missing_meta_with_modern_header(server: Server, client: httpx.Client, serving) -> None:
    headers, body = modern("tools/list")
    del body["params"]["_meta"]
    err = rpc_error(post(client, server.mcp_url, headers, json.dumps(body).encode()), 400, -32602)
    assert "io.modelcontextprotocol/protocolVersion" in err["message"]
    serving()


# ---------------------------------------------------------------------------- transport-level rejections


def test_body_over_limit_with_content_length(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "a" * (10 * 1024 * 1024)})
    raw = json.dumps(body).encode()
    r = post(client, server.mcp_url, headers, raw)
    rpc_error(r, 413, -32600, None)
    assert r.request.headers["content-length"] == str(len(raw))
    serving()


def test_body_over_limit_chunked(server: Server, client: httpx.Client, serving) -> None:
    headers, body = call("echo", {"text": "a" * (10 * 1024 * 1024)})
    raw = json.dumps(body).encode()
    chunks = (raw[i : i + 65536] for i in range(0, len(raw), 65536))
    r = post(client, server.mcp_url, headers, chunks)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    rpc_error(r, 413, -32600, None)
    serving()


def test_foreign_origin(server: Server, client: httpx.Client, serving) -> None:
    headers, body = echo_request()
    r = post(client, server.mcp_url, {**headers, "Origin": "http://evil.example.com"}, body)
    assert r.status_code == 403, describe(r)
    assert "Origin" in r.text, describe(r)
    serving()


def test_allowed_origin(server: Server, client: httpx.Client, serving) -> None:
    headers, body = echo_request()
    r = post(client, server.mcp_url, {**headers, "Origin": f"http://127.0.0.1:{server.port}"}, body)
    assert r.status_code == 200, describe(r)
    serving()


def test_foreign_host(server: Server, client: httpx.Client, serving) -> None:
    """DNS rebinding: a Host outside the allow-list is refused."""
    headers, body = echo_request()
    r = post(client, server.mcp_url, {**headers, "Host": "evil.example.com"}, body)
    assert r.status_code == 403, describe(r)
    assert "Host" in r.text, describe(r)
    serving()


def test_missing_accept(server: Server, client: httpx.Client, serving) -> None:
    headers, body = echo_request()
    del headers["Accept"]
    request = client.build_request("POST", server.mcp_url, headers=headers, content=body)
    del request.headers["Accept"]  # httpx would add `Accept: */*`
    r = client.send(request)
    assert "accept" not in r.request.headers
    assert r.status_code == 406, describe(r)
    serving()


def test_accept_json_only(server: Server, client: httpx.Client, serving) -> None:
    headers, body = echo_request()
    r = post(client, server.mcp_url, {**headers, "Accept": "application/json"}, body)
    assert r.status_code == 406, describe(r)
    serving()


def test_wrong_content_type(server: Server, client: httpx.Client, serving) -> None:
    headers, body = echo_request()
    r = post(client, server.mcp_url, {**headers, "Content-Type": "text/plain"}, body)
    assert r.status_code == 415, describe(r)
    serving()


# ---------------------------------------------------------------------------- legacy (2025-11-25 sessions)


@pytest.fixture(scope="module")
def legacy_headers(server: Server, client: httpx.Client) -> dict[str, str]:
    """Headers of an initialized 2025-11-25 session."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bad-input", "version": "1"}},
    }
    r = post(client, server.mcp_url, BASE_HEADERS, json.dumps(init).encode())
    assert legacy_response(r)["result"]["protocolVersion"] == LEGACY, describe(r)
    session = r.headers["mcp-session-id"]
    headers = {**BASE_HEADERS, "Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY}
    r = post(client, server.mcp_url, headers, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert r.status_code == 202, describe(r)
    return headers


def test_legacy_unknown_method(server: Server, client: httpx.Client, serving, legacy_headers) -> None:
    r = post(client, server.mcp_url, legacy_headers, b'{"jsonrpc":"2.0","id":7,"method":"foo/bar","params":{}}')
    msg = legacy_response(r)
    assert msg["id"] == 7 and msg["error"]["code"] == -32601, describe(r)
    serving()


def test_legacy_unknown_tool(server: Server, client: httpx.Client, serving, legacy_headers) -> None:
    body = b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}'
    msg = legacy_response(post(client, server.mcp_url, legacy_headers, body))
    assert msg["id"] == 8 and msg["error"] == {"code": -32602, "message": "tool not found: no_such_tool"}
    serving()


def test_legacy_session_still_works(server: Server, client: httpx.Client, serving, legacy_headers) -> None:
    body = b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'
    msg = legacy_response(post(client, server.mcp_url, legacy_headers, body))
    assert msg["id"] == 9 and msg["result"]["content"] == [{"type": "text", "text": "hi"}]
    serving()


def test_legacy_unknown_session(server: Server, client: httpx.Client, serving) -> None:
    headers = {**BASE_HEADERS, "Mcp-Session-Id": "no-such-session", "MCP-Protocol-Version": LEGACY}
    r = post(client, server.mcp_url, headers, b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}')
    assert r.status_code == 404, describe(r)
    serving()


def test_legacy_request_without_session(server: Server, client: httpx.Client, serving) -> None:
    r = post(client, server.mcp_url, BASE_HEADERS, b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}')
    assert r.status_code == 400, describe(r)
    assert "Session ID is required" in r.text, describe(r)
    serving()


# ---------------------------------------------------------------------------- authentication


def test_no_credentials_is_401(auth_server: Server, client: httpx.Client) -> None:
    headers, body = echo_request()
    r = post(client, auth_server.mcp_url, headers, body)
    assert r.status_code == 401, describe(r)
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), describe(r)
    r = client.get(auth_server.mcp_url, headers={"Accept": "text/event-stream"})
    assert r.status_code == 401 and "www-authenticate" in r.headers, describe(r)
    # probes need no credentials
    assert client.get(auth_server.base_url + "/healthz").status_code == 200
    assert client.get(auth_server.base_url + "/readyz").status_code == 200
    assert auth_server.process.poll() is None and "panicked" not in auth_server.stderr()


@pytest.mark.parametrize(
    "credential", [{"X-API-Key": "pk_wrong"}, {"Authorization": "Bearer not-a-token"}], ids=["api-key", "bearer"]
)
def test_invalid_credentials_is_401(auth_server: Server, client: httpx.Client, credential: dict[str, str]) -> None:
    headers, body = echo_request()
    r = post(client, auth_server.mcp_url, {**headers, **credential}, body)
    assert auth_server.process.poll() is None and "panicked" not in auth_server.stderr()
    assert r.status_code == 401, describe(r)
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), describe(r)


def _raw_post(sock: socket.socket, port: int, body: bytes, *, split: bool) -> bytes:
    """One HTTP/1.1 POST on an open socket; the body follows the headers after
    a pause when `split`, as a client on a slow link sends it."""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
        f"X-API-Key: pk_wrong\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    if split:
        sock.sendall(head)
        time.sleep(0.3)
        sock.sendall(body)
    else:
        sock.sendall(head + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    headers, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(
        (ln.split(b":", 1)[1] for ln in headers.split(b"\r\n") if ln.lower().startswith(b"content-length:")), b"0"
    ))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return headers


def test_a_refused_request_leaves_its_connection_usable(auth_server: Server) -> None:
    """A 401 answered before the body arrived must not break keep-alive: the
    refused body is read, and the next request on the same connection is answered."""
    _, body = echo_request()
    with socket.create_connection((HOST, auth_server.port), timeout=10) as sock:
        first = _raw_post(sock, auth_server.port, body, split=True)
        assert first.startswith(b"HTTP/1.1 401"), first
        assert b"connection: close" not in first.lower(), first
        second = _raw_post(sock, auth_server.port, body, split=False)
        assert second.startswith(b"HTTP/1.1 401"), f"second request on the connection got {second!r}"


def test_a_refused_large_body_closes_its_connection(auth_server: Server) -> None:
    """A refused body larger than the front door drains says so: `Connection: close`."""
    body = b"[" + b"0," * 100_000 + b"0]"
    with socket.create_connection((HOST, auth_server.port), timeout=10) as sock:
        first = _raw_post(sock, auth_server.port, body, split=False)
        assert first.startswith(b"HTTP/1.1 401"), first
        assert b"connection: close" in first.lower(), first


# ---------------------------------------------------------------------------- denied looks like unknown


def test_denied_tool_looks_unknown_modern(restricted_server: Server, client: httpx.Client) -> None:
    answers = {}
    for tool in ("whoami", "no_such_tool"):
        headers, body = call(tool, {})
        r = post(client, restricted_server.mcp_url, headers, json.dumps(body).encode())
        answers[tool] = (r.status_code, r.headers.get("content-type"), r.text.replace(tool, "<TOOL>"))
    assert answers["whoami"] == answers["no_such_tool"], answers
    status, _, text = answers["whoami"]
    assert status == 200 and json.loads(text)["error"] == {"code": -32602, "message": "tool not found: <TOOL>"}
    # and the denied tool is not listed
    headers, body = modern("tools/list")
    r = post(client, restricted_server.mcp_url, headers, json.dumps(body).encode())
    assert [t["name"] for t in r.json()["result"]["tools"]] == ["echo"], describe(r)
    headers, raw = echo_request()
    assert post(client, restricted_server.mcp_url, headers, raw).json()["result"]["isError"] is False
    assert restricted_server.process.poll() is None and "panicked" not in restricted_server.stderr()


# ---------------------------------------------------------------------------- known server bugs

# Well-formed JSON the front door lets through but rmcp cannot decode: rmcp answers
# HTTP 415 "Unsupported Media Type" with a text/plain "fail to deserialize request
# body ..." (the Content-Type was right). Expected: 400 and a JSON-RPC error.
UNDECODABLE = {
    # name: (body, expected JSON-RPC code)
    "id-null": ('{"jsonrpc":"2.0","id":null,"method":"tools/list","params":{"_meta":META}}', -32600),
    "id-fractional": ('{"jsonrpc":"2.0","id":1.5,"method":"tools/list","params":{"_meta":META}}', -32600),
    "id-1e400": ('{"jsonrpc":"2.0","id":1e400,"method":"tools/list","params":{"_meta":META}}', -32600),
    "id-over-i64": (
        '{"jsonrpc":"2.0","id":18446744073709551616,"method":"tools/list","params":{"_meta":META}}',
        -32600,
    ),
    "meta-not-an-object": ('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":"x"}}', -32602),
    "lone-surrogate": (
        '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"\\ud800","_meta":META}}',
        -32700,
    ),
    "nesting-200-deep": (
        '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":' + "[" * 200 + "]" * 200 + ',"_meta":META}}',
        -32700,
    ),
}


@pytest.mark.parametrize("case", list(UNDECODABLE))
def test_undecodable_message_is_a_jsonrpc_error(server: Server, client: httpx.Client, serving, case: str) -> None:
    text, code = UNDECODABLE[case]
    body = text.replace("META", json.dumps(meta())).encode()
    headers = {**BASE_HEADERS, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    r = post(client, server.mcp_url, headers, body)
    serving()
    assert r.status_code == 400, describe(r)
    assert r.headers.get("content-type", "").startswith("application/json"), describe(r)
    msg = r.json()
    assert msg["error"]["code"] == code, describe(r)
    assert msg.get("id") in (None, 1), describe(r)


@pytest.mark.parametrize("arguments", ["text", [1], 5], ids=["string", "array", "number"])
def test_tools_call_arguments_not_an_object(server: Server, client: httpx.Client, serving, arguments: Any) -> None:
    headers, body = modern("tools/call", {"name": "echo", "arguments": arguments}, name="echo")
    r = post(client, server.mcp_url, headers, json.dumps(body).encode())
    serving()
    assert r.status_code in (200, 400), describe(r)
    assert r.json()["error"]["code"] == -32602, describe(r)
