#!/usr/bin/env bash
# Scale benchmark: escrow and restic, in one run, on a generated tree of
# 1,000,000 files and 20 GB (by default): an initial backup, an incremental
# one after 1% of the files changed, and a full restore, each with wall
# time, MB/s and peak RSS. See bench/README.md, "The scale benchmark".
#
#   bash bench/scale.sh                                   # 1,000,000 files, 20 GB: an hour or more
#   BENCH_FILES=100000 BENCH_MB=2000 bash bench/scale.sh  # a tenth: about 5 minutes
#
# Environment:
#   BENCH_FILES=1000000      files in the tree
#   BENCH_MB=20000           size of the tree in MB (10^6 bytes)
#   BENCH_CHANGE_PCT=1       percentage of the files changed before the incremental backup
#   BENCH_SEED=1             corpus seed
#   BENCH_STORE=local        local: repositories in folders; minio: in buckets of a local MinIO
#   BENCH_TOOLS="escrow restic"  tools, in the order they run
#   BENCH_KEEP=0             1: keep the logs' data folder (the last tool's repository)
#   BENCH_WORK=DIR           work directory (default: a new one under $TMPDIR or /tmp)
#   BENCH_JSON=FILE          also copy the JSON results here
#   BENCH_STEP_TIMEOUT=14400 seconds before a step is killed (and the run fails)
#   BENCH_SETTLE=310         seconds each restore waits after the tree is removed (see below)
#   RESTIC=/usr/bin/restic   restic binary
#
# Disk: the tree, one repository and a restore are never all on disk at
# once. The tree is generated once. Each tool in turn backs it up, changes
# 1% of its files (the first tool keeps copies of the originals), backs it
# up again; then the tree's checksums are written down, the tree is
# removed, the latest snapshot is restored and checked against the
# checksums, and the repository is removed. The restore, with the changed
# files put back, is the next tool's tree; the same change then gives the
# same checksums (checked). The peak is about the tree plus one repository
# (at 20 GB, about 38 GB).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_FILES=${BENCH_FILES:-1000000}
BENCH_MB=${BENCH_MB:-20000}
BENCH_CHANGE_PCT=${BENCH_CHANGE_PCT:-1}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_STORE=${BENCH_STORE:-local}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-14400}
BENCH_SETTLE=${BENCH_SETTLE:-310}
RESTIC=${RESTIC:-/usr/bin/restic}
read -r -a TOOLS <<<"${BENCH_TOOLS:-escrow restic}"

[[ $BENCH_FILES =~ ^[0-9]+$ && $BENCH_FILES -ge 1000 ]] || die "BENCH_FILES must be a whole number from 1000, not '$BENCH_FILES'"
[[ $BENCH_MB =~ ^[0-9]+$ ]] || die "BENCH_MB must be a whole number of MB, not '$BENCH_MB'"
[[ $BENCH_SETTLE =~ ^[0-9]+$ ]] || die "BENCH_SETTLE must be a whole number of seconds, not '$BENCH_SETTLE'"
[[ $BENCH_CHANGE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_CHANGE_PCT must be a number, not '$BENCH_CHANGE_PCT'"
case $BENCH_STORE in local | minio) ;; *) die "BENCH_STORE must be local or minio, not '$BENCH_STORE'" ;; esac
for t in "${TOOLS[@]}"; do
	case $t in escrow | restic) ;; *) die "BENCH_TOOLS may hold escrow and restic, not '$t'" ;; esac
done
CHANGED=$(awk -v n="$BENCH_FILES" -v p="$BENCH_CHANGE_PCT" 'BEGIN {c = int(n * p / 100); if (c < 2) c = 2; print c}')

# ----------------------------------------------------------------- tools
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
[[ -x $RESTIC ]] || die "restic not found at $RESTIC (set RESTIC=...)"
need_tools go diff timeout awk sync sha256sum xargs
if [[ $BENCH_STORE == minio ]]; then
	MINIO=$(find_minio) || die "no MinIO binary: set ESCROW_MINIO_BIN or run scripts/test-deps.sh"
	need_tools curl
fi

# ------------------------------------------------------------- work dir
WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/escrow-scale.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DATA=$WORK/data # removed at the end unless BENCH_KEEP=1
LOGS=$WORK/logs # kept: step logs, time -v output, checksums' comparison, results
BIN=$WORK/bin
CORPUS=$DATA/corpus/site
[[ ! -e $DATA ]] || die "$DATA already exists: use a new BENCH_WORK"
mkdir -p "$DATA" "$LOGS" "$BIN" "$DATA/secrets"
chmod 700 "$DATA/secrets"

need_mb=$((BENCH_MB * 2 + BENCH_MB / 5))
free_mb=$(df -Pm "$WORK" | awk 'NR == 2 {print $4}')
((free_mb > need_mb)) || die "$WORK has $free_mb MB free; the run needs about $need_mb MB (the tree, a repository, headroom): set BENCH_WORK elsewhere or lower BENCH_MB"

MINIO_PID=
cleanup() {
	local rc=$?
	stop_pid "$MINIO_PID"
	if [[ $BENCH_KEEP == 1 ]]; then
		log "kept $DATA"
	else
		rm -rf "$DATA" "$BIN"
	fi
	((rc == 0)) || log "logs are in $LOGS"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "work directory $WORK"
log "building escrow and the corpus generator"
build "$ROOT" env CGO_ENABLED=0 go build -o "$BIN/escrow" ./cmd/escrow || die "go build ./cmd/escrow"
build "$ROOT" go build -o "$BIN/gencorpus" ./bench/gencorpus || die "go build ./bench/gencorpus"
ESCROW_REV=$(escrow_revision "$ROOT")
RESTIC_VERSION=$("$RESTIC" version | head -1)

if [[ $BENCH_STORE == minio ]]; then
	start_minio "$MINIO" "$DATA/minio" "$DATA/minio-certs" || die "MinIO did not start; log: $(tail -n 20 "$LOGS/minio.log")"
	log "MinIO (pid $MINIO_PID) on 127.0.0.1:$MINIO_PORT"
	export AWS_ACCESS_KEY_ID=$MINIO_USER AWS_SECRET_ACCESS_KEY=$MINIO_SECRET
fi
for t in escrow restic; do
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/$t-password"
done

# repo_of TOOL prints the tool's repository address; repo_dir TOOL the
# folder that holds it on disk.
repo_of() {
	if [[ $BENCH_STORE == minio ]]; then echo "s3:http://127.0.0.1:$MINIO_PORT/$1-scale"; else echo "$DATA/repo-$1"; fi
}
repo_dir() {
	if [[ $BENCH_STORE == minio ]]; then echo "$DATA/minio/$1-scale"; else echo "$DATA/repo-$1"; fi
}

# cmd_of TOOL ARGS...: fills CMD with the command line running TOOL on its repository.
cmd_of() {
	local t=$1
	shift
	case $t in
	escrow) CMD=(env ESCROW_REPOSITORY="$(repo_of escrow)" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" "$BIN/escrow" "$@") ;;
	restic) CMD=(env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$DATA/restic-cache" "$RESTIC" -r "$(repo_of restic)" "$@") ;;
	esac
}

declare -A WALL CPU RSS LOAD
STEPS=(backup-initial backup-incremental restore)

# measure STEP TOOL ARGS...: run the tool under /usr/bin/time -v.
measure() {
	local step=$1 t=$2
	shift 2
	cmd_of "$t" "$@"
	timed "$step" "$t" "${CMD[@]}"
}

# checksums DIR OUT: every regular file's SHA-256 and relative path, sorted;
# also the symlinks and folders, so a missing entry is seen.
checksums() {
	(cd "$1" && find . -type f -print0 | xargs -0 -P "$(nproc)" -n 2000 sha256sum | LC_ALL=C sort -k2) >"$2"
	(cd "$1" && find . ! -type f -printf '%y %p\n' | LC_ALL=C sort) >>"$2"
}
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'; }

declare -A REPO_BYTES
CORPUS_FILES= CORPUS_DIRS= CORPUS_BYTES= CORPUS_BYTES_FINAL= CHANGED_BYTES= GEN_SECONDS=
log "generating $BENCH_FILES files, $BENCH_MB MB (seed $BENCH_SEED)"
start=$SECONDS
"$BIN/gencorpus" -dir "$CORPUS" -files "$BENCH_FILES" -mb "$BENCH_MB" -seed "$BENCH_SEED" >"$LOGS/gencorpus.out"
GEN_SECONDS=$((SECONDS - start))
CORPUS_BYTES=$(tree_bytes "$CORPUS")
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
log "tree: $CORPUS_FILES files in $CORPUS_DIRS folders, $CORPUS_BYTES bytes (generated in ${GEN_SECONDS}s)"

for i in "${!TOOLS[@]}"; do
	t=${TOOLS[$i]}
	if ((i > 0)); then
		# The previous tool's restore (checked equal to the changed tree)
		# becomes this tool's tree, with the change undone: the files it
		# changed go back, with their times. The change made again below
		# must give the same checksums, or the run fails.
		log "$t: the previous restore, with the change undone, is the tree"
		mkdir -p "$(dirname "$CORPUS")"
		mv "$DATA/restore$CORPUS" "$CORPUS"
		rm -rf "$DATA/restore"
		cp -a "$DATA/saved/." "$CORPUS/"
	fi

	cmd_of "$t" init
	[[ $t == restic ]] && CMD+=(--repository-version 2)
	"${CMD[@]}" >"$LOGS/init.$t.out" 2>&1 || die "$t init: $(tail -n 20 "$LOGS/init.$t.out")"

	measure backup-initial "$t" backup "$CORPUS"

	save=()
	((i > 0)) || save=(-save "$DATA/saved")
	"$BIN/gencorpus" -dir "$CORPUS" -seed "$BENCH_SEED" -modify "$CHANGED" "${save[@]}" >"$LOGS/modify.$t.out"
	n=$(grep -c '^changed ' "$LOGS/modify.$t.out" || true)
	((n == CHANGED)) || die "gencorpus -modify changed $n files, not $CHANGED (see $LOGS/modify.$t.out)"
	if [[ -z $CHANGED_BYTES ]]; then
		CHANGED_BYTES=$(sed -n 's/^changed //p' "$LOGS/modify.$t.out" | (cd "$CORPUS" && tr '\n' '\0' | xargs -0 stat -c %s) | awk '{s += $1} END {printf "%.0f\n", s}')
	fi
	sleep 1 # no change may share the second of the previous backup
	measure backup-incremental "$t" backup "$CORPUS"

	log "$t: checksums of the tree, then removing it"
	checksums "$CORPUS" "$LOGS/checksums.corpus.$t"
	[[ -n $CORPUS_BYTES_FINAL ]] || CORPUS_BYTES_FINAL=$(tree_bytes "$CORPUS")
	if [[ $t != "${TOOLS[0]}" ]] && ! cmp -s "$LOGS/checksums.corpus.${TOOLS[0]}" "$LOGS/checksums.corpus.$t"; then
		die "the tree $t backed up differs from the one ${TOOLS[0]} backed up (see $LOGS/checksums.corpus.*)"
	fi
	rm -rf "$DATA/corpus"
	# The restore creates as many files as were just removed. ext4 without
	# a journal (as on this benchmark's machines) will not reuse an inode
	# freed in the last 60 s, or 300 s while its inode table block is dirty
	# (which the restore's own new files make it), and looks each such
	# inode up in turn. Creating 300,000 files took 178 s right after a
	# million were removed and 26 s once the removal was synced and 65 s
	# old; after a 70 s wait, one full-size restore still spent 351 s in
	# the kernel against 74 s for the other tool's. Each restore waits past
	# both windows, so the figures are the tool's, not the file system's
	# memory of the previous tree.
	sync
	log "$t: waiting ${BENCH_SETTLE}s for the removed tree's inodes to age"
	sleep "$BENCH_SETTLE"

	mkdir -p "$DATA/restore"
	measure restore "$t" restore latest --target "$DATA/restore"
	got=$DATA/restore$CORPUS
	[[ -d $got ]] || die "$t restore: $got does not exist"
	checksums "$got" "$LOGS/checksums.restore.$t"
	if ! diff "$LOGS/checksums.corpus.$t" "$LOGS/checksums.restore.$t" >"$LOGS/verify.$t.diff"; then
		head -n 20 "$LOGS/verify.$t.diff" >&2
		die "$t restore differs from the tree ($(grep -c '^[<>]' "$LOGS/verify.$t.diff") lines, see $LOGS/verify.$t.diff)"
	fi
	log "$t: restore identical to the tree"
	rm -f "$LOGS/checksums.restore.$t"
	((i + 1 < ${#TOOLS[@]})) || rm -rf "$DATA/restore"

	REPO_BYTES[$t]=$(du -sb "$(repo_dir "$t")" | awk '{print $1}')
	if [[ $BENCH_KEEP != 1 || $t != "${TOOLS[-1]}" ]]; then
		rm -rf "$(repo_dir "$t")" "$DATA/restic-cache"
	fi
done

# The checksum lists are large (about 100 bytes a file): kept only with BENCH_KEEP=1.
[[ $BENCH_KEEP == 1 ]] || rm -f "$LOGS"/checksums.corpus.*

# --------------------------------------------------------------- report
# MB/s: the tree's bytes over the wall time (for the incremental backup,
# what it had to look at, not what changed).
speed() {
	case $1 in
	backup-initial) div "$(mb "$CORPUS_BYTES")" "${WALL[$1.$2]}" ;;
	*) div "$(mb "$CORPUS_BYTES_FINAL")" "${WALL[$1.$2]}" ;;
	esac
}
ratio() { # FIELD-ARRAY-NAME STEP
	local -n a=$1
	if [[ -n ${a[$2.escrow]:-} && -n ${a[$2.restic]:-} ]]; then div "${a[$2.escrow]}" "${a[$2.restic]}"; fi
}

REPORT=$LOGS/results.txt
{
	echo
	echo "escrow $ESCROW_REV vs $RESTIC_VERSION, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ), store: $BENCH_STORE"
	echo "tree: $CORPUS_FILES files in $CORPUS_DIRS folders, $(mb "$CORPUS_BYTES") MB (seed $BENCH_SEED);" \
		"$CHANGED files changed ($(mb "$CHANGED_BYTES") MB before the change), $(mb "$CORPUS_BYTES_FINAL") MB after"
	echo "order: ${TOOLS[*]}; tree generated in ${GEN_SECONDS}s; each tool after the first backs up the previous one's restore, change undone"
	echo
	printf '%-19s %-7s %9s %8s %8s %9s %6s\n' step tool wall_s MB/s cpu_s rss_MB load
	for s in "${STEPS[@]}"; do
		for t in "${TOOLS[@]}"; do
			printf '%-19s %-7s %9s %8s %8s %9s %6s\n' "$s" "$t" "${WALL[$s.$t]}" "$(speed "$s" "$t")" "${CPU[$s.$t]}" "${RSS[$s.$t]}" "${LOAD[$s.$t]}"
		done
		if ((${#TOOLS[@]} == 2)); then
			printf '%-19s %-7s %9s %8s %8s %9s\n' "$s" ratio "$(ratio WALL "$s")" "" "$(ratio CPU "$s")" "$(ratio RSS "$s")"
		fi
	done
	echo "(ratio = escrow / restic; targets: escrow's wall ratio <= 1.00 and its peak RSS <= 250 MB;"
	echo " MB/s = the tree's size over the wall time; load = 1-minute load average at the start, $(nproc) CPUs)"
	echo
	for t in "${TOOLS[@]}"; do
		printf 'repository %-7s %9s MB\n' "$t" "$(mb "${REPO_BYTES[$t]}")"
	done
	echo
	echo "what each tool said:"
	for s in "${STEPS[@]}"; do
		for t in "${TOOLS[@]}"; do
			grep -E '^(Files:|Dirs:|Added|snapshot .* saved|restored |restoring |processed|Summary)' "$LOGS/$s.$t.out" 2>/dev/null |
				sed "s/^/  $s $t: /" || true
		done
	done
	echo "verification: each restore matched the tree's SHA-256 checksums, entry for entry"
} | tee "$REPORT"

JSON=$LOGS/results.json
{
	printf '{\n  "escrow_revision": "%s",\n  "restic_version": "%s",\n  "cpus": %d,\n  "date": "%s",\n  "store": "%s",\n' \
		"$ESCROW_REV" "$RESTIC_VERSION" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BENCH_STORE"
	printf '  "tree": {"seed": %s, "files": %d, "dirs": %d, "bytes": %d, "changed_files": %d, "bytes_after_change": %d},\n' \
		"$BENCH_SEED" "$CORPUS_FILES" "$CORPUS_DIRS" "$CORPUS_BYTES" "$CHANGED" "$CORPUS_BYTES_FINAL"
	printf '  "results": [\n'
	first=1
	for s in "${STEPS[@]}"; do
		for t in "${TOOLS[@]}"; do
			((first)) || printf ',\n'
			first=0
			printf '    {"step": "%s", "tool": "%s", "wall_seconds": %s, "mb_per_second": %s, "cpu_seconds": %s, "peak_rss_mb": %s, "load_average": %s, "repository_bytes": %d}' \
				"$s" "$t" "${WALL[$s.$t]}" "$(speed "$s" "$t")" "${CPU[$s.$t]}" "${RSS[$s.$t]}" "${LOAD[$s.$t]}" "${REPO_BYTES[$t]}"
		done
	done
	printf '\n  ]\n}\n'
} >"$JSON"
[[ -z ${BENCH_JSON:-} ]] || cp "$JSON" "$BENCH_JSON"
echo
echo "results: $REPORT and $JSON (step logs and time -v output beside them)"
