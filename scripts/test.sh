#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the UI's type check and unit tests, then the
# Rust unit, integration, fault, crash and end-to-end tests (the real app in a WebKit window
# under Xvfb, driven by tauri-driver) against the real tus servers, the benchmark harness on
# small sizes, and the Debian package installed and launched.
set -euo pipefail
cd "$(dirname "$0")/.."

# What a fresh Debian 12 machine lacks is installed first, skipping what is there: the Debian
# packages (scripts/deps.sh), rustfmt and clippy, tauri-driver, and rustus 0.5.10 (the second
# real tus server; about 4.5 min to build, once per machine).
scripts/deps.sh test
command -v cargo >/dev/null || { echo "error: no Rust toolchain (cargo) on PATH: see https://rustup.rs" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
command -v tauri-driver >/dev/null || cargo install tauri-driver --version '^2' --locked
rustus --version 2>/dev/null | grep -q ' 0\.5\.10$' \
  || cargo install rustus --version 0.5.10 --locked --features hashers
node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19)?1:0)' 2>/dev/null || echo 0)
if [ "$node_ok" != 1 ]; then
  echo "error: Node.js >= 20.19 is needed (UI build, test tus server); found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
for tool in xvfb-run dbus-run-session gnome-keyring-daemon tauri-driver WebKitWebDriver xdotool openssl setpriv curl /usr/bin/time rustus; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing after the set-up above" >&2; exit 1; }
done

npm ci --no-audit --no-fund --loglevel=error
npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
npm run check
npm test
npm run build
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# One display and one D-Bus session (single instance uses it; an unlocked GNOME keyring on it
# for the keyring tests) for the whole run; the end-to-end tests take turns on the display.
dbus-run-session -- scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" cargo test --workspace --locked
# The benchmark harness on small sizes: proves it still runs (no timing assertions).
tests/bench/run.sh --smoke
# The package: built (debug build), installed with apt-get, the installed app launched.
# Installing needs root: through sudo when run as another user.
if [ "$(id -u)" = 0 ]; then
  scripts/check-package.sh
else
  deb=$(scripts/package.sh --debug | tail -n 1)
  sudo scripts/check-package.sh "$deb"
fi
