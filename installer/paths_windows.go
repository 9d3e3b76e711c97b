package installer

import "os"

// Where an installed agent keeps its files on Windows. The directories get
// an access list for SYSTEM and Administrators only (see prepareDir).
const (
	ConfigDir       = `C:\ProgramData\escrow`
	ConfigFile      = ConfigDir + `\escrow.yaml`
	EnvironmentFile = ConfigDir + `\environment` // not read on Windows: set variables on the service instead
	StateDir        = ConfigDir + `\state`
	// LogFile receives the agent's log when the service control manager
	// runs it, since a service has no console.
	LogFile = ConfigDir + `\escrow.log`
)

func currentExecutable() (string, error) { return os.Executable() }
