//go:build !windows

package installer

import (
	"os"
	"path/filepath"
)

// Where an installed agent keeps its files.
const (
	// ConfigDir holds the configuration and the secret files it names:
	// mode 0700, owned by root.
	ConfigDir = "/etc/escrow"
	// ConfigFile is the agent's configuration (mode 0600).
	ConfigFile = ConfigDir + "/escrow.yaml"
	// EnvironmentFile, if present, sets environment variables for the
	// agent (such as AWS_SECRET_ACCESS_KEY), one NAME=value a line.
	EnvironmentFile = ConfigDir + "/environment"
	// StateDir is the agent's default state directory (mode 0700).
	StateDir = "/var/lib/escrow"
	// LogFile is where the agent's log goes under SysV init and launchd;
	// under systemd it goes to the journal.
	LogFile = "/var/log/escrow.log"
)

// currentExecutable is the running binary's absolute path, links resolved,
// so the service does not follow a link that may later point elsewhere.
func currentExecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(exe)
}
