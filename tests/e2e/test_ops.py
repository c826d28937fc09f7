"""The ops hub end to end: the shared config registry with real MCP clients,
the OFREP endpoints checked against the protocol's OpenAPI definition, and
the access-control lists enforced live.

The demo's `interview-types.json` (with its JSON Schema) is edited on disk
while clients of both protocol eras are subscribed: the valid edit reaches
them, an invalid one is refused and the last good version stays readable.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import _stop
from helpers import UpdatesHeard, modern_call, start

OFREP_SPEC = Path(__file__).resolve().parents[3] / "shared" / "data" / "ofrep" / "openapi.yaml"
URI = "shared://config/interview-types.json"
MENTAL_HEALTH = {"id": "mental_health", "name": "メンタルヘルス面談", "classification": "special"}

KEYS = {name: "pk_" + hashlib.sha256(name.encode()).hexdigest()[:32] for name in ("admin", "bi")}


def config(tmp_path: Path) -> Path:
    keys = "".join(
        f'[[auth.api_keys]]\nname = "{n}"\nsha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n'
        f'tenant = "default"\nroles = ["admin"]\n'
        for n, k in KEYS.items()
    )
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(f'[modules]\nenabled = ["system", "ops"]\n\n{keys}', encoding="utf-8")
    return cfg


def serve(plexus_bin: str, tmp_path: Path, *extra: str):
    data = tmp_path / "data"
    return start([plexus_bin, "serve", "--demo", "--data-dir", str(data), *extra], tmp_path / "log"), data / "shared"


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def structured(reply: dict) -> dict:
    assert "result" in reply, reply
    assert not reply["result"].get("isError"), reply
    return reply["result"]["structuredContent"]


def test_subscribers_hear_disk_edits_and_invalid_edits_change_nothing(plexus_bin: str, tmp_path: Path) -> None:
    import anyio
    from mcp import Client

    (proc, port), shared = serve(plexus_bin, tmp_path, "--allow-anonymous")
    url = f"http://127.0.0.1:{port}/mcp"
    doc = shared / "config" / "interview-types.json"
    try:
        original = json.loads(doc.read_text(encoding="utf-8"))
        assert MENTAL_HEALTH not in original

        async def legacy() -> tuple[list[str], str]:
            heard = UpdatesHeard()
            with anyio.fail_after(30):
                async with Client(url, mode="legacy", read_timeout_seconds=20, message_handler=heard) as client:
                    listed = await client.list_resources()
                    assert URI in [str(r.uri) for r in listed.resources], listed
                    await client.subscribe_resource(URI)
                    doc.write_text(json.dumps(original + [MENTAL_HEALTH], ensure_ascii=False, indent=2), encoding="utf-8")
                    await heard.got.wait()
                    read = await client.read_resource(URI)
                    return heard.uris, read.contents[0].text

        heard, text = anyio.run(legacy)
        assert heard == [URI]
        assert MENTAL_HEALTH in json.loads(text), text

        # An edit that breaks the schema is refused: readers keep the last good version.
        broken = original + [MENTAL_HEALTH, {"id": "x", "name": "不明", "classification": "unknown"}]
        doc.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")

        def refused() -> bool:
            _, r = modern_call(url, "list_shared_configs", {"prefix": "config/"}, key=None)
            return any(p["name"] == "config/interview-types.json" for p in structured(r)["problems"])

        assert wait_until(refused), "the invalid edit is reported as a problem"
        _, r = modern_call(url, "list_shared_configs", {"prefix": "config/"}, key=None)
        problem = next(p for p in structured(r)["problems"] if p["name"] == "config/interview-types.json")
        assert any("/4/classification" in e for e in problem["errors"]), problem
        _, r = modern_call(url, "get_shared_config", {"name": "config/interview-types.json"}, key=None)
        live = structured(r)
        assert live["version"] == 2 and live["value"] == original + [MENTAL_HEALTH], live

        # The same change through the tool is refused with the same reasons.
        _, r = modern_call(url, "update_shared_config", {"name": "config/interview-types.json", "content": broken}, key=None)
        assert r["result"]["isError"] and "/4/classification" in r["result"]["content"][0]["text"], r

        async def modern() -> str:
            with anyio.fail_after(30):
                async with Client(url, mode="2026-07-28", read_timeout_seconds=20) as client:
                    async with client.listen(resource_subscriptions=[URI]) as sub:
                        fixed = original + [MENTAL_HEALTH, {"id": "career", "name": "キャリア面談", "classification": "regular"}]
                        doc.write_text(json.dumps(fixed, ensure_ascii=False), encoding="utf-8")
                        async for event in sub:
                            return str(getattr(event, "uri", event))
            return ""

        assert URI in anyio.run(modern)
        _, r = modern_call(url, "get_shared_config_history", {"name": "config/interview-types.json"}, key=None)
        history = structured(r)["versions"]
        assert [v["version"] for v in history] == [3, 2, 1], history
        assert history[0]["source"] == "disk" and "キャリア面談" in history[0]["diff"], history[0]

        # Roll back to version 2: a new version with version 2's content.
        _, r = modern_call(url, "rollback_shared_config", {"name": "config/interview-types.json", "version": 2}, key=None)
        assert structured(r)["version"] == 4, r
        assert json.loads(doc.read_text(encoding="utf-8")) == original + [MENTAL_HEALTH]
        # Path traversal never leaves the registry.
        _, r = modern_call(url, "get_shared_config", {"name": "../plexus.db"}, key=None)
        assert r["result"]["isError"] and "invalid document name" in r["result"]["content"][0]["text"], r
    finally:
        _stop(proc)


def ofrep(port: int, path: str, body: bytes | dict, headers: dict | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            raw = resp.read()
            return resp.status, resp.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, e.headers, json.loads(raw) if raw.startswith(b"{") else raw.decode()


@pytest.fixture(scope="module")
def ofrep_schemas():
    if not OFREP_SPEC.is_file():
        pytest.skip(f"the OFREP OpenAPI definition is not at {OFREP_SPEC} (../shared/data is absent)")
    import yaml
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    spec = yaml.safe_load(OFREP_SPEC.read_text(encoding="utf-8"))
    # `codeDefaultFlag` is `{"type": "object", "properties": {}}`, which every
    # object matches, so under strict `oneOf` no evaluation with a value could
    # ever be valid. Its description gives the intent: it is the flag with
    # no `value` property. Say so, and check everything else as written.
    spec["components"]["schemas"]["codeDefaultFlag"]["not"] = {"required": ["value"]}
    # The whole definition is one resource; schemas are reached by JSON pointer.
    registry = Registry().with_resource("urn:ofrep", Resource.opaque(spec))

    def validator(name: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"urn:ofrep#/components/schemas/{name}"}, registry=registry)

    return validator


def test_ofrep_endpoints_answer_per_the_openapi_definition(plexus_bin: str, tmp_path: Path, ofrep_schemas) -> None:
    (proc, port), shared = serve(plexus_bin, tmp_path, "--config", str(config(tmp_path)))
    key = {"X-API-Key": KEYS["admin"]}
    try:
        # The seed's simple format: on for 10% of the medical and VoiceDrive teams.
        ons = 0
        for i in range(300):
            status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", {"context": {"targetingKey": f"user-{i}", "team": "medical"}}, key)
            assert status == 200, body
            errors = list(ofrep_schemas("serverEvaluationSuccess").iter_errors(body))
            assert not errors, (body, errors)
            ons += body["value"] is True
        assert 15 <= ons <= 45, ons  # 10% of 300, with murmur3 bucketing's spread
        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", {"context": {"targetingKey": "user-1", "team": "payroll"}}, key)
        assert status == 200 and body["value"] is False, body
        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/new_dashboard", {"context": {"targetingKey": "u"}}, key)
        assert (status, body["value"], body["reason"]) == (200, False, "DISABLED"), body

        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/nope", {"context": {"targetingKey": "u"}}, key)
        assert status == 404 and body["errorCode"] == "FLAG_NOT_FOUND", body
        assert not list(ofrep_schemas("flagNotFound").iter_errors(body))
        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", b"{not json", key)
        assert status == 400 and body["errorCode"] == "PARSE_ERROR", body
        assert not list(ofrep_schemas("evaluationFailure").iter_errors(body))
        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", {"context": "user-1"}, key)
        assert status == 400 and body["errorCode"] == "INVALID_CONTEXT", body
        status, _, _ = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", {"context": {}}, {})
        assert status == 401
        status, _, _ = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", {"context": {}}, {"X-API-Key": "pk_wrong"})
        assert status == 401

        # Bulk, with ETag and If-None-Match.
        ctx = {"context": {"targetingKey": "user-7", "team": "voicedrive"}}
        status, headers, body = ofrep(port, "/ofrep/v1/evaluate/flags", ctx, key)
        assert status == 200, body
        assert not list(ofrep_schemas("bulkEvaluationSuccess").iter_errors(body)), body
        assert sorted(f["key"] for f in body["flags"]) == ["ai_assistant", "new_dashboard", "voice_transcription"]
        etag = headers["ETag"]
        status, _, _ = ofrep(port, "/ofrep/v1/evaluate/flags", ctx, {**key, "If-None-Match": etag})
        assert status == 304
        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags", {"context": []}, key)
        assert status == 400 and not list(ofrep_schemas("bulkEvaluationFailure").iter_errors(body)), body

        # A flag change on disk changes the answers and the ETag at once.
        flags = shared / "config" / "feature-flags.json"
        defs = json.loads(flags.read_text(encoding="utf-8"))
        defs["ai_assistant"]["rollout"] = 100
        flags.write_text(json.dumps(defs, ensure_ascii=False), encoding="utf-8")

        def changed() -> bool:
            s, _, _ = ofrep(port, "/ofrep/v1/evaluate/flags", ctx, {**key, "If-None-Match": etag})
            return s == 200

        assert wait_until(changed)
        status, _, body = ofrep(port, "/ofrep/v1/evaluate/flags/ai_assistant", {"context": {"targetingKey": "user-1", "team": "medical"}}, key)
        assert body["value"] is True and body["metadata"]["flagsVersion"] == 2, body
        # And assistants get the same answer over MCP.
        status, reply = modern_call(f"http://127.0.0.1:{port}/mcp", "evaluate_feature_flag",
                                    {"flag": "ai_assistant", "context": {"targetingKey": "user-1", "team": "medical"}}, key=KEYS["admin"])
        assert structured(reply)["value"] is True, reply
    finally:
        _stop(proc)


def test_access_control_lists_apply_live(plexus_bin: str, tmp_path: Path) -> None:
    (proc, port), shared = serve(plexus_bin, tmp_path, "--config", str(config(tmp_path)))
    url = f"http://127.0.0.1:{port}/mcp"
    acl = shared / "config" / "access-control.json"
    update = {"name": "config/interview-types.json", "content": [MENTAL_HEALTH]}
    try:
        # A read-only user may evaluate flags and read, not change anything.
        _, r = modern_call(url, "update_shared_config", {"name": "config/access-control.json",
                                                          "content": {"readonly_users": ["bi"]}}, key=KEYS["admin"])
        assert structured(r)["version"] == 2, r

        def bi_is_read_only() -> bool:
            _, r = modern_call(url, "update_shared_config", update, key=KEYS["bi"])
            return "error" in r

        assert wait_until(bi_is_read_only)
        _, r = modern_call(url, "update_shared_config", update, key=KEYS["bi"])
        _, missing = modern_call(url, "no_such_tool", {}, key=KEYS["bi"])
        assert r["error"]["code"] == missing["error"]["code"], (r, missing)
        _, r = modern_call(url, "get_shared_config", {"name": "config/interview-types.json"}, key=KEYS["bi"])
        assert "メンタルヘルス面談" not in json.dumps(structured(r), ensure_ascii=False)

        # A malformed list is refused; the one in force stays.
        _, r = modern_call(url, "update_shared_config", {"name": "config/access-control.json",
                                                          "content": {"blocked_ips": ["300.1.2.3"]}}, key=KEYS["admin"])
        assert r["result"]["isError"] and "blocked_ips[0]" in r["result"]["content"][0]["text"], r

        # Blocking this client's address refuses it at the HTTP edge; a disk edit lifts it.
        acl.write_text(json.dumps({"readonly_users": ["bi"], "blocked_ips": ["127.0.0.0/8"]}), encoding="utf-8")

        def blocked() -> bool:
            status, _ = modern_call(url, "list_shared_configs", {}, key=KEYS["admin"])
            return status == 403

        assert wait_until(blocked)
        acl.write_text(json.dumps({"readonly_users": []}), encoding="utf-8")
        assert wait_until(lambda: modern_call(url, "list_shared_configs", {}, key=KEYS["admin"])[0] == 200)
        _, r = modern_call(url, "update_shared_config", update, key=KEYS["bi"])
        assert structured(r)["recorded"] is True, r
        # Each change of the lists is in the audit log.
        audit = (tmp_path / "data" / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
        applied = [json.loads(l) for l in audit if '"config/apply"' in l]
        assert len(applied) >= 3 and all(a["target"] == "shared://config/access-control.json" for a in applied), applied
    finally:
        _stop(proc)


def test_incidents_experiments_compliance_reports_and_audit_export(plexus_bin: str, tmp_path: Path) -> None:
    (proc, port), shared = serve(plexus_bin, tmp_path, "--config", str(config(tmp_path)))
    url = f"http://127.0.0.1:{port}/mcp"

    def call(tool: str, args: dict) -> dict:
        status, reply = modern_call(url, tool, args, key=KEYS["admin"])
        assert status == 200, reply
        return reply

    try:
        # Incidents: declared, resolved, postmortem drafted, all as shared documents.
        inc = structured(call("create_incident", {"severity": "high", "title": "音声認識の遅延", "affected": ["voicedrive"], "teams": ["voicedrive"]}))
        iid = inc["incident"]["id"]
        assert inc["incident"]["status"] == "investigating" and inc["incident"]["severity"] == "sev2", inc
        r = call("update_incident", {"id": iid, "status": "resolved", "note": "キューの詰まりを解消"})
        done = structured(r)
        assert done["incident"]["status"] == "resolved" and done["postmortem"], done
        postmortem = (shared / done["postmortem"].removeprefix("shared://")).read_text(encoding="utf-8")
        assert "キューの詰まりを解消" in postmortem and iid in postmortem
        r = call("update_incident", {"id": iid, "status": "investigating", "note": "again"})
        assert r["result"]["isError"] and "resolved" in r["result"]["content"][0]["text"], r

        # Experiments: a clear winner over 2 x 400 units (10% against 25%).
        for i in range(400):
            for variant, rate in (("control", 10), ("b", 4)):
                unit = f"{variant}-{i}"
                call("record_experiment_event", {"experiment": "onboarding", "kind": "exposure", "variant": variant, "unit": unit})
                if i % rate == 0:
                    call("record_experiment_event", {"experiment": "onboarding", "kind": "conversion", "variant": variant, "unit": unit})
        res = structured(call("get_experiment_results", {"id": "onboarding"}))
        rates = {v["variant"]: (v["exposures"], v["conversions"]) for v in res["variants"]}
        assert rates == {"control": (400, 40), "b": (400, 100)}, rates
        assert res["recommendation"]["decision"] == "winner" and res["recommendation"]["variant"] == "b", res
        assert "onboarding" in (shared / "experiments" / "results.md").read_text(encoding="utf-8")
        r = call("record_experiment_event", {"experiment": "onboarding", "kind": "conversion", "variant": "b", "unit": "nobody"})
        assert r["result"]["isError"] and "never exposed" in r["result"]["content"][0]["text"], r

        # Compliance checklists and security notices from the demo's documents.
        status = structured(call("get_compliance_status", {"team": "medical"}))
        assert status["totals"]["total"] == 2 and status["totals"]["done"] == 1, status
        notices = structured(call("list_security_notices", {}))["notices"]
        assert [(n["status"], n["severity"]) for n in notices] == [("open", "high")], notices

        # The month's report and the audit export read the audit log.
        month = time.strftime("%Y-%m", time.gmtime())
        rep = structured(call("generate_report", {"period": month}))
        assert rep["calls"] >= 940, rep  # 800 exposures, 140 conversions, and the rest
        md = (shared / "reports" / "monthly" / f"{month}.md").read_text(encoding="utf-8")
        assert "record_experiment_event" in md and iid in md, md[:2000]
        today = time.strftime("%Y-%m-%d", time.gmtime())
        r = call("export_audit_logs", {"startDate": today, "endDate": today})
        link = next(c for c in r["result"]["content"] if c["type"] == "resource_link")
        assert link["uri"] == f"shared://audit/{today}.csv", link
        rows = (shared / "audit" / f"{today}.csv").read_text(encoding="utf-8").splitlines()
        assert rows[0].startswith("seq,") and len(rows) > 940, rows[:2]
        r = call("export_audit_logs", {"startDate": today, "endDate": "2020-01-01"})
        assert r["result"]["isError"], r
    finally:
        _stop(proc)
