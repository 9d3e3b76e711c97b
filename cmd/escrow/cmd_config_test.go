//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// configFixture writes a valid configuration and what it names; it returns
// the configuration's path.
func configFixture(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := "repository: s3:https://s3.example.com/backups/site1\npassword_file: " + pw + "\nhost: web1\n" +
		"sources:\n  - path: " + filepath.Join(dir, "site") + "\n    tags: [site]\n" +
		"databases:\n  - type: mysql\n    name: shop\n    databases: [shop]\n" +
		"state_dir: " + filepath.Join(dir, "state") + "\n" + extra
	name := filepath.Join(dir, "escrow.yaml")
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func configCLI(t *testing.T) *cli {
	return &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
}

func TestConfigCheckOK(t *testing.T) {
	name := configFixture(t, "")
	c := configCLI(t)
	out := c.ok("config", "check", "--config", name)
	for _, want := range []string{
		name + ": OK",
		"repository:  s3:https://s3.example.com/backups/site1",
		"s3:          access key $AWS_ACCESS_KEY_ID, secret from $AWS_SECRET_ACCESS_KEY",
		"source:      " + filepath.Join(filepath.Dir(name), "site") + " (watched, tags site)",
		"database:    shop: mysql shop, every 1h",
		"schedule:    snapshot 10s after the last change, at most 1m after the first; full rescan every 6h",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var js struct {
		OK      bool `json:"ok"`
		Sources []struct {
			Path string `json:"path"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(c.ok("--json", "config", "check", "--config", name)), &js); err != nil || !js.OK || len(js.Sources) != 1 {
		t.Fatalf("--json: %+v, %v", js, err)
	}
}

func TestConfigCheckBad(t *testing.T) {
	c := configCLI(t)
	for _, tc := range []struct {
		name, extra string
		want        []string
	}{
		{"one problem", "schedule:\n  quiet_perod: 5s\n", []string{
			`escrow: ` + "FILE" + `:13: schedule: unknown field "quiet_perod" (did you mean "quiet_period"?)`,
		}},
		{"several problems", "schedule:\n  quiet_period: 10\npassword: hunter2-secret\nlimits:\n  parallelism: 65\n", []string{
			"FILE:13: schedule.quiet_period: \"10\" is not a duration",
			"FILE:14: password: secrets do not belong in the configuration file",
			"FILE:16: limits.parallelism: 65 is out of range",
			"escrow: FILE: 3 problems (listed above)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := configFixture(t, tc.extra)
			r := c.run(nil, "config", "check", "--config", name)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", r.code, exitUsage, r.stderr)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "FILE", name); !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "hunter2") {
				t.Errorf("the secret was printed: %s", r.stderr)
			}
		})
	}
	r := c.run(nil, "config", "check", "--config", "/nonexistent/escrow.yaml")
	if r.code != exitUsage || !strings.Contains(r.stderr, "escrow: /nonexistent/escrow.yaml: the configuration file does not exist") {
		t.Fatalf("missing file: exit %d, %s", r.code, r.stderr)
	}
}

// A source the agent's user cannot read is named. Root reads everything, so
// as root the check runs as an unprivileged user.
func TestConfigCheckUnreadable(t *testing.T) {
	name := configFixture(t, "")
	dir := filepath.Dir(name)
	site := filepath.Join(dir, "site")
	args := []string{"config", "check", "--config", name}
	var cmd *exec.Cmd
	if os.Geteuid() != 0 {
		if err := os.Chmod(site, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(site, 0o755) })
		cmd = exec.Command(escrowBin, args...)
	} else {
		setpriv := testenv.RequireBinary(t, "setpriv")
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		chownTree(t, dir, 65534, 65534)
		if err := os.Chown(site, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(site, 0o700); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", escrowBin}, args...)...)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	want := name + ":5: sources[0].path: " + site + " cannot be read: permission denied"
	if !ok || ee.ExitCode() != exitUsage || !strings.Contains(stderr.String(), want) {
		t.Fatalf("exit %v, stderr:\n%s\nwant %q", err, stderr.String(), want)
	}
}

func TestConfigExample(t *testing.T) {
	c := configCLI(t)
	out := c.ok("config", "example")
	for _, want := range []string{"repository: s3:https://", "password_file: /etc/escrow/password", "quiet_period: 10s"} {
		if !strings.Contains(out, want) {
			t.Errorf("example lacks %q", want)
		}
	}
	if r := c.run(nil, "config", "bogus"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "bogus" for escrow config`) {
		t.Errorf("config bogus: exit %d, %s", r.code, r.stderr)
	}
}
