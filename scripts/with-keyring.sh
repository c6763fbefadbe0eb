#!/usr/bin/env bash
# Runs a command with an unlocked GNOME keyring (Secret Service) on the current D-Bus session
# bus, as a desktop login has: the keyring tests store and read secrets in it for real.
# Use inside dbus-run-session. The keyring lives in a throwaway XDG_DATA_HOME.
set -euo pipefail
command -v gnome-keyring-daemon >/dev/null || { echo "error: gnome-keyring-daemon is missing (apt-get install gnome-keyring; .ci/run does)" >&2; exit 1; }
[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || { echo "error: no D-Bus session bus: run inside dbus-run-session" >&2; exit 1; }
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
export XDG_DATA_HOME="$keyring_home"
# --unlock creates the login keyring with this password and unlocks it.
eval "$(printf 'tusker-test' | gnome-keyring-daemon --unlock --components=secrets 2>/dev/null)"
export GNOME_KEYRING_CONTROL
export TUSKER_REQUIRE_KEYRING=1
"$@"
