#!/bin/sh
# escrow package, after install or upgrade (deb: "configure"; rpm: 1 or 2).
# Nothing is enabled or started here: "escrow install" does that once a
# configuration exists. An upgrade restarts an agent that was running, so
# that the new version runs.
set -e

chown root:root /etc/escrow /var/lib/escrow
chmod 0700 /etc/escrow /var/lib/escrow

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl try-restart escrow.service || true
elif [ -x /etc/init.d/escrow ] && /etc/init.d/escrow status >/dev/null 2>&1; then
	/etc/init.d/escrow restart || true
fi
exit 0
