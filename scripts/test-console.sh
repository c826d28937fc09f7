#!/usr/bin/env bash
# Browser tests of the web console: headless Debian Chromium driven by
# playwright-core (Node's own test runner, tests/console/*.test.mjs).
# The Plexus binary is $PLEXUS_BIN (default target/debug/plexus; not built here).
# Arguments, if any, replace the default test path (e.g. tests/console/smoke.test.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== chromium (and a Japanese font, so screenshots show the Japanese pages)"
need=""
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ] || need="chromium"
[ -e /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf ] || need="$need fonts-ipafont-gothic"
if [ -n "$need" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq $need
fi

echo "== npm dependencies (tests/console)"
stamp=tests/console/node_modules/.package-lock.sha256
want="$(sha256sum tests/console/package-lock.json | cut -d' ' -f1)"
if [ ! -d tests/console/node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd tests/console && npm ci --no-audit --no-fund)
  echo "$want" >"$stamp"
fi

echo "== console tests"
export PLEXUS_BIN="${PLEXUS_BIN:-$PWD/target/debug/plexus}"
if [ "$#" -gt 0 ]; then
  node --test "$@"
else
  node --test tests/console/
fi
