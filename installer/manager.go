package installer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/kardianos/service"
)

// ErrNotInstalled means the service is not installed.
var ErrNotInstalled = errors.New("the escrow service is not installed")

// State is the service's state as its manager reports it.
type State string

// The states of the service.
const (
	NotInstalled State = "not installed"
	Stopped      State = "stopped"
	Running      State = "running"
	Failed       State = "failed" // systemd: it failed, or hit its start limit
	Unknown      State = "unknown"
)

// Status is what the service manager says about the service.
type Status struct {
	Platform string `json:"platform"` // the service manager: linux-systemd, unix-systemv, darwin-launchd, windows-service...
	State    State  `json:"state"`
	File     string `json:"file,omitempty"`   // the unit, init script or property list
	Detail   string `json:"detail,omitempty"` // what the manager said, when it did not say enough
}

// Manager installs and controls the service. With Options.Root other than
// "/" it only writes files, those of systemd, below the root.
type Manager struct {
	o        Options
	svc      service.Service
	platform string
}

// NewManager returns a manager for o, with Defaults filled in.
func NewManager(o Options) (*Manager, error) {
	o, err := o.Defaults()
	if err != nil {
		return nil, err
	}
	m := &Manager{o: o, platform: "files below " + o.Root + " (systemd)"}
	if !o.onSystem() {
		return m, nil
	}
	m.svc, err = service.New(NewProgram(nil), o.ServiceConfig())
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	m.platform = m.svc.Platform()
	return m, nil
}

// Options returns the installation's options, defaults filled in.
func (m *Manager) Options() Options { return m.o }

// Platform names the service manager in use.
func (m *Manager) Platform() string { return m.platform }

func (m *Manager) systemd() bool { return m.svc == nil || m.platform == "linux-systemd" }

// Installed says what Install did.
type Installed struct {
	File     string   // the service file in effect
	Packaged bool     // File is the package's systemd unit, enabled as it is
	DropIn   string   // the systemd drop-in with this machine's paths
	Notes    []string // modes and owners made private
}

// Install creates the configuration and state directories (or makes
// existing ones private) and installs the service so that it starts at
// boot. It does not start it, and it replaces an installed service of any
// version: the caller decides whether that is wanted. Under systemd a
// running agent keeps running; elsewhere replacing the service stops it.
func (m *Manager) Install() (Installed, error) {
	var in Installed
	if err := m.o.Validate(); err != nil {
		return in, err
	}
	notes, err := prepareDirs(m.o)
	in.Notes = notes
	if err != nil {
		return in, err
	}
	if m.systemd() {
		f, err := writeSystemd(m.o)
		in.File, in.Packaged, in.DropIn = f.Unit, f.Packaged, f.DropIn
		if err != nil || m.svc == nil {
			return in, err
		}
		if err := systemctl("daemon-reload"); err != nil {
			return in, err
		}
		return in, systemctl("enable", unitName)
	}
	// The library installs only where nothing is installed, and Windows
	// deletes a service only once it has stopped: stop, remove, install.
	st := m.Status()
	if st.State == Running {
		if err := m.svc.Stop(); err != nil {
			return in, fmt.Errorf("stop the installed service: %w", err)
		}
	}
	if st.State != NotInstalled {
		if err := m.removeService(); err != nil {
			return in, fmt.Errorf("replace the installed service: %w", err)
		}
	}
	if err := m.svc.Install(); err != nil {
		return in, fmt.Errorf("install the service (%s): %w", m.platform, err)
	}
	in.File = m.serviceFile()
	return in, nil
}

// Uninstall stops the service and removes it. The configuration, the
// secrets, the state directory and the repository stay. It returns the
// files removed, or ErrNotInstalled.
func (m *Manager) Uninstall() ([]string, error) {
	st := m.Status()
	if m.systemd() {
		if !systemdInstalled(m.o) {
			return nil, ErrNotInstalled
		}
		if m.svc != nil {
			if st.State == Running {
				if err := m.svc.Stop(); err != nil {
					return nil, fmt.Errorf("stop the service: %w", err)
				}
			}
			if err := systemctl("disable", unitName); err != nil {
				return nil, err
			}
		}
		removed, err := removeSystemd(m.o)
		if err != nil || m.svc == nil {
			return removed, err
		}
		return removed, systemctl("daemon-reload")
	}
	if st.State == NotInstalled {
		return nil, ErrNotInstalled
	}
	if st.State == Running {
		if err := m.svc.Stop(); err != nil {
			return nil, fmt.Errorf("stop the service: %w", err)
		}
	}
	file := m.serviceFile()
	if err := m.removeService(); err != nil {
		return nil, err
	}
	return []string{file}, nil
}

// removeService has the library remove the service, and for SysV also the
// runlevel links that it makes but leaves behind.
func (m *Manager) removeService() error {
	if err := m.svc.Uninstall(); err != nil {
		return fmt.Errorf("remove the service (%s): %w", m.platform, err)
	}
	if m.platform == "unix-systemv" {
		for _, l := range sysvLinks() {
			if t, err := os.Readlink(l); err == nil && t == sysvScriptPath {
				_ = os.Remove(l)
			}
		}
	}
	return nil
}

// Start starts the installed service. A systemd service that reached its
// start limit is reset first, since starting it is what was asked.
func (m *Manager) Start() error {
	if err := m.onSystemOnly(); err != nil {
		return err
	}
	if m.systemd() {
		_ = systemctl("reset-failed", unitName)
	}
	return m.svc.Start()
}

// Stop stops the service; the managers wait for the agent (up to 40 s).
func (m *Manager) Stop() error {
	if err := m.onSystemOnly(); err != nil {
		return err
	}
	return m.svc.Stop()
}

// Restart stops and starts the service.
func (m *Manager) Restart() error {
	if err := m.onSystemOnly(); err != nil {
		return err
	}
	if m.systemd() {
		_ = systemctl("reset-failed", unitName)
	}
	return m.svc.Restart()
}

func (m *Manager) onSystemOnly() error {
	if m.svc == nil {
		return fmt.Errorf("the service below %s is not on this system", m.o.Root)
	}
	return nil
}

// Status asks the service manager about the service.
func (m *Manager) Status() Status {
	st := Status{Platform: m.platform, File: m.serviceFile()}
	if m.svc == nil {
		st.State = Unknown
		if systemdInstalled(m.o) {
			st.Detail = "installed below " + m.o.Root
		} else {
			st.State = NotInstalled
		}
		return st
	}
	s, err := m.svc.Status()
	switch {
	case err == nil && s == service.StatusRunning:
		st.State = Running
	case err == nil && s == service.StatusStopped:
		st.State = Stopped
	case errors.Is(err, service.ErrNotInstalled):
		st.State = NotInstalled
	case m.platform == "linux-systemd" && err != nil && strings.Contains(err.Error(), "failed state"):
		st.State = Failed
	case m.platform == "unix-systemv" && !exists(sysvScriptPath):
		st.State = NotInstalled
	case m.platform == "unix-systemv" && exitCode(err) == 3: // LSB: not running
		st.State = Stopped
	default:
		st.State = Unknown
		if err != nil {
			st.Detail = err.Error()
		}
	}
	if m.systemd() && st.State == Stopped && !systemdInstalled(m.o) {
		// Only the package's unit: present but never installed.
		st.State = NotInstalled
	}
	if st.State == NotInstalled {
		st.File = ""
	}
	return st
}

const sysvScriptPath = "/etc/init.d/" + Name

// sysvLinks are the runlevel links the library makes for SysV init.
func sysvLinks() []string {
	var links []string
	for _, l := range []string{"2", "3", "4", "5"} {
		links = append(links, "/etc/rc"+l+".d/S50"+Name)
	}
	for _, l := range []string{"0", "1", "6"} {
		links = append(links, "/etc/rc"+l+".d/K02"+Name)
	}
	return links
}

// serviceFile is where the service is defined for the platform in use.
func (m *Manager) serviceFile() string {
	switch {
	case m.systemd():
		if p, ok := packagedUnit(m.o); ok {
			return p
		}
		return systemdUnitDir + "/" + unitName
	case m.platform == "unix-systemv":
		return sysvScriptPath
	case m.platform == "darwin-launchd":
		return "/Library/LaunchDaemons/" + Name + ".plist"
	}
	return ""
}

func systemctl(args ...string) error {
	cmd := exec.Command("systemctl", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
