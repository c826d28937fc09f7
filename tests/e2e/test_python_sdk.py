"""Plexus `conformance` module driven by the official MCP Python SDK (mcp 2.x).

Matrix: transport {stdio, http} x era {legacy (2025-11-25 initialize handshake),
2026-07-28 (stateless per-request `_meta` envelope)}.

The era is chosen with `mcp.Client(..., mode=...)`:
  mode="legacy"      -> `initialize` handshake (negotiates 2025-11-25)
  mode="2026-07-28"  -> pin the modern version, no handshake/probe; every request carries
                        `_meta["io.modelcontextprotocol/protocolVersion"]` (+ on HTTP the
                        MCP-Protocol-Version / Mcp-Method / Mcp-Name headers)
  mode="auto"        -> probe `server/discover`, fall back to `initialize`

Expected values are the conformance suite's fixtures
(@modelcontextprotocol/conformance, src/scenarios/server/*).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent, TextResourceContents

pytestmark = pytest.mark.anyio

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"

SIMPLE_TEXT = "This is a simple text response for testing."
STATIC_TEXT_URI = "test://static-text"
STATIC_TEXT = "This is the content of the static text resource."
SIMPLE_PROMPT = "test_simple_prompt"
SIMPLE_PROMPT_TEXT = "This is a simple prompt for testing."
ARGS_PROMPT = "test_prompt_with_arguments"

TEST_TIMEOUT = 60  # seconds, per test
READ_TIMEOUT = 30  # seconds, per request

TRANSPORTS = ["stdio", "http"]
ERAS = ["legacy", MODERN_VERSION]


def expected_version(era: str) -> str:
    return LEGACY_VERSION if era == "legacy" else era


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def target(transport: str, request: pytest.FixtureRequest) -> StdioServerParameters | str:
    """What `mcp.Client` connects to: StdioServerParameters (spawns the binary) or the /mcp URL."""
    if transport == "stdio":
        return request.getfixturevalue("stdio_params")
    return request.getfixturevalue("http_url")


@asynccontextmanager
async def connect(target: StdioServerParameters | str, mode: str):
    with anyio.fail_after(TEST_TIMEOUT):
        async with Client(target, mode=mode, read_timeout_seconds=READ_TIMEOUT) as client:
            yield client


def only_text(blocks: list[Any]) -> str:
    assert len(blocks) == 1, blocks
    block = blocks[0]
    assert isinstance(block, TextContent), block
    return block.text


# --------------------------------------------------------------------------- Client (high level)


async def test_negotiated_version(target, era):
    async with connect(target, era) as client:
        assert client.protocol_version == expected_version(era)
        if era == "legacy":
            # With a version pin (mode="2026-07-28") the SDK synthesizes an empty DiscoverResult
            # instead of asking the server, so capabilities are only known after initialize /
            # server/discover (see test_auto_mode_prefers_2026 and test_raw_session_discover).
            caps = client.server_capabilities
            assert caps.tools is not None
            assert caps.resources is not None
            assert caps.prompts is not None


async def test_list_tools_and_call_simple_text(target, era):
    async with connect(target, era) as client:
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        assert "test_simple_text" in names, sorted(names)
        assert "test_tool_with_progress" in names, sorted(names)
        for tool in tools.tools:
            assert tool.input_schema.get("type") == "object", (tool.name, tool.input_schema)

        result = await client.call_tool("test_simple_text", {})
        assert not result.is_error, result
        assert only_text(result.content) == SIMPLE_TEXT


async def test_read_static_text_resource(target, era):
    async with connect(target, era) as client:
        result = await client.read_resource(STATIC_TEXT_URI)
        assert len(result.contents) == 1, result.contents
        contents = result.contents[0]
        assert isinstance(contents, TextResourceContents), contents
        assert str(contents.uri) == STATIC_TEXT_URI
        assert contents.mime_type == "text/plain"
        assert contents.text == STATIC_TEXT


async def test_get_simple_prompt(target, era):
    async with connect(target, era) as client:
        prompts = await client.list_prompts()
        assert SIMPLE_PROMPT in {p.name for p in prompts.prompts}

        result = await client.get_prompt(SIMPLE_PROMPT)
        assert len(result.messages) == 1, result.messages
        message = result.messages[0]
        assert message.role == "user"
        assert isinstance(message.content, TextContent), message.content
        assert message.content.text == SIMPLE_PROMPT_TEXT


async def test_get_prompt_with_arguments(target, era):
    async with connect(target, era) as client:
        result = await client.get_prompt(ARGS_PROMPT, {"arg1": "hello", "arg2": "world"})
        assert len(result.messages) == 1, result.messages
        message = result.messages[0]
        assert message.role == "user"
        assert isinstance(message.content, TextContent), message.content
        assert message.content.text == "Prompt with arguments: arg1='hello', arg2='world'"


async def test_tool_with_progress(target, era):
    received: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        received.append((progress, total, message))

    async with connect(target, era) as client:
        result = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
        assert not result.is_error, result
        assert result.content, result

    # The SDK puts `_meta.progressToken` (= the request id) on the request when a callback is
    # given; the fixture then reports 0/100, 50/100, 100/100 before returning its result.
    assert [(p, t) for p, t, _ in received] == [(0, 100), (50, 100), (100, 100)], received


async def test_auto_mode_prefers_2026(target):
    """mode='auto' probes server/discover; a dual-era server must be picked up as 2026-07-28."""
    async with connect(target, "auto") as client:
        assert client.protocol_version == MODERN_VERSION
        caps = client.server_capabilities
        assert caps.tools is not None
        assert caps.resources is not None
        assert caps.prompts is not None
        result = await client.call_tool("test_simple_text", {})
        assert only_text(result.content) == SIMPLE_TEXT


# --------------------------------------------------------------------------- ClientSession (low level)


@asynccontextmanager
async def raw_session(transport: str, request: pytest.FixtureRequest):
    """stdio_client / streamable_http_client + ClientSession, without the `Client` wrapper."""
    if transport == "stdio":
        streams = stdio_client(request.getfixturevalue("stdio_params"))
    else:
        streams = streamable_http_client(request.getfixturevalue("http_url"))
    with anyio.fail_after(TEST_TIMEOUT):
        async with streams as (read_stream, write_stream):
            async with ClientSession(read_stream, write_stream, read_timeout_seconds=READ_TIMEOUT) as session:
                yield session


async def test_raw_session_initialize(transport, request):
    async with raw_session(transport, request) as session:
        init = await session.initialize()
        assert init.protocol_version == LEGACY_VERSION
        assert init.server_info.name
        result = await session.call_tool("test_simple_text", {})
        assert only_text(result.content) == SIMPLE_TEXT


async def test_raw_session_discover(transport, request):
    async with raw_session(transport, request) as session:
        discovered = await session.discover()
        assert MODERN_VERSION in discovered.supported_versions, discovered
        assert session.protocol_version == MODERN_VERSION
        result = await session.read_resource(STATIC_TEXT_URI)
        assert result.contents[0].text == STATIC_TEXT
