"""Bearer JWT authentication (OAuth 2.1 resource server), end to end.

A local JWKS endpoint (Python http.server on a loopback port) publishes an RSA
public key under a key id; the server is configured with `[auth.jwt]` pointing
at it. Tokens are signed here with PyJWT. A valid token reaches `whoami` as a
`jwt` principal; missing, expired, foreign (audience, issuer), tampered and
forged tokens are 401 with a Bearer challenge; a token without the required
scope is 403 `insufficient_scope`. When the authorization server rotates to
a new key, the first token signed with it makes the server fetch the set
again (unknown key id) and is accepted.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from conftest import HOST, _stop, _tail
from helpers import MODERN, rpc, start

ISS = "https://idp.test"
AUD = "plexus-test"
SUBJECT = "alice@idp.test"


def new_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: RSAPrivateKey, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


class Jwks:
    """A JWKS endpoint whose keys the test changes; counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        self.lock = threading.Lock()
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                with jwks.lock:
                    body = json.dumps({"keys": jwks.keys}).encode()
                    jwks.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/jwks.json"

    def publish(self, *keys: dict) -> None:
        with self.lock:
            self.keys = list(keys)

    def fetch_count(self) -> int:
        with self.lock:
            return self.fetches

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def claims(**changes: object) -> dict:
    now = int(time.time())
    c: dict = {
        "iss": ISS,
        "aud": AUD,
        "sub": SUBJECT,
        "iat": now,
        "exp": now + 300,
        "scope": "mcp",
        "roles": ["reader"],
        "tenant": "default",
    }
    c.update(changes)
    return {k: v for k, v in c.items() if v is not None}


def sign(key: RSAPrivateKey, kid: str, **changes: object) -> str:
    return jwt.encode(claims(**changes), key, algorithm="RS256", headers={"kid": kid})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def call(url: str, tool: str, token: str | None, args: dict | None = None) -> tuple[int, dict | str, Message]:
    """A 2026-07-28 `tools/call` with `Authorization: Bearer <token>`: (status, body, headers).

    The headers look names up case-insensitively (the server sends them in lower case).
    """
    return rpc(url, tool, args or {}, {"Authorization": f"Bearer {token}"} if token is not None else None)


class Env:
    def __init__(self, url: str, jwks: Jwks, key: RSAPrivateKey, log: Path) -> None:
        self.url = url
        self.jwks = jwks
        self.key = key
        self.log = log


@pytest.fixture(scope="module")
def env(plexus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("jwt")
    key = new_key()
    jwks = Jwks()
    jwks.publish(public_jwk(key, "k1"))
    docs = tmp / "docs"
    (docs / "finance").mkdir(parents=True)
    (docs / "eng").mkdir()
    (docs / "finance" / "budget.md").write_text("# 予算計画 2027\nThe travel budget grows by 4%.\n", encoding="utf-8")
    (docs / "eng" / "roadmap.md").write_text("# Platform roadmap\nThe budget for GPUs is approved.\n", encoding="utf-8")
    cfg = tmp / "plexus.toml"
    cfg.write_text(
        f"""
[modules]
enabled = ["system", "knowledge"]

[knowledge]
sync_interval_seconds = 0

[[knowledge.sources]]
name = "finance"
kind = "filesystem"
path = "{docs / 'finance'}"
readers = ["group:finance"]

[[knowledge.sources]]
name = "eng"
kind = "filesystem"
path = "{docs / 'eng'}"
readers = ["group:eng"]

[auth.jwt]
issuer = "{ISS}"
audience = "{AUD}"
jwks_url = "{jwks.url}"
required_scopes = ["mcp"]
leeway_seconds = 5

[roles.reader]
tools = ["echo", "whoami", "search_knowledge", "get_document", "sync_knowledge"]
""",
        encoding="utf-8",
    )
    log = tmp / "server.log"
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp / "data")], log)
    try:
        # The server fetches the set when it starts; wait for that before any
        # token arrives, so no test depends on the on-demand refresh but the
        # rotation test (refreshes on unknown key ids are rate-limited).
        deadline = time.monotonic() + 10
        while jwks.fetch_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jwks.fetch_count() > 0, "the server never fetched the JWKS\n" + _tail(log)
        time.sleep(0.3)
        yield Env(f"http://{HOST}:{port}/mcp", jwks, key, log)
    finally:
        _stop(proc)
        jwks.close()


def assert_invalid_token(env: Env, status: int, body: object, headers: Message) -> None:
    assert status == 401, (status, body, _tail(env.log))
    challenge = headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), dict(headers)
    assert 'error="invalid_token"' in challenge, challenge


def test_a_valid_token_reaches_the_tool_as_its_subject(env: Env) -> None:
    status, reply, _ = call(env.url, "whoami", sign(env.key, "k1"))
    assert status == 200, (reply, _tail(env.log))
    who = reply["result"]["structuredContent"]
    assert who["subject"] == SUBJECT
    assert who["method"] == "jwt"
    assert who["roles"] == ["reader"]
    assert who["tenant"] == "default"
    assert "mcp" in who["scopes"]
    # the role's grants apply as for any principal
    status, reply, _ = call(env.url, "echo", sign(env.key, "k1"), {"text": "こんにちは"})
    assert status == 200 and reply["result"]["content"][0]["text"] == "こんにちは", reply


def test_no_token_is_401_with_a_bearer_challenge(env: Env) -> None:
    status, body, headers = call(env.url, "whoami", None)
    assert status == 401, body
    assert headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(headers)


def test_an_expired_token_is_invalid(env: Env) -> None:
    now = int(time.time())
    token = sign(env.key, "k1", iat=now - 600, exp=now - 60)
    status, body, headers = call(env.url, "whoami", token)
    assert_invalid_token(env, status, body, headers)
    assert token not in str(body) and token not in headers.get("WWW-Authenticate", "")


def test_a_token_for_another_audience_or_from_another_issuer_is_invalid(env: Env) -> None:
    for token in (sign(env.key, "k1", aud="someone-else"), sign(env.key, "k1", iss="https://evil.test")):
        assert_invalid_token(env, *call(env.url, "whoami", token))


def test_a_tampered_token_is_invalid(env: Env) -> None:
    header, payload, signature = sign(env.key, "k1").split(".")
    # the payload rewritten to claim more, the signature kept
    forged = json.loads(b64url_decode(payload))
    forged["roles"] = ["admin"]
    rewritten = ".".join([header, b64url(json.dumps(forged).encode()), signature])
    assert_invalid_token(env, *call(env.url, "whoami", rewritten))
    # one character of the payload flipped
    i = len(payload) // 2
    flipped = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1 :]
    assert_invalid_token(env, *call(env.url, "whoami", ".".join([header, flipped, signature])))


def test_a_token_signed_by_another_key_under_the_same_kid_is_invalid(env: Env) -> None:
    assert_invalid_token(env, *call(env.url, "whoami", sign(new_key(), "k1")))


def test_a_token_without_the_required_scope_is_403(env: Env) -> None:
    status, body, headers = call(env.url, "whoami", sign(env.key, "k1", scope="tools.read"))
    assert status == 403, (status, body)
    challenge = headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer") and 'error="insufficient_scope"' in challenge, challenge
    assert 'scope="mcp"' in challenge, challenge


def test_a_rotated_key_is_fetched_on_first_use(env: Env) -> None:
    rotated = new_key()
    # the authorization server publishes a second key and starts signing with it
    env.jwks.publish(public_jwk(env.key, "k1"), public_jwk(rotated, "k2"))
    before = env.jwks.fetch_count()
    status, reply, _ = call(env.url, "whoami", sign(rotated, "k2"))
    assert status == 200, (status, reply, _tail(env.log))
    assert reply["result"]["structuredContent"]["subject"] == SUBJECT
    assert env.jwks.fetch_count() > before, "the unknown key id made the server fetch the set again"
    # tokens under the old key still pass while it is published
    status, reply, _ = call(env.url, "whoami", sign(env.key, "k1"))
    assert status == 200, reply


def test_the_groups_claim_decides_which_documents_a_caller_reads(env: Env) -> None:
    """Documents readable by a group are found only by tokens whose `groups`
    claim names it: in hits, totals, facets and get_document."""
    finance = sign(env.key, "k1", groups=["finance"])
    status, reply, _ = call(env.url, "sync_knowledge", finance)
    assert status == 200 and not reply["result"].get("isError"), reply
    status, reply, _ = call(env.url, "whoami", finance)
    assert reply["result"]["structuredContent"]["groups"] == ["finance"], reply

    def found(token: str) -> dict:
        status, reply, _ = call(env.url, "search_knowledge", token, {"query": "budget"})
        assert status == 200, reply
        return reply["result"]["structuredContent"]

    hits = found(finance)
    assert [h["id"] for h in hits["hits"]] == ["finance:budget.md"] and hits["facets"] == {"finance": 1}, hits
    both = found(sign(env.key, "k1", groups=["finance", "eng"]))
    assert both["total"] == 2 and both["facets"] == {"finance": 1, "eng": 1}, both
    nobody = found(sign(env.key, "k1"))
    assert nobody["total"] == 0 and nobody["facets"] == {}, nobody
    status, reply, _ = call(env.url, "get_document", finance, {"id": "eng:roadmap.md"})
    assert reply["result"]["isError"] and "not found" in reply["result"]["content"][0]["text"], reply
    status, reply, _ = call(env.url, "get_document", sign(env.key, "k1", groups=["eng"]), {"id": "eng:roadmap.md"})
    assert reply["result"]["structuredContent"]["title"] == "Platform roadmap", reply
