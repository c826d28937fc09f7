"""The knowledge module end to end: a filesystem source synced by the server,
searched over MCP HTTP by callers who may read different things.

Two tenants each have a source; within acme, the handbook is for staff and
the incident notes for the sre group's role only. Search, snippets, facets
and get_document all stay inside what the caller may read.
"""

from __future__ import annotations

import hashlib
import subprocess
import urllib.request
from pathlib import Path

from conftest import _stop
from helpers import UpdatesHeard, modern_call, start

KEYS = {name: "pk_" + hashlib.sha256(name.encode()).hexdigest()[:32] for name in ("admin", "staff", "guest", "globex")}


def config(tmp_path: Path) -> Path:
    handbook, incidents, globex = tmp_path / "handbook", tmp_path / "incidents", tmp_path / "globex"
    for d in (handbook, incidents, globex):
        d.mkdir()
    (handbook / "deploy.md").write_text("# デプロイ手順\n\n本番環境へのデプロイは金曜日に行わない。payments チームの承認が必要。\n", encoding="utf-8")
    (handbook / "expenses.html").write_text(
        "<html><title>Expense policy</title><body><nav>menu</nav><main><h1>Expenses</h1>"
        "<p>Submit receipts for payments within 30 days.</p></main></body></html>",
        encoding="utf-8",
    )
    (incidents / "2026-11-03.md").write_text("# Payments outage\nRoot cause: expired certificate.\n", encoding="utf-8")
    (globex / "secret.md").write_text("# Globex payments plan\nConfidential.\n", encoding="utf-8")
    keys = "".join(
        f'[[auth.api_keys]]\nname = "{n}"\nsha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n'
        f'tenant = "{"globex" if n == "globex" else "acme"}"\nroles = ["{"admin" if n == "admin" else "reader" if n != "guest" else "guest"}"]\n'
        for n, k in KEYS.items()
    )
    text = f"""
[modules]
enabled = ["system", "knowledge"]

[knowledge]
sync_interval_seconds = 0

[[knowledge.sources]]
name = "handbook"
kind = "filesystem"
path = "{handbook}"
tenant = "acme"
readers = ["role:reader", "role:admin"]
url_prefix = "https://wiki.acme.example/handbook"

[[knowledge.sources]]
name = "incidents"
kind = "filesystem"
path = "{incidents}"
tenant = "acme"
readers = ["role:admin"]

[[knowledge.sources]]
name = "plans"
kind = "filesystem"
path = "{globex}"
tenant = "globex"
readers = ["everyone"]

{keys}
[roles.reader]
tools = ["search_knowledge", "get_document", "ask_question", "create_summary"]
[roles.guest]
tools = ["search_knowledge", "get_document"]
"""
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def search(url: str, who: str, query: str, **extra) -> dict:
    status, reply = modern_call(url, "search_knowledge", {"query": query, **extra}, key=KEYS[who])
    assert status == 200 and "result" in reply, reply
    return reply["result"]


def test_search_and_get_stay_within_what_the_caller_may_read(plexus_bin: str, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    data = tmp_path / "data"
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        # Sync explicitly (the start-up sync may still be running; syncs queue).
        status, reply = modern_call(url, "sync_knowledge", {}, key=KEYS["admin"])
        outcomes = {o["source"]: o["report"] for o in reply["result"]["structuredContent"]["outcomes"]}
        assert set(outcomes) == {"handbook", "incidents"}, "only the caller's tenant's sources"
        assert outcomes["handbook"]["files"] == 2

        staff = search(url, "staff", "payments")["structuredContent"]
        assert staff["total"] == 2 and staff["facets"] == {"handbook": 2}, staff
        assert {h["title"] for h in staff["hits"]} == {"デプロイ手順", "Expense policy"}
        expense = next(h for h in staff["hits"] if h["title"] == "Expense policy")
        assert "<mark>payments</mark>" in expense["snippet"] and "menu" not in expense["snippet"]
        assert expense["url"] == "https://wiki.acme.example/handbook/expenses.html"

        admin = search(url, "admin", "payments")["structuredContent"]
        assert admin["total"] == 3 and admin["facets"] == {"handbook": 2, "incidents": 1}, admin

        ja = search(url, "staff", "金曜日")["structuredContent"]
        assert [h["id"] for h in ja["hits"]] == ["handbook:deploy.md"], ja

        assert search(url, "guest", "payments")["structuredContent"]["total"] == 0
        globex = search(url, "globex", "payments")["structuredContent"]
        assert [h["title"] for h in globex["hits"]] == ["Globex payments plan"], globex

        # get_document: readable, unreadable and missing
        status, reply = modern_call(url, "get_document", {"id": "handbook:deploy.md"}, key=KEYS["staff"])
        doc = reply["result"]["structuredContent"]
        assert doc["title"] == "デプロイ手順" and "金曜日" in doc["body"] and doc["acl"] == ["role:reader", "role:admin"]
        hidden = modern_call(url, "get_document", {"id": "incidents:2026-11-03.md"}, key=KEYS["staff"])[1]["result"]
        missing = modern_call(url, "get_document", {"id": "incidents:nope.md"}, key=KEYS["staff"])[1]["result"]
        assert hidden["isError"] and missing["isError"]
        assert hidden["content"][0]["text"].replace("2026-11-03", "X") == missing["content"][0]["text"].replace("nope", "X")
        cross = modern_call(url, "get_document", {"id": "plans:secret.md"}, key=KEYS["admin"])[1]["result"]
        assert cross["isError"], "another tenant's document is not found"

        # bad input: a precise tool error, never a crash
        bad = modern_call(url, "search_knowledge", {"query": "x" * 2000}, key=KEYS["staff"])[1]["result"]
        assert bad["isError"] and "at most 1000" in bad["content"][0]["text"]
        ok = search(url, "staff", '"unbalanced (payments')
        assert not ok.get("isError"), ok

        # the same search again comes from the cache until the index changes
        first = search(url, "staff", "expense receipts")["structuredContent"]
        again = search(url, "staff", "expense receipts")["structuredContent"]
        assert (first["cached"], again["cached"]) == (False, True) and first["hits"] == again["hits"]
        assert search(url, "admin", "expense receipts")["structuredContent"]["cached"] is False, "per reader"
        (tmp_path / "handbook" / "expenses.html").write_text(
            "<html><title>Expense policy v2</title><main><p>Receipts now within 60 days.</p></main></html>", encoding="utf-8"
        )
        modern_call(url, "sync_knowledge", {"source": "handbook"}, key=KEYS["admin"])
        after = search(url, "staff", "expense receipts")["structuredContent"]
        assert after["cached"] is False and after["hits"][0]["title"] == "Expense policy v2", after
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        hits = next(l for l in metrics.splitlines() if l.startswith("plexus_knowledge_cache_hits_total "))
        assert int(hits.split()[1]) >= 1, hits

        # quality report over what the caller may read
        q = modern_call(url, "assess_knowledge_quality", {"limit": 5}, key=KEYS["admin"])[1]["result"]["structuredContent"]
        assert q["documents"] == 3 and len(q["worst"]) == 3, q
        assert all("no author" in d["issues"] for d in q["worst"]) and 0 < q["average_score"] < 1, q
        only = modern_call(url, "assess_knowledge_quality", {"source": "incidents"}, key=KEYS["admin"])[1]
        assert only["result"]["structuredContent"]["documents"] == 1, only

        # a role without the tool neither sees nor can call sync_knowledge
        status, reply = modern_call(url, "sync_knowledge", {}, key=KEYS["staff"])
        assert "error" in reply or reply["result"].get("isError"), reply
    finally:
        _stop(proc)

    # With the server stopped, the command line searches the same index.
    r = subprocess.run(
        [plexus_bin, "kb", "search", "payments", "--tenant", "acme", "--as", "role:admin", "--config", str(cfg), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and "2 documents match" in r.stdout, r.stdout + r.stderr  # expenses v2 no longer says payments
    r = subprocess.run(
        [plexus_bin, "kb", "sync", "--config", str(cfg), "--data-dir", str(data)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "acme/handbook: 2 files" in r.stdout, r.stdout + r.stderr


def test_questions_are_answered_by_the_clients_model_or_extractively(plexus_bin: str, tmp_path: Path) -> None:
    """ask_question: with a sampling client (the Python SDK, both eras) the
    client's model writes the answer from numbered passages; without one the
    answer is extracted. Citations only ever name readable documents."""
    import anyio
    from mcp import Client
    from mcp.types import CreateMessageResult, TextContent

    cfg = config(tmp_path)
    data = tmp_path / "data"
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        modern_call(url, "sync_knowledge", {}, key=KEYS["admin"])
        # No sampling capability: extractive, cited, trimmed to the caller.
        status, reply = modern_call(url, "ask_question", {"question": "What was the root cause of the payments outage?"}, key=KEYS["admin"])
        admin = reply["result"]["structuredContent"]
        assert admin["method"] == "extractive" and "expired certificate" in admin["answer"], admin
        n = next(c["n"] for c in admin["citations"] if c["id"] == "incidents:2026-11-03.md")
        assert f"[{n}]" in admin["answer"] and admin["confidence"] > 0.5, admin
        # The same question from staff, who may not read the incident notes:
        # neither the answer nor its citations come from them.
        status, reply = modern_call(url, "ask_question", {"question": "What was the root cause of the payments outage?"}, key=KEYS["staff"])
        staff = reply["result"]["structuredContent"]
        assert "certificate" not in staff["answer"], staff
        assert staff["citations"] and all(c["id"].startswith("handbook:") for c in staff["citations"]), staff
        # Summaries likewise: by query, only readable documents; by id, an
        # unreadable one is "not found", exactly like a missing one.
        def summary(who: str, args: dict) -> dict:
            return modern_call(url, "create_summary", args, key=KEYS[who])[1]["result"]

        mine = summary("staff", {"query": "payments outage"})["structuredContent"]
        assert mine["citations"] and all(c["id"].startswith("handbook:") for c in mine["citations"]), mine
        assert "certificate" not in mine["answer"], mine
        theirs = summary("admin", {"query": "payments outage"})["structuredContent"]
        assert any(c["id"] == "incidents:2026-11-03.md" for c in theirs["citations"]), theirs
        hidden = summary("staff", {"ids": ["incidents:2026-11-03.md"]})
        missing = summary("staff", {"ids": ["incidents:nope.md"]})
        assert hidden["isError"] and missing["isError"], (hidden, missing)
        assert hidden["content"][0]["text"].replace("2026-11-03", "X") == missing["content"][0]["text"].replace("nope", "X")
    finally:
        _stop(proc)

    # The SDK client samples; the server runs anonymous (admin) for it.
    seen: list[str] = []

    async def sample(context, params) -> CreateMessageResult:
        prompt = params.messages[0].content.text
        seen.append(prompt)
        assert params.system_prompt and "numbered sources" in params.system_prompt
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="金曜日にはデプロイしません [1]。"), model="test-model"
        )

    # Anonymous callers belong to the default tenant: move the sources there.
    cfg2 = tmp_path / "anonymous.toml"
    cfg2.write_text(cfg.read_text().replace('tenant = "acme"\nreaders', 'tenant = "default"\nreaders'), encoding="utf-8")
    proc, port = start(
        [plexus_bin, "serve", "--config", str(cfg2), "--data-dir", str(tmp_path / "data2"), "--allow-anonymous"],
        tmp_path / "log2",
    )
    url = f"http://127.0.0.1:{port}/mcp"
    modern_call(url, "sync_knowledge", {}, key=None)

    async def ask(mode: str) -> dict:
        with anyio.fail_after(30):
            async with Client(url, mode=mode, read_timeout_seconds=20, sampling_callback=sample) as client:
                result = await client.call_tool("ask_question", {"question": "金曜日にデプロイしてもよいですか？"})
                # the same document as a resource, and the research prompt
                doc = await client.read_resource("kb://documents/handbook:deploy.md")
                assert doc.contents[0].text.startswith("# デプロイ手順") and "金曜日" in doc.contents[0].text
                templates = await client.list_resource_templates()
                assert "kb://documents/{id}" in [t.uri_template for t in templates.resource_templates]
                prompt = await client.get_prompt("research_question", {"question": "承認フローは？"})
                assert "承認フローは？" in prompt.messages[0].content.text and "search_knowledge" in prompt.messages[0].content.text
                return result.structured_content

    try:
        for mode in ("legacy", "2026-07-28"):
            answer = anyio.run(ask, mode)
            assert answer["method"] == "sampling" and answer["model"] == "test-model", answer
            assert answer["answer"] == "金曜日にはデプロイしません [1]。"
            assert answer["citations"][0]["id"] == "handbook:deploy.md", answer
            assert "[1] デプロイ手順" in seen[-1] and "金曜日" in seen[-1], seen[-1]
        assert len(seen) == 2, "one sampling request per era"
    finally:
        _stop(proc)


def test_subscribers_hear_when_a_synced_document_changes(plexus_bin: str, tmp_path: Path) -> None:
    """`kb://documents/{id}` subscriptions in both eras: a sync that changes
    the document notifies its subscribers (resources/subscribe for legacy
    sessions, subscriptions/listen for 2026-07-28 clients)."""
    import anyio
    from mcp import Client

    cfg = tmp_path / "anonymous.toml"
    cfg.write_text(config(tmp_path).read_text().replace('tenant = "acme"\nreaders', 'tenant = "default"\nreaders'), encoding="utf-8")
    proc, port = start(
        [plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data"), "--allow-anonymous"],
        tmp_path / "log",
    )
    url = f"http://127.0.0.1:{port}/mcp"
    uri = "kb://documents/handbook:deploy.md"
    deploy = tmp_path / "handbook" / "deploy.md"
    try:
        modern_call(url, "sync_knowledge", {}, key=None)

        async def legacy() -> list[str]:
            heard = UpdatesHeard()
            with anyio.fail_after(30):
                async with Client(url, mode="legacy", read_timeout_seconds=20, message_handler=heard) as client:
                    await client.subscribe_resource(uri)
                    deploy.write_text("# デプロイ手順\n\n金曜日も可。\n", encoding="utf-8")
                    await client.call_tool("sync_knowledge", {"source": "handbook"})
                    await heard.got.wait()
            return heard.uris

        async def modern() -> list[str]:
            with anyio.fail_after(30):
                async with Client(url, mode="2026-07-28", read_timeout_seconds=20) as client:
                    async with client.listen(resource_subscriptions=[uri]) as sub:
                        deploy.write_text("# デプロイ手順\n\n月曜日のみ。\n", encoding="utf-8")
                        await client.call_tool("sync_knowledge", {"source": "handbook"})
                        async for event in sub:
                            return [str(getattr(event, "uri", event))]
            return []

        assert anyio.run(legacy) == [uri]
        heard = anyio.run(modern)
        assert len(heard) == 1 and uri in heard[0], heard
        # The index holds what the second edit wrote.
        status, reply = modern_call(url, "get_document", {"id": "handbook:deploy.md"}, key=None)
        assert "月曜日のみ" in reply["result"]["structuredContent"]["body"], reply
    finally:
        _stop(proc)
