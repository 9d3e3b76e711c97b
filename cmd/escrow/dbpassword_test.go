package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/agent/config"
)

// One password file is one password: `escrow db dump --db-password-file`
// and the agent's password_file read the same secret from it, whatever
// follows the first line, and refuse the same broken files.
func TestDBPasswordFileReadAsTheAgentDoes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	g := &globalOptions{env: env{getenv: func(string) string { return "" }}}
	for _, tc := range []struct {
		name, body, want, err string
	}{
		{"one line", "s3cr3t\n", "s3cr3t", ""},
		{"no newline", "s3cr3t", "s3cr3t", ""},
		{"CRLF", "s3cr3t\r\n", "s3cr3t", ""},
		{"a comment line after it", "s3cr3t\n# shop's database, rotated monthly\n", "s3cr3t", ""},
		{"spaces are part of it", " s3 cr3t \n", " s3 cr3t ", ""},
		{"empty", "", "", "is empty"},
		{"empty first line", "\ns3cr3t\n", "", "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "-"), tc.body)
			cli, cliErr := dbPassword(g, p)
			agent, agentErr := (&config.Database{Name: "shop", PasswordFile: p}).Password()
			if tc.err != "" {
				if cliErr == nil || agentErr == nil || !strings.Contains(cliErr.Error(), tc.err) || !strings.Contains(agentErr.Error(), tc.err) {
					t.Fatalf("command line: %v; agent: %v; want both to say %q", cliErr, agentErr, tc.err)
				}
				if !strings.Contains(cliErr.Error(), p) {
					t.Errorf("%v does not name the file", cliErr)
				}
				return
			}
			if cliErr != nil || agentErr != nil || cli != tc.want || agent != tc.want {
				t.Fatalf("command line read %q (%v), agent %q (%v); want %q from both", cli, cliErr, agent, agentErr, tc.want)
			}
		})
	}
	if _, err := dbPassword(g, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
}
