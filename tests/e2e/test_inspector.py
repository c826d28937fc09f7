"""Plexus `conformance` module driven by the MCP Inspector CLI (npm @modelcontextprotocol/inspector).

Inspector v2 one-shot CLI (flags from clients/cli/build/index.js of the pinned version):

    mcp-inspector --cli --method <m> [--tool-name N] [--tool-arg k=v ...] [--uri U]
                  [--prompt-name N] [--prompt-args k=v ...] [--format json]
                  [--protocol-era legacy|auto|modern]
                  (--transport http --server-url URL | -- <command> <args...>)

`--format json` prints exactly one JSON object on stdout: {"result": <MCP result>}.
A stdio server command goes after `--` (everything after it is the target, verbatim).
`--protocol-era` defaults to legacy for ad-hoc targets; `modern` pins 2026-07-28.

Inspector 2.x declares engines.node >= 22.19. When the local `node` is older, the CLI is
run with Node 22 from npm: `npx -y -p node@22 -p @modelcontextprotocol/inspector@VER mcp-inspector`.
Override the whole launcher with INSPECTOR_CMD (shlex-split), e.g.
INSPECTOR_CMD="node /path/to/inspector/clients/launcher/build/index.js".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest

INSPECTOR_VERSION = "2.12.0"
INSPECTOR_PKG = f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"
MIN_NODE = (22, 19)

INSTALL_TIMEOUT = 600  # first run downloads the package (and maybe node@22)
CALL_TIMEOUT = 180

SIMPLE_TEXT = "This is a simple text response for testing."
STATIC_TEXT_URI = "test://static-text"
STATIC_TEXT = "This is the content of the static text resource."
SIMPLE_PROMPT_TEXT = "This is a simple prompt for testing."

TRANSPORTS = ["stdio", "http"]
ERAS = ["legacy", "modern"]  # inspector --protocol-era values: initialize handshake vs 2026-07-28 pin


def _node_version() -> tuple[int, int] | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"v(\d+)\.(\d+)", out.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _inspector_env() -> dict[str, str]:
    return {
        **os.environ,
        "npm_config_yes": "true",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "NO_UPDATE_NOTIFIER": "1",
        "NO_COLOR": "1",
    }


@pytest.fixture(scope="session")
def inspector() -> list[str]:
    """argv prefix that runs the pinned Inspector launcher (mode flag `--cli` not included)."""
    if override := os.environ.get("INSPECTOR_CMD"):
        cmd = shlex.split(override)
    else:
        if shutil.which("npx") is None:
            pytest.skip("npx not found; the Inspector CLI tests need Node.js/npm")
        node = _node_version()
        if node is not None and node >= MIN_NODE:
            cmd = ["npx", "-y", INSPECTOR_PKG]
        else:
            cmd = ["npx", "-y", "-p", "node@22", "-p", INSPECTOR_PKG, "mcp-inspector"]
    # Warm-up: downloads on first use, and proves the launcher runs.
    proc = subprocess.run(
        [*cmd, "--cli", "--version"],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        env=_inspector_env(),
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 or INSPECTOR_VERSION not in proc.stdout:
        pytest.fail(
            f"cannot run the MCP Inspector CLI ({shlex.join(cmd)} --cli --version): rc={proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return cmd


def _passthrough_env_flags() -> list[str]:
    """`-e KEY=VALUE` for the stdio child (the Inspector does not forward the whole environment)."""
    flags: list[str] = []
    for key, value in os.environ.items():
        if value and (key in ("RUST_LOG", "RUST_BACKTRACE") or key.startswith("PLEXUS_")):
            flags += ["-e", f"{key}={value}"]
    return flags


@pytest.fixture(params=TRANSPORTS)
def target_args(request: pytest.FixtureRequest) -> list[str]:
    """Trailing CLI args selecting the server; must come last (stdio uses `--`)."""
    if request.param == "stdio":
        stdio_cmd: list[str] = request.getfixturevalue("stdio_cmd")
        return [*_passthrough_env_flags(), "--", *stdio_cmd]
    url: str = request.getfixturevalue("http_url")
    return ["--transport", "http", "--server-url", url]


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return request.param


def run_inspector(inspector: list[str], method_args: list[str], era: str, target_args: list[str]) -> dict[str, Any]:
    """Run one CLI call with `--format json` and return the `result` object."""
    argv = [
        *inspector,
        "--cli",
        *method_args,
        "--format",
        "json",
        "--protocol-era",
        era,
        "--connect-timeout",
        "30000",
        *target_args,  # last: may contain `--`
    ]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            env=_inspector_env(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"inspector timed out after {CALL_TIMEOUT}s: {shlex.join(argv)}\n{exc.stderr}", pytrace=False)
    diag = f"$ {shlex.join(argv)}\nrc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, diag
    # stdout carries exactly one JSON object; be tolerant of stray non-JSON lines anyway.
    envelopes = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert envelopes, diag
    envelope = json.loads(envelopes[-1])
    assert "result" in envelope, diag
    return envelope["result"]


def test_tools_list(inspector, era, target_args):
    result = run_inspector(inspector, ["--method", "tools/list"], era, target_args)
    names = {tool["name"] for tool in result["tools"]}
    assert "test_simple_text" in names, sorted(names)
    assert "test_tool_with_progress" in names, sorted(names)


def test_tools_call_simple_text(inspector, era, target_args):
    result = run_inspector(inspector, ["--method", "tools/call", "--tool-name", "test_simple_text"], era, target_args)
    assert result.get("isError") in (None, False), result
    assert result["content"] == [{"type": "text", "text": SIMPLE_TEXT}], result


def test_tools_call_with_progress(inspector, era, target_args):
    # The CLI does not print progress; this checks the call completes and returns content.
    result = run_inspector(
        inspector, ["--method", "tools/call", "--tool-name", "test_tool_with_progress"], era, target_args
    )
    assert result.get("isError") in (None, False), result
    assert result["content"], result


def test_resources_read(inspector, era, target_args):
    result = run_inspector(inspector, ["--method", "resources/read", "--uri", STATIC_TEXT_URI], era, target_args)
    assert len(result["contents"]) == 1, result
    contents = result["contents"][0]
    assert contents["uri"] == STATIC_TEXT_URI
    assert contents["mimeType"] == "text/plain"
    assert contents["text"] == STATIC_TEXT


def test_resources_list(inspector, era, target_args):
    result = run_inspector(inspector, ["--method", "resources/list"], era, target_args)
    assert STATIC_TEXT_URI in {r["uri"] for r in result["resources"]}, result


def test_prompts_get_simple(inspector, era, target_args):
    result = run_inspector(inspector, ["--method", "prompts/get", "--prompt-name", "test_simple_prompt"], era, target_args)
    assert result["messages"] == [{"role": "user", "content": {"type": "text", "text": SIMPLE_PROMPT_TEXT}}], result


def test_prompts_get_with_arguments(inspector, era, target_args):
    result = run_inspector(
        inspector,
        [
            "--method",
            "prompts/get",
            "--prompt-name",
            "test_prompt_with_arguments",
            "--prompt-args",  # variadic: key=value pairs until the next option
            "arg1=hello",
            "arg2=world",
        ],
        era,
        target_args,
    )
    assert result["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Prompt with arguments: arg1='hello', arg2='world'"}}
    ], result
