#!/usr/bin/env bash
# Benchmark the agent (escrow agent) on a tree of many small files, against
# restic on the same tree and the same MinIO server, in one run. See
# bench/README.md ("The agent benchmark").
#
#   bash bench/agent.sh                    # 100,000 files, about 7 minutes
#   BENCH_FILES=20000 bash bench/agent.sh  # quicker: about 5 minutes
#
# Environment:
#   BENCH_FILES=100000      files in the generated tree (about 1 directory per 10)
#   BENCH_SEED=1            tree and operations seed
#   BENCH_ROUNDS=5          incremental rounds (figure 1)
#   BENCH_CHANGED=10        files changed per round
#   BENCH_TRIALS=10         latency trials (figure 2)
#   BENCH_OPS=10000         mixed operations (figure 3)
#   BENCH_OPS_SECONDS=75    spread the operations over this long (0: at once)
#   BENCH_KEEP=0            1: keep the tree, MinIO data, state and restore
#   BENCH_WORK=DIR          work directory (default: a new one under $TMPDIR or /tmp)
#   BENCH_JSON=FILE         also copy the JSON results here
#   BENCH_STEP_TIMEOUT=1800 seconds before a step is given up (and the run fails)
#   BENCH_AGENT_ENV=        extra environment for the agent, space-separated
#                           NAME=VALUE words (e.g. GODEBUG=gctrace=1)
#   RESTIC=/usr/bin/restic  restic binary
#   ESCROW_MINIO_BIN        MinIO binary (default: minio on PATH, then
#                           $HOME/.cache/escrow-ci/bin/minio)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_FILES=${BENCH_FILES:-100000}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_ROUNDS=${BENCH_ROUNDS:-5}
BENCH_CHANGED=${BENCH_CHANGED:-10}
BENCH_TRIALS=${BENCH_TRIALS:-10}
BENCH_OPS=${BENCH_OPS:-10000}
BENCH_OPS_SECONDS=${BENCH_OPS_SECONDS:-75}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-1800}
RESTIC=${RESTIC:-/usr/bin/restic}
# The agent's schedule: its defaults, which the latency target assumes.
QUIET_S=10
MAX_DELAY_S=60

for v in BENCH_FILES BENCH_SEED BENCH_ROUNDS BENCH_CHANGED BENCH_TRIALS BENCH_OPS BENCH_OPS_SECONDS BENCH_STEP_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
((BENCH_FILES >= 1000 && BENCH_ROUNDS >= 1 && BENCH_TRIALS >= 1 && BENCH_CHANGED >= 2)) ||
	die "need BENCH_FILES >= 1000, BENCH_ROUNDS >= 1, BENCH_TRIALS >= 1 and BENCH_CHANGED >= 2"

# ----------------------------------------------------------------- tools
MINIO=$(find_minio) || die "no MinIO binary: set ESCROW_MINIO_BIN or run scripts/test-deps.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
[[ -x $RESTIC ]] || die "restic not found at $RESTIC (set RESTIC=...)"
need_tools go curl diff timeout awk sync find sort
[[ -r /proc/self/status ]] || die "/proc is needed to read the agent's memory use"

# ------------------------------------------------------------- work dir
WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/escrow-agent-bench.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DATA=$WORK/data # removed at the end unless BENCH_KEEP=1
LOGS=$WORK/logs # kept: logs and results
BIN=$WORK/bin
SITE=$DATA/site
OUTSIDE=$DATA/outside # same file system as SITE: directories are moved in from here
STATE=$DATA/state
MINIO_DATA=$DATA/minio
[[ ! -e $DATA ]] || die "$DATA already exists: use a new BENCH_WORK"
mkdir -p "$DATA" "$LOGS" "$BIN" "$DATA/secrets"
chmod 700 "$DATA/secrets"

MINIO_PID=
AGENT_PID=
cleanup() {
	local rc=$?
	stop_pid "$AGENT_PID"
	stop_pid "$MINIO_PID"
	if [[ $BENCH_KEEP == 1 ]]; then
		log "kept everything in $WORK"
	else
		rm -rf "$DATA" "$BIN"
	fi
	if ((rc != 0)); then
		log "logs are in $LOGS"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------- build
log "work directory $WORK"
log "building escrow, the tree generator and the operations driver"
build "$ROOT" env CGO_ENABLED=0 go build -o "$BIN/escrow" ./cmd/escrow || die "go build ./cmd/escrow"
build "$ROOT" go build -o "$BIN/gencorpus" ./bench/gencorpus || die "go build ./bench/gencorpus"
build "$ROOT" go build -o "$BIN/agentops" ./bench/agentops || die "go build ./bench/agentops"
ESCROW_REV=$(escrow_revision "$ROOT")
RESTIC_VERSION=$("$RESTIC" version | head -1)

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b - a) / 1e9}'; } # secs FROM_NS TO_NS
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -1; }           # kv KEY "k=v k=v"
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
maxof() { sort -g | tail -1; }

# ------------------------------------------------------------------ tree
log "generating $BENCH_FILES files (seed $BENCH_SEED) in $SITE"
t=$(now_ns)
"$BIN/gencorpus" -dir "$SITE" -files "$BENCH_FILES" -seed "$BENCH_SEED" >"$LOGS/gencorpus.out"
GEN_S=$(secs "$t" "$(now_ns)")
TREE_FILES=$(find "$SITE" -type f | wc -l)
TREE_DIRS=$(find "$SITE" -type d | wc -l)
TREE_BYTES=$(find "$SITE" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}')
log "tree: $TREE_FILES files in $TREE_DIRS directories, $TREE_BYTES bytes (${GEN_S}s)"

# ----------------------------------------------------------------- MinIO
start_minio "$MINIO" "$MINIO_DATA" "$DATA/minio-certs" || die "MinIO did not start; log: $(tail -n 20 "$LOGS/minio.log")"
log "MinIO $MINIO (pid $MINIO_PID) on 127.0.0.1:$MINIO_PORT, data in $MINIO_DATA"

export AWS_ACCESS_KEY_ID=$MINIO_USER AWS_SECRET_ACCESS_KEY=$MINIO_SECRET
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/escrow-password"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/restic-password"
printf '%s\n' "$MINIO_SECRET" >"$DATA/secrets/s3.secret"
chmod 600 "$DATA/secrets/"*
ESCROW_REPO=s3:http://127.0.0.1:$MINIO_PORT/escrow-agent
RESTIC_REPO=s3:http://127.0.0.1:$MINIO_PORT/restic-agent
RESTIC_CACHE=$DATA/restic-cache
mkdir -p "$RESTIC_CACHE"

escrow() {
	env ESCROW_REPOSITORY="$ESCROW_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" "$BIN/escrow" "$@"
}
restic() {
	env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$RESTIC_CACHE" "$RESTIC" -r "$RESTIC_REPO" "$@"
}
log "initialising both repositories"
escrow init >"$LOGS/init.escrow.out" 2>&1 || die "escrow init: $(tail -n 20 "$LOGS/init.escrow.out")"
restic init --repository-version 2 >"$LOGS/init.restic.out" 2>&1 || die "restic init: $(tail -n 20 "$LOGS/init.restic.out")"

# restic_backup NAME: time `restic backup SITE` (its parent is found by host
# and path); sets R_WALL, R_CPU and R_RSS.
restic_backup() {
	local tf=$LOGS/$1.restic.time out=$LOGS/$1.restic.out rc=0
	sync
	/usr/bin/time -v -o "$tf" timeout -k 30 "$BENCH_STEP_TIMEOUT" \
		env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$RESTIC_CACHE" \
		"$RESTIC" -r "$RESTIC_REPO" backup "$SITE" >"$out" 2>&1 || rc=$?
	((rc == 0)) || die "$1: restic backup exited with status $rc: $(tail -n 20 "$out")"
	R_WALL=$(time_field "$tf" wall)
	R_CPU=$(time_field "$tf" cpu)
	R_RSS=$(time_field "$tf" rss)
}

log "restic: first backup of the tree"
restic_backup initial
RESTIC_INITIAL_S=$R_WALL
RESTIC_INITIAL_RSS=$R_RSS
log "restic: first backup took ${R_WALL}s (${R_CPU}s CPU, peak RSS ${R_RSS} MB)"

# ----------------------------------------------------------------- agent
CFG=$DATA/escrow.yaml
cat >"$CFG" <<EOF
# bench/agent.sh: the agent's defaults, except normal priorities (restic
# runs at normal priority too) and a temporary state directory.
repository: $ESCROW_REPO
password_file: $DATA/secrets/escrow-password
s3:
  access_key_id: $MINIO_USER
  secret_access_key_file: $DATA/secrets/s3.secret
sources:
  - path: $SITE
schedule:
  quiet_period: ${QUIET_S}s
  max_delay: ${MAX_DELAY_S}s
  rescan_every: 6h
limits:
  cpu_priority: normal
  io_priority: normal
state_dir: $STATE
log:
  format: json
  level: info
EOF
chmod 600 "$CFG"
"$BIN/escrow" config check --config "$CFG" >"$LOGS/config-check.out" 2>&1 || die "config check: $(cat "$LOGS/config-check.out")"

TCK=$(getconf CLK_TCK)
agent_cpu() { awk -v t="$TCK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$AGENT_PID/stat"; }
agent_mem() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$AGENT_PID/status"; } # VmHWM or VmRSS, MB
agent_alive() { [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited: $(tail -n 20 "$LOGS/agent.log")"; }
# wait_agent ARGS...: agentops wait, with the step timeout.
wait_agent() { "$BIN/agentops" wait -state "$STATE" -timeout "${BENCH_STEP_TIMEOUT}s" "$@"; }

log "starting the agent (first rescan of the tree)"
T_START=$(now_ns)
# Only PATH and HOME: the S3 secret comes from its file, as in production.
# shellcheck disable=SC2086 # BENCH_AGENT_ENV is a list of words
env -i PATH="$PATH" HOME="$DATA" ${BENCH_AGENT_ENV:-} "$BIN/escrow" agent --config "$CFG" >"$LOGS/agent.log" 2>&1 &
AGENT_PID=$!
w=$(wait_agent -snapshot-after "$T_START") || die "the agent's first snapshot: $w $(tail -n 20 "$LOGS/agent.log")"
FIRST_KIND=$(kv kind "$w")
FIRST_S=$(kv seconds "$w")
FIRST_E2E=$(secs "$T_START" "$(kv seen_ns "$w")")
FIRST_HWM=$(agent_mem VmHWM)
[[ $FIRST_KIND == rescan ]] || die "the agent's first snapshot is a $FIRST_KIND, expected its start rescan"
log "agent: first rescan saved in ${FIRST_S}s (${FIRST_E2E}s after start), peak RSS so far $FIRST_HWM MB"

# ---------------------------------------- (1) incremental snapshot cost
declare -a A_SNAP A_E2E A_CPU A_CHANGED R_WALLS R_CPUS R_RSSS
for k in $(seq "$BENCH_ROUNDS"); do
	sleep 1
	agent_alive
	c0=$(agent_cpu)
	"$BIN/gencorpus" -dir "$SITE" -seed "$BENCH_SEED" -modify "$BENCH_CHANGED" -round "$k" >"$LOGS/round$k.modify.out"
	first=$(sed -n 's/^first_write_ns=//p' "$LOGS/round$k.modify.out")
	last=$(sed -n 's/^last_write_ns=//p' "$LOGS/round$k.modify.out")
	w=$(wait_agent -snapshot-after "$last") || die "round $k: $w"
	echo "$w" >"$LOGS/round$k.agent.out"
	A_SNAP[k]=$(kv seconds "$w")
	A_E2E[k]=$(secs "$first" "$(kv seen_ns "$w")")
	A_CPU[k]=$(awk -v a="$c0" -v b="$(agent_cpu)" 'BEGIN {printf "%.2f", b - a}')
	A_CHANGED[k]=$(($(kv files_changed "$w") + $(kv files_new "$w")))
	((A_CHANGED[k] == BENCH_CHANGED)) ||
		log "round $k: WARNING: the agent's snapshot has ${A_CHANGED[k]} new or changed files, expected $BENCH_CHANGED"
	restic_backup "round$k"
	R_WALLS[k]=$R_WALL
	R_CPUS[k]=$R_CPU
	R_RSSS[k]=$R_RSS
	log "round $k: agent snapshot ${A_SNAP[k]}s (end to end ${A_E2E[k]}s, ${A_CPU[k]}s CPU), restic ${R_WALL}s (${R_CPU}s CPU)"
done
med() { printf '%s\n' "$@" | median; }
A_SNAP_MED=$(med "${A_SNAP[@]}")
A_E2E_MED=$(med "${A_E2E[@]}")
A_NODEB_MED=$(for x in "${A_E2E[@]}"; do awk -v x="$x" -v q="$QUIET_S" 'BEGIN {printf "%.2f\n", x - q}'; done | median)
A_CPU_MED=$(med "${A_CPU[@]}")
R_WALL_MED=$(med "${R_WALLS[@]}")
R_CPU_MED=$(med "${R_CPUS[@]}")
R_RSS_MED=$(med "${R_RSSS[@]}")
HWM_ROUNDS=$(agent_mem VmHWM)
RATIO_SNAP=$(awk -v a="$A_SNAP_MED" -v b="$R_WALL_MED" 'BEGIN {printf "%.3f", a / b}')
RATIO_NODEB=$(awk -v a="$A_NODEB_MED" -v b="$R_WALL_MED" 'BEGIN {printf "%.3f", a / b}')

# ------------------------------------------------------------ (2) latency
log "latency: $BENCH_TRIALS trials"
find "$SITE" -type d | sort >"$LOGS/latency.dirs"
NDIRS=$(wc -l <"$LOGS/latency.dirs")
declare -a LAT
for i in $(seq "$BENCH_TRIALS"); do
	sleep 1
	agent_alive
	d=$(sed -n "$((1 + (i * 7919 + BENCH_SEED) % NDIRS))p" "$LOGS/latency.dirs")
	f=$d/latency-$i-$(now_ns).txt
	t0=$(now_ns)
	printf 'trial %d\n' "$i" >"$f"
	t1=$(now_ns)
	w=$(wait_agent -snapshot-after "$t1") || die "latency trial $i: $w"
	LAT[i]=$(secs "$t0" "$(kv seen_ns "$w")")
	id=$(kv id "$w")
	escrow ls "$id" "$d" >"$LOGS/latency.ls" 2>&1 || die "escrow ls $id $d: $(tail -n 5 "$LOGS/latency.ls")"
	grep -qxF "$f" "$LOGS/latency.ls" || die "latency trial $i: snapshot $id does not hold $f"
	echo "trial $i: $f in snapshot $id after ${LAT[i]}s ($w)" >>"$LOGS/latency.out"
	log "latency trial $i: ${LAT[i]}s"
done
LAT_MED=$(med "${LAT[@]}")
LAT_MAX=$(printf '%s\n' "${LAT[@]}" | maxof)
HWM_LAT=$(agent_mem VmHWM)

# ------------------------------------------------------ (3) missed changes
log "operations: $BENCH_OPS over ${BENCH_OPS_SECONDS}s"
agent_alive
SAVED_BEFORE=$(grep -c '"snapshot saved"' "$LOGS/agent.log" || true)
"$BIN/agentops" ops -dir "$SITE" -outside "$OUTSIDE" -n "$BENCH_OPS" -seed "$BENCH_SEED" -duration "${BENCH_OPS_SECONDS}s" >"$LOGS/ops.out" ||
	die "agentops ops: $(tail -n 5 "$LOGS/ops.out")"
OPS_COUNTS=$(head -1 "$LOGS/ops.out")
OPS_FIRST=$(sed -n 's/^first_op_ns=//p' "$LOGS/ops.out")
OPS_LAST=$(sed -n 's/^last_op_ns=//p' "$LOGS/ops.out")
log "operations done in $(secs "$OPS_FIRST" "$OPS_LAST")s: $OPS_COUNTS"
w=$(wait_agent -snapshot-after "$OPS_LAST") || die "the snapshot after the operations: $w"
echo "$w" >"$LOGS/ops.agent.out"
OPS_SETTLE=$(secs "$OPS_LAST" "$(kv seen_ns "$w")")
OPS_SNAPS=$(($(grep -c '"snapshot saved"' "$LOGS/agent.log" || true) - SAVED_BEFORE))
OVERFLOWS=$(grep -c 'overflowed' "$LOGS/agent.log" || true)
HWM_OPS=$(agent_mem VmHWM)
log "operations saved ${OPS_SETTLE}s after the last one, in $OPS_SNAPS snapshots; requesting a full rescan"
agent_alive
T_REQ=$(now_ns)
kill -USR1 "$AGENT_PID"
w=$(wait_agent -rescan-after "$T_REQ") || die "the requested rescan: $w"
echo "$w" >"$LOGS/rescan.agent.out"
RESCAN_CHANGES=$(kv changes "$w")
RESCAN_MISSED=$(kv missed "$w")
MISSED_TOTAL=$(kv missed_total "$w")
RESCAN_S=$(secs "$T_REQ" "$(kv seen_ns "$w")")
log "rescan (${RESCAN_S}s): $RESCAN_CHANGES changes, $RESCAN_MISSED missed by the watcher"

# ------------------------------------------------------------ (4) memory
agent_alive
HWM=$(agent_mem VmHWM)
RSS_NOW=$(agent_mem VmRSS)
AGENT_CPU_TOTAL=$(agent_cpu)
log "agent: peak RSS $HWM MB (now $RSS_NOW MB), ${AGENT_CPU_TOTAL}s CPU in all"
kill -TERM "$AGENT_PID"
STOP_RC=0
for _ in $(seq 300); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AGENT_PID" 2>/dev/null && die "the agent did not stop within 30 s of SIGTERM"
wait "$AGENT_PID" || STOP_RC=$?
AGENT_PID=
((STOP_RC == 0)) || die "the agent exited with status $STOP_RC after SIGTERM: $(tail -n 20 "$LOGS/agent.log")"

# ------------------------------------------- verify: latest == the tree
log "verifying: restore the latest snapshot and compare it with the tree"
mkdir -p "$DATA/restore"
t=$(now_ns)
escrow restore latest --target "$DATA/restore" >"$LOGS/restore.out" 2>&1 || die "escrow restore: $(tail -n 20 "$LOGS/restore.out")"
RESTORE_S=$(secs "$t" "$(now_ns)")
GOT=$DATA/restore$SITE
[[ -d $GOT ]] || die "restore: $GOT does not exist"
VERIFY_DIFFS=0
diff -rq --no-dereference "$SITE" "$GOT" >"$LOGS/verify.diff" 2>&1 || VERIFY_DIFFS=$(wc -l <"$LOGS/verify.diff")
# Type, mode, size and mtime of every entry (directory mtimes included).
(cd "$SITE" && find . -printf '%P %y %m %s %T@\n' | sort) >"$LOGS/verify.tree.meta"
(cd "$GOT" && find . -printf '%P %y %m %s %T@\n' | sort) >"$LOGS/verify.restore.meta"
VERIFY_META=$(diff "$LOGS/verify.tree.meta" "$LOGS/verify.restore.meta" | grep -c '^>' || true)
FINAL_ENTRIES=$(wc -l <"$LOGS/verify.tree.meta")

# --------------------------------------------------------------- report
ok() { awk -v a="$1" -v b="$2" 'BEGIN {print (a + 0 <= b + 0) ? "yes" : "NO"}'; } # ok VALUE LIMIT
REPORT=$LOGS/results.txt
{
	echo
	echo "escrow agent $ESCROW_REV vs $RESTIC_VERSION, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "tree:   $TREE_FILES files in $TREE_DIRS directories, $(mb "$TREE_BYTES") MB (seed $BENCH_SEED); $FINAL_ENTRIES entries after the operations"
	echo "agent:  defaults (quiet period ${QUIET_S}s, max delay ${MAX_DELAY_S}s, parallelism 2) but cpu/io priority normal;"
	echo "        first rescan ${FIRST_S}s (restic's first backup ${RESTIC_INITIAL_S}s)"
	echo
	printf '%-44s %10s %10s %8s\n' figure value target met
	printf '%-44s %10s %10s %8s\n' "1. incremental snapshot, agent (s)" "$A_SNAP_MED" "" ""
	printf '%-44s %10s %10s %8s\n' "   agent, end to end from the first write (s)" "$A_E2E_MED" "" ""
	printf '%-44s %10s %10s %8s\n' "   agent, end to end - quiet period (s)" "$A_NODEB_MED" "" ""
	printf '%-44s %10s %10s %8s\n' "   restic backup with parent (s)" "$R_WALL_MED" "" ""
	printf '%-44s %10s %10s %8s\n' "   ratio agent snapshot / restic" "$RATIO_SNAP" "<= 0.05" "$(ok "$RATIO_SNAP" 0.05)"
	printf '%-44s %10s %10s %8s\n' "   ratio (end to end - quiet) / restic" "$RATIO_NODEB" "<= 0.05" "$(ok "$RATIO_NODEB" 0.05)"
	printf '%-44s %10s %10s %8s\n' "2. latency write -> snapshot, median (s)" "$LAT_MED" "<= $((QUIET_S + 5))" "$(ok "$LAT_MED" $((QUIET_S + 5)))"
	printf '%-44s %10s %10s %8s\n' "   latency, max (s)" "$LAT_MAX" "" ""
	printf '%-44s %10s %10s %8s\n' "3. missed by the watcher ($BENCH_OPS operations)" "$RESCAN_MISSED" "0" "$(ok "$RESCAN_MISSED" 0)"
	printf '%-44s %10s %10s %8s\n' "   changes found by the rescan" "$RESCAN_CHANGES" "0" "$(ok "$RESCAN_CHANGES" 0)"
	printf '%-44s %10s %10s %8s\n' "   latest snapshot vs tree: differences" "$VERIFY_DIFFS" "0" "$(ok "$VERIFY_DIFFS" 0)"
	printf '%-44s %10s %10s %8s\n' "4. agent peak RSS, VmHWM (MB)" "$HWM" "< 150" "$(awk -v a="$HWM" 'BEGIN {print (a < 150) ? "yes" : "NO"}')"
	echo
	echo "(1) medians of $BENCH_ROUNDS rounds of $BENCH_CHANGED changed files; the agent's snapshot time is its"
	echo "    last_snapshot.seconds (BackupEnd - BackupStart), end to end is from the first write until"
	echo "    status.json shows the snapshot. Per round (agent snapshot / end to end / agent CPU; restic wall / CPU / RSS MB):"
	for k in $(seq "$BENCH_ROUNDS"); do
		printf '      round %d: %6ss %7ss %6ss;  restic %6ss %6ss %7s\n' "$k" "${A_SNAP[k]}" "${A_E2E[k]}" "${A_CPU[k]}" "${R_WALLS[k]}" "${R_CPUS[k]}" "${R_RSSS[k]}"
	done
	echo "    medians: agent CPU ${A_CPU_MED}s per round, restic CPU ${R_CPU_MED}s, restic RSS ${R_RSS_MED} MB"
	echo "(2) latencies (s): ${LAT[*]}"
	echo "(3) $OPS_COUNTS"
	echo "    over $(secs "$OPS_FIRST" "$OPS_LAST")s; saved in $OPS_SNAPS snapshots, the last one seen ${OPS_SETTLE}s after the last"
	echo "    operation; inotify queue overflows: $OVERFLOWS; rescan took ${RESCAN_S}s; missed since start: $MISSED_TOTAL"
	echo "    restore of the latest snapshot: ${RESTORE_S}s; entries differing in type, mode, size or mtime: $VERIFY_META"
	echo "(4) peak RSS (MB) after the first rescan $FIRST_HWM, the rounds $HWM_ROUNDS, the trials $HWM_LAT,"
	echo "    the operations $HWM_OPS, the requested rescan $HWM; RSS at the end $RSS_NOW MB"
	echo "    agent CPU in all: ${AGENT_CPU_TOTAL}s; restic's first backup peak RSS: $RESTIC_INITIAL_RSS MB"
} | tee "$REPORT"

# ----------------------------------------------------------------- JSON
JSON=$LOGS/results.json
arr() { local IFS=,; echo "[$*]"; }
{
	printf '{\n'
	printf '  "escrow_revision": "%s",\n  "restic_version": "%s",\n' "$ESCROW_REV" "$RESTIC_VERSION"
	printf '  "cpus": %d,\n  "date": "%s",\n  "load_average_end": %s,\n' "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(cut -d' ' -f1 /proc/loadavg)"
	printf '  "tree": {"seed": %s, "files": %d, "dirs": %d, "bytes": %d, "entries_after_ops": %d},\n' \
		"$BENCH_SEED" "$TREE_FILES" "$TREE_DIRS" "$TREE_BYTES" "$FINAL_ENTRIES"
	printf '  "agent_settings": {"quiet_period_s": %d, "max_delay_s": %d, "cpu_priority": "normal", "io_priority": "normal", "parallelism": 2},\n' "$QUIET_S" "$MAX_DELAY_S"
	printf '  "first_rescan_s": %s, "restic_initial_s": %s,\n' "$FIRST_S" "$RESTIC_INITIAL_S"
	printf '  "incremental": {"rounds": %d, "changed_files": %d,\n' "$BENCH_ROUNDS" "$BENCH_CHANGED"
	printf '    "agent_snapshot_s": %s, "agent_end_to_end_s": %s, "agent_cpu_s": %s,\n' "$(arr "${A_SNAP[@]}")" "$(arr "${A_E2E[@]}")" "$(arr "${A_CPU[@]}")"
	printf '    "restic_wall_s": %s, "restic_cpu_s": %s, "restic_rss_mb": %s,\n' "$(arr "${R_WALLS[@]}")" "$(arr "${R_CPUS[@]}")" "$(arr "${R_RSSS[@]}")"
	printf '    "median_agent_snapshot_s": %s, "median_agent_end_to_end_s": %s, "median_agent_end_to_end_minus_quiet_s": %s, "median_restic_s": %s,\n' \
		"$A_SNAP_MED" "$A_E2E_MED" "$A_NODEB_MED" "$R_WALL_MED"
	printf '    "ratio_snapshot": %s, "ratio_end_to_end_minus_quiet": %s, "target_ratio": 0.05},\n' "$RATIO_SNAP" "$RATIO_NODEB"
	printf '  "latency": {"trials_s": %s, "median_s": %s, "max_s": %s, "target_median_s": %d},\n' "$(arr "${LAT[@]}")" "$LAT_MED" "$LAT_MAX" $((QUIET_S + 5))
	printf '  "watcher": {"operations": %d, "spread_s": %d, "snapshots": %d, "settle_s": %s, "overflows": %d, "rescan_s": %s,\n' \
		"$BENCH_OPS" "$BENCH_OPS_SECONDS" "$OPS_SNAPS" "$OPS_SETTLE" "$OVERFLOWS" "$RESCAN_S"
	printf '    "rescan_changes": %d, "missed": %d, "missed_total": %d, "restore_differences": %d, "restore_metadata_differences": %d},\n' \
		"$RESCAN_CHANGES" "$RESCAN_MISSED" "$MISSED_TOTAL" "$VERIFY_DIFFS" "$VERIFY_META"
	printf '  "memory": {"peak_rss_mb": %s, "target_mb": 150, "rss_at_end_mb": %s,\n' "$HWM" "$RSS_NOW"
	printf '    "peak_rss_after_mb": {"first_rescan": %s, "rounds": %s, "trials": %s, "operations": %s, "rescan": %s}},\n' \
		"$FIRST_HWM" "$HWM_ROUNDS" "$HWM_LAT" "$HWM_OPS" "$HWM"
	printf '  "agent_cpu_s": %s\n}\n' "$AGENT_CPU_TOTAL"
} >"$JSON"
if [[ -n ${BENCH_JSON:-} ]]; then
	cp "$JSON" "$BENCH_JSON"
fi
echo
echo "results: $REPORT and $JSON (agent log and step outputs beside them)"
