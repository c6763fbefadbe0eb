#!/usr/bin/env bash
# The benchmark harness in one command: installs the pinned peers (tus-js-client from npm,
# tuspy from pip into tests/bench/.venv), builds tusker-cli in release mode, and runs
# tests/bench/bench.py. The full run writes docs/bench/ and the table in docs/performance.md.
#   tests/bench/run.sh            full run (1 GiB, 10 GiB sparse, 10,000 files; ~10 min)
#   tests/bench/run.sh --smoke    small sizes, debug build, no docs change (CI)
#   tests/bench/link.py --cli target/release/tusker-cli   the per-flow link (parallel parts)
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in node curl openssl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done
npm ci --prefix tests/bench --no-audit --no-fund --loglevel=error
npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
if [ ! -x tests/bench/.venv/bin/python ]; then
  python3 -m venv tests/bench/.venv
fi
tests/bench/.venv/bin/pip install -q --disable-pip-version-check -r tests/bench/requirements.txt
target="${CARGO_TARGET_DIR:-target}"
if [ "${1:-}" = "--smoke" ]; then
  cargo build --locked -q -p tusker-cli
  tests/bench/.venv/bin/python tests/bench/bench.py --smoke --cli "$target/debug/tusker-cli" \
    --python tests/bench/.venv/bin/python --out "$target/bench-smoke"
  # The per-flow link with parallel parts (tests/bench/link.py), on 8 MiB.
  exec tests/bench/.venv/bin/python tests/bench/link.py --cli "$target/debug/tusker-cli" --runs 1 --sizes 8
fi
cargo build --locked -q --release -p tusker-cli
exec tests/bench/.venv/bin/python tests/bench/bench.py --cli "$target/release/tusker-cli" \
  --python tests/bench/.venv/bin/python --readme "$@"
