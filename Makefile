# Entry points for developers and CI (.ci/run calls `make test` and
# `make release-check`).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c

CACHE_BIN := $(HOME)/.cache/escrow-ci/bin
# testenv looks for MinIO here first; see internal/testenv.
export ESCROW_MINIO_BIN := $(CACHE_BIN)/minio

.PHONY: test build release-check soak

# The release builds for windows and darwin too: their code and tests must
# compile, so test vets them as well.
test:
	scripts/test-deps.sh
	go vet ./...
	GOOS=windows go vet ./...
	GOOS=darwin go vet ./...
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi
	$(CACHE_BIN)/staticcheck ./...
	go test -race -count=1 -timeout 40m ./...
	@if [ -f scripts/fuzz.sh ]; then bash scripts/fuzz.sh; fi

build:
	CGO_ENABLED=0 go build -o bin/escrow ./cmd/escrow

# goreleaser check, a snapshot release of every platform, and the .deb
# installed and exercised as a service (as root; see the script).
release-check:
	scripts/test-deps.sh
	scripts/release-check.sh

# The long tier of the reliability tests (docs/reliability.md): crash,
# outage, corruption, bad-input, disaster-drill and attack tests at their
# larger sizes and counts. Takes hours; not part of CI.
soak:
	scripts/test-deps.sh
	scripts/soak.sh
