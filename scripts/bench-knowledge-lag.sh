#!/usr/bin/env bash
# How far a follower's knowledge index lags the node that runs the syncs, in
# cluster mode: two nodes on one PostgreSQL database and the machine's NATS,
# one filesystem source (sync_interval_seconds = 1). Each trial writes a new
# file with a unique word, searches for it on both nodes every 5 ms, and
# records when each first finds it: the lag is the follower's time minus the
# syncing node's. Then the syncing node is killed (SIGKILL) and the time
# until the follower indexes a new file itself is reported.
#
#   bash scripts/bench-knowledge-lag.sh [TRIALS]   (default 30; needs psql,
#                                                   PostgreSQL, NATS)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-30}

# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
pg_create "bench_kb_lag_$$"
mkdir -p "$work/handbook"
printf '# 手順書\n\nデプロイは承認後に行う。\n' > "$work/handbook/deploy.md"
key="pk_$(printf 'bench kb lag' | sha256sum | cut -c1-32)"
cat > "$work/plexus.toml" <<TOML
[modules]
enabled = ["system", "knowledge"]
[storage]
url = "postgres://postgres@127.0.0.1:5432/$pg_db"
[bus]
url = "$nats"
subject = "plexus.bench.$$"
[knowledge]
sync_interval_seconds = 1
[[knowledge.sources]]
name = "handbook"
kind = "filesystem"
path = "$work/handbook"
tenant = "default"
readers = ["role:admin"]
$(api_key_toml operator "$key" admin)
TOML
port_of() { case $1 in a) echo 18731 ;; b) echo 18732 ;; esac; }
start_node a "$(port_of a)"
for _ in $(seq 1 100); do grep -q "this node runs the knowledge syncs" "$work/a.log" && break; sleep 0.1; done
start_node b "$(port_of b)"

machine_line
echo "two nodes, one PostgreSQL database, NATS; a runs the syncs (every 1 s), b follows (reads the shared store every 100 ms); $trials trials"
python3 - "$work" "$key" "$trials" "$(port_of a)" "$(port_of b)" "${pids[a]}" <<'PY'
import json, os, signal, statistics, sys, threading, time, urllib.request
work, key, trials, pa, pb, pid_a = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])

def found(port: str, word: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "search_knowledge", "arguments": {"query": word},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=body, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", "X-API-Key": key,
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "search_knowledge"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["result"]["structuredContent"]["total"] > 0

def first_seen(port: str, word: str, out: dict) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if found(port, word):
            out[port] = time.monotonic()
            return
        time.sleep(0.005)

lags, delays = [], []
for i in range(trials):
    word = f"lagword{i:03d}x{os.getpid()}"
    seen: dict = {}
    threads = [threading.Thread(target=first_seen, args=(p, word, seen)) for p in (pa, pb)]
    for t in threads:
        t.start()
    written = time.monotonic()
    with open(f"{work}/handbook/trial-{i}.md", "w", encoding="utf-8") as f:
        f.write(f"# 試行 {i}\n\n{word} を含む文書。\n")
    for t in threads:
        t.join()
    if pa not in seen or pb not in seen:
        print(f"trial {i}: not found on {'a' if pa not in seen else 'b'} within 30 s"); sys.exit(1)
    lags.append((seen[pb] - seen[pa]) * 1000)
    delays.append((seen[pa] - written) * 1000)
    time.sleep(0.3)

def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]
print(f"follower lag (b found it after a), ms: median {statistics.median(lags):.0f}, p95 {pct(lags, 0.95):.0f}, max {max(lags):.0f}, min {min(lags):.0f}")
print(f"file written to found on a (the sync interval), ms: median {statistics.median(delays):.0f}, max {max(delays):.0f}")

os.kill(pid_a, signal.SIGKILL)
killed = time.monotonic()
word = f"afterkill{os.getpid()}"
with open(f"{work}/handbook/after-kill.md", "w", encoding="utf-8") as f:
    f.write(f"# 引き継ぎ後\n\n{word}\n")
seen = {}
first_seen(pb, word, seen)
if pb not in seen:
    print("b did not take the syncs over within 30 s"); sys.exit(1)
print(f"syncs taken over: b indexed a new file {(seen[pb] - killed) * 1000:.0f} ms after a was killed")
PY
