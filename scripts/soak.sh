#!/usr/bin/env bash
# The long tier of the reliability suite (docs/reliability.md): the same
# tests CI runs in its quick tier, at their larger counts (ESCROW_TIER=long).
# Needs what CI needs (scripts/test-deps.sh); CI=true makes a missing server
# or program a failure rather than a skip.
#
#   scripts/soak.sh                 # every package
#   scripts/soak.sh ./cmd/escrow/   # one package
#   SOAK_RUN='^TestRandomKill$' scripts/soak.sh ./cmd/escrow/
set -euo pipefail
cd "$(dirname "$0")/.."

# The reliability tests, by name prefix: crash consistency (TestFailpoint,
# TestRandomKill, TestInterruptedBackups), store outages, corruption, bad
# input, the disaster drill and the attack on the store.
run="${SOAK_RUN:-^(TestFailpoint|TestRandomKill|TestInterruptedBackups|TestStoreOutage|TestStoreFaults|TestCorruption|TestBadInput|TestDisasterDrill|TestAsOfAttack)}"

export ESCROW_TIER=long
export CI="${CI:-true}"
export ESCROW_MINIO_BIN="${ESCROW_MINIO_BIN:-$HOME/.cache/escrow-ci/bin/minio}"

if [ "$#" -eq 0 ]; then
	set -- ./...
fi
log="${SOAK_LOG:-${TMPDIR:-/tmp}/escrow-soak.log}"
started=$(date +%s)
set +e
go test -race -count=1 -timeout "${SOAK_TIMEOUT:-8h}" -v -run "$run" "$@" 2>&1 |
	tee "$log" | grep -E '^(--- |ok |FAIL|PASS)|seed |kills in '
status=${PIPESTATUS[0]}
set -e
echo "soak: exit $status after $(( $(date +%s) - started ))s; full log in $log"
exit "$status"
