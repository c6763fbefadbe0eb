#!/usr/bin/env bash
# Builds the Debian package with Tauri's bundler: `tusker` (the app) and `tusker-cli` in
# /usr/bin, a menu entry that opens files with Tusker, icons in the hicolor sizes. Installs
# what a fresh Debian/Ubuntu machine lacks first (scripts/deps.sh). The last line printed is
# the .deb's path; install it with `sudo apt install ./<that path>`.
#   scripts/package.sh           release build (optimised; what to hand to people)
#   scripts/package.sh --debug   the debug build (CI: reuses the test build, checks the package)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
profile=release
case "${1:-}" in
  "") ;;
  --debug) profile=debug ;;
  *) echo "usage: scripts/package.sh [--debug]" >&2; exit 2 ;;
esac
scripts/deps.sh build >&2
npm ci --no-audit --no-fund --loglevel=error >&2
cli_flags=(--locked -p tusker-cli)
[ "$profile" = release ] && cli_flags+=(--release)
cargo build "${cli_flags[@]}" >&2
# The bundler runs `npm run build` (beforeBuildCommand) and builds the app itself. The CLI's
# path in the package depends on the profile, so it is given here rather than in tauri.conf.json.
config="{\"bundle\":{\"linux\":{\"deb\":{\"files\":{\"/usr/bin/tusker-cli\":\"$(realpath -m "$target")/$profile/tusker-cli\"}}}}}"
tauri_flags=(--bundles deb --config "$config")
[ "$profile" = debug ] && tauri_flags+=(--debug)
npx tauri build "${tauri_flags[@]}" >&2
deb=$(ls -t "$target/$profile/bundle/deb/"*.deb | head -n 1)
[ -f "$deb" ] || { echo "error: the bundler made no .deb under $target/$profile/bundle/deb" >&2; exit 1; }
realpath "$deb"
