#!/bin/sh
# Tells systemd the unit is gone; on purge also removes hostd's state.
# The hostd user is kept: files it owned may still exist elsewhere.
# Arguments: deb "remove"/"purge"/"upgrade"/..., rpm 0 (erase) or 1 (upgrade).
set -e

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi

if [ "$1" = purge ]; then
    rm -rf /var/lib/hostd
fi
