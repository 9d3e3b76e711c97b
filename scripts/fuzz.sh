#!/usr/bin/env bash
# Runs every fuzz target of the decoders of untrusted input, one after the
# other, for FUZZTIME each: the repository format (./repo: pack headers,
# packs, trees, index, snapshots, key files, unpacked files, the config,
# lock files), the recovery kit (./kit), heartbeats (./agent/heartbeat, and
# how ./fleet judges them), the agent's configuration (./agent/config) and
# preseed files (./setup). A failure is reported at the end with the
# others, and the script then exits non-zero; the fuzzer keeps the failing
# input under <package>/testdata/fuzz/<target>/, where `go test` replays it
# until the decoder is fixed.
#
# FUZZTIME defaults to 5s a target (the quick tier, run by `make test`:
# about 3 minutes for the 14 targets) and to 3m with ESCROW_TIER=long
# (about 45 minutes).
#
#   ESCROW_TIER=long scripts/fuzz.sh       # all targets, 3 minutes each
#   FUZZTIME=1m scripts/fuzz.sh            # all targets, 1 minute each
#   FUZZ_PARALLEL=1 scripts/fuzz.sh        # one fuzzing process (default: one per core)
#   scripts/fuzz.sh FuzzDecodeTree         # some of them
set -u
cd "$(dirname "$0")/.."

if [ "${ESCROW_TIER:-}" = long ]; then
	FUZZTIME=${FUZZTIME:-3m}
else
	FUZZTIME=${FUZZTIME:-5s}
fi
PACKAGES=(./repo ./kit ./agent/heartbeat ./fleet ./agent/config ./setup)
# Every Fuzz function in the packages, so a new target is never forgotten;
# pkg[target] is the package that holds it.
declare -A pkg
all=()
for p in "${PACKAGES[@]}"; do
	while read -r t; do
		# Targets are named without their package: two of the same name
		# would make one of them silently never run.
		if [ -n "${pkg[$t]:-}" ]; then
			echo "fuzz: $t is in ${pkg[$t]} and in $p: give fuzz targets distinct names" >&2
			exit 2
		fi
		all+=("$t")
		pkg[$t]=$p
	done < <(go test "$p" -list '^Fuzz' | grep '^Fuzz')
done
if [ ${#all[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found in ${PACKAGES[*]}" >&2
	exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
	# go test -fuzz with a name that matches nothing passes: refuse it here.
	if ! printf '%s\n' "${all[@]}" | grep -qx -- "$t"; then
		echo "fuzz: no fuzz target $t in ${PACKAGES[*]} (have: ${all[*]})" >&2
		exit 2
	fi
done

# fuzz_once TARGET LOG: one run; 0 when it passed.
fuzz_once() {
	go test "${pkg[$1]}" -run '^$' -fuzz "^${1}\$" -fuzztime "$FUZZTIME" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} >"$2" 2>&1
}

# deadline_race LOG: Go 1.26's fuzz coordinator can fail a target with a
# bare "context deadline exceeded" as -fuzztime ends, with no failing
# input (golang/go#75804, fixed in Go 1.27). Such a run is repeated once;
# a real crasher always writes its input and is never repeated away.
deadline_race() {
	grep -q 'context deadline exceeded' "$1" && ! grep -q 'Failing input written' "$1"
}

failed=()
for t in "${targets[@]}"; do
	log=$(mktemp)
	start=$SECONDS
	note=
	ok=0
	if fuzz_once "$t" "$log"; then
		ok=1
	elif deadline_race "$log"; then
		note=", repeated after Go's fuzztime deadline race"
		fuzz_once "$t" "$log" && ok=1
	fi
	if ((ok)); then
		echo "ok   $t ($((SECONDS - start))s, $(grep -o 'execs: [0-9]*' "$log" | tail -1)${note})"
	else
		echo "FAIL $t ($((SECONDS - start))s)"
		sed 's/^/    /' "$log"
		failed+=("$t")
	fi
	rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}"
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed (${FUZZTIME} each)"
