"""Federated knowledge search end to end: the server's own HTTP client asks
three live sources configured in plexus.toml (a Jira that answers, a
Confluence that hangs, a GitHub that refuses the credential) while searching
its index; the answer arrives by the deadlines, says how each source fared,
and keeps only what the caller may read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import _stop
from helpers import modern_call, start

KEYS = {n: "pk_" + hashlib.sha256(n.encode()).hexdigest()[:32] for n in ("eng", "hr")}
ATLASSIAN = "Basic " + base64.b64encode(b"bot@acme.example:atl-token").decode()


def adf(text: str) -> dict:
    return {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}


def issue(key: str, summary: str, text: str, security: str | None = None) -> dict:
    fields = {
        "summary": summary,
        "description": adf(text),
        "updated": "2026-11-20T10:15:30.000+0900",
        "project": {"key": key.split("-")[0]},
        "reporter": {"displayName": "佐藤"},
        "issuetype": {"name": "Bug"},
        "security": {"name": "Confidential"} if security else None,
        "comment": {"comments": [], "total": 0},
    }
    return {"id": key, "key": key, "fields": fields}


class Saas(BaseHTTPRequestHandler):
    seen: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        Saas.seen.append(self.path)
        if url.path == "/jira/rest/api/3/search/jql":
            if self.headers.get("Authorization") != ATLASSIAN:
                return self.reply(401, {"errorMessages": ["You are not authenticated."]})
            jql = query.get("jql", [""])[0]
            if "text ~" not in jql:  # the sync: nothing indexed, only live answers count here
                return self.reply(200, {"issues": [], "isLast": True})
            return self.reply(200, {"isLast": True, "issues": [
                issue("ENG-7", "決済バッチの遅延", "Settlement batch delayed by the certificate rotation."),
                issue("HR-3", "Salary review", "Settlement of the salary review for the certificate team.", security="Confidential"),
            ]})
        if url.path.startswith("/wiki/"):
            time.sleep(20)  # hangs far past its deadline
            return self.reply(200, {"results": [], "_links": {}})
        if url.path.startswith("/github/"):
            return self.reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        self.reply(404, {"message": "Not Found"})


def config(tmp_path: Path, base: str) -> Path:
    (tmp_path / "data" / "secrets").mkdir(parents=True)
    (tmp_path / "data" / "secrets" / "atlassian.token").write_text("bot@acme.example:atl-token\n")
    (tmp_path / "data" / "secrets" / "github.token").write_text("ghp_wrong\n")
    keys = "".join(
        f'[[auth.api_keys]]\nname = "{n}"\nsha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\ntenant = "default"\nroles = ["reader", "{n}"]\n'
        for n, k in KEYS.items()
    )
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(f"""
[modules]
enabled = ["knowledge"]

[knowledge]
sync_interval_seconds = 0

[[knowledge.sources]]
name = "tickets"
kind = "jira"
base_url = "{base}/jira"
projects = ["ENG", "HR"]
token_file = "secrets/atlassian.token"
basic_auth = true
readers = ["role:eng", "role:hr"]
space_readers = {{ "HR/Confidential" = ["role:hr"] }}
live = true
deadline_ms = 1500

[[knowledge.sources]]
name = "wiki"
kind = "confluence"
base_url = "{base}"
spaces = ["ENG"]
token_file = "secrets/atlassian.token"
basic_auth = true
readers = ["everyone"]
live = true
deadline_ms = 400

[[knowledge.sources]]
name = "code"
kind = "github"
base_url = "{base}/github"
repo = "acme/payments"
token_file = "secrets/github.token"
readers = ["everyone"]
live = true

{keys}
[roles.reader]
tools = ["search_knowledge"]
""", encoding="utf-8")
    return cfg


def test_live_sources_answer_time_out_or_fail_each_on_its_own(plexus_bin: str, tmp_path: Path) -> None:
    fixture = ThreadingHTTPServer(("127.0.0.1", 0), Saas)
    fixture.daemon_threads = True
    threading.Thread(target=fixture.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{fixture.server_address[1]}"
    cfg = config(tmp_path, base)
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data")], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        started = time.monotonic()
        status, reply = modern_call(url, "search_knowledge", {"query": "settlement certificate"}, key=KEYS["eng"], timeout=15)
        took = time.monotonic() - started
        assert status == 200 and "result" in reply, reply
        found = reply["result"]["structuredContent"]
        states = {s["source"]: s["status"] for s in found["sources"]}
        assert states == {"tickets": "answered", "wiki": "timed_out", "code": "failed"}, found["sources"]
        code = next(s for s in found["sources"] if s["source"] == "code")
        assert "401" in code["error"], code
        assert took < 10, f"the hanging source held the search for {took:.1f} s"
        # eng may read ENG-7 but not HR-3 (security level Confidential).
        assert [h["id"] for h in found["hits"]] == ["tickets:issue/ENG-7"], found
        assert found["facets"] == {"tickets": 1} and found["total"] == 1, found
        hit = found["hits"][0]
        assert hit["title"] == "ENG-7 決済バッチの遅延" and hit["url"] == f"{base}/jira/browse/ENG-7", hit
        assert "<mark>" in hit["snippet"] and hit["author"] == "佐藤", hit

        status, reply = modern_call(url, "search_knowledge", {"query": "settlement certificate"}, key=KEYS["hr"], timeout=15)
        hr = reply["result"]["structuredContent"]
        assert sorted(h["id"] for h in hr["hits"]) == ["tickets:issue/ENG-7", "tickets:issue/HR-3"], hr
        assert hr["cached"] is False, "live results are never served from the cache"

        # Filtering to the index's own sources leaves the live ones out.
        status, reply = modern_call(url, "search_knowledge", {"query": "settlement", "filters": {"sources": ["tickets"]}}, key=KEYS["eng"], timeout=15)
        only = reply["result"]["structuredContent"]
        assert [s["source"] for s in only["sources"]] == ["tickets"], only
        assert any("text%20~" in p or "text+~" in p for p in Saas.seen), Saas.seen
    finally:
        _stop(proc)
        fixture.shutdown()
