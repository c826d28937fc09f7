#!/usr/bin/env bash
# Failover of a Plexus node under load, through the sample deployment:
# three nodes (one PostgreSQL database, the machine's NATS) behind
# deploy/haproxy.cfg as shipped (only the ports replaced). For each era,
# a steady run, a run in which one node is killed with SIGKILL 4 s into the
# measured period, and one in which it is stopped with SIGTERM (a planned
# restart: /readyz turns 503, in-flight calls drain); the node is started
# again between runs.
# get_shared_config of a shared document through the whole pipeline.
# Stateless (2026-07-28) calls are spread round robin; each legacy
# (2025-11-25) worker has its own session, hashed to one node, so a kill
# moves a third of the sessions, which the next node carries on from the
# database. What a client sees: errors (calls in flight on the killed node
# get 502: HAProxy does not resend a request a node may have executed) and
# the worst latency (the stall of the calls that moved).
#
#   bash scripts/bench-failover.sh [DURATION]   (default 10s; needs psql,
#                                                PostgreSQL, NATS, haproxy)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$haproxy" ] || { echo "haproxy is not installed (apt install haproxy)"; exit 1; }
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
hpid=""
stop_balancer() { [ -z "$hpid" ] || { kill "$hpid" 2>/dev/null || true; wait "$hpid" 2>/dev/null || true; }; }
trap 'stop_balancer; cluster_cleanup' EXIT
pg_create "bench_failover_$$"

key="pk_$(printf 'bench failover' | sha256sum | cut -c1-32)"
cat > "$work/plexus.toml" <<TOML
[server]
drain_delay_ms = 3000   # as deploy/plexus.toml: HAProxy takes the node out first
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

port_of() { case $1 in a) echo 18711 ;; b) echo 18712 ;; c) echo 18713 ;; esac; }
front=18710
start_node_flags() { # name: node-<name> with the flags document in its shared directory
  mkdir -p "$work/$1/shared/config"
  printf '{"ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical"]}, "new_dashboard": {"enabled": false}}\n' \
    > "$work/$1/shared/config/feature-flags.json"
  start_node "$1" "$(port_of "$1")" "node-$1"
}
call() { # one stateless call through the balancer; prints the node that answered
  curl -s -D - -o /dev/null "http://127.0.0.1:$front/mcp" -H "X-API-Key: $key" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' \
    | tr -d '\r' | sed -n 's/^x-plexus-node: //Ip'
}
all_up() { # until the balancer sends to all three nodes
  for _ in $(seq 1 100); do
    [ "$(for _ in $(seq 1 9); do call; done | sort -u | wc -l)" = 3 ] && return
    sleep 0.2
  done
  echo "the balancer did not see three nodes up:"; cat "$work/haproxy.log"; exit 1
}

for n in a b c; do start_node_flags "$n"; done
sed -e "s/127.0.0.1:8080/127.0.0.1:$front/" -e "s/127.0.0.1:7101/127.0.0.1:$(port_of a)/" \
  -e "s/127.0.0.1:7102/127.0.0.1:$(port_of b)/" -e "s/127.0.0.1:7103/127.0.0.1:$(port_of c)/" \
  deploy/haproxy.cfg > "$work/haproxy.cfg"
"$haproxy" -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
hpid=$!
all_up

machine_line
echo "three nodes behind deploy/haproxy.cfg; get_shared_config(config/feature-flags.json); 12 connections; $dur after 2s warm-up"
printf '%-9s %-14s %9s %8s %9s %9s %10s  %s\n' era run "calls/s" ok "p50 ms" "p99 ms" "max ms" errors
for era in modern legacy; do
  for run in steady kill-node-c stop-node-c; do
    "$bench" --url "http://127.0.0.1:$front/mcp" --era "$era" --tool get_shared_config \
      --args '{"name":"config/feature-flags.json"}' -H "X-API-Key: $key" \
      --concurrency 12 --threads 1 --warmup 2s --duration "$dur" --json > "$work/$era-$run.json" &
    bpid=$!
    case $run in
      kill-node-c) sleep 6; kill -KILL "${pids[c]}"; wait "${pids[c]}" 2>/dev/null || true ;;
      stop-node-c) sleep 6; kill -TERM "${pids[c]}"; wait "${pids[c]}" 2>/dev/null || true ;;
    esac
    wait "$bpid" || true
    python3 - "$work/$era-$run.json" "$era" "$run" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]
errors = ", ".join(f"{k} {v}" for k, v in r["errors"]["by_kind"].items() if v) or "0"
print(f"{sys.argv[2]:<9} {sys.argv[3]:<14} {r['ok_rps']:9.0f} {r['ok']:8d} {lat['p50']:9.2f} {lat['p99']:9.2f} {lat['max']:10.2f}  {errors}")
PY
    if [ "$run" != steady ]; then start_node_flags c; all_up; fi
  done
done
echo "sessions carried on from the database: $(cat "$work"/?.log | grep -c 'carried on from the session store')"
echo "copies dropped after another node took their session: $(cat "$work"/?.log | grep -c 'taken by another node was dropped')"
"$bin" audit verify --config "$work/plexus.toml" --data-dir "$work/a" | sed 's/^/audit: /'
