#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, then the unit, integration, fault and crash
# tests against the real tus server (installed from tests/server/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19)?1:0)' 2>/dev/null || echo 0)
if [ "$node_ok" != 1 ]; then
  echo "error: Node.js >= 20.19 is needed for the test tus server (@tus/server); found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi

npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
