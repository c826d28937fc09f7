# Shared by the cluster benchmarks (scripts/bench-cluster.sh,
# bench-failover.sh, bench-venue-failover.sh, bench-knowledge-lag.sh):
# sourced, not run. Builds the release binaries, makes a work directory,
# and stops every node, drops the database and removes the work directory
# on exit (KEEP=1 keeps the directory).
#
# After sourcing: $bin, $bench, $work, $nats; the associative array `pids`
# (name -> pid) of everything to stop; $pg_db (the database to drop, if any).

cargo build -q --release -p plexus -p plexus-bench
bin=$PWD/target/release/plexus
bench=$PWD/target/release/plexus-bench
nats=${PLEXUS_TEST_NATS_URL:-nats://127.0.0.1:4222}
work=$(mktemp -d)
declare -A pids=()
pg_db=""

stop_all() { # stop every process in pids
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

pg_create() { # name: a fresh database, dropped on exit (or by pg_drop)
  pg_db=$1
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db"
}

pg_drop() {
  [ -z "$pg_db" ] || psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db" 2>/dev/null || true
  pg_db=""
}

cluster_cleanup() {
  stop_all
  pg_drop
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cluster_cleanup EXIT

api_key_toml() { # name key role: an [[auth.api_keys]] entry of the default tenant
  printf '[[auth.api_keys]]\nname = "%s"\nsha256 = "%s"\ntenant = "default"\nroles = ["%s"]\n' \
    "$1" "$(printf '%s' "$2" | sha256sum | cut -d' ' -f1)" "$3"
}

start_node() { # name port [node-id]: plexus serve with $work/plexus.toml and data in $work/<name>
  local name=$1 port=$2 id=${3:-$1}
  if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then
    echo "port $port is in use (an earlier run still stopping?)"; exit 1
  fi
  "$bin" serve --http "127.0.0.1:$port" --config "$work/plexus.toml" --data-dir "$work/$name" --node-id "$id" \
    >> "$work/$name.log" 2>&1 &
  pids[$name]=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && return; sleep 0.1; done
  echo "node $name did not start:"; cat "$work/$name.log"; exit 1
}

machine_line() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD)"
}
