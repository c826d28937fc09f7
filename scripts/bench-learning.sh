#!/usr/bin/env bash
# Learning: submit_assessment_response and get_personalized_content over MCP
# HTTP (2026-07-28, stateless) with the full trust pipeline (API key
# authentication, tenancy, rate limits, role policy, durable hash-chained
# audit) across 100 tenants, each with the seeded demo course (16 skills, a
# calibrated 96-item bank, simulated learners' history), at 8 and 64
# concurrent clients.
#
# Every client is a learner with its own key (4 per tenant, 400 in all) and
# runs adaptive assessments back to back (`plexus-bench --scenario
# assessment`): generate_assessment, then submit_assessment_response to the
# item presented (a random option) until the assessment stops at its target
# standard error or item limit. Each answer is one call that scores it,
# updates the EAP estimate, selects the next item, stores the xAPI statement
# and traces the skill's mastery (BKT), durably. The echo tool of the same
# server is measured in the same run as the pipeline's own floor.
#
# usage: scripts/bench-learning.sh [DURATION]   (default 10s; KEEP=1 keeps the work directory;
#   CLIENTS="1 8" picks the client counts, default "8 64"; PLEXUS_BIN=path runs another
#   plexus binary, for a side-by-side run of two builds)
#   BACKEND=postgres runs on a fresh database of the PostgreSQL at
#   127.0.0.1:5432 (dropped at the end) instead of SQLite.
#   DURABILITY=os runs SQLite with `storage.durability = "os"` and the audit
#   log with `durability = "os"` (each commit and record in the kernel before
#   the answer: it survives the process being killed, not the machine losing
#   power) instead of an `fsync` for both (the default, DURABILITY=fsync).
#   SHARDS=N sets `[learning] shards = N` (SQLite: the tenants' learning rows
#   spread over N files, each with its own writer; the server's default is 1).
#   RATE=N runs the answers and the content reads as an open loop instead:
#   N calls a second on a fixed schedule (for the assessments, starts and
#   answers together), each client a connection that takes the next due call
#   when it is free, the latency counted from the call's due time (so a call
#   that waited for a free client is charged for the wait). The closed loop
#   (the default) measures the most a client count can get through; the open
#   loop the latency at a given load. CONTENT_RATE=N gives the content reads a
#   rate of their own (default: RATE).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
rate="${RATE:-}"
if [ -n "$rate" ] && ! [[ "$rate" =~ ^[1-9][0-9]*$ ]]; then
  echo "RATE must be a whole number of calls a second, not $rate" >&2; exit 2
fi
content_rate="${CONTENT_RATE:-$rate}"
if [ -n "$content_rate" ] && ! [[ "$content_rate" =~ ^[1-9][0-9]*$ ]]; then
  echo "CONTENT_RATE must be a whole number of calls a second, not $content_rate" >&2; exit 2
fi
open_loop=(); content_loop=()
[ -n "$rate" ] && open_loop=(--rate "$rate")
[ -n "$content_rate" ] && content_loop=(--rate "$content_rate")
durability="${DURABILITY:-fsync}"
case "$durability" in
  fsync | os) ;;
  *) echo "DURABILITY must be fsync or os, not $durability" >&2; exit 2 ;;
esac
shards="${SHARDS:-}"
case "$shards" in
  "" | [1-9] | [1-5][0-9] | 6[0-4]) ;;
  *) echo "SHARDS must be from 1 to 64, not $shards" >&2; exit 2 ;;
esac
tenants=100; per_tenant=4
cargo build -q --release -p plexus -p plexus-bench
bin=${PLEXUS_BIN:-$PWD/target/release/plexus}
bench=$PWD/target/release/plexus-bench
pid=""
work=$(mktemp -d)
pg_db=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$pid" ] && wait "$pid" 2>/dev/null
  [ -n "$pg_db" ] && psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
data="$work/data"
if [ "${BACKEND:-sqlite}" = postgres ]; then
  [ "$durability" = fsync ] || { echo "DURABILITY=os is for SQLite (PostgreSQL's own is synchronous_commit)" >&2; exit 2; }
  pg_db="bench_learning_$$"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db"
  export PLEXUS_STORAGE_URL="postgres://postgres@127.0.0.1:5432/$pg_db"
  echo "backend: PostgreSQL ($pg_db)"
else
  echo "backend: SQLite ($data/plexus.db)"
fi

python3 - "$work" "$tenants" "$per_tenant" "$durability" "$shards" <<'PY'
import hashlib, json, sys
work, tenants, per, durability, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
key = lambda t, u: "pk_" + hashlib.sha256(f"bench {t} {u}".encode()).hexdigest()[:32]
tools = ["echo", "generate_assessment", "submit_assessment_response", "get_personalized_content"]
entries, assess, content = [], [], []
for i in range(1, tenants + 1):
    t = f"t{i:03d}"
    for j in range(1, per + 1):
        u = f"learner-{j:03d}"
        k = key(t, u)
        entries.append(f'[[auth.api_keys]]\nname = "{u}"\nsha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n'
                       f'tenant = "{t}"\nroles = ["learner"]\n')
        h = {"X-API-Key": k}
        assess.append({"headers": h, "arguments": {"userId": u, "topic": "all", "assessmentType": "adaptive"}})
        for subject in ("algebra", "geometry"):
            content.append({"headers": h, "arguments": {"userId": u, "subject": subject}})
with open(f"{work}/serve.toml", "w") as f:
    f.write('[modules]\nenabled = ["system", "learning"]\n\n')
    if durability == "os":
        f.write('[storage]\ndurability = "os"\n[audit]\ndurability = "os"\n\n')
    if shards:
        f.write(f'[learning]\nshards = {shards}\n\n')
    f.write("".join(entries))
    f.write(f'[roles.learner]\ntools = {json.dumps(tools)}\n[limits]\nprincipal_per_second = 1000000\ntenant_per_second = 1000000\n')
for name, lines in (("assess", assess), ("content", content)):
    with open(f"{work}/{name}.jsonl", "w") as f:
        f.writelines(json.dumps(l) + "\n" for l in lines)
with open(f"{work}/tenants", "w") as f:
    f.write(" ".join(f"--tenant t{i:03d}" for i in range(1, tenants + 1)))
with open(f"{work}/echo-key", "w") as f:
    f.write(key("t001", "learner-001"))
PY

echo "== $tenants tenants, each with the demo course and 10 simulated learners"
started=$(date +%s.%N)
# (The tenants exist once the store is opened: the keys in the configuration name them.)
# shellcheck disable=SC2046
"$bin" learning seed --config "$work/serve.toml" --data-dir "$data" --learners 10 $(cat "$work/tenants") | tail -1
echo "seeded in $(python3 -c "import sys,time; print('%.1f s' % (time.time() - float(sys.argv[1])))" "$started")"

"$bin" serve --http 127.0.0.1:18402 --config "$work/serve.toml" --data-dir "$data" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:18402/healthz > /dev/null && break; sleep 0.1; done
report() {
  python3 -c '
import json, sys
j = json.load(sys.stdin); l = j["latency_ms"]
line = "%-26s clients %3d: %7.0f calls/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  calls %d" % (
    sys.argv[1], j["concurrency"], j["ok_rps"], l["p50"], l["p99"], j["errors"]["total"], j["requests"])
if j.get("rate"):
    line += "  (open loop at %g/s: late %d, dropped %d)" % (j["rate"], j["late"], j["dropped"])
if j["errors"]["total"]:
    line += "  " + json.dumps(j["errors"]["by_kind"])
a = j.get("also")
if a:
    al = a["latency_ms"] or {}
    line += "\n%-26s             %7d starts     p50 %6.2f ms  p99 %6.2f ms  errors %d" % (
        "  (" + a["tool"] + ")", a["ok"], al.get("p50", 0), al.get("p99", 0), sum(a["errors"].values()))
print(line)' "$1"
}
url=http://127.0.0.1:18402/mcp
echo "== over MCP HTTP with the trust pipeline, storage and audit durability: $durability ($duration per run, 2 s warmup)"
for c in ${CLIENTS:-8 64}; do
  "$bench" --url $url --tool echo --args '{"text":"hello"}' -H "X-API-Key: $(cat "$work/echo-key")" \
    -c "$c" -d "$duration" --warmup 2s --json | report "echo (floor)"
  gate_before=$(curl -s http://127.0.0.1:18402/metrics)
  "$bench" --url $url --scenario assessment --calls-file "$work/assess.jsonl" "${open_loop[@]}" \
    -c "$c" -d "$duration" --warmup 2s --json | report submit_assessment_response
  python3 scripts/sqlite-gate.py "$gate_before" "$(curl -s http://127.0.0.1:18402/metrics)"
  "$bench" --url $url --tool get_personalized_content --calls-file "$work/content.jsonl" "${content_loop[@]}" \
    -c "$c" -d "$duration" --warmup 2s --json | report get_personalized_content
done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
summary="SELECT count(DISTINCT tenant_id), count(*), sum(CASE WHEN status = 'finished' THEN 1 ELSE 0 END) FROM learning_sessions"
if [ -n "$pg_db" ]; then
  row=$(psql -At -F ' ' -h 127.0.0.1 -U postgres -d "$pg_db" -c "$summary")
else
  # The main file and the learning files beside it (`[learning] shards`).
  row=$(python3 - "$summary" "$data"/plexus.db "$data"/plexus-learning-*.db <<'PY'
import os, sqlite3, sys
rows = [sqlite3.connect(f).execute(sys.argv[1]).fetchone() for f in sys.argv[2:] if os.path.exists(f)]
print(*(sum(r[i] or 0 for r in rows) for i in range(3)))
PY
)
fi
read -r in_tenants started finished <<< "$row"
echo "assessments started $started in $in_tenants tenants, finished $finished"
"$bin" audit verify --config "$work/serve.toml" --data-dir "$data" | tail -1
