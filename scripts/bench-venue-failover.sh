#!/usr/bin/env bash
# Failover of the trading venue's leader under order flow: three nodes on
# one PostgreSQL database and the machine's NATS. Node a starts first and
# leads the venue; plexus-bench sends place_order to nodes b and c (which
# forward to the leader over NATS), and 4 s into the measured period node a
# is killed (SIGKILL) or, in the last run, stopped (SIGTERM). Reported per
# run: the orders answered per second and their latency on b and c, the
# orders that failed, and the takeover time (from the signal to the new
# leader's "this node leads the trading venue" log line). Afterwards the
# journal is checked: sequence numbers 1..n with no gap.
#
#   bash scripts/bench-venue-failover.sh [DURATION] [KILL_RUNS]
#   (default 10s and 3; needs psql, PostgreSQL, NATS)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
runs=${2:-3}

# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

key="pk_$(printf 'bench venue failover' | sha256sum | cut -c1-32)"
port_of() { case $1 in a) echo 18721 ;; b) echo 18722 ;; c) echo 18723 ;; esac; }
config() { # database
  cat > "$work/plexus.toml" <<TOML
[modules]
enabled = ["system", "trading"]
[storage]
url = "postgres://postgres@127.0.0.1:5432/$1"
[audit]
sink = "database"
[bus]
url = "$nats"
subject = "plexus.bench.$$"
[trading]
otr_limit = 1000000.0
duplicate_window_ms = 0
$(api_key_toml desk "$key" admin)
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
TOML
}
sql() { psql -q -tA -h 127.0.0.1 -U postgres -d "$pg_db" -c "$1"; }

# Orders that trade with each other: a buys from b, b buys from a, round
# and round, one share of AAPL each (what rests meanwhile stays far below
# the credit limits); unique client order ids per bench process.
python3 - "$work" <<'PY'
import json, sys
for node in "bc":
    with open(f"{sys.argv[1]}/orders-{node}.jsonl", "w") as f:
        for i in range(200_000):
            k = i % 4
            account = "fund-a-tokyo" if k in (0, 3) else "fund-b-global"
            side = "buy" if k in (0, 2) else "sell"
            price = 231.0 if side == "buy" else 229.0
            f.write(json.dumps({"order": {"portfolioId": account, "symbol": "AAPL", "side": side, "price": price,
                                          "quantity": 1, "clientOrderId": f"{node}-{i}"}}) + "\n")
PY

machine_line
echo "three nodes, one PostgreSQL database, NATS; place_order via b and c (6 connections each), a leads; $dur after 2s warm-up"
printf '%-4s %-7s %9s %8s %9s %9s %10s %8s %8s %12s  %s\n' run signal "orders/s" ok "p50 ms" "p99 ms" "max ms" refused failed "takeover ms" "new leader"
for run in $(seq 1 $((runs + 1))); do
  signal=KILL
  [ "$run" -le "$runs" ] || signal=TERM
  pg_create "bench_venue_$$_$run"
  config "$pg_db"
  rm -rf "$work"/a "$work"/b "$work"/c "$work"/?.log
  start_node a "$(port_of a)"
  for _ in $(seq 1 100); do [ "$(sql "SELECT node FROM trading_leaders" 2>/dev/null)" = a ] && break; sleep 0.1; done
  start_node b "$(port_of b)"
  start_node c "$(port_of c)"
  for n in b c; do
    "$bench" --url "http://127.0.0.1:$(port_of $n)/mcp" --tool place_order --args-file "$work/orders-$n.jsonl" \
      -H "X-API-Key: $key" --concurrency 6 --threads 1 --warmup 2s --duration "$dur" --json > "$work/$run-$n.json" &
    pids[bench_$n]=$!
  done
  sleep 6
  t0=$(date +%s.%N)
  kill -"$signal" "${pids[a]}"
  wait "${pids[a]}" 2>/dev/null || true
  unset 'pids[a]'
  wait "${pids[bench_b]}" "${pids[bench_c]}" || true
  unset 'pids[bench_b]' 'pids[bench_c]'
  python3 - "$work" "$run" "$signal" "$t0" <<'PY'
import datetime, json, re, sys
work, run, signal, t0 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rs = [json.load(open(f"{work}/{run}-{n}.json")) for n in "bc"]
ok = sum(r["ok"] for r in rs)
rps = sum(r["ok_rps"] for r in rs)
p50 = sorted(r["latency_ms"]["p50"] for r in rs)[0]
p99 = max(r["latency_ms"]["p99"] for r in rs)
mx = max(r["latency_ms"]["max"] for r in rs)
# A refused order (risk) is an error result; anything else failed.
refused = sum(r["errors"]["by_kind"].get("tool_error", 0) for r in rs)
failed = sum(sum(v for k, v in r["errors"]["by_kind"].items() if k != "tool_error") for r in rs)
takeover, leader = "-", "-"
for n in "bc":
    for line in open(f"{work}/{n}.log", errors="replace"):
        m = re.match(r"(\S+)Z\s+INFO .*this node leads the trading venue", line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
            if takeover == "-" or (t - t0) * 1000 < float(takeover):
                takeover, leader = f"{(t - t0) * 1000:.0f}", n
print(f"{run:<4} {signal:<7} {rps:9.0f} {ok:8d} {p50:9.2f} {p99:9.2f} {mx:10.2f} {refused:8d} {failed:8d} {takeover:>12}  {leader}")
PY
  gaps=$(sql "SELECT count(*) FILTER (WHERE seq <> rn) || ' of ' || count(*) FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM trading_journal WHERE venue = 'main') j")
  echo "     journal records out of sequence: $gaps"
  stop_all
  pg_drop
  sleep 1
done
