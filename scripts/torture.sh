#!/usr/bin/env bash
# Long crash-torture runs: the CLI killed N times (default 100) and the desktop app M times
# (default 20), at random instants and at the named crash points, then every file checked on
# the server. Needs what scripts/test.sh needs (node, the test server's npm packages, Xvfb).
#   scripts/torture.sh [CLI_KILLS] [APP_KILLS]
# TUSKER_TORTURE_SEED=<n> replays the kill instants of an earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
export TUSKER_TORTURE_KILLS=${1:-100}
export TUSKER_TORTURE_APP_KILLS=${2:-20}
[ -d tests/server/node_modules/@tus/server ] || npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
[ -f ui/dist/index.html ] || { npm ci --no-audit --no-fund --loglevel=error && npm run build; }
exec dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
  cargo test --locked --test torture -- --nocapture --test-threads 1
