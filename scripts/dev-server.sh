#!/usr/bin/env bash
# Starts the official tus reference server (@tus/server + file store) on 127.0.0.1:${PORT:-1080},
# storing uploads in ${TUS_DIR:-./.tus-uploads}. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d tests/server/node_modules/@tus/server ] || npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
export TUS_DIR="${TUS_DIR:-$PWD/.tus-uploads}" TUS_PORT="${PORT:-1080}"
mkdir -p "$TUS_DIR"
echo "tus server: http://127.0.0.1:$TUS_PORT/files  (uploads stored in $TUS_DIR)" >&2
exec node tests/server/server.mjs
