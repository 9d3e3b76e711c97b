package installer

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	// systemdUnitDir is where "escrow install" writes the unit when no
	// package installed one.
	systemdUnitDir = "/etc/systemd/system"
	unitName       = Name + ".service"
	// dropInFile holds what the unit cannot know in advance: the paths of
	// this machine's configuration. escrow install rewrites it.
	dropInFile = systemdUnitDir + "/" + unitName + ".d/escrow-install.conf"
)

// packagedUnits are where the .deb and .rpm put the unit. A unit there is
// the package's: install enables it rather than copying it to /etc (a copy
// would hide the next version's unit), and uninstall leaves it alone.
func packagedUnits() []string {
	return []string{"/usr/lib/systemd/system/" + unitName, "/lib/systemd/system/" + unitName}
}

// SystemdUnit is the unit file for o. Restart on failure with a start
// limit; stop with SIGTERM to the agent alone (KillMode=mixed: a database
// dump in progress is the agent's to cancel) and SIGKILL only after 40 s;
// a sandbox in which the whole file system is read-only except the state
// directory (and the drop-in's Writable), /home and /root are read-only,
// /tmp is private, and root keeps only the capabilities it needs to read
// every file of a site and hand SQLite's side files to their owner. Unix
// sockets stay reachable: connecting to one is not a write to the file
// system.
func SystemdUnit(o Options) string {
	exe := o.Executable
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# The escrow agent as a systemd service (docs/service.md). \"escrow install\"")
	w("# writes or enables it and adds %s.d/escrow-install.conf", unitName)
	w("# for this machine's paths. Put local changes in another drop-in")
	w("# (systemctl edit %s), not here: the next install replaces this file.", Name)
	w("[Unit]")
	w("Description=%s: %s", DisplayName, Description)
	w("Documentation=https://github.com/escrow-backup/escrow/blob/main/docs/service.md")
	for _, d := range []string{"After=network-online.target", "Wants=network-online.target"} {
		w("%s", d)
	}
	w("ConditionFileIsExecutable=%s", exe)
	w("# A failing agent is restarted %d times in %d s at most, then left failed", startLimitBurst, startLimitInterval)
	w("# (systemctl status %s says why; systemctl reset-failed %s clears it).", Name, Name)
	w("StartLimitIntervalSec=%d", startLimitInterval)
	w("StartLimitBurst=%d", startLimitBurst)
	w("")
	w("[Service]")
	w("Type=simple")
	w("User=root")
	w("Group=root")
	w("ExecStart=%s", execStart(o))
	w("ExecReload=/bin/kill -HUP $MAINPID")
	w("EnvironmentFile=-%s", EnvironmentFile)
	w("WorkingDirectory=%s", StateDir) // made by StateDirectory=, whatever state_dir says
	w("UMask=0077")
	w("Restart=on-failure")
	w("RestartSec=%d", restartDelay)
	w("# 2: the configuration has problems; 12: wrong password. Starting again")
	w("# cannot help: fix the file and run escrow restart.")
	w("RestartPreventExitStatus=2 12")
	w("KillMode=mixed")
	w("KillSignal=SIGTERM")
	w("TimeoutStopSec=%d", stopTimeoutManager)
	w("")
	w("# Sandbox.")
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	w("StateDirectory=%s", Name)
	w("StateDirectoryMode=0700")
	w("ReadWritePaths=%s", StateDir)
	w("ProtectHome=read-only")
	w("PrivateTmp=yes")
	w("PrivateDevices=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("RestrictRealtime=yes")
	w("RestrictSUIDSGID=yes")
	w("RestrictNamespaces=yes")
	w("LockPersonality=yes")
	w("MemoryDenyWriteExecute=yes")
	w("CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_FOWNER CAP_CHOWN")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String()
}

// SystemdDropIn is the drop-in with this machine's paths: a state directory
// other than the default, a local repository and SQLite folders become
// writable ("-": a path that is missing at start, such as an unmounted
// disk, is skipped rather than failing the start; the agent then says what
// is missing), and /tmp is shared when something the agent needs is there.
func SystemdDropIn(o Options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by \"escrow install\" from %s; it rewrites this file.", o.ConfigFile)
	w("# Run it again after changing repository, state_dir or databases there.")
	w("# Your own changes belong in another file here (systemctl edit %s).", Name)
	w("[Service]")
	var paths []string
	if filepath.Clean(o.StateDir) != StateDir {
		paths = append(paths, filepath.Clean(o.StateDir))
	}
	for _, p := range o.Writable {
		paths = append(paths, filepath.Clean(p))
	}
	slices.Sort(paths)
	for _, p := range slices.Compact(paths) {
		w("ReadWritePaths=-%s", p)
	}
	if o.SharedTmp {
		w("# A database socket or a source is in /tmp or /var/tmp.")
		w("PrivateTmp=no")
	}
	return b.String()
}

// systemdFiles are the files a systemd install wrote.
type systemdFiles struct {
	Unit     string // the unit in effect
	Packaged bool   // the unit is the package's, not written by install
	DropIn   string
}

// writeSystemd writes the unit (unless the package's unit runs the same
// executable) and the drop-in below o.Root, each replaced atomically.
func writeSystemd(o Options) (systemdFiles, error) {
	var f systemdFiles
	if p, ok := packagedUnit(o); ok {
		f.Unit, f.Packaged = p, true
	} else {
		f.Unit = systemdUnitDir + "/" + unitName
		if err := writeFileAtomic(o.path(f.Unit), []byte(SystemdUnit(o)), 0o644); err != nil {
			return f, err
		}
	}
	f.DropIn = dropInFile
	if err := writeFileAtomic(o.path(f.DropIn), []byte(SystemdDropIn(o)), 0o644); err != nil {
		return f, err
	}
	return f, nil
}

func execStart(o Options) string {
	return o.Executable + " " + strings.Join(o.Arguments(), " ")
}

// packagedUnit returns the package's unit if there is one and it runs
// exactly the command line o asks for.
func packagedUnit(o Options) (string, bool) {
	for _, p := range packagedUnits() {
		if unitExecStart(o.path(p)) == execStart(o) {
			return p, true
		}
	}
	return "", false
}

// unitExecStart returns a unit file's ExecStart command line, or "".
func unitExecStart(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ExecStart="); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	return ""
}

// removeSystemd removes what writeSystemd wrote below o.Root; a packaged
// unit stays. It returns the files removed.
func removeSystemd(o Options) ([]string, error) {
	var removed []string
	for _, p := range []string{systemdUnitDir + "/" + unitName, dropInFile} {
		err := os.Remove(o.path(p))
		if err == nil {
			removed = append(removed, p)
		} else if !os.IsNotExist(err) {
			return removed, err
		}
	}
	_ = os.Remove(o.path(filepath.Dir(dropInFile))) // only if empty: the admin's own drop-ins stay
	return removed, nil
}

// systemdInstalled reports whether install wrote a unit or a drop-in below
// o.Root.
func systemdInstalled(o Options) bool {
	for _, p := range []string{systemdUnitDir + "/" + unitName, dropInFile} {
		if _, err := os.Stat(o.path(p)); err == nil {
			return true
		}
	}
	return false
}
