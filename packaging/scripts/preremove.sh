#!/bin/sh
# Stops and disables hostd when the package is removed (not on upgrade).
# Arguments: deb "remove"/"upgrade"/..., rpm 0 (erase) or 1 (upgrade).
set -e

case "$1" in
    remove|0)
        if [ -d /run/systemd/system ]; then
            systemctl stop hostd.service || true
        fi
        systemctl --no-reload disable hostd.service >/dev/null 2>&1 || true
        ;;
esac
