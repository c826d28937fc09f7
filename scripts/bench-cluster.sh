#!/usr/bin/env bash
# Throughput of one, two and three Plexus nodes on this machine, as a
# cluster: one PostgreSQL database (the store and every node's audit chain)
# and the machine's NATS (events). A read-heavy tool, get_shared_config of
# the flags document, through the whole pipeline (API key, tenant, rate
# limits out of reach, role policy, audit durable in PostgreSQL before the
# answer). The same total load in every run: 24 connections, split evenly
# over the nodes, one plexus-bench process per node, all at once.
#
#   bash scripts/bench-cluster.sh [DURATION]     (default 10s; needs psql,
#                                                  PostgreSQL and NATS)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
nats=${PLEXUS_TEST_NATS_URL:-nats://127.0.0.1:4222}

cargo build -q --release -p plexus -p plexus-bench
bin=$PWD/target/release/plexus
bench=$PWD/target/release/plexus-bench
work=$(mktemp -d)
pids=()
pg_db="bench_cluster_$$"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db"

key="pk_$(printf 'bench cluster' | sha256sum | cut -c1-32)"
cat > "$work/plexus.toml" <<TOML
[modules]
enabled = ["system", "ops"]
[storage]
url = "postgres://postgres@127.0.0.1:5432/$pg_db"
[audit]
sink = "database"
[bus]
url = "$nats"
subject = "plexus.bench.$$"
[[auth.api_keys]]
name = "operator"
sha256 = "$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
tenant = "default"
roles = ["admin"]
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
TOML

start_node() { # name port
  local data="$work/$1"
  mkdir -p "$data/shared/config"
  printf '{"ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical"]}, "new_dashboard": {"enabled": false}}\n' \
    > "$data/shared/config/feature-flags.json"
  "$bin" serve --http "127.0.0.1:$2" --config "$work/plexus.toml" --data-dir "$data" --node-id "$1" \
    > "$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$2/healthz" > /dev/null && return; sleep 0.1; done
  echo "node $1 did not start:"; cat "$work/$1.log"; exit 1
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD)"
echo "tool get_shared_config(config/feature-flags.json); 24 connections in total; $dur after 2s warm-up"
printf '%-6s %12s %10s %10s %8s\n' nodes "calls/s" "p50 ms" "p99 ms" errors
for n in 1 2 3; do
  for i in $(seq 1 "$n"); do start_node "n$i" $((18600 + i)); done
  per=$((24 / n))
  for i in $(seq 1 "$n"); do
    "$bench" --url "http://127.0.0.1:$((18600 + i))/mcp" --tool get_shared_config \
      --args '{"name":"config/feature-flags.json"}' -H "X-API-Key: $key" \
      --concurrency "$per" --threads 1 --warmup 2s --duration "$dur" --json > "$work/run-$n-$i.json" &
  done
  wait $(jobs -p | tail -n "$n")
  python3 - "$work" "$n" <<'PY'
import json, statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
runs = [json.load(open(f"{work}/run-{n}-{i}.json")) for i in range(1, n + 1)]
rps = sum(r["ok_rps"] for r in runs)
errors = sum(r["errors"]["total"] for r in runs)
# Per-node percentiles: the median node's p50, the worst node's p99.
p50 = statistics.median(r["latency_ms"]["p50"] for r in runs)
p99 = max(r["latency_ms"]["p99"] for r in runs)
print(f"{n:<6} {rps:12.0f} {p50:10.2f} {p99:10.2f} {errors:8d}")
PY
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
done
chains=$("$bin" audit verify --config "$work/plexus.toml" --data-dir "$work/n1")
echo "$chains" | sed 's/^/audit: /'
