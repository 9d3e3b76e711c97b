#!/usr/bin/env bash
# Checks the release: goreleaser check, a snapshot release of the whole
# matrix (binaries, archives, checksums, .deb and .rpm, SBOMs), then the
# .deb for this machine installed for real with dpkg -i: its files and
# modes, `escrow version`, the packaged unit (systemd-analyze verify), and
# the service itself through this system's init (systemd, or SysV init in a
# container): install, start, status, restart, stop, uninstall. Then the
# package is removed again.
#
# The real install runs only as root (or with sudo -n) on a machine where
# escrow is not installed and /etc/escrow, /var/lib/escrow and /srv/escrow-
# release-check do not exist, such as CI's container; elsewhere the .deb is
# only unpacked and inspected. Tools come from scripts/test-deps.sh.
#
# The whole matrix is built every time (goreleaser release has no single-
# target mode): about 4 to 6 minutes on 2 cores with a cold Go build cache,
# under 30 s with a warm one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE_BIN="${HOME}/.cache/escrow-ci/bin"
export PATH="${CACHE_BIN}:${PATH}"

log() { printf 'release-check: %s\n' "$*"; }
fail() {
	printf 'release-check: FAIL: %s\n' "$*" >&2
	exit 1
}

# packaged_escrow_runs: whether a process runs the packaged binary. Other
# escrow processes (a developer's tests on the same machine) do not count;
# after dpkg --remove the kernel shows the path with " (deleted)".
packaged_escrow_runs() {
	local pid exe
	for pid in $(pgrep -x escrow); do
		exe=$(readlink "/proc/${pid}/exe" 2>/dev/null) || continue
		[[ ${exe} == /usr/bin/escrow || ${exe} == "/usr/bin/escrow (deleted)" ]] && return 0
	done
	return 1
}
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo -n "$@"
	fi
}

for tool in goreleaser cyclonedx-gomod systemd-analyze dpkg-deb rpm; do
	command -v "${tool}" >/dev/null || fail "${tool} not found; run scripts/test-deps.sh"
done

# goreleaser reads the remote's URL; a clone or worktree without a remote
# would leave the commit out of the version. The URL is given to git in
# the environment, so no git configuration changes.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/escrow-backup/escrow.git

start=${SECONDS}
log "goreleaser check"
goreleaser check
log "snapshot release"
goreleaser release --snapshot --clean --skip=publish
log "snapshot built in $((SECONDS - start)) s"

# What was built.
(cd dist && sha256sum --check --quiet checksums.txt) || fail "checksums.txt does not match"
arch=$(dpkg --print-architecture)
deb=$(ls dist/escrow_*_"${arch}".deb)
ver=$(dpkg-deb --field "${deb}" Version)
log "checking ${deb} (version ${ver})"
for want in linux_amd64.tar.gz linux_arm64.tar.gz linux_armv7.tar.gz linux_386.tar.gz darwin_amd64.tar.gz \
	darwin_arm64.tar.gz windows_amd64.zip amd64.deb arm64.deb armv7.deb 386.deb amd64.rpm arm64.rpm armv7.rpm 386.rpm; do
	compgen -G "dist/escrow_*_${want}" >/dev/null || fail "no dist/escrow_*_${want}"
done
for sbom in dist/*.cdx.json; do
	grep -q '"github.com/kardianos/service"' "${sbom}" || grep -q 'pkg:golang/github.com/kardianos/service@' "${sbom}" ||
		fail "${sbom} does not list the modules"
done

# The package's files and modes, from its listing (path -> mode owner).
listing=$(dpkg-deb --contents "${deb}" | awk '{print $6, $1, $2}')
expect_line() { grep -q "^\./${1#/} $2 root/root$" <<<"${listing}" || fail "${deb}: want ${1} $2 root/root"; }
expect_line /usr/bin/escrow -rwxr-xr-x
expect_line /usr/lib/systemd/system/escrow.service -rw-r--r--
expect_line /etc/escrow/ drwx------
expect_line /etc/escrow/escrow.yaml.example -rw-------
expect_line /var/lib/escrow/ drwx------
dpkg-deb --field "${deb}" Package | grep -qx escrow || fail "package name"
[ "$(dpkg-deb --ctrl-tarfile "${deb}" | tar -xO ./conffiles)" = "/etc/escrow/escrow.yaml.example" ] || fail "conffiles"

# The .rpm holds the same, with its scriptlets.
rpmfile=$(ls dist/escrow_*_"${arch}".rpm)
rpm_listing=$(rpm -qlpv "${rpmfile}" | awk '{print $9, $1, $3 "/" $4}')
for want in "/usr/bin/escrow -rwxr-xr-x" "/usr/lib/systemd/system/escrow.service -rw-r--r--" "/etc/escrow drwx------" \
	"/etc/escrow/escrow.yaml.example -rw-------" "/var/lib/escrow drwx------"; do
	grep -qx "${want} root/root" <<<"${rpm_listing}" || fail "${rpmfile}: want ${want} root/root"
done
[ "$(rpm -qp --configfiles "${rpmfile}")" = "/etc/escrow/escrow.yaml.example" ] || fail "${rpmfile}: config files"
rpm -qp --scripts "${rpmfile}" | grep -q "/usr/bin/escrow uninstall" || fail "${rpmfile}: scriptlets"

installed_here() {
	[ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null || return 1
	if dpkg -s escrow >/dev/null 2>&1 || [ -e /etc/escrow ] || [ -e /var/lib/escrow ] || [ -e /srv/escrow-release-check ]; then
		log "escrow, /etc/escrow, /var/lib/escrow or /srv/escrow-release-check exists on this machine: not installing the package for real"
		return 1
	fi
}

if ! installed_here; then
	tmp=$(mktemp -d)
	trap 'rm -rf "${tmp}"' EXIT
	dpkg-deb -x "${deb}" "${tmp}"
	"${tmp}/usr/bin/escrow" version | grep -q "escrow ${ver//\~/-} " || fail "escrow version: $("${tmp}/usr/bin/escrow" version)"
	cmp <("${tmp}/usr/bin/escrow" config example) "${tmp}/etc/escrow/escrow.yaml.example" || fail "the example is not escrow config example"
	log "unpacked only (not root, or escrow already here): files and modes OK; done in $((SECONDS - start)) s"
	exit 0
fi

cleanup() {
	as_root /usr/bin/escrow uninstall >/dev/null 2>&1 || true
	as_root dpkg --purge escrow >/dev/null 2>&1 || true
	as_root rm -rf /etc/escrow /var/lib/escrow /srv/escrow-release-check /var/log/escrow.log
}
trap cleanup EXIT

log "dpkg -i ${deb}"
as_root dpkg -i "${deb}"
for p in /usr/bin/escrow:755 /usr/lib/systemd/system/escrow.service:644 /etc/escrow:700 /etc/escrow/escrow.yaml.example:600 /var/lib/escrow:700; do
	got=$(stat -c '%a %U:%G' "${p%%:*}")
	[ "${got}" = "${p##*:} root:root" ] || fail "${p%%:*}: ${got}, want ${p##*:} root:root"
done
escrow version
escrow version | grep -q "^escrow ${ver//\~/-} (commit [0-9a-f]\+, built " || fail "escrow version does not show ${ver}, the commit and the date"
cmp <(escrow config example) /etc/escrow/escrow.yaml.example || fail "/etc/escrow/escrow.yaml.example is not escrow config example"
out=$(systemd-analyze verify /usr/lib/systemd/system/escrow.service 2>&1) && [ -z "${out}" ] || fail "systemd-analyze verify: ${out}"

# Installing the package started nothing.
if escrow service status >/dev/null; then
	fail "the package started the service"
fi
! packaged_escrow_runs || fail "an escrow process runs after dpkg -i"

# The service, through this system's init.
log "service lifecycle"
as_root mkdir -p /srv/escrow-release-check/site
echo '<?php echo "hello";' | as_root tee /srv/escrow-release-check/site/index.php >/dev/null
as_root sh -c 'umask 077; echo "release check password" >/etc/escrow/password'
as_root escrow init --repo /srv/escrow-release-check/repo --password-file /etc/escrow/password >/dev/null
as_root sh -c 'umask 077; cat >/etc/escrow/escrow.yaml' <<'EOF'
repository: /srv/escrow-release-check/repo
password_file: /etc/escrow/password
sources:
  - path: /srv/escrow-release-check/site
EOF
as_root escrow install
as_root escrow start
escrow service status
for _ in $(seq 1 300); do
	st=$(as_root escrow status --json 2>/dev/null || true)
	grep -q '"last_snapshot"' <<<"${st}" && break
	sleep 0.2
done
# Until the owner confirms the recovery kit, status is unhealthy and says why.
if out=$(as_root escrow status 2>&1); then
	fail "escrow status is healthy before the recovery kit was confirmed"
fi
grep -q "recovery kit not confirmed" <<<"${out}" || fail "escrow status does not name the unconfirmed kit: ${out}"
as_root escrow kit --config /etc/escrow/escrow.yaml --out /root/escrow-kit.txt >/dev/null
as_root escrow kit confirm --config /etc/escrow/escrow.yaml >/dev/null
as_root rm -f /root/escrow-kit.txt
as_root escrow status || fail "escrow status after start"
agent_running() {
	for _ in $(seq 1 100); do
		as_root escrow service status 2>/dev/null | grep -q "^agent:    running, pid" && return 0
		sleep 0.2
	done
	return 1
}
as_root escrow restart
agent_running || fail "not running after restart"
# Installing the same version again keeps the service running.
as_root escrow install
agent_running || fail "not running after a second install"
stop_start=${SECONDS}
as_root escrow stop
log "stopped in $((SECONDS - stop_start)) s"
if escrow service status >/dev/null; then
	fail "service status says running after stop"
fi
st=$(as_root escrow status --json || true) # exit 4: not running
grep -q '"stopped": true' <<<"${st}" || fail "the agent did not record a clean stop: ${st}"
as_root escrow uninstall
for kept in /etc/escrow/escrow.yaml /etc/escrow/password /var/lib/escrow/status.json /srv/escrow-release-check/repo/config; do
	as_root test -e "${kept}" || fail "uninstall removed ${kept}"
done
if as_root escrow start 2>/dev/null; then
	fail "escrow start after uninstall"
fi
! compgen -G '/etc/rc?.d/[SK][0-9][0-9]escrow' >/dev/null || fail "uninstall left runlevel links: $(ls /etc/rc?.d/*escrow)"

# Removing the package takes a running service with it.
log "dpkg --remove with the service running, then --purge"
as_root escrow install >/dev/null
as_root escrow start >/dev/null
as_root dpkg --remove escrow
[ ! -e /usr/bin/escrow ] || fail "/usr/bin/escrow left after dpkg --remove"
! packaged_escrow_runs || fail "the agent still runs after dpkg --remove"
[ ! -e /etc/init.d/escrow ] && [ ! -e /etc/systemd/system/escrow.service.d/escrow-install.conf ] || fail "dpkg --remove left the service installed"
as_root test -e /etc/escrow/password || fail "dpkg --remove deleted the password"
as_root dpkg --purge escrow
as_root test -e /etc/escrow/password || fail "dpkg --purge deleted the password"
log "OK in $((SECONDS - start)) s"
