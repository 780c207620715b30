#!/bin/sh
# Creates the hostd system group and user before the package's files are
# unpacked, so files and directories owned by them get the right owner.
# Arguments: deb "install"/"upgrade", rpm 1 (install) or 2 (upgrade).
set -e

if ! getent group hostd >/dev/null; then
    groupadd --system hostd
fi
if ! getent passwd hostd >/dev/null; then
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    useradd --system --gid hostd --home-dir /var/lib/hostd --no-create-home \
        --shell "$nologin" --comment "hostd service" hostd
fi
