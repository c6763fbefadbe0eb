#!/usr/bin/env bash
# Takes the README's screenshots (light and dark: empty, busy, filters, details, menu,
# settings; and what the user reads: the network banner, a 401 row, a changed file, a long
# PATCH) with the end-to-end tests under Xvfb and copies them into docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
dbus-run-session -- scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" \
  cargo test --locked --test e2e -- screenshots_
mkdir -p docs/screenshots
cp "${CARGO_TARGET_DIR:-target}"/screenshots/*.png docs/screenshots/
ls -1 docs/screenshots
