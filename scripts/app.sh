#!/usr/bin/env bash
# Sets up and runs Tusker: installs the Debian packages it builds with (scripts/deps.sh), the
# UI's packages, builds the desktop app (release), starts
# a local tus server on port ${PORT:-1080} for trying it out, and launches the app pointed at it
# (on first run; later runs keep what you set in Settings). Drop files into the window.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
npm ci --no-audit --no-fund --loglevel=error
npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
npm run build
cargo build --release --bin tusker
target="${CARGO_TARGET_DIR:-target}"
PORT="${PORT:-1080}"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use; using the server there (set PORT=... for another one)" >&2
else
  TUS_DIR="$PWD/.tus-uploads" PORT="$PORT" scripts/dev-server.sh &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
fi
TUSKER_ENDPOINT="http://127.0.0.1:$PORT/files" "$target/release/tusker" "$@"
