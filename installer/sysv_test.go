package installer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The SysV script, run for real on a stand-in agent that, like escrow,
// takes a while to stop after SIGTERM: start, status, reload, stop, status.
// Only the PID and log files are moved into a temporary directory.
func TestServiceSysvScript(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	marks := filepath.Join(dir, "marks")
	stub := `#!/bin/sh
trap 'echo hup >>` + marks + `' HUP
trap 'sleep 2; echo term >>` + marks + `; exit 0' TERM
echo "started $*" >>` + marks + `
while :; do sleep 1; done
`
	if err := os.WriteFile(agent, []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Executable: agent, ConfigFile: "/etc/escrow/escrow.yaml", StateDir: StateDir}
	script := SysvScript(o)
	script = strings.Replace(script, "pid_file="+sysvPIDFile+"\n", "pid_file="+filepath.Join(dir, "pid")+"\n", 1)
	script = strings.Replace(script, "log_file="+LogFile+"\n", "log_file="+filepath.Join(dir, "log")+"\n", 1)
	path := filepath.Join(dir, "escrow")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	run := func(arg string, wantCode int, wantOut string) {
		t.Helper()
		out, err := exec.Command(path, arg).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode || !strings.Contains(string(out), wantOut) {
			t.Fatalf("%s: exit %d, %q; want %d and %q", arg, code, out, wantCode, wantOut)
		}
	}
	run("status", 3, "Stopped")
	run("start", 0, "Starting")
	run("start", 0, "Running (pid")
	run("status", 0, "Running (pid")
	run("reload", 0, "")
	start := time.Now()
	run("stop", 0, "stopped")
	if time.Since(start) < 2*time.Second {
		t.Error("stop returned before the agent ended")
	}
	run("status", 3, "Stopped")
	run("stop", 0, "Stopped")
	data, _ := os.ReadFile(marks)
	if want := "started agent --config /etc/escrow/escrow.yaml\nhup\nterm\n"; string(data) != want {
		t.Errorf("the agent saw %q, want %q", data, want)
	}
}
