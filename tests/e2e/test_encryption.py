"""Encryption at rest from the command line: master keys, data keys, rotation.

`keys generate-master` writes a key file only its owner may read;
`keys rotate-data` gives a tenant a data key wrapped by the master key;
`keys rotate-master --to NEW` rewraps every data key under NEW. A server
started with a keyring that cannot unwrap the store's data keys refuses to
start and names the missing key; a malformed PLEXUS_MASTER_KEY is refused
without echoing it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
from pathlib import Path

from conftest import _stop
from helpers import modern_call, start


def run(plexus_bin: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [plexus_bin, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_master_keys_rotate_and_a_missing_key_stops_the_server(
    plexus_bin: str, tmp_path: Path, monkeypatch
) -> None:
    data = tmp_path / "data"
    old, new = tmp_path / "old.key", tmp_path / "new.key"

    def cli(*args: str, key: Path = old) -> str:
        cfg = tmp_path / "plexus.toml"
        cfg.write_text(f'[crypto]\nmaster_key_file = "{key}"\n', encoding="utf-8")
        r = run(plexus_bin, *args, "--config", str(cfg), "--data-dir", str(data))
        assert r.returncode == 0, r.stderr
        return r.stdout

    ids = {}
    for path in (old, new):
        out = run(plexus_bin, "keys", "generate-master", "--out", str(path)).stdout
        ids[path] = re.search(r"master key (mk_[0-9a-f]{16})", out).group(1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert re.fullmatch(r"[0-9a-f]{64}\n", path.read_text())
    assert ids[old] != ids[new]
    again = run(plexus_bin, "keys", "generate-master", "--out", str(old))
    assert again.returncode != 0 and "exists" in again.stderr, "an existing key file is never overwritten"

    cli("tenants", "create", "acme")
    out = cli("keys", "rotate-data", "--tenant", "acme")
    dk = re.search(r"data key (dk_[0-9a-f]{16})", out).group(1)
    out = cli("keys", "rotate-data", "--tenant", "default")
    with sqlite3.connect(data / "plexus.db") as db:
        rows = db.execute("SELECT id, tenant_id, master_key_id, wrapped FROM data_keys ORDER BY tenant_id").fetchall()
    assert [(r[1], r[2]) for r in rows] == [("acme", ids[old]), ("default", ids[old])]
    assert rows[0][0] == dk and len(rows[0][3]) > 40

    out = cli("keys", "rotate-master", "--to", str(new))
    assert f"rewrapped 2 data key(s) of 2 tenant(s) under master key {ids[new]}; 0 already were" in out, out
    with sqlite3.connect(data / "plexus.db") as db:
        masters = {r[0] for r in db.execute("SELECT master_key_id FROM data_keys")}
        rewrapped = db.execute("SELECT wrapped FROM data_keys WHERE id = ?", (dk,)).fetchone()[0]
    assert masters == {ids[new]} and rewrapped != rows[0][3]
    assert "0 data key(s)" in cli("keys", "rotate-master", key=new) and "2 already were" in cli(
        "keys", "rotate-master", key=new
    )

    # The old key alone can no longer unwrap anything: the server says so and stops.
    cfg = tmp_path / "old.toml"
    cfg.write_text(f'[crypto]\nmaster_key_file = "{old}"\n', encoding="utf-8")
    r = subprocess.run(
        [plexus_bin, "serve", "--http", "127.0.0.1:0", "--config", str(cfg), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and ids[new] in r.stderr and "not configured" in r.stderr, r.stderr

    # Without any master key it refuses too: the store holds data keys.
    r = subprocess.run(
        [plexus_bin, "serve", "--http", "127.0.0.1:0", "--data-dir", str(data)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "no master key" in r.stderr, r.stderr

    # With the new key given through the environment it serves, and never logs the key.
    key_text = new.read_text().strip()
    monkeypatch.setenv("PLEXUS_MASTER_KEY", key_text)
    proc, port = start([plexus_bin, "serve", "--data-dir", str(data), "--allow-anonymous"], tmp_path / "log")
    try:
        status, reply = modern_call(f"http://127.0.0.1:{port}/mcp", "whoami", {}, key=None)
        assert status == 200, reply
    finally:
        _stop(proc)
    log = (tmp_path / "log").read_text()
    assert ids[new] in log and key_text not in log, log


def test_a_malformed_master_key_is_refused_without_echoing_it(plexus_bin: str, tmp_path: Path) -> None:
    secret = "not-a-key-" + "7" * 20
    r = run(plexus_bin, "config", "check", "--data-dir", str(tmp_path), env={"PLEXUS_MASTER_KEY": secret})
    assert r.returncode != 0
    assert "PLEXUS_MASTER_KEY" in r.stderr and "64 hex characters" in r.stderr, r.stderr
    assert secret not in r.stderr + r.stdout
    r = run(plexus_bin, "keys", "rotate-master", "--data-dir", str(tmp_path))
    assert r.returncode != 0 and "no master key" in r.stderr, r.stderr
