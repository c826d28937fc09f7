"""Roles, argument conditions and policy reload, end to end over HTTP with API keys.

A `reader` key may call `echo`, and only with an allowed text. Editing the
configuration file while the server runs changes what the key may do within a
second; a broken edit is refused and the policy in force stays.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from conftest import _stop
from helpers import modern_call, start

KEY = "pk_" + "ab12" * 8
DIGEST = hashlib.sha256(KEY.encode()).hexdigest()

CONFIG = f"""
[[auth.api_keys]]
name = "reader-bot"
sha256 = "{DIGEST}"
tenant = "default"
roles = ["reader"]

[roles.reader]
tools = [{{tools}}]
[[roles.reader.conditions]]
tools = "echo"
argument = "/text"
one_of = ["hello", "こんにちは"]
"""


def write(path: Path, tools: str) -> None:
    path.write_text(CONFIG.replace("{tools}", tools), encoding="utf-8")


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_roles_conditions_and_reload(plexus_bin: str, tmp_path: Path) -> None:
    cfg = tmp_path / "plexus.toml"
    write(cfg, '"echo"')
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data")], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        status, reply = modern_call(url, "echo", {"text": "こんにちは"}, key=KEY)
        assert status == 200 and reply["result"]["content"][0]["text"] == "こんにちは", reply
        # the condition refuses other texts exactly as if the tool did not exist
        status, denied = modern_call(url, "echo", {"text": "bye"}, key=KEY)
        status2, missing = modern_call(url, "no_such_tool", {}, key=KEY)
        assert denied["error"]["code"] == missing["error"]["code"] == -32602, (denied, missing)
        assert denied["error"]["message"] == "tool not found: echo"
        status, reply = modern_call(url, "whoami", {}, key=KEY)
        assert reply["error"]["message"] == "tool not found: whoami", reply

        # grant whoami: it works within a second or two, without a restart
        write(cfg, '"echo", "whoami"')
        assert wait_until(lambda: "result" in modern_call(url, "whoami", {}, key=KEY)[1]), "reload not applied"
        who = modern_call(url, "whoami", {}, key=KEY)[1]["result"]["structuredContent"]
        assert (who["subject"], who["roles"]) == ("reader-bot", ["reader"])

        # a broken edit is refused; the policy in force stays
        cfg.write_text(CONFIG.replace("{tools}", '"echo"').replace('one_of = ["hello", "こんにちは"]', "max = 1\nmin = 0"))
        time.sleep(1.5)
        assert "result" in modern_call(url, "whoami", {}, key=KEY)[1]
        assert "policy reload refused" in (tmp_path / "log").read_text(errors="replace")
    finally:
        _stop(proc)


def test_rate_limits_trigger_and_recover(plexus_bin: str, tmp_path: Path) -> None:
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(
        CONFIG.replace("{tools}", '"echo"') + "\n[limits]\nprincipal_per_second = 2\nprincipal_burst = 3\n",
        encoding="utf-8",
    )
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data")], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        answers = [modern_call(url, "echo", {"text": "hello"}, key=KEY)[1] for _ in range(5)]
        ok = [a for a in answers if "result" in a]
        limited = [a for a in answers if "error" in a]
        assert len(ok) == 3, answers
        assert limited and all(a["error"]["code"] == -32029 for a in limited), answers
        retry_ms = limited[0]["error"]["data"]["retryAfterMs"]
        assert 0 < retry_ms <= 500, limited[0]
        assert limited[0]["error"]["message"].startswith("rate limit exceeded, retry after")
        time.sleep(retry_ms / 1000 + 0.05)
        assert "result" in modern_call(url, "echo", {"text": "hello"}, key=KEY)[1]
        metrics = __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert "plexus_rate_limited_total 2" in metrics, metrics
    finally:
        _stop(proc)


def test_protected_resource_metadata_and_challenge(plexus_bin: str, tmp_path: Path) -> None:
    import json as _json
    import urllib.error
    import urllib.request

    cfg = tmp_path / "plexus.toml"
    cfg.write_text(
        CONFIG.replace("{tools}", '"echo"').replace(
            "[[auth.api_keys]]",
            '[auth]\nresource = "http://127.0.0.1:9/mcp"\nauthorization_servers = ["https://idp.test"]\n'
            'scopes_supported = ["mcp"]\n\n[[auth.api_keys]]',
        ),
        encoding="utf-8",
    )
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data")], tmp_path / "log")
    base = f"http://127.0.0.1:{port}"
    try:
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            with urllib.request.urlopen(base + path) as r:  # noqa: S310 - loopback
                doc = _json.loads(r.read())
            assert doc["resource"] == "http://127.0.0.1:9/mcp"
            assert doc["authorization_servers"] == ["https://idp.test"]
            assert doc["scopes_supported"] == ["mcp"]
        status, _ = modern_call(f"{base}/mcp", "echo", {"text": "hello"}, key=None)
        assert status == 401
        req = urllib.request.Request(f"{base}/mcp", data=b"{}", method="POST", headers={"X-API-Key": "pk_nope"})
        try:
            urllib.request.urlopen(req)  # noqa: S310 - loopback
            raise AssertionError("expected 401")
        except urllib.error.HTTPError as e:
            assert e.code == 401
            challenge = e.headers["WWW-Authenticate"]
            assert 'error="invalid_token"' in challenge, challenge
            assert 'resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp"' in challenge
    finally:
        _stop(proc)


def test_store_keys_revocation_and_suspended_tenants(plexus_bin: str, tmp_path: Path) -> None:
    import subprocess

    data = tmp_path / "data"

    def cli(*args: str) -> str:
        r = subprocess.run([plexus_bin, *args, "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    cli("tenants", "create", "acme", "--tier", "enterprise")
    issued = cli("keys", "create", "--name", "ci-bot", "--tenant", "acme", "--roles", "admin")
    secret = next(l.split()[-1] for l in issued.splitlines() if l.startswith("secret:"))
    key_id = next(l.split()[-1] for l in issued.splitlines() if l.startswith("key id:"))
    assert secret.startswith("pk_") and secret not in cli("keys", "list", "--tenant", "acme")

    proc, port = start([plexus_bin, "serve", "--data-dir", str(data)], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        status, reply = modern_call(url, "whoami", {}, key=secret)
        assert status == 200, reply
        who = reply["result"]["structuredContent"]
        assert (who["subject"], who["tenant"], who["method"]) == ("ci-bot", "acme", "api_key")

        # the server caches tenant lookups for a second: a suspension applies within it
        cli("tenants", "suspend", "acme")
        assert wait_until(lambda: "error" in modern_call(url, "whoami", {}, key=secret)[1], timeout=3)
        status, reply = modern_call(url, "whoami", {}, key=secret)
        assert reply["error"]["code"] == -32030 and "suspended" in reply["error"]["message"], reply
        cli("tenants", "resume", "acme")
        assert wait_until(lambda: "result" in modern_call(url, "whoami", {}, key=secret)[1], timeout=3)

        cli("keys", "revoke", key_id, "--tenant", "acme")
        status, reply = modern_call(url, "whoami", {}, key=secret)
        assert status == 401, reply
    finally:
        _stop(proc)


def test_auditors_read_only_their_own_tenants_records(plexus_bin: str, tmp_path: Path) -> None:
    import subprocess

    data = tmp_path / "data"
    cfg = tmp_path / "plexus.toml"
    cfg.write_text('[roles.auditor]\ntools = ["echo", "whoami", "query_audit_log"]\n', encoding="utf-8")

    def cli(*args: str) -> str:
        r = subprocess.run(
            [plexus_bin, *args, "--config", str(cfg), "--data-dir", str(data)], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    secrets = {}
    for tenant in ("hospital-a", "hospital-b"):
        cli("tenants", "create", tenant)
        out = cli("keys", "create", "--name", f"auditor-{tenant}", "--tenant", tenant, "--roles", "auditor")
        secrets[tenant] = next(l.split()[-1] for l in out.splitlines() if l.startswith("secret:"))
    cli("tenants", "create", "platform")
    out = cli("keys", "create", "--name", "root", "--tenant", "platform", "--roles", "admin")
    secrets["platform"] = next(l.split()[-1] for l in out.splitlines() if l.startswith("secret:"))

    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for tenant in ("hospital-a", "hospital-b"):
            secret = secrets[tenant]
            assert "result" in modern_call(url, "echo", {"text": "hello"}, key=secret)[1]
        status, reply = modern_call(url, "query_audit_log", {"target": "echo"}, key=secrets["hospital-a"])
        records = reply["result"]["structuredContent"]["records"]
        assert [r["principal"] for r in records] == ["auditor-hospital-a"], records
        assert all(len(r["hash"]) == 64 and r["outcome"] == "ok" for r in records)
        status, reply = modern_call(url, "query_audit_log", {}, key=secrets["hospital-b"])
        principals = {r["principal"] for r in reply["result"]["structuredContent"]["records"]}
        assert principals == {"auditor-hospital-b"}, principals
        # nothing of hospital-b can be inferred from hospital-a: a tool only b
        # used leaves no trace in a's view, and whoami names the caller's own tenant
        who = modern_call(url, "whoami", {}, key=secrets["hospital-b"])[1]["result"]["structuredContent"]
        assert who["tenant"] == "hospital-b", who
        status, reply = modern_call(url, "query_audit_log", {"target": "whoami"}, key=secrets["hospital-a"])
        assert reply["result"]["structuredContent"]["records"] == [], reply
        status, reply = modern_call(url, "query_audit_log", {"target": "whoami"}, key=secrets["hospital-b"])
        assert [r["principal"] for r in reply["result"]["structuredContent"]["records"]] == ["auditor-hospital-b"], reply
        # bad input is a tool error naming the problem, and changes nothing
        status, reply = modern_call(url, "query_audit_log", {"from": "yesterday"}, key=secrets["hospital-a"])
        assert reply["result"]["isError"] is True and "RFC 3339" in reply["result"]["content"][0]["text"], reply
        # an auditor cannot widen the scope: no tenant argument, and the
        # cross-tenant tool answers as if it did not exist
        status, reply = modern_call(url, "query_audit_log", {"tenant": "hospital-b"}, key=secrets["hospital-a"])
        assert reply["result"]["isError"] is True and "'tenant' was unexpected" in reply["result"]["content"][0]["text"]
        status, reply = modern_call(url, "query_audit_log_all_tenants", {}, key=secrets["hospital-a"])
        assert "not found" in reply["error"]["message"], reply
        # a platform administrator reads across tenants, or one tenant by name
        status, reply = modern_call(url, "query_audit_log_all_tenants", {"target": "echo"}, key=secrets["platform"])
        records = reply["result"]["structuredContent"]["records"]
        assert sorted((r["tenant"], r["principal"]) for r in records) == [
            ("hospital-a", "auditor-hospital-a"),
            ("hospital-b", "auditor-hospital-b"),
        ], records
        status, reply = modern_call(
            url, "query_audit_log_all_tenants", {"tenant": "hospital-b", "target": "whoami"}, key=secrets["platform"]
        )
        assert [(r["tenant"], r["principal"]) for r in reply["result"]["structuredContent"]["records"]] == [
            ("hospital-b", "auditor-hospital-b")
        ], reply
        status, reply = modern_call(url, "query_audit_log_all_tenants", {"limit": 0}, key=secrets["platform"])
        assert reply["result"]["isError"] is True and "between 1 and 1000" in reply["result"]["content"][0]["text"]
    finally:
        _stop(proc)


def test_tenant_tiers_choose_the_rate_limits(plexus_bin: str, tmp_path: Path) -> None:
    """`[limits.tiers.free]` applies to tenants on the free tier only; moving a
    tenant to another tier moves its limits within the tenant cache's second."""
    import subprocess

    data, cfg = tmp_path / "data", tmp_path / "plexus.toml"
    cfg.write_text(
        "[limits]\nprincipal_per_second = 1000\n[limits.tiers.free]\nprincipal_per_second = 0.5\nprincipal_burst = 2\n",
        encoding="utf-8",
    )

    def cli(*args: str) -> str:
        r = subprocess.run(
            [plexus_bin, *args, "--config", str(cfg), "--data-dir", str(data)], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    secrets = {}
    for tenant, tier in (("corner-shop", "free"), ("megacorp", "enterprise")):
        cli("tenants", "create", tenant, "--tier", tier)
        out = cli("keys", "create", "--name", f"bot-{tenant}", "--tenant", tenant, "--roles", "admin")
        secrets[tenant] = next(l.split()[-1] for l in out.splitlines() if l.startswith("secret:"))
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        def burst(tenant: str, n: int) -> list[dict]:
            return [modern_call(url, "echo", {"text": "x"}, key=secrets[tenant])[1] for _ in range(n)]

        free = burst("corner-shop", 4)
        assert ["result" in a for a in free] == [True, True, False, False], free
        assert free[2]["error"]["code"] == -32029 and free[2]["error"]["data"]["retryAfterMs"] > 1000, free[2]
        assert all("result" in a for a in burst("megacorp", 20)), "the enterprise tier keeps the default limits"

        assert "now on tier enterprise" in cli("tenants", "set-tier", "corner-shop", "enterprise")
        time.sleep(1.2)  # the tenant cache's lifetime
        # The next call sees the new tier: what the tenant owed under the free
        # tier is cut to one enterprise burst, which refills at 1000/s.
        first = burst("corner-shop", 1)[0]
        assert "result" in first or first["error"]["data"]["retryAfterMs"] <= 2, first
        time.sleep(0.05)
        after = burst("corner-shop", 10)
        assert all("result" in a for a in after), after
        assert "corner-shop" in cli("tenants", "list") and "enterprise" in cli("tenants", "list")
    finally:
        _stop(proc)
