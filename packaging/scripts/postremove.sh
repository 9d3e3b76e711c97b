#!/bin/sh
# escrow package, after removal. The configuration and secrets in
# /etc/escrow and the state in /var/lib/escrow stay, even on purge: the
# password in there may be the only copy of the key to the backups.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
case "$1" in
purge)
	echo "escrow: kept /etc/escrow (configuration and secrets: the repository password may be the only copy) and /var/lib/escrow; delete them yourself when the backups are no longer needed." >&2
	;;
esac
exit 0
