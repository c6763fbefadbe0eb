#!/usr/bin/env bash
# Takes the README's screenshots (light and dark: empty, busy, filters, details, menu,
# settings) with the end-to-end test under Xvfb and copies them into docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
dbus-run-session -- scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" \
  cargo test --locked --test e2e -- --exact screenshots_in_light_and_dark_themes
mkdir -p docs/screenshots
cp target/screenshots/*.png docs/screenshots/
ls -1 docs/screenshots
