#!/usr/bin/env bash
# The test command: unit and integration tests of every crate, end-to-end
# tests with real MCP clients (Python SDK, Inspector CLI), then the official
# MCP conformance suite for both protocol eras.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build"
cargo build -p plexus
export PLEXUS_BIN="$PWD/target/debug/plexus"

# One thread per numeric library: fewer sources of last-bit noise in the recomputations.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

echo "== reference values: empyrical-reloaded recomputes the trading risk fixture (to 1e-12)"
refvenv=scripts/reference/.venv
if [ ! -x "$refvenv/bin/python" ]; then
  python3 -m venv "$refvenv"
  "$refvenv/bin/pip" install -q --disable-pip-version-check -r scripts/reference/requirements.txt
fi
"$refvenv/bin/python" scripts/reference/trading_risk.py "${TMPDIR:-/tmp}/risk_reference.json"
python3 scripts/reference/same.py crates/modules/trading/tests/fixtures/risk_reference.json "${TMPDIR:-/tmp}/risk_reference.json"

echo "== reference values: catsim, girth and pyBKT recompute the learning fixture (to 1e-12; girth's calibration to 1e-8)"
lrnvenv=scripts/reference/.venv-learning
if [ ! -x "$lrnvenv/bin/python" ]; then
  python3 -m venv "$lrnvenv"
  "$lrnvenv/bin/pip" install -q --disable-pip-version-check -r scripts/reference/learning-requirements.txt
fi
"$lrnvenv/bin/python" scripts/reference/learning_reference.py "${TMPDIR:-/tmp}/learning_reference.json"
python3 scripts/reference/same.py crates/modules/learning/tests/fixtures/learning_reference.json "${TMPDIR:-/tmp}/learning_reference.json"

echo "== cargo test (workspace)"
# A test that hangs fails the run here, with libtest's "running for over 60
# seconds" naming it, instead of using up CI's whole time.
timeout --kill-after=30s 45m cargo test --workspace

echo "== end-to-end (Python mcp SDK, MCP Inspector CLI)"
venv=tests/e2e/.venv
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
(cd tests/e2e && .venv/bin/pytest -q)

echo "== web console in headless Chromium"
bash scripts/test-console.sh

echo "== MCP conformance suite"
bash tests/conformance/run.sh "$PLEXUS_BIN"
