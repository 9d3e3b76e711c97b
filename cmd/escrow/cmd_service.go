package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/installer"
)

// installOptions are the flags of escrow install.
type installOptions struct {
	Force      bool
	Config     string
	Root       string
	Executable string
}

func (o *installOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Force, "force", false, "replace a running agent of another version (it is stopped, and the new service started)")
	f.StringVar(&o.Config, "config", defaultConfigFile, "the configuration file the service runs the agent with")
	f.StringVar(&o.Root, "root", "/", "write the service's files below this directory instead of installing on this system (systemd files; for images and tests)")
	f.StringVar(&o.Executable, "executable", "", "the escrow binary the service runs (default: this one)")
	_ = f.MarkHidden("executable")
}

func newInstallCommand(g *globalOptions) *cobra.Command {
	var o installOptions
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the agent as a system service that starts at boot (as root)",
		Long: `Install the agent as a system service: systemd where it runs (SysV init
otherwise, launchd on macOS, a Windows service on Windows), started at boot
and restarted when it fails, running "escrow agent --config FILE".

It creates ` + installer.ConfigDir + ` and the state directory if missing, readable by
root only, and makes the files in ` + installer.ConfigDir + ` private; it never writes
the configuration. When the configuration exists it must be valid: the
systemd service gets write access to the paths it names (a local
repository, SQLite folders, state_dir) and nothing else. Run install again
after changing those.

install does not start the service (escrow start does), and it refuses to
replace a running agent of another version without --force.`,
		Example: `  sudo escrow install
  sudo escrow start
  escrow service status`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return runInstall(g, o) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runInstall(g *globalOptions, o installOptions) error {
	if !filepath.IsAbs(o.Config) || !filepath.IsAbs(o.Root) {
		return usageError(errors.New("--config and --root take absolute paths: the service has no working directory"))
	}
	opts := installer.Options{Root: filepath.Clean(o.Root), Executable: o.Executable, ConfigFile: filepath.Clean(o.Config)}
	onSystem := opts.Root == "/"
	if onSystem {
		if err := requireRoot("install"); err != nil {
			return err
		}
	}
	cfg, err := serviceConfig(opts)
	if err != nil {
		return configProblems(g, opts.ConfigFile, err)
	}
	if cfg != nil {
		opts = withConfigPaths(opts, cfg)
	}
	m, err := installer.NewManager(opts)
	if err != nil {
		return err
	}
	opts = m.Options()
	if err := opts.Validate(); err != nil {
		return usageError(err)
	}
	if onSystem {
		if err := installer.CheckExecutable(opts.Executable); err != nil {
			return err
		}
	}

	// An agent of another version must not be replaced by surprise.
	stateDir := filepath.Join(opts.Root, opts.StateDir)
	running, pid, other := runningAgent(stateDir)
	if running && other != "escrow "+version && !o.Force {
		if other == "" {
			other = "of an unknown version"
		}
		return fmt.Errorf("an escrow agent %s is running (pid %d); installing escrow %s over it needs --force, which stops it, replaces the service and starts it again", other, pid, version)
	}
	wasRunning := onSystem && m.Status().State == installer.Running
	if wasRunning && running && other != "escrow "+version {
		g.printf("Stopping the running agent (%s)\n", other)
		if err := m.Stop(); err != nil {
			return fmt.Errorf("stop the running service: %w", err)
		}
	}

	in, err := m.Install()
	for _, n := range in.Notes {
		g.printf("Made private: %s\n", n)
	}
	if err != nil {
		return err
	}
	g.printf("Installed the escrow service (%s), version %s\n", m.Platform(), version)
	g.printf("  runs:          %s %s\n", opts.Executable, strings.Join(opts.Arguments(), " "))
	if in.File != "" {
		how := ""
		if in.Packaged {
			how = " (the package's)"
		}
		g.printf("  service file:  %s%s\n", filepath.Join(opts.Root, in.File), how)
	}
	if in.DropIn != "" {
		g.printf("  paths drop-in: %s\n", filepath.Join(opts.Root, in.DropIn))
	}
	g.printf("  configuration: %s (directory mode 0700)\n", filepath.Join(opts.Root, opts.ConfigFile))
	g.printf("  state:         %s (mode 0700)\n", stateDir)
	switch {
	case !onSystem:
	case wasRunning && m.Status().State != installer.Running:
		// Stopped above for another version, or by replacing the service
		// outside systemd: it was running, so it runs again.
		if err := m.Start(); err != nil {
			return fmt.Errorf("start the service again: %w", err)
		}
		g.printf("Started the service again, version %s.\n", version)
	case cfg == nil:
		g.printf("Next: write the configuration (escrow config example > %s; chmod 600 it; escrow config check), run escrow install again, then escrow start.\n", opts.ConfigFile)
	case wasRunning:
		g.printf("The service is running; escrow restart applies the new settings.\n")
	default:
		g.printf("Next: sudo escrow start\n")
	}
	return nil
}

// serviceConfig reads the configuration the service will run with, or
// returns nil if there is none yet. On the running system it is checked
// with the files it names; below another root only its fields are.
func serviceConfig(o installer.Options) (*config.Config, error) {
	p := filepath.Join(o.Root, o.ConfigFile)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if o.Root == "/" {
		return config.Load(p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return config.Parse(o.ConfigFile, data)
}

// withConfigPaths adds what the configuration writes to the installation:
// its state directory, a local repository, the folders of SQLite databases
// (for SQLite's -wal and -shm files), and whether anything lives in /tmp.
func withConfigPaths(o installer.Options, c *config.Config) installer.Options {
	o.StateDir = c.StateDir
	tmp := []string{c.StateDir}
	if filepath.IsAbs(c.Repository) {
		o.Writable = append(o.Writable, c.Repository)
		tmp = append(tmp, c.Repository)
	}
	for _, s := range c.Sources {
		tmp = append(tmp, s.Path)
	}
	for _, db := range c.Databases {
		if db.Type == config.SQLite {
			o.Writable = append(o.Writable, filepath.Dir(db.Path))
		}
		tmp = append(tmp, db.Path, db.Socket, db.Host)
	}
	for _, p := range tmp {
		for _, t := range []string{"/tmp", "/var/tmp"} {
			if p == t || strings.HasPrefix(p, t+"/") {
				o.SharedTmp = true
			}
		}
	}
	return o
}

// runningAgent reports whether an agent holds the state directory, its
// process ID and its version ("" when its status file is not its own yet).
func runningAgent(stateDir string) (running bool, pid int, version string) {
	st, running, _ := agent.ReadStatus(stateDir)
	if !running {
		return false, 0, ""
	}
	data, _ := os.ReadFile(filepath.Join(stateDir, agent.LockFile))
	pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	if st != nil && st.PID == pid {
		return true, pid, st.Version
	}
	return true, pid, ""
}

// requireRoot refuses to change the system's services as another user.
func requireRoot(what string) error {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		return nil
	}
	return fmt.Errorf("escrow %s changes the system's services, which only root may do: sudo escrow %s", what, what)
}

func newUninstallCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Stop the service and remove it (as root); the configuration, secrets, state and repository stay",
		Long: `Stop the agent's service and remove it from the service manager. The
configuration and the secret files in ` + installer.ConfigDir + `, the state directory and
the repository are never deleted: reinstalling picks up where it stopped.`,
		Example: "  sudo escrow uninstall",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireRoot("uninstall"); err != nil {
				return err
			}
			m, err := installer.NewManager(installer.Options{})
			if err != nil {
				return err
			}
			removed, err := m.Uninstall()
			if errors.Is(err, installer.ErrNotInstalled) {
				g.printf("The escrow service is not installed (%s); nothing to do.\n", m.Platform())
				return nil
			}
			if err != nil {
				return err
			}
			for _, f := range removed {
				g.printf("Removed %s\n", f)
			}
			g.printf("The escrow service is uninstalled. Kept: %s (configuration and secrets), the state directory, the repository.\n", installer.ConfigDir)
			return nil
		},
	}
}

// serviceControl is what start, stop and restart share: root, an installed
// service, and for starting a configuration the agent accepts.
func serviceControl(g *globalOptions, what, file string, needConfig bool) (*installer.Manager, *config.Config, error) {
	if err := requireRoot(what); err != nil {
		return nil, nil, err
	}
	m, err := installer.NewManager(installer.Options{ConfigFile: file})
	if err != nil {
		return nil, nil, err
	}
	if m.Status().State == installer.NotInstalled {
		return nil, nil, fmt.Errorf("%w (%s): sudo escrow install", installer.ErrNotInstalled, m.Platform())
	}
	var cfg *config.Config
	if needConfig {
		if cfg, err = config.Load(file); err != nil {
			fmt.Fprintf(g.env.stderr, "escrow: not starting the service: the agent would stop at once on its configuration\n")
			return nil, nil, configProblems(g, file, err)
		}
	}
	return m, cfg, nil
}

func newStartCommand(g *globalOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "start",
		Short:   "Start the installed service (as root)",
		Long:    "Start the agent's service, once its configuration passes escrow config check.",
		Example: "  sudo escrow start",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, cfg, err := serviceControl(g, "start", file, true)
			if err != nil {
				return err
			}
			if m.Status().State == installer.Running {
				g.printf("The escrow service is already running.\n")
				return nil
			}
			if err := m.Start(); err != nil {
				return fmt.Errorf("start the service: %w", err)
			}
			return confirmStarted(g, m, cfg)
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the service's configuration file")
	return cmd
}

func newStopCommand(g *globalOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "stop",
		Short:   "Stop the service (as root); a snapshot in progress gets 20 s to finish",
		Example: "  sudo escrow stop",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, _, err := serviceControl(g, "stop", file, false)
			if err != nil {
				return err
			}
			if m.Status().State != installer.Running {
				g.printf("The escrow service is not running.\n")
				return nil
			}
			if err := m.Stop(); err != nil {
				return fmt.Errorf("stop the service: %w", err)
			}
			g.printf("Stopped the escrow service.\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the service's configuration file")
	return cmd
}

func newRestartCommand(g *globalOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "restart",
		Short:   "Restart the service (as root), with a configuration that passes escrow config check",
		Example: "  sudo escrow restart",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, cfg, err := serviceControl(g, "restart", file, true)
			if err != nil {
				return err
			}
			if err := m.Restart(); err != nil {
				return fmt.Errorf("restart the service: %w", err)
			}
			return confirmStarted(g, m, cfg)
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the service's configuration file")
	return cmd
}

// confirmStarted waits until the agent holds its state directory, or the
// service manager says it stopped. A service manager reports a start as
// soon as the process exists; an agent that stops on its configuration a
// moment later would otherwise look started.
func confirmStarted(g *globalOptions, m *installer.Manager, cfg *config.Config) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if running, pid, _ := runningAgent(cfg.StateDir); running {
			g.printf("The escrow service is running (pid %d). escrow status shows what it protects.\n", pid)
			return nil
		}
		if st := m.Status(); st.State != installer.Running && st.State != installer.Unknown {
			return fmt.Errorf("the service started but the agent stopped (%s); %s", st.State, logHint(m))
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.printf("The service is started; the agent is still opening the repository. escrow status will show it; %s\n", logHint(m))
	return nil
}

// logHint says where the agent's log is.
func logHint(m *installer.Manager) string {
	if m.Platform() == "linux-systemd" {
		return "its log: journalctl -u " + installer.Name
	}
	return "its log: " + installer.LogFile
}

func newServiceCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Show the system service's state",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unknown command %q for escrow service: use status", args[0]))
			}
			return usageError(errors.New("escrow service needs a command: status"))
		},
	}
	cmd.AddCommand(newServiceStatusCommand(g))
	return cmd
}

func newServiceStatusCommand(g *globalOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the service is installed and running, and which agent runs",
		Long: `Show what the service manager says about the escrow service, and which
agent holds the state directory (process ID and version). escrow status
shows what the agent protects.

Exit status: 0 when the service runs; 4 when it is not installed or not
running.`,
		Example: "  escrow service status\n  escrow service status --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := installer.NewManager(installer.Options{ConfigFile: file})
			if err != nil {
				return err
			}
			st := m.Status()
			stateDir := installer.StateDir
			if c, err := config.Load(file); err == nil {
				stateDir = c.StateDir
			}
			running, pid, ver := runningAgent(stateDir)
			if g.JSON {
				err = printJSON(g, map[string]any{
					"service": st,
					"agent":   map[string]any{"running": running, "pid": pid, "version": ver, "state_dir": stateDir},
				})
				if err != nil {
					return err
				}
			} else {
				g.printf("service:  %s (%s)\n", st.State, st.Platform)
				if st.File != "" {
					g.printf("file:     %s\n", st.File)
				}
				if st.Detail != "" {
					g.printf("detail:   %s\n", st.Detail)
				}
				switch {
				case running && ver != "":
					g.printf("agent:    running, pid %d, %s\n", pid, ver)
				case running:
					g.printf("agent:    running, pid %d (starting)\n", pid)
				default:
					g.printf("agent:    not running (state directory %s)\n", stateDir)
				}
			}
			if st.State != installer.Running {
				return withCode(exitUnhealthy, fmt.Errorf("the escrow service is %s", st.State))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the service's configuration file (for its state_dir)")
	return cmd
}
