#!/usr/bin/env bash
# Knowledge index over the Rust documentation that ships with the toolchain
# (about 48,600 HTML pages): full sync time and peak memory, an incremental
# sync with nothing changed, known-item retrieval quality (MRR@10,
# recall@10), and search_knowledge latency over MCP HTTP at 1, 8 and 64
# concurrent clients: warm (one query, answered from the cache after the
# first call) and cold (every call a different query: the item names of the
# documentation, in turn, on a freshly started server, so the query cache
# never answers).
#
# usage: scripts/bench-knowledge.sh [DURATION]   (default 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
cargo build -q --release -p plexus -p plexus-bench
bin=target/release/plexus
docs="$(rustc --print sysroot)/share/doc/rust/html"
work=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/sync.toml" <<TOML
[modules]
enabled = ["knowledge"]
[[knowledge.sources]]
name = "rustdoc"
kind = "filesystem"
path = "$docs"
readers = ["everyone"]
TOML
# The server reads the same index without syncing it.
printf '[modules]\nenabled = ["knowledge"]\n[knowledge]\nsync_interval_seconds = 0\n' > "$work/serve.toml"
echo "corpus: $docs ($(find "$docs" -name '*.html' | wc -l) HTML files)"
echo "== full sync"
/usr/bin/time -v "$bin" kb sync --config "$work/sync.toml" --data-dir "$work/data" 2> "$work/time.txt"
grep -E "Elapsed \(wall|Maximum resident" "$work/time.txt"
echo "== incremental sync, nothing changed"
/usr/bin/time -v "$bin" kb sync --config "$work/sync.toml" --data-dir "$work/data" 2> "$work/time2.txt"
grep -E "Elapsed \(wall" "$work/time2.txt"
echo "index size: $(du -sh "$work/data/knowledge/index" | cut -f1)"
echo "== known-item retrieval"
python3 scripts/knowledge-eval.py "$bin" "$work/sync.toml" "$work/data" | tail -1
echo "== search_knowledge over MCP HTTP"
start_server() {
  "$bin" serve --http 127.0.0.1:18301 --config "$work/serve.toml" --data-dir "$work/data" --allow-anonymous > "$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18301/healthz > /dev/null && break; sleep 0.05; done
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
# One distinct query per documented item name (struct.HashMap.html -> HashMap).
find "$docs" -name '*.html' | sed -n 's#.*/\(struct\|enum\|trait\|fn\|macro\|type\|constant\|union\)\.\([A-Za-z0-9_]*\)\.html$#\2#p' \
  | sort -u | shuf --random-source=<(yes) | awk '{printf "{\"query\":\"%s\"}\n", $1}' > "$work/queries.jsonl"
echo "cold queries: $(wc -l < "$work/queries.jsonl") distinct item names"
# Each cold run gets a fresh server (an empty query cache): the runs walk
# the same query list from its start, so a server kept across runs would
# answer the next run's first queries from its cache.
for c in 1 8 64; do
  start_server
  json=$(target/release/plexus-bench --url http://127.0.0.1:18301/mcp --tool search_knowledge \
    --args-file "$work/queries.jsonl" -c "$c" -d "$duration" --json)
  stop_server
  echo "$json" | python3 -c 'import json,sys; j=json.load(sys.stdin); l=j["latency_ms"]; print("cold clients %3d: %9.0f req/s  p50 %.3f ms  p99 %.3f ms  errors %d  requests %d" % (j["concurrency"], j["ok_rps"], l["p50"], l["p99"], j["errors"]["total"], j["requests"]))'
done
start_server
for c in 1 8 64; do
  json=$(target/release/plexus-bench --url http://127.0.0.1:18301/mcp --tool search_knowledge \
    --args '{"query":"HashMap insert"}' -c "$c" -d "$duration" --warmup 1s --json)
  echo "$json" | python3 -c 'import json,sys; j=json.load(sys.stdin); l=j["latency_ms"]; print("warm clients %3d: %9.0f req/s  p50 %.3f ms  p99 %.3f ms  errors %d" % (j["concurrency"], j["ok_rps"], l["p50"], l["p99"], j["errors"]["total"]))'
done
