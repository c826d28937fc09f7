#!/usr/bin/env bash
# Ops flag evaluation over HTTP: OFREP (`POST /ofrep/v1/evaluate/flags/ai_assistant`)
# against the same evaluation as an MCP tool call (`evaluate_feature_flag`), one
# server with the full trust pipeline (API key, policy, rate limits, durable
# audit), interleaved over ROUNDS with wrk (closed loop, 2 threads, 16
# connections); then the latency from a config file edit to a subscribed
# client's notification (scripts/notify-latency.py), and the in-process
# engine benchmark. Medians are printed.
#
# usage: scripts/bench-ops.sh [ROUNDS] [DURATION]   (defaults: 3 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; duration="${2:-10s}"
if ! command -v wrk > /dev/null; then
  apt-get install -y -q wrk > /dev/null 2>&1 || sudo apt-get install -y -q wrk
fi
cargo build -q --release -p plexus
bin=target/release/plexus
work=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
key="pk_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
cat > "$work/p.toml" <<TOML
[modules]
enabled = ["system", "ops"]
[[auth.api_keys]]
name = "bench"
sha256 = "$digest"
roles = ["caller"]
[roles.caller]
tools = ["evaluate_feature_flag", "evaluate_feature_flags"]
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
TOML
mkdir -p "$work/data/shared/config"
echo '{"ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical", "voicedrive"]}}' > "$work/data/shared/config/feature-flags.json"
"$bin" serve --http 127.0.0.1:18201 --config "$work/p.toml" --data-dir "$work/data" > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18201/healthz > /dev/null && break; sleep 0.05; done
results="$work/results"
for r in $(seq 1 "$rounds"); do
  for mode in ofrep mcp; do
    if [ "$mode" = ofrep ]; then url=http://127.0.0.1:18201/ofrep/v1/evaluate/flags/ai_assistant; m=0
    else url=http://127.0.0.1:18201/mcp; m=1; fi
    out=$(PLEXUS_KEY="$key" PLEXUS_MCP=$m wrk -t2 -c16 -d"$duration" --latency -s crates/bench/wrk/ofrep-flag.lua "$url")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    bad=$(echo "$out" | awk '/bad responses/ {print $3}')
    echo "round $r $mode req/s $rps p50 $p50 p99 $p99 bad $bad"
    echo "$mode $rps" >> "$results"
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for mode in ("ofrep", "mcp"):
    v = [float(r[1]) for r in rows if r[0] == mode]
    print(f"{mode}: median {statistics.median(v):,.0f} evaluations/s over HTTP ({len(v)} rounds)")
PY
kill "$pid"; pid=""
# Config change to a subscribed client's notification, end to end (Python SDK, legacy session).
venv=tests/e2e/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mcp" 2> /dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
"$venv/bin/python" scripts/notify-latency.py "$bin" 100
cargo bench -q -p plexus-ops --bench ops
