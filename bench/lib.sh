# Helpers shared by bench/run.sh, bench/agent.sh and bench/db.sh; source it, don't run it.
#
# The caller sets LOGS (a directory for logs) before starting MinIO.
# shellcheck shell=bash

die() { echo "bench: FAILED: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# find_minio prints the MinIO binary: $ESCROW_MINIO_BIN, minio on PATH, or
# the one scripts/test-deps.sh installs.
find_minio() {
	if [[ -n ${ESCROW_MINIO_BIN:-} && -x ${ESCROW_MINIO_BIN:-} ]]; then
		echo "$ESCROW_MINIO_BIN"
	elif command -v minio >/dev/null 2>&1; then
		command -v minio
	elif [[ -x $HOME/.cache/escrow-ci/bin/minio ]]; then
		echo "$HOME/.cache/escrow-ci/bin/minio"
	else
		return 1
	fi
}

# need_tools T...: fail unless every tool is on PATH.
need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "$t is missing"
	done
}

# build ROOT ARGS...: run ARGS in ROOT, once more after a failure: other
# builds sharing the Go cache can make a build fail once.
build() {
	local root=$1
	shift
	(cd "$root" && "$@") || (sleep 2 && cd "$root" && "$@")
}

# escrow_revision ROOT prints the commit, with +worktree when it has changes.
escrow_revision() {
	local rev
	rev=$(git -C "$1" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n $(git -C "$1" status --porcelain 2>/dev/null | head -1) ]]; then
		rev="$rev+worktree"
	fi
	echo "$rev"
}

free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start_minio MINIO DATADIR CERTSDIR: start MinIO on a free 127.0.0.1 port
# with a new random secret, logging to $LOGS/minio.log. Sets MINIO_PID,
# MINIO_PORT, MINIO_USER and MINIO_SECRET; fails after three tries.
start_minio() {
	local bin=$1 data=$2 certs=$3 p c
	MINIO_USER=bench
	MINIO_SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	MINIO_PORT=
	for _ in 1 2 3; do
		p=$(free_port) || return 1
		c=$(free_port) || return 1
		[[ $p != "$c" ]] || continue
		if start_minio_on "$bin" "$data" "$certs" "$p" "$c"; then
			MINIO_PORT=$p
			return 0
		fi
	done
	return 1
}

start_minio_on() {
	local bin=$1 data=$2 certs=$3 port=$4 cport=$5
	# Credentials go through the environment, never argv.
	(
		while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(MINIO_[A-Za-z0-9_]*\)=.*/\1/p')
		export MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_SECRET MINIO_BROWSER=off MINIO_UPDATE=off
		exec "$bin" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
			--certs-dir "$certs" "$data"
	) >>"$LOGS/minio.log" 2>&1 &
	MINIO_PID=$!
	for _ in $(seq 300); do
		if ! kill -0 "$MINIO_PID" 2>/dev/null; then
			wait "$MINIO_PID" 2>/dev/null || true
			MINIO_PID=
			return 1
		fi
		if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/minio/health/live" 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	kill -KILL "$MINIO_PID" 2>/dev/null || true
	MINIO_PID=
	return 1
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s; for processes this script
# started.
stop_pid() {
	local pid=$1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Numbers for the report.
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

# time_field FILE wall|cpu|rss: seconds, CPU seconds (user + system) or
# peak RSS in MB from a `/usr/bin/time -v` report.
time_field() {
	case $2 in
	wall) awk -F': ' '/Elapsed \(wall clock\)/ {
		n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; printf "%.2f", s }' "$1" ;;
	cpu) awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$1" ;;
	rss) awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1" ;;
	esac
}

# timed STEP TOOL COMMAND...: runs COMMAND under /usr/bin/time -v, its output
# in $LOGS/STEP.TOOL.out, and records wall time, CPU time, peak RSS and the
# load average before it in the caller's WALL, CPU, RSS and LOAD arrays
# (keyed STEP.TOOL). A failure or a timeout ($BENCH_STEP_TIMEOUT) ends the run.
timed() {
	local step=$1 t=$2
	shift 2
	local out=$LOGS/$step.$t.out tf=$LOGS/$step.$t.time
	sync
	LOAD[$step.$t]=$(cut -d' ' -f1 /proc/loadavg)
	log "$step: $t (load average ${LOAD[$step.$t]})"
	local rc=0
	/usr/bin/time -v -o "$tf" timeout -k 30 "$BENCH_STEP_TIMEOUT" "$@" >"$out" 2>&1 || rc=$?
	if ((rc != 0)); then
		echo "----- $t output ($out), last 40 lines -----" >&2
		tail -n 40 "$out" >&2
		((rc == 124)) && die "$step: $t timed out after ${BENCH_STEP_TIMEOUT}s"
		die "$step: $t exited with status $rc"
	fi
	WALL[$step.$t]=$(time_field "$tf" wall)
	CPU[$step.$t]=$(time_field "$tf" cpu)
	RSS[$step.$t]=$(time_field "$tf" rss)
	[[ -n ${WALL[$step.$t]} && -n ${RSS[$step.$t]} ]] || die "could not parse $tf"
	log "$step: $t took ${WALL[$step.$t]} s, ${CPU[$step.$t]} s CPU, peak RSS ${RSS[$step.$t]} MB"
}
