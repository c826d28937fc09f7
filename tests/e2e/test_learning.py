"""The learning module end to end through the binary: two tenants (tiers
set with the CLI), a course and an item bank imported over MCP, an adaptive
assessment taken to its end by a simulated learner of known ability, a
learning path, and the xAPI Statements endpoint with HTTP Basic auth, the
version header and tenant isolation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from conftest import _stop
from helpers import api_keys_toml, modern_call, start

# (tenant, subject) -> roles
PEOPLE = {
    ("acme", "admin-a"): "admin",
    ("acme", "hanako"): "learner",
    ("acme", "lrs-a"): "xapi",
    ("globex", "admin-g"): "admin",
    ("globex", "lrs-g"): "xapi",
}
KEYS = {p: "pk_" + hashlib.sha256(("learning " + "/".join(p)).encode()).hexdigest()[:32] for p in PEOPLE}
TOOLS = json.dumps(
    [
        "get_personalized_content",
        "track_learning_progress",
        "generate_assessment",
        "submit_assessment_response",
        "analyze_learning_data",
        "get_learning_recommendations",
        "get_learning_settings",
        "configure_learning",
        "import_learning_course",
        "xapi_post_statements",
        "xapi_put_statement",
        "xapi_get_statements",
    ]
)
SKILLS = ["alg-1", "alg-2", "alg-3", "geo-1"]
COURSE = {
    "skills": [
        {"id": "alg-1", "name": "Integers", "subject": "algebra", "translations": {"ja": "整数"}},
        {"id": "alg-2", "name": "Fractions", "subject": "algebra", "prerequisites": ["alg-1"]},
        {"id": "alg-3", "name": "Equations", "subject": "algebra", "prerequisites": ["alg-2"]},
        {"id": "geo-1", "name": "Angles", "subject": "geometry", "prerequisites": ["alg-1"]},
    ],
    "content": [
        {"id": "alg-1-v", "title": "整数（動画）", "skill": "alg-1", "difficulty": 0.0, "duration_minutes": 10, "format": "video"},
        {"id": "alg-2-x", "title": "Fractions", "skill": "alg-2", "difficulty": 0.5, "duration_minutes": 15, "format": "exercise"},
        {"id": "alg-3-t", "title": "Equations", "skill": "alg-3", "difficulty": 1.0, "duration_minutes": 9, "format": "text"},
        {"id": "geo-1-v", "title": "Angles", "skill": "geo-1", "difficulty": 0.2, "duration_minutes": 7, "format": "video"},
    ],
}


def bank(n: int = 120) -> tuple[str, list[dict], dict[str, tuple[float, float]]]:
    """A 2PL bank as CSV, item content with the key `C`, and the parameters."""
    rng = random.Random(7)
    rows, items, params = ["id,a,b,c,skill"], [], {}
    for i in range(n):
        a, b = round(rng.uniform(0.9, 2.0), 3), round(rng.gauss(0.0, 1.0), 3)
        iid = f"q{i:03d}"
        rows.append(f"{iid},{a},{b},0,{SKILLS[i % 4]}")
        items.append({"id": iid, "stem": f"{iid} の問題", "options": ["1", "2", "3", "4"], "answer": "C"})
        params[iid] = (a, b)
    return "\n".join(rows) + "\n", items, params


def config(tmp_path: Path) -> Path:
    keys = api_keys_toml([(s, KEYS[(t, s)], t, r) for (t, s), r in PEOPLE.items()])
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(
        f"""
[modules]
enabled = ["system", "learning"]

{keys}
[roles.admin]
tools = {TOOLS}
resources = ["learning://*"]
[roles.learner]
tools = {TOOLS}
resources = ["learning://*"]
[roles.xapi]
tools = {TOOLS}
""",
        encoding="utf-8",
    )
    return cfg


def call(url: str, who: tuple[str, str], tool: str, args: dict) -> dict:
    status, reply = modern_call(url, tool, args, key=KEYS[who], timeout=30)
    assert status == 200 and isinstance(reply, dict) and "result" in reply, reply
    return reply["result"]


def xapi(base: str, who: tuple[str, str], method: str, query: str = "", body: object = None, version: str | None = "1.0.3"):
    """One request to /xapi/statements with HTTP Basic (the key as password)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/xapi/statements{query}", data=data, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{who[1]}:{KEYS[who]}".encode()).decode())
    if version:
        req.add_header("X-Experience-API-Version", version)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, dict(e.headers), parsed


def test_assessment_path_and_xapi_across_tenants(plexus_bin: str, tmp_path: Path) -> None:
    cfg, data = config(tmp_path), tmp_path / "data"
    # The tenants of configured keys exist from the start; the CLI sets their tiers.
    for tenant, tier in (("acme", "standard"), ("globex", "free")):
        subprocess.run(
            [plexus_bin, "tenants", "set-tier", tenant, tier, "--config", str(cfg), "--data-dir", str(data)],
            check=True,
            capture_output=True,
        )
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)], tmp_path / "log")
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/mcp"
    admin, hanako, lrs_a, lrs_g = ("acme", "admin-a"), ("acme", "hanako"), ("acme", "lrs-a"), ("globex", "lrs-g")
    try:
        csv, items, params = bank()
        imported = call(url, admin, "import_learning_course", {"course": COURSE, "bank": csv, "items": items})
        assert not imported.get("isError"), imported

        # An adaptive assessment to its end; the learner answers with the
        # 2PL probability at theta = 0.8.
        rng, theta = random.Random(3), 0.8
        start_ = call(url, hanako, "generate_assessment", {"userId": "hanako", "topic": "all", "assessmentType": "adaptive"})
        s = start_["structuredContent"]
        item, aid, ses = s["item"], s["assessmentId"], []
        assert "answer" not in json.dumps(item) and "C" not in [o.get("text") for o in item["options"]], item
        while True:
            a, b = params[item["id"]]
            p = 1 / (1 + math.exp(-a * (theta - b)))
            reply = call(url, hanako, "submit_assessment_response", {"assessmentId": aid, "itemId": item["id"], "response": "C" if rng.random() < p else "A"})
            out = reply["structuredContent"]
            ses.append(out["estimate"]["se"])
            if out["finished"]:
                break
            item = out["nextItem"]
        result = out["result"]
        assert result["se"] <= 0.3 + 1e-9 and result["stopReason"] == "se_target", result
        assert abs(result["theta"] - theta) < 1.0, result
        assert ses[-1] < ses[0] and result["itemsUsed"] == len(ses) and len(ses) <= 30, ses
        # Answering again after the end is refused.
        again = call(url, hanako, "submit_assessment_response", {"assessmentId": aid, "itemId": item["id"], "response": "C"})
        assert again.get("isError"), again

        # A learning path that respects the prerequisites.
        path = call(url, hanako, "get_learning_recommendations", {"userId": "hanako"})["structuredContent"]
        assert path, path

        # A learner may not act for another learner.
        other = call(url, hanako, "get_learning_recommendations", {"userId": "taro"})
        assert other.get("isError"), other

        # xAPI: a statement posted with Basic auth, read back, isolated.
        stmt = {
            "actor": {"objectType": "Agent", "name": "花子", "account": {"homePage": "https://school.example.jp", "name": "hanako"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"ja-JP": "完了した"}},
            "object": {"id": "https://school.example.jp/content/alg-1-v", "definition": {"name": {"ja-JP": "整数（動画）"}}},
        }
        status, headers, ids = xapi(base, lrs_a, "POST", body=stmt)
        assert status == 200 and isinstance(ids, list) and len(ids) == 1, (status, ids)
        assert {k.lower(): v for k, v in headers.items()}.get("x-experience-api-version") == "1.0.3", headers
        sid = ids[0]
        status, _, got = xapi(base, lrs_a, "GET", f"?statementId={sid}")
        assert status == 200 and got["actor"]["name"] == "花子" and got["verb"]["display"]["ja-JP"] == "完了した", got
        status, _, _ = xapi(base, lrs_a, "GET", f"?statementId={sid}", version=None)
        assert status == 400
        bad = dict(stmt, actor={"mbox": "hanako@example.jp"})
        status, _, err = xapi(base, lrs_a, "POST", body=bad)
        assert status == 400 and "actor.mbox" in json.dumps(err), err
        # The other tenant sees nothing of it.
        status, _, _ = xapi(base, lrs_g, "GET", f"?statementId={sid}")
        assert status == 404
        status, _, listing = xapi(base, lrs_g, "GET", "?limit=50")
        assert status == 200 and listing["statements"] == [], listing
        status, _, listing = xapi(base, lrs_a, "GET", "?limit=500")
        assert status == 200 and sid in [x["id"] for x in listing["statements"]], listing
        # A wrong key is a 401 before any route.
        req = urllib.request.Request(f"{base}/xapi/statements?limit=1", headers={"X-Experience-API-Version": "1.0.3", "Authorization": "Basic " + base64.b64encode(b"x:pk_wrong").decode()})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("a wrong key was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 401
    finally:
        _stop(proc)
