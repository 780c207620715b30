#!/usr/bin/env bash
# The Debian packages that `make test` and `make demo` need, in one list.
#
#   e2e/system-packages.sh            install the missing ones (as root), or say how
#   e2e/system-packages.sh --list     print the list
#
# What each is for: systemd, dbus, dbus-user-session and util-linux run a real
# systemd user manager in a private mount namespace (unshare) for the restart
# path; polkitd checks the packaged polkit rule; rpm inspects the .rpm; prometheus
# brings promtool and the server for the alerting-rule tests; curl and python3
# serve `make demo`; git and make build and stamp versions.
#
# As root, missing packages are installed with apt-get (its lists are fetched
# first). Otherwise the one apt-get line to run is printed and the script exits
# 1, so no test starts on a machine that cannot run it.
set -euo pipefail

packages=(systemd dbus dbus-user-session util-linux git make rpm polkitd curl python3 prometheus)

if [ "${1:-}" = --list ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them as root, then run make again:" >&2
  echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
