// Package installer runs the agent as a system service: systemd, with SysV
// init as the fallback on Linux, launchd on macOS and the service control
// manager on Windows, all through github.com/kardianos/service.
//
// Every option of the service is set here, explicitly, and every path is
// absolute: a service starts with no useful current directory or PATH. The
// files a systemd install writes (the unit, its drop-in, the configuration
// and state directories) go below Options.Root, so tests and image builders
// install into a directory of their own; everything else goes through the
// service manager of the running system.
//
// An install never writes or deletes the agent's configuration, its secrets,
// its state or the repository: it creates the directories that hold them, if
// missing, with modes only root can use.
package installer

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kardianos/service"
)

const (
	// Name is the service's name for every service manager.
	Name = "escrow"
	// DisplayName is what service lists show.
	DisplayName = "escrow backup agent"
	// Description says what the service does.
	Description = "Keeps this server's files and databases in storage its host cannot destroy"

	// StopTimeout is how long Program.Stop waits for the agent, which stops
	// within 30 s of being asked (a snapshot in progress gets 20 s).
	StopTimeout = 30 * time.Second
	// stopTimeoutManager is what the service managers wait before they kill
	// the process: StopTimeout and a margin.
	stopTimeoutManager = 40

	// restartDelay is the wait before a failed agent is started again, and
	// startLimit failures within startLimitInterval make it stay failed.
	restartDelay       = 30
	startLimitBurst    = 5
	startLimitInterval = 600
)

// Options describe one installation. The zero value of each field is
// replaced by its default in Defaults.
type Options struct {
	// Root is the directory the installed files go below: "/" for the
	// running system, a temporary directory in tests. With any other root
	// no service manager is asked to do anything and the files written are
	// those of systemd.
	Root string
	// Executable is the absolute path of the escrow binary the service
	// runs.
	Executable string
	// ConfigFile is the absolute path of the agent's configuration file.
	ConfigFile string
	// StateDir is the agent's state directory (the configuration's
	// state_dir); it is created if missing, and it is writable under the
	// systemd sandbox.
	StateDir string
	// Writable are further directories the agent writes: a local
	// repository, the folders of SQLite databases (SQLite writes its -wal
	// and -shm files next to the database). Under systemd they are punched
	// through the read-only file system; elsewhere they need nothing.
	Writable []string
	// SharedTmp turns off systemd's private /tmp, for a database socket or
	// a source under /tmp or /var/tmp.
	SharedTmp bool
}

// Defaults returns o with empty fields set to the standard installation:
// the running system, this executable, ConfigFile and StateDir. Install
// checks the paths (Validate); starting or stopping a service does not need
// them.
func (o Options) Defaults() (Options, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Executable == "" {
		exe, err := currentExecutable()
		if err != nil {
			return o, err
		}
		o.Executable = exe
	}
	if o.ConfigFile == "" {
		o.ConfigFile = ConfigFile
	}
	if o.StateDir == "" {
		o.StateDir = StateDir
	}
	return o, nil
}

// onSystem reports whether o installs into the running system.
func (o Options) onSystem() bool { return filepath.Clean(o.Root) == "/" }

// path returns p below the root.
func (o Options) path(p string) string { return filepath.Join(o.Root, p) }

// Validate checks that every path is absolute and safe to write into the
// service files unquoted: systemd, sh and XML each give other characters a
// meaning.
func (o Options) Validate() error {
	if !filepath.IsAbs(o.Root) {
		return fmt.Errorf("install root %q: not an absolute path", o.Root)
	}
	paths := []struct{ what, p string }{
		{"executable", o.Executable}, {"configuration file", o.ConfigFile}, {"state directory", o.StateDir},
	}
	for _, w := range o.Writable {
		paths = append(paths, struct{ what, p string }{"writable directory", w})
	}
	var errs []error
	for _, p := range paths {
		if err := checkPath(p.p); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", p.what, p.p, err))
		}
	}
	return errors.Join(errs...)
}

func checkPath(p string) error {
	if !filepath.IsAbs(p) {
		return errors.New("not an absolute path (a service has no working directory to resolve it against)")
	}
	if strings.Contains(p, "{{") {
		return errors.New("contains {{")
	}
	if runtime.GOOS == "windows" {
		return nil // the service control manager takes arguments as a list
	}
	for _, r := range p {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+@,:=", r)
		if !ok {
			return fmt.Errorf("contains %q: the service files take only letters, digits and / . _ - + @ , : = in paths; move it, or link it from such a path", r)
		}
	}
	return nil
}

// Arguments are the agent's command line after the executable.
func (o Options) Arguments() []string { return []string{"agent", "--config", o.ConfigFile} }

// ServiceConfig is the kardianos/service configuration, with every option
// set. The systemd unit, SysV script and launchd property list are rendered
// here in full (no option is left to the library's templates), so what is
// installed is what the tests and the packages check. Upstart, OpenRC, rc.d
// and procd, which the library also detects, get its built-in scripts.
func (o Options) ServiceConfig() *service.Config {
	return &service.Config{
		Name:        Name,
		DisplayName: DisplayName,
		Description: Description,
		// Empty: root on unix, LocalSystem on Windows. The agent reads
		// every site file and database socket; the systemd unit takes
		// away what root does not need.
		UserName:         "",
		Arguments:        o.Arguments(),
		Executable:       o.Executable,
		Dependencies:     dependencies(),
		WorkingDirectory: o.StateDir,
		ChRoot:           "",
		EnvVars:          nil, // from EnvironmentFile, so secrets stay out of world-readable service files
		Option: service.KeyValue{
			// unix
			"UserService":       false,
			"SystemdScript":     SystemdUnit(o),
			"SysvScript":        SysvScript(o),
			"Restart":           "on-failure",
			"ReloadSignal":      "HUP",
			"PIDFile":           sysvPIDFile,
			"LogOutput":         false, // systemd: the journal; SysV and launchd: LogFile, in their scripts
			"LogDirectory":      filepath.Dir(LogFile),
			"LimitNOFILE":       -1, // the system's default
			"SuccessExitStatus": "",
			// macOS
			"LaunchdConfig": LaunchdPlist(o),
			"KeepAlive":     true,
			"RunAtLoad":     true,
			"SessionCreate": false,
			// Windows
			"StartType":              "automatic",
			"DelayedAutoStart":       true, // after the network is up
			"Interactive":            false,
			"Password":               "",
			"OnFailure":              "restart",
			"OnFailureDelayDuration": fmt.Sprintf("%ds", restartDelay),
			"OnFailureResetPeriod":   startLimitInterval,
		},
	}
}

// dependencies are systemd [Unit] lines on Linux (the unit written here
// holds them already) and service names on Windows.
func dependencies() []string {
	switch runtime.GOOS {
	case "linux":
		return []string{"After=network-online.target", "Wants=network-online.target"}
	case "windows":
		return []string{"Tcpip"}
	}
	return nil
}
