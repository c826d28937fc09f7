#!/usr/bin/env bash
# Trading: place_order over MCP HTTP (2026-07-28, stateless) with the full
# trust pipeline (API key authentication, tenancy, rate limits, role
# policy, durable hash-chained audit) and the desk's own path per order:
# the 15c3-5 pre-trade checks, compliance surveillance, the journal (group
# commit with fdatasync: an order is acknowledged only once it is on disk)
# and the venue's matching, at 1, 8 and 64 concurrent clients.
#
# The orders go round four lines: fund-a-tokyo buys 100 7203.T at 3000.0,
# fund-b-global sells them, then fund-b buys and fund-a sells, so orders
# cross. Under concurrency some of an account's buys meet its own sells,
# which self-trade prevention cancels, so positions drift: the trader
# role's credit and position limits are set far out of reach (every check
# still runs), and the duplicate-order window is turned off (every order
# repeats the price and quantity). The echo tool of the same server is measured in
# the same run as the pipeline's own floor.
#
# DURABILITY=os runs the same with the journal's `sync = "os"` and the audit
# log's `durability = "os"` (each record written to the kernel before the
# answer: it survives the process being killed, not the machine losing
# power) instead of `fdatasync` for both. Either way the script first
# measures this disk's own `fdatasync` (a 200-byte append, 2,000 times),
# the floor of an acknowledgement that waits for the disk.
#
# usage: scripts/bench-trading.sh [DURATION]   (default 10s; KEEP=1 keeps the work directory;
# PLEXUS_BIN=path runs another build of the server, for example an earlier commit's, against the
# same script and load generator)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
durability="${DURABILITY:-fsync}"
case "$durability" in
  fsync) journal_sync=always ;;
  os) journal_sync=os ;;
  *) echo "DURABILITY must be fsync or os, not $durability" >&2; exit 2 ;;
esac
cargo build -q --release -p plexus -p plexus-bench
bin=${PLEXUS_BIN:-$PWD/target/release/plexus}
bench=$PWD/target/release/plexus-bench
pid=""
work=$(mktemp -d)
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
data="$work/data"
key="pk_$(printf 'bench trader' | sha256sum | cut -c1-32)"
cat > "$work/serve.toml" <<TOML
[modules]
enabled = ["system", "trading"]
[audit]
durability = "$durability"
[trading]
sync = "$journal_sync"
duplicate_window_ms = 0
otr_limit = 1000000.0
[trading.roles.trader]
max_order_qty = 100000
max_order_notional = 100000000.0
collar_bps = 500
credit_limit = 1e15
max_position = 1000000000000
[trading.roles.market-maker]
max_order_qty = 1000000
collar_bps = 1000
[[auth.api_keys]]
name = "trader-bench"
sha256 = "$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
tenant = "default"
roles = ["trader"]
[roles.trader]
tools = ["echo", "place_order"]
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
TOML
python3 - "$work/orders.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for side, account in (("buy", "fund-a-tokyo"), ("sell", "fund-b-global"),
                          ("buy", "fund-b-global"), ("sell", "fund-a-tokyo")):
        f.write(json.dumps({"order": {"portfolioId": account, "symbol": "7203.T", "side": side,
                                      "price": 3000.0, "quantity": 100}}) + "\n")
PY
"$bin" serve --http 127.0.0.1:18403 --config "$work/serve.toml" --data-dir "$data" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:18403/healthz > /dev/null && break; sleep 0.1; done
report() {
  python3 -c '
import json, sys
j = json.load(sys.stdin); l = j["latency_ms"]
line = "%-14s clients %3d: %7.0f calls/s  p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  errors %d  calls %d" % (
    sys.argv[1], j["concurrency"], j["ok_rps"], l["p50"], l["p99"], l["p99_9"], j["errors"]["total"], j["requests"])
if j["errors"]["total"]:
    line += "  " + json.dumps(j["errors"]["by_kind"])
print(line)' "$1"
}
url=http://127.0.0.1:18403/mcp
python3 - "$work/probe.bin" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
t = []
for _ in range(2000):
    os.write(fd, b"x" * 200)
    s = time.perf_counter(); os.fdatasync(fd); t.append((time.perf_counter() - s) * 1e3)
os.close(fd); os.unlink(sys.argv[1]); t.sort()
print("this disk's fdatasync (200-byte appends, 2,000 times): p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms"
      % (t[1000], t[1800], t[1980], t[-1]))
PY
echo "== over MCP HTTP with the trust pipeline, audit and journal durability: $durability ($duration per run, 2 s warmup)"
for c in 1 8 64; do
  "$bench" --url $url --tool echo --args '{"text":"hello"}' -H "X-API-Key: $key" \
    -c "$c" -d "$duration" --warmup 2s --json | report "echo (floor)"
  "$bench" --url $url --tool place_order --args-file "$work/orders.jsonl" -H "X-API-Key: $key" \
    -c "$c" -d "$duration" --warmup 2s --json | report place_order
done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
echo "journal: $(du -sh "$data/trading" | cut -f1)"
"$bin" audit verify --config "$work/serve.toml" --data-dir "$data" | tail -1
