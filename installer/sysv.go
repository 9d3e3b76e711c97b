package installer

import (
	"fmt"
	"strings"
)

// sysvPIDFile is where the SysV script keeps the agent's process ID.
const sysvPIDFile = "/var/run/" + Name + ".pid"

// SysvScript is the init script for systems without systemd. Unlike the
// library's default it waits as long as the agent may take to stop (40 s,
// not 10), reloads with SIGHUP, exits with the LSB status codes (status: 0
// running, 3 stopped) and appends the agent's log to LogFile. It runs
// the agent without systemd's sandbox: SysV init has none.
func SysvScript(o Options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/sh")
	w("# The escrow agent as a SysV init service, written by \"escrow install\"")
	w("# (docs/service.md). The next install replaces this file.")
	w("#")
	w("# chkconfig: 2345 90 10")
	w("# description: %s", Description)
	w("### BEGIN INIT INFO")
	w("# Provides:          %s", Name)
	w("# Required-Start:    $network $remote_fs $syslog")
	w("# Required-Stop:     $network $remote_fs $syslog")
	w("# Default-Start:     2 3 4 5")
	w("# Default-Stop:      0 1 6")
	w("# Short-Description: %s", DisplayName)
	w("# Description:       %s", Description)
	w("### END INIT INFO")
	w("")
	w("exe=%s", o.Executable)
	w("config=%s", o.ConfigFile)
	w("pid_file=%s", sysvPIDFile)
	w("log_file=%s", LogFile)
	w("stop_timeout=%d", stopTimeoutManager)
	w("")
	b.WriteString(sysvBody)
	return b.String()
}

// sysvBody is the script after its settings. The agent runs in the
// background of the script itself, so $! is its PID. Not through nohup:
// SIGHUP is the agent's reload signal, and a terminal closing after the
// script has ended does not send it to the agent anyway.
const sysvBody = `if [ -r ` + EnvironmentFile + ` ]; then
	set -a
	. ` + EnvironmentFile + `
	set +a
fi

running() {
	[ -f "$pid_file" ] || return 1
	pid=$(cat "$pid_file" 2>/dev/null)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

case "$1" in
start)
	if running; then
		echo "Running (pid $pid)"
		exit 0
	fi
	echo "Starting escrow agent"
	umask 077
	cd / || exit 1
	"$exe" agent --config "$config" </dev/null >>"$log_file" 2>&1 &
	echo $! >"$pid_file"
	sleep 1
	if ! running; then
		echo "The escrow agent stopped at once; the end of $log_file:"
		tail -n 5 "$log_file"
		rm -f "$pid_file"
		exit 1
	fi
	;;
stop)
	if ! running; then
		echo "Stopped"
		rm -f "$pid_file"
		exit 0
	fi
	printf 'Stopping escrow agent (pid %s)' "$pid"
	kill -TERM "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt "$stop_timeout" ]; then
			echo " still running after ${stop_timeout}s"
			exit 1
		fi
		printf .
		sleep 1
	done
	rm -f "$pid_file"
	echo " stopped"
	;;
restart | force-reload)
	"$0" stop && "$0" start
	;;
reload)
	if ! running; then
		echo "Stopped"
		exit 7
	fi
	kill -HUP "$pid"
	;;
status)
	if running; then
		echo "Running (pid $pid)"
		exit 0
	fi
	echo "Stopped"
	exit 3
	;;
*)
	echo "Usage: $0 {start|stop|restart|force-reload|reload|status}"
	exit 2
	;;
esac
exit 0
`
