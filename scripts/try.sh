#!/usr/bin/env bash
# Sets up and runs Tusker's main job for now: builds the CLI, starts a local tus server, and
# uploads the files you name (or a few generated samples) to it, then lists the journal.
#   scripts/try.sh [FILE_OR_FOLDER...]
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
cargo build --release -p tusker-cli
target="${CARGO_TARGET_DIR:-target}"
export TUSKER_DATA_DIR="${TUSKER_DATA_DIR:-$PWD/.tusker-data}"
PORT="${PORT:-1080}"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use; using the server there (set PORT=... for another one)" >&2
else
  TUS_DIR="$PWD/.tus-uploads" PORT="$PORT" scripts/dev-server.sh >/dev/null 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
fi
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done
if [ $# -eq 0 ]; then
  mkdir -p .tusker-samples
  head -c $((64 << 20)) /dev/urandom > .tusker-samples/random-64MiB.bin
  echo "hello from Tusker" > .tusker-samples/hello.txt
  set -- .tusker-samples
fi
"$target/release/tusker-cli" upload --endpoint "http://127.0.0.1:$PORT/files" "$@"
"$target/release/tusker-cli" list
