#!/usr/bin/env bash
# What the trust layers cost: the same `echo` call through Plexus with
# authentication (API key), tenancy, rate limits, policy and durable audit,
# against the same server with those layers off (server.trust_layers = false).
# wrk, 2 threads, 16 connections; ROUNDS rounds, servers interleaved.
#
# usage: scripts/bench-trust.sh [ROUNDS] [DURATION]   (defaults: 3 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; duration="${2:-10s}"
cargo build -q --release -p plexus
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
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.05; done
}
start 18101 "$work/off.toml" --allow-anonymous
start 18102 "$work/on-os.toml"
start 18103 "$work/on-fsync.toml"
for r in $(seq 1 "$rounds"); do
  for p in 18101 18102 18103; do
    # the server without trust layers gets no key: it would refuse one it does not know
    k="$key"; [ "$p" = 18101 ] && k=""
    out=$(PLEXUS_KEY="$k" wrk -t2 -c16 -d"$duration" --latency -s crates/bench/wrk/modern-echo.lua "http://127.0.0.1:$p/mcp")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    bad=$(echo "$out" | awk '/bad responses/ {print $3}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    bad="$bad${non2xx:+ (non-2xx $non2xx)}"
    echo "round $r port $p req/s $rps p99 $p99 bad $bad"
  done
done
