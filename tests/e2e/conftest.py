"""Fixtures for the Plexus end-to-end tests.

These tests drive the real `plexus` binary (path in env PLEXUS_BIN) with the
`conformance` module, over stdio and over Streamable HTTP:

    $PLEXUS_BIN serve --stdio --modules conformance
    $PLEXUS_BIN serve --http 127.0.0.1:PORT --modules conformance --allow-anonymous

Run:
    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    PLEXUS_BIN=/path/to/target/release/plexus .venv/bin/pytest -v

Optional env:
    PLEXUS_E2E_STARTUP_TIMEOUT  seconds to wait for /healthz (default 30)
    PLEXUS_E2E_EXTRA_ARGS       extra args appended to both `serve` command lines (shlex-split)
    RUST_LOG, PLEXUS_*          passed through to the server process (also on stdio, where the
                                Python SDK otherwise forwards only a minimal environment)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters

# Every server these tests start writes its data (audit log) to a fresh
# directory, never into the source tree.
os.environ.setdefault("PLEXUS_DATA_DIR", tempfile.mkdtemp(prefix="plexus-e2e-"))

MODULES = "conformance"
HOST = "127.0.0.1"


def _startup_timeout() -> float:
    return float(os.environ.get("PLEXUS_E2E_STARTUP_TIMEOUT", "30"))


def _extra_args() -> list[str]:
    return shlex.split(os.environ.get("PLEXUS_E2E_EXTRA_ARGS", ""))


def _passthrough_env() -> dict[str, str]:
    """Env vars worth forwarding to the server (logging / Plexus configuration)."""
    return {k: v for k, v in os.environ.items() if k == "RUST_LOG" or k == "RUST_BACKTRACE" or k.startswith("PLEXUS_")}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # The MCP Python SDK is built on anyio; its own test-suite runs on asyncio.
    return "asyncio"


@pytest.fixture(scope="session")
def plexus_bin() -> str:
    value = os.environ.get("PLEXUS_BIN", "").strip()
    if not value:
        pytest.fail(
            "PLEXUS_BIN is not set. Build the server (cargo build --release) and run e.g.\n"
            "    PLEXUS_BIN=$PWD/target/release/plexus pytest tests/e2e",
            pytrace=False,
        )
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"PLEXUS_BIN={value!r} is not an executable file", pytrace=False)
    return str(path.resolve())


# ---------------------------------------------------------------------------- stdio


def stdio_command(plexus_bin: str) -> list[str]:
    return [plexus_bin, "serve", "--stdio", "--modules", MODULES, *_extra_args()]


@pytest.fixture(scope="session")
def stdio_cmd(plexus_bin: str) -> list[str]:
    """argv of the stdio server (each client spawns its own process)."""
    return stdio_command(plexus_bin)


@pytest.fixture(scope="session")
def stdio_params(stdio_cmd: list[str]) -> StdioServerParameters:
    """For `mcp.client.stdio.stdio_client` / `mcp.Client(StdioServerParameters(...))`."""
    return StdioServerParameters(command=stdio_cmd[0], args=stdio_cmd[1:], env=_passthrough_env() or None)


# ---------------------------------------------------------------------------- HTTP


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:])


@dataclasses.dataclass(frozen=True)
class HttpServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def healthz_url(self) -> str:
        return f"{self.base_url}/healthz"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop exactly the process we started: SIGTERM, then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_http_server(plexus_bin: str, log_dir: Path, attempts: int = 3) -> HttpServer:
    """Start `serve --http` on a free loopback port and wait until GET /healthz answers 200.

    Retries on a fresh port if the process dies during startup (e.g. the port was
    grabbed between choosing it and the server binding it).
    """
    last_error = ""
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = log_dir / f"plexus-http-{port}.log"
        cmd = [
            plexus_bin,
            "serve",
            "--http",
            f"{HOST}:{port}",
            "--modules",
            MODULES,
            "--allow-anonymous",
            *_extra_args(),
        ]
        log = open(log_path, "wb")  # noqa: SIM115 - closed below / at teardown
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_passthrough_env()},
        )
        log.close()  # the child holds its own descriptor
        server = HttpServer(process=proc, port=port, log_path=log_path)
        deadline = time.monotonic() + _startup_timeout()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _http_ok(server.healthz_url):
                return server
            time.sleep(0.1)
        exited = proc.poll()
        _stop(proc)
        reason = f"exited with code {exited}" if exited is not None else f"no 200 from /healthz in {_startup_timeout()}s"
        last_error = (
            f"attempt {attempt}: `{shlex.join(cmd)}` {reason}\n--- server log ({log_path}) ---\n{_tail(log_path)}"
        )
        if exited is None:
            break  # it is running but not healthy: retrying on another port will not help
    pytest.fail(f"Plexus HTTP server did not become ready.\n{last_error}", pytrace=False)


@pytest.fixture(scope="session")
def plexus_http(plexus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One HTTP server for the whole session (tests are independent at the MCP level)."""
    server = start_http_server(plexus_bin, tmp_path_factory.mktemp("plexus-http"))
    try:
        yield server
    finally:
        _stop(server.process)
        if server.process.returncode not in (0, -15, 143):  # clean exit or SIGTERM
            print(f"\n[plexus http] exit code {server.process.returncode}; log tail:\n{_tail(server.log_path)}")


@pytest.fixture
def http_url(plexus_http: HttpServer) -> str:
    if plexus_http.process.poll() is not None:
        pytest.fail(
            f"Plexus HTTP server died (exit {plexus_http.process.returncode}).\n{_tail(plexus_http.log_path)}",
            pytrace=False,
        )
    return plexus_http.mcp_url
