#!/usr/bin/env bash
# Side-by-side HTTP benchmark of a trivial `echo` tool: Plexus (full pipeline),
# a bare rmcp server (defaults and tuned), the axum ceiling, and the official
# TypeScript and Python SDK servers, all measured in one run on this machine.
#
# usage: scripts/bench-http.sh [DURATION] [CONCURRENCY]    (defaults: 10s 16)
# Prints a Markdown table; raw JSON per run goes to $OUT (default target/bench-http).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"; conc="${2:-16}"; warmup="${WARMUP:-2s}"
out="${OUT:-target/bench-http}"; mkdir -p "$out"
cargo build -q --release -p plexus -p plexus-bench
bin=target/release
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
start() { local port=$1; shift; "$@" >"$out/server-$port.log" 2>&1 & pids+=($!); wait_port "$port"; }
stop_last() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

rows=()
measure() { # name port era
  local name=$1 port=$2 era=$3
  local json
  json=$("$bin/plexus-bench" --url "http://127.0.0.1:$port/mcp" --era "$era" --tool echo --args '{"text":"hello"}' \
          -c "$conc" --duration "$duration" --warmup "$warmup" --json)
  echo "$json" > "$out/$(echo "$name" | tr ' /()' '____').json"
  rows+=("$(python3 - "$name" "$era" "$json" <<'PY'
import json, sys
name, era, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
lat = r["latency_ms"]
print(f"| {name} | {era} | {r['throughput_rps']:,.0f} | {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['p99_9']:.2f} | {r['errors']['total']} |")
PY
)")
  echo "${rows[-1]}" >&2
}

data=$(mktemp -d)
cfg_os="$data/os.toml"; printf '[audit]\ndurability = "os"\n' > "$cfg_os"
cfg_rmcp="$data/rmcp.toml"; printf '[audit]\ndurability = "os"\n[server]\nfast_path = false\n' > "$cfg_rmcp"

start 18091 "$bin/axum-ceiling" 18091;                 measure "axum ceiling (parse + fixed reply)" 18091 modern; stop_last
start 18090 "$bin/rmcp-echo" 18090 default;            measure "rmcp 3.9 defaults (SSE, Nagle)" 18090 modern; stop_last
start 18092 "$bin/rmcp-echo" 18092 tuned;              measure "rmcp 3.9 tuned (JSON, TCP_NODELAY)" 18092 modern; stop_last
start 18080 "$bin/plexus" serve --http 127.0.0.1:18080 --modules system --allow-anonymous --data-dir "$data/a"
measure "Plexus, full pipeline, audit fsync" 18080 modern; stop_last
start 18083 "$bin/plexus" serve --http 127.0.0.1:18083 --modules system --allow-anonymous --data-dir "$data/b" --config "$cfg_os"
measure "Plexus, full pipeline, audit os" 18083 modern
measure "Plexus, full pipeline, audit os" 18083 legacy; stop_last
start 18084 "$bin/plexus" serve --http 127.0.0.1:18084 --modules system --allow-anonymous --data-dir "$data/c" --config "$cfg_rmcp"
measure "Plexus via rmcp's path (fast path off), audit os" 18084 modern; stop_last

if [ -d crates/bench/peers/ts ]; then
  (cd crates/bench/peers/ts && [ -d node_modules ] || npm ci --silent >/dev/null)
  (cd crates/bench/peers/ts && PORT=18081 exec node server.mjs) >"$out/server-18081.log" 2>&1 & pids+=($!); wait_port 18081
  measure "TypeScript SDK 1.32.2 (stateless, JSON)" 18081 legacy-stateless; stop_last
fi
if [ -d crates/bench/peers/python ]; then
  py=crates/bench/peers/python/.venv/bin/python
  [ -x "$py" ] || { python3 -m venv crates/bench/peers/python/.venv && crates/bench/peers/python/.venv/bin/pip install -q -r crates/bench/peers/python/requirements.txt; }
  (cd crates/bench/peers/python && PORT=18082 exec .venv/bin/python server.py) >"$out/server-18082.log" 2>&1 & pids+=($!); wait_port 18082
  measure "Python SDK 2.3.0 (stateless, JSON)" 18082 modern; stop_last
fi
rm -rf "$data"

echo
echo "Closed loop, $conc connections, ${duration} measured after ${warmup} warm-up; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(date -u +%Y-%m-%d)"
echo
echo "| server | era | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
