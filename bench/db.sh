#!/usr/bin/env bash
# Benchmark escrow's database dumps against restic on the same pairs of
# consecutive dumps, in one run, against the floor (the zstd-compressed
# unified diff between the two dumps); then the second dump once more,
# nothing changed, for the throughput of a quiet night. See bench/README.md,
# "Database dumps".
#
#   bash bench/db.sh
#
# Environment:
#   BENCH_DB_SCENARIOS="site pgbench"  which scenarios to run, in this order
#   BENCH_DB_MB=300          site: size of the MariaDB dump in MB (10^6 bytes)
#   BENCH_SEED=1             site: data seed
#   BENCH_PG_SCALE=20        pgbench: pgbench -i -s SCALE
#   BENCH_PG_SECONDS=30      pgbench: pgbench -T SECONDS between the dumps
#   BENCH_CHUNKS="128 192/16/1024 1024"  chunk shapes for the offline
#                            comparison on the saved dumps: AVG (restic's shape
#                            at AVG KiB) or MIN/BITS/MAX (KiB; bench/dbchunks)
#                            ("" skips it)
#   BENCH_FIRST=escrow       which tool dumps first (escrow|restic)
#   BENCH_BASE=REV           also dump with escrow built at git revision REV
#                            (e.g. main), into a bucket of its own, right
#                            after this escrow: a comparison in the same run
#   BENCH_KEEP=0             1: keep dumps, database and MinIO data
#   BENCH_WORK=DIR           work directory (default: a new one under $TMPDIR or /tmp)
#   BENCH_STEP_TIMEOUT=1800  seconds before a step is killed (and the run fails)
#   RESTIC=/usr/bin/restic   restic binary (0.14 or newer)
#   ESCROW_MINIO_BIN         MinIO binary (default: minio on PATH, then
#                            $HOME/.cache/escrow-ci/bin/minio)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

BENCH_DB_SCENARIOS=${BENCH_DB_SCENARIOS:-site pgbench}
BENCH_DB_MB=${BENCH_DB_MB:-300}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_PG_SCALE=${BENCH_PG_SCALE:-20}
BENCH_PG_SECONDS=${BENCH_PG_SECONDS:-30}
BENCH_CHUNKS=${BENCH_CHUNKS-128 192/16/1024 1024}
BENCH_FIRST=${BENCH_FIRST:-escrow}
BENCH_BASE=${BENCH_BASE:-}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-1800}
RESTIC=${RESTIC:-/usr/bin/restic}

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
# The database benchmark's own prefix and timestamps.
die() { echo "dbbench: FAILED: $*" >&2; exit 1; }
log() { echo "dbbench: $(date +%H:%M:%S) $*" >&2; }

case $BENCH_FIRST in
escrow) TOOLS=(escrow restic) ;;
restic) TOOLS=(restic escrow) ;;
*) die "BENCH_FIRST must be escrow or restic, not '$BENCH_FIRST'" ;;
esac
if [[ -n $BENCH_BASE ]]; then
	# The base dumps right after this escrow, so both meet the same load.
	case $BENCH_FIRST in
	escrow) TOOLS=(escrow base restic) ;;
	restic) TOOLS=(restic escrow base) ;;
	esac
fi
for s in $BENCH_DB_SCENARIOS; do
	[[ $s == site || $s == pgbench ]] || die "unknown scenario '$s' (want site and/or pgbench)"
done
[[ $BENCH_DB_MB =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_DB_MB must be a number, not '$BENCH_DB_MB'"

# ----------------------------------------------------------------- tools
# find_prog NAME DIR...: NAME in PATH or one of DIRs.
find_prog() {
	local n=$1 d
	shift
	if command -v "$n" >/dev/null 2>&1; then
		command -v "$n"
		return 0
	fi
	for d in "$@"; do
		[[ -x $d/$n ]] && { echo "$d/$n"; return 0; }
	done
	return 1
}
MINIO=$(find_minio) || die "no MinIO binary: set ESCROW_MINIO_BIN or run scripts/test-deps.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
[[ -x $RESTIC ]] || die "restic not found at $RESTIC (set RESTIC=...)"
for t in go curl diff zstd timeout awk sync; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing"
done
if [[ " $BENCH_DB_SCENARIOS " == *" site "* ]]; then
	MARIADB=$(find_prog mariadb) || die "mariadb client missing (mariadb-client)"
	MARIADB_DUMP=$(find_prog mariadb-dump) || die "mariadb-dump missing (mariadb-client)"
	MARIADB_INSTALL=$(find_prog mariadb-install-db) || die "mariadb-install-db missing (mariadb-server)"
	MARIADBD=$(find_prog mariadbd /usr/sbin /usr/libexec) || die "mariadbd missing (mariadb-server)"
fi
if [[ " $BENCH_DB_SCENARIOS " == *" pgbench "* ]]; then
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[[ -n $PGBIN && -x $PGBIN/postgres ]] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin (postgresql)"
	[[ -x $PGBIN/pgbench ]] || die "$PGBIN/pgbench missing (postgresql-contrib, or postgresql-client 15+)"
	PG_DUMP=$(find_prog pg_dump "$PGBIN") || die "pg_dump missing (postgresql-client)"
fi

# ------------------------------------------------------------- work dir
WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/escrow-dbbench.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DATA=$WORK/data # removed at the end unless BENCH_KEEP=1
LOGS=$WORK/logs # kept: step logs and results
BIN=$WORK/bin
DUMPS=$DATA/dumps # the dumps saved for the floor and the chunk comparison
[[ ! -e $DATA ]] || die "$DATA already exists: use a new BENCH_WORK"
mkdir -p "$DATA" "$LOGS" "$BIN" "$DUMPS" "$DATA/secrets"
chmod 700 "$DATA/secrets"

MINIO_PID= MARIADB_PID= PG_PID=
# stop PID: TERM, then KILL after 20 s.
stop() {
	local pid=$1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	stop "$MARIADB_PID"
	stop "$PG_PID"
	stop "$MINIO_PID"
	if [[ $BENCH_KEEP == 1 ]]; then
		log "kept everything in $WORK"
	else
		rm -rf "$DATA" "$BIN"
	fi
	((rc == 0)) || log "logs are in $LOGS"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------- build
log "work directory $WORK"
build() { (cd "$ROOT" && "$@") || (sleep 2 && cd "$ROOT" && "$@"); }
build env CGO_ENABLED=0 go build -o "$BIN/escrow" ./cmd/escrow || die "go build ./cmd/escrow"
build go build -o "$BIN/dbgen" ./bench/dbgen || die "go build ./bench/dbgen"
build go build -o "$BIN/dbchunks" ./bench/dbchunks || die "go build ./bench/dbchunks"
if [[ -n $BENCH_BASE ]]; then
	BASE_REV=$(git -C "$ROOT" rev-parse --short "$BENCH_BASE") || die "BENCH_BASE: no revision '$BENCH_BASE'"
	mkdir -p "$WORK/base-src"
	git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$WORK/base-src" || die "git archive $BASE_REV"
	(cd "$WORK/base-src" && CGO_ENABLED=0 go build -o "$BIN/escrow-base" ./cmd/escrow) || die "go build ./cmd/escrow at $BASE_REV"
	rm -rf "$WORK/base-src"
fi
ESCROW_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null | head -1) ]] || ESCROW_REV="$ESCROW_REV+worktree"
RESTIC_VERSION=$("$RESTIC" version | head -1)

# ----------------------------------------------------------------- MinIO
MINIO_USER=bench
MINIO_SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
start_minio() {
	local port=$1 cport=$2
	(
		while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(MINIO_[A-Za-z0-9_]*\)=.*/\1/p')
		export MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_SECRET MINIO_BROWSER=off MINIO_UPDATE=off
		exec "$MINIO" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
			--certs-dir "$DATA/minio-certs" "$DATA/minio"
	) >>"$LOGS/minio.log" 2>&1 &
	MINIO_PID=$!
	for _ in $(seq 300); do
		if ! kill -0 "$MINIO_PID" 2>/dev/null; then
			wait "$MINIO_PID" 2>/dev/null || true
			MINIO_PID=
			return 1
		fi
		curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/minio/health/live" 2>/dev/null && return 0
		sleep 0.2
	done
	stop "$MINIO_PID"
	MINIO_PID=
	return 1
}
PORT=
for _ in 1 2 3; do
	p=$(free_port) || die "no free port"
	c=$(free_port) || die "no free port"
	[[ $p != "$c" ]] || continue
	if start_minio "$p" "$c"; then
		PORT=$p
		break
	fi
done
[[ -n $PORT ]] || die "MinIO did not start; log: $(tail -n 20 "$LOGS/minio.log")"
log "MinIO (pid $MINIO_PID) on 127.0.0.1:$PORT"

export AWS_ACCESS_KEY_ID=$MINIO_USER AWS_SECRET_ACCESS_KEY=$MINIO_SECRET
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/escrow-password"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secrets/restic-password"
ESCROW_BUCKET=escrow-dbbench
RESTIC_BUCKET=restic-dbbench
BASE_BUCKET=base-dbbench
BASE_REPO=s3:http://127.0.0.1:$PORT/$BASE_BUCKET
ESCROW_REPO=s3:http://127.0.0.1:$PORT/$ESCROW_BUCKET
RESTIC_REPO=s3:http://127.0.0.1:$PORT/$RESTIC_BUCKET
mkdir -p "$DATA/restic-cache"

escrow() {
	env ESCROW_REPOSITORY="$ESCROW_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" "$BIN/escrow" "$@"
}
base() {
	env ESCROW_REPOSITORY="$BASE_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" "$BIN/escrow-base" "$@"
}
restic() {
	env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$DATA/restic-cache" \
		"$RESTIC" -r "$RESTIC_REPO" "$@"
}
log "initialising both repositories"
escrow init >"$LOGS/init.escrow.out" 2>&1 || die "escrow init: $(tail -n 20 "$LOGS/init.escrow.out")"
restic init --repository-version 2 >"$LOGS/init.restic.out" 2>&1 || die "restic init: $(tail -n 20 "$LOGS/init.restic.out")"
if [[ -n $BENCH_BASE ]]; then
	base init >"$LOGS/init.base.out" 2>&1 || die "escrow init (base): $(tail -n 20 "$LOGS/init.base.out")"
fi

# bucket_bytes BUCKET [PREFIX]: the sum of the sizes of the bucket's objects
# (below PREFIX), as S3 lists them, then their count.
urlencode() {
	local s=$1 i c out=
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9.~_-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}
bucket_bytes() {
	local bucket=$1 prefix=${2:-} token= xml total=0 count=0
	while :; do
		local url="http://127.0.0.1:$PORT/$bucket?list-type=2&max-keys=1000&prefix=$(urlencode "$prefix")"
		[[ -z $token ]] || url+="&continuation-token=$(urlencode "$token")"
		xml=$(curl -fsS --max-time 60 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$MINIO_USER:$MINIO_SECRET" "$url") ||
			die "listing bucket $bucket failed"
		read -r total count < <(grep -o '<Size>[0-9]*</Size>' <<<"$xml" | tr -dc '0-9\n' |
			awk -v t="$total" -v c="$count" '{t += $1; c++} END {printf "%d %d\n", t, c}')
		grep -q '<IsTruncated>true</IsTruncated>' <<<"$xml" || break
		token=$(grep -o '<NextContinuationToken>[^<]*' <<<"$xml" | sed 's/<NextContinuationToken>//')
	done
	echo "$total $count"
}
# repo_sizes TOOL: "total data index snapshots objects" of the tool's bucket.
repo_sizes() {
	local b
	case $1 in escrow) b=$ESCROW_BUCKET ;; restic) b=$RESTIC_BUCKET ;; base) b=$BASE_BUCKET ;; esac
	local t d i s n _
	read -r t n < <(bucket_bytes "$b")
	read -r d _ < <(bucket_bytes "$b" data/)
	read -r i _ < <(bucket_bytes "$b" index/)
	read -r s _ < <(bucket_bytes "$b" snapshots/)
	echo "$t $d $i $s $n"
}

# --------------------------------------------------------- measurements
declare -A R # results, keyed "scenario.dump.tool.field"

# timed KEY CMD...: run CMD under /usr/bin/time; R[KEY.wall], R[KEY.cpu],
# R[KEY.rss] (MB). Output goes to $LOGS/KEY.out.
timed() {
	local key=$1
	shift
	local out=$LOGS/$key.out tf=$LOGS/$key.time rc=0 u s rss
	sync
	R[$key.load]=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/time -f '%e %U %S %M' -o "$tf" timeout -k 30 "$BENCH_STEP_TIMEOUT" "$@" >"$out" 2>"$LOGS/$key.err" || rc=$?
	if ((rc != 0)); then
		echo "----- $key: last 30 lines of $LOGS/$key.err -----" >&2
		tail -n 30 "$LOGS/$key.err" >&2
		((rc == 124)) && die "$key timed out after ${BENCH_STEP_TIMEOUT}s"
		die "$key exited with status $rc"
	fi
	read -r R[$key.wall] u s rss < <(tail -1 "$tf")
	R[$key.cpu]=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
	R[$key.rss]=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
	log "$key: ${R[$key.wall]} s, ${R[$key.cpu]} s CPU (load ${R[$key.load]})"
}

# json_number KEY: the numbers named KEY in the JSON on stdin, one a line.
json_number() { grep -o "\"$1\": *[0-9.eE+-]*" | sed 's/^[^:]*: *//'; }

# dump_round SCENARIO N: dump the database N-th time: to a file (kept for
# the floor; it also warms the caches), to /dev/null, into escrow and into
# restic, each timed, with the repository sizes before and after.
dump_round() {
	local sc=$1 n=$2 k=$1.$2
	local file=$DUMPS/$sc.$n.sql
	timed "$k.file" bash -c "$DUMP_CMD"' >"$1"' _ "$file"
	R[$k.bytes]=$(stat -c %s "$file")
	timed "$k.devnull" bash -c "$DUMP_CMD"' >/dev/null'
	# The same dump through a pipe whose reader discards it: what any
	# reader of the tool's output pays before doing anything with it.
	timed "$k.pipe" bash -c 'set -o pipefail; '"$DUMP_CMD"' | cat >/dev/null'
	local t before after b0 d0 i0 s0 n0 b1 d1 i1 s1 n1
	for t in "${TOOLS[@]}"; do
		before=$(repo_sizes "$t")
		case $t in
		escrow) timed "$k.escrow" env ESCROW_REPOSITORY="$ESCROW_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" \
			"$BIN/escrow" --json db dump "${ESCROW_DUMP_ARGS[@]}" ;;
		base) timed "$k.base" env ESCROW_REPOSITORY="$BASE_REPO" ESCROW_PASSWORD_FILE="$DATA/secrets/escrow-password" \
			"$BIN/escrow-base" --json db dump "${ESCROW_DUMP_ARGS[@]}" ;;
		restic) timed "$k.restic" bash -c 'set -o pipefail; '"$DUMP_CMD"' | "$@"' _ \
			env RESTIC_PASSWORD_FILE="$DATA/secrets/restic-password" XDG_CACHE_HOME="$DATA/restic-cache" \
			"$RESTIC" -r "$RESTIC_REPO" backup --json --stdin --stdin-filename "$DUMP_NAME" ;;
		esac
		after=$(repo_sizes "$t")
		read -r b0 d0 i0 s0 n0 <<<"$before"
		read -r b1 d1 i1 s1 n1 <<<"$after"
		R[$k.$t.added]=$((b1 - b0))
		R[$k.$t.added_data]=$((d1 - d0))
		R[$k.$t.added_index]=$((i1 - i0))
		R[$k.$t.added_snap]=$((s1 - s0))
		R[$k.$t.objects]=$((n1 - n0))
	done
	# What each tool says it added.
	escrow snapshots --json >"$LOGS/$k.escrow.snapshots.json" 2>"$LOGS/$k.escrow.snapshots.err" ||
		die "escrow snapshots: $(tail -n 5 "$LOGS/$k.escrow.snapshots.err")"
	R[$k.escrow.said]=$(json_number data_added_packed <"$LOGS/$k.escrow.snapshots.json" | tail -1)
	R[$k.escrow.stream_s]=$(json_number duration_seconds <"$LOGS/$k.escrow.out")
	if [[ -n $BENCH_BASE ]]; then
		R[$k.base.stream_s]=$(json_number duration_seconds <"$LOGS/$k.base.out")
	fi
	R[$k.restic.said]=$(grep '"message_type":"summary"' "$LOGS/$k.restic.out" | json_number data_added)
	log "$k: dump ${R[$k.bytes]} bytes; added: escrow ${R[$k.escrow.added]}, restic ${R[$k.restic.added]}"
}

# finish_scenario SCENARIO: the floor, and the offline chunk comparison.
finish_scenario() {
	local sc=$1
	log "$sc: floor (diff -u | zstd -19)"
	local d1=$DUMPS/$sc.1.sql d2=$DUMPS/$sc.2.sql
	local rc=0
	diff -u "$d1" "$d2" >"$DUMPS/$sc.diff" || rc=$?
	((rc <= 1)) || die "diff -u $d1 $d2 failed with status $rc" # 1: they differ
	R[$sc.diff_raw]=$(stat -c %s "$DUMPS/$sc.diff")
	R[$sc.floor]=$(zstd -19 -T0 -q -c "$DUMPS/$sc.diff" | wc -c)
	rm -f "$DUMPS/$sc.diff"
	if [[ -n $BENCH_CHUNKS ]]; then
		log "$sc: chunk shapes $BENCH_CHUNKS on the saved dumps"
		timed "$sc.chunks" "$BIN/dbchunks" -dir "$DATA/chunks-$sc" -shapes "${BENCH_CHUNKS// /,}" "$d1" "$d2"
		rm -rf "$DATA/chunks-$sc"
	fi
	if [[ $BENCH_KEEP != 1 ]]; then
		rm -f "$d1" "$d2" "$DUMPS/$sc.3.sql"
	fi
}

# -------------------------------------------------------- site: MariaDB
run_site() {
	local dir=$DATA/mariadb sock=$DATA/mariadb/mysqld.sock
	mkdir -p "$dir"
	local -a asroot=()
	((EUID != 0)) || asroot=(--user=root) # mariadbd refuses root unless told
	log "site: starting MariaDB"
	"$MARIADB_INSTALL" --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
		--skip-test-db "${asroot[@]}" >"$LOGS/mariadb-install.log" 2>&1 || die "mariadb-install-db: $(tail -n 20 "$LOGS/mariadb-install.log")"
	"$MARIADBD" --no-defaults --datadir="$dir/data" --socket="$sock" --skip-networking \
		--pid-file="$dir/mysqld.pid" --tmpdir="$dir" --innodb-buffer-pool-size=512M \
		--innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
		--skip-log-bin --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
		"${asroot[@]}" >"$LOGS/mariadbd.log" 2>&1 &
	MARIADB_PID=$!
	for _ in $(seq 600); do
		grep -q 'ready for connections' "$LOGS/mariadbd.log" && break
		kill -0 "$MARIADB_PID" 2>/dev/null || die "mariadbd exited: $(tail -n 20 "$LOGS/mariadbd.log")"
		sleep 0.1
	done
	grep -q 'ready for connections' "$LOGS/mariadbd.log" || die "mariadbd not ready: $(tail -n 20 "$LOGS/mariadbd.log")"
	local -a root=("$MARIADB" --no-defaults --socket="$sock" --user=root --default-character-set=utf8mb4)
	local pw
	pw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$pw" >"$DATA/secrets/site.pw"
	printf '[client]\npassword="%s"\n' "$pw" >"$DATA/secrets/site.cnf"
	"${root[@]}" -e "CREATE DATABASE site; CREATE USER 'bench'@'localhost' IDENTIFIED BY '$pw';
		GRANT ALL PRIVILEGES ON site.* TO 'bench'@'localhost';" || die "creating the site database"
	R[site.server]=$("${root[@]}" -N -e 'SELECT VERSION()')

	log "site: loading ${BENCH_DB_MB} MB (seed $BENCH_SEED)"
	timed site.load bash -c 'set -o pipefail; "$1" -mb "$2" -seed "$3" | "${@:4}" site' _ \
		"$BIN/dbgen" "$BENCH_DB_MB" "$BENCH_SEED" "${root[@]}"
	R[site.rows]=$(grep -o 'rows: .*;' "$LOGS/site.load.err" | sed 's/^rows: //; s/;$//')

	# The flags are database/mysql.go's mysqlDumpFlags.
	DUMP_CMD="$(printf '%q ' "$MARIADB_DUMP" --defaults-extra-file="$DATA/secrets/site.cnf" --socket="$sock" --user=bench \
		--single-transaction --quick --routines --triggers --events --hex-blob --default-character-set=utf8mb4 \
		--no-tablespaces --skip-dump-date site)"
	ESCROW_DUMP_ARGS=(--type mysql --socket "$sock" --user bench --db-password-file "$DATA/secrets/site.pw" --database site)
	DUMP_NAME=site.sql
	dump_round site 1

	log "site: round 1 of changes (1% rows appended, 0.1% updated)"
	timed site.change bash -c 'set -o pipefail; "$1" -mb "$2" -seed "$3" -change 1 | "${@:4}" site' _ \
		"$BIN/dbgen" "$BENCH_DB_MB" "$BENCH_SEED" "${root[@]}"
	R[site.change]=$(grep -o 'round 1: .*;' "$LOGS/site.change.err" | sed 's/^round 1: //; s/;$//')
	dump_round site 2
	# The same database again: a night on which nothing changed, or the
	# unchanged stretches of a busy one.
	dump_round site 3

	stop "$MARIADB_PID"
	MARIADB_PID=
	[[ $BENCH_KEEP == 1 ]] || rm -rf "$dir"
	finish_scenario site
}

# ---------------------------------------------------- pgbench: PostgreSQL
run_pgbench() {
	local dir=$DATA/postgres sock=$DATA/postgres/sock
	mkdir -p "$dir/data" "$sock"
	# PostgreSQL refuses to run as root: run it as nobody, in folders it
	# owns below folders it can traverse.
	local -a as=()
	if ((EUID == 0)); then
		as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
		chmod 711 "$WORK" "$DATA" "$dir"
		chown nobody:nogroup "$dir/data" "$sock"
	fi
	chmod 700 "$dir/data"
	log "pgbench: starting PostgreSQL"
	env LC_ALL=C "${as[@]}" "$PGBIN/initdb" -D "$dir/data" -U bench --auth=trust --encoding=UTF8 \
		--locale=C --no-sync >"$LOGS/initdb.log" 2>&1 || die "initdb: $(tail -n 20 "$LOGS/initdb.log")"
	env LC_ALL=C "${as[@]}" "$PGBIN/postgres" -D "$dir/data" -k "$sock" -c listen_addresses= \
		-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB \
		-c max_wal_size=4GB >"$LOGS/postgres.log" 2>&1 &
	PG_PID=$!
	for _ in $(seq 600); do
		grep -q 'ready to accept connections' "$LOGS/postgres.log" && break
		kill -0 "$PG_PID" 2>/dev/null || die "postgres exited: $(tail -n 20 "$LOGS/postgres.log")"
		sleep 0.1
	done
	grep -q 'ready to accept connections' "$LOGS/postgres.log" || die "postgres not ready: $(tail -n 20 "$LOGS/postgres.log")"
	local -a psql=("$PGBIN/psql" -X -q -A -t -h "$sock" -U bench)
	"${psql[@]}" -d postgres -c 'CREATE DATABASE bench' || die "creating the bench database"
	R[pgbench.server]=$("${psql[@]}" -d postgres -c 'SHOW server_version')

	log "pgbench: pgbench -i -s $BENCH_PG_SCALE"
	timed pgbench.load "$PGBIN/pgbench" -i -s "$BENCH_PG_SCALE" -h "$sock" -U bench bench
	R[pgbench.rows]="pgbench_accounts $((BENCH_PG_SCALE * 100000))"

	# The flags are database/postgres.go's pgDumpFlags.
	DUMP_CMD="$(printf '%q ' "$PG_DUMP" --format=plain --clean --if-exists --no-password \
		--dbname="host='$sock' user='bench' dbname='bench' connect_timeout='30'")"
	ESCROW_DUMP_ARGS=(--type postgres --socket "$sock" --user bench --database bench --no-globals)
	DUMP_NAME=bench.sql
	dump_round pgbench 1

	log "pgbench: pgbench -T $BENCH_PG_SECONDS"
	timed pgbench.change "$PGBIN/pgbench" -T "$BENCH_PG_SECONDS" -h "$sock" -U bench bench
	R[pgbench.change]="$(grep -o 'number of transactions actually processed: [0-9]*' "$LOGS/pgbench.change.out" | grep -o '[0-9]*$') transactions, $(grep -o 'tps = [0-9.]*' "$LOGS/pgbench.change.out" | head -1)"
	dump_round pgbench 2
	dump_round pgbench 3

	stop "$PG_PID"
	PG_PID=
	[[ $BENCH_KEEP == 1 ]] || rm -rf "$dir"
	finish_scenario pgbench
}

for sc in $BENCH_DB_SCENARIOS; do
	"run_$sc"
done

# --------------------------------------------------------------- report
mb() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1e6}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {if (s > 0) printf "%.1f", b / 1e6 / s; else print "n/a"}'; }

REPORT=$LOGS/results.txt
{
	echo
	echo "escrow $ESCROW_REV vs $RESTIC_VERSION, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ); ${TOOLS[0]} first"
	for sc in $BENCH_DB_SCENARIOS; do
		case $sc in
		site) echo "site:    MariaDB ${R[site.server]}, ${BENCH_DB_MB} MB seed $BENCH_SEED; rows ${R[site.rows]}; change: ${R[site.change]}" ;;
		pgbench) echo "pgbench: PostgreSQL ${R[pgbench.server]}, pgbench -i -s $BENCH_PG_SCALE; pgbench -T $BENCH_PG_SECONDS: ${R[pgbench.change]}" ;;
		esac
	done
	echo
	echo "Bytes the second dump added to the repository (MB; repository = sum of the objects in the"
	echo "bucket after minus before, packs + index + snapshot; packs = data/ only; said = what the"
	echo "tool reports: escrow data_added_packed, restic 0.14 data_added, which is before compression):"
	printf '%-8s %9s | %9s %8s %8s | %9s %8s %8s | %8s %7s %7s\n' scenario dump_MB escrow packs said restic packs said floor e/r e/floor
	for sc in $BENCH_DB_SCENARIOS; do
		k=$sc.2
		printf '%-8s %9s | %9s %8s %8s | %9s %8s %8s | %8s %7s %7s\n' "$sc" "$(mb "${R[$k.bytes]}")" \
			"$(mb "${R[$k.escrow.added]}")" "$(mb "${R[$k.escrow.added_data]}")" "$(mb "${R[$k.escrow.said]:-0}")" \
			"$(mb "${R[$k.restic.added]}")" "$(mb "${R[$k.restic.added_data]}")" "$(mb "${R[$k.restic.said]:-0}")" \
			"$(mb "${R[$sc.floor]}")" "$(div "${R[$k.escrow.added]}" "${R[$k.restic.added]}")" \
			"$(div "${R[$k.escrow.added]}" "${R[$sc.floor]}")"
	done
	echo "(e/r = escrow / restic, target <= 0.50 on site and <= 1.00 on pgbench; floor = diff -u | zstd -19,"
	echo " of a raw diff of: $(for sc in $BENCH_DB_SCENARIOS; do printf '%s %s MB  ' "$sc" "$(mb "${R[$sc.diff_raw]}")"; done))"
	echo
	echo "First dumps (into empty repositories), MB added: $(for sc in $BENCH_DB_SCENARIOS; do
		printf '%s escrow %s, restic %s;  ' "$sc" "$(mb "${R[$sc.1.escrow.added]}")" "$(mb "${R[$sc.1.restic.added]}")"
	done)"
	echo "Third dumps (the second again, nothing changed), MB added: $(for sc in $BENCH_DB_SCENARIOS; do
		printf '%s escrow %s, restic %s;  ' "$sc" "$(mb "${R[$sc.3.escrow.added]}")" "$(mb "${R[$sc.3.restic.added]}")"
	done)"
	echo
	echo "Dump streaming throughput (MB/s of dump; escrow's stream time, from its --json duration, and"
	echo "its wall time incl. opening the repository; pipe = the dump piped to cat >/dev/null; ratio ="
	echo "escrow stream MB/s / dump-to-/dev/null MB/s, ratio_pipe = the same against the pipe;"
	echo ".1 the first dump, .2 the second after the changes, .3 the second again):"
	printf '%-10s %8s %9s %9s %9s %9s %9s %7s %10s %6s\n' dump MB devnull pipe escrow escrow_wall restic ratio ratio_pipe load
	for sc in $BENCH_DB_SCENARIOS; do
		for n in 1 2 3; do
			k=$sc.$n
			printf '%-10s %8s %9s %9s %9s %9s %9s %7s %10s %6s\n' "$k" "$(mb "${R[$k.bytes]}")" \
				"$(mbps "${R[$k.bytes]}" "${R[$k.devnull.wall]}")" "$(mbps "${R[$k.bytes]}" "${R[$k.pipe.wall]}")" \
				"$(mbps "${R[$k.bytes]}" "${R[$k.escrow.stream_s]}")" \
				"$(mbps "${R[$k.bytes]}" "${R[$k.escrow.wall]}")" "$(mbps "${R[$k.bytes]}" "${R[$k.restic.wall]}")" \
				"$(div "${R[$k.devnull.wall]}" "${R[$k.escrow.stream_s]}")" \
				"$(div "${R[$k.pipe.wall]}" "${R[$k.escrow.stream_s]}")" "${R[$k.escrow.load]}"
		done
	done
	echo "(target: ratio >= 0.80; CPU seconds: $(for sc in $BENCH_DB_SCENARIOS; do for n in 1 2 3; do
		printf '%s devnull %s escrow %s restic %s;  ' "$sc.$n" "${R[$sc.$n.devnull.cpu]}" "${R[$sc.$n.escrow.cpu]}" "${R[$sc.$n.restic.cpu]}"
	done; done))"
	if [[ -n $BENCH_BASE ]]; then
		echo
		echo "Against escrow $BASE_REV (BENCH_BASE=$BENCH_BASE), dumping right after this escrow in the same run"
		echo "(MB added, e/r and b/r against restic; stream MB/s and ratio to /dev/null; speedup = base's stream"
		echo "time / escrow's):"
		printf '%-10s %9s %9s %6s %6s | %8s %8s %7s %7s %8s\n' dump escrow_MB base_MB e/r b/r escrow base e_ratio b_ratio speedup
		for sc in $BENCH_DB_SCENARIOS; do
			for n in 1 2 3; do
				k=$sc.$n
				printf '%-10s %9s %9s %6s %6s | %8s %8s %7s %7s %8s\n' "$k" "$(mb "${R[$k.escrow.added]}")" "$(mb "${R[$k.base.added]}")" \
					"$(div "${R[$k.escrow.added]}" "${R[$k.restic.added]}")" "$(div "${R[$k.base.added]}" "${R[$k.restic.added]}")" \
					"$(mbps "${R[$k.bytes]}" "${R[$k.escrow.stream_s]}")" "$(mbps "${R[$k.bytes]}" "${R[$k.base.stream_s]}")" \
					"$(div "${R[$k.devnull.wall]}" "${R[$k.escrow.stream_s]}")" "$(div "${R[$k.devnull.wall]}" "${R[$k.base.stream_s]}")" \
					"$(div "${R[$k.base.stream_s]}" "${R[$k.escrow.stream_s]}")"
			done
		done
		echo "(CPU seconds, escrow / base, with the dump tool's: $(for sc in $BENCH_DB_SCENARIOS; do for n in 1 2 3; do
			printf '%s %s / %s;  ' "$sc.$n" "${R[$sc.$n.escrow.cpu]}" "${R[$sc.$n.base.cpu]}"
		done; done))"
	fi
	if [[ -n $BENCH_CHUNKS ]]; then
		echo
		echo "escrow with other chunk shapes, offline on the same saved dumps (bench/dbchunks,"
		echo "local repositories; MB added by the second dump: packs, index, total; blobs of the first):"
		for sc in $BENCH_DB_SCENARIOS; do
			sed "s/^/$sc  /" "$LOGS/$sc.chunks.out"
		done
	fi
} | tee "$REPORT"
echo
echo "results: $REPORT (step logs beside it)"
