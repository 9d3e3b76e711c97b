//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// serviceSetup is a site and a local repository, and an agent
// configuration naming them with a state directory of its own.
type serviceSetup struct {
	c     *cli
	cfg   string
	state string
}

func newServiceSetup(t *testing.T, stateDir string) *serviceSetup {
	t.Helper()
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	s := &serviceSetup{c: newCLI(t, repoDir), cfg: filepath.Join(dir, "escrow.yaml"), state: stateDir}
	if s.state == "" {
		s.state = filepath.Join(dir, "state")
	}
	s.c.ok("init")
	site := filepath.Join(dir, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "index.php"), []byte("<?php echo 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimPrefix(s.c.env[3], "ESCROW_PASSWORD_FILE=")
	text := fmt.Sprintf("repository: %s\npassword_file: %s\nsources:\n  - path: %s\nstate_dir: %s\nlimits: {cpu_priority: normal, io_priority: normal}\n", repoDir, pw, site, s.state)
	if err := os.WriteFile(s.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// startAgent runs `escrow agent` (bin, or the test build) in the
// foreground and waits until it holds its state directory.
func (s *serviceSetup) startAgent(t *testing.T, bin string) *agentProc {
	t.Helper()
	if bin == "" {
		bin = escrowBin
	}
	log := filepath.Join(t.TempDir(), "agent.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "--config", s.cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &agentProc{t: t, cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, running, _ := agent.ReadStatus(s.state)
		if running && st != nil && st.PID == cmd.Process.Pid && !st.Started.IsZero() {
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("agent exited (%v) before it ran\n%s", err, p.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start\n%s", p.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The service wrapper in the foreground, as systemd, SysV init and launchd
// run it: SIGTERM and SIGINT stop the agent cleanly, with exit status 0.
func TestServiceAgentStopsOnSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			s := newServiceSetup(t, "")
			p := s.startAgent(t, "")
			start := time.Now()
			if err := p.stop(sig); err != nil {
				t.Fatalf("exit after %v: %v\n%s", sig, err, p.logText())
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("stopped after %v", d)
			}
			st, running, err := agent.ReadStatus(s.state)
			if err != nil || running || !st.Stopped {
				t.Errorf("after %v: status %+v, running %v, %v", sig, st, running, err)
			}
			if log := p.logText(); !strings.Contains(log, "agent stopped") {
				t.Errorf("log:\n%s", log)
			}
		})
	}
}

// An agent that ends on its own ends the process with its exit status
// instead of leaving the wrapper waiting for a signal, so that the service
// manager sees the failure.
func TestServiceAgentExitsOnItsOwn(t *testing.T) {
	s := newServiceSetup(t, "")
	pw := strings.TrimPrefix(s.c.env[3], "ESCROW_PASSWORD_FILE=")
	if err := os.WriteFile(pw, []byte("not the password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(escrowBin, "agent", "--config", s.cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != exitWrongPass {
			t.Errorf("exit %v, want %d\n%s", err, exitWrongPass, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the agent with a wrong password did not exit")
	}
}

// install --root writes the systemd files below a directory: a unit that
// systemd-analyze accepts, a drop-in with the configuration's paths, private
// directories, and the configuration untouched.
func TestInstallIntoRoot(t *testing.T) {
	root := t.TempDir()
	cfgDir := filepath.Join(root, "etc/escrow")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `repository: /srv/escrow-repo
password_file: /etc/escrow/password
sources:
  - path: /var/www/site
databases:
  - type: sqlite
    path: /var/www/app/data.sqlite
  - type: postgres
    host: /tmp
    all: true
state_dir: /srv/escrow-state
`
	cfgFile := filepath.Join(cfgDir, "escrow.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := configCLI(t)
	for range 2 {
		out := c.ok("install", "--root", root)
		if !strings.Contains(out, "Installed the escrow service") || !strings.Contains(out, "runs:          "+escrowBin+" agent --config /etc/escrow/escrow.yaml") {
			t.Errorf("install output:\n%s", out)
		}
	}
	if got, _ := os.ReadFile(cfgFile); string(got) != cfg {
		t.Errorf("the configuration changed:\n%s", got)
	}
	for p, want := range map[string]os.FileMode{"etc/escrow": 0o700, "etc/escrow/escrow.yaml": 0o600, "var/lib/escrow": 0o700, "srv/escrow-state": 0o700} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %04o", p, err, want)
		}
	}
	dropIn, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/escrow.service.d/escrow-install.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ReadWritePaths=-/srv/escrow-repo\n", "ReadWritePaths=-/srv/escrow-state\n", "ReadWritePaths=-/var/www/app\n", "PrivateTmp=no\n"} {
		if !strings.Contains(string(dropIn), want) {
			t.Errorf("drop-in lacks %q:\n%s", want, dropIn)
		}
	}
	unit := filepath.Join(root, "etc/systemd/system/escrow.service")
	sa := testenv.RequireBinary(t, "systemd-analyze")
	if out, err := exec.Command(sa, "verify", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// A configuration with problems is refused, with its line.
	if err := os.WriteFile(cfgFile, []byte(cfg+"stat_dir: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.run(nil, "install", "--root", root)
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown field "stat_dir"`) {
		t.Errorf("bad configuration: exit %d\n%s", r.code, r.stderr)
	}
}

// install refuses to replace a running agent of another version without
// --force.
func TestInstallRefusesRunningOtherVersion(t *testing.T) {
	root := t.TempDir()
	s := newServiceSetup(t, filepath.Join(root, "var/lib/escrow"))
	old := filepath.Join(t.TempDir(), "escrow-0.9.0")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=0.9.0", "-o", old, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	p := s.startAgent(t, old)
	c := configCLI(t)

	r := c.run(nil, "install", "--root", root)
	want := fmt.Sprintf("an escrow agent escrow 0.9.0 is running (pid %d); installing escrow dev over it needs --force", p.cmd.Process.Pid)
	if r.code != exitFailure || !strings.Contains(r.stderr, want) {
		t.Fatalf("install over 0.9.0: exit %d\n%s\nwant %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/escrow.service")); !os.IsNotExist(err) {
		t.Errorf("a refused install wrote the unit: %v", err)
	}
	c.ok("install", "--root", root, "--force")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The same version is no reason to refuse.
	p = s.startAgent(t, "")
	c.ok("install", "--root", root)
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Changing the system's services needs root, and says so.
func TestServiceCommandsNeedRoot(t *testing.T) {
	for _, args := range [][]string{{"install"}, {"uninstall"}, {"start"}, {"stop"}, {"restart"}} {
		var cmd *exec.Cmd
		if os.Geteuid() == 0 {
			setpriv := testenv.RequireBinary(t, "setpriv")
			cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", escrowBin}, args...)...)
		} else {
			cmd = exec.Command(escrowBin, args...)
		}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		want := "escrow " + args[0] + " changes the system's services, which only root may do: sudo escrow " + args[0]
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure || !strings.Contains(stderr.String(), want) {
			t.Errorf("escrow %s as a user: %v\n%s", args[0], err, stderr.String())
		}
	}
}

func TestServiceStatus(t *testing.T) {
	s := newServiceSetup(t, "")
	c := configCLI(t)
	r := c.run(nil, "service", "status", "--config", s.cfg)
	if r.code != 0 && r.code != exitUnhealthy || !strings.Contains(r.stdout, "service:  ") || !strings.Contains(r.stdout, "agent:    not running (state directory "+s.state+")") {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	p := s.startAgent(t, "")
	r = c.run(nil, "service", "status", "--config", s.cfg, "--json")
	if !strings.Contains(r.stdout, `"running": true`) || !strings.Contains(r.stdout, `"version": "escrow dev"`) {
		t.Errorf("with an agent running: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := c.run(nil, "service"); r.code != exitUsage {
		t.Errorf("escrow service: exit %d", r.code)
	}
}
