"""The audit log survives `kill -9` in the middle of a burst, and tampering is named.

The server writes audit records to its database (`[audit] sink = "database"`).
Many calls run concurrently; the server is killed with SIGKILL while they are
in flight. Every call that got a result must be in the log, the hash chain
must verify, and after an attacker edits one row (dropping the append-only
trigger first) `plexus audit verify` must fail and name that record.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from conftest import _stop
from helpers import rpc, start

def call(url: str, n: int) -> bool:
    """One echo call with a unique request id; did it get the right answer?"""
    try:
        status, reply, _ = rpc(url, "echo", {"text": f"call {n}"}, request_id=f"burst-{n}", timeout=5)
    except (ConnectionError, OSError, ValueError):
        return False
    return status == 200 and isinstance(reply, dict) and reply.get("result", {}).get("content", [{}])[0].get("text") == f"call {n}"


def burst_then_kill(url: str, proc: subprocess.Popen[bytes]) -> list[int]:
    """8 threads of calls; SIGKILL the server 1.5 s in; the calls that were answered."""
    answered: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(w: int) -> None:
        n = w * 100_000
        while not stop.is_set() and n < w * 100_000 + 5_000:
            if call(url, n):
                with lock:
                    answered.append(n)
            n += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        _stop(proc)
    return answered


def test_kill_9_mid_burst_loses_no_answered_call(plexus_bin: str, tmp_path: Path) -> None:
    cfg = tmp_path / "plexus.toml"
    cfg.write_text('[audit]\nsink = "database"\nnode_id = "n1"\n', encoding="utf-8")
    data = tmp_path / "data"
    proc, port = start(
        [plexus_bin, "serve", "--config", str(cfg), "--allow-anonymous", "--data-dir", str(data)], tmp_path / "log"
    )
    url = f"http://127.0.0.1:{port}/mcp"
    answered = burst_then_kill(url, proc)
    assert len(answered) > 50, f"too few calls answered before the kill: {len(answered)}"

    def plexus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [plexus_bin, *args, "--config", str(cfg), "--data-dir", str(data)], capture_output=True, text=True, timeout=60
        )

    verify = plexus("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "audit log intact" in verify.stdout and "node n1" in verify.stdout, verify.stdout
    export = plexus("audit", "export", "--format", "jsonl")
    assert export.returncode == 0, export.stderr
    logged = {json.loads(line)["request_id"] for line in export.stdout.splitlines() if line}
    missing = [n for n in answered if f"burst-{n}" not in logged]
    assert not missing, f"{len(missing)} answered calls are not in the audit log, e.g. {missing[:5]}"

    # An attacker with database access edits one record.
    db = sqlite3.connect(data / "plexus.db")
    db.execute("DROP TRIGGER audit_log_no_update")
    seq = db.execute("SELECT seq FROM audit_log WHERE node_id = 'n1' ORDER BY seq LIMIT 1 OFFSET 7").fetchone()[0]
    db.execute("UPDATE audit_log SET outcome = 'ok', principal = 'someone-else' WHERE node_id = 'n1' AND seq = ?", (seq,))
    db.commit()
    db.close()
    verify = plexus("audit", "verify")
    assert verify.returncode == 1, verify.stdout
    assert f"record {seq} (position {seq}) was altered" in verify.stderr, verify.stderr


def test_kill_9_with_the_file_sink_in_os_mode(plexus_bin: str, tmp_path: Path) -> None:
    """The JSON Lines sink with `durability = "os"`: records reach the kernel
    (through the writer task) before the answer leaves, so a SIGKILL loses no
    answered call; an edited line is then named by verify."""
    cfg = tmp_path / "plexus.toml"
    cfg.write_text('[audit]\nsink = "file"\ndurability = "os"\n', encoding="utf-8")
    data = tmp_path / "data"
    proc, port = start(
        [plexus_bin, "serve", "--config", str(cfg), "--allow-anonymous", "--data-dir", str(data)], tmp_path / "log"
    )
    url = f"http://127.0.0.1:{port}/mcp"
    answered = burst_then_kill(url, proc)
    assert len(answered) > 50, f"too few calls answered before the kill: {len(answered)}"

    def plexus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [plexus_bin, *args, "--config", str(cfg), "--data-dir", str(data)], capture_output=True, text=True, timeout=60
        )

    verify = plexus("audit", "verify")
    assert verify.returncode == 0 and "audit log intact" in verify.stdout, verify.stdout + verify.stderr
    lines = (data / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    logged = {json.loads(line)["request_id"] for line in lines}
    missing = [n for n in answered if f"burst-{n}" not in logged]
    assert not missing, f"{len(missing)} answered calls are not in the audit log, e.g. {missing[:5]}"

    record = json.loads(lines[11])
    record["target"] = "something-else"
    lines[11] = json.dumps(record, separators=(",", ":"))
    (data / "audit" / "audit.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    verify = plexus("audit", "verify")
    assert verify.returncode == 1, verify.stdout
    assert f"record {record['seq']} (position 11) was altered" in verify.stderr, verify.stderr
