#!/usr/bin/env bash
# Benchmark escrow against restic on the same corpus and the same MinIO
# server, in one run. See bench/README.md.
#
#   bash bench/run.sh
#
# Environment:
#   BENCH_MB=300            corpus size in MB (10^6 bytes)
#   BENCH_SEED=1            corpus seed
#   BENCH_KEEP=0            1: keep the corpus, MinIO data and restores
#   BENCH_FIRST=escrow      which tool runs first in each step (escrow|restic)
#   BENCH_WORK=DIR          work directory (default: a new one under $TMPDIR or /tmp)
#   BENCH_JSON=FILE         also copy the JSON results here
#   BENCH_STEP_TIMEOUT=1800 seconds before a step is killed (and the run fails)
#   RESTIC=/usr/bin/restic  restic binary
#   ESCROW_MINIO_BIN        MinIO binary (default: minio on PATH, then
#                           $HOME/.cache/escrow-ci/bin/minio)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_MB=${BENCH_MB:-300}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_FIRST=${BENCH_FIRST:-escrow}
BENCH_STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-1800}
RESTIC=${RESTIC:-/usr/bin/restic}

case $BENCH_FIRST in
escrow) TOOLS=(escrow restic) ;;
restic) TOOLS=(restic escrow) ;;
*) die "BENCH_FIRST must be escrow or restic, not '$BENCH_FIRST'" ;;
esac
[[ $BENCH_MB =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_MB must be a number, not '$BENCH_MB'"

# ----------------------------------------------------------------- tools
MINIO=$(find_minio) || die "no MinIO binary: set ESCROW_MINIO_BIN or run scripts/test-deps.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
[[ -x $RESTIC ]] || die "restic not found at $RESTIC (set RESTIC=...)"
need_tools go curl diff timeout awk sync

# ------------------------------------------------------------- work dir
WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/escrow-bench.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DATA=$WORK/data        # removed at the end unless BENCH_KEEP=1
LOGS=$WORK/logs        # kept: step logs, time -v output, results
BIN=$WORK/bin
CORPUS=$DATA/corpus/site
MINIO_DATA=$DATA/minio
[[ ! -e $DATA ]] || die "$DATA already exists: use a new BENCH_WORK"
mkdir -p "$DATA" "$LOGS" "$BIN" "$DATA/secrets"
chmod 700 "$DATA/secrets"

MINIO_PID=
cleanup() {
	local rc=$?
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
log "building escrow and the corpus generator"
build "$ROOT" env CGO_ENABLED=0 go build -o "$BIN/escrow" ./cmd/escrow || die "go build ./cmd/escrow"
build "$ROOT" go build -o "$BIN/gencorpus" ./bench/gencorpus || die "go build ./bench/gencorpus"
ESCROW_REV=$(escrow_revision "$ROOT")
RESTIC_VERSION=$("$RESTIC" version | head -1)

# ---------------------------------------------------------------- corpus
log "generating a ${BENCH_MB} MB corpus (seed $BENCH_SEED) in $CORPUS"
"$BIN/gencorpus" -dir "$CORPUS" -mb "$BENCH_MB" -seed "$BENCH_SEED" >"$LOGS/gencorpus.out"

corpus_bytes() { find "$CORPUS" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }
corpus_files() { find "$CORPUS" -type f | wc -l; }
CORPUS_BYTES=$(corpus_bytes)
CORPUS_FILES=$(corpus_files)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
log "corpus: $CORPUS_FILES files in $CORPUS_DIRS folders, $CORPUS_BYTES bytes"

# ----------------------------------------------------------------- MinIO
start_minio "$MINIO" "$MINIO_DATA" "$DATA/minio-certs" || die "MinIO did not start; log: $(tail -n 20 "$LOGS/minio.log")"
PORT=$MINIO_PORT
log "MinIO $MINIO (pid $MINIO_PID) on 127.0.0.1:$PORT, data in $MINIO_DATA"

export AWS_ACCESS_KEY_ID=$MINIO_USER AWS_SECRET_ACCESS_KEY=$MINIO_SECRET
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/escrow-password"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/restic-password"
ESCROW_BUCKET=escrow-bench
RESTIC_BUCKET=restic-bench
ESCROW_REPO=s3:http://127.0.0.1:$PORT/$ESCROW_BUCKET
RESTIC_REPO=s3:http://127.0.0.1:$PORT/$RESTIC_BUCKET
RESTIC_CACHE=$DATA/restic-cache
mkdir -p "$RESTIC_CACHE"

# tool TOOL ARGS...: run TOOL on its repository (untimed).
tool() {
	local t=$1
	shift
	case $t in
	escrow)
		env ESCROW_REPOSITORY="$ESCROW_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" \
			"$BIN/escrow" "$@"
		;;
	restic)
		env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$RESTIC_CACHE" \
			"$RESTIC" -r "$RESTIC_REPO" "$@"
		;;
	esac
}

log "initialising both repositories"
tool escrow init >"$LOGS/init.escrow.out" 2>&1 || die "escrow init: $(tail -n 20 "$LOGS/init.escrow.out")"
tool restic init --repository-version 2 >"$LOGS/init.restic.out" 2>&1 || die "restic init: $(tail -n 20 "$LOGS/init.restic.out")"

# ----------------------------------------------------------- measuring
declare -A WALL CPU RSS LOAD
STEPS=(backup-initial backup-nochange backup-10changed restore)

# measure STEP TOOL ARGS...: run the tool under /usr/bin/time -v.
measure() {
	local step=$1 t=$2
	shift 2
	local -a cmd
	case $t in
	escrow) cmd=(env ESCROW_REPOSITORY="$ESCROW_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" "$BIN/escrow" "$@") ;;
	restic) cmd=(env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$RESTIC_CACHE" "$RESTIC" -r "$RESTIC_REPO" "$@") ;;
	esac
	timed "$step" "$t" "${cmd[@]}"
}

# (1) initial backup, (2) again with no change
for t in "${TOOLS[@]}"; do measure backup-initial "$t" backup "$CORPUS"; done
for t in "${TOOLS[@]}"; do measure backup-nochange "$t" backup "$CORPUS"; done

# (3) after changing 10 files (the same change for both tools)
"$BIN/gencorpus" -dir "$CORPUS" -seed "$BENCH_SEED" -modify 10 >"$LOGS/modify.out"
sleep 1 # no change may share the second of the previous backup
for t in "${TOOLS[@]}"; do measure backup-10changed "$t" backup "$CORPUS"; done
CORPUS_BYTES_FINAL=$(corpus_bytes)

# (4) full restore of the latest snapshot into an empty folder
for t in "${TOOLS[@]}"; do
	mkdir -p "$DATA/restore-$t"
	measure restore "$t" restore latest --target "$DATA/restore-$t"
done

# ------------------------------------------------------------- verify
VERIFY_NOTES=()
for t in "${TOOLS[@]}"; do
	got=$DATA/restore-$t$CORPUS
	[[ -d $got ]] || die "$t restore: $got does not exist (restore layout: $(find "$DATA/restore-$t" -maxdepth 4 | head -5 | tr '\n' ' '))"
	if ! diff -rq --no-dereference "$CORPUS" "$got" >"$LOGS/verify.$t.diff" 2>&1; then
		echo "----- $t restore differs from the corpus -----" >&2
		head -n 40 "$LOGS/verify.$t.diff" >&2
		die "$t restore differs from the corpus ($(wc -l <"$LOGS/verify.$t.diff") differences, see $LOGS/verify.$t.diff)"
	fi
	# Metadata (type, mode, size, mtime): reported, not fatal.
	(cd "$CORPUS" && find . -printf '%P %y %m %s %T@\n' | sort) >"$LOGS/verify.corpus.meta"
	(cd "$got" && find . -printf '%P %y %m %s %T@\n' | sort) >"$LOGS/verify.$t.meta"
	nmeta=$(diff "$LOGS/verify.corpus.meta" "$LOGS/verify.$t.meta" | grep -c '^>' || true)
	if ((nmeta > 0)); then
		VERIFY_NOTES+=("$t: restored content identical; $nmeta entries differ in mode or mtime (see $LOGS/verify.$t.meta)")
	else
		VERIFY_NOTES+=("$t: restored tree identical (content, mode, size, mtime)")
	fi
done

# Snapshot counts: each tool must have made 3 snapshots.
declare -A SNAPS
for t in escrow restic; do
	tool "$t" snapshots --json >"$LOGS/snapshots.$t.json" 2>"$LOGS/snapshots.$t.err" ||
		die "$t snapshots: $(tail -n 20 "$LOGS/snapshots.$t.err")"
	SNAPS[$t]=$(grep -o '"short_id"' "$LOGS/snapshots.$t.json" | wc -l)
	((SNAPS[$t] == 3)) || die "$t has ${SNAPS[$t]} snapshots, expected 3 (see $LOGS/snapshots.$t.json)"
done

# ------------------------------------------------------- repository size
bucket_bytes() { find "$MINIO_DATA/$1" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }
bucket_objects() { find "$MINIO_DATA/$1" -type f -name xl.meta 2>/dev/null | wc -l; }
declare -A REPO_BYTES REPO_OBJECTS
REPO_BYTES[escrow]=$(bucket_bytes "$ESCROW_BUCKET")
REPO_BYTES[restic]=$(bucket_bytes "$RESTIC_BUCKET")
REPO_OBJECTS[escrow]=$(bucket_objects "$ESCROW_BUCKET")
REPO_OBJECTS[restic]=$(bucket_objects "$RESTIC_BUCKET")
RESTIC_CACHE_BYTES=$(du -sb "$RESTIC_CACHE" | awk '{print $1}')

# Key derivation cost: scrypt's N, r, p from each repository's key file (its
# JSON lies in plain text in MinIO's xl.meta). scrypt needs 128*N*r bytes
# while a command unlocks the key, the floor of every step's peak RSS.
# restic calibrates N and p to the machine's speed at init, so on a loaded
# machine it may pick a cheaper key than on an idle one; escrow's is fixed.
declare -A KDF KDF_MB
for t in escrow restic; do
	b=$ESCROW_BUCKET
	[[ $t == restic ]] && b=$RESTIC_BUCKET
	KDF[$t]=$(find "$MINIO_DATA/$b/keys" -name xl.meta -exec grep -aoh '"N":[0-9]*,"r":[0-9]*,"p":[0-9]*' {} + 2>/dev/null | head -1 || true)
	KDF_MB[$t]=$(echo "${KDF[$t]}" | awk -F'[:,]' '{if ($2 > 0) printf "%.0f", 128 * $2 * $4 / 1048576; else print "?"}')
done

# --------------------------------------------------------------- report
speed() { # step tool -> MB/s or empty
	case $1 in
	backup-initial) div "$(mb "$CORPUS_BYTES")" "${WALL[$1.$2]}" ;;
	restore) div "$(mb "$CORPUS_BYTES_FINAL")" "${WALL[$1.$2]}" ;;
	esac
}

REPORT=$LOGS/results.txt
{
	echo
	echo "escrow $ESCROW_REV vs $RESTIC_VERSION, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "corpus: $CORPUS_FILES files, $(mb "$CORPUS_BYTES") MB (seed $BENCH_SEED; $(mb "$CORPUS_BYTES_FINAL") MB after the change)"
	echo "store:  one MinIO on 127.0.0.1, bucket $ESCROW_BUCKET (escrow) and $RESTIC_BUCKET (restic, repository version 2)"
	echo "restic: default settings with its local cache (XDG_CACHE_HOME in the work dir); escrow has no cache"
	echo "order:  ${TOOLS[0]} first in every step"
	echo
	printf '%-17s %-7s %9s %8s %8s %9s %6s\n' step tool wall_s MB/s cpu_s rss_MB load
	for s in "${STEPS[@]}"; do
		for t in "${TOOLS[@]}"; do
			printf '%-17s %-7s %9s %8s %8s %9s %6s\n' "$s" "$t" "${WALL[$s.$t]}" "$(speed "$s" "$t")" "${CPU[$s.$t]}" "${RSS[$s.$t]}" "${LOAD[$s.$t]}"
		done
		printf '%-17s %-7s %9s %8s %8s %9s\n' "$s" ratio "$(div "${WALL[$s.escrow]}" "${WALL[$s.restic]}")" "" \
			"$(div "${CPU[$s.escrow]}" "${CPU[$s.restic]}")" "$(div "${RSS[$s.escrow]}" "${RSS[$s.restic]}")"
	done
	echo "(ratio = escrow / restic; target: wall and rss ratios <= 1.00; load = 1-minute load average"
	echo " when the step started, on $(nproc) CPUs: far above that, wall times are not comparable)"
	echo
	echo "repository size (files under the MinIO bucket folder, incl. MinIO's per-object metadata):"
	for t in escrow restic; do
		printf '  %-7s %8s MB in %6s objects\n' "$t" "$(mb "${REPO_BYTES[$t]}")" "${REPO_OBJECTS[$t]}"
	done
	printf '  ratio   %8s\n' "$(div "${REPO_BYTES[escrow]}" "${REPO_BYTES[restic]}")"
	echo "  (restic's local cache: $(mb "$RESTIC_CACHE_BYTES") MB, not counted)"
	echo
	echo "key derivation (scrypt; its memory is the floor of every step's rss):"
	for t in escrow restic; do
		printf '  %-7s %s: %s MiB\n' "$t" "${KDF[$t]:-unknown}" "${KDF_MB[$t]}"
	done
	echo
	echo "what each tool said:"
	for s in "${STEPS[@]}"; do
		for t in "${TOOLS[@]}"; do
			grep -E '^(Files:|Dirs:|Read:|Added|snapshot .* saved|restored |restoring |processed|verified )' "$LOGS/$s.$t.out" 2>/dev/null |
				sed "s/^/  $s $t: /" || true
		done
	done
	echo "snapshots: escrow ${SNAPS[escrow]}, restic ${SNAPS[restic]}"
	echo
	echo "verification:"
	for n in "${VERIFY_NOTES[@]}"; do echo "  $n"; done
} | tee "$REPORT"

# ----------------------------------------------------------------- JSON
JSON=$LOGS/results.json
{
	printf '{\n'
	printf '  "escrow_revision": "%s",\n  "restic_version": "%s",\n' "$ESCROW_REV" "$RESTIC_VERSION"
	printf '  "cpus": %d,\n  "date": "%s",\n  "first": "%s",\n' "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${TOOLS[0]}"
	printf '  "restic_cache": "default local cache in XDG_CACHE_HOME=<work>/data/restic-cache",\n'
	printf '  "corpus": {"seed": %s, "files": %d, "bytes": %d, "bytes_after_change": %d, "mb_requested": %s},\n' \
		"$BENCH_SEED" "$CORPUS_FILES" "$CORPUS_BYTES" "$CORPUS_BYTES_FINAL" "$BENCH_MB"
	printf '  "results": [\n'
	first=1
	for s in "${STEPS[@]}"; do
		for t in "${TOOLS[@]}"; do
			((first)) || printf ',\n'
			first=0
			sp=$(speed "$s" "$t")
			printf '    {"step": "%s", "tool": "%s", "wall_seconds": %s, "mb_per_second": %s, "cpu_seconds": %s, "peak_rss_mb": %s, "load_average": %s}' \
				"$s" "$t" "${WALL[$s.$t]}" "${sp:-null}" "${CPU[$s.$t]}" "${RSS[$s.$t]}" "${LOAD[$s.$t]}"
		done
	done
	printf '\n  ],\n  "ratios": [\n'
	first=1
	for s in "${STEPS[@]}"; do
		((first)) || printf ',\n'
		first=0
		printf '    {"step": "%s", "wall": %s, "cpu": %s, "rss": %s}' "$s" \
			"$(div "${WALL[$s.escrow]}" "${WALL[$s.restic]}")" "$(div "${CPU[$s.escrow]}" "${CPU[$s.restic]}")" \
			"$(div "${RSS[$s.escrow]}" "${RSS[$s.restic]}")"
	done
	printf '\n  ],\n'
	printf '  "repository_bytes": {"escrow": %d, "restic": %d},\n' "${REPO_BYTES[escrow]}" "${REPO_BYTES[restic]}"
	printf '  "repository_objects": {"escrow": %d, "restic": %d},\n' "${REPO_OBJECTS[escrow]}" "${REPO_OBJECTS[restic]}"
	printf '  "restic_cache_bytes": %d,\n' "$RESTIC_CACHE_BYTES"
	printf '  "kdf_mib": {"escrow": %s, "restic": %s}\n}\n' "${KDF_MB[escrow]/\?/null}" "${KDF_MB[restic]/\?/null}"
} >"$JSON"
if [[ -n ${BENCH_JSON:-} ]]; then
	cp "$JSON" "$BENCH_JSON"
fi
echo
echo "results: $REPORT and $JSON (step logs and time -v output beside them)"
