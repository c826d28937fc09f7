#!/usr/bin/env bash
# What the trust layers cost: the same `echo` call through Plexus with
# authentication (API key), tenancy, rate limits, policy and durable audit,
# against the same server with those layers off (server.trust_layers = false).
# Each round, servers interleaved: throughput from wrk (closed loop, 2
# threads, 16 connections, the machine saturated), then latency from
# plexus-bench in open loop at RATE calls/s (32 connections), where both
# servers have headroom, so the percentiles show what a call costs rather
# than how long it queued. Medians over ROUNDS are printed at the end.
#
# usage: scripts/bench-trust.sh [ROUNDS] [DURATION] [RATE]   (defaults: 3 10s 15000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; duration="${2:-10s}"; rate="${3:-15000}"
# wrk is the closed-loop peer load generator (Debian/Ubuntu package).
if ! command -v wrk > /dev/null; then
  apt-get install -y -q wrk > /dev/null 2>&1 || sudo apt-get install -y -q wrk
fi
cargo build -q --release -p plexus -p plexus-bench
bin=target/release/plexus
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
key="pk_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
trust() { # durability
  cat <<TOML
[[auth.api_keys]]
name = "bench"
sha256 = "$digest"
roles = ["caller"]
[roles.caller]
tools = ["echo"]
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
[audit]
durability = "$1"
TOML
}
trust os > "$work/on-os.toml"; trust fsync > "$work/on-fsync.toml"
printf '[server]\ntrust_layers = false\n' > "$work/off.toml"
start() { # port config extra...
  local port=$1 cfg=$2; shift 2
  "$bin" serve --http "127.0.0.1:$port" --modules system --config "$cfg" --data-dir "$work/d$port" "$@" >"$work/$port.log" 2>&1 &
  pids+=($!); echo $! > "$work/$port.pid"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.05; done
}
start 18101 "$work/off.toml" --allow-anonymous
start 18102 "$work/on-os.toml"
start 18103 "$work/on-fsync.toml"
results="$work/results"
for r in $(seq 1 "$rounds"); do
  for p in 18101 18102 18103; do
    # the server without trust layers gets no key: it would refuse one it does not know
    k="$key"; [ "$p" = 18101 ] && k=""
    pid=$(cat "$work/$p.pid")
    cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$(PLEXUS_KEY="$k" wrk -t2 -c16 -d"$duration" --latency -s crates/bench/wrk/modern-echo.lua "http://127.0.0.1:$p/mcp")
    cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    calls=$(echo "$out" | awk '/requests in/ {print $1}')
    # the server's own CPU time (user + system, in clock ticks) per call, in microseconds
    cpu_us=$(python3 -c "import os; print(round(($cpu1 - $cpu0) / os.sysconf('SC_CLK_TCK') * 1e6 / $calls, 2))")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    bad=$(echo "$out" | awk '/bad responses/ {print $3}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    bad="$bad${non2xx:+ (non-2xx $non2xx)}"
    echo "round $r port $p closed req/s $rps p99 $p99 server-cpu/call ${cpu_us}us bad $bad"
    echo "closed $p $rps $cpu_us" >> "$results"
  done
  for p in 18101 18102 18103; do
    hdr=(); [ "$p" != 18101 ] && hdr=(-H "X-API-Key: $key")
    json=$(target/release/plexus-bench --url "http://127.0.0.1:$p/mcp" --rate "$rate" -c 32 -d "$duration" --warmup 1s "${hdr[@]}" --json)
    line=$(echo "$json" | python3 -c 'import json,sys; j=json.load(sys.stdin); l=j["latency_ms"]; print(l["p50"], l["p99"], j["errors"]["total"], j["ok_rps"])')
    echo "round $r port $p open $rate/s p50 p99 errors ok/s: $line"
    echo "open $p $line" >> "$results"
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
name = {"18101": "layers off", "18102": "trust, audit os", "18103": "trust, audit fsync"}
med = lambda xs: statistics.median(float(x) for x in xs)
closed = {p: med(r[2] for r in rows if r[0] == "closed" and r[1] == p) for p in name}
p50 = {p: med(r[2] for r in rows if r[0] == "open" and r[1] == p) for p in name}
p99 = {p: med(r[3] for r in rows if r[0] == "open" and r[1] == p) for p in name}
cpu = {p: med(r[3] for r in rows if r[0] == "closed" and r[1] == p) for p in name}
print("\nmedians                 closed req/s   cost   server cpu us/call   open p50 ms  open p99 ms  added p99 ms")
for p, n in name.items():
    cost = 1 - closed[p] / closed["18101"]
    print(f"{n:<22} {closed[p]:>12,.0f} {cost:>7.1%} {cpu[p]:>14.2f} {p50[p]:>17.3f} {p99[p]:>12.3f} {p99[p] - p99['18101']:>+13.3f}")
PY
