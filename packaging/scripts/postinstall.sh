#!/bin/sh
# Makes sure the state directory exists and tells systemd about the unit.
# Arguments: deb "configure" [old-version], rpm 1 (install) or 2 (upgrade).
# Works where systemd is not running (containers, image builds): every
# systemctl call is skipped there.
set -e

install -d -o hostd -g hostd -m 0750 /var/lib/hostd

upgrade=no
case "$1" in
    configure) [ -n "${2:-}" ] && upgrade=yes ;;
    2) upgrade=yes ;;
esac

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ "$upgrade" = yes ]; then
        # A running hostd picks up the new binary; a stopped one stays stopped.
        systemctl try-restart hostd.service || true
    fi
fi

if [ "$upgrade" = no ]; then
    cat <<'MSG'
hostd is installed but not enabled. Next steps:
  1. edit /etc/hostd/hostd.hcl (Vault address) and /etc/hostd/templates/agent.ctmpl (role, site)
  2. write this host's AppRole role-id and secret-id to /etc/hostd/role-id and /etc/hostd/secret-id
     (owner hostd, mode 0400)
  3. systemctl enable --now hostd.service
MSG
fi
