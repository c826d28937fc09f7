#!/usr/bin/env bash
# Health: import throughput, then get_patient_data (all seven data types)
# over MCP HTTP (2026-07-28, stateless) with the full trust pipeline: API
# key authentication, tenancy, rate limits, role policy, durable
# hash-chained audit (group commit), and the module's own work per call:
# the caller's practitioner keys, the care-relationship check, one
# decrypting read of the patient and its resources of the seven types, the
# integrity digest and a disclosure row written before the answer.
#
# 1. `plexus health generate --patients N` (seeded synthetic population,
#    about 45 resources per patient, encrypted at rest): resources/s.
# 2. `plexus health import` of the shared Synthea bundles and bulk NDJSON
#    (../shared/data/fhir) into a fresh store: resources/s.
# 3. A clinician (the generated practitioner with the most patients in
#    care) calls get_patient_data for those patients in turn, at 8 and 64
#    concurrent clients; then a researcher (every patient, de-identified
#    per call) at 8 clients.
#
# usage: scripts/bench-health.sh [PATIENTS] [DURATION]   (defaults: 10000 10s)
#   KEEP=1 keeps the work directory; REUSE=<dir> (a kept work directory)
#   skips the generation and import and measures that store again
#   (PLEXUS_MASTER_KEY must be the one it was generated with: it is saved
#   as <dir>/master.key). PLEXUS_BIN=path runs another build of the server
#   (an earlier commit's, say) against the same store and load. CLIENTS="8 16"
#   picks the clinician's client counts (default "8 64").
set -euo pipefail
cd "$(dirname "$0")/.."
patients="${1:-10000}"; duration="${2:-10s}"
cargo build -q --release -p plexus -p plexus-bench
bin=${PLEXUS_BIN:-$PWD/target/release/plexus}
bench=$PWD/target/release/plexus-bench
pid=""
if [ -n "${REUSE:-}" ]; then
  work=$REUSE; KEEP=1
  PLEXUS_MASTER_KEY=$(cat "$work/master.key")
else
  work=$(mktemp -d)
  PLEXUS_MASTER_KEY=${PLEXUS_MASTER_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  printf '%s' "$PLEXUS_MASTER_KEY" > "$work/master.key"
fi
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export PLEXUS_MASTER_KEY
data="$work/data"
if [ -z "${REUSE:-}" ]; then

echo "== generate $patients patients (seed 1)"
printf '[modules]\nenabled = ["health"]\n' > "$work/import.toml"
/usr/bin/time -v "$bin" health generate --config "$work/import.toml" --data-dir "$data" --patients "$patients" --seed 1 \
  2> "$work/time.txt" | sed -n 1p
grep -E "Maximum resident" "$work/time.txt"
echo "database: $(du -sh "$data" | cut -f1)"

shared="$(cd .. && pwd)/shared/data/fhir"
if [ -d "$shared" ]; then
  echo "== import the shared Synthea bundles and bulk NDJSON into a fresh store"
  "$bin" health import --config "$work/import.toml" --data-dir "$work/synthea" "$shared/synthea-r4" "$shared/bulk-ndjson-10-patients" | sed -n 1p
fi
fi

# The practitioner with the most patients in care, and those patients.
python3 - "$data/plexus.db" "$work" <<'PY'
import json, sqlite3, sys
db, work = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
dr, n = c.execute("SELECT practitioner, count(DISTINCT patient) FROM health_care WHERE practitioner NOT LIKE '?%' "
                  "GROUP BY practitioner ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
kinds = ["demographics", "medications", "allergies", "conditions", "observations", "immunizations", "encounters"]
mine = [r[0] for r in c.execute("SELECT DISTINCT patient FROM health_care WHERE practitioner = ? ORDER BY patient", (dr,))]
everyone = [r[0] for r in c.execute("SELECT DISTINCT patient FROM health_care ORDER BY patient")]
for name, ids in (("clinician", mine), ("researcher", everyone)):
    with open(f"{work}/{name}.jsonl", "w") as f:
        for p in ids:
            f.write(json.dumps({"patientId": p, "dataTypes": kinds}) + "\n")
open(f"{work}/practitioner", "w").write(dr)
print(f"clinician: Practitioner/{dr}, {len(mine)} patients in care; researcher: {len(everyone)} patients")
PY
dr=$(cat "$work/practitioner")
key_of() { printf 'pk_%s' "$(printf '%s' "$1" | sha256sum | cut -c1-32)"; }
digest() { printf '%s' "$(key_of "$1")" | sha256sum | cut -d' ' -f1; }
cat > "$work/serve.toml" <<TOML
[modules]
enabled = ["health"]
[[auth.api_keys]]
name = "$dr"
sha256 = "$(digest "$dr")"
tenant = "default"
roles = ["clinician"]
[[auth.api_keys]]
name = "res-bench"
sha256 = "$(digest res-bench)"
tenant = "default"
roles = ["researcher"]
[roles.clinician]
tools = ["get_patient_data"]
[roles.researcher]
tools = ["get_patient_data"]
[limits]
principal_per_second = 1000000
tenant_per_second = 1000000
TOML
"$bin" serve --http 127.0.0.1:18401 --config "$work/serve.toml" --data-dir "$data" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:18401/healthz > /dev/null && break; sleep 0.1; done
report() {
  python3 -c 'import json,sys; j=json.load(sys.stdin); l=j["latency_ms"]; print("%-10s clients %3d: %7.0f calls/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  calls %d" % (sys.argv[1], j["concurrency"], j["ok_rps"], l["p50"], l["p99"], j["errors"]["total"], j["requests"]))' "$1"
}
echo "== get_patient_data, all seven types, over MCP HTTP with the trust pipeline ($duration per run)"
for c in ${CLIENTS:-8 64}; do
  gate_before=$(curl -s http://127.0.0.1:18401/metrics)
  "$bench" --url http://127.0.0.1:18401/mcp --tool get_patient_data --args-file "$work/clinician.jsonl" \
    -H "Authorization: Bearer $(key_of "$dr")" -c "$c" -d "$duration" --warmup 2s --json | report clinician
  python3 scripts/sqlite-gate.py "$gate_before" "$(curl -s http://127.0.0.1:18401/metrics)"
done
"$bench" --url http://127.0.0.1:18401/mcp --tool get_patient_data --args-file "$work/researcher.jsonl" \
  -H "Authorization: Bearer $(key_of res-bench)" -c 8 -d "$duration" --warmup 2s --json | report researcher
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
echo "disclosure rows written: $(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM health_disclosures").fetchone()[0])' "$data/plexus-health-log.db")"
"$bin" audit verify --config "$work/serve.toml" --data-dir "$data" | tail -1
