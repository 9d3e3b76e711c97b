#!/usr/bin/env bash
# Installs what the tests need, if missing: restic, MariaDB, PostgreSQL,
# sqlite3, systemd-analyze and rpm (apt), MinIO, staticcheck, and for
# scripts/release-check.sh goreleaser and cyclonedx-gomod (go install into
# $HOME/.cache/escrow-ci/bin). Safe to run again; it only prints and does
# what is missing.
set -euo pipefail

# Pinned so that CI is reproducible; bump deliberately.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
STATICCHECK_VERSION=v0.8.2 # 2026.2.x; its go.mod needs Go 1.26, and it supports Go 1.26 code
# The newest goreleaser that builds here: v2.16.0 and later need nfpm's msix
# support, whose module host (go.digitalxero.dev) the Go module proxy does
# not serve to this network, and v2.18 needs Go 1.27.
GORELEASER_VERSION=v2.15.1
CYCLONEDX_GOMOD_VERSION=v1.10.0

CACHE_BIN="${HOME}/.cache/escrow-ci/bin"
mkdir -p "${CACHE_BIN}"

log() { printf 'test-deps: %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		# -n: fail rather than wait for a password (CI has no stdin).
		sudo -n "$@"
	else
		log "need root to run: $*" >&2
		return 1
	fi
}

# Debian packages, each checked by the programs the tests look for
# (internal/testenv). The database servers come as packages but the tests
# never use a system service: they start private instances as the current
# user on loopback ports and sockets in temporary folders. mariadb-server-core
# (rather than mariadb-server) has mariadbd and mariadb-install-db without a
# service that starts on install; postgresql's binaries live in
# /usr/lib/postgresql/<version>/bin.
have() { command -v "$1" >/dev/null 2>&1; }
have_pg_server() { have initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
missing=()
have restic || missing+=(restic)
{ have mariadb-install-db && { have mariadbd || [ -x /usr/sbin/mariadbd ]; }; } || missing+=(mariadb-server-core)
{ have mariadb && have mariadb-dump; } || missing+=(mariadb-client)
have_pg_server || missing+=(postgresql)
{ have psql && have pg_dump && have pg_dumpall; } || missing+=(postgresql-client)
have sqlite3 || missing+=(sqlite3)
# zbarimg reads the recovery kit's QR code back (kit tests).
have zbarimg || missing+=(zbar-tools)
# systemd-analyze verifies the service's unit; it works without a running
# systemd, and installing the package starts nothing in a container.
have systemd-analyze || missing+=(systemd)
# rpm reads the .rpm that scripts/release-check.sh builds.
have rpm || missing+=(rpm)
if [ ${#missing[@]} -eq 0 ]; then
	log "restic, MariaDB, PostgreSQL, sqlite3, zbarimg, systemd-analyze and rpm present"
else
	log "installing with apt-get: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# go_install BINARY PACKAGE@VERSION installs into the cache unless the binary
# is already there (a version marker file tells a stale build apart).
go_install() {
	local bin=$1 pkg=$2
	local marker="${CACHE_BIN}/.${bin}.version"
	if [ -x "${CACHE_BIN}/${bin}" ] && { [ ! -f "${marker}" ] || [ "$(cat "${marker}")" = "${pkg}" ]; }; then
		log "${bin} present: ${CACHE_BIN}/${bin}"
		return
	fi
	log "building ${pkg} into ${CACHE_BIN} (this can take minutes the first time)"
	# Outside the module, so the project's go.mod is neither read nor changed.
	(cd / && GOBIN="${CACHE_BIN}" GOFLAGS=-buildvcs=false go install "${pkg}")
	printf '%s\n' "${pkg}" >"${marker}"
}

go_install minio "github.com/minio/minio@${MINIO_VERSION}"
go_install staticcheck "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
go_install goreleaser "github.com/goreleaser/goreleaser/v2@${GORELEASER_VERSION}"
go_install cyclonedx-gomod "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@${CYCLONEDX_GOMOD_VERSION}"

log "done"
