#!/usr/bin/env bash
# Installs the Debian 12 packages Tusker needs, skipping what is there: `build` for building
# the app (scripts/app.sh), `test` for that plus the test tools (.ci/run). As root it runs
# apt-get; otherwise through sudo, or it prints the command to run.
set -euo pipefail
build=(build-essential pkg-config file ca-certificates libssl-dev
  libwebkit2gtk-4.1-dev libxdo-dev libayatana-appindicator3-dev librsvg2-dev libdbus-1-dev)
test=(xvfb xauth webkit2gtk-driver xdotool python3-gi gir1.2-gtk-3.0 dbus-daemon dbus-bin
  openssl curl time python3-venv util-linux mount gnome-keyring desktop-file-utils imagemagick)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${test[@]}") ;;
  *) echo "usage: scripts/deps.sh [build|test]" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "error: these Debian packages are missing; as root run: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
