#!/usr/bin/env bash
# Time `escrow fleet` on a bucket of generated heartbeats, in both layouts a
# reseller uses: every host under one shared prefix, and one prefix per host.
# See bench/README.md, "The fleet benchmark".
#
#   bash bench/fleet.sh
#
# Environment:
#   BENCH_HOSTS=1000     heartbeats per layout
#   BENCH_RUNS=3         timed runs per layout; the median is reported
#   BENCH_PARALLEL=32    escrow fleet --parallel
#   BENCH_WORK=DIR       work directory (default: a new one under $TMPDIR or /tmp)
#   ESCROW_MINIO_BIN     MinIO binary (default: minio on PATH, then
#                        $HOME/.cache/escrow-ci/bin/minio)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH_HOSTS=${BENCH_HOSTS:-1000}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_PARALLEL=${BENCH_PARALLEL:-32}

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need_tools go curl awk sort
MINIO=$(find_minio) || die "no MinIO binary: set ESCROW_MINIO_BIN or run scripts/test-deps.sh"

WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/escrow-fleet-bench.XXXXXX")}
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/minio" "$WORK/certs" "$WORK/bin"
MINIO_PID=
cleanup() {
	stop_pid "$MINIO_PID"
	rm -rf "$WORK/minio"
}
trap cleanup EXIT

log "building escrow and fleetgen"
build "$ROOT" go build -o "$WORK/bin/escrow" ./cmd/escrow
build "$ROOT" go build -o "$WORK/bin/fleetgen" ./bench/fleetgen
start_minio "$MINIO" "$WORK/minio" "$WORK/certs" || die "MinIO did not start (see $LOGS/minio.log)"
export AWS_ACCESS_KEY_ID=$MINIO_USER AWS_SECRET_ACCESS_KEY=$MINIO_SECRET
unset ESCROW_PASSWORD ESCROW_PASSWORD_FILE ESCROW_REPOSITORY

echo "escrow fleet on $BENCH_HOSTS hosts, MinIO on loopback, --parallel $BENCH_PARALLEL, $(nproc) CPUs, $(escrow_revision "$ROOT")"
printf '%-10s %10s %10s %10s   %s\n' layout median min max "exit, hosts ok/failing/silent"
for layout in shared prefixes; do
	bucket=fleet-$layout
	"$WORK/bin/fleetgen" -endpoint "127.0.0.1:$MINIO_PORT" -bucket "$bucket" -hosts "$BENCH_HOSTS" -layout "$layout" ||
		die "fleetgen $layout failed"
	times=()
	for _ in $(seq "$BENCH_RUNS"); do
		start=$(date +%s.%N)
		set +e
		"$WORK/bin/escrow" fleet --repo "s3:http://127.0.0.1:$MINIO_PORT/$bucket" --parallel "$BENCH_PARALLEL" --json \
			>"$LOGS/fleet-$layout.json" 2>"$LOGS/fleet-$layout.err"
		code=$?
		set -e
		end=$(date +%s.%N)
		times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
		# 5: the generated silent hosts; anything else is a failure.
		[[ $code == 5 ]] || die "escrow fleet exited $code (see $LOGS/fleet-$layout.err)"
	done
	count() { awk -F': ' -v k="\"$1\"" '$1 == "  " k { gsub(/,/, "", $2); print $2 }' "$LOGS/fleet-$layout.json"; }
	ok=$(count ok) failing=$(count failing) silent=$(count silent)
	[[ $((ok + failing + silent)) == "$BENCH_HOSTS" ]] || die "$layout: escrow fleet found $ok+$failing+$silent hosts, want $BENCH_HOSTS"
	sorted=$(printf '%s\n' "${times[@]}" | sort -n)
	median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	printf '%-10s %9ss %9ss %9ss   %s, %s/%s/%s\n' "$layout" "$median" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" \
		"$code" "$ok" "$failing" "$silent"
done
