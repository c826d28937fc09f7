#!/usr/bin/env bash
# Run the official MCP conformance suite against `plexus serve --modules conformance`
# for both protocol eras, and judge each run by its checks.json files.
#
# usage: tests/conformance/run.sh [PLEXUS_BIN]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${PLEXUS_BIN:-$root/target/debug/plexus}}"
version="0.2.0-alpha.12"
work="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The frozen requirement lists ship inside the package.
(cd "$work" && npm pack -s "@modelcontextprotocol/conformance@$version" >/dev/null && tar xzf ./*.tgz)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --http "127.0.0.1:$port" --modules conformance --allow-anonymous --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
url="http://localhost:$port/mcp"
status=0
for era in 2025-11-25 2026-07-28; do
  echo "== conformance $version, requirements $era, $url"
  npx -y -p node@22 -p "@modelcontextprotocol/conformance@$version" conformance server \
    --url "$url" --requirements "$era" -o "$work/results-$era" >"$work/suite-$era.log" 2>&1 || true
  python3 "$here/check.py" "$work/package/requirements/$era.yaml" "$work/results-$era" || status=1
done
passed=0; failed=0
for era in 2025-11-25 2026-07-28; do
  if [ -f "$work/results-$era/summary.txt" ]; then
    read -r p f < "$work/results-$era/summary.txt"; passed=$((passed + p)); failed=$((failed + f))
  else
    failed=$((failed + 1))
  fi
done
if [ "$status" -ne 0 ]; then
  echo "--- server log (tail)"; tail -n 40 "$work/server.log"
fi
echo "conformance: $passed passed, $failed failed"
exit "$status"
