//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// writeRaw writes a password file byte for byte.
func writeRaw(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// The command line and the agent read a password file alike: every file
// that opens the repository in one gives the agent the same password, and
// one that does not open it gives neither.
func TestPasswordFileCLIAndAgentAgree(t *testing.T) {
	const pw = "correct horse battery staple"
	c := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	c.ok("init")
	for _, tc := range []struct {
		name, content string
		opens         bool
	}{
		{"one newline", pw + "\n", true},
		{"no newline", pw, true},
		{"CRLF", pw + "\r\n", true},
		{"second line", pw + "\nsecond line\n", false}, // the agent took the first line before
		{"two newlines", pw + "\n\n", false},
		{"trailing space", pw + " \n", false}, // restic -p FILE would trim it
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := writeRaw(t, tc.content)
			res := c.with(t, "ESCROW_PASSWORD_FILE="+f).run(nil, "snapshots")
			if (res.code == 0) != tc.opens {
				t.Fatalf("escrow snapshots with %q: exit %d, want opens=%v\n%s", tc.content, res.code, tc.opens, res.stderr)
			}
			got, err := (&config.Config{PasswordFile: f}).Password()
			if err != nil {
				t.Fatal(err)
			}
			if (got == pw) != tc.opens {
				t.Fatalf("the agent reads %q from %q; the command line %s the repository", got, tc.content, map[bool]string{true: "opens", false: "does not open"}[tc.opens])
			}
		})
	}
}

// A password restic would read differently from its file (-p trims white
// space at both ends), or one of several lines, is refused for a new key
// with the reason; a repository whose password already is such opens as
// before, in the command line and the agent.
func TestPasswordFileRefusedWhenCreated(t *testing.T) {
	bad := []string{" leading space\n", "trailing space \n", "tab\t\n", "two\nlines\n", "\n\n"}
	for _, content := range bad {
		c := newCLI(t, filepath.Join(t.TempDir(), "repo"), "ESCROW_PASSWORD_FILE="+writeRaw(t, content))
		res := c.run(nil, "init")
		if res.code != exitUsage || !strings.Contains(res.stderr, "restic") {
			t.Errorf("init with password file %q: exit %d, want %d and the reason:\n%s", content, res.code, exitUsage, res.stderr)
		}
	}
	c := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	c.ok("init")
	for _, content := range bad[:4] {
		for _, cmd := range [][]string{{"key", "add"}, {"key", "passwd"}} {
			res := c.run(nil, append(cmd, "--new-password-file", writeRaw(t, content))...)
			if res.code != exitUsage || !strings.Contains(res.stderr, "restic -p FILE") {
				t.Errorf("%s with %q: exit %d, want %d and the reason:\n%s", strings.Join(cmd, " "), content, res.code, exitUsage, res.stderr)
			}
		}
	}
	c.ok("snapshots") // still opens with its password

	// A repository made elsewhere with such a password still opens.
	restic := testenv.RequireBinary(t, "restic")
	const legacy = "  spaced\tpassword "
	dir := filepath.Join(t.TempDir(), "legacy")
	mk := exec.Command(restic, "--no-cache", "init", "--repo", dir)
	mk.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_PASSWORD=" + legacy}
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	f := writeRaw(t, legacy+"\n")
	newCLI(t, dir, "ESCROW_PASSWORD_FILE="+f).ok("snapshots")
	if got, err := (&config.Config{PasswordFile: f}).Password(); err != nil || got != legacy {
		t.Fatalf("the agent reads %q, %v; want %q", got, err, legacy)
	}
}
