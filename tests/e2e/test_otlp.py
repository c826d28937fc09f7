"""The OTLP exporter: one span per call, OTLP/HTTP JSON, to a collector.

The collector here is a local HTTP endpoint (no OpenTelemetry Collector can
be installed from the package registries); every request it receives is
checked against the official protobuf schema from the `opentelemetry-proto`
package (`json_format.Parse`, unknown fields refused), after the OTLP/JSON
hex ids are turned into the base64 the generic protobuf JSON mapping uses.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conftest import _stop
from helpers import rpc, start

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Collector:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.paths.append(self.path)
                received.requests.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[dict]:
        return [s for r in self.requests for rs in r["body"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def as_protobuf(body: dict) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON with the official schema (hex ids -> base64 first)."""
    body = json.loads(json.dumps(body))
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
    return json_format.Parse(json.dumps(body), ExportTraceServiceRequest())


def test_every_call_becomes_a_span_at_the_collector(plexus_bin: str, tmp_path: Path, monkeypatch) -> None:
    collector = Collector()
    monkeypatch.setenv("PLEXUS_OTLP_ENDPOINT", collector.url)
    proc, port = start([plexus_bin, "serve", "--data-dir", str(tmp_path / "d"), "--allow-anonymous"], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        assert rpc(url, "echo", {"text": "plain"}, request_id=1)[0] == 200
        assert rpc(url, "echo", {"text": "traced"}, {"traceparent": TRACEPARENT}, request_id=2)[0] == 200
        status, body, _ = rpc(url, "echo", {"text": 42}, request_id=3)
        assert status == 200 and body["result"]["isError"], body
        deadline = time.monotonic() + 10
        while len(collector.spans()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        _stop(proc)

    assert set(collector.paths) == {"/v1/traces"}
    assert all(r["type"].startswith("application/json") for r in collector.requests)
    parsed = [as_protobuf(r["body"]) for r in collector.requests]
    resource = {a.key: a.value.string_value for a in parsed[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "plexus"

    spans = {next(a["value"]["stringValue"] for a in s["attributes"] if a["key"] == "jsonrpc.request.id"): s
             for s in collector.spans()}
    assert set(spans) == {"1", "2", "3"}, spans
    for s in spans.values():
        attrs = {a["key"]: a["value"]["stringValue"] for a in s["attributes"]}
        assert s["name"] == "tools/call echo" and s["kind"] == 2
        assert attrs["mcp.method.name"] == "tools/call" and attrs["gen_ai.tool.name"] == "echo"
        assert attrs["plexus.tenant"] == "default"
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > (time.time() - 60) * 1e9
        assert len(s["traceId"]) == 32 and len(s["spanId"]) == 16
        assert "plain" not in json.dumps(s) and "traced" not in json.dumps(s), "arguments are never exported"
    assert spans["1"]["status"] == {"code": 1} and "parentSpanId" not in spans["1"]
    assert spans["2"]["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert spans["2"]["parentSpanId"] == "00f067aa0ba902b7"
    assert spans["3"]["status"] == {"code": 2, "message": "invalid_arguments"}
    assert {"key": "error.type", "value": {"stringValue": "invalid_arguments"}} in spans["3"]["attributes"]


def test_a_bad_endpoint_is_refused_at_start(plexus_bin: str, tmp_path: Path) -> None:
    import subprocess

    r = subprocess.run(
        [plexus_bin, "config", "check", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PLEXUS_OTLP_ENDPOINT": "collector:4318", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode != 0 and "must be an http(s) URL" in r.stderr, r.stderr
