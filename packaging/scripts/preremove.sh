#!/bin/sh
# escrow package, before removal. On removal (deb: "remove"; rpm: 0) the
# service goes too: escrow uninstall stops the agent and removes the service,
# and never deletes the configuration, the secrets, the state or the
# repository. An upgrade (deb: "upgrade"; rpm: 1) leaves it running.
set -e

case "$1" in
remove | 0)
	/usr/bin/escrow uninstall || true
	;;
esac
exit 0
