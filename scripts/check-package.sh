#!/usr/bin/env bash
# CI: builds the .deb (the debug build, so it reuses the test build), installs it with apt-get
# (which pulls in what the package declares), checks what it put where, and launches the
# installed app under Xvfb until its window is there. Needs root (it installs the package).
#   scripts/check-package.sh [path/to/tusker.deb]   (builds one when no path is given)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: scripts/check-package.sh installs the package: run it as root" >&2; exit 1; }
deb=${1:-$(scripts/package.sh --debug | tail -n 1)}
echo "package: $deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Section\):/  \1:/p'
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb" >/dev/null
for f in /usr/bin/tusker /usr/bin/tusker-cli /usr/share/applications/Tusker.desktop \
  /usr/share/icons/hicolor/48x48/apps/tusker.png /usr/share/icons/hicolor/256x256/apps/tusker.png; do
  [ -e "$f" ] || { echo "error: the package did not install $f; it has:" >&2; dpkg -L tusker >&2; exit 1; }
done
desktop=/usr/share/applications/Tusker.desktop
grep -qx 'Exec=tusker %F' "$desktop" || { echo "error: $desktop lacks 'Exec=tusker %F':" >&2; cat "$desktop" >&2; exit 1; }
desktop-file-validate "$desktop"
tusker-cli --version
# The installed app, as a person starts it: a fresh home, its own display and D-Bus session.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
HOME=$home XDG_CONFIG_HOME=$home/.config XDG_DATA_HOME=$home/.local/share \
  dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
    tusker > "$HOME/tusker.log" 2>&1 &
    app=$!
    # A loop, not `xdotool search --sync`: xdotool exits on the X error it gets when one of
    # GTK'"'"'s short-lived windows vanishes while it reads its name.
    shown=
    for _ in $(seq 120); do
      if xdotool search --onlyvisible --name "^Tusker$" > /dev/null 2>&1; then shown=1; break; fi
      sleep 0.5
    done
    if [ -z "$shown" ]; then
      echo "error: the installed app showed no window within 60 s; its output:" >&2
      cat "$HOME/tusker.log" >&2
      kill "$app" 2>/dev/null
      exit 1
    fi
    sleep 2
    kill -0 "$app" || { echo "error: the installed app exited after showing its window" >&2; cat "$HOME/tusker.log" >&2; exit 1; }
    import -window root "'"$(realpath -m "${CARGO_TARGET_DIR:-target}")"'/installed-app.png"
    kill "$app"
    wait "$app" 2>/dev/null || true
  '
echo "the installed package works: window shown (screenshot: ${CARGO_TARGET_DIR:-target}/installed-app.png)"
