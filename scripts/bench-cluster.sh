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

# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
pg_create "bench_cluster_$$"

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
$(api_key_toml operator "$key" admin)
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
TOML

flags_node() { # name port: a node whose shared directory holds the flags document
  mkdir -p "$work/$1/shared/config"
  printf '{"ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical"]}, "new_dashboard": {"enabled": false}}\n' \
    > "$work/$1/shared/config/feature-flags.json"
  start_node "$1" "$2"
}

machine_line
echo "tool get_shared_config(config/feature-flags.json); 24 connections in total; $dur after 2s warm-up"
printf '%-6s %12s %10s %10s %8s\n' nodes "calls/s" "p50 ms" "p99 ms" errors
for n in 1 2 3; do
  for i in $(seq 1 "$n"); do flags_node "n$i" $((18600 + i)); done
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
  stop_all
done
chains=$("$bin" audit verify --config "$work/plexus.toml" --data-dir "$work/n1")
echo "$chains" | sed 's/^/audit: /'
